//! Trials of detector files (`backends/detector.rs`), of `compare
//! --baseline` and of `suite MANIFEST`; and the trials of the detector files
//! named by `LEAKLAB_DETECTORS` (snapshots in `LEAKLAB_DETECTOR_SNAPSHOTS`).

use std::path::{Path, PathBuf};
use std::process::Command;

use leaklab::backend::{self, Availability, Backend, RunConfig};
use leaklab::backends::detector::Detector;
use leaklab::catalogue;
use leaklab::compare::{run_one, Comparison, Outcome};
use leaklab::report::Status;
use libtest_mimic::{Completion, Failed, Trial};

fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(path)
}

fn leaklab(args: &[&str]) -> Result<std::process::Output, Failed> {
    Command::new(env!("CARGO_BIN_EXE_leaklab")).arg("--color=never").args(args).output().map_err(|e| format!("cannot run leaklab: {e}").into())
}

/// What a row is judged on: the normalized findings and the score's tallies.
fn findings(o: &Outcome) -> String {
    let r = &o.report;
    let score = o.score.as_ref().map(|s| {
        let (f, m, x) = (s.found.len(), s.missed.len(), s.false_reports.len());
        let agreed = s.found.iter().filter(|f| f.kind_agrees).count();
        format!("found {f} (kind agreed {agreed}), missed {m}, false {x}, frees found {} missed {} false {}", s.found_frees.len(), s.missed_frees.len(), s.false_frees.len())
    });
    format!(
        "status: {:?}\nleaks: {}\nbad frees: {}\nerrors: {}\nsuppressed: {}\nscore: {score:?}",
        r.status,
        serde_json::to_string_pretty(&r.leaks).unwrap_or_default(),
        serde_json::to_string_pretty(&r.bad_frees).unwrap_or_default(),
        serde_json::to_string_pretty(&r.errors).unwrap_or_default(),
        serde_json::to_string_pretty(&r.suppressed).unwrap_or_default(),
    )
}

/// Samples of different shapes: a tree (definite and indirect), a
/// mismatched delete, reachable memory, an uninitialised branch.
const REPRODUCED: &[&str] = &["lost_tree", "mismatched_delete", "reachable_global", "uninitialized_branch"];

fn reproduces_trial(file: &'static str, sample: &'static str) -> Trial {
    Trial::test(format!("detector::{}_reproduces_valgrind::{sample}", file.trim_end_matches(".toml").replace('-', "_")), move || {
        let builtin = backend::by_name("valgrind").map_err(|e| e.to_string())?;
        if let Availability::Unavailable { reason, .. } = builtin.availability() {
            if crate::required("valgrind") {
                return Err(format!("valgrind is required but cannot run: {reason}").into());
            }
            return Err(format!("valgrind cannot run here ({reason}): this trial needs it").into());
        }
        let detector = Detector::load(&data(&format!("detectors/{file}"))).map_err(|e| e.to_string())?;
        let s = catalogue::find(sample).map_err(|e| e.to_string())?;
        let expected = s.expectations().map_err(|e| e.to_string())?;
        let a = run_one(builtin.as_ref(), s, &expected, &RunConfig::default());
        let b = run_one(&detector, s, &expected, &RunConfig::default());
        let (fa, fb) = (findings(&a), findings(&b));
        if fa != fb {
            return Err(format!("the built-in valgrind row:\n{fa}\n\nthe detector file's row:\n{fb}").into());
        }
        if a.report.status != Status::Ok {
            return Err(format!("both runs failed alike: {:?}", a.report.status).into());
        }
        Ok(())
    })
}

/// Each file of tests/data/detectors/bad/ starts with `# expect: TEXT`, a
/// part of the error it must give.
fn bad_files_trial() -> Trial {
    Trial::test("detector::bad_files_are_refused_with_file_line_and_key", || {
        let dir = data("detectors/bad");
        let mut problems = Vec::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).map_err(|e| e.to_string())?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in &files {
            let text = std::fs::read_to_string(f).map_err(|e| e.to_string())?;
            let want = text.lines().next().and_then(|l| l.strip_prefix("# expect: ")).ok_or_else(|| format!("{} has no `# expect:` line", f.display()))?;
            match Detector::load(f) {
                Ok(_) => problems.push(format!("{}: accepted", f.display())),
                Err(e) if e.to_string().contains(want) => {}
                Err(e) => problems.push(format!("{}: expected an error containing {want:?}, got: {e}", f.display())),
            }
        }
        if files.len() < 5 {
            problems.push("fewer than 5 bad files".into());
        }
        if problems.is_empty() { Ok(()) } else { Err(problems.join("\n").into()) }
    })
}

/// The placeholders of a detector file, through a tool that writes its
/// argv: `{args}` expands to zero or more items, `{report}` is a path in the
/// run's scratch directory (gone after the run).
fn placeholders_trial() -> Trial {
    Trial::test("detector::placeholders_expand", || {
        let detector = Detector::load(&data("detectors/argv-echo.toml")).map_err(|e| e.to_string())?;
        let mut problems = Vec::new();
        for args in [vec![], vec!["one".to_string(), "two words".to_string()]] {
            let target = backend::Target::program("/bin/true", &args).map_err(|e| e.to_string())?;
            let report = detector.run(&target, &RunConfig::default()).map_err(|e| e.to_string())?;
            // The tool's report is leaklab JSON whose notes are its argv after `--`.
            let want: Vec<String> = std::iter::once("/bin/true".to_string()).chain(args.iter().cloned()).collect();
            if report.notes != want {
                problems.push(format!("args {args:?}: the program's argv was {:?}, expected {want:?}", report.notes));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems.join("\n").into()) }
    })
}

fn comparison(samples: &[&str]) -> Result<Comparison, Failed> {
    let config = leaklab::compare::CompareConfig {
        backends: vec!["debug-new".into()],
        samples: samples.iter().map(|s| s.to_string()).collect(),
        jobs: 1,
        ..Default::default()
    };
    leaklab::compare::compare(&config, &|_, _, _| {}).map_err(|e| Failed::from(e.to_string()))
}

fn baseline_trials() -> Vec<Trial> {
    vec![
        Trial::test("detector::baseline_identical_is_no_change", || {
            let dir = leaklab::contain::scratch().map_err(|e| e.to_string())?;
            let before = dir.path().join("before.json");
            let first = comparison(&["getline_leak", "lost_tree"])?;
            std::fs::write(&before, serde_json::to_string(&first).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
            let out = leaklab(&["compare", "--backend", "debug-new", "--sample", "getline_leak", "--sample", "lost_tree", "--jobs", "1", "--baseline", &before.to_string_lossy()])?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            if out.status.code() != Some(0) || !stdout.contains("baseline: no change") {
                return Err(format!("expected exit 0 and `baseline: no change`, got {:?}:\n{stdout}{}", out.status.code(), String::from_utf8_lossy(&out.stderr)).into());
            }
            Ok(())
        }),
        Trial::test("detector::baseline_note_removed_is_reported", || {
            let now = comparison(&["getline_leak", "lost_tree"])?;
            let diff = leaklab::baseline::diff_file(&data("baseline/note_removed.json"), &now).map_err(|e| e.to_string())?;
            let text = diff.render();
            let want = "debug-new::getline_leak  note added: the miss of definite size=120 count=3 at getline_leak.c:16 is now explained: getline allocates inside libc";
            if diff.changes.len() != 1 || !text.contains(want) || diff.worse() {
                return Err(format!("expected one better change containing {want:?}, got:\n{text}").into());
            }
            Ok(())
        }),
        Trial::test("detector::baseline_regression_exits_1", || {
            let out = leaklab(&["compare", "--backend", "debug-new", "--sample", "getline_leak", "--sample", "lost_tree", "--jobs", "1", "--baseline", &data("baseline/found_before.json").to_string_lossy()])?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            let want = "debug-new::getline_leak  definite size=120 count=3 at getline_leak.c:16: found, now missed";
            if out.status.code() != Some(1) || !stdout.contains("worse (1):") || !stdout.contains(want) {
                return Err(format!("expected exit 1 and {want:?}, got {:?}:\n{stdout}{}", out.status.code(), String::from_utf8_lossy(&out.stderr)).into());
            }
            Ok(())
        }),
        Trial::test("detector::baseline_sample_added_is_reported", || {
            let before = comparison(&["lost_tree"])?;
            let dir = leaklab::contain::scratch().map_err(|e| e.to_string())?;
            let file = dir.path().join("before.json");
            std::fs::write(&file, serde_json::to_string(&before).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
            let now = comparison(&["getline_leak", "lost_tree"])?;
            let diff = leaklab::baseline::diff_file(&file, &now).map_err(|e| e.to_string())?;
            let text = diff.render();
            if diff.changes.len() != 1 || !text.contains("debug-new::getline_leak  added: not in the baseline (1 annotations, 1 missed, 0 false reports)") || diff.worse() {
                return Err(format!("expected the added sample, and nothing worse, got:\n{text}").into());
            }
            // And the other way round: a sample gone is worse.
            let file2 = dir.path().join("two.json");
            std::fs::write(&file2, serde_json::to_string(&now).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
            let diff = leaklab::baseline::diff_file(&file2, &before).map_err(|e| e.to_string())?;
            if !diff.worse() || !diff.render().contains("debug-new::getline_leak  gone") {
                return Err(format!("expected the gone sample as worse, got:\n{}", diff.render()).into());
            }
            Ok(())
        }),
        Trial::test("detector::baseline_malformed_exits_2", || {
            let file = data("baseline/malformed.json");
            let out = leaklab(&["compare", "--backend", "debug-new", "--sample", "lost_tree", "--baseline", &file.to_string_lossy()])?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.code() != Some(2) || !stderr.contains("malformed.json: outcome 1 has no `report.backend`") {
                return Err(format!("expected exit 2 naming the file and the missing field, got {:?}: {stderr}", out.status.code()).into());
            }
            Ok(())
        }),
    ]
}

/// A manifest of the catalogue's own executables, written from `leaklab
/// list --format json` with paths relative to the manifest, is scored by
/// `suite` as the catalogue trials score those samples.
fn suite_trial() -> Trial {
    Trial::test("detector::suite_scores_catalogue_executables_like_the_catalogue", || {
        let backend_name = "valgrind";
        let b = backend::by_name(backend_name).map_err(|e| e.to_string())?;
        if let Availability::Unavailable { reason, .. } = b.availability() {
            return Err(format!("valgrind cannot run here ({reason}): this trial needs it").into());
        }
        let samples = ["lost_tree", "control_clean", "mismatched_delete"];
        let out = leaklab(&["list", "--format", "json"])?;
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("list --format json: {e}"))?;
        let dir = leaklab::contain::scratch().map_err(|e| e.to_string())?;
        let mut manifest = String::new();
        for entry in list.as_array().ok_or("list is not an array")? {
            let name = entry["name"].as_str().unwrap_or_default();
            if !samples.contains(&name) {
                continue;
            }
            // A relative path: the program is linked beside the manifest.
            let exe = PathBuf::from(entry["executable"].as_str().ok_or("no executable")?);
            std::os::unix::fs::symlink(&exe, dir.path().join(name)).map_err(|e| e.to_string())?;
            let leaks: Vec<serde_json::Value> = entry["expectations"]["leaks"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| serde_json::json!({"file": l["at"]["file"], "line": l["at"]["line"], "kind": l["kind"], "size": l["size"], "count": l["count"]}))
                .collect();
            let bad_frees: Vec<serde_json::Value> = entry["expectations"]["bad_frees"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| serde_json::json!({"file": b["at"]["file"], "line": b["at"]["line"], "kind": b["kind"]}))
                .collect();
            let expect = if leaks.is_empty() { "clean" } else { "leak" };
            let line = serde_json::json!({"name": name, "program": name, "args": entry["args"], "expect": expect, "leaks": leaks, "bad_frees": bad_frees});
            manifest.push_str(&format!("{line}\n"));
        }
        let file = dir.path().join("suite.jsonl");
        std::fs::write(&file, &manifest).map_err(|e| e.to_string())?;
        let out = leaklab(&["suite", &file.to_string_lossy(), "--backend", backend_name, "--format", "json", "--jobs", "2"])?;
        let got: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| format!("suite --format json: {e}; stderr: {}", String::from_utf8_lossy(&out.stderr)))?;
        let mut problems = Vec::new();
        for name in samples {
            let s = catalogue::find(name).map_err(|e| e.to_string())?;
            let expected = s.expectations().map_err(|e| e.to_string())?;
            let want = run_one(b.as_ref(), s, &expected, &RunConfig::default());
            let want = want.score.as_ref().map(|s| (s.found.len(), s.missed.len(), s.false_reports.len(), s.found_frees.len()));
            let outcome = got["outcomes"].as_array().into_iter().flatten().find(|o| o["report"]["sample"] == name);
            let count = |o: &serde_json::Value, k: &str| o["score"][k].as_array().map_or(0, Vec::len);
            let have = outcome.map(|o| (count(o, "found"), count(o, "missed"), count(o, "false_reports"), count(o, "found_frees")));
            if have != want {
                problems.push(format!("{name}: suite scored (found, missed, false, frees found) {have:?}, the catalogue {want:?}"));
            }
        }
        if out.status.code() != Some(0) {
            problems.push(format!("suite exited {:?} (0 expected: every program agrees): {}", out.status.code(), String::from_utf8_lossy(&out.stderr)));
        }
        if problems.is_empty() { Ok(()) } else { Err(problems.join("\n").into()) }
    })
}

/// A manifest line that is not JSON, or names no program, is refused with its line number.
fn suite_bad_line_trial() -> Trial {
    Trial::test("detector::suite_bad_line_names_its_line", || {
        let file = data("suite/bad_line.jsonl");
        let out = leaklab(&["suite", &file.to_string_lossy(), "--backend", "valgrind"])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(2) || !stderr.contains("bad_line.jsonl:3: missing field `program`") {
            return Err(format!("expected exit 2 naming line 3, got {:?}: {stderr}", out.status.code()).into());
        }
        Ok(())
    })
}

/// The trials of the detector files of `LEAKLAB_DETECTORS` (colon-separated),
/// one per sample as for a built-in backend, with snapshots in
/// `LEAKLAB_DETECTOR_SNAPSHOTS` (default: `snapshots/` beside each file).
fn env_trials() -> Vec<Trial> {
    let Ok(list) = std::env::var("LEAKLAB_DETECTORS") else { return Vec::new() };
    let detectors = match Detector::load_list(&list) {
        Ok(d) => d,
        Err(e) => {
            let message = e.to_string();
            return vec![Trial::test("detector::env_detectors_load", move || Err(message.clone().into()))];
        }
    };
    let mut trials = Vec::new();
    for d in detectors {
        let snapshots = std::env::var_os("LEAKLAB_DETECTOR_SNAPSHOTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| d.file.parent().unwrap_or(Path::new(".")).join("snapshots"));
        let d = std::sync::Arc::new(d);
        for sample in catalogue::samples().iter().filter(|s| d.applies(s)) {
            let (d, snapshots) = (d.clone(), snapshots.clone());
            trials.push(Trial::ignorable_test(format!("{}::{}", d.name, sample.name), move || {
                if let Availability::Unavailable { reason, fix } = d.availability() {
                    if crate::required(&d.name) {
                        return Err(format!("detector `{}` is required but cannot run: {reason}; fix: {fix}", d.name).into());
                    }
                    return Ok(Completion::ignored_with(reason));
                }
                let expected = sample.expectations().map_err(|e| e.to_string())?;
                let outcome = run_one(d.as_ref(), sample, &expected, &RunConfig::default());
                if let Status::Failed { error } = &outcome.report.status {
                    return Err(format!("the run failed: {error}").into());
                }
                let name = format!("{}__{}", d.name, sample.name);
                let mut settings = insta::Settings::clone_current();
                settings.set_snapshot_path(&snapshots);
                settings.set_prepend_module_to_snapshot(false);
                settings.set_omit_expression(true);
                let report = outcome.report.clone();
                let snap = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    settings.bind(|| insta::assert_yaml_snapshot!(name.as_str(), &report));
                }));
                let mut problems = outcome.score.map(|s| s.problems()).unwrap_or_default();
                if snap.is_err() {
                    problems.push(format!("the report differs from {}/{name}.snap (see the diff above)", snapshots.display()));
                }
                if problems.is_empty() { Ok(Completion::Completed) } else { Err(Failed::from(problems.join("\n"))) }
            }));
        }
    }
    trials
}

pub fn trials() -> Vec<Trial> {
    let mut trials = vec![bad_files_trial(), placeholders_trial(), suite_trial(), suite_bad_line_trial()];
    for sample in REPRODUCED {
        trials.push(reproduces_trial("memcheck-text.toml", sample));
        trials.push(reproduces_trial("memcheck-xml.toml", sample));
    }
    trials.extend(baseline_trials());
    trials.extend(env_trials());
    trials
}
