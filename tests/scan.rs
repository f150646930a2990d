//! Trials of the ptrace scan on processes it did not start itself:
//! `leaklab scan --pid`, `dump --pid`, `run --after`, and their errors. The
//! target never stays stopped or traced.

use std::process::{Command, Output};
use std::time::Duration;

use leaklab::process::{Child, Spec};
use libtest_mimic::{Completion, Failed, Trial};

fn leaklab(args: &[&str]) -> Result<Output, Failed> {
    Command::new(env!("CARGO_BIN_EXE_leaklab"))
        .arg("--color=never")
        .args(args)
        .output()
        .map_err(|e| Failed::from(format!("cannot run leaklab: {e}")))
}

fn strdup_loop() -> Result<String, Failed> {
    let s = leaklab::catalogue::find("strdup_loop").map_err(|e| e.to_string())?;
    Ok(s.executable("plain").map_err(|e| e.to_string())?.display().to_string())
}

/// strdup_loop with `args: 0`: a new "test_memory" every 2 s, the previous one lost.
fn forever() -> Result<Child, Failed> {
    let child = Child::spawn(&Spec::new(strdup_loop()?, Duration::from_secs(60)).arg("0").env_remove("LEAKLAB_CHECKPOINT"))
        .map_err(|e| e.to_string())?;
    // Two iterations: the first block is lost, the second still in `s`.
    std::thread::sleep(Duration::from_millis(2500));
    Ok(child)
}

pub(crate) fn status_field(pid: i32, key: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
        .unwrap_or_default()
}

fn ptrace_ready() -> Option<Completion> {
    match leaklab::backend::by_name("ptrace").map(|b| b.availability()) {
        Ok(leaklab::backend::Availability::Ready) => None,
        _ => Some(Completion::ignored_with("ptrace cannot run here")),
    }
}

fn left_running(pid: i32) -> Result<(), Failed> {
    let state = status_field(pid, "State:");
    let tracer = status_field(pid, "TracerPid:");
    if state.starts_with('T') || state.starts_with('t') || tracer != "0" {
        return Err(format!("the target was left stopped or traced: State {state}, TracerPid {tracer}").into());
    }
    Ok(())
}

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::ignorable_test("scan::foreign_pid_finds_the_lost_string", || {
            if let Some(skip) = ptrace_ready() {
                return Ok(skip);
            }
            let child = forever()?;
            let pid = child.pid().to_string();
            let out = leaklab(&["scan", "--pid", &pid, "--format", "json"])?;
            left_running(child.pid())?;
            drop(child);
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&out.stderr)))?;
            let lost = report["leaks"].as_array().into_iter().flatten().any(|l| {
                l["kind"] == "definite" && l["content"].as_str().is_some_and(|c| c.starts_with("test_memory")) && per_block(l) == Some(24)
            });
            if out.status.code() != Some(1) || !lost {
                return Err(format!("expected exit 1 and a definitely lost 24-byte \"test_memory\"; got {:?}: {report}", out.status.code()).into());
            }
            Ok(Completion::Completed)
        }),
        Trial::ignorable_test("scan::dump_writes_the_heap_and_marks_strings", || {
            if let Some(skip) = ptrace_ready() {
                return Ok(skip);
            }
            let child = forever()?;
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let file = dir.path().join("heap.bin");
            let out = leaklab(&["dump", "--pid", &child.pid().to_string(), "--out", file.to_str().ok_or("path")?])?;
            left_running(child.pid())?;
            drop(child);
            let bytes = std::fs::read(&file).map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&out.stdout);
            let found = bytes.windows(11).filter(|w| w == b"test_memory").count();
            if !out.status.success() || found < 2 || !text.contains("|test_memory") || !text.contains("«string»") {
                return Err(format!("dump: exit {:?}, {found} copies in the file; view:\n{text}", out.status.code()).into());
            }
            Ok(Completion::Completed)
        }),
        Trial::ignorable_test("scan::run_after_scans_a_program_without_checkpoint", || {
            if let Some(skip) = ptrace_ready() {
                return Ok(skip);
            }
            let out = leaklab(&["run", "--backend", "ptrace", "--format", "json", "--after", "2.5", "--capture", "--", &strdup_loop()?, "0"])?;
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&out.stderr)))?;
            let lost = v["report"]["leaks"].as_array().into_iter().flatten().any(|l| l["kind"] == "definite" && per_block(l) == Some(24));
            if out.status.code() != Some(1) || !lost || v["report"]["stats"]["pause_ms"].as_f64().is_none() {
                return Err(format!("expected exit 1, lost 24-byte blocks and a pause time; got {:?}: {v}", out.status.code()).into());
            }
            Ok(Completion::Completed)
        }),
        Trial::test("scan::no_such_pid", || {
            let out = leaklab(&["scan", "--pid", "2147483000"])?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.code() != Some(2) || !stderr.contains("cannot inspect process 2147483000: no such process") {
                return Err(format!("got {:?}: {stderr}", out.status.code()).into());
            }
            Ok(())
        }),
    ]
}

/// Bytes per block of a reported group (the forever loop leaks thousands a second).
fn per_block(leak: &serde_json::Value) -> Option<u64> {
    let (bytes, blocks) = (leak["bytes"].as_u64()?, leak["blocks"].as_u64()?);
    (blocks > 0 && bytes % blocks == 0).then(|| bytes / blocks)
}
