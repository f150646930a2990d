//! `leaklab compare`: every sample under every backend, in parallel, scored
//! and rolled up into the accuracy matrix.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::backend::{self, Availability, Backend, RunConfig, Target};
use crate::catalogue::{self, SampleInfo};
use crate::error::Error;
use crate::normalize::normalize;
use crate::report::{Report, Status};
use crate::score::{score_as, Class, Score, Scoring, Tally};

/// What to compare.
#[derive(Debug, Clone, Default)]
pub struct CompareConfig {
    /// Backend names; empty means all.
    pub backends: Vec<String>,
    /// Sample names; empty means the whole catalogue.
    pub samples: Vec<String>,
    /// Parallel runs; 0 means one per CPU.
    pub jobs: usize,
    pub run: RunConfig,
    /// The user's detector files: rows of their own, besides the backends.
    pub detectors: Vec<crate::backends::detector::Detector>,
}

/// One program to score: a catalogue sample, or a line of an external
/// suite's manifest (`suite.rs`).
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    /// Why it cannot be run, when it cannot (a sample without a plain build).
    pub target: Result<Target, String>,
    pub expected: crate::annotations::Expectations,
}

/// One backend's run on one sample.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The normalized report.
    pub report: Report,
    /// None when the backend was skipped. A run that failed or could not
    /// analyse is scored as having found nothing: its annotations are misses.
    pub score: Option<Score>,
    pub wall_ms: u64,
}

impl Outcome {
    /// The run worked and agrees with the annotations (explained notes included).
    #[must_use]
    pub fn agrees(&self) -> bool {
        self.report.status == Status::Ok && self.score.as_ref().is_some_and(Score::passed)
    }
}

/// A backend that could not run here.
#[derive(Debug, Clone, Serialize)]
pub struct Unavailable {
    pub backend: String,
    pub reason: String,
    pub fix: String,
}

/// Per-backend rollup.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BackendSummary {
    pub by_class: BTreeMap<Class, Tally>,
    pub total: Tally,
    pub runs: u32,
    pub failed_runs: u32,
    pub disagreeing_samples: u32,
    /// Median wall time of one sample run, in ms.
    pub median_wall_ms: u64,
}

impl BackendSummary {
    /// Of the annotated leaks found (bad frees have no kind), how many were
    /// reported with the annotated kind, out of how many.
    #[must_use]
    pub fn kind_agreement(&self) -> (u32, u32) {
        self.by_class.iter().filter(|(c, _)| **c != Class::BadFree).fold((0, 0), |(a, f), (_, t)| (a + t.kind_agreed, f + t.found))
    }
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub backends: Vec<String>,
    pub samples: Vec<String>,
    pub outcomes: Vec<Outcome>,
    pub unavailable: Vec<Unavailable>,
    pub summary: BTreeMap<String, BackendSummary>,
}

impl Comparison {
    #[must_use]
    pub fn outcome(&self, backend: &str, sample: &str) -> Option<&Outcome> {
        self.outcomes.iter().find(|o| o.report.backend == backend && o.report.sample == sample)
    }

    /// Every run worked and agrees with the annotations.
    #[must_use]
    pub fn all_agree(&self) -> bool {
        self.outcomes.iter().all(Outcome::agrees)
    }
}

/// The backends a comparison runs: those named (built-in or detector),
/// or every built-in one; every detector file given is a row either way.
pub fn backends(names: &[String], detectors: &[crate::backends::detector::Detector]) -> Result<Vec<Box<dyn Backend>>, Error> {
    let mut chosen: Vec<Box<dyn Backend>> = if names.is_empty() {
        backend::all()
    } else {
        names
            .iter()
            .filter(|n| !detectors.iter().any(|d| &d.name == *n))
            .map(|b| backend::by_name_among(backend::with_detectors(detectors)?, b))
            .collect::<Result<_, _>>()?
    };
    // Names checked for clashes with the built-ins and with each other.
    let all = backend::with_detectors(detectors)?;
    chosen.extend(all.into_iter().filter(|b| detectors.iter().any(|d| d.name == b.name())));
    Ok(chosen)
}

/// Runs the comparison. `progress` is called after each run with (done, total, label).
pub fn compare(config: &CompareConfig, progress: &(dyn Fn(usize, usize, &str) + Sync)) -> Result<Comparison, Error> {
    let backends = backends(&config.backends, &config.detectors)?;
    let samples: Vec<&'static SampleInfo> = if config.samples.is_empty() {
        catalogue::samples().iter().collect()
    } else {
        config.samples.iter().map(|s| catalogue::find(s)).collect::<Result<_, _>>()?
    };
    // Expectations parse once per sample, before anything runs: a malformed
    // annotation stops the comparison with its file:line.
    let mut cases = Vec::new();
    for s in &samples {
        cases.push((Case { name: s.name.to_string(), target: Target::sample(s).map_err(|e| e.to_string()), expected: s.expectations()? }, Some(*s)));
    }
    Ok(compare_cases(&backends, &cases, config, progress))
}

/// Runs every backend that can run here on every case it applies to (a
/// catalogue sample's `//@ backends:` and the backend's own `applies`; a
/// suite's program: every backend), in parallel, scored and rolled up.
#[must_use]
pub fn compare_cases(
    backends: &[Box<dyn Backend>],
    cases: &[(Case, Option<&'static SampleInfo>)],
    config: &CompareConfig,
    progress: &(dyn Fn(usize, usize, &str) + Sync),
) -> Comparison {
    let mut unavailable = Vec::new();
    let mut runnable: Vec<&dyn Backend> = Vec::new();
    for b in backends {
        match b.availability() {
            Availability::Ready => runnable.push(b.as_ref()),
            Availability::Unavailable { reason, fix } => unavailable.push(Unavailable { backend: b.name().into(), reason, fix }),
        }
    }
    let applies = |b: &dyn Backend, s: Option<&'static SampleInfo>| s.is_none_or(|s| s.applies_to(b.name()) && b.applies(s));
    let jobs: Vec<(&dyn Backend, &Case)> =
        runnable.iter().flat_map(|b| cases.iter().filter(|(_, s)| applies(*b, *s)).map(move |(c, _)| (*b, c))).collect();

    let workers = if config.jobs == 0 { std::thread::available_parallelism().map_or(2, |n| n.get()) } else { config.jobs };
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<(usize, Outcome)>> = Mutex::new(Vec::new());
    let total = jobs.len();
    std::thread::scope(|scope| {
        for _ in 0..workers.min(total.max(1)) {
            scope.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(&(b, case)) = jobs.get(i) else { break };
                let outcome = match &case.target {
                    Ok(target) => run_target(b, target, &case.expected, &config.run),
                    Err(error) => failed(b, &case.name, error, &case.expected),
                };
                let mut r = results.lock().unwrap();
                r.push((i, outcome));
                let done = r.len();
                drop(r);
                progress(done, total, &format!("{}::{}", b.name(), case.name));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    let outcomes: Vec<Outcome> = results.into_iter().map(|(_, o)| o).collect();

    let names: Vec<String> = runnable.iter().map(|b| b.name().to_string()).collect();
    let samples: Vec<String> = cases.iter().map(|(c, _)| c.name.clone()).collect();
    Comparison::from_outcomes(names, samples, outcomes, unavailable)
}

impl Comparison {
    /// Rolls scored outcomes up into per-backend summaries.
    #[must_use]
    pub fn from_outcomes(backends: Vec<String>, samples: Vec<String>, outcomes: Vec<Outcome>, unavailable: Vec<Unavailable>) -> Comparison {
        let mut summary: BTreeMap<String, BackendSummary> = BTreeMap::new();
        for b in &backends {
            let mine: Vec<&Outcome> = outcomes.iter().filter(|o| &o.report.backend == b).collect();
            let mut s = BackendSummary { runs: mine.len() as u32, ..BackendSummary::default() };
            for o in &mine {
                if let Some(sc) = &o.score {
                    for (class, t) in sc.tallies() {
                        s.by_class.entry(class).or_default().add(t);
                        s.total.add(t);
                    }
                }
                if o.report.status != Status::Ok {
                    s.failed_runs += 1;
                } else if !o.agrees() {
                    s.disagreeing_samples += 1;
                }
            }
            let mut walls: Vec<u64> = mine.iter().map(|o| o.wall_ms).collect();
            walls.sort_unstable();
            s.median_wall_ms = walls.get(walls.len() / 2).copied().unwrap_or(0);
            summary.insert(b.clone(), s);
        }
        Comparison { backends, samples, outcomes, unavailable, summary }
    }
}

/// Runs, normalizes and scores one backend on one sample.
#[must_use]
pub fn run_one(b: &dyn Backend, sample: &'static SampleInfo, expected: &crate::annotations::Expectations, config: &RunConfig) -> Outcome {
    match Target::sample(sample) {
        Ok(target) => run_target(b, &target, expected, config),
        Err(e) => failed(b, sample.name, &e.to_string(), expected),
    }
}

/// A run that could not start: every annotation is a miss.
fn failed(b: &dyn Backend, name: &str, error: &str, expected: &crate::annotations::Expectations) -> Outcome {
    let mut r = Report::new(name, b.name());
    r.status = Status::Failed { error: error.to_string() };
    let nothing = score_as(&r, expected, Scoring::of(b));
    Outcome { report: r, score: Some(nothing), wall_ms: 0 }
}

/// Runs, normalizes and scores one backend on one target (a sample, or a
/// program of an external suite) against its expectations.
#[must_use]
pub fn run_target(b: &dyn Backend, target: &Target, expected: &crate::annotations::Expectations, config: &RunConfig) -> Outcome {
    let report = backend::execute(b, target, config);
    let wall_ms = report.stats.as_ref().map_or(0, |s| s.wall_ms);
    let report = normalize(report);
    let score = match &report.status {
        Status::Ok => Some(score_as(&report, expected, Scoring::of(b))),
        // Nothing was found, whatever the report lists: every annotation is a miss.
        Status::Failed { .. } | Status::NotAnalysed { .. } => {
            let nothing = Report { leaks: Vec::new(), bad_frees: Vec::new(), ..report.clone() };
            Some(score_as(&nothing, expected, Scoring::of(b)))
        }
        Status::Skipped { .. } => None,
    };
    Outcome { report, score, wall_ms }
}
