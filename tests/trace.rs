//! Trials of the traced run (harness/trace.rs) and of the ptrace backend on
//! top of it: programs that simply exit, crash, fork, exec, run threads,
//! and signals sent to a traced target. Programs of tests/repro go through
//! `leaklab run` as a user runs them; tests/data/trace holds programs of
//! these trials, built here and run through the library API.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use leaklab::process::{Exit, Spec};
use leaklab::report::End;
use leaklab::trace::{self, AfterThen, Ending, Moment, SelfStop, Stop, TraceConfig};
use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use crate::repro;

type Outcome = Result<(), Failed>;

fn check(ok: bool, what: impl FnOnce() -> String) -> Outcome {
    if ok {
        Ok(())
    } else {
        Err(what().into())
    }
}

/// `leaklab run --backend ptrace --format json [EXTRA] -- PROG ARGS`: exit code and report.
fn ptrace_run(extra: &[&str], prog: &[&str]) -> Result<(Option<i32>, Value), Failed> {
    let (code, value, stderr) = repro::run_json("ptrace", extra, prog)?;
    let report = value.get("report").cloned().ok_or_else(|| Failed::from(format!("no report in the JSON; stderr: {stderr}")))?;
    Ok((code, report))
}

fn leaks(report: &Value) -> Vec<Value> {
    report["leaks"].as_array().cloned().unwrap_or_default()
}

fn processes(report: &Value) -> Vec<Value> {
    report["processes"].as_array().cloned().unwrap_or_default()
}

fn content(leak: &Value) -> &str {
    leak["content"].as_str().unwrap_or("")
}

fn blocks_with(report: &Value, prefix: &str, pid: Option<u64>) -> u64 {
    leaks(report)
        .iter()
        .filter(|l| content(l).starts_with(prefix) && (pid.is_none() || l["pid"].as_u64() == pid))
        .map(|l| l["blocks"].as_u64().unwrap_or(0))
        .sum()
}

/// `./forks 5 _exit`: the parent's 777-byte block, and child k's k+1 blocks
/// (2000+k bytes each), each with the pid of its process.
fn forks_exit() -> Outcome {
    let (code, r) = ptrace_run(&[], &["forks", "5", "_exit"])?;
    check(code == Some(1), || format!("exit code {code:?}, expected 1 (leaks): {r}"))?;
    let procs = processes(&r);
    check(procs.len() == 6, || format!("expected 6 processes (the parent and 5 children), got {}: {r}", procs.len()))?;
    check(procs.iter().all(|p| p["analysed"] == true && p["end"]["how"] == "exited"), || format!("every process exits and is analysed: {r}"))?;
    let parent = procs.iter().find(|p| p["parent"].is_null()).ok_or("no parent process listed")?;
    let parent_pid = parent["pid"].as_u64();
    let p = leaks(&r).into_iter().find(|l| content(l).starts_with('P')).ok_or_else(|| format!("the parent's block is missing: {r}"))?;
    check(p["pid"].as_u64() == parent_pid && p["blocks"] == 1 && p["bytes"].as_u64().unwrap_or(0) >= 777, || format!("the parent's 777-byte block: {p}"))?;
    // The children in the order they were created are ranks 2..6 (process-ordinals).
    let mut children: Vec<&Value> = procs.iter().filter(|p| !p["parent"].is_null()).collect();
    children.sort_by_key(|c| c["pid"].as_u64());
    for (k, child) in children.iter().enumerate() {
        check(child["parent"].as_u64() == parent_pid, || format!("child {k}'s parent: {child}"))?;
        let n = blocks_with(&r, "C", child["pid"].as_u64());
        check(n == k as u64 + 1, || format!("child {k} leaked {} blocks, {n} reported: {r}", k + 1))?;
    }
    Ok(())
}

/// A program that crashes after leaking: its block, and the signal.
fn crash_like(prog: &'static str, size: u64, signal: &'static str) -> impl Fn() -> Outcome {
    move || {
        let (code, r) = ptrace_run(&[], &[prog])?;
        check(code == Some(4), || format!("exit code {code:?}, expected 4 (the program crashed): {r}"))?;
        let found = leaks(&r).iter().any(|l| l["blocks"] == 1 && (size..size + 24).contains(&l["bytes"].as_u64().unwrap_or(0)));
        check(found, || format!("the {size}-byte block is missing: {r}"))?;
        let procs = processes(&r);
        check(procs.len() == 1 && procs[0]["end"]["how"] == "killed" && procs[0]["end"]["signal"] == signal && procs[0]["analysed"] == true, || {
            format!("expected the program listed as killed by {signal}: {r}")
        })
    }
}

/// A program with no checkpoint that just exits is scanned at its exit.
fn plain_exit() -> Outcome {
    let (code, r) = ptrace_run(&[], &["hello"])?;
    check(code == Some(1), || format!("exit code {code:?}, expected 1: {r}"))?;
    check(r["status"]["state"] == "ok", || format!("status: {r}"))?;
    let l = leaks(&r);
    check(l.len() == 1 && content(&l[0]) == "leaked" && l[0]["kind"] == "definite", || format!("hello's 100-byte block: {r}"))
}

/// `--after 0` on a program that ends at once: never "clean".
fn after_zero() -> Outcome {
    for _ in 0..5 {
        let (code, r) = ptrace_run(&["--after", "0"], &["hello"])?;
        check(code != Some(0), || format!("a clean report: {r}"))?;
        let scanned = leaks(&r).iter().any(|l| content(l) == "leaked");
        check(scanned || r["status"]["state"] == "not_analysed" || code == Some(5), || format!("neither the leak nor `not analysed`: {r}"))?;
    }
    Ok(())
}

/// misbehave's forking modes: the setsid daemon and the background child
/// are still running when the program ends; they are scanned, listed as
/// running, and killed with the run.
fn misbehave_forks(mode: &'static str, expect: usize) -> impl Fn() -> Outcome {
    move || {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let prog = repro::program("misbehave")?;
        let out = repro::leaklab_in(
            dir.path(),
            &["run", "--format", "json", "--backend", "ptrace", "--", &prog.display().to_string(), mode],
            &[],
            Duration::from_secs(60),
        )?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(stdout.trim()).map_err(|e| format!("no JSON ({e}): {stdout}"))?;
        let r = &v["report"];
        let procs = processes(r);
        check(procs.len() == expect, || format!("expected {expect} processes: {r}"))?;
        check(procs.iter().any(|p| p["end"]["how"] == "running"), || format!("a process left running is listed so: {r}"))?;
        check(procs.iter().all(|p| p["analysed"] == true), || format!("every process is scanned: {r}"))?;
        // Each process of misbehave has its 3 blocks of 333 bytes (copies of the parent's heap).
        for p in &procs {
            let n = blocks_with(r, "M", p["pid"].as_u64());
            check(n == 3, || format!("process {} has {n} of its 3 blocks: {r}", p["pid"]))?;
        }
        let pidfile = dir.path().join(format!("{mode}.pid"));
        let pid: i32 = std::fs::read_to_string(&pidfile).map_err(|e| format!("{}: {e}", pidfile.display()))?.trim().parse().map_err(|e| format!("{e}"))?;
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z')));
        check(!alive, || format!("the {mode} process {pid} outlived the run"))
    }
}

/// An exec: the old image ends with `exec`, the new one is scanned at its exit.
fn execer() -> Outcome {
    let (_, r) = ptrace_run(&[], &["execer"])?;
    let procs = processes(&r);
    check(procs.len() == 2, || format!("two images: {r}"))?;
    check(procs[0]["end"]["how"] == "exec" && procs[1]["end"]["how"] == "exited" && procs[0]["pid"] == procs[1]["pid"], || format!("the first image execs, the second exits: {r}"))?;
    check(blocks_with(&r, "E", None) == 5, || format!("the new image's 5 blocks of 500 bytes: {r}"))
}

fn cc() -> &'static str {
    env!("LEAKLAB_CC")
}

/// Builds tests/data/trace/NAME.c once per run into cargo's scratch directory.
fn data_program(name: &str) -> Result<PathBuf, Failed> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/trace").join(format!("{name}.c"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("trace");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let out = dir.join(name);
    let fresh = out.metadata().and_then(|d| d.modified()).ok().zip(src.metadata().and_then(|m| m.modified()).ok()).is_some_and(|(d, s)| d >= s);
    if !fresh {
        // A unique name, then a rename: trials build in parallel.
        let tmp = dir.join(format!("{name}.{}", std::process::id()));
        let status = Command::new(cc())
            .args(["-g", "-O0", "-fno-omit-frame-pointer", "-pthread", "-o"])
            .arg(&tmp)
            .arg(&src)
            .status()
            .map_err(|e| e.to_string())?;
        check(status.success(), || format!("{} failed on {}", cc(), src.display()))?;
        std::fs::rename(&tmp, &out).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Realtime signals queued to a traced process, also while it and the
/// sender are stopped for inspections, all arrive.
fn realtime_signals() -> Outcome {
    let prog = data_program("rtsignals")?;
    let spec = Spec::new(&prog, Duration::from_secs(60)).arg("20000");
    let config = TraceConfig { after: Some((Duration::from_millis(150), AfterThen::Continue)), ..TraceConfig::default() };
    let mut moments = Vec::new();
    let run = trace::run_traced(&spec, &config, &mut |i| {
        // A real copy, so that the stops last as long as a scan's.
        let snap = i.snapshot()?;
        moments.push((i.pid, i.moment));
        Ok(snap.threads.len())
    })
    .map_err(|e| e.to_string())?;
    let out = String::from_utf8_lossy(&run.finished.stdout).into_owned();
    check(run.finished.exit == Exit::Code(0), || format!("{out} ({})", run.finished.exit.describe()))?;
    let afters = moments.iter().filter(|(_, m)| *m == Moment::After).count();
    let exits = moments.iter().filter(|(_, m)| matches!(m, Moment::Exit(_))).count();
    check(exits == 2, || format!("two processes inspected at exit: {moments:?}"))?;
    check(afters >= 1, || format!("inspected while the signals flowed: {moments:?} ({out})"))
}

/// How a threaded process ends: one Exit inspection at its real end, with
/// every thread's block, never at a lone thread's pthread_exit.
fn threads(mode: &'static str, ending: Ending) -> impl Fn() -> Outcome {
    move || {
        let prog = data_program("threads")?;
        let spec = Spec::new(&prog, Duration::from_secs(30)).arg(mode);
        let mut seen = Vec::new();
        let run = trace::run_traced(&spec, &TraceConfig::default(), &mut |i| {
            let snap = i.snapshot()?;
            let analysis = leaklab::scan::analyse(&snap, leaklab::scan::StopPoint::Anywhere);
            let contents: Vec<String> = analysis.leaks.iter().filter_map(|l| l.content.clone()).collect();
            seen.push((i.moment, contents));
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        check(seen.len() == 1, || format!("expected one inspection, got {seen:?}"))?;
        let (moment, contents) = &seen[0];
        check(*moment == Moment::Exit(ending), || format!("moment {moment:?}, expected the exit {ending:?}"))?;
        for block in ["main-block", "worker-block"] {
            check(contents.iter().any(|c| c == block), || format!("{block} not found at exit: {contents:?}"))?;
        }
        check(run.processes.len() == 1 && run.processes[0].end == ending.end(), || format!("processes: {:?}", run.processes))
    }
}

/// The event decisions on raw wait statuses and siginfo fields.
fn decisions() -> Outcome {
    // Realtime signals survive the raw status (nix's WaitStatus cannot hold them).
    let rt = libc::SIGRTMIN() + 3;
    check(trace::classify((rt << 8) | 0x7f) == Stop::Signal(rt), || "a realtime signal-delivery-stop".into())?;
    check(trace::classify((libc::PTRACE_EVENT_STOP << 16) | (libc::SIGSTOP << 8) | 0x7f) == Stop::GroupStop(libc::SIGSTOP), || "a group-stop".into())?;
    check(trace::classify((libc::PTRACE_EVENT_STOP << 16) | (libc::SIGTRAP << 8) | 0x7f) == Stop::Trap, || "an interrupt".into())?;
    check(trace::classify((libc::PTRACE_EVENT_EXIT << 16) | (libc::SIGTRAP << 8) | 0x7f) == Stop::ExitEvent, || "an exit stop".into())?;
    check(trace::classify(77 << 8) == Stop::Exited(77), || "an exit".into())?;
    check(trace::classify(libc::SIGSEGV | 0x80) == Stop::Killed(libc::SIGSEGV), || "a death with a core".into())?;
    check(Ending::from_status(3 << 8) == Ending::Exited(3) && Ending::from_status(libc::SIGABRT | 0x80) == Ending::Killed(libc::SIGABRT), || "endings".into())?;
    // A pthread_exit while others run is not the end; the last thread's is; exit_group and signals are.
    check(!trace::ends_process(libc::SYS_exit, 2) && trace::ends_process(libc::SYS_exit, 0), || "pthread_exit".into())?;
    check(trace::ends_process(libc::SYS_exit_group, 3) && trace::ends_process(-1, 3), || "exit_group, fatal signal".into())?;
    let cp = TraceConfig { checkpoint: true, requests: true, ..TraceConfig::default() };
    let none = TraceConfig { checkpoint: false, requests: false, ..TraceConfig::default() };
    check(trace::self_stop(&cp, 100, libc::SI_TKILL, 100, 0) == SelfStop::Checkpoint, || "raise(SIGSTOP) is the checkpoint".into())?;
    check(trace::self_stop(&cp, 100, libc::SI_QUEUE, 100, trace::INSPECT_VALUE) == SelfStop::Request, || "a request".into())?;
    check(trace::self_stop(&cp, 100, libc::SI_USER, 99, 0) == SelfStop::Deliver, || "a SIGSTOP from another process".into())?;
    check(trace::self_stop(&cp, 100, 0x80, 0, 0) == SelfStop::Deliver, || "a SIGSTOP from the kernel".into())?;
    check(trace::self_stop(&none, 100, libc::SI_TKILL, 100, 0) == SelfStop::Deliver, || "no checkpoint asked for".into())?;
    check(trace::self_stop(&none, 100, libc::SI_QUEUE, 100, trace::INSPECT_VALUE) == SelfStop::Deliver, || "no requests asked for".into())?;
    check(Ending::Killed(libc::SIGSEGV).end() == End::Killed { signal: "SIGSEGV".into() }, || "the signal's name".into())
}

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("trace::decisions", decisions),
        Trial::test("trace::forks_exit_children_with_pids", forks_exit),
        Trial::test("trace::crash_segv", crash_like("crash", 64, "SIGSEGV")),
        Trial::test("trace::crash_abort", crash_like("abort", 10, "SIGABRT")),
        Trial::test("trace::plain_exit_scanned", plain_exit),
        Trial::test("trace::after_zero_never_clean", after_zero),
        Trial::test("trace::misbehave_daemon", misbehave_forks("daemon", 3)),
        Trial::test("trace::misbehave_bgchild", misbehave_forks("bgchild", 2)),
        Trial::test("trace::exec_image", execer),
        Trial::test("trace::realtime_signals", realtime_signals),
        Trial::test("trace::thread_exit_then_main", threads("thread_exit", Ending::Exited(0))),
        Trial::test("trace::main_pthread_exit", threads("main_exit", Ending::Exited(0))),
        Trial::test("trace::group_exit_from_thread", threads("group_exit", Ending::Exited(3))),
        Trial::test("trace::thread_crash", threads("thread_crash", Ending::Killed(libc::SIGSEGV))),
    ]
}
