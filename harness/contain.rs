//! Nobody left behind, nothing left on disk: what a run starts is found and
//! killed on every exit path, and what it writes goes to scratch
//! directories that are removed on every exit path.
//!
//! - Each supervised child runs in a cgroup of its own when leaklab may make
//!   one (cgroup v2, writable: as root). A process cannot leave its cgroup by
//!   forking, `setsid()` or double-forking, so `cgroup.kill` ends all of it.
//! - Each child also carries a marker in its environment
//!   (`LEAKLAB_RUN=<leaklab pid>.<n>`), inherited by everything it starts:
//!   without cgroups, the run's leftovers are found by that marker in
//!   /proc/PID/environ (a program that rewrites its environment escapes this).
//! - The CLI makes leaklab a child subreaper, so orphans of a run come back
//!   to it to be reaped, and starts a watchdog ([`start_watchdog`]): a forked
//!   process that sees leaklab's death as EOF on a pipe and then kills the
//!   run cgroups and marked processes and removes the scratch directories,
//!   also after SIGKILL, which no handler sees.
//! - SIGINT, SIGTERM and SIGHUP go through [`interrupted`]: kill, remove the
//!   scratch directories, exit.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::error::Error;

/// The environment variable that marks every process of a run.
pub const MARKER_VAR: &str = "LEAKLAB_RUN";

/// How long a killed run may take to die before leaklab gives up waiting.
const DEATH_WAIT: Duration = Duration::from_secs(5);

static NEXT_RUN: AtomicU64 = AtomicU64::new(0);

/// Scratch directories alive right now, removed by [`interrupted`].
static SCRATCH: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Runs whose processes are alive right now: (marker, cgroup).
static LIVE_RUNS: Mutex<Vec<(String, Option<PathBuf>)>> = Mutex::new(Vec::new());

/// The watchdog's pid and the write end of its pipe (-1: none).
static WATCHDOG_PID: AtomicI32 = AtomicI32::new(-1);
static WATCHDOG_FD: AtomicI32 = AtomicI32::new(-1);

/// The prefix of this leaklab's run cgroups, scratch directories and markers.
fn own_prefix() -> String {
    format!("leaklab-{}-", std::process::id())
}

fn marker_prefix(pid: u32) -> String {
    format!("{pid}.")
}

// ---------------------------------------------------------------------------
// Scratch directories

/// A run's scratch directory: registered while it lives, removed when
/// dropped, on Ctrl-C/SIGTERM/SIGHUP, and by the watchdog if leaklab is
/// killed. Backends make theirs with [`scratch`], never with
/// `tempfile::tempdir()` (whose removal a signal would skip).
#[derive(Debug)]
pub struct Scratch {
    dir: Option<tempfile::TempDir>,
}

/// A new scratch directory under `$TMPDIR`, named `leaklab-<pid>-XXXXXX`.
pub fn scratch() -> Result<Scratch, Error> {
    let mut registry = SCRATCH.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::Builder::new().prefix(&own_prefix()).tempdir().map_err(|e| Error::Os(format!("scratch directory in {}: {e}", std::env::temp_dir().display())))?;
    registry.push(dir.path().to_path_buf());
    Ok(Scratch { dir: Some(dir) })
}

impl Scratch {
    #[must_use]
    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("live until dropped").path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            let _ = dir.close();
            SCRATCH.lock().unwrap_or_else(|e| e.into_inner()).retain(|p| *p != path);
        }
    }
}

fn remove_all_scratch() {
    let registry = SCRATCH.lock().unwrap_or_else(|e| e.into_inner());
    for dir in registry.iter() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

// ---------------------------------------------------------------------------
// Run containment

/// Where this process's run cgroups go (its own cgroup v2 directory), if
/// leaklab may create cgroups there. Probed once.
fn cgroup_parent() -> Option<&'static Path> {
    static PARENT: OnceLock<Option<PathBuf>> = OnceLock::new();
    PARENT
        .get_or_init(|| {
            if std::env::var_os("LEAKLAB_NO_CGROUP").is_some() {
                return None;
            }
            let mount = cgroup2_mount()?;
            let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
            let rel = own.lines().find_map(|l| l.strip_prefix("0::"))?.trim_start_matches('/').to_string();
            let parent = mount.join(rel);
            // cgroup.kill appeared in Linux 5.14; without it a cgroup cannot be killed whole.
            if !parent.join("cgroup.procs").exists() {
                return None;
            }
            let probe = parent.join(format!("{}probe", own_prefix()));
            std::fs::create_dir(&probe).ok()?;
            let killable = probe.join("cgroup.kill").exists();
            let _ = std::fs::remove_dir(&probe);
            killable.then_some(parent)
        })
        .as_deref()
}

/// The cgroup v2 mount point, from /proc/self/mountinfo (`/sys/fs/cgroup`,
/// or `/sys/fs/cgroup/unified` on a hybrid system).
fn cgroup2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let point = left.split_whitespace().nth(4)?;
        (fstype == "cgroup2").then(|| PathBuf::from(point.replace("\\040", " ")))
    })
}

/// Whether runs are contained by cgroups here (else by markers only).
#[must_use]
pub fn cgroups_available() -> bool {
    cgroup_parent().is_some()
}

/// What one child's run is contained by; made before the spawn.
#[derive(Debug)]
pub struct Containment {
    marker: String,
    cgroup: Option<PathBuf>,
    /// `cgroup.procs` of the run's cgroup, written by the child before exec.
    procs: Option<OwnedFd>,
}

impl Containment {
    /// A fresh marker, and a fresh cgroup where leaklab may make one.
    pub fn new() -> Result<Containment, Error> {
        let n = NEXT_RUN.fetch_add(1, Ordering::Relaxed);
        let marker = format!("{}{n}", marker_prefix(std::process::id()));
        let mut c = Containment { marker, cgroup: None, procs: None };
        if let Some(parent) = cgroup_parent() {
            let dir = parent.join(format!("{}{n}", own_prefix()));
            std::fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?;
            let procs = std::fs::OpenOptions::new().write(true).open(dir.join("cgroup.procs"));
            match procs {
                Ok(f) => {
                    c.procs = Some(f.into());
                    c.cgroup = Some(dir);
                }
                Err(e) => {
                    let _ = std::fs::remove_dir(&dir);
                    return Err(Error::io(&dir.join("cgroup.procs"), e));
                }
            }
        }
        LIVE_RUNS.lock().unwrap_or_else(|e| e.into_inner()).push((c.marker.clone(), c.cgroup.clone()));
        Ok(c)
    }

    /// The environment entry the child and all its descendants carry.
    #[must_use]
    pub fn env(&self) -> (OsString, OsString) {
        (MARKER_VAR.into(), self.marker.clone().into())
    }

    /// The descriptor the child writes "0" to (before exec) to enter its cgroup.
    #[must_use]
    pub fn procs_fd(&self) -> Option<RawFd> {
        self.procs.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Kills every process of the run that is still alive (whatever its
    /// process group or session), waits for them to die, reaps those that
    /// came back to leaklab as orphans, and removes the cgroup. `leader` is
    /// the child's own pid, reaped by its owner, not here.
    pub fn kill_rest(&mut self, leader: i32) {
        self.procs = None;
        let killed = match &self.cgroup {
            Some(dir) => kill_cgroup(dir),
            None => kill_marked(&self.marker, leader),
        };
        reap_orphans(&killed, leader);
        if let Some(dir) = self.cgroup.take() {
            let _ = std::fs::remove_dir(&dir);
        }
        let marker = self.marker.clone();
        LIVE_RUNS.lock().unwrap_or_else(|e| e.into_inner()).retain(|(m, _)| *m != marker);
    }
}

impl Drop for Containment {
    fn drop(&mut self) {
        if self.cgroup.is_some() || LIVE_RUNS.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|(m, _)| *m == self.marker) {
            self.kill_rest(-1);
        }
    }
}

/// Pids listed in a cgroup.
fn cgroup_pids(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Kills a cgroup whole and waits until it is empty; the pids it had.
fn kill_cgroup(dir: &Path) -> Vec<i32> {
    let pids = cgroup_pids(dir);
    if pids.is_empty() {
        return pids;
    }
    let _ = std::fs::write(dir.join("cgroup.kill"), "1");
    let until = Instant::now() + DEATH_WAIT;
    while Instant::now() < until {
        let events = std::fs::read_to_string(dir.join("cgroup.events")).unwrap_or_default();
        if events.lines().any(|l| l == "populated 0") {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    pids
}

/// Whether /proc/PID/environ holds `VAR=value` for which `matches(value)`.
fn environ_marker(pid: i32) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let key = format!("{MARKER_VAR}=");
    env.split(|&b| b == 0).find_map(|entry| entry.strip_prefix(key.as_bytes()).map(|v| String::from_utf8_lossy(v).into_owned()))
}

fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Kills the processes carrying `marker` (SIGKILL, then SIGCONT for stopped
/// ones), until none is left or the wait runs out; the pids it killed.
fn kill_marked(marker: &str, leader: i32) -> Vec<i32> {
    kill_matching(|value| value == marker, leader)
}

fn kill_matching(matches: impl Fn(&str) -> bool, leader: i32) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut killed = Vec::new();
    let until = Instant::now() + DEATH_WAIT;
    loop {
        let alive: Vec<i32> = all_pids()
            .into_iter()
            .filter(|&p| p != me && p != leader && !is_zombie(p) && environ_marker(p).is_some_and(|v| matches(&v)))
            .collect();
        if alive.is_empty() || Instant::now() >= until {
            return killed;
        }
        for &p in &alive {
            // SAFETY: plain signals to processes of our own run.
            unsafe {
                libc::kill(p, libc::SIGKILL);
                libc::kill(p, libc::SIGCONT);
            }
            if !killed.contains(&p) {
                killed.push(p);
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next().map(|st| st == "Z" || st == "X")))
        .unwrap_or(true)
}

/// Reaps the killed processes that were reparented to leaklab (the CLI is a
/// subreaper). Only pids of the run: a child leaklab started some other way
/// (std's Command) is never waited for here.
fn reap_orphans(pids: &[i32], leader: i32) {
    let me = std::process::id() as i32;
    let until = Instant::now() + DEATH_WAIT;
    for &p in pids.iter().filter(|&&p| p != leader) {
        loop {
            if parent_of(p) != Some(me) {
                break;
            }
            let mut status = 0;
            // SAFETY: waiting for a specific pid, which is our orphaned child.
            let r = unsafe { libc::waitpid(p, &mut status, libc::WNOHANG | libc::__WALL) };
            if r != 0 || Instant::now() >= until {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// Kills every live run (Ctrl-C and friends), and waits for them to die.
pub fn kill_live_runs() {
    let runs = LIVE_RUNS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for (marker, cgroup) in &runs {
        match cgroup {
            Some(dir) => {
                let _ = std::fs::write(dir.join("cgroup.kill"), "1");
            }
            None => {
                kill_marked(marker, -1);
            }
        }
    }
    let until = Instant::now() + DEATH_WAIT;
    for dir in runs.iter().filter_map(|(_, c)| c.as_ref()) {
        while Instant::now() < until && !std::fs::read_to_string(dir.join("cgroup.events")).unwrap_or_default().lines().any(|l| l == "populated 0") {
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = std::fs::remove_dir(dir);
    }
}

// ---------------------------------------------------------------------------
// The CLI's side: subreaper, watchdog, signals

/// Makes leaklab the subreaper of everything it starts, and starts the
/// watchdog. Called by the CLI first thing, while it has a single thread
/// (the watchdog is forked).
pub fn supervise() -> Result<(), Error> {
    // SAFETY: plain prctl on ourselves.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(Error::Os(format!("PR_SET_CHILD_SUBREAPER: {}", std::io::Error::last_os_error())));
    }
    start_watchdog()
}

/// Forks the watchdog: it waits for EOF on a pipe whose write end only
/// leaklab holds (close-on-exec, so no target inherits it), then cleans up
/// what leaklab left: its run cgroups, its marked processes, its scratch
/// directories. It is not an ancestor of any target.
pub fn start_watchdog() -> Result<(), Error> {
    let mut fds = [0; 2];
    // SAFETY: a plain pipe2.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::Os(format!("pipe2: {}", std::io::Error::last_os_error())));
    }
    let leaklab = std::process::id();
    let cgroup_parent = cgroup_parent().map(Path::to_path_buf);
    let tmp = std::env::temp_dir();
    // SAFETY: fork while single-threaded (the CLI calls this before any thread starts).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::Os(format!("fork: {}", std::io::Error::last_os_error())));
    }
    if pid == 0 {
        // SAFETY: in the fresh child; closing our copy of the write end.
        unsafe {
            libc::close(fds[1]);
            watchdog_detach();
        }
        let mut byte = [0u8; 1];
        // SAFETY: read on our pipe; EOF (0) or a byte ends the wait.
        let n = loop {
            let n = unsafe { libc::read(fds[0], byte.as_mut_ptr().cast(), 1) };
            if n >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                break n;
            }
        };
        // A byte is leaklab's orderly exit: it cleaned up itself.
        if n <= 0 {
            watchdog_cleanup(leaklab, cgroup_parent.as_deref(), &tmp);
        }
        // SAFETY: leave without running the parent's atexit handlers.
        unsafe { libc::_exit(0) };
    }
    // SAFETY: our copy of the read end is not needed.
    unsafe { libc::close(fds[0]) };
    WATCHDOG_PID.store(pid, Ordering::SeqCst);
    WATCHDOG_FD.store(fds[1], Ordering::SeqCst);
    Ok(())
}

/// The watchdog leaves the terminal and leaklab's signals alone: its own
/// session, stdio on /dev/null, the terminating signals ignored.
unsafe fn watchdog_detach() {
    unsafe {
        libc::setsid();
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::dup2(null, 1);
            libc::dup2(null, 2);
        }
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGPIPE] {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
}

fn watchdog_cleanup(leaklab: u32, cgroup_parent: Option<&Path>, tmp: &Path) {
    let prefix = format!("leaklab-{leaklab}-");
    if let Some(parent) = cgroup_parent {
        let dirs: Vec<PathBuf> = std::fs::read_dir(parent)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect();
        for dir in &dirs {
            kill_cgroup(dir);
            let _ = std::fs::remove_dir(dir);
        }
    }
    let markers = marker_prefix(leaklab);
    kill_matching(|v| v.starts_with(&markers), -1);
    for entry in std::fs::read_dir(tmp).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Tells the watchdog that leaklab cleaned up itself and waits for it to
/// go, so that it does not outlive leaklab. Called on every orderly exit.
pub fn stop_watchdog() {
    let fd = WATCHDOG_FD.swap(-1, Ordering::SeqCst);
    let pid = WATCHDOG_PID.swap(-1, Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: our own pipe's write end, closed once.
        let mut pipe = unsafe { std::fs::File::from(OwnedFd::from_raw_fd(fd)) };
        let _ = pipe.write_all(b"q");
    }
    if pid > 0 {
        let mut status = 0;
        // SAFETY: waiting for our own watchdog child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
}

/// The pid of the watchdog, if one runs.
#[must_use]
pub fn watchdog_pid() -> Option<i32> {
    Some(WATCHDOG_PID.load(Ordering::SeqCst)).filter(|&p| p > 0)
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static EXITING: Mutex<()> = Mutex::new(());

/// Whether leaklab was interrupted: the runs it kills then fail, and what
/// they say is not shown (the exit code is the interruption's).
#[must_use]
pub fn is_interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// SIGINT, SIGTERM or SIGHUP reached leaklab: every run is killed, every
/// scratch directory removed, and leaklab exits with `code`. A second
/// caller (the main thread, seeing its run killed) waits for the first.
pub fn interrupted(code: i32) -> ! {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let _exiting = EXITING.lock().unwrap_or_else(|e| e.into_inner());
    crate::process::kill_all();
    kill_live_runs();
    remove_all_scratch();
    stop_watchdog();
    std::process::exit(code);
}
