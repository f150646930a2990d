//! The heaptrack, mtrace, dmalloc and efence backends on programs of the
//! user's, run as `leaklab run --backend B -- ./prog` is: the reproduction
//! programs of tests/repro/ and tests/data/newtools/.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;


use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use crate::repro::{self, fail};

/// A trial of `backend`, ignored where it cannot run.
fn trial(backend: &'static str, name: &str, check: fn(&'static str) -> Result<(), Failed>) -> Trial {
    crate::needing(format!("newtools::{backend}_{name}"), &[backend], move || check(backend))
}


fn list(report: &Value, key: &str) -> Vec<Value> {
    report[key].as_array().cloned().unwrap_or_default()
}

/// (bytes, blocks, file, line) of each leak, sorted.
fn shapes(report: &Value) -> Vec<(u64, u64, String, u64)> {
    let mut v: Vec<_> = list(report, "leaks")
        .iter()
        .map(|l| {
            (
                l["bytes"].as_u64().unwrap_or(0),
                l["blocks"].as_u64().unwrap_or(0),
                l["site"]["file"].as_str().unwrap_or("").to_string(),
                l["site"]["line"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    v.sort();
    v
}

/// A program of tests/data/newtools/, built once per test run.
fn data_program(name: &str) -> Result<PathBuf, Failed> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/newtools").join(format!("{name}.c"));
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("newtools");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let exe = out.join(name);
    let status = Command::new(env!("LEAKLAB_CC")).args(["-g", "-O0", "-o"]).arg(&exe).arg(&src).status().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("cannot build {}", src.display()).into());
    }
    Ok(exe)
}

/// printleak leaks `malloc(strlen("world") + 8)` at printleak.c:10, and
/// prints `hello, world`: the program's stdout is the user's (before the
/// report), stdout's own buffer is the runtime's and is not reported.
fn user_program_leaks_and_talks(backend: &'static str) -> Result<(), Failed> {
    let dir = repro::dir()?;
    let out = repro::leaklab_in(dir, &["run", "--format", "json", "--backend", backend, "--", "./printleak"], &[], Duration::from_secs(120))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let json = stdout.rfind("\n{").map_or(&stdout[..], |i| &stdout[i + 1..]);
    let v: Value = serde_json::from_str(json.trim()).map_err(|e| Failed::from(format!("no JSON ({e}): {stdout}\n{stderr}")))?;
    let r = &v["report"];
    if !stdout.starts_with("hello, world\n") {
        return Err(fail("the program's stdout must pass through, first and whole", out.status.code(), r, &stderr));
    }
    let program_output = &stdout[..stdout.len() - json.len()];
    if program_output.contains("heaptrack") || stderr.contains("heaptrack stats") {
        return Err(fail("the tool's own messages must not mix with the program's output", out.status.code(), r, &stderr));
    }
    // dmalloc has no stacks: the block has its size only.
    let site = if backend == "dmalloc" { (String::new(), 0) } else { ("printleak.c".to_string(), 10) };
    let want: Vec<(u64, u64, String, u64)> = vec![(13, 1, site.0, site.1)];
    let got: Vec<_> = shapes(r).into_iter().filter(|s| backend != "dmalloc" || s.0 == 13).collect();
    if out.status.code() != Some(1) || r["status"]["state"] != "ok" || got != want {
        return Err(fail(&format!("printleak must leak {want:?} and exit 1 (leaks)"), out.status.code(), r, &stderr));
    }
    Ok(())
}

/// `forks 3 exit`: three children leak 1, 2 and 3 blocks of 2000, 2001 and
/// 2002 bytes and exit(); the parent leaks 777 bytes. mtrace and dmalloc
/// log each child; heaptrack stops recording in a child, which is listed
/// as not analysed (and the run's outcome says so).
fn forks_are_accounted(backend: &'static str) -> Result<(), Failed> {
    let (code, v, stderr) = repro::run_json(backend, &[], &["forks", "3", "exit"])?;
    let r = &v["report"];
    let procs = list(r, "processes");
    let children: Vec<&Value> = procs.iter().skip(1).collect();
    let sizes: Vec<u64> = shapes(r).iter().map(|s| s.0 / s.1.max(1)).collect();
    if procs.len() != 4 || procs[0]["analysed"] != true || !children.iter().all(|c| c["parent"] == procs[0]["pid"]) || !sizes.contains(&777) {
        return Err(fail("forks 3: the program and its three children, the 777-byte leak found", code, r, &stderr));
    }
    if backend == "heaptrack" {
        if code != Some(5) || !children.iter().all(|c| c["analysed"] == false) {
            return Err(fail("heaptrack: the children are not analysed (exit 5)", code, r, &stderr));
        }
    } else if code != Some(1) || !children.iter().all(|c| c["analysed"] == true) || ![2000, 2001, 2002].iter().all(|s| sizes.contains(s)) {
        return Err(fail("every child analysed, with its leaks (exit 1)", code, r, &stderr));
    }
    Ok(())
}

/// `forks 2 _exit`: a child that leaves with _exit never flushes mtrace's
/// log nor runs dmalloc's check: not analysed, never clean.
fn exit_children_not_analysed(backend: &'static str) -> Result<(), Failed> {
    let (code, v, stderr) = repro::run_json(backend, &[], &["forks", "2", "_exit"])?;
    let r = &v["report"];
    let procs = list(r, "processes");
    if code != Some(5) || procs.len() != 3 || !procs.iter().skip(1).all(|c| c["analysed"] == false) {
        return Err(fail("the _exit children are listed, not analysed (exit 5)", code, r, &stderr));
    }
    Ok(())
}

/// crash: SIGSEGV at a write through a null pointer. The crash is reported
/// (exit 4, the process killed by SIGSEGV); efence also names the line.
fn crash_is_a_crash(backend: &'static str) -> Result<(), Failed> {
    let (code, v, stderr) = repro::run_json(backend, &[], &["crash"])?;
    let r = &v["report"];
    let procs = list(r, "processes");
    if code != Some(4) || procs.len() != 1 || procs[0]["end"]["signal"] != "SIGSEGV" {
        return Err(fail("a crash: exit 4, the program killed by SIGSEGV", code, r, &stderr));
    }
    if backend == "efence" {
        let errors = list(r, "errors");
        if errors.len() != 1 || errors[0]["kind"] != "InvalidWrite" || errors[0]["site"]["file"] != "crash.c" || errors[0]["site"]["line"] != 4 {
            return Err(fail("efence: one InvalidWrite at crash.c:4", code, r, &stderr));
        }
    }
    Ok(())
}

/// Electric Fence's guard page catches a one-byte overrun where it happens.
fn efence_catches_an_overrun(_: &'static str) -> Result<(), Failed> {
    let exe = data_program("overrun")?;
    let exe = exe.display().to_string();
    let out = repro::leaklab_in(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")), &["run", "--format", "json", "--backend", "efence", "--", &exe], &[], Duration::from_secs(120))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(stdout.trim()).map_err(|e| Failed::from(format!("no JSON ({e}): {stdout}")))?;
    let r = &v["report"];
    let errors = list(r, "errors");
    if out.status.code() != Some(4) || errors.len() != 1 || errors[0]["kind"] != "InvalidWrite" || errors[0]["site"]["line"] != 10 {
        return Err(fail("overrun: one InvalidWrite at overrun.c:10 (exit 4)", out.status.code(), r, &String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

/// mism releases `new[]` and `malloc` blocks with `delete`: Electric Fence
/// does not check which function released a block, so the C++ program runs
/// to its end with no finding (and the report says it looks for no leaks).
fn efence_mismatched_frees_go_unseen(_: &'static str) -> Result<(), Failed> {
    let (code, v, stderr) = repro::run_json("efence", &[], &["mism"])?;
    let r = &v["report"];
    let says = list(r, "notes").iter().any(|n| n.as_str().is_some_and(|n| n.contains("finds no leaks")));
    if code != Some(0) || r["status"]["state"] != "ok" || !list(r, "bad_frees").is_empty() || !says {
        return Err(fail("efence runs mism to its end: no bad free seen, a note that it finds no leaks", code, r, &stderr));
    }
    Ok(())
}

/// Without heaptrack in PATH the backend is unavailable, with the fix.
fn missing_tool_is_named(_: &'static str) -> Result<(), Failed> {
    let dir = repro::dir()?;
    let out = repro::leaklab_in(dir, &["run", "--backend", "heaptrack", "--", "./printleak"], &[("PATH", "/nonexistent")], Duration::from_secs(60))?;
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.code() != Some(3) || !all.contains("heaptrack is not installed") || !all.contains("apt-get install -y heaptrack") {
        return Err(format!("PATH without heaptrack: exit 3 naming the tool and the fix; got exit {:?}:\n{all}", out.status.code()).into());
    }
    Ok(())
}

pub fn trials() -> Vec<Trial> {
    let mut trials = Vec::new();
    for b in ["heaptrack", "mtrace", "dmalloc"] {
        trials.push(trial(b, "user_program_leaks_and_talks", user_program_leaks_and_talks));
        trials.push(trial(b, "forks_are_accounted", forks_are_accounted));
        trials.push(trial(b, "crash_is_a_crash", crash_is_a_crash));
    }
    for b in ["mtrace", "dmalloc"] {
        trials.push(trial(b, "exit_children_not_analysed", exit_children_not_analysed));
    }
    trials.push(trial("efence", "crash_is_a_crash", crash_is_a_crash));
    trials.push(trial("efence", "catches_an_overrun", efence_catches_an_overrun));
    trials.push(trial("efence", "mismatched_frees_go_unseen", efence_mismatched_frees_go_unseen));
    trials.push(trial("heaptrack", "missing_tool_is_named", missing_tool_is_named));
    trials
}
