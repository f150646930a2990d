//! Lab 01: observe a growing process. The checker runs the lab's program
//! itself, reads /proc/PID/statm and /proc/PID/maps twice a few seconds
//! apart, and compares what grew with the student's answers.toml. When the
//! `watch` backend is built in and can run, it confirms the program grows.

use std::time::{Duration, Instant};

use super::answers::Answers;
use super::{compile, Checks, Ctx, Problem};
use crate::backend::{self, RunConfig, Target};
use crate::error::Error;
use crate::process::{Child, Spec};
use crate::report::Status;

pub const CHECKS: &[&str] = &["answers.toml parses", "builds", "region", "kind", "vsz rate", "rss rate", "mapping count", "watch agrees"];

/// How far off a rate may be: measurements by hand with top or pidstat are rough.
const TOLERANCE: f64 = 0.30;
const WARM_UP: Duration = Duration::from_millis(1000);
const WINDOW: Duration = Duration::from_millis(3000);

/// What the lab calls a mapping: the shared /proc/PID/maps line, with the
/// two answers the student gives about it.
pub use crate::maps::Mapping;

/// The name the lab asks for: the path, or `[anon]` when there is none.
#[must_use]
pub fn name(m: &Mapping) -> String {
    m.path.clone().unwrap_or_else(|| "[anon]".to_string())
}

/// One of the source article's four kinds of memory. The lab counts the
/// kernel's `[heap]` and `[stack]` as what they are: private anonymous memory.
#[must_use]
pub fn kind(m: &Mapping) -> &'static str {
    m.region_kind().map_or("private-anon", crate::report::RegionKind::as_str)
}

/// A reading of /proc/PID: statm's first two fields and the maps.
#[derive(Debug, Clone)]
pub struct Reading {
    pub at: Instant,
    pub vsz_kib: u64,
    pub rss_kib: u64,
    pub maps: Vec<Mapping>,
}

/// Reads /proc/PID/statm and /proc/PID/maps.
pub fn read(pid: i32) -> Result<Reading, Error> {
    let statm_path = format!("/proc/{pid}/statm");
    let statm = std::fs::read_to_string(&statm_path).map_err(|e| Error::io(statm_path.as_ref(), e))?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    let (size, resident) = crate::watch::parse_statm(&statm, page)?;
    Ok(Reading { at: Instant::now(), vsz_kib: size / 1024, rss_kib: resident / 1024, maps: crate::maps::read(pid)? })
}

/// What grew between two readings.
#[derive(Debug, Clone)]
pub struct Growth {
    pub seconds: f64,
    pub vsz_kib_per_s: f64,
    pub rss_kib_per_s: f64,
    /// The mapping that grew most (a new one counts with its whole size), and by how many bytes.
    pub region: Option<(Mapping, u64)>,
    pub mappings_before: usize,
    pub mappings_after: usize,
}

/// Compares two readings. A mapping is the same one when it starts at the
/// same address with the same path (the heap grows at its end).
#[must_use]
pub fn growth(a: &Reading, b: &Reading) -> Growth {
    let seconds = b.at.duration_since(a.at).as_secs_f64().max(1e-3);
    let mut best: Option<(Mapping, u64)> = None;
    for m in &b.maps {
        let before = a.maps.iter().find(|x| x.start == m.start && x.path == m.path).map_or(0, |x| x.end - x.start);
        let grew = (m.end - m.start).saturating_sub(before);
        if grew > 0 && best.as_ref().is_none_or(|(_, g)| grew > *g) {
            best = Some((m.clone(), grew));
        }
    }
    Growth {
        seconds,
        vsz_kib_per_s: (b.vsz_kib as f64 - a.vsz_kib as f64) / seconds,
        rss_kib_per_s: (b.rss_kib as f64 - a.rss_kib as f64) / seconds,
        region: best,
        mappings_before: a.maps.len(),
        mappings_after: b.maps.len(),
    }
}

/// Runs `program` (forever) and measures it over the window.
fn measure(program: &std::path::Path) -> Result<Growth, Error> {
    let child = Child::spawn(&Spec::new(program, WARM_UP + WINDOW + Duration::from_secs(30)).arg("0").env_remove("LEAKLAB_CHECKPOINT"))?;
    std::thread::sleep(WARM_UP);
    let a = read(child.pid()).map_err(|e| Error::Os(format!("the program died before it could be measured: {e}")))?;
    std::thread::sleep(WINDOW);
    let b = read(child.pid()).map_err(|e| Error::Os(format!("the program died before it could be measured: {e}")))?;
    // Dropping the child kills its group and reaps it.
    drop(child);
    Ok(growth(&a, &b))
}

fn rate_problem(answers: &Answers, key: &str, answer: f64, measured: f64, what: &str) -> Vec<Problem> {
    if measured <= 0.0 {
        return vec![answers.problem(key, format!("the checker saw no {what} growth at all this time; run the check again"))];
    }
    let near = |factor: f64| ((answer / factor) - measured).abs() / measured <= TOLERANCE;
    if near(1.0) {
        return Vec::new();
    }
    // No "too high" or "too low": that would let a guess home in on the
    // figure. Only the slips of units a student makes are named.
    // SAFETY: sysconf has no preconditions.
    let page_kib = (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) / 1024) as f64;
    let why = if near(1.0 / page_kib) {
        format!("it looks like pages per second: statm counts pages of {page_kib} KiB, and the answer is in KiB")
    } else if near(1024.0) || near(1000.0) {
        "it looks like bytes per second: the answer is in KiB".to_string()
    } else if near(1.0 / 1024.0) {
        "it looks like MiB per second: the answer is in KiB".to_string()
    } else {
        "measure over a longer window (ten seconds or more) and divide the growth by the seconds it took".to_string()
    };
    vec![answers.problem(
        key,
        format!("{answer} KiB/s is more than {:.0}% off the {what} growth the checker measured: {why}", TOLERANCE * 100.0),
    )]
}

pub fn run(ctx: &Ctx, checks: &mut Checks) -> Result<(), Error> {
    let Some(answers) = Answers::load_checked(ctx, checks) else {
        return Ok(());
    };
    let build = compile::build(ctx, &["grower.c"], "grower", &[])?;
    if !checks.record("builds", build.problems()) {
        return Ok(());
    }
    let g = measure(&ctx.path("grower"))?;

    let (region, _grew_bytes) = g.region.clone().ok_or_else(|| Error::Os("no mapping of the lab's program grew while the checker watched".into()))?;
    checks.record(
        "region",
        match answers.string("region") {
            Err(p) => vec![p],
            Ok(r) if r == name(&region) => Vec::new(),
            Ok(r) => vec![answers.problem(
                "region",
                format!("`{r}` is not the mapping that keeps growing: read /proc/PID/maps twice, a few seconds apart, and compare the sizes (end - start)"),
            )],
        },
    );
    checks.record(
        "kind",
        match answers.string("kind") {
            Err(p) => vec![p],
            Ok(k) if k == kind(&region) => Vec::new(),
            Ok(k) if !["private-anon", "shared-anon", "private-file", "shared-file"].contains(&k.as_str()) => {
                vec![answers.problem("kind", format!("`{k}` is not one of private-anon, shared-anon, private-file, shared-file"))]
            }
            Ok(k) => vec![answers.problem(
                "kind",
                format!("`{k}` is not the kind of that mapping: its permissions column says private (p) or shared (s), and its path column whether a file backs it"),
            )],
        },
    );
    checks.record(
        "vsz rate",
        match answers.number("vsz_kib_per_s") {
            Err(p) => vec![p],
            Ok(v) => rate_problem(&answers, "vsz_kib_per_s", v, g.vsz_kib_per_s, "virtual size"),
        },
    );
    checks.record(
        "rss rate",
        match answers.number("rss_kib_per_s") {
            Err(p) => vec![p],
            Ok(v) => rate_problem(&answers, "rss_kib_per_s", v, g.rss_kib_per_s, "resident"),
        },
    );
    let grows = g.mappings_after > g.mappings_before;
    checks.record(
        "mapping count",
        match answers.string("mapping_count_grows") {
            Err(p) => vec![p],
            Ok(a) if a == "yes" || a == "no" => {
                if (a == "yes") == grows {
                    Vec::new()
                } else {
                    vec![answers.problem("mapping_count_grows", format!("`{a}` is not what the checker saw: count the lines of /proc/PID/maps a few seconds apart"))]
                }
            }
            Ok(a) => vec![answers.problem("mapping_count_grows", format!("answer \"yes\" or \"no\", not `{a}`"))],
        },
    );
    confirm_with_watch(ctx, checks, &answers)
}

/// The `watch` backend, when built in and able to run, watches the program
/// too: the student's kind of memory (and region, where watch names one)
/// must be among the classes it saw grow.
fn confirm_with_watch(ctx: &Ctx, checks: &mut Checks, answers: &Answers) -> Result<(), Error> {
    if checks.is_done("watch agrees") {
        return Ok(());
    }
    let (Ok(kind), Ok(region)) = (answers.string("kind"), answers.string("region")) else {
        checks.record("watch agrees", vec![answers.problem("kind", "nothing to confirm yet: answer `region` and `kind` first")]);
        return Ok(());
    };
    let watch = backend::by_name("watch")?;
    // Forever mode: the backend stops it after its window.
    let target = Target::program(ctx.path("grower").to_str().unwrap_or("grower"), &["0".to_string()])?;
    let config = RunConfig { timeout: Duration::from_secs(60), after: Some(Duration::from_secs(3)), ..RunConfig::default() };
    let report = backend::execute(watch.as_ref(), &target, &config);
    let problems = match &report.status {
        Status::Failed { error } | Status::NotAnalysed { reason: error } => vec![Problem::new(format!("the watch backend failed: {error}"))],
        Status::Skipped { reason, fix } => {
            checks.skip("watch agrees", reason.clone(), fix.clone());
            return Ok(());
        }
        Status::Ok => {
            let grew: Vec<_> = report.leaks.iter().filter_map(|l| l.region.as_ref()).collect();
            let agrees = grew.iter().any(|r| r.kind.as_str() == kind && r.path.as_ref().is_none_or(|p| *p == region));
            if agrees {
                Vec::new()
            } else {
                // Not what it saw: that is the answer to `region` and `kind`.
                vec![answers.problem(
                    "kind",
                    format!("leaklab's watch backend did not see {kind} memory grow in `{region}`: look at the maps again, a few seconds apart"),
                )]
            }
        }
    };
    checks.record("watch agrees", problems);
    Ok(())
}
