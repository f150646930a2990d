//! The labs prove themselves: for every lab of labs/labs.toml, its pristine
//! starter fails its checks and its reference solution passes them all.
//! Plus the `leaklab lab` commands on a scratch copy of labs/ (progress,
//! hints, reset, exit codes).
//!
//! A lab whose needed backend cannot run is ignored with the reason unless
//! LEAKLAB_REQUIRE_BACKENDS names it. A confirmation by a backend that cannot
//! run is skipped by the checker; the solution's trial then passes on the
//! other checks only when that backend is not required.

use std::path::Path;
use std::process::Command;

use leaklab::labs::{self, FileSet, LabResult, Outcome};
use libtest_mimic::{Completion, Failed, Trial};

use crate::required;

fn failing(r: &LabResult) -> String {
    r.checks
        .iter()
        .filter(|c| c.outcome == Outcome::Fail)
        .map(|c| format!("{}: {}", c.name, c.problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Ignored (or, when required, failed) when the lab cannot be checked here.
fn unavailable(r: &LabResult) -> Option<Result<Completion, Failed>> {
    let u = r.unavailable.as_ref()?;
    Some(if required(&u.backend) {
        Err(format!("backend `{}` is required (LEAKLAB_REQUIRE_BACKENDS) but cannot run: {}; fix: {}", u.backend, u.reason, u.fix).into())
    } else {
        Ok(Completion::ignored_with(format!("{}: {}", u.backend, u.reason)))
    })
}

/// What a wrong solution of tests/data/labs/NN/wrong-WHAT/ must get: its
/// expect.toml.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// The mistake, in a line (for whoever reads the test data).
    #[allow(dead_code)]
    mistake: String,
    /// Checks that must fail, each with a phrase of its feedback.
    fails: Vec<ExpectFail>,
    /// Phrases no output of the checker may contain (the answer, its figures).
    #[serde(default)]
    never_says: Vec<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectFail {
    check: String,
    says: String,
}

/// Everything the student sees of a result: each check's feedback and the hint.
fn shown(r: &LabResult) -> String {
    let mut text = leaklab::labs::cli::render_result(r, leaklab::render::Style { color: false });
    text.push_str(&serde_json::to_string(r).unwrap_or_default());
    text
}

/// The wrong solutions of a lab: tests/data/labs/NN/wrong-*/, each holding
/// the files that differ from the reference solution and expect.toml.
fn wrong_solutions(lab: &labs::Lab) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/labs").join(&lab.id);
    let mut found: Vec<_> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("wrong-")))
        .collect();
    found.sort();
    found
}

/// Checks a wrong solution: the solution's files with the wrong ones laid over them.
fn check_wrong(lab: &labs::Lab, wrong: &Path) -> Result<LabResult, Failed> {
    let scratch = leaklab::contain::scratch().map_err(|e| e.to_string())?;
    for f in &lab.files {
        let mine = wrong.join(f);
        let from = if mine.is_file() { mine } else { FileSet::Solution.dir(lab).join(f) };
        std::fs::copy(&from, scratch.path().join(f)).map_err(|e| format!("{}: {e}", from.display()))?;
    }
    Ok(labs::check_given(lab, scratch.path()).map_err(|e| e.to_string())?)
}

fn lab_trials() -> Vec<Trial> {
    let all = match labs::labs() {
        Ok(l) => l,
        Err(e) => return vec![Trial::test("labs::labs_toml_loads", move || Err(e.to_string().into()))],
    };
    let mut trials = Vec::new();
    for lab in all {
        let id = lab.id.clone();
        let l = lab.clone();
        trials.push(Trial::ignorable_test(format!("labs::{id}::starter_fails"), move || {
            let r = labs::check(&l, FileSet::Starter).map_err(|e| e.to_string())?;
            if let Some(done) = unavailable(&r) {
                return done;
            }
            if r.complete {
                return Err(format!("the starter of lab {} passes all {} checks: it teaches nothing", l.slug(), r.total).into());
            }
            if r.passed == r.total {
                return Err("no check fails on the starter".into());
            }
            Ok(Completion::Completed)
        }));
        let wrongs = wrong_solutions(&lab);
        if wrongs.len() < 2 {
            let (n, lab_id) = (wrongs.len(), id.clone());
            trials.push(Trial::test(format!("labs::{id}::has_wrong_solutions"), move || {
                Err(format!("tests/data/labs/{lab_id}/ has {n} wrong solution(s); every lab needs at least two").into())
            }));
        }
        for wrong in wrongs {
            let what = wrong.file_name().map(|n| n.to_string_lossy().trim_start_matches("wrong-").replace('-', "_")).unwrap_or_default();
            let l = lab.clone();
            trials.push(Trial::ignorable_test(format!("labs::{id}::wrong_{what}_fails"), move || {
                let text = std::fs::read_to_string(wrong.join("expect.toml")).map_err(|e| format!("{}/expect.toml: {e}", wrong.display()))?;
                let expect: Expect = toml::from_str(&text).map_err(|e| format!("{}/expect.toml: {e}", wrong.display()))?;
                let r = check_wrong(&l, &wrong)?;
                if let Some(done) = unavailable(&r) {
                    return done;
                }
                if r.complete {
                    return Err(format!("the wrong solution {} passes all {} checks", wrong.display(), r.total).into());
                }
                for f in &expect.fails {
                    let c = r.checks.iter().find(|c| c.name == f.check).ok_or_else(|| format!("lab {} has no check `{}`", l.id, f.check))?;
                    let said = c.problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                    if c.outcome != Outcome::Fail || !said.contains(&f.says) {
                        return Err(format!("`{}` should fail saying `{}`; it is {:?}: {said}\nall that failed:\n{}", f.check, f.says, c.outcome, failing(&r)).into());
                    }
                }
                let seen = shown(&r);
                if let Some(leak) = expect.never_says.iter().find(|p| seen.contains(p.as_str())) {
                    return Err(format!("the checker's output gives away `{leak}`:\n{seen}").into());
                }
                Ok(Completion::Completed)
            }));
        }
        let l = lab.clone();
        trials.push(Trial::ignorable_test(format!("labs::{id}::solution_passes"), move || {
            let r = labs::check(&l, FileSet::Solution).map_err(|e| e.to_string())?;
            if let Some(done) = unavailable(&r) {
                return done;
            }
            if !r.complete {
                return Err(format!("the reference solution passes {}/{} checks:\n{}", r.passed, r.total, failing(&r)).into());
            }
            for c in &r.checks {
                if let Outcome::Skipped { reason, fix } = &c.outcome {
                    let backend = c.name.trim_end_matches(" agrees");
                    if leaklab::backend::by_name(backend).is_err() {
                        return Ok(Completion::ignored_with(format!("`{}` skipped: the {backend} backend is not built yet", c.name)));
                    }
                    if required(backend) {
                        return Err(format!("`{}` is skipped but {backend} is required: {reason}; fix: {fix}", c.name).into());
                    }
                    return Ok(Completion::ignored_with(format!("`{}` skipped: {reason}", c.name)));
                }
            }
            Ok(Completion::Completed)
        }));
    }
    trials
}

/// Copies labs/ (without progress) into a scratch directory.
fn scratch_labs() -> Result<tempfile::TempDir, Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let status = Command::new("cp")
        .arg("-r")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("labs"))
        .arg(dir.path())
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err("cp -r labs failed".into());
    }
    let _ = std::fs::remove_file(dir.path().join("labs/.progress.json"));
    Ok(dir)
}

fn leaklab(labs_dir: &Path, args: &[&str]) -> Result<std::process::Output, Failed> {
    Command::new(env!("CARGO_BIN_EXE_leaklab"))
        .arg("--color=never")
        .args(args)
        .env("LEAKLAB_LABS_DIR", labs_dir)
        .output()
        .map_err(|e| Failed::from(format!("cannot run leaklab: {e}")))
}

fn cli_trials() -> Vec<Trial> {
    vec![
        Trial::test("labs::cli::hints_progress_and_reset", || {
            let dir = scratch_labs()?;
            let labs_dir = dir.path().join("labs");
            let first = leaklab(&labs_dir, &["lab", "hint", "04"])?;
            let second = leaklab(&labs_dir, &["lab", "hint", "04"])?;
            let (a, b) = (String::from_utf8_lossy(&first.stdout), String::from_utf8_lossy(&second.stdout));
            if !a.starts_with("hint 1/5 for lab 04-symbols") || !b.starts_with("hint 2/5 for lab 04-symbols") {
                return Err(format!("hints do not advance: {a:?} then {b:?}").into());
            }
            // The symbols lab needs no backend: its starter fails quickly, with exit 1.
            let check = leaklab(&labs_dir, &["lab", "check", "04", "--format", "json"])?;
            let v: serde_json::Value = serde_json::from_slice(&check.stdout).map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&check.stderr)))?;
            if check.status.code() != Some(1) || v["complete"] != false || v["next_hint"]["number"] != 3 {
                return Err(format!("check of the starter: exit {:?}, {v}", check.status.code()).into());
            }
            let problem = &v["checks"][0]["problems"][1]["message"];
            if !problem.as_str().is_some_and(|m| m.contains("undefined reference to `plugin_init'")) {
                return Err(format!("the link error is not named: {v}").into());
            }
            let list = leaklab(&labs_dir, &["lab", "list", "--format", "json"])?;
            let l: serde_json::Value = serde_json::from_slice(&list.stdout).map_err(|e| e.to_string())?;
            let entry = l.as_array().and_then(|a| a.iter().find(|e| e["id"] == "04")).ok_or("no lab 04 in the list")?;
            if entry["hints_shown"] != 2 || entry["last"]["complete"] != false || entry["last"]["total"] != v["total"] {
                return Err(format!("progress not remembered: {entry}").into());
            }
            // Reset keeps the student's version and restores the starter.
            let work = labs_dir.join("04-symbols/stats.h");
            std::fs::write(&work, "/* mine */\n").map_err(|e| e.to_string())?;
            let reset = leaklab(&labs_dir, &["lab", "reset", "04"])?;
            let restored = std::fs::read_to_string(&work).map_err(|e| e.to_string())?;
            let starter = std::fs::read_to_string(labs_dir.join("04-symbols/starter/stats.h")).map_err(|e| e.to_string())?;
            let backup = std::fs::read_to_string(labs_dir.join("04-symbols/stats.h.bak")).map_err(|e| e.to_string())?;
            if !reset.status.success() || restored != starter || backup != "/* mine */\n" {
                return Err(format!("reset: exit {:?}, restored == starter: {}, backup {backup:?}", reset.status.code(), restored == starter).into());
            }
            Ok(())
        }),
        Trial::test("labs::cli::solution_of_symbols_exits_0", || {
            let dir = scratch_labs()?;
            let out = leaklab(&dir.path().join("labs"), &["lab", "check", "symbols", "--solution"])?;
            let text = String::from_utf8_lossy(&out.stdout);
            if out.status.code() != Some(0) || !text.contains("7/7 checks: complete") {
                return Err(format!("exit {:?}:\n{text}{}", out.status.code(), String::from_utf8_lossy(&out.stderr)).into());
            }
            // Checking the solution records no progress.
            if dir.path().join("labs/.progress.json").exists() {
                return Err("--solution wrote the student's progress".into());
            }
            Ok(())
        }),
        Trial::test("labs::cli::unknown_lab_is_a_usage_error", || {
            let out = leaklab(&Path::new(env!("CARGO_MANIFEST_DIR")).join("labs"), &["lab", "check", "99"])?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.code() != Some(2) || !stderr.contains("no lab `99`; the labs are 01-observe") {
                return Err(format!("exit {:?}: {stderr}", out.status.code()).into());
            }
            Ok(())
        }),
    ]
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OutOfSight {
    lab: Vec<Secret>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Secret {
    id: String,
    phrases: Vec<String>,
}

/// Nothing a student reads gives an answer: tests/data/labs/answers-out-of-sight.toml.
fn out_of_sight_trial() -> Trial {
    Trial::test("labs::answers_out_of_sight", || {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(root.join("tests/data/labs/answers-out-of-sight.toml")).map_err(|e| e.to_string())?;
        let secrets: OutOfSight = toml::from_str(&text).map_err(|e| e.to_string())?;
        let all = labs::labs().map_err(|e| e.to_string())?;
        let mut found = Vec::new();
        for secret in &secrets.lab {
            let lab = all.iter().find(|l| l.id == secret.id).ok_or_else(|| format!("no lab {}", secret.id))?;
            let mut read: Vec<(String, String)> = Vec::new();
            for dir in [lab.dir(), lab.dir().join("starter")] {
                for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?.flatten() {
                    if let Ok(t) = std::fs::read_to_string(entry.path()) {
                        read.push((entry.path().display().to_string(), t));
                    }
                }
            }
            let page = root.join(&lab.chapter);
            read.push((page.display().to_string(), std::fs::read_to_string(&page).map_err(|e| format!("{}: {e}", page.display()))?));
            read.push((format!("the hints of lab {}", lab.id), lab.hints.join("\n")));
            for (name, t) in &read {
                for p in secret.phrases.iter().filter(|p| t.contains(p.as_str())) {
                    found.push(format!("{name}: `{p}`"));
                }
            }
        }
        if found.is_empty() { Ok(()) } else { Err(format!("answers in plain sight:\n{}", found.join("\n")).into()) }
    })
}

/// The checkers' parsers, on inputs written here.
fn unit_trials() -> Vec<Trial> {
    vec![
        Trial::test("labs::units::tracker_report", || {
            let r = labs::tracker::parse_report(
                "noise\ndebug_new: leaked 12 bytes at victim.cpp:41 (new)\ndebug_new: leaked 40 bytes at /src/victim.cpp:42 (new[])\n\
                 debug_new: leaked twelve bytes\ndebug_new: 2 leaks, 52 bytes\n",
            );
            let want = vec![
                labs::tracker::Reported { bytes: 12, file: "victim.cpp".into(), line: 41, array: false },
                labs::tracker::Reported { bytes: 40, file: "/src/victim.cpp".into(), line: 42, array: true },
            ];
            if r.leaks != want || r.summary != Some((2, 52)) || r.unreadable != ["debug_new: leaked twelve bytes"] {
                return Err(format!("{r:?}").into());
            }
            Ok(())
        }),
        Trial::test("labs::units::enclosing_function", || {
            let text = "#include <x.h>\nstatic struct session *login(const char *p,\n                 int n)\n{\n    s = calloc(1, 40);\n}\n\nint main(void)\n{\n    return 0;\n}\n";
            let got = (labs::memleak::enclosing_function(text, 5), labs::memleak::enclosing_function(text, 10), labs::memleak::enclosing_function(text, 1));
            if got != (Some("login".into()), Some("main".into()), None) {
                return Err(format!("{got:?}").into());
            }
            Ok(())
        }),
        Trial::test("labs::units::unseen_victim_leaks_and_deletes", || {
            // Many seeds: every program parses, leaks on at least two lines and deletes at least two blocks.
            for seed in 0..200 {
                let src = labs::tracker::unseen_victim(&mut labs::generate::Rng::seeded(seed));
                let e = leaklab::annotations::parse("victim_unseen.cpp", &src).map_err(|e| format!("seed {seed}: {e}\n{src}"))?;
                let deletes = src.lines().filter(|l| l.trim_start().starts_with("delete")).count();
                if e.leaks.len() < 2 || deletes < 2 || !src.contains("#include \"debug_new.h\"") {
                    return Err(format!("seed {seed}: {} leak lines, {deletes} deletes:\n{src}", e.leaks.len()).into());
                }
            }
            Ok(())
        }),
        Trial::test("labs::units::stock_list_is_new", || {
            let example = "bolts:120\nnuts:75\nwashers:310\nscrews:42\nrivets:8\n";
            let lists: Vec<String> = (0..50).map(|seed| labs::valgrind_fix::stock_list(&mut labs::generate::Rng::seeded(seed), example)).collect();
            for l in &lists {
                let items = l.lines().count();
                if l == example || !(4..=12).contains(&items) || !l.lines().all(|i| i.split_once(':').is_some_and(|(n, q)| !n.is_empty() && q.parse::<u32>().is_ok())) {
                    return Err(format!("not a new stock list of 4 to 12 `name:qty` lines: {l:?}").into());
                }
            }
            let distinct: std::collections::BTreeSet<&String> = lists.iter().collect();
            if distinct.len() < 45 {
                return Err(format!("only {} distinct lists of 50", distinct.len()).into());
            }
            Ok(())
        }),
        Trial::test("labs::units::observe_growth", || {
            use labs::observe::{growth, kind, name, Reading};
            let parse_maps = |t: &str| leaklab::maps::parse(t).expect("the test's maps parse");
            let before = "55d0c1a2b000-55d0c1a4c000 rw-p 00000000 00:00 0                          [heap]\n\
                          7f0000000000-7f0000600000 rw-p 00000000 00:00 0 \n\
                          7f1000000000-7f1000001000 rw-s 00000000 00:05 12 /dev/shm/x\n";
            let after = "55d0c1a2b000-55d0c1b4c000 rw-p 00000000 00:00 0                          [heap]\n\
                         7f0000000000-7f0000600000 rw-p 00000000 00:00 0 \n\
                         7f1000000000-7f1000001000 rw-s 00000000 00:05 12 /dev/shm/x\n";
            let t0 = std::time::Instant::now();
            let a = Reading { at: t0, vsz_kib: 1000, rss_kib: 500, maps: parse_maps(before) };
            let b = Reading { at: t0 + std::time::Duration::from_secs(2), vsz_kib: 2024, rss_kib: 756, maps: parse_maps(after) };
            let g = growth(&a, &b);
            let (region, grew) = g.region.clone().ok_or("no region grew")?;
            let kinds: Vec<&str> = a.maps.iter().map(kind).collect();
            if name(&region) != "[heap]" || grew != 0x100000 || g.vsz_kib_per_s != 512.0 || g.rss_kib_per_s != 128.0 || g.mappings_after != g.mappings_before
                || name(&a.maps[1]) != "[anon]" || kinds != ["private-anon", "private-anon", "shared-file"]
            {
                return Err(format!("{g:?} {kinds:?}").into());
            }
            Ok(())
        }),
    ]
}

pub fn trials() -> Vec<Trial> {
    let mut t = lab_trials();
    t.extend(cli_trials());
    t.push(out_of_sight_trial());
    t.extend(unit_trials());
    t
}
