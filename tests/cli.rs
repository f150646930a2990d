//! Trials of the `leaklab` binary's edges: bad input gets a clear error and
//! the documented exit code, and no child outlives a failed run.

use std::process::{Command, Output};

use libtest_mimic::{Failed, Trial};

fn leaklab(args: &[&str], env: &[(&str, &str)]) -> Result<Output, Failed> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_leaklab"));
    cmd.arg("--color=never").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().map_err(|e| Failed::from(format!("cannot run leaklab: {e}")))
}

fn expect(out: &Output, code: i32, stderr_has: &str) -> Result<(), Failed> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(code) || !stderr.contains(stderr_has) {
        return Err(format!(
            "expected exit {code} and stderr containing {stderr_has:?}; got {:?}\nstderr: {stderr}\nstdout: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout)
        )
        .into());
    }
    Ok(())
}

/// Processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(marker) && !text.contains("cargo") {
                found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

fn valgrind_here() -> bool {
    which::which("valgrind").is_ok()
}

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("cli::unknown_sample", || {
            let out = leaklab(&["run", "strdup_lop"], &[])?;
            expect(&out, 2, "unknown sample `strdup_lop` (did you mean `strdup_loop`?)")
        }),
        Trial::test("cli::unknown_backend", || {
            let out = leaklab(&["run", "strdup_loop", "--backend", "purify"], &[])?;
            expect(&out, 2, "unknown backend `purify`; known backends: ")
        }),
        Trial::test("cli::missing_program", || {
            let out = leaklab(&["run", "--", "/no/such/program"], &[])?;
            expect(&out, 2, "no such program: /no/such/program")
        }),
        Trial::test("cli::missing_tool_is_exit_3_with_the_fix", || {
            // With an empty PATH valgrind cannot be found.
            let out = leaklab(&["run", "strdup_loop", "--backend", "valgrind"], &[("PATH", "/nonexistent")])?;
            expect(&out, 3, "fix: apt-get install -y valgrind")
        }),
        Trial::test("cli::list_names_every_sample", || {
            let out = leaklab(&["list", "--format", "json"], &[])?;
            let list: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
            let names: Vec<&str> = list.as_array().ok_or("not an array")?.iter().filter_map(|s| s["name"].as_str()).collect();
            let want: Vec<&str> = leaklab::catalogue::samples().iter().map(|s| s.name).collect();
            if names != want {
                return Err(format!("list shows {names:?}, catalogue has {want:?}").into());
            }
            Ok(())
        }),
        Trial::ignorable_test("cli::hanging_program_is_killed", || {
            if !valgrind_here() {
                return Ok(libtest_mimic::Completion::ignored_with("valgrind is not installed"));
            }
            let marker = "31.41592";
            let out = leaklab(&["run", "--backend", "valgrind", "--timeout", "2", "--", "sleep", marker], &[])?;
            expect(&out, 2, "timed out after 2.0 s; its process group was killed")?;
            let left = processes_with(marker);
            if !left.is_empty() {
                return Err(format!("children outlived the harness: {left:?}").into());
            }
            Ok(libtest_mimic::Completion::Completed)
        }),
        Trial::ignorable_test("cli::crashing_program_is_an_error", || {
            if !valgrind_here() {
                return Ok(libtest_mimic::Completion::ignored_with("valgrind is not installed"));
            }
            // A crash is a finding, as under memcheck: the report names the
            // signal (with the leaks it still has), and the exit code is 4.
            let out = leaklab(&["run", "--backend", "valgrind", "--", "sh", "-c", "kill -SEGV $$"], &[])?;
            expect(&out, 4, "")?;
            if !String::from_utf8_lossy(&out.stdout).contains("killed by SIGSEGV") {
                return Err(format!("the report does not say the program was killed by SIGSEGV: {}", String::from_utf8_lossy(&out.stdout)).into());
            }
            Ok(libtest_mimic::Completion::Completed)
        }),
        Trial::ignorable_test("cli::user_program_with_leaks_exits_1", || {
            if !valgrind_here() {
                return Ok(libtest_mimic::Completion::ignored_with("valgrind is not installed"));
            }
            // A catalogue executable run as "any program": no annotations, the report alone.
            let exe = leaklab::catalogue::find("strdup_loop").map_err(|e| e.to_string())?.executable("plain").map_err(|e| e.to_string())?;
            let out = leaklab(&["run", "--backend", "valgrind", "--format", "json", "--", exe.to_str().unwrap(), "3"], &[])?;
            if out.status.code() != Some(1) {
                return Err(format!("exit {:?}, expected 1: {}", out.status.code(), String::from_utf8_lossy(&out.stderr)).into());
            }
            // The program's own output comes first; the report is the last JSON document.
            let stdout = String::from_utf8_lossy(&out.stdout);
            let json = stdout.rfind("\n{").map_or(&stdout[..], |i| &stdout[i + 1..]);
            let v: serde_json::Value = serde_json::from_str(json.trim()).map_err(|e| e.to_string())?;
            let leak = &v["report"]["leaks"][0];
            if leak["bytes"] != 36 || leak["blocks"] != 3 || leak["site"]["file"] != "strdup_loop.c" || !v["score"].is_null() {
                return Err(format!("unexpected report: {v}").into());
            }
            Ok(libtest_mimic::Completion::Completed)
        }),
    ]
}
