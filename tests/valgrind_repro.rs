//! The valgrind backend on the reproduction programs of tests/repro/ (its
//! README's rows 1, 2, 7, 9, 11, 12, 16d, 17c) and on the programs of
//! tests/data/valgrind/ (mid-run leak checks, live threads, a static
//! program), run as a user runs them: `leaklab run --backend valgrind -- ./prog`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use crate::repro;

type Outcome = (Option<i32>, Value, String);

fn run(extra: &[&str], program_and_args: &[&str]) -> Result<Outcome, Failed> {
    repro::run_json("valgrind", extra, program_and_args)
}

fn report(v: &Value) -> &Value {
    &v["report"]
}

fn leaks(v: &Value) -> Vec<&Value> {
    report(v)["leaks"].as_array().map(|a| a.iter().collect()).unwrap_or_default()
}

/// (blocks, bytes) of the leaks that are not still reachable.
fn lost(v: &Value) -> (u64, u64) {
    leaks(v).iter().filter(|l| l["kind"] != "reachable").fold((0, 0), |(n, b), l| (n + l["blocks"].as_u64().unwrap_or(0), b + l["bytes"].as_u64().unwrap_or(0)))
}

/// The lost leaks as (kind, blocks, bytes per block), records of the same
/// kind and block size added up.
fn shapes(v: &Value) -> Vec<(String, u64, u64)> {
    let mut by: std::collections::BTreeMap<(String, u64), u64> = std::collections::BTreeMap::new();
    for l in leaks(v).iter().filter(|l| l["kind"] != "reachable") {
        let blocks = l["blocks"].as_u64().unwrap_or(0);
        let size = l["bytes"].as_u64().unwrap_or(0) / blocks.max(1);
        *by.entry((l["kind"].as_str().unwrap_or("").to_string(), size)).or_default() += blocks;
    }
    by.into_iter().map(|((kind, size), blocks)| (kind, blocks, size)).collect()
}

fn processes(v: &Value) -> Vec<&Value> {
    report(v)["processes"].as_array().map(|a| a.iter().collect()).unwrap_or_default()
}

fn check(ok: bool, what: &str, out: &Outcome) -> Result<(), Failed> {
    if ok {
        Ok(())
    } else {
        Err(format!("{what}\nexit: {:?}\nreport: {}\nstderr: {}", out.0, serde_json::to_string_pretty(&out.1).unwrap_or_default(), out.2).into())
    }
}

fn site(l: &Value) -> String {
    format!("{}:{}", l["site"]["file"].as_str().unwrap_or("?"), l["site"]["line"])
}

/// Builds a program of tests/data/valgrind/ into the trials' scratch directory.
fn data_program(source: &str, flags: &[&str]) -> Result<PathBuf, Failed> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/valgrind").join(source);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("valgrind-data");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let stem = Path::new(source).file_stem().unwrap().to_string_lossy().into_owned();
    let out = dir.join(format!("{stem}{}", flags.concat().replace(['-', ' '], "")));
    let status = std::process::Command::new(env!("LEAKLAB_CC"))
        .args(["-g", "-O0", "-fno-omit-frame-pointer", "-pthread"])
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .map_err(|e| format!("cannot run the C compiler: {e}"))?;
    if !status.success() {
        return Err(format!("{} does not compile", src.display()).into());
    }
    Ok(out)
}

/// `leaklab run --format json --backend valgrind -- PROGRAM` on a program anywhere.
fn run_path(program: &Path, args: &[&str], extra: &[&str]) -> Result<Outcome, Failed> {
    let dir = program.parent().unwrap();
    let prog = format!("./{}", program.file_name().unwrap().to_string_lossy());
    let mut a = vec!["run", "--format", "json", "--backend", "valgrind"];
    a.extend_from_slice(extra);
    a.push("--");
    a.push(&prog);
    a.extend_from_slice(args);
    let out = repro::leaklab_in(dir, &a, &[], Duration::from_secs(180))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = stdout.rfind("\n{").map_or(&stdout[..], |i| &stdout[i + 1..]);
    let value = serde_json::from_str(json.trim()).map_err(|e| Failed::from(format!("no JSON report ({e}): {stdout}")))?;
    Ok((out.status.code(), value, String::from_utf8_lossy(&out.stderr).into_owned()))
}

fn trial(name: &str, f: fn() -> Result<(), Failed>) -> Trial {
    Trial::test(format!("valgrind_repro::{name}"), f)
}

pub fn trials() -> Vec<Trial> {
    vec![
        // Row 1: system() forks and execs /bin/sh: both processes are kept.
        trial("system_keeps_the_programs_leaks_and_lists_the_shell", || {
            let out = run(&[], &["system"])?;
            let procs = processes(&out.1);
            let shell = procs.iter().any(|p| p["program"] == "sh" && p["parent"] == procs[0]["pid"]);
            check(out.0 == Some(1) && shapes(&out.1) == [("definite".into(), 2, 222)] && shell, "system: 2 definite × 222 B, /bin/sh a child, exit 1", &out)
        }),
        trial("popen_keeps_the_programs_leaks", || {
            let out = run(&[], &["popen"])?;
            check(out.0 == Some(1) && shapes(&out.1) == [("definite".into(), 2, 333)] && processes(&out.1).len() == 2, "popen: 2 definite × 333 B, 2 processes, exit 1", &out)
        }),
        // Children that are still running when the parent returns finish on their own.
        trial("forks_nowait_gives_every_childs_leaks_with_its_pid", || {
            let out = run(&[], &["forks", "50", "nowait"])?;
            let pids: BTreeSet<String> = leaks(&out.1).iter().map(|l| l["pid"].to_string()).collect();
            let procs = processes(&out.1);
            let all_checked = procs.len() == 51 && procs.iter().all(|p| p["analysed"] == true);
            check(out.0 == Some(1) && lost(&out.1).0 == 1276 && pids.len() == 51 && all_checked, "forks 50 nowait: 1,276 blocks from 51 analysed processes, exit 1", &out)
        }),
        trial("forks_exit_underscore_children_are_checked", || {
            let out = run(&[], &["forks", "5", "_exit"])?;
            check(out.0 == Some(1) && lost(&out.1).0 == 1 + 15 && processes(&out.1).len() == 6, "forks 5 _exit: 16 blocks, 6 processes", &out)
        }),
        // A child left running after the parent's exit is checked live, then killed.
        trial("bgchild_left_running_is_checked_live", || {
            let out = run(&[], &["misbehave", "bgchild"])?;
            let procs = processes(&out.1);
            let child = procs.iter().find(|p| p["parent"] == procs[0]["pid"]);
            let ok = child.is_some_and(|c| c["end"]["how"] == "running" && c["analysed"] == true);
            check(out.0 == Some(1) && ok && lost(&out.1).0 == 6, "bgchild: the parent's and the child's 3 × 333 B, child running and analysed", &out)
        }),
        // Each image of a pid is checked: the exec shim asks for a leak check
        // before the exec (memcheck never checks an image at exec) and turns
        // execve("/proc/self/exe") into the program's path.
        trial("execer_gives_the_leaks_of_both_images", || {
            let out = run(&[], &["execer"])?;
            let first: u64 = leaks(&out.1).iter().filter(|l| site(l) == "execer.c:7" && l["bytes"].as_u64() == Some(300 * l["blocks"].as_u64().unwrap_or(0))).map(|l| l["blocks"].as_u64().unwrap_or(0)).sum();
            let second = leaks(&out.1).iter().any(|l| site(l) == "execer.c:6" && l["kind"] == "definite" && l["blocks"] == 5 && l["bytes"] == 2500);
            let procs = processes(&out.1);
            let exec = procs.first().is_some_and(|p| p["end"]["how"] == "exec") && procs.len() == 2;
            check(out.0 == Some(1) && first == 3 && second && exec, "execer: 3 × 300 B from the first image, 5 × 500 B from the second, an exec listed, exit 1", &out)
        }),
        // Row 2: a crash keeps the leak list and names the signal.
        trial("crash_keeps_its_leak_and_names_sigsegv", || crash("crash", 64, "SIGSEGV", "crash.c:4", true)),
        // abort.c keeps its pointer in a live frame: memcheck may call it reachable.
        trial("abort_keeps_its_leak_and_names_sigabrt", || crash("abort", 10, "SIGABRT", "abort.c:2", false)),
        // Row 9: memory errors are errors, with their sites, and exit 4.
        trial("mismatched_frees_are_errors", || {
            let out = run(&[], &["mism"])?;
            let bad = report(&out.1)["bad_frees"].as_array().cloned().unwrap_or_default();
            let ok = bad.len() == 2 && bad.iter().all(|b| b["kind"] == "mismatched" && b["site"]["file"] == "mism.cpp" && b["site"]["line"] == 2);
            check(out.0 == Some(4) && ok, "mism: 2 mismatched frees at mism.cpp:2, exit 4", &out)
        }),
        trial("use_after_free_and_uninitialised_branch_are_errors", || {
            let out = run(&[], &["uaf"])?;
            let errors = report(&out.1)["errors"].as_array().cloned().unwrap_or_default();
            let kinds: BTreeSet<&str> = errors.iter().filter(|e| site(e) == "uaf.c:3").filter_map(|e| e["kind"].as_str()).collect();
            check(out.0 == Some(4) && kinds == BTreeSet::from(["InvalidRead", "UninitCondition"]), "uaf: InvalidRead and UninitCondition at uaf.c:3, exit 4", &out)
        }),
        // Row 16d: valgrind cutting the run short at pvalloc is an error, not "ok".
        trial("pvalloc_abort_is_shown_as_cut_short", || {
            let out = run(&[], &["apis"])?;
            let errors = report(&out.1)["errors"].as_array().cloned().unwrap_or_default();
            let ok = errors.iter().any(|e| e["kind"] == "ClientAbort" && e["what"].as_str().is_some_and(|w| w.contains("pvalloc")) && site(e) == "apis.c:25");
            check(out.0 == Some(4) && ok, "apis: ClientAbort at pvalloc (apis.c:25), exit 4", &out)
        }),
        // Row 11: --after checks the live program through vgdb. The delay
        // counts from valgrind's launch, whose start-up takes a second or two.
        trial("after_checks_a_program_that_never_ends", || {
            let started = std::time::Instant::now();
            let out = run(&["--after", "5", "--timeout", "60"], &["server"])?;
            let took = started.elapsed();
            let strdups: u64 = leaks(&out.1).iter().filter(|l| l["kind"] == "definite" && site(l) == "server.c:5").map(|l| l["blocks"].as_u64().unwrap_or(0)).sum();
            let running = processes(&out.1).first().is_some_and(|p| p["end"]["how"] == "running" && p["analysed"] == true);
            check(out.0 == Some(1) && strdups >= 3 && running && took < Duration::from_secs(50), "server --after 5: strdup leaks at server.c:5, the program running and analysed, well before the timeout", &out)
        }),
        // Row 12: LeakSanitizer-format suppressions are applied and counted.
        trial("suppressions_hide_and_count", || {
            let supp = repro::source("supp/main.supp");
            let out = run(&["--suppressions", supp.to_str().unwrap()], &["hello"])?;
            let s = report(&out.1)["suppressed"].as_array().cloned().unwrap_or_default();
            let ok = s.len() == 1 && s[0]["rule"].as_str().is_some_and(|r| r.starts_with("leak:main")) && s[0]["leaks"] == 1 && s[0]["bytes"] == 100;
            check(out.0 == Some(0) && lost(&out.1).0 == 0 && ok, "hello with leak:main: no leaks, 1 leak of 100 B suppressed by leak:main, exit 0", &out)
        }),
        trial("malformed_suppressions_are_refused", || {
            let supp = repro::source("supp/bad.supp");
            let out = run(&["--suppressions", supp.to_str().unwrap()], &["hello"])?;
            check(out.0 == Some(2) && out.2.contains("bad.supp:1: empty pattern after `leak:`"), "bad.supp refused with its line", &out)
        }),
        // Row 7: valgrind's files (logs, vgdb FIFOs) stay in the run's own directory.
        trial("timeout_leaves_no_files_in_tmpdir", || {
            let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
            let dir = repro::dir()?;
            let out = repro::leaklab_in(dir, &["run", "--backend", "valgrind", "--timeout", "4", "--", "./hang"], &[("TMPDIR", tmp.path().to_str().unwrap())], Duration::from_secs(60))?;
            let left: Vec<String> = std::fs::read_dir(tmp.path()).map_err(|e| e.to_string())?.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            if out.status.code() == Some(2) && left.is_empty() {
                Ok(())
            } else {
                Err(format!("exit {:?}, left in TMPDIR: {left:?}; stderr: {}", out.status.code(), String::from_utf8_lossy(&out.stderr)).into())
            }
        }),
        // Row 17c: a program name with ESC gives a normal report.
        trial("program_name_with_escape_gives_a_normal_report", || {
            let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
            let odd = tmp.path().join("esc\x1b[31mRED\x1b[0m");
            std::fs::copy(repro::program("misbehave")?, &odd).map_err(|e| e.to_string())?;
            let out = run_path(&odd, &["exit77"], &[])?;
            check(shapes(&out.1) == [("definite".into(), 3, 333)], "3 definite × 333 B", &out)
        }),
        // Only the check at exit counts, not the mid-run client-request checks.
        trial("only_the_leak_check_at_exit_counts", || {
            let out = run_path(&data_program("midcheck.c", &[])?, &[], &[])?;
            check(out.0 == Some(1) && lost(&out.1) == (4, 80), "midcheck: 80 B in 4 blocks, as the check at exit says", &out)
        }),
        // The DTV of a live thread is the runtime's: counted, not listed.
        trial("live_threads_dtv_is_the_runtimes", || {
            let out = run_path(&data_program("live_threads.c", &[])?, &[], &[])?;
            let s = report(&out.1)["suppressed"].as_array().cloned().unwrap_or_default();
            let dtv = s.iter().any(|r| r["rule"].as_str().is_some_and(|r| r.contains("_dl_allocate_tls")) && r["bytes"].as_u64().is_some_and(|b| b > 0));
            check(out.0 == Some(1) && shapes(&out.1) == [("definite".into(), 1, 48)] && dtv, "live_threads: only the 48-byte leak, the DTVs counted as the runtime's", &out)
        }),
        // A statically linked program cannot be analysed: never "no leaks".
        trial("static_program_is_not_analysed", || {
            let out = run_path(&data_program("static_leak.c", &["-static"])?, &[], &[])?;
            check(out.0 == Some(5) && report(&out.1)["status"]["state"] == "not-analysed", "static: not analysed, exit 5", &out)
        }),
    ]
}

fn crash(program: &str, bytes: u64, signal: &str, at: &str, definite: bool) -> Result<(), Failed> {
    let out = run(&[], &[program])?;
    let leak = leaks(&out.1).into_iter().any(|l| (!definite || l["kind"] == "definite") && l["bytes"] == bytes && site(l) == at);
    let killed = processes(&out.1).first().is_some_and(|p| p["end"]["how"] == "killed" && p["end"]["signal"] == signal);
    check(leak && killed && out.0 == Some(4), &format!("{program}: a definite {bytes}-byte leak at {at}, killed by {signal}, exit 4"), &out)
}
