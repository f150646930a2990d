//! Trials of the fork snapshot (harness/scan/fork.rs): the fork and the copy
//! find the same leaks; a soak of scans of a live target that checks itself
//! (tests/repro/scan/forkcheck.c: signals counted, mask, errno, children,
//! restarted read and nanosleep) finds nothing changed; a seccomp'd target
//! gets the copy and the report says why; a sparse mapping costs what is
//! touched. Every target is a supervised child with a deadline.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use leaklab::process::{Child, Spec};
use leaklab::report::Kind;
use leaklab::scan::snapshot::{self, Method, Options, Want};
use leaklab::scan::{self, StopPoint};
use libtest_mimic::{Completion, Failed, Trial};

use crate::repro;
use crate::scan::status_field;

type Outcome = Result<Completion, Failed>;

const TARGET_LIFE: Duration = Duration::from_secs(300);
/// Scans in the soak (3000 were run once by hand; see the closing note).
const SOAK_SCANS: usize = 300;

fn trial(name: &str, f: fn() -> Outcome) -> Trial {
    Trial::ignorable_test(format!("scan::fork_{name}"), move || match leaklab::backend::by_name("ptrace").map(|b| b.availability()) {
        Ok(leaklab::backend::Availability::Ready) => f(),
        _ if crate::required("ptrace") => f(),
        _ => Ok(Completion::ignored_with("ptrace cannot run here")),
    })
}

pub fn trials() -> Vec<Trial> {
    vec![
        trial("and_copy_find_the_same_leaks_at_a_checkpoint", same_leaks_at_checkpoint),
        trial("and_copy_find_the_same_leaks_in_a_live_target", same_leaks_live),
        trial("soak_changes_nothing_in_the_target", soak),
        trial("refused_under_seccomp_falls_back_to_copy", seccomp),
        trial("sparse_mapping_costs_what_is_touched", sparse),
    ]
}

fn take(pid: i32, want: Want) -> Result<snapshot::Snapshot, Failed> {
    snapshot::take(pid, &Options { want }).map_err(|e| Failed::from(format!("snapshot ({want:?}): {e}")))
}

/// The leaks as comparable facts: kind, bytes, blocks, content.
fn facts(snap: &snapshot::Snapshot, stop: StopPoint) -> Vec<String> {
    let a = scan::analyse(snap, stop);
    let mut v: Vec<String> = a
        .leaks
        .iter()
        .filter(|l| l.kind != Kind::Reachable)
        .map(|l| format!("{:?} {} bytes in {} blocks {:?}", l.kind, l.bytes, l.blocks, l.content))
        .collect();
    v.sort();
    v
}

fn left_running(pid: i32) -> Result<(), Failed> {
    let state = status_field(pid, "State:");
    let tracer = status_field(pid, "TracerPid:");
    if state.starts_with('t') || tracer != "0" {
        return Err(format!("the target was left stopped or traced: State {state}, TracerPid {tracer}").into());
    }
    Ok(())
}

fn same_leaks_at_checkpoint() -> Outcome {
    let sample = leaklab::catalogue::find("lost_tree").map_err(|e| e.to_string())?;
    let exe = sample.executable("plain").map_err(|e| e.to_string())?;
    let mut child = Child::spawn(&Spec::new(exe, TARGET_LIFE).env("LEAKLAB_CHECKPOINT", "1")).map_err(|e| e.to_string())?;
    child.wait_stop().map_err(|e| e.to_string())?;
    let fork = take(child.pid(), Want::Fork)?;
    let copy = take(child.pid(), Want::Copy)?;
    if fork.method != Method::Fork {
        return Err(format!("the fork was not used on a plain target: {:?}", fork.method).into());
    }
    let (f, c) = (facts(&fork, StopPoint::Checkpoint), facts(&copy, StopPoint::Checkpoint));
    child.resume();
    drop(child);
    if f.is_empty() || f != c {
        return Err(format!("fork found {f:#?}\ncopy found {c:#?}").into());
    }
    Ok(Completion::Completed)
}

/// `forkcheck FIFO [seccomp]`, once READY, with the FIFO open for commands.
struct Target {
    child: Child,
    fifo: std::fs::File,
    _dir: leaklab::contain::Scratch,
}

fn forkcheck(seccomp: bool) -> Result<Target, Failed> {
    let dir = leaklab::contain::scratch().map_err(|e| e.to_string())?;
    let fifo: PathBuf = dir.path().join("commands");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: a NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(format!("mkfifo: {}", std::io::Error::last_os_error()).into());
    }
    let mut spec = Spec::new(repro::program("forkcheck")?, TARGET_LIFE).arg(&fifo);
    if seccomp {
        spec = spec.arg("seccomp");
    }
    let mut child = Child::spawn(&spec).map_err(|e| e.to_string())?;
    // Non-blocking open: ENXIO until the target has opened its end.
    let until = Instant::now() + Duration::from_secs(20);
    let file = loop {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(&fifo) {
            Ok(f) => break f,
            Err(_) if Instant::now() < until && !child.has_exited() => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("forkcheck did not open its FIFO: {e}: {}", String::from_utf8_lossy(&child.stdout_so_far())).into()),
        }
    };
    let mut t = Target { child, fifo: file, _dir: dir };
    t.wait_line("READY", Duration::from_secs(20))?;
    Ok(t)
}

impl Target {
    fn pid(&self) -> i32 {
        self.child.pid()
    }
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.child.stdout_so_far()).lines().map(str::to_string).collect()
    }
    /// Waits for a line starting with `prefix` after the lines seen so far.
    fn wait_line(&mut self, prefix: &str, within: Duration) -> Result<String, Failed> {
        let until = Instant::now() + within;
        loop {
            // Asked before the output is read: a target that prints its line
            // and exits in between is then still read in full.
            let exited = self.child.has_exited();
            if let Some(l) = self.lines().into_iter().rev().find(|l| l.starts_with(prefix) || l.starts_with("BAD")) {
                if l.starts_with("BAD") {
                    return Err(format!("the target says: {l}").into());
                }
                return Ok(l);
            }
            if exited || Instant::now() > until {
                return Err(format!("no {prefix:?} from the target; it wrote: {:?}", self.lines()).into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    /// Asks the target to check itself; waits for its answer to check `n`.
    fn check(&mut self, n: usize) -> Result<(), Failed> {
        self.fifo.write_all(b"c").map_err(|e| e.to_string())?;
        self.wait_line(&format!("OK {n}"), Duration::from_secs(20)).map(drop)
    }
    /// Ends the target; its counts line.
    fn finish(mut self) -> Result<String, Failed> {
        self.fifo.write_all(b"q").map_err(|e| e.to_string())?;
        self.wait_line("DONE", Duration::from_secs(20))
    }
}

fn same_leaks_live() -> Outcome {
    let mut t = forkcheck(false)?;
    let fork = take(t.pid(), Want::Fork)?;
    let copy = take(t.pid(), Want::Copy)?;
    t.check(1)?;
    t.finish()?;
    if fork.method != Method::Fork {
        return Err(format!("the fork was not used on a live target: {:?}", fork.method).into());
    }
    let (f, c) = (facts(&fork, StopPoint::Anywhere), facts(&copy, StopPoint::Anywhere));
    // malloc(48) is a chunk of 56 usable bytes.
    let lost = f.iter().any(|l| l.starts_with("Definite ") && l.contains(" in 3 blocks ") && l.contains("FFFF"));
    if !lost || f != c {
        return Err(format!("expected the 3 lost blocks of 'F' from both; fork found {f:#?}\ncopy found {c:#?}").into());
    }
    Ok(Completion::Completed)
}

/// The DONE line's counts: (usr2 got, sent, rt got, sent, wrong, lost).
fn counts(done: &str) -> Option<[i64; 6]> {
    let nums: Vec<i64> = done.split(|c: char| c == ' ' || c == '/').filter_map(|w| w.parse().ok()).collect();
    // checks, usr2 got/sent, rt got/sent, wrong, lost
    (nums.len() == 7).then(|| [nums[1], nums[2], nums[3], nums[4], nums[5], nums[6]])
}

fn soak() -> Outcome {
    let scans = std::env::var("LEAKLAB_FORK_SOAK").ok().and_then(|v| v.parse().ok()).unwrap_or(SOAK_SCANS);
    let mut t = forkcheck(false)?;
    let mut forks = 0;
    let mut refused: Vec<String> = Vec::new();
    for i in 1..=scans {
        let snap = take(t.pid(), Want::Fork)?;
        match &snap.method {
            Method::Fork => forks += 1,
            Method::Copy { fork_refused } => refused.push(fork_refused.clone().unwrap_or_default()),
        }
        if !snap.notes.is_empty() {
            return Err(format!("scan {i}: {:?}", snap.notes).into());
        }
        left_running(t.pid())?;
        t.check(i)?;
    }
    let done = t.finish()?;
    let Some([usr2, usr2_sent, rt, rt_sent, wrong, lost]) = counts(&done) else {
        return Err(format!("cannot read the counts in {done:?}").into());
    };
    // The sender may be waiting for the last one it sent.
    if lost != 0 || wrong != 0 || usr2 < usr2_sent - 1 || rt < rt_sent - 1 || usr2 == 0 || rt == 0 {
        return Err(format!("signals lost or wrong: {done}").into());
    }
    // Refusals happen only when a signal is being delivered to every thread at the stop.
    if forks * 2 < scans {
        return Err(format!("the fork ran in only {forks} of {scans} scans; refused: {refused:?}").into());
    }
    eprintln!("soak: {scans} scans, {forks} by fork; target: {done}");
    Ok(Completion::Completed)
}

fn seccomp() -> Outcome {
    let mut t = forkcheck(true)?;
    let (snap, analysis) =
        scan::scan_pid(t.pid(), StopPoint::Anywhere, &Options { want: Want::Fork }).map_err(|e| Failed::from(e.to_string()))?;
    left_running(t.pid())?;
    t.check(1)?;
    t.finish()?;
    let Method::Copy { fork_refused: Some(why) } = &snap.method else {
        return Err(format!("expected the copy with the fork refused, got {:?}", snap.method).into());
    };
    if !why.contains("seccomp") || !analysis.notes.iter().any(|n| n.starts_with("snapshot: copy") && n.contains("seccomp")) {
        return Err(format!("the refusal should name seccomp, in the notes: {why:?}, {:?}", analysis.notes).into());
    }
    Ok(Completion::Completed)
}

/// tests/repro/scan/sparse.c with 2 GiB read-write and 12 KiB touched:
/// `leaklab scan --pid` must not hold the 2 GiB.
fn sparse() -> Outcome {
    let mut child = Child::spawn(&Spec::new(repro::program("sparse")?, TARGET_LIFE).arg("2").arg("rw")).map_err(|e| e.to_string())?;
    let until = Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&child.stdout_so_far()).contains("READY") {
        if Instant::now() > until || child.has_exited() {
            return Err("sparse did not get READY".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for method in ["fork", "copy"] {
        let spec = Spec::new(env!("CARGO_BIN_EXE_leaklab"), Duration::from_secs(120))
            .args(["scan", "--pid", &child.pid().to_string(), "--snapshot", method, "--format", "json"]);
        let out = leaklab::process::run(&spec).map_err(|e| e.to_string())?;
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {}", out.stderr_text()))?;
        let lost_100 = report["leaks"].as_array().into_iter().flatten().any(|l| l["kind"] == "definite" && l["blocks"] == 10);
        if !lost_100 {
            return Err(format!("{method}: expected the 10 lost blocks of 100 bytes: {report}").into());
        }
        // 2 GiB of address space; the scanner itself is some tens of MiB.
        if out.peak_rss_kib > 256 << 10 {
            return Err(format!("{method}: the scanner's peak memory was {} MiB for 12 KiB touched", out.peak_rss_kib >> 10).into());
        }
    }
    Ok(Completion::Completed)
}
