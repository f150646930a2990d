//! The jemalloc, tcmalloc and asan backends on programs of the user's (a
//! leak, forked children, a crash, a program not built for the tool), the
//! heap-profile reader on files cut short, and the lsan probe's stale-stack
//! flake. Programs and data are in tests/data/newtools2/.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use leaklab::backend::Availability;
use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use crate::repro::{self, fail};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/newtools2").join(name)
}

/// The programs of tests/data/newtools2/, built once: plain (as a user
/// builds to debug), `_asan` with AddressSanitizer, `_lsan` with LSan.
fn built() -> Result<&'static Path, Failed> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("newtools2");
        std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
        let cc = env!("LEAKLAB_CC");
        let base = ["-g", "-O0", "-fno-omit-frame-pointer"];
        let jobs: &[(&str, &str, &[&str])] = &[
            ("user_leaks.c", "user_leaks", &[]),
            ("user_crash.c", "user_crash", &[]),
            ("user_crash.c", "user_crash_asan", &["-fsanitize=address"]),
            ("user_uaf.c", "user_uaf_asan", &["-fsanitize=address", "-fsanitize-recover=address"]),
            ("user_leaks.c", "user_leaks_asan", &["-fsanitize=address"]),
            ("stale_probe.c", "stale_probe_lsan", &["-fsanitize=leak"]),
        ];
        for (src, exe, flags) in jobs {
            let status = Command::new(cc)
                .args(base)
                .args(*flags)
                .arg(data(src))
                .arg("-o")
                .arg(out.join(exe))
                .status()
                .map_err(|e| format!("cannot run {cc}: {e}"))?;
            if !status.success() {
                return Err(format!("{cc} failed on {src} for {exe}"));
            }
        }
        Ok(out)
    })
    .as_deref()
    .map_err(|e| Failed::from(e.clone()))
}

fn trial(name: &str, backend: &'static str, check: fn() -> Result<(), Failed>) -> Trial {
    crate::needing(name, &[backend], check)
}

/// `leaklab run --format json --backend B -- ./PROGRAM ARGS` from the build directory.
fn run(backend: &str, program_and_args: &[&str]) -> Result<(Option<i32>, Value, String), Failed> {
    repro::run_json_in(built()?, backend, program_and_args)
}

/// (kind, bytes, blocks, line) of each leak at a site of the program's own.
fn shapes(r: &Value) -> Vec<(String, u64, u64, u64)> {
    let mut v: Vec<_> = r["leaks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|l| !l["site"].is_null())
        .map(|l| {
            (
                l["kind"].as_str().unwrap_or("").to_string(),
                l["bytes"].as_u64().unwrap_or(0),
                l["blocks"].as_u64().unwrap_or(0),
                l["site"]["line"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    v.sort();
    v
}

/// (end, analysed) of each process, in the report's order.
fn ends(r: &Value) -> Vec<(String, bool)> {
    r["processes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let end = match p["end"]["how"].as_str().unwrap_or("") {
                "killed" => format!("killed {}", p["end"]["signal"].as_str().unwrap_or("")),
                how => how.to_string(),
            };
            (end, p["analysed"].as_bool().unwrap_or(false))
        })
        .collect()
}

/// jemalloc has no reachability: the lost name and the global's copy are
/// both live at exit, unclassified, at their own lines (sizes are jemalloc's
/// size classes: 48 for 48, 32 for strdup's 17).
fn jemalloc_user_program() -> Result<(), Failed> {
    let (code, v, stderr) = run("jemalloc", &["user_leaks"])?;
    let r = &v["report"];
    let want = vec![("unclassified".to_string(), 32, 1, 21), ("unclassified".to_string(), 48, 1, 13)];
    if code != Some(1) || shapes(r) != want || !ends(r).is_empty() {
        return Err(fail(&format!("expected {want:?}, exit 1"), code, r, &stderr));
    }
    Ok(())
}

/// A child that exits dumps its own profile (its leak listed with its
/// pid); one that leaves with _exit never dumps and is not analysed.
fn jemalloc_fork() -> Result<(), Failed> {
    let (code, v, stderr) = run("jemalloc", &["user_leaks", "fork"])?;
    let r = &v["report"];
    let lines: Vec<u64> = shapes(r).iter().map(|s| s.3).collect();
    let analysed: Vec<bool> = ends(r).iter().map(|e| e.1).collect();
    let child_leak = shapes(r).contains(&("unclassified".to_string(), 224, 1, 28));
    if code != Some(5) || !child_leak || !lines.contains(&13) || analysed != [true, true, false] {
        return Err(fail("expected the child's 200-byte leak (224, its size class) with the parent's, the _exit child not analysed, exit 5", code, r, &stderr));
    }
    Ok(())
}

/// The heap checker reports the lost block, not the one a global keeps;
/// its forked children are never checked.
fn tcmalloc_user_program_and_fork() -> Result<(), Failed> {
    let (code, v, stderr) = run("tcmalloc", &["user_leaks"])?;
    let r = &v["report"];
    if code != Some(1) || shapes(r) != [("unclassified".to_string(), 48, 1, 13)] {
        return Err(fail("expected only the 48-byte lost name at line 13, exit 1", code, r, &stderr));
    }
    let (code, v, stderr) = run("tcmalloc", &["user_leaks", "fork"])?;
    let r = &v["report"];
    let analysed: Vec<bool> = ends(r).iter().map(|e| e.1).collect();
    let said = r["notes"].as_array().is_some_and(|n| n.iter().any(|n| n.as_str().is_some_and(|t| t.contains("checks only the process it started in"))));
    if code != Some(5) || analysed != [true, false, false] || !said {
        return Err(fail("expected both children not analysed, with the reason, exit 5", code, r, &stderr));
    }
    Ok(())
}

/// A crash is a crash: killed by SIGSEGV, not analysed (the checker runs
/// only at exit), exit 4.
fn tcmalloc_crash() -> Result<(), Failed> {
    let (code, v, stderr) = run("tcmalloc", &["user_crash"])?;
    let r = &v["report"];
    if code != Some(4) || ends(r) != [("killed SIGSEGV".to_string(), false)] {
        return Err(fail("expected the process killed by SIGSEGV and not analysed, exit 4", code, r, &stderr));
    }
    Ok(())
}

/// A program not built with ASan is refused with the cause and the fix.
fn asan_refuses_a_plain_program() -> Result<(), Failed> {
    let (code, _, stderr) = run("asan", &["user_leaks"])?;
    if code != Some(2) || !stderr.contains("was not built with AddressSanitizer") || !stderr.contains("-fsanitize=address") {
        return Err(format!("expected exit 2 naming the missing -fsanitize=address; exit {code:?}, stderr: {stderr}").into());
    }
    Ok(())
}

/// Built with ASan: the use after free is an error, the double free a bad
/// free, and the leak check at exit still runs (halt_on_error=0).
fn asan_errors_and_leaks() -> Result<(), Failed> {
    let (code, v, stderr) = run("asan", &["user_uaf_asan"])?;
    let r = &v["report"];
    let errors: Vec<&str> = r["errors"].as_array().map(|e| e.iter().filter_map(|e| e["kind"].as_str()).collect()).unwrap_or_default();
    let bad: Vec<(&str, u64)> = r["bad_frees"]
        .as_array()
        .map(|b| b.iter().map(|b| (b["kind"].as_str().unwrap_or(""), b["site"]["line"].as_u64().unwrap_or(0))).collect())
        .unwrap_or_default();
    if code != Some(4) || errors != ["heap-use-after-free"] || bad != [("double", 16)] || shapes(r) != [("definite".to_string(), 24, 1, 17)] {
        return Err(fail("expected a heap-use-after-free, a double free at line 16 and the 24-byte leak at line 17, exit 4", code, r, &stderr));
    }
    Ok(())
}

/// A crash under ASan keeps the leaks the preload's check found first.
fn asan_crash_keeps_leaks() -> Result<(), Failed> {
    let (code, v, stderr) = run("asan", &["user_crash_asan"])?;
    let r = &v["report"];
    if code != Some(4) || shapes(r) != [("definite".to_string(), 64, 1, 8)] || ends(r) != [("killed SIGSEGV".to_string(), true)] {
        return Err(fail("expected the 64-byte leak at line 8 and the process killed by SIGSEGV, exit 4", code, r, &stderr));
    }
    Ok(())
}

/// The lsan probe's flake: a copy of the leaked block's address in a dead
/// frame hid the leak from a check that scans stacks, and LSan was then
/// called unusable. The probe checks without the stacks.
fn lsan_probe_ignores_stale_stack() -> Result<(), Failed> {
    let program = built()?.join("stale_probe_lsan");
    match leaklab::backends::lsan::probe_with(&leaklab::backends::lsan::LSAN, &program) {
        Availability::Ready => Ok(()),
        other => Err(format!("the probe must find its leak whatever its dead frames hold; got {other:?}").into()),
    }
}

/// A profile cut short (no maps) or whose records do not add up is refused, never read as clean.
fn heap_profiles_cut_short_are_refused() -> Result<(), Failed> {
    for (file, says) in [
        ("jemalloc_cut.heap", "cut short"),
        ("gperftools_totals.heap", "add up"),
    ] {
        let text = std::fs::read_to_string(data(file)).map_err(|e| e.to_string())?;
        match leaklab::heap_profile::parse(&text) {
            Err(e) if e.to_string().contains(says) => {}
            other => return Err(format!("{file}: expected an error saying `{says}`, got {other:?}").into()),
        }
    }
    let text = std::fs::read_to_string(data("jemalloc_final.heap")).map_err(|e| e.to_string())?;
    let p = leaklab::heap_profile::parse(&text).map_err(|e| e.to_string())?;
    let records: Vec<(u64, u64, usize)> = p.records.iter().map(|r| (r.objects, r.bytes, r.pcs.len())).collect();
    if records != [(1, 4096, 15), (2, 96, 11), (1, 48, 11)] || p.maps.len() != 3 {
        return Err(format!("jemalloc_final.heap: got records {records:?} and {} maps", p.maps.len()).into());
    }
    Ok(())
}

pub fn trials() -> Vec<Trial> {
    vec![
        trial("newtools2::jemalloc_user_program", "jemalloc", jemalloc_user_program),
        trial("newtools2::jemalloc_fork", "jemalloc", jemalloc_fork),
        trial("newtools2::tcmalloc_user_program_and_fork", "tcmalloc", tcmalloc_user_program_and_fork),
        trial("newtools2::tcmalloc_crash", "tcmalloc", tcmalloc_crash),
        trial("newtools2::asan_refuses_a_plain_program", "asan", asan_refuses_a_plain_program),
        trial("newtools2::asan_errors_and_leaks", "asan", asan_errors_and_leaks),
        trial("newtools2::asan_crash_keeps_leaks", "asan", asan_crash_keeps_leaks),
        trial("newtools2::lsan_probe_ignores_stale_stack", "lsan", lsan_probe_ignores_stale_stack),
        Trial::test("newtools2::heap_profiles_cut_short_are_refused", heap_profiles_cut_short_are_refused),
    ]
}
