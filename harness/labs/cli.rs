//! `leaklab lab ...`: the sub-subcommands and their output. main.rs only
//! forwards to `run`.

use std::fmt::Write as _;

use clap::{Subcommand, ValueEnum};

use super::{FileSet, LabResult, ListEntry, Outcome};
use crate::error::Error;
use crate::render::Style;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Subcommand)]
pub enum LabCommand {
    /// The labs in order, with your progress (from your last checks).
    List {
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Build your work on a lab and run its checks: what is wrong, where, and the next hint.
    Check {
        /// The lab (`01` or `observe`); default: the first one not passed yet.
        lab: Option<String>,
        /// Check every lab.
        #[arg(long, conflicts_with = "lab")]
        all: bool,
        /// Check the reference solution instead of your files.
        #[arg(long, conflicts_with = "starter")]
        solution: bool,
        /// Check the pristine starter instead of your files.
        #[arg(long)]
        starter: bool,
        /// Check again whenever you save one of the lab's files (Ctrl-C stops).
        #[arg(long, conflicts_with_all = ["all", "format"])]
        watch: bool,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// The next hint of a lab; each call shows one more.
    Hint { lab: String },
    /// Put the starter files back (your versions are kept as NAME.bak).
    Reset { lab: String },
}

/// Runs a lab command; the exit code follows DESIGN.md (1: a lab is not complete, 3: a backend it needs cannot run).
pub fn run(command: LabCommand, style: Style) -> Result<u8, Error> {
    match command {
        LabCommand::List { format } => {
            let entries = super::list()?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&entries).expect("serializes")),
                Format::Human => print!("{}", render_list(&entries, style)),
            }
            Ok(0)
        }
        LabCommand::Check { lab, all, solution, starter, watch, format } => {
            let copy = if solution {
                FileSet::Solution
            } else if starter {
                FileSet::Starter
            } else {
                FileSet::Work
            };
            let labs = match (&lab, all) {
                (_, true) => super::labs()?,
                (Some(id), false) => vec![super::find(id)?],
                (None, false) => vec![super::current()?],
            };
            if watch {
                let lab = &labs[0];
                loop {
                    // Clear the terminal between runs, as test watchers do.
                    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                        print!("\x1b[2J\x1b[H");
                    }
                    match super::check(lab, copy) {
                        Ok(r) => print!("{}", render_result(&r, style)),
                        Err(e) => eprintln!("leaklab: {e}"),
                    }
                    println!("{}", style.dim(&format!("watching {} for changes (Ctrl-C stops)", lab.files.join(", "))));
                    super::wait_for_change(lab);
                }
            }
            let mut results = Vec::new();
            for lab in &labs {
                let r = super::check(lab, copy)?;
                if format == Format::Human {
                    print!("{}", render_result(&r, style));
                }
                results.push(r);
            }
            if format == Format::Json {
                let value = if results.len() == 1 { serde_json::to_value(&results[0]) } else { serde_json::to_value(&results) };
                println!("{}", serde_json::to_string_pretty(&value.expect("serializes")).expect("serializes"));
            }
            if results.iter().any(|r| r.unavailable.is_none() && !r.complete) {
                return Ok(1);
            }
            // The reason and fix are in the output above (human or JSON): said once, exit 3.
            if let Some(u) = results.iter().find_map(|r| r.unavailable.as_ref()) {
                return Ok(Error::Unavailable { backend: u.backend.clone(), reason: u.reason.clone(), fix: u.fix.clone() }.exit_code() as u8);
            }
            Ok(0)
        }
        LabCommand::Hint { lab } => {
            let lab = super::find(&lab)?;
            match super::hint(&lab)? {
                Some(h) => println!("hint {}/{} for lab {}: {}", h.number, h.of, lab.slug(), h.text),
                None => println!("lab {} has no hints", lab.slug()),
            }
            Ok(0)
        }
        LabCommand::Reset { lab } => {
            let lab = super::find(&lab)?;
            for p in super::reset(&lab)? {
                println!("restored {} (yours is {}.bak)", crate::backend::display_path(&p), crate::backend::display_path(&p));
            }
            Ok(0)
        }
    }
}

#[must_use]
pub fn render_list(entries: &[ListEntry], style: Style) -> String {
    let mut out = String::new();
    for e in entries {
        let state = match &e.last {
            Some(l) if l.complete => style.green(&format!("passed {}/{}", l.passed, l.total)),
            Some(l) => style.red(&format!("{}/{} checks", l.passed, l.total)),
            None => style.dim("not checked"),
        };
        let _ = writeln!(out, "{} {:<10} {:<44} {}", style.bold(&e.id), e.name, e.title, state);
        let _ = writeln!(out, "   {}", style.dim(&format!("{}; hints shown {}/{}; {}", e.teaches, e.hints_shown, e.hints, e.chapter)));
    }
    out
}

#[must_use]
pub fn render_result(r: &LabResult, style: Style) -> String {
    let mut out = String::new();
    let which = match r.files {
        FileSet::Work => String::new(),
        FileSet::Starter => " (starter)".into(),
        FileSet::Solution => " (reference solution)".into(),
        FileSet::Given => " (given files)".into(),
    };
    let _ = writeln!(out, "{} {}-{}: {}{which}", style.bold("lab"), r.id, r.name, r.title);
    if let Some(u) = &r.unavailable {
        let _ = writeln!(out, "  {} this lab needs {}, which cannot run here: {}\n  fix: {}", style.red("!"), u.backend, u.reason, u.fix);
        return out;
    }
    for c in &r.checks {
        match &c.outcome {
            Outcome::Pass => {
                let _ = writeln!(out, "  {} {}", style.green("ok  "), c.name);
            }
            Outcome::Fail => {
                let _ = writeln!(out, "  {} {}", style.red("FAIL"), c.name);
                for p in &c.problems {
                    for (i, line) in p.to_string().lines().enumerate() {
                        let _ = writeln!(out, "       {}{line}", if i == 0 { "" } else { "  " });
                    }
                }
            }
            Outcome::Skipped { reason, fix } => {
                let _ = writeln!(out, "  {} {} {}", style.dim("skip"), c.name, style.dim(&format!("({reason}; fix: {fix})")));
            }
        }
    }
    let score = format!("{}/{} checks", r.passed, r.total);
    let _ = writeln!(out, "  {}", if r.complete { style.green(&format!("{score}: complete")) } else { style.red(&score) });
    if let Some(h) = &r.next_hint {
        let _ = writeln!(out, "  hint {}/{}: {}", h.number, h.of, h.text);
        let _ = writeln!(out, "  {}", style.dim(&format!("(`leaklab lab hint {}` moves on to the next hint)", r.id)));
    }
    out
}
