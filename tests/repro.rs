#![allow(dead_code)] // helpers for the trials of several modules
//! The reproduction programs of tests/repro/ (README there: what leaklab
//! must do with each), built once per test run into cargo's scratch
//! directory for integration tests, and a way to run `leaklab` on them the
//! way a user does (`leaklab run --backend B -- ./prog ARGS`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use libtest_mimic::Failed;

/// The flags of tests/repro/build.sh: as a user builds a program to debug it.
const FLAGS: &[&str] = &["-g", "-O0", "-fno-omit-frame-pointer", "-pthread"];

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/repro")
}

/// Where the programs are built (once per test process).
pub fn dir() -> Result<&'static Path, Failed> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(build).as_deref().map_err(|e| Failed::from(e.clone()))
}

/// The built program `name` (`crash`, `forks`, `libbump.so`, ...).
pub fn program(name: &str) -> Result<PathBuf, Failed> {
    let p = dir()?.join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!("tests/repro has no program `{name}`").into())
    }
}

/// A file of tests/repro/ itself (`supp/main.supp`, `scan/soak.py`).
#[must_use]
pub fn source(rel: &str) -> PathBuf {
    source_dir().join(rel)
}

fn compile(compiler: &str, args: &[&str], src: &Path, out: &Path) -> Result<(), String> {
    let status = Command::new(compiler)
        .args(args)
        .arg("-o")
        .arg(out)
        .arg(src)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run {compiler}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{compiler} failed on {}", src.display()))
    }
}

fn build() -> Result<PathBuf, String> {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("repro");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let (cc, cxx) = (env!("LEAKLAB_CC"), env!("LEAKLAB_CXX"));
    let mut jobs: Vec<(String, Vec<&str>, PathBuf, PathBuf)> = Vec::new();
    for sub in ["run", "scan"] {
        let entries = std::fs::read_dir(source_dir().join(sub)).map_err(|e| e.to_string())?;
        for entry in entries.flatten() {
            let src = entry.path();
            let (Some(stem), Some(ext)) = (src.file_stem().and_then(|s| s.to_str()), src.extension().and_then(|s| s.to_str())) else { continue };
            let stem = stem.to_string();
            match (stem.as_str(), ext) {
                ("bump", "c") => jobs.push((cc.into(), [FLAGS, &["-shared", "-fPIC"]].concat(), src.clone(), out.join("libbump.so"))),
                ("onechar", "c") => jobs.push((cc.into(), vec!["-O0", "-fno-omit-frame-pointer"], src.clone(), out.join(&stem))),
                ("target" | "sender", "c") => jobs.push((cc.into(), vec!["-g", "-O1", "-fno-omit-frame-pointer", "-pthread"], src.clone(), out.join(&stem))),
                ("apis", "c") => {
                    jobs.push((cc.into(), FLAGS.to_vec(), src.clone(), out.join(&stem)));
                    jobs.push((cc.into(), [FLAGS, &["-DNO_PVALLOC"]].concat(), src.clone(), out.join("apis_nopv")));
                }
                (_, "c") => jobs.push((cc.into(), FLAGS.to_vec(), src.clone(), out.join(&stem))),
                (_, "cpp") => jobs.push((cxx.into(), FLAGS.to_vec(), src.clone(), out.join(&stem))),
                _ => {}
            }
        }
    }
    // Several compilers at once: the set builds in a few seconds.
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(compiler, args, src, dst)| {
                s.spawn(move || {
                    // Rebuilt only when the source is newer.
                    let fresh = dst.metadata().and_then(|d| d.modified()).ok().zip(src.metadata().and_then(|m| m.modified()).ok()).is_some_and(|(d, s)| d >= s);
                    if fresh { Ok(()) } else { compile(compiler, args, src, dst) }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a compiler thread panicked".into()))).collect()
    });
    results.into_iter().collect::<Result<Vec<()>, String>>()?;
    Ok(out)
}

/// `leaklab ARGS` run in `cwd` with `env`, bounded by `timeout`; stdin is /dev/null.
pub fn leaklab_in(cwd: &Path, args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Result<Output, Failed> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_leaklab"));
    cmd.arg("--color=never").args(args).current_dir(cwd).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().map_err(|e| Failed::from(format!("cannot run leaklab: {e}")))?;
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.map_err(|e| Failed::from(format!("waiting for leaklab: {e}"))),
        Err(_) => {
            // SAFETY: a plain signal to the child we started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            Err(format!("`leaklab {}` did not finish within {:.0} s", args.join(" "), timeout.as_secs_f64()).into())
        }
    }
}

/// `leaklab run --format json --backend BACKEND [EXTRA] -- PROGRAM ARGS` on a
/// reproduction program, from the build directory; the exit code and the JSON.
pub fn run_json(backend: &str, extra: &[&str], program_and_args: &[&str]) -> Result<(Option<i32>, serde_json::Value, String), Failed> {
    let dir = dir()?;
    let prog = format!("./{}", program_and_args[0]);
    let mut args = vec!["run", "--format", "json", "--backend", backend];
    args.extend_from_slice(extra);
    args.push("--");
    args.push(&prog);
    args.extend_from_slice(&program_and_args[1..]);
    let out = leaklab_in(dir, &args, &[], Duration::from_secs(180))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(report_text(&stdout)).map_err(|e| Failed::from(format!("no JSON report ({e}); stdout: {stdout}\nstderr: {stderr}")))?;
    Ok((out.status.code(), value, stderr))
}

/// The report in a `run --format json` stdout: the program's own output
/// comes first, the report is the last JSON document.
pub fn report_text(stdout: &str) -> &str {
    stdout.rfind("\n{").map_or(stdout, |i| &stdout[i + 1..]).trim()
}

/// `leaklab run --format json --backend B -- ./PROGRAM ARGS` in `dir`: the
/// exit code, the JSON (null when leaklab printed none, e.g. it refused) and stderr.
pub fn run_json_in(dir: &Path, backend: &str, program_and_args: &[&str]) -> Result<(Option<i32>, serde_json::Value, String), Failed> {
    let prog = format!("./{}", program_and_args[0]);
    let mut args = vec!["run", "--format", "json", "--backend", backend, "--"];
    args.push(&prog);
    args.extend_from_slice(&program_and_args[1..]);
    let out = leaklab_in(dir, &args, &[], Duration::from_secs(180))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    Ok((out.status.code(), serde_json::from_str(report_text(&stdout)).unwrap_or(serde_json::Value::Null), stderr))
}

/// A failed expectation about a run, with its exit code, report and stderr.
pub fn fail(what: &str, code: Option<i32>, report: &serde_json::Value, stderr: &str) -> Failed {
    format!("{what}; exit {code:?}\nreport: {report:#}\nstderr: {stderr}").into()
}
