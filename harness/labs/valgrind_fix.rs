//! Lab 02: fix a leaky program until valgrind memcheck reports nothing, with
//! its output unchanged. The checker builds the student's program, compares
//! its output with expected-output.txt, and runs it under the `valgrind`
//! backend: every leak it reports is a problem at its allocating line.

use std::time::Duration;

use super::{compile, Checks, Ctx, Problem};
use crate::backend::{self, RunConfig, Target};
use crate::error::Error;
use crate::process::{self, Spec};
use crate::report::{Kind, Leak, Report, Status};

pub const CHECKS: &[&str] =
    &["builds", "output unchanged", "no definitely lost", "no indirectly lost", "no possibly lost", "no still reachable", "no memory errors"];

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

pub fn run(ctx: &Ctx, checks: &mut Checks) -> Result<(), Error> {
    let build = compile::build(ctx, &[SOURCE], PROGRAM, &[])?;
    if !checks.record("builds", build.problems()) {
        return Ok(());
    }
    let plain = process::run(&Spec::new(ctx.path(PROGRAM), Duration::from_secs(30)))?;
    let mut problems = Vec::new();
    if !plain.exit.success() {
        problems.push(Problem::at(&ctx.shown(SOURCE), None, format!("the program {}", plain.exit.describe())));
    }
    problems.extend(output_difference(ctx, &String::from_utf8_lossy(&plain.stdout), "expected-output.txt")?);
    checks.record("output unchanged", problems);

    let report = memcheck(ctx, PROGRAM, &[])?;
    match &report.status {
        Status::Ok => {}
        Status::Failed { error } | Status::NotAnalysed { reason: error } => {
            let p = vec![Problem::at(&ctx.shown(SOURCE), None, format!("under valgrind: {error}"))];
            for name in &CHECKS[2..] {
                checks.record(name, p.clone());
            }
            return Ok(());
        }
        Status::Skipped { reason, fix } => return Err(Error::Unavailable { backend: "valgrind".into(), reason: reason.clone(), fix: fix.clone() }),
    }
    for (name, kind) in [
        ("no definitely lost", Kind::Definite),
        ("no indirectly lost", Kind::Indirect),
        ("no possibly lost", Kind::Possible),
        ("no still reachable", Kind::Reachable),
    ] {
        checks.record(name, report.leaks.iter().filter(|l| l.kind == kind).map(|l| leak_problem(ctx, l)).collect());
    }
    // Non-leak errors (invalid or mismatched frees, reads of freed memory); the
    // exit status was checked on the plain run.
    // The backend's notes name the first frame in the program: "... at inventory.c:105; ...".
    let at = regex::Regex::new(r" at ([^\s:;]+):(\d+)").expect("valid regex");
    let errors = report
        .notes
        .iter()
        .filter(|n| !n.starts_with("the program exited"))
        .map(|n| match at.captures(n) {
            Some(c) => Problem::at(&ctx.shown(&c[1]), c[2].parse().ok(), n.clone()),
            None => Problem::at(&ctx.shown(SOURCE), None, n.clone()),
        })
        .collect();
    checks.record("no memory errors", errors);
    Ok(())
}
