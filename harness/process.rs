//! Child processes under supervision: each in its own process group, bounded
//! by a deadline, always reaped, and killed with its whole group when the
//! harness gives up on it or is interrupted.
//!
//! std's `Child` cannot report a child's peak RSS, nor a stop (SIGSTOP at the
//! checkpoint); this module waits with wait4(2) and a pidfd instead.
//!
//! Beyond its process group, each child is contained by `contain`: a cgroup
//! of its own where leaklab may make one, and a marker in its environment,
//! so that a `setsid()` daemon it starts is killed with it too. Captured
//! output goes to anonymous files and is read back bounded: the head of
//! stdout, the tail of stderr.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use crate::contain::{scratch, Scratch};
use crate::contain::Containment;
use crate::error::Error;

/// At most this much of a captured stdout is read back (tools' reports are
/// far smaller; a target's stdout is never needed whole).
pub const STDOUT_LIMIT: u64 = 16 << 20;
/// The tail of a captured stderr that is read back: the last words an
/// error shows.
pub const STDERR_TAIL: u64 = 64 << 10;

/// Process groups of the children alive right now, for [`kill_all`].
/// siginfo_t.si_code of a stopped child (asm-generic/siginfo.h); libc lacks it on Linux.
const CLD_STOPPED: i32 = 5;

static LIVE_GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Kills every supervised child's process group. The CLI calls it on
/// SIGINT/SIGTERM so that no child outlives the harness.
pub fn kill_all() {
    let groups = LIVE_GROUPS.lock().unwrap_or_else(|e| e.into_inner());
    for &pgid in groups.iter() {
        // SAFETY: plain syscalls on a pid we own.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
            libc::killpg(pgid, libc::SIGCONT);
        }
    }
}

/// Where a program's stdin, stdout and stderr go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgramIo {
    /// stdin from /dev/null; stdout and stderr to files the harness reads
    /// (the catalogue's samples, tools whose output is parsed).
    #[default]
    Capture,
    /// The harness's own stdin, stdout and stderr, as under valgrind: a
    /// user's program talks to the user. Nothing of it is captured. When
    /// stdin is a terminal, the child's group is made its foreground group
    /// for the run (so the program may read it, and Ctrl-C goes to the
    /// program, as when run directly), and handed back to leaklab after.
    Inherit,
}

/// What to run and how.
#[derive(Debug, Clone)]
pub struct Spec {
    pub program: OsString,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    pub env_remove: Vec<OsString>,
    pub timeout: Duration,
    /// The child stops itself (SIGSTOP) after fork, just before exec, so a
    /// tracer can attach to its pid before the program runs a single
    /// instruction; `wait_stop` then `resume` lets it go on.
    pub stop_before_exec: bool,
    pub io: ProgramIo,
    pub layout: Layout,
}

/// Where the program's stacks, heap and libraries are placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Randomized, as every program runs (ASLR).
    #[default]
    Randomized,
    /// The same addresses on every run (`personality(ADDR_NO_RANDOMIZE)`,
    /// as `setarch -R`): a conservative checker's verdict then does not
    /// depend on where a stale copy of a pointer happens to fall. The
    /// environment is cut to a fixed set of names and padded, so that the
    /// stack starts at the same address on every machine too.
    Fixed,
}

impl Spec {
    pub fn new(program: impl AsRef<OsStr>, timeout: Duration) -> Spec {
        Spec {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            env_remove: Vec::new(),
            timeout,
            stop_before_exec: false,
            layout: Layout::Randomized,
            io: ProgramIo::Capture,
        }
    }

    #[must_use]
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Spec {
        self.args.push(a.as_ref().to_owned());
        self
    }

    #[must_use]
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, a: I) -> Spec {
        self.args.extend(a.into_iter().map(|s| s.as_ref().to_owned()));
        self
    }

    #[must_use]
    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Spec {
        self.env.push((k.as_ref().to_owned(), v.as_ref().to_owned()));
        self
    }

    #[must_use]
    pub fn env_remove(mut self, k: impl AsRef<OsStr>) -> Spec {
        self.env_remove.push(k.as_ref().to_owned());
        self
    }

    #[must_use]
    pub fn io(mut self, io: ProgramIo) -> Spec {
        self.io = io;
        self
    }

    #[must_use]
    pub fn stop_before_exec(mut self) -> Spec {
        self.stop_before_exec = true;
        self
    }

    #[must_use]
    pub fn layout(mut self, layout: Layout) -> Spec {
        self.layout = layout;
        self
    }

    fn label(&self) -> String {
        Path::new(&self.program).file_name().unwrap_or(&self.program).to_string_lossy().into_owned()
    }
}

/// What the stack of a program started with a fixed layout begins with:
/// the names it inherits (a default where the harness has none), and the
/// size the strings at the top of its stack are padded to.
const FIXED_ENV_NAMES: [(&str, &str); 2] = [("PATH", "/usr/local/bin:/usr/bin:/bin"), ("HOME", "/")];
const FIXED_STACK_STRINGS: usize = 8192;
const STACK_PAD: &str = "LEAKLAB_STACK_PAD";

/// Makes the strings the kernel copies to the top of the new stack (the
/// file name, argv and the environment) the same size on every machine and
/// in every run: with `ADDR_NO_RANDOMIZE` the stack then starts at the same
/// address, so every frame, and every stale pointer a frame leaves, is at
/// the same place whatever the caller's environment or the path of the
/// build. The environment is cut to a fixed set of names for that: which
/// variables a machine has would otherwise move the pointer arrays below
/// the strings.
fn fixed_environment(cmd: &mut Command, spec: &Spec) {
    let mut env: BTreeMap<OsString, OsString> = FIXED_ENV_NAMES
        .iter()
        .map(|(k, default)| (OsString::from(k), std::env::var_os(k).unwrap_or_else(|| OsString::from(default))))
        .collect();
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => env.insert(k.to_owned(), v.to_owned()),
            None => env.remove(k),
        };
    }
    for k in &spec.env_remove {
        env.remove(k);
    }
    // The file name is copied once for AT_EXECFN and once as argv[0].
    let mut used = 2 * (spec.program.len() + 1) + spec.args.iter().map(|a| a.len() + 1).sum::<usize>();
    used += env.iter().map(|(k, v)| k.len() + v.len() + 2).sum::<usize>();
    let pad_entry = STACK_PAD.len() + 2;
    let target = (used + pad_entry).div_ceil(FIXED_STACK_STRINGS) * FIXED_STACK_STRINGS;
    env.insert(STACK_PAD.into(), "x".repeat(target - used - pad_entry).into());
    cmd.env_clear();
    cmd.envs(env);
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    #[must_use]
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }

    /// "exited with status 3" / "was killed by SIGSEGV".
    #[must_use]
    pub fn describe(self) -> String {
        match self {
            Exit::Code(c) => format!("exited with status {c}"),
            Exit::Signal(s) => format!("was killed by {}", signal_name(s)),
        }
    }
}

/// What a wait observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Exited(Exit),
    /// Stopped by a signal (SIGSTOP at the checkpoint).
    Stopped(i32),
}

/// A finished child: how it ended and what it wrote (when captured: the
/// first [`STDOUT_LIMIT`] bytes of stdout, the last [`STDERR_TAIL`] of stderr).
#[derive(Debug)]
pub struct Finished {
    pub exit: Exit,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub wall: Duration,
    /// Peak RSS of the child in KiB (wait4's ru_maxrss).
    pub peak_rss_kib: u64,
    /// User plus system CPU time of the child and its reaped descendants
    /// (wait4's rusage): unlike wall time, not inflated by a busy machine.
    pub cpu: Duration,
}

impl Finished {
    #[must_use]
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// A running child in its own process group. Dropping it kills the group and
/// reaps the child.
#[derive(Debug)]
pub struct Child {
    pid: i32,
    pidfd: OwnedFd,
    stdout: File,
    stderr: File,
    started: Instant,
    deadline: Instant,
    label: String,
    timeout: Duration,
    exit: Option<(Exit, u64, Duration)>,
    contain: Containment,
    /// The terminal whose foreground group the child has, to take back.
    terminal: Option<i32>,
}

impl Child {
    /// Starts `spec` with stdin from /dev/null and stdout/stderr to
    /// anonymous files (`Capture`), or with leaklab's own (`Inherit`).
    pub fn spawn(spec: &Spec) -> Result<Child, Error> {
        let label = spec.label();
        let stdout = tempfile::tempfile().map_err(|e| Error::Os(format!("tempfile: {e}")))?;
        let stderr = tempfile::tempfile().map_err(|e| Error::Os(format!("tempfile: {e}")))?;
        // std's spawn returns only once the exec has happened, so a stop before
        // the exec is the job of a tiny C stopper that execs the program after
        // SIGCONT (harness/native/stop_exec.c); the pid stays the program's.
        let mut cmd = if spec.stop_before_exec {
            let mut c = Command::new(crate::artifacts::stop_exec()?);
            c.arg(&spec.program);
            c
        } else {
            Command::new(&spec.program)
        };
        cmd.args(&spec.args).process_group(0);
        match spec.io {
            ProgramIo::Capture => {
                cmd.stdin(Stdio::null())
                    .stdout(Stdio::from(stdout.try_clone().map_err(|e| Error::Os(e.to_string()))?))
                    .stderr(Stdio::from(stderr.try_clone().map_err(|e| Error::Os(e.to_string()))?));
            }
            ProgramIo::Inherit => {
                cmd.stdin(Stdio::inherit()).stdout(Stdio::inherit()).stderr(Stdio::inherit());
            }
        }
        for k in &spec.env_remove {
            cmd.env_remove(k);
        }
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        let contain = Containment::new()?;
        let (marker, value) = contain.env();
        cmd.env(marker, value);
        if spec.layout == Layout::Fixed {
            fixed_environment(&mut cmd, spec);
        }
        let procs_fd = contain.procs_fd();
        // The terminal is handed to the program only when it is leaklab's
        // foreground terminal (not when leaklab itself runs in the background).
        let terminal = (spec.io == ProgramIo::Inherit && is_foreground(0)).then_some(0);
        let fixed_layout = spec.layout == Layout::Fixed;
        // SAFETY: prctl, write, signal and tcsetpgrp are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                // If the harness dies, so does the child (its group is killed on the orderly paths).
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if fixed_layout {
                    // 0xffffffff reads the persona without changing it.
                    let current = libc::personality(0xffff_ffff);
                    if current == -1 || libc::personality((current as libc::c_ulong) | libc::ADDR_NO_RANDOMIZE as libc::c_ulong) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if let Some(fd) = procs_fd {
                    // Enter the run's cgroup before exec: nothing the program starts can leave it.
                    if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if let Some(tty) = terminal {
                    // A background group calling tcsetpgrp gets SIGTTOU unless it ignores it.
                    let old = libc::signal(libc::SIGTTOU, libc::SIG_IGN);
                    libc::tcsetpgrp(tty, libc::getpid());
                    libc::signal(libc::SIGTTOU, old);
                }
                Ok(())
            });
        }
        crate::taskstats::start();
        let mut groups = LIVE_GROUPS.lock().unwrap_or_else(|e| e.into_inner());
        let child = cmd.spawn().map_err(|e| Error::Spawn { program: spec.program.to_string_lossy().into_owned(), source: e })?;
        let pid = child.id() as i32;
        crate::taskstats::watch(pid);
        groups.push(pid);
        drop(groups);
        // std's handle is not used past this point: we wait with wait4 ourselves.
        std::mem::forget(child);
        // SAFETY: pidfd_open on our own child, which is not reaped yet.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
        if fd < 0 {
            let err = std::io::Error::last_os_error();
            unsafe { libc::killpg(pid, libc::SIGKILL) };
            reap_blocking(pid);
            forget_group(pid);
            return Err(Error::Os(format!("pidfd_open: {err}")));
        }
        // SAFETY: fd is a fresh descriptor we own.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd) };
        let now = Instant::now();
        Ok(Child { pid, pidfd, stdout, stderr, started: now, deadline: now + spec.timeout, label, timeout: spec.timeout, exit: None, contain, terminal })
    }

    #[must_use]
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Waits for the child to exit or stop, until the deadline.
    pub fn wait_event(&mut self) -> Result<Event, Error> {
        if let Some((exit, _, _)) = self.exit {
            return Ok(Event::Exited(exit));
        }
        loop {
            // Peek first (WNOWAIT): while the leader is an unreaped zombie its
            // pid cannot be reused, so killing its group afterwards is safe.
            // SAFETY: an all-zero siginfo is a valid value; waitid on our own child.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let r = unsafe {
                libc::waitid(libc::P_PID, self.pid as libc::id_t, &mut info, libc::WEXITED | libc::WSTOPPED | libc::WNOHANG | libc::WNOWAIT)
            };
            if r < 0 {
                return Err(Error::Os(format!("waitid: {}", std::io::Error::last_os_error())));
            }
            // SAFETY: si_pid is set by waitid (0 when nothing happened).
            if unsafe { info.si_pid() } == self.pid {
                let mut status = 0;
                // SAFETY: an all-zero rusage is a valid value.
                let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
                if info.si_code == CLD_STOPPED {
                    // Consume the stop notification.
                    unsafe { libc::wait4(self.pid, &mut status, libc::WUNTRACED | libc::WNOHANG, &mut usage) };
                    return Ok(Event::Stopped(libc::WSTOPSIG(status)));
                }
                // The leader is gone; anything it left in its group, its
                // cgroup or with its marker goes too.
                unsafe {
                    libc::killpg(self.pid, libc::SIGKILL);
                    libc::killpg(self.pid, libc::SIGCONT);
                }
                self.contain.kill_rest(self.pid);
                self.take_terminal_back();
                unsafe { libc::wait4(self.pid, &mut status, 0, &mut usage) };
                let exit = if libc::WIFSIGNALED(status) { Exit::Signal(libc::WTERMSIG(status)) } else { Exit::Code(libc::WEXITSTATUS(status)) };
                let tv = |t: libc::timeval| Duration::new(t.tv_sec.max(0) as u64, (t.tv_usec.max(0) as u32) * 1000);
                self.exit = Some((exit, peak_rss_kib(self.pid, &usage), tv(usage.ru_utime) + tv(usage.ru_stime)));
                forget_group(self.pid);
                return Ok(Event::Exited(exit));
            }
            let now = Instant::now();
            if now >= self.deadline {
                self.kill();
                return Err(Error::Timeout { program: self.label.clone(), seconds: self.timeout.as_secs_f64() });
            }
            // A pidfd becomes readable on exit, not on a stop: poll in short slices.
            let slice = (self.deadline - now).min(Duration::from_millis(5));
            let mut pfd = libc::pollfd { fd: self.pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, slice.as_millis().max(1) as i32) };
        }
    }

    /// Waits until the child stops itself (the checkpoint). An exit first is an error.
    pub fn wait_stop(&mut self) -> Result<(), Error> {
        match self.wait_event()? {
            Event::Stopped(_) => Ok(()),
            Event::Exited(exit) => Err(Error::TargetFailed {
                program: self.label.clone(),
                how: format!("{} before reaching its checkpoint", exit.describe()),
                stderr: self.read_stderr(),
            }),
        }
    }

    /// Resumes a stopped child (and its group).
    pub fn resume(&self) {
        // SAFETY: signalling our own group.
        unsafe { libc::killpg(self.pid, libc::SIGCONT) };
    }

    /// Waits for the exit (resuming the child from any stop) and collects its output.
    pub fn finish(mut self) -> Result<Finished, Error> {
        loop {
            match self.wait_event()? {
                Event::Exited(_) => break,
                Event::Stopped(_) => self.resume(),
            }
        }
        let (exit, rss, cpu) = self.exit.expect("exited");
        Ok(Finished {
            exit,
            stdout: read_head(&mut self.stdout, STDOUT_LIMIT),
            stderr: read_tail(&mut self.stderr, STDERR_TAIL),
            wall: self.started.elapsed(),
            peak_rss_kib: rss,
            cpu,
        })
    }

    /// For a caller that reaped the child itself (a tracer's wait loop,
    /// harness/trace.rs): records how it ended, so that dropping it kills
    /// nothing, and collects its output.
    pub fn reaped(mut self, exit: Exit, peak_rss_kib: u64, cpu: Duration) -> Finished {
        self.exit = Some((exit, peak_rss_kib, cpu));
        forget_group(self.pid);
        Finished {
            exit,
            stdout: read_head(&mut self.stdout, STDOUT_LIMIT),
            stderr: read_tail(&mut self.stderr, STDERR_TAIL),
            wall: self.started.elapsed(),
            peak_rss_kib,
            cpu,
        }
    }

    /// Sends `sig` to the child's process group.
    pub fn signal(&self, sig: i32) {
        if self.exit.is_none() {
            // SAFETY: signalling our own group, which is not reaped yet.
            unsafe { libc::killpg(self.pid, sig) };
        }
    }

    /// What the child has written to stdout so far (at most
    /// [`STDOUT_LIMIT`] bytes), while it runs. Reads with pread, so the file
    /// offset the child writes at is left alone.
    pub fn stdout_so_far(&self) -> Vec<u8> {
        use std::os::unix::fs::FileExt;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 65536];
        loop {
            if buf.len() as u64 >= STDOUT_LIMIT {
                return buf;
            }
            match self.stdout.read_at(&mut chunk, buf.len() as u64) {
                Ok(0) | Err(_) => return buf,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Whether the child has exited (without waiting).
    pub fn has_exited(&mut self) -> bool {
        if self.exit.is_some() {
            return true;
        }
        // SAFETY: an all-zero siginfo is valid; WNOWAIT leaves the zombie for wait_event.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::waitid(libc::P_PID, self.pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) };
        r == 0 && unsafe { info.si_pid() } == self.pid
    }

    fn read_stderr(&mut self) -> String {
        String::from_utf8_lossy(&read_tail(&mut self.stderr, STDERR_TAIL)).into_owned()
    }

    /// Makes leaklab's group the terminal's foreground group again.
    fn take_terminal_back(&mut self) {
        if let Some(tty) = self.terminal.take() {
            // SAFETY: tcsetpgrp with SIGTTOU ignored for the call (leaklab is in the background now).
            unsafe {
                let old = libc::signal(libc::SIGTTOU, libc::SIG_IGN);
                libc::tcsetpgrp(tty, libc::getpgrp());
                libc::signal(libc::SIGTTOU, old);
            }
        }
    }

    /// Kills the whole group and reaps the child.
    fn kill(&mut self) {
        if self.exit.is_some() {
            return;
        }
        // SAFETY: signalling our own group; SIGCONT so stopped members can die.
        unsafe {
            libc::killpg(self.pid, libc::SIGKILL);
            libc::killpg(self.pid, libc::SIGCONT);
        }
        self.contain.kill_rest(self.pid);
        self.take_terminal_back();
        let status = reap_blocking(self.pid);
        self.exit = Some((status, 0, Duration::ZERO));
        forget_group(self.pid);
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The peak resident size of a reaped child, in KiB: the kernel's record
/// of its own address space (`taskstats`), else wait4's `ru_maxrss`, which
/// also counts what the child inherited from leaklab before its exec.
#[must_use]
pub fn peak_rss_kib(pid: i32, usage: &libc::rusage) -> u64 {
    crate::taskstats::peak_rss_kib(pid).unwrap_or(usage.ru_maxrss.max(0) as u64)
}

/// Runs a child to completion under its spec's timeout.
pub fn run(spec: &Spec) -> Result<Finished, Error> {
    Child::spawn(spec)?.finish()
}

fn reap_blocking(pid: i32) -> Exit {
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return if libc::WIFSIGNALED(status) { Exit::Signal(libc::WTERMSIG(status)) } else { Exit::Code(libc::WEXITSTATUS(status)) };
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Exit::Signal(libc::SIGKILL);
        }
    }
}

fn forget_group(pid: i32) {
    LIVE_GROUPS.lock().unwrap_or_else(|e| e.into_inner()).retain(|&p| p != pid);
}

/// The first `limit` bytes of a capture file.
fn read_head(f: &mut File, limit: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(0)).is_ok() {
        let _ = f.take(limit).read_to_end(&mut buf);
    }
    buf
}

/// The last `limit` bytes of a capture file, from the start of a line when
/// the cut falls inside one.
fn read_tail(f: &mut File, limit: u64) -> Vec<u8> {
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(limit);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_ok() {
        let _ = f.take(limit).read_to_end(&mut buf);
    }
    if start > 0 {
        if let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            buf.drain(..=nl);
        }
    }
    buf
}

/// Whether `fd` is a terminal whose foreground group is leaklab's.
fn is_foreground(fd: i32) -> bool {
    // SAFETY: isatty, tcgetpgrp and getpgrp only read.
    unsafe { libc::isatty(fd) == 1 && libc::tcgetpgrp(fd) == libc::getpgrp() }
}

/// SIGSEGV, SIGABRT, ... for messages.
#[must_use]
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGSTOP => "SIGSTOP",
        _ => return format!("signal {sig}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the kernel put the stack of a `cat /proc/self/stat` run by `spec`.
    fn start_of_stack(spec: Spec) -> String {
        let finished = run(&spec).expect("cat runs");
        let stat = String::from_utf8_lossy(&finished.stdout).into_owned();
        let after_name = stat.rsplit_once(')').expect("a stat line").1;
        // Field 28 of proc(5), the 26th after the name.
        after_name.split_whitespace().nth(25).expect("startstack").to_string()
    }

    #[test]
    fn a_fixed_layout_starts_the_stack_at_one_address_whatever_the_environment_and_arguments() {
        let timeout = Duration::from_secs(10);
        let short = Spec::new("/bin/cat", timeout).arg("/proc/self/stat").env("LEAKLAB_X", "1").layout(Layout::Fixed);
        let long = Spec::new("/bin/cat", timeout)
            .arg("/proc/self/../self/../self/stat")
            .env("LEAKLAB_X", "1".repeat(3000))
            .layout(Layout::Fixed);
        assert_eq!(start_of_stack(short.clone()), start_of_stack(long.clone()));
        // Randomized, as a control: the two would differ even without ASLR.
        let (a, b) = (start_of_stack(short.layout(Layout::Randomized)), start_of_stack(long.layout(Layout::Randomized)));
        assert_ne!(a, b);
    }
}
