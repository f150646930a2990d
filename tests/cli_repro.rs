//! Trials of the fix list's CLI rows (tests/repro/README.md, rows 5, 6, 7,
//! 8, 13, 14, 17): nobody left behind, nothing left on disk, a user's
//! program talks to the user, samples by name, the installed binary, clear
//! text. Each runs the `leaklab` binary as a user does, bounded by a timeout.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Completion, Failed, Trial};

use crate::repro;

const BIN: &str = env!("CARGO_BIN_EXE_leaklab");
/// Every process a trial's leaklab starts inherits this variable, with a value
/// unique to the trial: leftovers are found by it in /proc/PID/environ.
const MARK_VAR: &str = "LEAKLAB_TRIAL_MARK";
/// Makes leaklab contain runs by their environment marker alone, as where it may not make cgroups.
const NO_CGROUP: &str = "LEAKLAB_NO_CGROUP";

fn fresh_mark(what: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{what}-{}-{nanos}", std::process::id())
}

/// Live (not zombie) processes whose environment holds `MARK_VAR=mark`.
fn marked(mark: &str) -> Vec<String> {
    let needle = format!("{MARK_VAR}={mark}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(env) = std::fs::read(entry.path().join("environ")) else { continue };
        if !env.split(|&b| b == 0).any(|e| e == needle.as_bytes()) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let state = stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next()).unwrap_or("?").to_string();
        if state == "Z" || state == "X" {
            continue;
        }
        let cmd = String::from_utf8_lossy(&std::fs::read(entry.path().join("cmdline")).unwrap_or_default()).replace('\0', " ");
        found.push(format!("{pid} ({state}): {cmd}"));
    }
    found
}

/// Kills what a failed trial left, so that one failure does not pile up processes.
fn kill_marked(mark: &str) {
    for p in marked(mark) {
        if let Some(pid) = p.split_whitespace().next().and_then(|s| s.parse::<i32>().ok()) {
            // SAFETY: a plain signal to a process this trial started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Waits for a child with a bound; kills it when the bound runs out.
fn wait_bounded(mut child: std::process::Child, timeout: Duration, what: &str) -> Result<Output, Failed> {
    let pid = child.id() as i32;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let read = |pipe: Option<std::process::ChildStdout>| std::thread::spawn(move || read_all(pipe));
    let out_t = read(stdout);
    let err_t = std::thread::spawn(move || read_all(stderr));
    let until = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| Failed::from(e.to_string()))? {
            let stdout = out_t.join().unwrap_or_default();
            let stderr = err_t.join().unwrap_or_default();
            return Ok(Output { status, stdout, stderr });
        }
        if Instant::now() >= until {
            // SAFETY: a plain signal to the child we started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = child.wait();
            return Err(format!("{what} did not finish within {:.0} s", timeout.as_secs_f64()).into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn read_all<R: std::io::Read>(pipe: Option<R>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(mut p) = pipe {
        let _ = p.read_to_end(&mut buf);
    }
    buf
}

/// `leaklab --color=never ARGS` in `cwd`, marked, with `env`; stdin is /dev/null.
fn leaklab(cwd: &Path, args: &[&str], env: &[(&str, &str)], mark: &str, timeout: Duration) -> Result<Output, Failed> {
    let mut cmd = Command::new(BIN);
    cmd.arg("--color=never").args(args).current_dir(cwd).env(MARK_VAR, mark).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().map_err(|e| Failed::from(format!("cannot run leaklab: {e}")))?;
    wait_bounded(child, timeout, &format!("`leaklab {}`", args.join(" ")))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn show(out: &Output) -> String {
    format!("exit {:?}\nstdout: {}\nstderr: {}", out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// A fresh, empty directory under cargo's scratch directory for tests.
fn empty_dir(name: &str) -> Result<PathBuf, Failed> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli_repro").join(fresh_mark(name));
    std::fs::create_dir_all(&dir).map_err(|e| Failed::from(format!("{}: {e}", dir.display())))?;
    Ok(dir)
}

fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            out.push(e.path().strip_prefix(dir).unwrap_or(&e.path()).display().to_string());
            if e.path().is_dir() {
                todo.push(e.path());
            }
        }
    }
    out
}

fn ready(backend: &str) -> Option<String> {
    let b = leaklab::backend::by_name(backend).ok()?;
    match b.availability() {
        leaklab::backend::Availability::Ready => None,
        leaklab::backend::Availability::Unavailable { reason, .. } => Some(reason),
    }
}

/// An ignorable trial of `backend`, ignored (or failed, when the backend is
/// required by LEAKLAB_REQUIRE_BACKENDS) where it cannot run.
fn backend_trial(name: String, backend: &'static str, f: impl FnOnce() -> Result<(), Failed> + Send + 'static) -> Trial {
    Trial::ignorable_test(name, move || {
        if let Some(reason) = ready(backend) {
            if crate::required(backend) {
                return Err(format!("backend `{backend}` is required but cannot run: {reason}").into());
            }
            return Ok(Completion::ignored_with(reason));
        }
        f().map(|()| Completion::Completed)
    })
}

/// Row 5: a `setsid()` double-forked daemon is gone when leaklab exits.
fn daemon_gone(backend: &'static str, extra: &'static [&'static str], env: &[(&str, &str)]) -> Result<(), Failed> {
    let cwd = empty_dir("daemon")?;
    let prog = repro::program("misbehave")?;
    let mark = fresh_mark("daemon");
    let mut args = vec!["run", "--backend", backend, "--timeout", "20"];
    args.extend_from_slice(extra);
    let prog_s = prog.to_string_lossy().into_owned();
    args.extend(["--", prog_s.as_str(), "daemon"]);
    let out = leaklab(&cwd, &args, env, &mark, Duration::from_secs(60))?;
    let pid = std::fs::read_to_string(cwd.join("daemon.pid")).map_err(|e| Failed::from(format!("the daemon wrote no daemon.pid ({e}); {}", show(&out))))?;
    let left = marked(&mark);
    kill_marked(&mark);
    if !left.is_empty() {
        return Err(format!("the daemon (pid {}) outlived leaklab: {left:?}", pid.trim()).into());
    }
    Ok(())
}

/// Row 5: hangfork's setsid() child goes with the timeout.
fn hangfork_gone() -> Result<(), Failed> {
    let prog = repro::program("hangfork")?;
    let mark = fresh_mark("hangfork");
    let out = leaklab(repro::dir()?, &["run", "--backend", "hook", "--timeout", "2", "--", &prog.to_string_lossy()], &[], &mark, Duration::from_secs(60))?;
    let left = marked(&mark);
    kill_marked(&mark);
    if out.status.code() != Some(2) || !text(&out.stderr).contains("timed out after 2.0 s") {
        return Err(format!("expected the timeout error; {}", show(&out)).into());
    }
    if !left.is_empty() {
        return Err(format!("hangfork's setsid() child outlived leaklab: {left:?}").into());
    }
    Ok(())
}

/// Row 6: tests/repro/run/sigharness.py sends SIG to leaklab 1.5 s into
/// `misbehave tree` and lists the run's processes still alive after.
fn signal_leaves_nothing(sig: &'static str, backend: &'static str, extra: &'static [&'static str], env: &[(&str, &str)]) -> Result<(), Failed> {
    let harness = repro::source("run/sigharness.py");
    let prog = repro::program("misbehave")?;
    let mut cmd = Command::new("python3");
    cmd.envs(env.iter().copied());
    let child = cmd
        .arg(&harness)
        .args([sig, backend])
        .arg(&prog)
        .args(extra)
        .env("LEAKLAB", BIN)
        .current_dir(empty_dir("sig")?)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failed::from(format!("cannot run python3: {e}")))?;
    let out = wait_bounded(child, Duration::from_secs(90), "sigharness.py")?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| Failed::from(format!("sigharness.py printed no JSON ({e}); {}", show(&out))))?;
    if v["running_before"].as_u64().unwrap_or(0) < 2 {
        return Err(format!("the run had not started its processes when the signal came: {v}").into());
    }
    if v["leftovers"] != serde_json::json!({}) {
        return Err(format!("processes outlived leaklab after {sig}: {}", v["leftovers"]).into());
    }
    // SIGTERM is handled like Ctrl-C: the documented 130.
    if sig != "SIGKILL" && v["rc"] != 130 {
        return Err(format!("leaklab exited with {} after {sig}, expected 130", v["rc"]).into());
    }
    Ok(())
}

/// Waits until a process of the run is up (found by its mark), then a bit
/// more for the tool to make its files.
fn wait_started(mark: &str, settle: Duration) -> Result<(), Failed> {
    let until = Instant::now() + Duration::from_secs(30);
    while marked(mark).len() < 2 {
        if Instant::now() >= until {
            return Err("the run's target never started".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(settle);
    Ok(())
}

/// Row 7: with TMPDIR an empty directory, Ctrl-C (SIGINT) leaves it empty.
fn tmpdir_empty_after_sigint(backend: &'static str) -> Result<(), Failed> {
    let tmp = empty_dir("tmp")?;
    let prog = repro::program("hang")?;
    let mark = fresh_mark("int");
    let child = Command::new(BIN)
        .args(["--color=never", "run", "--backend", backend, "--"])
        .arg(&prog)
        .env("TMPDIR", &tmp)
        .env(MARK_VAR, &mark)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failed::from(e.to_string()))?;
    let pid = child.id() as i32;
    let started = wait_started(&mark, Duration::from_millis(1500));
    // SAFETY: a plain signal to the leaklab we started.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let out = wait_bounded(child, Duration::from_secs(30), "leaklab after SIGINT")?;
    started?;
    let left = listing(&tmp);
    kill_marked(&mark);
    if out.status.code() != Some(130) {
        return Err(format!("expected exit 130 after SIGINT; {}", show(&out)).into());
    }
    if !left.is_empty() {
        return Err(format!("TMPDIR is not empty after SIGINT: {left:?}").into());
    }
    Ok(())
}

/// Row 7: a run killed by `--timeout` leaves TMPDIR empty too.
fn tmpdir_empty_after_timeout(backend: &'static str) -> Result<(), Failed> {
    let tmp = empty_dir("tmp")?;
    let prog = repro::program("hang")?;
    let mark = fresh_mark("timeout");
    let tmp_s = tmp.to_string_lossy().into_owned();
    let out = leaklab(&tmp, &["run", "--backend", backend, "--timeout", "3", "--", &prog.to_string_lossy()], &[("TMPDIR", &tmp_s)], &mark, Duration::from_secs(60))?;
    let left = listing(&tmp);
    kill_marked(&mark);
    if out.status.code() != Some(2) || !text(&out.stderr).contains("timed out") {
        return Err(format!("expected the timeout error; {}", show(&out)).into());
    }
    if !left.is_empty() {
        return Err(format!("TMPDIR is not empty after the timeout: {left:?}").into());
    }
    Ok(())
}

/// Row 8: hello's own output reaches the user, before the report.
fn program_output_before_report() -> Result<(), Failed> {
    let mark = fresh_mark("hello");
    let out = leaklab(repro::dir()?, &["run", "--backend", "hook", "--", "./hello"], &[], &mark, Duration::from_secs(60))?;
    let stdout = text(&out.stdout);
    let (Some(own), Some(report)) = (stdout.find("hello stdout\n"), stdout.find("hook on hello")) else {
        return Err(format!("expected hello's line and then the report on stdout; {}", show(&out)).into());
    };
    if own > report || !text(&out.stderr).contains("hello stderr\n") || out.status.code() != Some(1) {
        return Err(format!("expected `hello stdout` before the report, `hello stderr` on stderr, exit 1; {}", show(&out)).into());
    }
    // --capture: the program's output is not shown.
    let out = leaklab(repro::dir()?, &["run", "--backend", "hook", "--capture", "--", "./hello"], &[], &mark, Duration::from_secs(60))?;
    if text(&out.stdout).contains("hello stdout") || text(&out.stderr).contains("hello stderr") || !text(&out.stdout).contains("hook on hello") {
        return Err(format!("--capture still shows the program's output; {}", show(&out)).into());
    }
    Ok(())
}

/// Row 8: the program's stdin is the user's.
fn program_reads_the_users_stdin() -> Result<(), Failed> {
    let mut child = Command::new(BIN)
        .args(["--color=never", "run", "--backend", "hook", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failed::from(e.to_string()))?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        stdin.write_all(b"typed by the user\n").map_err(|e| Failed::from(e.to_string()))?;
    }
    let out = wait_bounded(child, Duration::from_secs(60), "leaklab run -- cat")?;
    if !text(&out.stdout).starts_with("typed by the user\n") {
        return Err(format!("cat did not echo its stdin first; {}", show(&out)).into());
    }
    Ok(())
}

/// Row 8: leaklab's peak RSS (wait4's ru_maxrss, which for leaklab also
/// covers its reaped children) stays far below hugeout's 400 MB of output,
/// passed through and captured.
fn huge_output_bounded(capture: bool) -> Result<(), Failed> {
    let prog = repro::program("hugeout")?;
    let mut cmd = Command::new(BIN);
    cmd.args(["--color=never", "run", "--backend", "hook"]);
    if capture {
        cmd.arg("--capture");
    }
    let child = cmd.arg("--").arg(&prog).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().map_err(|e| Failed::from(e.to_string()))?;
    let pid = child.id() as i32;
    let until = Instant::now() + Duration::from_secs(180);
    let (status, usage) = loop {
        let mut status = 0;
        // SAFETY: an all-zero rusage is valid; wait4 on our own child.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break (status, usage);
        }
        if Instant::now() >= until {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return Err("leaklab on hugeout did not finish within 180 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::mem::forget(child);
    let peak_mib = usage.ru_maxrss as f64 / 1024.0;
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("leaklab on hugeout ended with wait status {status:#x}").into());
    }
    // The output is 400 MiB; holding it would take at least that.
    if peak_mib > 160.0 {
        return Err(format!("leaklab's peak RSS was {peak_mib:.0} MiB for 400 MiB of output").into());
    }
    Ok(())
}

/// Row 13: a sample's name where no such file is here nor in PATH.
fn run_by_sample_name() -> Result<(), Failed> {
    let cwd = empty_dir("byname")?;
    let mark = fresh_mark("byname");
    let out = leaklab(&cwd, &["run", "--backend", "hook", "--format", "json", "--", "strdup_loop", "3"], &[], &mark, Duration::from_secs(60))?;
    let stderr = text(&out.stderr);
    if !stderr.contains("`strdup_loop` is not in the current directory nor in PATH; running the catalogue's sample: ") {
        return Err(format!("leaklab did not say it took the sample; {}", show(&out)).into());
    }
    let stdout = text(&out.stdout);
    let json = stdout.rfind("\n{").map_or(&stdout[..], |i| &stdout[i + 1..]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).map_err(|e| Failed::from(format!("no JSON ({e}); {}", show(&out))))?;
    let leak = &v["report"]["leaks"][0];
    if out.status.code() != Some(1) || leak["bytes"] != 36 || leak["blocks"] != 3 {
        return Err(format!("expected strdup_loop's 3 × 12 bytes, exit 1; {}", show(&out)).into());
    }
    // A file of that name in the current directory comes first.
    std::fs::copy(repro::program("hello")?, cwd.join("strdup_loop")).map_err(|e| Failed::from(e.to_string()))?;
    let out = leaklab(&cwd, &["run", "--backend", "hook", "--", "strdup_loop"], &[], &mark, Duration::from_secs(60))?;
    if !text(&out.stdout).contains("hello stdout") || text(&out.stderr).contains("catalogue") {
        return Err(format!("./strdup_loop in the current directory was not the one run; {}", show(&out)).into());
    }
    Ok(())
}

fn watch_by_sample_name() -> Result<(), Failed> {
    let cwd = empty_dir("watch")?;
    let mark = fresh_mark("watch");
    let out = leaklab(&cwd, &["watch", "--duration", "3", "--interval", "0.2", "--format", "json", "--", "strdup_loop", "0"], &[], &mark, Duration::from_secs(60))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| Failed::from(format!("no JSON ({e}); {}", show(&out))))?;
    if !text(&out.stderr).contains("running the catalogue's sample") || v["summary"]["verdict"] != "growing" || out.status.code() != Some(1) {
        return Err(format!("expected the sample watched and growing, exit 1; {}", show(&out)).into());
    }
    Ok(())
}

/// Row 14: with its build directory gone, the binary unpacks the programs
/// it embeds into the cache directory, and runs from there.
fn installed_binary() -> Result<(), Failed> {
    let cache = empty_dir("cache")?;
    let cache_s = cache.to_string_lossy().into_owned();
    let mark = fresh_mark("installed");
    let env = [("XDG_CACHE_HOME", cache_s.as_str()), ("LEAKLAB_EMBEDDED", "1")];
    for round in ["first (unpacks)", "second (reuses)"] {
        let out = leaklab(&cache, &["run", "strdup_loop", "--backend", "hook", "--format", "json"], &env, &mark, Duration::from_secs(60))?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| Failed::from(format!("{round}: no JSON ({e}); {}", show(&out))))?;
        let leaks = v["report"]["leaks"].as_array().cloned().unwrap_or_default();
        let bytes: u64 = leaks.iter().filter_map(|l| l["bytes"].as_u64()).sum();
        let blocks: u64 = leaks.iter().filter_map(|l| l["blocks"].as_u64()).sum();
        if out.status.code() != Some(0) || bytes != 120 || blocks != 10 {
            return Err(format!("{round}: expected 120 bytes in 10 blocks, exit 0; {}", show(&out)).into());
        }
    }
    let unpacked: Vec<String> = listing(&cache.join("leaklab"));
    let exe = unpacked.iter().find(|p| p.ends_with("samples/plain/strdup_loop")).ok_or_else(|| Failed::from(format!("nothing unpacked in {}: {unpacked:?}", cache.display())))?;
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(cache.join("leaklab").join(exe)).map_err(|e| Failed::from(e.to_string()))?.permissions().mode();
    if mode & 0o111 == 0 || !unpacked.iter().any(|p| p.ends_with("libleaklab_hook.so")) || unpacked.iter().any(|p| p.contains(".unpack-")) {
        return Err(format!("the unpacked copy is incomplete or not executable: {unpacked:?}").into());
    }
    Ok(())
}

/// Row 17 a: the io error is said once.
fn error_cause_once() -> Result<(), Failed> {
    let me = std::process::id().to_string();
    let out = leaklab(Path::new("/"), &["dump", "--pid", &me, "-o", "/proc/nope/x.bin"], &[], &fresh_mark("dump"), Duration::from_secs(60))?;
    let stderr = text(&out.stderr);
    if out.status.code() != Some(2) || stderr.matches("No such file or directory").count() != 1 || !stderr.contains("/proc/nope/x.bin") {
        return Err(format!("expected the path and its error once; {}", show(&out)).into());
    }
    Ok(())
}

/// Row 17 b: a skip reason is said once, on stdout or stderr.
fn skip_reason_once() -> Result<(), Failed> {
    let out = leaklab(Path::new("/"), &["run", "strdup_loop", "--backend", "valgrind"], &[("PATH", "/nonexistent")], &fresh_mark("skip"), Duration::from_secs(60))?;
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    if out.status.code() != Some(3) || all.matches("valgrind is not installed").count() != 1 || all.matches("fix: apt-get install -y valgrind").count() != 1 {
        return Err(format!("expected the reason and the fix once, exit 3; {}", show(&out)).into());
    }
    Ok(())
}

/// Row 17 c: control bytes in the last words and in a program's name are shown escaped.
fn control_bytes_escaped() -> Result<(), Failed> {
    let mark = fresh_mark("noisy");
    let out = leaklab(repro::dir()?, &["run", "--backend", "hook", "--capture", "--", "./noisy", "1"], &[], &mark, Duration::from_secs(60))?;
    let stderr = text(&out.stderr);
    // noisy's stdout and stderr are 1 MiB of every byte value, ESC
    // sequences among them, then it crashes: the report (a crash is a
    // finding) names the signal, and no raw ESC byte reaches the terminal.
    if out.stdout.contains(&0x1b) || out.stderr.contains(&0x1b) || !text(&out.stdout).contains("SIGSEGV") {
        return Err(format!("raw ESC bytes reached the terminal, or the crash is not reported; exit {:?}, stderr: {:?}", out.status.code(), stderr.chars().take(400).collect::<String>()).into());
    }
    let dir = empty_dir("odd")?;
    let odd = dir.join("esc\x1b[31mRED\x1b[0m");
    std::fs::copy(repro::program("misbehave")?, &odd).map_err(|e| Failed::from(e.to_string()))?;
    let out = leaklab(&dir, &["run", "--backend", "hook", "--", &odd.to_string_lossy(), "exit77"], &[], &mark, Duration::from_secs(60))?;
    if out.stdout.contains(&0x1b) || out.stderr.contains(&0x1b) || !text(&out.stdout).contains("hook on esc\\x1b[31mRED\\x1b[0m") || !text(&out.stdout).contains(" blocks from malloc at misbehave.c:16") {
        return Err(format!("the program's name is not shown escaped, or its report is not the normal one; {}", show(&out)).into());
    }
    Ok(())
}

/// Row 17 d: a byte-order mark before the first rule is skipped.
fn bom_skipped() -> Result<(), Failed> {
    let supp = repro::source("supp/bom.supp");
    let out = leaklab(repro::dir()?, &["run", "--backend", "hook", "--suppressions", &supp.to_string_lossy(), "--", "./hello"], &[], &fresh_mark("bom"), Duration::from_secs(60))?;
    if out.status.code() != Some(0) || !text(&out.stdout).contains("no leaks found") {
        return Err(format!("expected `leak:main` applied: no leaks, exit 0; {}", show(&out)).into());
    }
    Ok(())
}

/// Row 17 d: an unprintable byte in a bad line is shown escaped.
fn bad_line_escaped() -> Result<(), Failed> {
    let supp = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cli/control_byte.supp");
    let out = leaklab(repro::dir()?, &["run", "--backend", "hook", "--suppressions", &supp.to_string_lossy(), "--", "./hello"], &[], &fresh_mark("badsupp"), Duration::from_secs(60))?;
    if out.status.code() != Some(2) || !text(&out.stderr).contains("control_byte.supp:2: expected `leak:PATTERN`, found `\\x01junk`") || out.stderr.contains(&1) {
        return Err(format!("expected the bad line with its byte escaped; {}", show(&out)).into());
    }
    Ok(())
}

/// Row 17 e: C functions named `a` and `b` (no debug info) keep their names.
fn one_letter_names() -> Result<(), Failed> {
    let (code, v, stderr) = repro::run_json("hook", &[], &["onechar"])?;
    let functions: Vec<String> = v["report"]["leaks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["stack"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f["function"].as_str().map(str::to_string))
        .collect();
    let has = |n: &str| functions.iter().any(|f| f == n);
    if code != Some(1) || !has("a") || !has("b") || !has("main") || has("signed char") || has("bool") {
        return Err(format!("expected frames a, b, main; got {functions:?} (exit {code:?}, stderr {stderr})").into());
    }
    Ok(())
}

/// Only `_Z` names are C++ manglings.
fn demangling() -> Result<(), Failed> {
    use leaklab::symbolize::demangle;
    let cases = [("a", "a"), ("b", "b"), ("_Z3fooi", "foo(int)"), ("main", "main"), ("_Znwm", "operator new(unsigned long)")];
    let mut wrong = Vec::new();
    for (name, want) in cases {
        if demangle(name) != want {
            wrong.push(format!("{name} gave {:?}, expected {want:?}", demangle(name)));
        }
    }
    if wrong.is_empty() { Ok(()) } else { Err(wrong.join("\n").into()) }
}

/// Row 7 of the README and `--help`: the exit codes of report::Outcome.
fn exit_codes_documented() -> Result<(), Failed> {
    use leaklab::report::Outcome;
    let out = leaklab(Path::new("/"), &["--help"], &[], &fresh_mark("help"), Duration::from_secs(30))?;
    let help = text(&out.stdout);
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).map_err(|e| Failed::from(e.to_string()))?;
    let mut missing = Vec::new();
    for (o, word) in [
        (Outcome::Clean, "clean"),
        (Outcome::Leaks, "leaks found"),
        (Outcome::HarnessError, "usage or harness error"),
        (Outcome::Unavailable, "backend unavailable"),
        (Outcome::MemoryErrors, "memory errors"),
        (Outcome::NotAnalysed, "not analysed"),
        (Outcome::Disagrees, "a sample's report disagrees"),
    ] {
        let code = o.code();
        if !help.lines().any(|l| l.trim_start().starts_with(&format!("{code}  {word}"))) {
            missing.push(format!("--help: `{code}  {word}`"));
        }
        if !readme.contains(&format!("{code} {word}")) {
            missing.push(format!("README.md: `{code} {word}`"));
        }
    }
    if missing.is_empty() { Ok(()) } else { Err(format!("exit codes not documented: {missing:?}").into()) }
}

pub fn trials() -> Vec<Trial> {
    let mut t = vec![
        backend_trial("cli::setsid_daemon_is_gone_after_a_hook_run".into(), "hook", || daemon_gone("hook", &[], &[])),
        backend_trial("cli::setsid_daemon_is_gone_after_a_valgrind_run".into(), "valgrind", || daemon_gone("valgrind", &[], &[])),
        backend_trial("cli::setsid_daemon_is_gone_after_a_ptrace_run".into(), "ptrace", || daemon_gone("ptrace", &["--after", "1"], &[])),
        // Without cgroups (LEAKLAB_NO_CGROUP), the run's marker finds the daemon.
        backend_trial("cli::setsid_daemon_is_gone_without_cgroups".into(), "hook", || daemon_gone("hook", &[], &[(NO_CGROUP, "1")])),
        backend_trial("cli::sigkill_to_leaklab_leaves_nothing_without_cgroups".into(), "hook", || signal_leaves_nothing("SIGKILL", "hook", &[], &[(NO_CGROUP, "1")])),
        backend_trial("cli::setsid_child_is_gone_after_a_timeout".into(), "hook", hangfork_gone),
    ];
    for (sig, backend, extra) in [
        ("SIGTERM", "hook", &[][..]),
        ("SIGKILL", "hook", &[][..]),
        ("SIGTERM", "valgrind", &[][..]),
        ("SIGKILL", "valgrind", &[][..]),
        ("SIGTERM", "lsan", &[][..]),
        ("SIGKILL", "ptrace", &["--after", "5"][..]),
    ] {
        let name = format!("cli::{}_to_leaklab_leaves_nothing_{backend}", sig.to_lowercase());
        t.push(backend_trial(name, backend, move || signal_leaves_nothing(sig, backend, extra, &[])));
    }
    for backend in ["hook", "valgrind"] {
        t.push(backend_trial(format!("cli::tmpdir_empty_after_sigint_{backend}"), backend, move || tmpdir_empty_after_sigint(backend)));
        t.push(backend_trial(format!("cli::tmpdir_empty_after_timeout_{backend}"), backend, move || tmpdir_empty_after_timeout(backend)));
    }
    t.extend([
        Trial::test("cli::program_output_comes_before_the_report", program_output_before_report),
        Trial::test("cli::program_reads_the_users_stdin", program_reads_the_users_stdin),
        Trial::test("cli::huge_output_passed_through_keeps_leaklab_small", || huge_output_bounded(false)),
        Trial::test("cli::huge_output_captured_keeps_leaklab_small", || huge_output_bounded(true)),
        Trial::test("cli::run_takes_a_sample_name", run_by_sample_name),
        Trial::test("cli::watch_takes_a_sample_name", watch_by_sample_name),
        Trial::test("cli::installed_binary_unpacks_its_programs", installed_binary),
        Trial::test("cli::error_cause_said_once", error_cause_once),
        Trial::test("cli::skip_reason_said_once", skip_reason_once),
        Trial::test("cli::control_bytes_shown_escaped", control_bytes_escaped),
        Trial::test("cli::suppressions_bom_skipped", bom_skipped),
        Trial::test("cli::suppressions_bad_line_shown_escaped", bad_line_escaped),
        Trial::test("cli::one_letter_c_functions_keep_their_names", one_letter_names),
        Trial::test("cli::only_z_names_are_demangled", demangling),
        Trial::test("cli::exit_codes_documented", exit_codes_documented),
    ]);
    t
}
