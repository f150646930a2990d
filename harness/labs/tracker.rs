//! Lab 03: a debug_new-style tracker. The checker compiles the student's
//! debug_new.cpp with test programs whose leaks are annotated (`//~ LEAK`,
//! parsed by crate::annotations), runs them, reads the tracker's report on
//! stderr (the format of the lab's README) and compares it line by line with
//! the annotations.

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;

use super::generate::Rng;
use super::{compile, Checks, Ctx, Problem};
use crate::annotations;
use crate::error::Error;
use crate::process::{self, Spec};

pub const CHECKS: &[&str] =
    &["builds", "victim runs unchanged", "report format", "every leak reported", "nothing freed reported", "summary line", "a program it has never seen", "thread-safe"];

const TRACKER: &str = "debug_new.cpp";

/// How many times the threaded victim runs: a race shows on some runs only.
const THREAD_RUNS: u32 = 5;

/// One `debug_new: leaked N bytes at FILE:LINE (new|new[])` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    pub bytes: u64,
    pub file: String,
    pub line: u32,
    pub array: bool,
}

/// The tracker's report: its leak lines, its summary, and lines it could not read.
#[derive(Debug, Default)]
pub struct TrackerReport {
    pub leaks: Vec<Reported>,
    /// (leaks, bytes) of `debug_new: N leaks, M bytes`.
    pub summary: Option<(u64, u64)>,
    pub unreadable: Vec<String>,
}

#[must_use]
pub fn parse_report(stderr: &str) -> TrackerReport {
    let leak = Regex::new(r"^debug_new: leaked (\d+) bytes at (\S+):(\d+) \((new|new\[\])\)$").expect("valid regex");
    let summary = Regex::new(r"^debug_new: (\d+) leaks?, (\d+) bytes?$").expect("valid regex");
    let mut out = TrackerReport::default();
    for l in stderr.lines().map(str::trim_end) {
        if let Some(c) = leak.captures(l) {
            out.leaks.push(Reported { bytes: c[1].parse().unwrap_or(0), file: c[2].to_string(), line: c[3].parse().unwrap_or(0), array: &c[4] == "new[]" });
        } else if let Some(c) = summary.captures(l) {
            out.summary = Some((c[1].parse().unwrap_or(0), c[2].parse().unwrap_or(0)));
        } else if l.starts_with("debug_new:") {
            out.unreadable.push(l.to_string());
        }
    }
    out
}

/// Expected blocks of one line: how many, and of which sizes.
#[derive(Debug, Default)]
struct Want {
    blocks: u64,
    sizes: Vec<u64>,
}

/// Whether the `new` on a source line is an array new (`new T[n]`).
fn is_array_new(source_line: &str) -> bool {
    let code = source_line.split("//").next().unwrap_or(source_line);
    Regex::new(r"\bnew\s+[\w:<>]+\s*\[").expect("valid regex").is_match(code)
}

/// Compares the report of one test program with its annotations.
fn compare(ctx: &Ctx, program: &str, report: &TrackerReport) -> Result<(Vec<Problem>, Vec<Problem>), Error> {
    let text = ctx.read(program)?;
    let shown = ctx.shown(program);
    let expected = annotations::parse(program, &text)?;
    let mut want: BTreeMap<u32, Want> = BTreeMap::new();
    for e in &expected.leaks {
        let w = want.entry(e.at.line).or_default();
        w.blocks += e.count;
        w.sizes.push(e.size);
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut got: BTreeMap<u32, Vec<&Reported>> = BTreeMap::new();
    let mut elsewhere = Vec::new();
    for r in &report.leaks {
        if r.file.rsplit('/').next() == Some(program) {
            got.entry(r.line).or_default().push(r);
        } else {
            elsewhere.push(r);
        }
    }
    let mut missing = Vec::new();
    for (line, w) in &want {
        let at = |m: String| Problem::at(&shown, Some(*line), m);
        let size = w.sizes[0];
        match got.get(line) {
            None => missing.push(at(format!("{} block(s) of {size} bytes leak here, but the tracker does not report them", w.blocks))),
            Some(rs) => {
                if rs.len() as u64 != w.blocks {
                    missing.push(at(format!("{} block(s) leak here; the tracker reports {}", w.blocks, rs.len())));
                }
                if let Some(r) = rs.iter().find(|r| !w.sizes.contains(&r.bytes)) {
                    missing.push(at(format!(
                        "the blocks leaked here are {size} bytes (what operator new is asked for); the tracker says {}",
                        r.bytes
                    )));
                }
                let array = lines.get(*line as usize - 1).is_some_and(|l| is_array_new(l));
                if let Some(r) = rs.iter().find(|r| r.array != array) {
                    missing.push(at(format!("this is a `{}`; the tracker says `{}`", if array { "new[]" } else { "new" }, if r.array { "new[]" } else { "new" })));
                }
            }
        }
    }
    let mut extra = Vec::new();
    for (line, rs) in &got {
        if !want.contains_key(line) {
            extra.push(Problem::at(
                &shown,
                Some(*line),
                format!("reported as leaked ({} block(s)), but every block allocated here is deleted: does operator delete unlink the block?", rs.len()),
            ));
        }
    }
    if !elsewhere.is_empty() {
        let files: Vec<String> = elsewhere.iter().map(|r| format!("{}:{}", r.file, r.line)).collect();
        extra.push(Problem::new(format!(
            "{} block(s) reported outside {program} ({}), but everything else is freed before exit: does the report run after the static destructors?",
            elsewhere.len(),
            files.join(", ")
        )));
    }
    Ok((missing, extra))
}

/// The test program the checker writes for one check, in the build directory.
const GENERATED: &str = "victim_unseen.cpp";

/// A test program nobody has seen: 6 to 12 allocations of made-up sizes
/// (arrays of char or long, a struct of N bytes), some in loops, about half
/// deleted, at lines moved by blank lines; its leaks annotated as in
/// victim.cpp. A tracker that prints the leaks of the lab's victims from
/// memory reports none of these.
#[must_use]
pub fn unseen_victim(rng: &mut Rng) -> String {
    let mut src = String::from(
        "// victim_unseen.cpp: written by the lab 03 checker for one check.\n#include <cstdio>\n\n#include \"debug_new.h\"\n\n\
         template <int N>\nstruct Blob {\n    char bytes[N];\n};\n\nstatic void *kept[64];\n\nint main()\n{\n",
    );
    // Which allocations leak: at least two leak and two are deleted, in a shuffled order.
    let allocations = rng.range(6, 12) as usize;
    let mut plan: Vec<bool> = (0..allocations).map(|i| i < 2 || (i >= 4 && rng.range(0, 1) == 0)).collect();
    for i in (1..plan.len()).rev() {
        plan.swap(i, rng.range(0, i as u64) as usize);
    }
    let mut slot = 0;
    for (i, leak) in plan.into_iter().enumerate() {
        for _ in 0..rng.range(0, 2) {
            src.push('\n');
        }
        let n = rng.range(1, 40);
        let (ty, expr, size, array) = match rng.range(0, 2) {
            0 => ("char", format!("new char[{n}]"), n, true),
            1 => ("long", format!("new long[{n}]"), 8 * n, true),
            _ => {
                let b = rng.range(1, 200);
                ("Blob", format!("new Blob<{b}>"), b, false)
            }
        };
        if leak && rng.range(0, 3) == 0 && slot + 5 < 64 {
            let count = rng.range(2, 5);
            src.push_str(&format!(
                "    for (int i = 0; i < {count}; i++)\n        kept[{slot} + i] = {expr};  //~ LEAK definite size={size} count={count}\n"
            ));
            slot += count;
            continue;
        }
        let decl = if ty == "Blob" { format!("Blob<{}> *", expr.trim_start_matches("new Blob<").trim_end_matches('>')) } else { format!("{ty} *") };
        if leak {
            src.push_str(&format!("    {decl}p{i} = {expr};  //~ LEAK definite size={size}\n    kept[{slot}] = p{i};\n"));
            slot += 1;
        } else {
            src.push_str(&format!("    {decl}p{i} = {expr};\n    kept[{slot}] = p{i};\n    {}p{i};\n", if array { "delete[] " } else { "delete " }));
            slot += 1;
        }
    }
    src.push_str("    std::printf(\"%p\\n\", kept[0]);\n    return 0;\n}\n");
    src
}

/// Runs the student's tracker on a program written for this check.
fn check_unseen(ctx: &Ctx) -> Result<Vec<Problem>, Error> {
    let source = unseen_victim(&mut Rng::new());
    let path = ctx.path(GENERATED);
    std::fs::write(&path, &source).map_err(|e| Error::io(&path, e))?;
    let program = GENERATED.trim_end_matches(".cpp");
    let build = compile::build(ctx, &[TRACKER, GENERATED], program, &["-std=c++17"])?;
    let on = "on a test program the checker wrote for this check";
    if !build.ok {
        return Ok(vec![tracker_problem(ctx, format!("{on}, the tracker does not build: {}", build.diagnostics.lines().next().unwrap_or("")))]);
    }
    let done = process::run(&Spec::new(ctx.path(program), Duration::from_secs(30)))?;
    if !done.exit.success() {
        return Ok(vec![tracker_problem(ctx, format!("{on}, the program built with the tracker {}", done.exit.describe()))]);
    }
    let report = parse_report(&done.stderr_text());
    let (missing, extra) = compare(ctx, GENERATED, &report)?;
    let lines: Vec<&str> = source.lines().collect();
    let mut problems: Vec<Problem> = missing
        .into_iter()
        .chain(extra)
        .map(|p| {
            // The student cannot open the program: quote its line instead.
            let quoted = p.line.and_then(|l| lines.get(l as usize - 1)).map(|l| l.split("//~").next().unwrap_or(l).trim().to_string());
            let at = p.line.map(|l| format!("{GENERATED}:{l}")).unwrap_or_else(|| GENERATED.to_string());
            let line = quoted.map(|q| format!(" `{q}`")).unwrap_or_default();
            tracker_problem(ctx, format!("{on}, {at}{line}: {}", p.message))
        })
        .collect();
    let blocks = report.leaks.len() as u64;
    let bytes: u64 = report.leaks.iter().map(|r| r.bytes).sum();
    if report.summary != Some((blocks, bytes)) && problems.is_empty() {
        problems.push(tracker_problem(ctx, format!("{on}, the summary line does not add up the leak lines")));
    }
    Ok(problems)
}

fn tracker_problem(ctx: &Ctx, message: impl Into<String>) -> Problem {
    Problem::at(&ctx.shown(TRACKER), None, message)
}

pub fn run(ctx: &Ctx, checks: &mut Checks) -> Result<(), Error> {
    let build = compile::build(ctx, &[TRACKER, "victim.cpp"], "victim", &["-std=c++17"])?;
    if !checks.record("builds", build.problems()) {
        return Ok(());
    }
    let done = process::run(&Spec::new(ctx.path("victim"), Duration::from_secs(30)))?;
    let mut problems = Vec::new();
    if !done.exit.success() {
        problems.push(tracker_problem(ctx, format!("victim.cpp built with the tracker {}: {}", done.exit.describe(), done.stderr_text().lines().last().unwrap_or(""))));
    }
    problems.extend(super::valgrind_fix::output_difference(ctx, &String::from_utf8_lossy(&done.stdout), "expected-output.txt")?);
    if !checks.record("victim runs unchanged", problems) {
        return Ok(());
    }

    let stderr = done.stderr_text();
    let report = parse_report(&stderr);
    let mut format = Vec::new();
    for l in &report.unreadable {
        format.push(tracker_problem(ctx, format!("cannot read `{l}`: leak lines are `debug_new: leaked N bytes at FILE:LINE (new)` or `(new[])`")));
    }
    if report.leaks.is_empty() && report.summary.is_none() {
        format.push(tracker_problem(ctx, "the tracker printed no `debug_new: ...` line on stderr at exit"));
    }
    // A tracker that prints nothing cannot be judged on what it reports.
    let silent = report.leaks.is_empty() && report.summary.is_none();
    if !checks.record("report format", format) && silent {
        return Ok(());
    }

    let (missing, extra) = compare(ctx, "victim.cpp", &report)?;
    checks.record("every leak reported", missing);
    checks.record("nothing freed reported", extra);

    let blocks = report.leaks.len() as u64;
    let bytes: u64 = report.leaks.iter().map(|r| r.bytes).sum();
    checks.record(
        "summary line",
        match report.summary {
            None => vec![tracker_problem(ctx, "no summary line `debug_new: N leaks, M bytes` after the leaks")],
            Some((n, b)) if (n, b) == (blocks, bytes) => Vec::new(),
            Some((n, b)) => vec![tracker_problem(ctx, format!("the summary says {n} leaks, {b} bytes; the leak lines add up to {blocks} leaks, {bytes} bytes"))],
        },
    );

    checks.record("a program it has never seen", check_unseen(ctx)?);

    // Concurrent allocation: an unlocked list loses or corrupts links, but
    // not on every run: several runs, and every one must be exact.
    let build = compile::build(ctx, &[TRACKER, "victim_threads.cpp"], "victim_threads", &["-std=c++17", "-pthread"])?;
    let mut problems = build.problems();
    if build.ok {
        for run in 1..=THREAD_RUNS {
            let done = process::run(&Spec::new(ctx.path("victim_threads"), Duration::from_secs(60)))?;
            let mut wrong = Vec::new();
            if done.exit.success() {
                let report = parse_report(&done.stderr_text());
                let (missing, extra) = compare(ctx, "victim_threads.cpp", &report)?;
                wrong.extend(missing);
                wrong.extend(extra);
                let blocks = report.leaks.len() as u64;
                let bytes: u64 = report.leaks.iter().map(|r| r.bytes).sum();
                if report.summary != Some((blocks, bytes)) {
                    wrong.push(tracker_problem(ctx, "under threads, the summary line does not add up the leak lines: is the list protected by a lock?"));
                }
            } else {
                wrong.push(tracker_problem(ctx, format!("victim_threads.cpp built with the tracker {}: is the list protected by a lock?", done.exit.describe())));
            }
            if !wrong.is_empty() {
                problems.push(tracker_problem(ctx, format!("run {run} of {THREAD_RUNS} of victim_threads (eight threads allocating at once) goes wrong; is the list protected by a lock?")));
                problems.extend(wrong);
                break;
            }
        }
    }
    checks.record("thread-safe", problems);
    Ok(())
}
