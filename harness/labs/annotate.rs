//! Lab 07: the student writes the `//~ LEAK` annotations of an unannotated
//! program. The checker parses them (crate::annotations), checks that only
//! comments changed, runs the program under the `valgrind` backend and scores
//! the annotations against its report (crate::score), naming each wrong
//! kind, size, count or line with file:line.

use std::collections::{BTreeMap, BTreeSet};

use super::valgrind_fix::memcheck;
use super::{compile, Checks, Ctx, Problem};
use crate::annotations::{self, Location};
use crate::backend::Matching;
use crate::error::Error;
use crate::report::{Kind, Status};
use crate::score;

pub const CHECKS: &[&str] = &["annotations parse", "code unchanged", "every leak annotated", "no annotation without a leak", "kinds", "sizes and counts"];

const SOURCE: &str = "mystery.c";

/// The code of a source without its `//~` comments and without lines that are only one.
fn code_lines(text: &str) -> Vec<(u32, String)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let code = match l.find("//~") {
                Some(pos) => &l[..pos],
                None => l,
            };
            let code = code.trim_end();
            (!(code.trim().is_empty() && l.contains("//~"))).then(|| (i as u32 + 1, code.to_string()))
        })
        .collect()
}

pub fn run(ctx: &Ctx, checks: &mut Checks) -> Result<(), Error> {
    let text = ctx.read(SOURCE)?;
    let shown = ctx.shown(SOURCE);
    let expected = match annotations::parse(SOURCE, &text) {
        Ok(e) => e,
        Err(Error::Annotation { line, message, .. }) => {
            checks.record("annotations parse", vec![Problem::at(&shown, Some(line), message)]);
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let mut problems = Vec::new();
    if expected.leaks.is_empty() {
        problems.push(Problem::at(&shown, None, "no `//~ LEAK` annotation yet"));
    }
    if !expected.notes.is_empty() {
        problems.push(Problem::at(&shown, Some(expected.notes[0].at.line), "write ground truth (LEAK, NOLEAK) only: backend notes are not part of this lab"));
    }
    // Without annotations the scoring checks below would pass for nothing.
    if !checks.record("annotations parse", problems) {
        return Ok(());
    }

    let starter_path = ctx.lab.dir().join("starter").join(SOURCE);
    let starter = std::fs::read_to_string(&starter_path).map_err(|e| Error::io(&starter_path, e))?;
    let (mine, theirs) = (code_lines(&text), code_lines(&starter));
    let changed = mine.iter().zip(&theirs).find(|((_, a), (_, b))| a != b).map(|((n, _), _)| *n).or_else(|| {
        (mine.len() != theirs.len()).then(|| mine.get(theirs.len()).map_or_else(|| text.lines().count() as u32, |(n, _)| *n))
    });
    let unchanged = match changed {
        Some(line) => checks.record(
            "code unchanged",
            vec![Problem::at(&shown, Some(line), "the code differs from the starter here: add `//~` comments only (`leaklab lab reset 07` restores it)")],
        ),
        None => checks.record("code unchanged", Vec::new()),
    };
    if !unchanged {
        return Ok(());
    }

    let build = compile::build(ctx, &[SOURCE], "mystery", &[])?;
    if !build.ok {
        return Err(Error::LabSetup(format!("{SOURCE} does not build although its code is the starter's:\n{}", build.diagnostics)));
    }
    let report = memcheck(ctx, "mystery", &[])?;
    match &report.status {
        Status::Ok => {}
        Status::Failed { error } | Status::NotAnalysed { reason: error } => return Err(Error::Os(format!("valgrind on {SOURCE}: {error}"))),
        Status::Skipped { reason, fix } => return Err(Error::Unavailable { backend: "valgrind".into(), reason: reason.clone(), fix: fix.clone() }),
    }
    let s = score::score(&report, &expected, Matching::BySite);

    // A missed annotation and a false report on the same line: the kind is wrong.
    let missed_at: BTreeSet<&Location> = s.missed.iter().map(|m| &m.expected.at).collect();
    let mut kinds = Vec::new();
    // Unannotated findings, pooled per line and kind (a recursive function
    // gives one loss record per stack, all on the same line).
    let mut unannotated: BTreeMap<(Option<Location>, Kind), (u64, u64, &crate::report::Leak)> = BTreeMap::new();
    let mut wrong_kind_lines = BTreeSet::new();
    for f in &s.false_reports {
        match &f.at {
            Some(at) if missed_at.contains(at) => {
                let written: Vec<String> = s.missed.iter().filter(|m| &m.expected.at == at).map(|m| m.expected.kind.to_string()).collect();
                // Not valgrind's kind or figures: reading them off its report is the exercise.
                kinds.push(Problem::at(
                    &shown,
                    Some(at.line),
                    format!(
                        "the annotation says `{}`, which is not the kind valgrind gives the blocks allocated here: read this line's loss record again (what still points to the block at exit?)",
                        written.join("`, `")
                    ),
                ));
                wrong_kind_lines.insert(at.clone());
            }
            _ => {
                let e = unannotated.entry((f.at.clone(), f.leak.kind)).or_insert((0, 0, &f.leak));
                e.0 += f.leak.bytes;
                e.1 += f.leak.blocks;
            }
        }
    }
    kinds.dedup();
    // How many, not where nor what: the student finds them in valgrind's own report.
    let unannotated: Vec<Problem> = if unannotated.is_empty() {
        Vec::new()
    } else {
        vec![Problem::at(
            &shown,
            None,
            format!(
                "valgrind reports {} leak(s) (per line and kind) that no annotation matches: find each loss record's innermost {SOURCE} line, and remember that one line can leak blocks of two kinds",
                unannotated.len()
            ),
        )]
    };
    let mut stray = Vec::new();
    for m in &s.missed {
        if !wrong_kind_lines.contains(&m.expected.at) {
            stray.push(Problem::at(
                &shown,
                Some(m.expected.at.line),
                format!("`LEAK {}`, but valgrind reports no {} leak allocated on this line", m.expected.kind, m.expected.kind),
            ));
        }
    }
    let mut figures = Vec::new();
    for f in s.found.iter().filter(|f| !f.exact) {
        let e = &f.expected;
        let same_line: Vec<_> = expected.leaks.iter().filter(|x| x.at == e.at && x.kind == e.kind).collect();
        let what = if same_line.len() > 1 {
            format!("the `{}` annotations here add up to {} bytes in {} blocks", e.kind, same_line.iter().map(|x| x.bytes()).sum::<u64>(), same_line.iter().map(|x| x.count).sum::<u64>())
        } else {
            format!("`size={} count={}` is {} bytes in {} blocks", e.size, e.count, e.bytes(), e.count)
        };
        // Neither valgrind's figures nor a direction (too many, too few),
        // which a guess would home in on; only the slip of reading a loss
        // record's total as one block is named.
        let bytes: u64 = same_line.iter().map(|x| x.bytes()).sum();
        let why = if bytes == f.bytes {
            "the bytes add up to what valgrind reports here, but not how they split into blocks: size is one block's bytes, count the number of blocks"
        } else {
            "that is not what valgrind reports for the blocks allocated here: read this line's loss record again (its bytes and blocks give size = bytes / blocks)"
        };
        figures.push(Problem::at(&shown, Some(e.at.line), format!("{what}: {why}")));
    }
    figures.dedup();
    checks.record("every leak annotated", unannotated);
    checks.record("no annotation without a leak", stray);
    checks.record("kinds", kinds);
    checks.record("sizes and counts", figures);
    Ok(())
}
