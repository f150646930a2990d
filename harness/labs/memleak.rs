//! Lab 05: find a leak in a running program with bcc's memleak. The student
//! writes the leaking function, line and block size in answers.toml; the
//! checker compares them with the ground truth in the lab's teacher material
//! (teacher/labs/05-memleak/truth.toml: server.c carries no annotation, since
//! the student reads it), and, when the `bcc` backend can run here, runs
//! memleak on the program and confirms it reports the student's line. No
//! feedback names the right line, function or size.

use std::time::Duration;

use regex::Regex;

use super::answers::Answers;
use super::{compile, Checks, Ctx, Problem};
use crate::backend::{self, RunConfig, Target};
use crate::error::Error;
use crate::report::Status;

pub const CHECKS: &[&str] = &["answers.toml parses", "function", "line", "bytes per block", "bcc agrees"];

const SOURCE: &str = "server.c";

/// The function whose body holds `line`: the last definition that starts
/// (unindented, with a parameter list) at or above it. server.c is written
/// in that one style.
#[must_use]
pub fn enclosing_function(text: &str, line: u32) -> Option<String> {
    let def = Regex::new(r"^[A-Za-z_][\w \*]*?\b([A-Za-z_]\w*)\s*\([^;]*$").expect("valid regex");
    text.lines().take(line as usize).filter_map(|l| def.captures(l).map(|c| c[1].to_string())).last()
}

/// One allocation of the ground truth.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Site {
    line: u32,
    /// Text on that line of server.c.
    code: String,
    #[serde(default)]
    size: u64,
}

/// teacher/labs/05-memleak/truth.toml.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Truth {
    /// The allocation that leaks, ever more blocks.
    leak: Site,
    /// The allocation that stays outstanding but does not grow.
    kept: Site,
}

fn truth(ctx: &Ctx, text: &str) -> Result<Truth, Error> {
    let path = ctx.lab.teacher_dir().join("truth.toml");
    let raw = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let truth: Truth = toml::from_str(&raw).map_err(|e| Error::LabSetup(format!("{}: {e}", path.display())))?;
    for site in [&truth.leak, &truth.kept] {
        let at = text.lines().nth(site.line.saturating_sub(1) as usize).unwrap_or("");
        if !at.contains(&site.code) {
            return Err(Error::LabSetup(format!("{}: line {} of {SOURCE} should hold `{}`; was {SOURCE} edited?", path.display(), site.line, site.code)));
        }
    }
    Ok(truth)
}

pub fn run(ctx: &Ctx, checks: &mut Checks) -> Result<(), Error> {
    let text = ctx.read(SOURCE)?;
    let truth = truth(ctx, &text)?;
    let function = enclosing_function(&text, truth.leak.line).ok_or_else(|| Error::LabSetup(format!("no function encloses {SOURCE}:{}", truth.leak.line)))?;

    let Some(answers) = Answers::load_checked(ctx, checks) else {
        return Ok(());
    };

    checks.record(
        "function",
        match answers.string("function") {
            Err(p) => vec![p],
            Ok(f) if f.trim_end_matches("()") == function => Vec::new(),
            Ok(f) => vec![answers.problem(
                "function",
                format!("`{f}` is not where the leaking blocks are allocated: in memleak's output, the stack whose count keeps growing names it"),
            )],
        },
    );
    let line = answers.line_answer();
    checks.record(
        "line",
        match line {
            Err(p) => vec![p],
            Ok(l) if l == truth.leak.line => Vec::new(),
            Ok(l) => {
                let why = match l {
                    l if l == truth.kept.line => format!(
                        "line {l} allocates a block that is still reachable (a global points to it): memleak lists it as outstanding, but its count never grows"
                    ),
                    _ if enclosing_function(&text, l).as_deref() == Some(function.as_str()) => {
                        format!("line {l} is in the right function, but it is not the line that allocates the leaked blocks")
                    }
                    _ => format!("line {l} of {SOURCE} does not allocate the leaked blocks"),
                };
                vec![answers.problem("line", why)]
            }
        },
    );
    checks.record(
        "bytes per block",
        match answers.number("bytes_per_block") {
            Err(p) => vec![p],
            Ok(b) if b == truth.leak.size as f64 => Vec::new(),
            Ok(b) => vec![answers.problem("bytes_per_block", format!("{b} is not the size of one leaked block: divide memleak's bytes by its allocations"))],
        },
    );

    if checks.is_done("bcc agrees") {
        return Ok(());
    }
    let build = compile::build(ctx, &[SOURCE], "server", &[])?;
    if !build.ok {
        return Err(Error::LabSetup(format!("the lab's {SOURCE} does not build:\n{}", build.diagnostics)));
    }
    let bcc = backend::by_name("bcc")?;
    let target = Target::program(ctx.path("server").to_str().unwrap_or("server"), &[])?;
    let report = backend::execute(bcc.as_ref(), &target, &RunConfig { timeout: Duration::from_secs(180), ..RunConfig::default() });
    let problems = match &report.status {
        Status::Skipped { reason, fix } => {
            checks.skip("bcc agrees", reason.clone(), fix.clone());
            return Ok(());
        }
        Status::Failed { error } | Status::NotAnalysed { reason: error } => vec![Problem::new(format!("memleak failed: {error}"))],
        Status::Ok => match answers.line_answer() {
            Err(_) => vec![answers.problem("line", "nothing to confirm yet: answer `line` first")],
            Ok(at) => {
                let seen = report.leaks.iter().any(|l| l.site.as_ref().is_some_and(|s| s.file == SOURCE && s.line == at));
                if seen {
                    Vec::new()
                } else {
                    // Not the lines it does report: that would be the answer.
                    vec![Problem::at(
                        &ctx.shown(SOURCE),
                        Some(at),
                        "memleak reports no outstanding allocation made on this line: read its stacks again, and turn the innermost server.c frame (`function+0xOFFSET`) into a line as the README shows",
                    )]
                }
            }
        },
    };
    checks.record("bcc agrees", problems);
    Ok(())
}
