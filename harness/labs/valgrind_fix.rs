//! Lab 02: fix a leaky program until valgrind memcheck reports nothing, with
//! its output unchanged. The checker builds the student's program, compares
//! its output on the example stock list with expected-output.txt, and on a
//! list it makes up with the reference solution's (teacher/), then runs it
//! on that list under the `valgrind` backend: every leak it reports is a
//! problem at its allocating line, every memory error (a use after free, a
//! double free) at the line where it happened.

use std::time::Duration;

use super::generate::Rng;
use super::{compile, Checks, Ctx, Problem};
use crate::backend::{self, RunConfig, Target};
use crate::error::Error;
use crate::process::{self, Spec};
use crate::report::{BadFree, BadFreeKind, Kind, Leak, MemoryError, Report, Status};

pub const CHECKS: &[&str] =
    &["builds", "output unchanged", "works on any stock list", "no definitely lost", "no indirectly lost", "no possibly lost", "no still reachable", "no memory errors"];

const SOURCE: &str = "inventory.c";
const PROGRAM: &str = "inventory";

/// The first difference between two outputs, as a problem at the expected file's line.
pub fn output_difference(ctx: &Ctx, got: &str, expected_file: &str) -> Result<Vec<Problem>, Error> {
    let want = ctx.read(expected_file)?;
    if got == want {
        return Ok(Vec::new());
    }
    let shown = ctx.shown(expected_file);
    let got_lines: Vec<&str> = got.lines().collect();
    let want_lines: Vec<&str> = want.lines().collect();
    for i in 0..got_lines.len().max(want_lines.len()) {
        let (g, w) = (got_lines.get(i), want_lines.get(i));
        if g != w {
            let message = match (g, w) {
                (Some(g), Some(w)) => format!("the program printed `{g}` where `{w}` is expected"),
                (None, Some(w)) => format!("the program stopped printing before `{w}`"),
                (Some(g), None) => format!("the program printed `{g}` after the expected end"),
                (None, None) => unreachable!("one of them has line {i}"),
            };
            return Ok(vec![Problem::at(&shown, Some(i as u32 + 1), message)]);
        }
    }
    Ok(vec![Problem::at(&shown, None, "the output differs in its line endings")])
}

/// A leak as a problem at its allocating line of the student's file.
pub fn leak_problem(ctx: &Ctx, leak: &Leak) -> Problem {
    let what = format!(
        "{} bytes in {} block{} {} lost{}",
        leak.bytes,
        leak.blocks,
        if leak.blocks == 1 { "" } else { "s" },
        match leak.kind {
            Kind::Reachable => "still reachable, never",
            Kind::Definite => "definitely",
            Kind::Indirect => "indirectly",
            Kind::Possible => "possibly",
            Kind::Unclassified => "",
        },
        leak.api.as_deref().map(|a| format!(", allocated by {a}")).unwrap_or_default(),
    );
    let what = what.replace("never lost", "never freed");
    let trail: Vec<String> = leak
        .stack
        .iter()
        .filter(|f| f.line.is_some() && !f.object.as_deref().is_some_and(backend::is_runtime_object))
        .take(4)
        .map(|f| format!("{}:{}", f.function.as_deref().unwrap_or("??"), f.line.unwrap_or(0)))
        .collect();
    let message = if trail.is_empty() { what } else { format!("{what} (called from {})", trail.join(" < ")) };
    match &leak.site {
        Some(site) => Problem::at(&ctx.shown(&site.file), Some(site.line), message),
        None => Problem::new(message),
    }
}

/// Runs a built program of the build directory under the valgrind backend.
pub fn memcheck(ctx: &Ctx, program: &str, args: &[String]) -> Result<Report, Error> {
    let valgrind = backend::by_name("valgrind")?;
    let target = Target::program(ctx.path(program).to_str().unwrap_or(program), args)?;
    Ok(backend::execute(valgrind.as_ref(), &target, &RunConfig { timeout: Duration::from_secs(120), ..RunConfig::default() }))
}

/// The lab's example stock list, whose output is expected-output.txt.
const EXAMPLE: &str = "stock.txt";
/// The stock list the checker makes up, in the build directory.
const GENERATED: &str = "checker-stock.txt";
/// The reference solution, built from teacher material.
const REFERENCE: &str = "inventory-reference";

/// A stock list nobody has seen: 4 to 12 items with made-up names and
/// quantities across every bucket of the histogram (and past the last).
#[must_use]
pub fn stock_list(rng: &mut Rng, example: &str) -> String {
    loop {
        let items = rng.range(4, 12);
        let text: String = (0..items).map(|_| format!("{}:{}\n", rng.word(3, 9), rng.range(0, 520))).collect();
        if text != example {
            return text;
        }
    }
}

/// The items of a stock list in one line, for feedback.
fn inline(list: &str) -> String {
    list.lines().collect::<Vec<_>>().join(", ")
}

/// Runs a program of the build directory on a stock list.
fn run_on(ctx: &Ctx, program: &str, list: &str) -> Result<process::Finished, Error> {
    process::run(&Spec::new(ctx.path(program), Duration::from_secs(30)).arg(ctx.path(list)))
}

/// The reference solution's output on `list`: what the student's program must print.
fn reference_output(ctx: &Ctx, list: &str) -> Result<String, Error> {
    let solution = ctx.lab.teacher_dir().join("solution").join(SOURCE);
    std::fs::copy(&solution, ctx.path("reference.c")).map_err(|e| Error::io(&solution, e))?;
    let build = compile::build(ctx, &["reference.c"], REFERENCE, &[])?;
    if !build.ok {
        return Err(Error::LabSetup(format!("the reference solution {} does not build:\n{}", solution.display(), build.diagnostics)));
    }
    let done = run_on(ctx, REFERENCE, list)?;
    if !done.exit.success() {
        return Err(Error::LabSetup(format!("the reference solution {} {} on {list}", solution.display(), done.exit.describe())));
    }
    Ok(String::from_utf8_lossy(&done.stdout).into_owned())
}

/// A memcheck error as a problem at its line, with what it means.
fn error_problem(ctx: &Ctx, e: &MemoryError) -> Problem {
    let meaning = if e.what.contains(" free'd") {
        "the program used a block after it was freed: a block must stay allocated until its last use"
    } else if e.kind.starts_with("Invalid") {
        "the program used memory outside every block it owns"
    } else if e.kind.starts_with("Uninit") || e.kind.contains("Cond") {
        "the program's result depends on memory it never wrote"
    } else {
        "memcheck reports it as an error"
    };
    let message = format!("{}: {meaning}", e.what);
    match &e.site {
        Some(site) => Problem::at(&ctx.shown(&site.file), Some(site.line), message),
        None => Problem::at(&ctx.shown(SOURCE), None, message),
    }
}

/// A bad free as a problem at the freeing line.
fn bad_free_problem(ctx: &Ctx, b: &BadFree) -> Problem {
    let other = b.other_site.as_ref().map(|s| format!("{}:{}", s.file, s.line));
    let message = match b.kind {
        BadFreeKind::Double => format!(
            "this {} releases a block that was already freed{}, so it is freed twice: each block is freed once, by whoever uses it last",
            b.dealloc,
            other.map(|o| format!(" at {o}")).unwrap_or_default()
        ),
        BadFreeKind::Mismatched => format!(
            "this {} releases a block allocated with {}: release a block with the function that matches its allocation",
            b.dealloc,
            b.api.as_deref().unwrap_or("another allocator")
        ),
        BadFreeKind::Invalid => format!("this {} is given a pointer no allocation returned (the middle of a block, or memory never allocated)", b.dealloc),
    };
    match &b.site {
        Some(site) => Problem::at(&ctx.shown(&site.file), Some(site.line), message),
        None => Problem::at(&ctx.shown(SOURCE), None, message),
    }
}

pub fn run(ctx: &Ctx, checks: &mut Checks) -> Result<(), Error> {
    let build = compile::build(ctx, &[SOURCE], PROGRAM, &[])?;
    if !checks.record("builds", build.problems()) {
        return Ok(());
    }
    let plain = run_on(ctx, PROGRAM, EXAMPLE)?;
    let mut problems = Vec::new();
    if !plain.exit.success() {
        problems.push(Problem::at(&ctx.shown(SOURCE), None, format!("`./inventory {EXAMPLE}` {}", plain.exit.describe())));
    }
    problems.extend(output_difference(ctx, &String::from_utf8_lossy(&plain.stdout), "expected-output.txt")?);
    checks.record("output unchanged", problems);

    // The same program on a list made up now: a fix changes no output on any list.
    let list = stock_list(&mut Rng::new(), &ctx.read(EXAMPLE)?);
    let generated = ctx.path(GENERATED);
    std::fs::write(&generated, &list).map_err(|e| Error::io(&generated, e))?;
    let want = reference_output(ctx, GENERATED)?;
    let mine = run_on(ctx, PROGRAM, GENERATED)?;
    let on = format!("on a stock list the checker made up ({})", inline(&list));
    let mut problems = Vec::new();
    if !mine.exit.success() {
        problems.push(Problem::at(&ctx.shown(SOURCE), None, format!("{on}, the program {}", mine.exit.describe())));
    }
    let got = String::from_utf8_lossy(&mine.stdout);
    if mine.exit.success() && got != want {
        let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
        let i = (0..g.len().max(w.len())).find(|i| g.get(*i) != w.get(*i)).unwrap_or(0);
        let what = match (g.get(i), w.get(i)) {
            (Some(g), Some(w)) => format!("line {} is `{g}` where `{w}` is expected", i + 1),
            (None, Some(w)) => format!("the output stops before line {}, `{w}`", i + 1),
            (Some(g), None) => format!("line {} is `{g}`, after the expected end", i + 1),
            (None, None) => "the output differs in its line endings".to_string(),
        };
        problems.push(Problem::at(&ctx.shown(SOURCE), None, format!("{on}, {what}: save the list in a file and run `./inventory FILE` on it yourself")));
    }
    checks.record("works on any stock list", problems);

    let report = memcheck(ctx, PROGRAM, &[generated.to_string_lossy().into_owned()])?;
    match &report.status {
        Status::Ok => {}
        Status::Failed { error } | Status::NotAnalysed { reason: error } => {
            let p = vec![Problem::at(&ctx.shown(SOURCE), None, format!("under valgrind: {error}"))];
            for name in &CHECKS[3..] {
                checks.record(name, p.clone());
            }
            return Ok(());
        }
        Status::Skipped { reason, fix } => return Err(Error::Unavailable { backend: "valgrind".into(), reason: reason.clone(), fix: fix.clone() }),
    }
    // A program that never reached memcheck's leak check (killed itself, say)
    // is not free of leaks: it was not checked.
    let unchecked: Vec<Problem> = report
        .notes
        .iter()
        .filter(|n| n.contains("before memcheck's leak check") || n.contains("were not checked"))
        .map(|n| Problem::at(&ctx.shown(SOURCE), None, format!("under valgrind, {n}: the program must end by returning from main or calling exit")))
        .collect();
    for (name, kind) in [
        ("no definitely lost", Kind::Definite),
        ("no indirectly lost", Kind::Indirect),
        ("no possibly lost", Kind::Possible),
        ("no still reachable", Kind::Reachable),
    ] {
        let mut problems = unchecked.clone();
        problems.extend(report.leaks.iter().filter(|l| l.kind == kind).map(|l| leak_problem(ctx, l)));
        checks.record(name, problems);
    }
    // memcheck's errors other than leaks, each at the line in the program
    // where it happened; the exit status was checked on the plain runs.
    let mut errors: Vec<Problem> = report.errors.iter().map(|e| error_problem(ctx, e)).collect();
    errors.extend(report.bad_frees.iter().map(|b| bad_free_problem(ctx, b)));
    if !errors.is_empty() {
        let n = errors.len();
        errors.insert(0, Problem::at(&ctx.shown(SOURCE), None, format!("memcheck reports {n} memory error{}", if n == 1 { "" } else { "s" })));
    }
    checks.record("no memory errors", errors);
    Ok(())
}
