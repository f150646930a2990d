//! Lab 04: strong, weak and COMMON symbols. The checker links the student's
//! hooks in three ways (default only, with a user's override, with the
//! optional plugin), links the event counter with -fno-common, asks nm how
//! many objects define the counter, reproduces the starter's link error, and
//! compares the student's nm letters with nm's.

use std::time::Duration;

use super::answers::Answers;
use super::{compile, Checks, Ctx, Problem};
use crate::error::Error;
use crate::process::{self, Spec};

pub const CHECKS: &[&str] = &[
    "default hook runs",
    "user's hook overrides it",
    "plugin is optional",
    "links with -fno-common",
    "one definition of events",
    "starter fails with -fno-common",
    "nm letters",
];

/// Builds and runs; the problems if it does not link, run, or print `want`.
fn build_and_run(ctx: &Ctx, sources: &[&str], output: &str, flags: &[&str], want: &str) -> Result<Vec<Problem>, Error> {
    let build = compile::build(ctx, sources, output, flags)?;
    if !build.ok {
        let mut problems = vec![Problem::new(format!("`{}` does not link:", sources.join(" ")))];
        problems.extend(build.problems());
        return Ok(problems);
    }
    let done = process::run(&Spec::new(ctx.path(output), Duration::from_secs(10)))?;
    let got = String::from_utf8_lossy(&done.stdout);
    if !done.exit.success() {
        return Ok(vec![Problem::new(format!("`{}` built, but the program {}", sources.join(" "), done.exit.describe()))]);
    }
    if got != want {
        return Ok(vec![Problem::new(format!(
            "`{}` prints\n{}\n  where this is expected:\n{}",
            sources.join(" "),
            indent(&got),
            indent(want)
        ))]);
    }
    Ok(Vec::new())
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

/// nm's letter for `symbol` in an object file of the build directory.
fn nm_letter(ctx: &Ctx, object: &str, symbol: &str) -> Result<Option<char>, Error> {
    let done = process::run(&Spec::new("nm", Duration::from_secs(10)).arg(ctx.path(object)))?;
    if !done.exit.success() {
        return Err(Error::TargetFailed { program: "nm".into(), how: done.exit.describe(), stderr: done.stderr_text() });
    }
    Ok(String::from_utf8_lossy(&done.stdout).lines().find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        match cols.as_slice() {
            [_, letter, name] | [letter, name] if *name == symbol => letter.chars().next(),
            _ => None,
        }
    }))
}

/// Compiles one source to an object of the build directory; compiler errors are problems.
fn object(ctx: &Ctx, source: &str, output: &str, flag: &str) -> Result<Result<(), Vec<Problem>>, Error> {
    let build = compile::build(ctx, &[source], output, &["-c", flag])?;
    Ok(if build.ok { Ok(()) } else { Err(build.problems()) })
}

pub fn run(ctx: &Ctx, checks: &mut Checks) -> Result<(), Error> {
    let p = build_and_run(ctx, &["main_a.c", "default_hooks.c"], "plain", &[], "on_start: default\nmain: running\n")?;
    checks.record("default hook runs", p);
    let p = build_and_run(ctx, &["main_a.c", "default_hooks.c", "custom_hooks.c"], "custom", &[], "on_start: custom\nmain: running\n")?;
    checks.record("user's hook overrides it", p);
    let p = build_and_run(ctx, &["main_a.c", "default_hooks.c", "plugin.c"], "with_plugin", &[], "plugin: loaded\non_start: default\nmain: running\n")?;
    checks.record("plugin is optional", p);
    let p = build_and_run(ctx, &["main_b.c", "stats.c"], "stats", &["-fno-common"], "events: 5\n")?;
    checks.record("links with -fno-common", p);

    // Exactly one object may define `events`; the other must only refer to it.
    let mut problems = Vec::new();
    let mut definers = Vec::new();
    for (source, obj) in [("main_b.c", "main_b.o"), ("stats.c", "stats.o")] {
        match object(ctx, source, obj, "-fno-common")? {
            Err(p) => problems.extend(p),
            Ok(()) => match nm_letter(ctx, obj, "events")? {
                Some('U') | None => {}
                Some(c) if c.is_ascii_lowercase() => problems.push(Problem::at(
                    &ctx.shown(source),
                    None,
                    format!("`events` is local here (nm says `{c}`): each file then counts in its own variable"),
                )),
                Some(_) => definers.push(source),
            },
        }
    }
    if problems.is_empty() && definers.len() != 1 {
        problems.push(Problem::new(format!(
            "{} object file(s) define `events` ({}); exactly one should, the other should refer to it (nm: `U`)",
            definers.len(),
            definers.join(", ")
        )));
    }
    checks.record("one definition of events", problems);

    // The starter as it came: its tentative definition in a header is a COMMON
    // symbol under -fcommon and a plain .bss definition under -fno-common.
    let pristine = ctx.path("pristine");
    std::fs::create_dir_all(&pristine).map_err(|e| Error::io(&pristine, e))?;
    for (from, name) in [(ctx.lab.dir().join("main_b.c"), "main_b.c"), (ctx.lab.dir().join("starter/stats.h"), "stats.h"), (ctx.lab.dir().join("starter/stats.c"), "stats.c")] {
        std::fs::copy(&from, pristine.join(name)).map_err(|e| Error::io(&from, e))?;
    }
    let fails = compile::build(ctx, &["pristine/main_b.c", "pristine/stats.c"], "pristine/stats", &["-fno-common"])?;
    let links = compile::build(ctx, &["pristine/main_b.c", "pristine/stats.c"], "pristine/stats", &["-fcommon"])?;
    let mut problems = Vec::new();
    if fails.ok || !fails.diagnostics.contains("multiple definition of `events'") {
        problems.push(Problem::new(format!(
            "the starter's stats.h was expected not to link with -fno-common (\"multiple definition of `events'\"); the compiler said:\n{}",
            indent(&fails.diagnostics)
        )));
    }
    if !links.ok {
        problems.push(Problem::new(format!("the starter's stats.h was expected to link with -fcommon; the compiler said:\n{}", indent(&links.diagnostics))));
    }
    checks.record("starter fails with -fno-common", problems);

    let mut measured = Vec::new();
    for (key, flag, obj) in [("events_with_fcommon", "-fcommon", "pristine/common.o"), ("events_with_fno_common", "-fno-common", "pristine/nocommon.o")] {
        if let Err(p) = object(ctx, "pristine/main_b.c", obj, flag)? {
            return Err(Error::LabSetup(format!("the lab's pristine main_b.c does not compile: {}", p.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))));
        }
        let letter = nm_letter(ctx, obj, "events")?.ok_or_else(|| Error::LabSetup(format!("nm shows no `events` in {obj}")))?;
        measured.push((key, flag, letter));
    }
    let problems = match Answers::load(ctx) {
        Err(p) => vec![p],
        Ok(answers) => measured
            .iter()
            .filter_map(|(key, flag, letter)| match answers.string(key) {
                Err(p) => Some(p),
                Ok(a) if a.len() == 1 && a.starts_with(*letter) => None,
                Ok(a) => Some(answers.problem(key, format!("`{a}` is not what nm prints for `events` in main_b.o compiled with {flag}"))),
            })
            .collect(),
    };
    checks.record("nm letters", problems);
    Ok(())
}
