//! The test suite: one trial per backend × sample (its normalized report as an
//! insta snapshot, and its score against the sample's annotations), plus the
//! unit trials of the parser, the normalizer and the scorer, whose cases live
//! in tests/data/.
//!
//! A backend that cannot run here gives ignored trials with the reason, unless
//! LEAKLAB_REQUIRE_BACKENDS names it (or is `all`), as in CI: then they fail.

use std::path::{Path, PathBuf};

use leaklab::backend::{self, Availability, RunConfig};
use leaklab::catalogue;
use leaklab::compare::run_one;
use leaklab::report::Status;
use libtest_mimic::{Arguments, Completion, Failed, Trial};

mod book;
mod compiled;
mod detector;
mod clang;
mod cli;
mod cli_repro;
mod hook;
mod scan;
mod scan_hostile;
mod scan_parallel;
mod scan_fork;
mod labs;
mod lsan_bcc;
mod newtools;
mod newtools2;
mod repro;
mod units;
mod trace;
mod valgrind_repro;

pub(crate) fn required(backend: &str) -> bool {
    match std::env::var("LEAKLAB_REQUIRE_BACKENDS") {
        Ok(v) => v.split(',').map(str::trim).any(|b| b == "all" || b == backend),
        Err(_) => false,
    }
}

/// None when `name` can run; an ignored trial with the reason when it
/// cannot and is not required; an error when it is required.
pub(crate) fn unavailable(name: &str) -> Result<Option<Completion>, Failed> {
    let b = backend::by_name(name).map_err(|e| e.to_string())?;
    match b.availability() {
        Availability::Ready => Ok(None),
        Availability::Unavailable { reason, fix } if required(name) => {
            Err(format!("backend `{name}` is required but cannot run: {reason}; fix: {fix}").into())
        }
        Availability::Unavailable { reason, .. } => Ok(Some(Completion::ignored_with(reason))),
    }
}

/// A trial that needs every one of `backends`: ignored with the reason
/// where one cannot run (and is not required), else `check`.
pub(crate) fn needing(name: impl Into<String>, backends: &[&'static str], check: impl FnOnce() -> Result<(), Failed> + Send + 'static) -> Trial {
    let backends = backends.to_vec();
    Trial::ignorable_test(name, move || {
        for backend in backends {
            if let Some(skip) = unavailable(backend)? {
                return Ok(skip);
            }
        }
        check().map(|()| Completion::Completed)
    })
}

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

fn backend_trials() -> Vec<Trial> {
    let mut trials = Vec::new();
    for b in backend::all() {
        let name = b.name().to_string();
        let availability = b.availability();
        if let Availability::Unavailable { reason, fix } = &availability {
            if !required(&name) {
                eprintln!("note: backend `{name}` cannot run here ({reason}); its trials are ignored. Fix: {fix}");
            }
        }
        for sample in catalogue::samples().iter().filter(|s| s.applies_to(&name) && b.applies(s)) {
            let availability = availability.clone();
            let name = name.clone();
            trials.push(Trial::ignorable_test(format!("{name}::{}", sample.name), move || {
                if let Availability::Unavailable { reason, fix } = availability {
                    if required(&name) {
                        return Err(format!("backend `{name}` is required (LEAKLAB_REQUIRE_BACKENDS) but cannot run: {reason}; fix: {fix}").into());
                    }
                    return Ok(Completion::ignored_with(reason));
                }
                let backend = backend::by_name(&name).map_err(|e| e.to_string())?;
                let expected = sample.expectations().map_err(|e| e.to_string())?;
                let outcome = run_one(backend.as_ref(), sample, &expected, &RunConfig::default());
                match &outcome.report.status {
                    Status::Failed { error } => return Err(format!("the run failed: {error}").into()),
                    Status::NotAnalysed { reason } => return Err(format!("the run was not analysed: {reason}").into()),
                    _ => {}
                }
                if let Status::NotAnalysed { reason } = &outcome.report.status {
                    return Err(format!("the run was not analysed: {reason}").into());
                }
                let snapshot = format!("{name}__{}", sample.name);
                let mut settings = insta::Settings::clone_current();
                settings.set_snapshot_path(snapshot_dir());
                settings.set_prepend_module_to_snapshot(false);
                settings.set_omit_expression(true);
                let report = outcome.report.clone();
                let snap = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    settings.bind(|| insta::assert_yaml_snapshot!(snapshot.as_str(), &report));
                }));
                let score = outcome.score.expect("ok runs are scored");
                let mut problems = score.problems();
                if snap.is_err() {
                    problems.push(format!(
                        "the report differs from tests/snapshots/{snapshot}.snap (see the diff above; review with `cargo insta review`)"
                    ));
                }
                if problems.is_empty() {
                    Ok(Completion::Completed)
                } else {
                    Err(Failed::from(problems.join("\n")))
                }
            }));
        }
    }
    trials
}

/// The book's generated outputs must match the snapshots and the catalogue.
fn book_trial() -> Trial {
    Trial::test("book::generated_outputs_are_fresh", || {
        let paths = leaklab::book::BookPaths::in_repo(Path::new(env!("CARGO_MANIFEST_DIR")));
        let stale = leaklab::book::stale(&paths).map_err(|e| e.to_string())?;
        if stale.is_empty() {
            return Ok(());
        }
        Err(format!("{}
refresh them with `{}` and commit book/src/generated/", stale.join("\n"), leaklab::book::REFRESH).into())
    })
}

/// Every `{{#include path}}` of the book names a file that exists (mdbook
/// only logs a missing one and builds anyway).
fn book_includes_trial() -> Trial {
    Trial::test("book::includes_resolve", || {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src");
        let mut missing = Vec::new();
        let mut pages = vec![src.clone()];
        while let Some(dir) = pages.pop() {
            for entry in std::fs::read_dir(&dir).map_err(|e| e.to_string())? {
                let path = entry.map_err(|e| e.to_string())?.path();
                if path.is_dir() {
                    pages.push(path);
                    continue;
                }
                if path.extension().is_none_or(|x| x != "md") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
                for part in text.split("{{#include ").skip(1) {
                    let target = part.split("}}").next().unwrap_or("").trim();
                    // `file:anchor` or `file:start:end` name a part of the file.
                    let file = target.split(':').next().unwrap_or(target);
                    if !path.parent().unwrap().join(file).is_file() {
                        missing.push(format!("{}: {target}", path.strip_prefix(&src).unwrap().display()));
                    }
                }
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("book includes of missing files:\n  {}", missing.join("\n  ")).into())
        }
    })
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = units::trials();
    trials.extend(compiled::trials());
    trials.push(book_trial());
    trials.push(book_includes_trial());
    trials.extend(book::trials());
    trials.extend(cli::trials());
    trials.extend(cli_repro::trials());
    trials.extend(scan::trials());
    trials.extend(scan_hostile::trials());
    trials.extend(scan_parallel::trials());
    trials.extend(scan_fork::trials());
    trials.extend(hook::trials());
    trials.extend(labs::trials());
    trials.extend(trace::trials());
    trials.extend(valgrind_repro::trials());
    trials.extend(lsan_bcc::trials());
    trials.extend(detector::trials());
    trials.extend(newtools::trials());
    trials.extend(newtools2::trials());
    trials.extend(clang::trials());
    trials.push(Trial::test("repro::programs_build", || repro::dir().map(|_| ())));
    trials.extend(backend_trials());
    libtest_mimic::run(&args, trials).exit();
}
