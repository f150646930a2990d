//! LeakSanitizer and bcc's memleak on programs of the user's: the
//! reproduction programs of tests/repro/ (rows 2, 10, 11, 12, 16c, 17c, 18 and 20
//! of its README), run as `leaklab run --backend B -- ./prog` is.

use std::path::Path;
use std::time::Duration;


use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use crate::repro::{self, fail};

/// A trial of `backend` that is ignored where it cannot run.
fn trial(name: &str, backend: &'static str, check: fn() -> Result<(), Failed>) -> Trial {
    crate::needing(name, &[backend], check)
}


fn leaks(report: &Value) -> Vec<Value> {
    report["leaks"].as_array().cloned().unwrap_or_default()
}

fn processes(report: &Value) -> Vec<Value> {
    report["processes"].as_array().cloned().unwrap_or_default()
}

/// (kind, bytes, blocks, file, line) of each leak.
fn shapes(report: &Value) -> Vec<(String, u64, u64, String, u64)> {
    leaks(report)
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap_or("").to_string(),
                l["bytes"].as_u64().unwrap_or(0),
                l["blocks"].as_u64().unwrap_or(0),
                l["site"]["file"].as_str().unwrap_or("").to_string(),
                l["site"]["line"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// Row 10: liblsan preloaded into a program not built with it used to jump
/// to address 0 from its `signal()` interceptor.
fn lsan_signal_before_malloc() -> Result<(), Failed> {
    let (code, v, stderr) = repro::run_json("lsan", &[], &["sig"])?;
    let r = &v["report"];
    if code != Some(0) || r["status"]["state"] != "ok" || !leaks(r).is_empty() || !processes(r).is_empty() {
        return Err(fail("sig must run to its end under LSan, with no leak and a clean exit", code, r, &stderr));
    }
    Ok(())
}

/// Row 2 and 16c: a crash keeps its leaks (LSan checks before the signal
/// kills), names the signal, and shows LSan's own SEGV report as an error.
fn lsan_crash_keeps_leaks() -> Result<(), Failed> {
    let (code, v, stderr) = repro::run_json("lsan", &[], &["crash"])?;
    let r = &v["report"];
    let procs = processes(r);
    let crashed = procs.len() == 1 && procs[0]["end"]["how"] == "killed" && procs[0]["end"]["signal"] == "SIGSEGV" && procs[0]["analysed"] == true;
    let error = &r["errors"][0];
    if code != Some(4)
        || shapes(r) != [("definite".to_string(), 64, 1, "crash.c".to_string(), 4)]
        || !crashed
        || error["kind"] != "SEGV"
        || error["site"]["line"] != 4
        || stderr.contains("malformed")
    {
        return Err(fail("expected the 64-byte definite leak at crash.c:4, the process killed by SIGSEGV, LSan's SEGV as an error, exit 4", code, r, &stderr));
    }
    Ok(())
}

/// Row 2: abort(). The 10-byte block is still pointed to from main's live
/// frame, so LSan (which reports no reachable blocks) lists no leak; the
/// process was checked and SIGABRT is named.
fn lsan_abort_is_named() -> Result<(), Failed> {
    let (code, v, stderr) = repro::run_json("lsan", &[], &["abort"])?;
    let r = &v["report"];
    let procs = processes(r);
    if code != Some(4) || procs.len() != 1 || procs[0]["end"]["signal"] != "SIGABRT" || procs[0]["analysed"] != true {
        return Err(fail("expected the process killed by SIGABRT after LSan's check, exit 4", code, r, &stderr));
    }
    Ok(())
}

/// Row 16c: LSan stops the program at a call it rejects; that is its error,
/// not "malformed output", and the process was never checked for leaks.
fn lsan_own_error_is_shown() -> Result<(), Failed> {
    let (code, v, stderr) = repro::run_json("lsan", &[], &["apis_nopv"])?;
    let r = &v["report"];
    let error = &r["errors"][0];
    let procs = processes(r);
    if code != Some(4)
        || error["kind"] != "invalid-aligned-alloc-alignment"
        || !error["what"].as_str().unwrap_or("").contains("invalid alignment requested in aligned_alloc: 128")
        || error["site"]["file"] != "apis.c"
        || procs.len() != 1
        || procs[0]["analysed"] != false
        || stderr.contains("malformed")
    {
        return Err(fail("expected LSan's rejected aligned_alloc(128, 103) as an error at apis.c, the process not analysed, exit 4", code, r, &stderr));
    }
    Ok(())
}

/// Forked children have their own logs; each leak carries its process.
fn lsan_children_leaks_with_pids() -> Result<(), Failed> {
    let (code, v, stderr) = repro::run_json("lsan", &[], &["forks", "3", "exit"])?;
    let r = &v["report"];
    let procs = processes(r);
    let parent = procs.iter().find(|p| p["parent"].is_null()).map(|p| p["pid"].clone()).unwrap_or_default();
    let children: Vec<&Value> = procs.iter().filter(|p| p["parent"] == parent).collect();
    let mut by_pid: Vec<(u64, u64)> = leaks(r).iter().map(|l| (l["bytes"].as_u64().unwrap_or(0), l["blocks"].as_u64().unwrap_or(0))).collect();
    by_pid.sort_unstable();
    let all_have_pids = leaks(r).iter().all(|l| procs.iter().any(|p| p["pid"] == l["pid"]));
    let parent_leak = leaks(r).iter().any(|l| l["bytes"] == 777 && l["pid"] == parent);
    if code != Some(1)
        || procs.len() != 4
        || children.len() != 3
        || !procs.iter().all(|p| p["analysed"] == true && p["end"]["how"] == "exited")
        || by_pid != [(777, 1), (2000, 1), (4002, 2), (6006, 3)]
        || !all_have_pids
        || !parent_leak
    {
        return Err(fail("expected 4 processes, the parent's 777 bytes and each child's k+1 blocks, each leak with its pid", code, r, &stderr));
    }
    Ok(())
}

/// Children that leave through _exit() are never checked by LSan: they are
/// listed as not analysed, and the run is not called clean.
fn lsan_exit_children_not_analysed() -> Result<(), Failed> {
    let (code, v, stderr) = repro::run_json("lsan", &[], &["forks", "3", "_exit"])?;
    let r = &v["report"];
    let procs = processes(r);
    let unchecked = procs.iter().filter(|p| p["analysed"] == false).count();
    if code != Some(5) || procs.len() != 4 || unchecked != 3 || shapes(r).len() != 1 {
        return Err(fail("expected the parent's leak, 3 children not analysed, exit 5", code, r, &stderr));
    }
    Ok(())
}

/// Row 11: LSan checks a live process from inside after `--after`, then the program is stopped.
fn lsan_after_checks_a_live_program() -> Result<(), Failed> {
    let started = std::time::Instant::now();
    let (code, v, stderr) = repro::run_json("lsan", &["--after", "2", "--timeout", "60"], &["server"])?;
    let r = &v["report"];
    let took = started.elapsed();
    let procs = processes(r);
    let blocks: u64 = leaks(r).iter().filter(|l| l["site"]["file"] == "server.c").map(|l| l["blocks"].as_u64().unwrap_or(0)).sum();
    if code != Some(1) || !(12..=25).contains(&blocks) || procs.len() != 1 || procs[0]["end"]["how"] != "running" || took > Duration::from_secs(30) {
        return Err(fail(&format!("expected about 19 strdup blocks at server.c:5 after 2 s (found {blocks} in {took:?}), the program running until stopped"), code, r, &stderr));
    }
    Ok(())
}

/// Row 12: the user's file goes to LSan, and what it suppressed is counted.
fn lsan_suppressions_are_applied() -> Result<(), Failed> {
    let supp = repro::source("supp/main.supp");
    let (code, v, stderr) = repro::run_json("lsan", &["--suppressions", supp.to_str().ok_or("path")?], &["hello"])?;
    let r = &v["report"];
    let s = &r["suppressed"][0];
    if code != Some(0) || !leaks(r).is_empty() || !s["rule"].as_str().unwrap_or("").starts_with("leak:main") || s["leaks"] != 1 || s["bytes"] != 100 {
        return Err(fail("expected no leak, and 1 leak of 100 bytes suppressed by leak:main", code, r, &stderr));
    }
    Ok(())
}

/// Row 12: a malformed file is refused before the program runs.
fn lsan_bad_suppressions_refused() -> Result<(), Failed> {
    let supp = repro::source("supp/bad.supp");
    let (code, _, stderr) = repro::run_json("lsan", &["--suppressions", supp.to_str().ok_or("path")?], &["hello"])?;
    if code != Some(2) || !stderr.contains("bad.supp:1: empty pattern after `leak:`") {
        return Err(format!("expected exit 2 and `bad.supp:1: empty pattern after `leak:``; exit {code:?}, stderr: {stderr}").into());
    }
    Ok(())
}

/// Row 17c: a program name with a newline reaches LSan's stack frames.
fn lsan_newline_in_program_name() -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let name = "nl\nx";
    std::fs::copy(repro::program("misbehave")?, dir.path().join(name)).map_err(|e| e.to_string())?;
    let prog = format!("./{name}");
    let out = repro::leaklab_in(dir.path(), &["run", "--format", "json", "--backend", "lsan", "--", &prog, "exit77"], &[], Duration::from_secs(120))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("no JSON report ({e}); stderr: {stderr}"))?;
    let r = &v["report"];
    let frame_module = leaks(r).first().and_then(|l| l["stack"].as_array().cloned()).unwrap_or_default().iter().any(|f| f["object"].as_str().is_some_and(|o| o.ends_with(name)));
    if out.status.code() != Some(1) || shapes(r) != [("definite".to_string(), 999, 3, "misbehave.c".to_string(), 16)] || !frame_module {
        return Err(fail("expected 3 × 333 bytes at misbehave.c:16, the frame's module named with its newline", out.status.code(), r, &stderr));
    }
    Ok(())
}

/// Row 11: memleak's report after `--after` seconds of a program without a
/// checkpoint. glibc's strdup keeps no frame pointer, so memleak's stacks
/// lose its caller: the blocks are shown, but as runtime allocations.
fn bcc_after_reads_a_live_program() -> Result<(), Failed> {
    let (code, v, stderr) = repro::run_json("bcc", &["--after", "2", "--timeout", "60"], &["server"])?;
    let r = &v["report"];
    let procs = processes(r);
    let strdup_blocks: u64 = r["notes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n.as_str())
        .filter(|n| n.contains("(innermost: strdup)"))
        .filter_map(|n| n.split(" bytes in ").nth(1)?.split(' ').next()?.parse::<u64>().ok())
        .sum::<u64>()
        + leaks(r).iter().filter(|l| l["api"] == "strdup" || l["site"]["file"] == "server.c").map(|l| l["blocks"].as_u64().unwrap_or(0)).sum::<u64>();
    if code == Some(2) || r["status"]["state"] != "ok" || !(12..=25).contains(&strdup_blocks) || procs.len() != 1 || procs[0]["end"]["how"] != "running" {
        return Err(fail(&format!("expected about 20 outstanding strdup blocks after 2 s (found {strdup_blocks}), the program stopped by leaklab"), code, r, &stderr));
    }
    Ok(())
}

/// A fake memleak-bpfcc from tests/data/bcc/fake/ in a directory put first in PATH.
fn fake_memleak(script: &str) -> Result<(tempfile::TempDir, String), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bcc/fake").join(script);
    std::fs::copy(&src, dir.path().join("memleak-bpfcc")).map_err(|e| format!("{}: {e}", src.display()))?;
    let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap_or_default());
    Ok((dir, path))
}

/// Row 18: an attach that keeps failing is retried, then reported with memleak's own words.
fn bcc_failed_attach_shows_memleak_stderr() -> Result<(), Failed> {
    let (_fake, path) = fake_memleak("always_fails.sh")?;
    let hello = repro::program("hello")?;
    let out = repro::leaklab_in(repro::dir()?, &["run", "--backend", "bcc", "--", hello.to_str().ok_or("path")?], &[("PATH", &path)], Duration::from_secs(120))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(2)
        || !stderr.contains("attempt 3 of 3")
        || !stderr.contains("exited with status 1 before attaching")
        || !stderr.contains("Failed to load program: Cannot allocate memory")
    {
        return Err(format!("expected 3 attempts and memleak's own error; exit {:?}, stderr: {stderr}", out.status.code()).into());
    }
    Ok(())
}

/// Row 18: a transient attach failure costs nothing: the target had not started.
fn bcc_transient_attach_failure_is_retried() -> Result<(), Failed> {
    let real = which::which("memleak-bpfcc").map_err(|e| e.to_string())?;
    let (fake, path) = fake_memleak("fails_once.sh")?;
    let state = fake.path().join("failed-once");
    let strdup_loop = leaklab::catalogue::find("strdup_loop").map_err(|e| e.to_string())?;
    let out = repro::leaklab_in(
        repro::dir()?,
        &["run", "strdup_loop", "--backend", "bcc", "--format", "json"],
        &[("PATH", &path), ("REAL_MEMLEAK", real.to_str().ok_or("path")?), ("FAKE_MEMLEAK_STATE", state.to_str().ok_or("path")?)],
        Duration::from_secs(180),
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("no JSON report ({e}); stderr: {stderr}"))?;
    if out.status.code() != Some(0) || !state.exists() || v["score"].is_null() {
        return Err(fail(&format!("expected {} to agree with its annotations after one failed attach", strdup_loop.name), out.status.code(), &v, &stderr));
    }
    Ok(())
}

/// memleak's report skips an allocation whose stack its stack map refused
/// (a bucket another stack holds). manystacks leaks one 24-byte block from
/// each of 16,384 stacks, so about a third collide: every block must be
/// reported all the same, those without a stack from memleak's own map,
/// and a note must say why they have none.
fn bcc_stackless_allocations_are_reported() -> Result<(), Failed> {
    let (code, v, stderr) = repro::run_json("bcc", &["--timeout", "120"], &["manystacks", "14"])?;
    let r = &v["report"];
    let of_24: Vec<Value> = leaks(r).into_iter().filter(|l| l["bytes"].as_u64() == Some(24 * l["blocks"].as_u64().unwrap_or(0))).collect();
    let blocks = |with_stack: bool| of_24.iter().filter(|l| l["stack"].as_array().is_some_and(|s| !s.is_empty()) == with_stack).map(|l| l["blocks"].as_u64().unwrap_or(0)).sum::<u64>();
    let (stacked, stackless) = (blocks(true), blocks(false));
    let noted = r["notes"].as_array().is_some_and(|n| {
        n.iter().filter_map(Value::as_str).any(|n| n.contains(&format!("in {stackless} allocations outstanding without a stack (its bucket in memleak's stack map held another stack)")))
    });
    // The second condition is memleak's behaviour, not ours: were it
    // gone (a memleak that reuses stack ids), this trial would test nothing.
    if code == Some(2) || stacked + stackless != 16384 || stackless == 0 || !noted {
        return Err(fail(&format!("expected 16384 blocks of 24 bytes, some without a stack and a note saying why; {stacked} with a stack, {stackless} without, note: {noted}"), code, r, &stderr));
    }
    Ok(())
}

/// A program without a checkpoint and without `--after` is told about both.
fn bcc_no_checkpoint_points_to_after() -> Result<(), Failed> {
    let (code, _, stderr) = repro::run_json("bcc", &["--timeout", "60"], &["hello"])?;
    if code != Some(2) || !stderr.contains("before reaching its checkpoint") || !stderr.contains("--after SECONDS") {
        return Err(format!("expected exit 2 naming the missing checkpoint and `--after`; exit {code:?}, stderr: {stderr}").into());
    }
    Ok(())
}

pub fn trials() -> Vec<Trial> {
    vec![
        trial("lsan_bcc::lsan_signal_before_malloc", "lsan", lsan_signal_before_malloc),
        trial("lsan_bcc::lsan_crash_keeps_leaks", "lsan", lsan_crash_keeps_leaks),
        trial("lsan_bcc::lsan_abort_is_named", "lsan", lsan_abort_is_named),
        trial("lsan_bcc::lsan_own_error_is_shown", "lsan", lsan_own_error_is_shown),
        trial("lsan_bcc::lsan_children_leaks_with_pids", "lsan", lsan_children_leaks_with_pids),
        trial("lsan_bcc::lsan_exit_children_not_analysed", "lsan", lsan_exit_children_not_analysed),
        trial("lsan_bcc::lsan_after_checks_a_live_program", "lsan", lsan_after_checks_a_live_program),
        trial("lsan_bcc::lsan_suppressions_are_applied", "lsan", lsan_suppressions_are_applied),
        trial("lsan_bcc::lsan_bad_suppressions_refused", "lsan", lsan_bad_suppressions_refused),
        trial("lsan_bcc::lsan_newline_in_program_name", "lsan", lsan_newline_in_program_name),
        trial("lsan_bcc::bcc_after_reads_a_live_program", "bcc", bcc_after_reads_a_live_program),
        trial("lsan_bcc::bcc_failed_attach_shows_memleak_stderr", "bcc", bcc_failed_attach_shows_memleak_stderr),
        trial("lsan_bcc::bcc_transient_attach_failure_is_retried", "bcc", bcc_transient_attach_failure_is_retried),
        trial("lsan_bcc::bcc_no_checkpoint_points_to_after", "bcc", bcc_no_checkpoint_points_to_after),
        trial("lsan_bcc::bcc_stackless_allocations_are_reported", "bcc", bcc_stackless_allocations_are_reported),
    ]
}
