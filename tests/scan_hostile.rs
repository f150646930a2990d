//! Trials of the scan on the programs of tests/repro/scan (README there, rows
//! 3, 4, 15, 19 and "Scans that did not walk the heap"): heaps it must walk
//! across pieces, heaps it cannot walk and must say so (never "no leaks"),
//! processes it cannot attach to and must name why, and signals sent to the
//! target while it is attached, which must all arrive. Every target is a
//! supervised child (own group, deadline, killed on drop); every scan is a
//! `leaklab` process with a deadline.

use crate::scan::status_field;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use leaklab::process::{Child, Spec};
use libtest_mimic::{Completion, Failed, Trial};
use serde_json::Value;

use crate::repro;

/// Bound on each target (they sleep forever otherwise).
const TARGET_LIFE: Duration = Duration::from_secs(180);
/// Bound on each `leaklab` run.
const LEAKLAB_LIFE: Duration = Duration::from_secs(60);

type Outcome = Result<Completion, Failed>;

fn ptrace_ready() -> Option<Completion> {
    match leaklab::backend::by_name("ptrace").map(|b| b.availability()) {
        Ok(leaklab::backend::Availability::Ready) => None,
        _ if crate::required("ptrace") => None,
        _ => Some(Completion::ignored_with("ptrace cannot run here")),
    }
}

/// A trial that needs ptrace rights.
fn trial(name: &str, f: fn() -> Outcome) -> Trial {
    Trial::ignorable_test(format!("scan::{name}"), move || match ptrace_ready() {
        Some(skip) => Ok(skip),
        None => f(),
    })
}

/// Polls `done` every 10 ms until it holds or `within` passes.
fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) -> Result<(), Failed> {
    let until = Instant::now() + within;
    while !done() {
        if Instant::now() > until {
            return Err(format!("timed out waiting for {what}").into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn start(spec: Spec) -> Result<Child, Failed> {
    Child::spawn(&spec).map_err(|e| Failed::from(e.to_string()))
}

/// `hostile MODE` (optionally under LD_PRELOAD), once it has printed READY.
fn hostile(mode: &str, preload: Option<&Path>) -> Result<Child, Failed> {
    let mut spec = Spec::new(repro::program("hostile")?, TARGET_LIFE).arg(mode);
    if let Some(lib) = preload {
        spec = spec.env("LD_PRELOAD", lib);
    }
    let mut child = start(spec)?;
    wait_until("hostile to print READY", Duration::from_secs(20), || {
        String::from_utf8_lossy(&child.stdout_so_far()).contains("READY") || child.has_exited()
    })?;
    if child.has_exited() {
        return Err(format!("hostile {mode} exited early: {}", String::from_utf8_lossy(&child.stdout_so_far())).into());
    }
    Ok(child)
}

fn stat_state(pid: i32, tid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().next()?.chars().next()
}

fn threads(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, Iterator::count)
}

/// `small MODE` once it has made its 10 leaks: the main thread is asleep in
/// pause() (mode 0), has exited (1), or the churn has started (2).
fn small(mode: &str) -> Result<Child, Failed> {
    let child = start(Spec::new(repro::program("small")?, TARGET_LIFE).arg(mode))?;
    let pid = child.pid();
    let comm_is_small = || std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "small");
    wait_until("small to set up", Duration::from_secs(20), || {
        comm_is_small()
            && match mode {
                "1" => stat_state(pid, pid) == Some('Z') && threads(pid) >= 2,
                "2" => threads(pid) >= 5,
                _ => stat_state(pid, pid) == Some('S'),
            }
    })?;
    Ok(child)
}

/// `leaklab scan --pid PID --format json`: exit code, report, stderr.
fn scan_json(pid: i32) -> Result<(Option<i32>, Value, String), Failed> {
    let out = repro::leaklab_in(repro::dir()?, &["scan", "--pid", &pid.to_string(), "--format", "json"], &[], LEAKLAB_LIFE)?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    Ok((out.status.code(), report, stderr))
}

/// `leaklab scan --pid PID` (human): exit code and stderr.
fn scan_human(pid: i32) -> Result<(Option<i32>, String), Failed> {
    let out = repro::leaklab_in(repro::dir()?, &["scan", "--pid", &pid.to_string()], &[], LEAKLAB_LIFE)?;
    Ok((out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned()))
}


/// The scan let every thread go: none stopped, none traced.
fn left_running(pid: i32) -> Result<(), Failed> {
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).map_err(|e| e.to_string())?.flatten() {
        let tid = entry.file_name().to_string_lossy().into_owned();
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        let field = |k: &str| status.lines().find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string())).unwrap_or_default();
        let (state, tracer) = (field("State:"), field("TracerPid:"));
        if state.starts_with('T') || state.starts_with('t') || (!tracer.is_empty() && tracer != "0") {
            return Err(format!("thread {tid} of {pid} was left stopped or traced: State {state}, TracerPid {tracer}").into());
        }
    }
    Ok(())
}

/// The control leaks every `hostile` mode and `small` make: 10 definitely
/// lost blocks of 100 bytes (104 usable), filled with 'L'.
fn has_control_leaks(report: &Value) -> bool {
    report["leaks"].as_array().into_iter().flatten().any(|l| {
        l["kind"] == "definite" && l["blocks"] == 10 && l["content"].as_str().is_some_and(|c| c.starts_with("LLLL")) && l["bytes"].as_u64().is_some_and(|b| b / 10 >= 100)
    })
}

/// A scan that walked the heap and found the control leaks: exit 1, status ok.
fn expect_control_leaks(child: &Child) -> Outcome {
    let (code, report, stderr) = scan_json(child.pid())?;
    left_running(child.pid())?;
    if code != Some(1) || report["status"]["state"] != "ok" || !has_control_leaks(&report) {
        return Err(format!("expected exit 1, status ok and 10 definite 'L' blocks; got {code:?}: {report}\n{stderr}").into());
    }
    Ok(Completion::Completed)
}

/// A scan that could not walk the heap: exit 5, status not-analysed with a
/// reason naming `cause`, and no leak list.
fn expect_not_analysed(child: &Child, cause: &[&str]) -> Outcome {
    let (code, report, stderr) = scan_json(child.pid())?;
    left_running(child.pid())?;
    let reason = report["status"]["reason"].as_str().unwrap_or_default();
    let leaks = report["leaks"].as_array().map_or(0, Vec::len);
    if code != Some(5) || report["status"]["state"] != "not-analysed" || !cause.iter().all(|c| reason.contains(c)) || leaks != 0 {
        return Err(format!("expected exit 5 and not-analysed because {cause:?}; got {code:?}: {report}\n{stderr}").into());
    }
    Ok(Completion::Completed)
}

fn holes() -> Outcome {
    expect_control_leaks(&hostile("holes", None)?)
}

fn ro_heap() -> Outcome {
    expect_control_leaks(&hostile("ro-heap", None)?)
}

fn ro_heap_run_after() -> Outcome {
    let (code, v, stderr) = repro::run_json("ptrace", &["--after", "1"], &["hostile", "ro-heap"])?;
    if code != Some(1) || !has_control_leaks(&v["report"]) {
        return Err(format!("expected exit 1 and the 10 control leaks; got {code:?}: {v}\n{stderr}").into());
    }
    Ok(Completion::Completed)
}

fn first_size() -> Outcome {
    expect_not_analysed(&hostile("first-size", None)?, &["impossible size 0x4141414141414141"])
}

/// A malloc from a shared library of the system, preloaded.
fn system_preload(name: &str) -> Outcome {
    let lib = ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"].iter().map(|d| Path::new(d).join(name)).find(|p| p.exists());
    let Some(lib) = lib else {
        let why = format!("{name} is not installed (leaklab setup installs it for the ptrace backend)");
        return if crate::required("ptrace") { Err(why.into()) } else { Ok(Completion::ignored_with(why)) };
    };
    expect_not_analysed(&hostile("leaks", Some(&lib))?, &["does not use glibc's malloc", "preloaded"])
}

fn jemalloc() -> Outcome {
    system_preload("libjemalloc.so.2")
}

fn tcmalloc() -> Outcome {
    system_preload("libtcmalloc_minimal.so.4")
}

fn bump() -> Outcome {
    expect_not_analysed(&hostile("leaks", Some(&repro::program("libbump.so")?))?, &["does not use glibc's malloc", "libbump.so (preloaded"])
}

fn statically_linked() -> Outcome {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let exe = dir.path().join("hostile-static");
    let built = std::process::Command::new(env!("LEAKLAB_CC"))
        .args(["-static", "-g", "-O0", "-o"])
        .arg(&exe)
        .arg(repro::source("scan/hostile.c"))
        .output()
        .map_err(|e| e.to_string())?;
    if !built.status.success() {
        return Err(format!("gcc -static failed (libc6-dev has libc.a): {}", String::from_utf8_lossy(&built.stderr)).into());
    }
    let child = start(Spec::new(&exe, TARGET_LIFE).arg("leaks"))?;
    wait_until("READY", Duration::from_secs(20), || String::from_utf8_lossy(&child.stdout_so_far()).contains("READY"))?;
    expect_not_analysed(&child, &["statically linked"])
}

/// A process already traced by a thread of this test process (named
/// `tracer`): the scan names it. The thread's exit detaches it.
fn already_traced() -> Outcome {
    let child = small("0")?;
    let pid = child.pid();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let tracer = std::thread::Builder::new()
        .name("tracer".into())
        .spawn(move || {
            // SAFETY: PTRACE_SEIZE takes no pointers; the tracee is our own child.
            let r = unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0usize, 0usize) };
            // SAFETY: gettid has no preconditions.
            let _ = ready_tx.send((r, unsafe { libc::gettid() }));
            // The kernel detaches a tracer thread's tracees when it exits.
            let _ = done_rx.recv_timeout(LEAKLAB_LIFE);
        })
        .map_err(|e| e.to_string())?;
    let (r, tid) = ready_rx.recv_timeout(Duration::from_secs(10)).map_err(|e| e.to_string())?;
    if r != 0 {
        return Err(format!("the test could not trace {pid} itself: {}", std::io::Error::last_os_error()).into());
    }
    let scanned = scan_human(pid);
    drop(done_tx);
    let _ = tracer.join();
    let (code, stderr) = scanned?;
    let want = format!("cannot inspect process {pid}: it is already traced by pid {tid} (tracer)");
    if code != Some(2) || !stderr.contains(&want) {
        return Err(format!("expected exit 2 and \"{want}\"; got {code:?}: {stderr}").into());
    }
    wait_until("the tracer to detach", Duration::from_secs(10), || status_field(pid, "TracerPid:") == "0")?;
    left_running(pid)?;
    Ok(Completion::Completed)
}

fn main_thread_exited() -> Outcome {
    let child = small("1")?;
    let (code, report, stderr) = scan_json(child.pid())?;
    left_running(child.pid())?;
    let noted = report["notes"].as_array().into_iter().flatten().any(|n| n.as_str().is_some_and(|n| n.contains("main thread") && n.contains("has exited")));
    if code != Some(1) || !has_control_leaks(&report) || !noted {
        return Err(format!("expected exit 1, the 10 control leaks and a note that the main thread exited; got {code:?}: {report}\n{stderr}").into());
    }
    Ok(Completion::Completed)
}

/// Threads created and joined without pause: every one of 100 scans works.
fn thread_churn() -> Outcome {
    let child = small("2")?;
    let mut failures = Vec::new();
    for i in 0..100 {
        let (code, report, stderr) = scan_json(child.pid())?;
        if code != Some(1) || !has_control_leaks(&report) {
            failures.push(format!("scan {i}: exit {code:?}: {}", stderr.trim()));
        }
    }
    left_running(child.pid())?;
    if !failures.is_empty() {
        return Err(format!("{} of 100 scans failed:\n{}", failures.len(), failures.join("\n")).into());
    }
    Ok(Completion::Completed)
}

/// A child of `sh` that exited and is never reaped (sh has exec'd `sleep`).
fn zombie() -> Outcome {
    let parent = start(Spec::new("sh", TARGET_LIFE).args(["-c", "true & exec sleep 120"]))?;
    let ppid = parent.pid();
    let mut zombie = 0;
    wait_until("a zombie child", Duration::from_secs(20), || {
        let children = std::fs::read_to_string(format!("/proc/{ppid}/task/{ppid}/children")).unwrap_or_default();
        let comm = std::fs::read_to_string(format!("/proc/{ppid}/comm")).unwrap_or_default();
        zombie = children.split_whitespace().filter_map(|c| c.parse().ok()).find(|&c| stat_state(c, c) == Some('Z')).unwrap_or(0);
        comm.trim() == "sleep" && zombie != 0
    })?;
    let (code, stderr) = scan_human(zombie)?;
    if code != Some(2) || !stderr.contains(&format!("cannot inspect process {zombie}: it is a zombie")) {
        return Err(format!("expected exit 2 and \"it is a zombie\"; got {code:?}: {stderr}").into());
    }
    Ok(Completion::Completed)
}

/// A kernel thread (kthreadd is pid 2 outside a pid namespace).
fn kernel_thread() -> Outcome {
    let kthread = std::fs::read_dir("/proc")
        .map_err(|e| e.to_string())?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|&p| status_field(p, "Kthread:") == "1");
    let Some(pid) = kthread else { return Ok(Completion::ignored_with("no kernel thread is visible in this pid namespace")) };
    let (code, stderr) = scan_human(pid)?;
    if code != Some(2) || !stderr.contains(&format!("cannot inspect process {pid}: it is a kernel thread")) {
        return Err(format!("expected exit 2 and \"it is a kernel thread\"; got {code:?}: {stderr}").into());
    }
    Ok(Completion::Completed)
}

/// `dump --pid` of a heap that mprotect split: every piece, in address
/// order, byte for byte what the process holds there.
fn dump_split_heap() -> Outcome {
    let child = hostile("ro-heap", None)?;
    let pid = child.pid();
    let maps = leaklab::maps::read(pid).map_err(|e| e.to_string())?;
    let pieces: Vec<_> = maps.iter().filter(|m| m.pseudo() == Some("[heap]")).collect();
    if pieces.len() < 2 {
        return Err(format!("ro-heap should split [heap]; maps has {} piece(s)", pieces.len()).into());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("ro.bin");
    let out = repro::leaklab_in(repro::dir()?, &["dump", "--pid", &pid.to_string(), "-o", file.to_str().ok_or("path")?, "--lines", "4"], &[], LEAKLAB_LIFE)?;
    left_running(pid)?;
    let dumped = std::fs::read(&file).map_err(|e| format!("{}: {e}: {}", file.display(), String::from_utf8_lossy(&out.stderr)))?;
    let mut expected = Vec::new();
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).map_err(|e| e.to_string())?;
    for p in &pieces {
        let mut buf = vec![0u8; p.len() as usize];
        std::os::unix::fs::FileExt::read_exact_at(&mem, &mut buf, p.start).map_err(|e| e.to_string())?;
        expected.extend(buf);
    }
    let view = String::from_utf8_lossy(&out.stdout);
    let named = (1..=pieces.len()).all(|i| view.contains(&format!("[heap] piece {i} of {}", pieces.len())));
    if !out.status.success() || dumped != expected || !named || !view.contains(&pieces[1].perms) {
        return Err(format!(
            "expected {} bytes ({} pieces, each named in the view); the file has {} bytes (equal: {}); view:\n{view}",
            expected.len(),
            pieces.len(),
            dumped.len(),
            dumped == expected
        )
        .into());
    }
    Ok(Completion::Completed)
}

/// A glibc program whose heap the scan walks is still analysed (the
/// not-analysed verdicts must not reach it).
fn plain_glibc_is_analysed() -> Outcome {
    expect_control_leaks(&hostile("leaks", None)?)
}

/// The little-endian u64 counter `index` of a target's counter file.
fn counter(file: &Path, index: u64) -> u64 {
    let Ok(f) = std::fs::File::open(file) else { return 0 };
    let mut b = [0u8; 8];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut b, index * 8).map_or(0, |()| u64::from_le_bytes(b))
}

/// Scans `pid` again and again while `busy` holds (and at least `min`
/// times, within LEAKLAB_LIFE); every scan must succeed (exit 0 or 1).
fn soak(pid: i32, min: usize, mut busy: impl FnMut() -> bool) -> Result<(usize, Vec<String>), Failed> {
    let bound = Instant::now() + LEAKLAB_LIFE;
    let (mut scans, mut failures) = (0, Vec::new());
    while (busy() || scans < min) && Instant::now() < bound {
        let (code, report, stderr) = scan_json(pid)?;
        scans += 1;
        if !matches!(code, Some(0 | 1)) {
            failures.push(format!("scan {scans}: exit {code:?}: {} {} {}", stderr.trim(), report["status"], report["notes"]));
        }
    }
    left_running(pid)?;
    Ok((scans, failures))
}

/// How long signals flow while the target is scanned. A signal was lost in
/// about one scan in thirty before the fix (SIGUSR2 ping-pong, one scan
/// in eleven failed with EINVAL under SIGRTMIN): long enough for dozens of scans.
const SOAK: Duration = Duration::from_secs(12);
/// Senders of SIGRTMIN at once: each queues one every 50 µs.
const SENDERS: usize = 3;

/// pingtarget counts SIGUSR2 in its handler; a thread here ping-pongs them
/// (send one, wait up to 2 s for the count) while leaklab scans the target.
fn sigusr2_ping() -> Outcome {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ctr: PathBuf = dir.path().join("ping.ctr");
    let child = start(Spec::new(repro::program("pingtarget")?, TARGET_LIFE).arg(&ctr))?;
    let pid = child.pid();
    wait_until("pingtarget's heartbeat", Duration::from_secs(20), || counter(&ctr, 0) > 0)?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pinger = {
        let (ctr, stop) = (ctr.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut sent, mut lost) = (0u64, 0u64);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let before = counter(&ctr, 1);
                // SAFETY: a plain signal to our own child.
                unsafe { libc::kill(pid, libc::SIGUSR2) };
                sent += 1;
                let until = Instant::now() + Duration::from_secs(2);
                while counter(&ctr, 1) == before && Instant::now() < until {
                    std::hint::spin_loop();
                }
                lost += u64::from(counter(&ctr, 1) == before);
            }
            (sent, lost)
        })
    };
    let until = Instant::now() + SOAK;
    let soaked = soak(pid, 5, || Instant::now() < until);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, lost) = pinger.join().map_err(|_| "the pinger panicked")?;
    let (scans, failures) = soaked?;
    if lost != 0 || !failures.is_empty() {
        return Err(format!("{scans} scans, {} failed; SIGUSR2 sent {sent}, lost {lost}\n{}", failures.len(), failures.join("\n")).into());
    }
    Ok(Completion::Completed)
}

/// target's main thread handles SIGRTMIN (queued, never merged) while
/// `sender`s queue them: every signal arrives, every scan works.
fn sigrtmin_queue() -> Outcome {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ctr: PathBuf = dir.path().join("sig.ctr");
    let child = start(Spec::new(repro::program("target")?, TARGET_LIFE).arg(&ctr))?;
    let pid = child.pid();
    wait_until("target's heartbeat", Duration::from_secs(20), || counter(&ctr, 8) > 0)?;
    let secs = SOAK.as_secs_f64().to_string();
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        senders.push(start(Spec::new(repro::program("sender")?, SOAK * 4).args([pid.to_string(), secs.clone()]))?);
    }
    let soaked = soak(pid, 4, || !senders.iter_mut().all(Child::has_exited));
    let mut sent = 0u64;
    for sender in senders {
        let out = sender.finish().map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        sent += text.split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok()).ok_or_else(|| format!("sender printed {text:?}"))?;
    }
    // Queued signals are all delivered once the target runs; give it a moment.
    let _ = wait_until("every queued SIGRTMIN to be handled", Duration::from_secs(10), || counter(&ctr, 34) >= sent);
    let received = counter(&ctr, 34);
    let (scans, failures) = soaked?;
    if received != sent || !failures.is_empty() {
        return Err(format!("{scans} scans, {} failed; SIGRTMIN sent {sent}, received {received}\n{}", failures.len(), failures.join("\n")).into());
    }
    Ok(Completion::Completed)
}

/// Row 19: a scan's PTRACE_INTERRUPT makes epoll_wait and sigtimedwait
/// return EINTR in the target (the kernel does not restart them); ptrace
/// cannot avoid it, so `scan --help` and the book's chapter say so.
fn eintr_is_documented() -> Result<(), Failed> {
    let out = repro::leaklab_in(repro::dir()?, &["scan", "--help"], &[], LEAKLAB_LIFE)?;
    let help = String::from_utf8_lossy(&out.stdout);
    let chapter = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/ptrace.md")).map_err(|e| e.to_string())?;
    let says = |text: &str| ["epoll_wait", "sigtimedwait", "EINTR"].iter().all(|w| text.contains(w));
    if !out.status.success() || !says(&help) || !says(&chapter) {
        return Err(format!("`scan --help` (and book/src/ptrace.md) must say that epoll_wait and sigtimedwait can return EINTR; help:\n{help}").into());
    }
    Ok(())
}

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("scan::eintr_is_documented", eintr_is_documented),
        trial("hostile_holes_walks_every_heap_piece", holes),
        trial("hostile_ro_heap_walks_every_heap_piece", ro_heap),
        trial("run_after_walks_a_split_heap", ro_heap_run_after),
        trial("hostile_first_size_is_not_analysed", first_size),
        trial("jemalloc_preloaded_is_not_analysed", jemalloc),
        trial("tcmalloc_preloaded_is_not_analysed", tcmalloc),
        trial("own_allocator_preloaded_is_not_analysed", bump),
        trial("statically_linked_is_not_analysed", statically_linked),
        trial("glibc_heap_is_still_analysed", plain_glibc_is_analysed),
        trial("already_traced_names_the_tracer", already_traced),
        trial("exited_main_thread_is_skipped", main_thread_exited),
        trial("thread_churn_100_scans_succeed", thread_churn),
        trial("zombie_is_named", zombie),
        trial("kernel_thread_is_named", kernel_thread),
        trial("dump_writes_every_heap_piece", dump_split_heap),
        trial("no_sigusr2_lost_while_scanning", sigusr2_ping),
        trial("no_sigrtmin_lost_while_scanning", sigrtmin_queue),
    ]
}
