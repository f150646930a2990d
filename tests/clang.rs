//! clang's sanitizer rows (`lsan-clang`, `asan-clang`) on programs of the
//! user's: which programs each accepts, clang's runtime with its
//! llvm-symbolizer process, and the `FILE:LINE:COLUMN` locations that
//! llvm-symbolizer writes. Programs are tests/data/newtools2/'s, built here
//! by clang and gcc; logs are in tests/data/clang/.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use leaklab::process::{Child, Exit, Spec};
use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use crate::repro::{self, fail};

fn data(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(dir).join(name)
}

/// The programs, built once: `_clang_lsan`, `_clang_asan` by clang with a
/// sanitizer, `_gcc_lsan` by gcc with one, `_plain` by gcc without.
fn built() -> Result<&'static Path, Failed> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("clang");
        std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
        let (gcc, clang) = (env!("LEAKLAB_CC"), env!("LEAKLAB_CLANG"));
        if clang.is_empty() {
            return Err("clang was not found when leaklab was built".into());
        }
        let jobs: &[(&str, &str, &str, &[&str])] = &[
            (clang, "user_leaks.c", "user_leaks_clang_lsan", &["-fsanitize=leak"]),
            (clang, "user_uaf.c", "user_uaf_clang_asan", &["-fsanitize=address", "-fsanitize-recover=address"]),
            (gcc, "user_leaks.c", "user_leaks_gcc_lsan", &["-fsanitize=leak"]),
            (gcc, "user_uaf.c", "user_uaf_gcc_asan", &["-fsanitize=address", "-fsanitize-recover=address"]),
            (gcc, "user_leaks.c", "user_leaks_plain", &[]),
        ];
        for (cc, src, exe, flags) in jobs {
            let spec = Spec::new(cc, Duration::from_secs(120))
                .args(["-g", "-O0", "-fno-omit-frame-pointer"])
                .args(*flags)
                .arg(data("newtools2", src))
                .arg("-o")
                .arg(out.join(exe));
            let finished = Child::spawn(&spec).and_then(Child::finish).map_err(|e| format!("{cc} on {src}: {e}"))?;
            if finished.exit != Exit::Code(0) {
                return Err(format!("{cc} failed on {src} for {exe}: {}\n{}", finished.exit.describe(), String::from_utf8_lossy(&finished.stderr)));
            }
        }
        Ok(out)
    })
    .as_deref()
    .map_err(|e| Failed::from(e.clone()))
}

/// A trial that needs `backends` (the programs need clang: a clang row among them).
fn trial(name: &str, backends: &[&'static str], check: fn() -> Result<(), Failed>) -> Trial {
    crate::needing(name, backends, check)
}

/// `leaklab run --format json --backend B -- ./PROGRAM ARGS` from the build directory.
fn run(backend: &str, program_and_args: &[&str]) -> Result<(Option<i32>, Value, String), Failed> {
    repro::run_json_in(built()?, backend, program_and_args)
}

/// (kind, bytes, file, line) of each leak with a site.
fn sites(r: &Value) -> Vec<(String, u64, String, u64)> {
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
                l["site"]["file"].as_str().unwrap_or("").to_string(),
                l["site"]["line"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    v.sort();
    v
}

/// Programs of each process the report lists (none when the run was one
/// program that simply exited).
fn programs(r: &Value) -> Vec<String> {
    r["processes"].as_array().cloned().unwrap_or_default().iter().map(|p| p["program"].as_str().unwrap_or("").to_string()).collect()
}

/// llvm-symbolizer writes `FILE:LINE:COLUMN`: the column is not the line,
/// and the line not part of the file's name.
fn columns_are_not_lines() -> Result<(), Failed> {
    let text = std::fs::read_to_string(data("clang", "lsan_with_columns.log")).map_err(|e| e.to_string())?;
    let log = leaklab::backends::lsan::parse_log(&text).map_err(|e| e.to_string())?;
    let frames: Vec<(String, String, u32)> = log.leaks[0]
        .stack
        .iter()
        .filter_map(|f| Some((f.function.clone()?, f.file.clone()?, f.line?)))
        .collect();
    let want = [("make_name", "/tmp/cl/user_leaks.c", 13), ("main", "/tmp/cl/user_leaks.c", 22)];
    if frames.len() < 2 || frames[..2].iter().zip(want).any(|(got, w)| (got.0.as_str(), got.1.as_str(), got.2) != w) {
        return Err(format!("expected make_name at user_leaks.c:13 and main at :22; got {frames:?}").into());
    }
    Ok(())
}

/// A program clang built with LSan runs with its own runtime, and the
/// llvm-symbolizer that runtime starts is not a process of the run. Its
/// leaks are not checked: a user's program is checked with its stacks
/// scanned, where clang's -O0 frames keep stale copies of the lost blocks'
/// addresses, which hide them in some runs and not others.
fn lsan_clang_runs_a_clang_build() -> Result<(), Failed> {
    let (code, v, stderr) = run("lsan-clang", &["user_leaks_clang_lsan", "fork"])?;
    let r = &v["report"];
    let listed = programs(r);
    let analysed: Vec<bool> = r["processes"].as_array().cloned().unwrap_or_default().iter().map(|p| p["analysed"].as_bool().unwrap_or(false)).collect();
    if code != Some(5) || analysed != [true, true, false] || listed.iter().any(|p| p.contains("symbolizer")) {
        return Err(fail("expected the program and its two children only (the _exit one not analysed), exit 5", code, r, &stderr));
    }
    Ok(())
}

/// The gcc row on a program that carries clang's runtime ran that runtime,
/// whose llvm-symbolizer was listed as a process LSan never checked.
fn lsan_on_a_clang_build_lists_no_symbolizer() -> Result<(), Failed> {
    let (code, v, stderr) = run("lsan", &["user_leaks_clang_lsan", "fork"])?;
    let r = &v["report"];
    let listed = programs(r);
    if code != Some(5) || listed.iter().any(|p| p.contains("symbolizer")) || listed.len() != 3 {
        return Err(fail("expected the program and its two children only, exit 5 (one child leaves with _exit)", code, r, &stderr));
    }
    Ok(())
}

/// clang's runtime cannot be preloaded: a program built without it is
/// refused, with the rebuild and the gcc row that can; one built by gcc
/// with a sanitizer is sent to the gcc row.
fn lsan_clang_refuses_other_builds() -> Result<(), Failed> {
    let (code, _, stderr) = run("lsan-clang", &["user_leaks_plain"])?;
    if code != Some(2) || !stderr.contains("clang -g -fsanitize=leak") || !stderr.contains("--backend lsan") {
        return Err(format!("a plain program: expected exit 2 naming the rebuild and `--backend lsan`; exit {code:?}, stderr: {stderr}").into());
    }
    let (code, _, stderr) = run("lsan-clang", &["user_leaks_gcc_lsan"])?;
    if code != Some(2) || !stderr.contains("gcc's sanitizer runtime") || !stderr.contains("--backend lsan") {
        return Err(format!("a gcc build: expected exit 2 naming gcc's runtime and `--backend lsan`; exit {code:?}, stderr: {stderr}").into());
    }
    Ok(())
}

/// A program clang built with ASan: the use after free, the double free and
/// the leak, each at its line; a gcc ASan build goes to the gcc row.
fn asan_clang_errors_and_leaks() -> Result<(), Failed> {
    let (code, v, stderr) = run("asan-clang", &["user_uaf_clang_asan"])?;
    let r = &v["report"];
    let errors: Vec<(&str, u64)> = r["errors"]
        .as_array()
        .map(|e| e.iter().map(|e| (e["kind"].as_str().unwrap_or(""), e["site"]["line"].as_u64().unwrap_or(0))).collect())
        .unwrap_or_default();
    let bad: Vec<(&str, u64)> = r["bad_frees"]
        .as_array()
        .map(|b| b.iter().map(|b| (b["kind"].as_str().unwrap_or(""), b["site"]["line"].as_u64().unwrap_or(0))).collect())
        .unwrap_or_default();
    let want = vec![("definite".to_string(), 24, "user_uaf.c".to_string(), 17)];
    if code != Some(4) || errors != [("heap-use-after-free", 13)] || bad != [("double", 16)] || sites(r) != want || !programs(r).is_empty() {
        return Err(fail("expected a heap-use-after-free at line 13, a double free at 16, the 24-byte leak at 17, no process list, exit 4", code, r, &stderr));
    }
    let (code, _, stderr) = run("asan-clang", &["user_uaf_gcc_asan"])?;
    if code != Some(2) || !stderr.contains("libasan.so") || !stderr.contains("--backend asan") {
        return Err(format!("a gcc ASan build: expected exit 2 naming libasan.so and `--backend asan`; exit {code:?}, stderr: {stderr}").into());
    }
    Ok(())
}

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("clang::columns_are_not_lines", columns_are_not_lines),
        trial("clang::lsan_clang_runs_a_clang_build", &["lsan-clang"], lsan_clang_runs_a_clang_build),
        trial("clang::lsan_on_a_clang_build_lists_no_symbolizer", &["lsan", "lsan-clang"], lsan_on_a_clang_build_lists_no_symbolizer),
        trial("clang::lsan_clang_refuses_other_builds", &["lsan-clang", "lsan"], lsan_clang_refuses_other_builds),
        trial("clang::asan_clang_errors_and_leaks", &["asan-clang", "asan"], asan_clang_errors_and_leaks),
    ]
}
