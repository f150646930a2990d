//! Human-readable output: reports, scores, the catalogue, the accuracy matrix.

use std::fmt::Write as _;

use comfy_table::{Cell, CellAlignment, Table};

use crate::catalogue::SampleInfo;
use crate::compare::Comparison;
use crate::report::{Report, Status};
use crate::score::{Class, Score};

/// Whether to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, s: &str) -> String {
        if self.color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() }
    }
    #[must_use]
    pub fn bold(self, s: &str) -> String {
        self.paint("1", s)
    }
    #[must_use]
    pub fn red(self, s: &str) -> String {
        self.paint("31", s)
    }
    #[must_use]
    pub fn green(self, s: &str) -> String {
        self.paint("32", s)
    }
    #[must_use]
    pub fn dim(self, s: &str) -> String {
        self.paint("2", s)
    }
}

/// A text with its unprintable characters shown escaped (`\x1b`, `\u{feff}`):
/// control bytes from a program's name or output never reach the terminal
/// raw, where ESC sequences would clear or recolour it. Newlines and tabs
/// are kept when `keep_lines`, else escaped too (one-line items such as a
/// program's name).
#[must_use]
pub fn escape_unprintable(text: &str, keep_lines: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let invisible = matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}');
        if keep_lines && (c == '\n' || c == '\t') {
            out.push(c);
        } else if c.is_control() && (c as u32) < 0x100 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else if invisible {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// One line per sample: name, title, annotated leaks.
#[must_use]
pub fn catalogue(samples: &[SampleInfo], style: Style) -> String {
    let mut out = String::new();
    let width = samples.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in samples {
        let leaks = match s.expectations() {
            Ok(e) if e.leaks.is_empty() => "no leak (control)".to_string(),
            Ok(e) => {
                let mut parts: Vec<String> = Vec::new();
                for l in &e.leaks {
                    let what = match l.region {
                        Some(r) => format!("{} {}", r.as_str(), l.size),
                        None => format!("{} {}×{}", l.kind, l.count, l.size),
                    };
                    parts.push(format!("{what} @{}", l.at.line));
                }
                parts.join(", ")
            }
            Err(e) => style.red(&format!("bad annotations: {e}")),
        };
        let _ = writeln!(out, "{:width$}  {}\n{:width$}  {}", style.bold(s.name), s.title(), "", style.dim(&leaks), width = width);
    }
    out
}

/// A report as a person reads it.
#[must_use]
pub fn report(r: &Report, style: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} on {}", style.bold(&r.backend), style.bold(&escape_unprintable(&r.sample, false)));
    match &r.status {
        Status::Ok => {}
        Status::Skipped { reason, fix } => {
            let _ = writeln!(out, "  skipped: {reason}\n  fix: {fix}");
            return out;
        }
        Status::Failed { error } => {
            let _ = writeln!(out, "  {}: {}", style.red("failed"), escape_unprintable(error, true));
            return out;
        }
        // What was seen is still shown (notes, processes), but never "no leaks found".
        Status::NotAnalysed { reason } => {
            let _ = writeln!(out, "  {}: {}", style.red("not analysed"), escape_unprintable(reason, true));
            for n in &r.notes {
                let _ = writeln!(out, "  note: {}", escape_unprintable(n, true));
            }
            return out;
        }
    }
    if r.leaks.is_empty() {
        let _ = writeln!(out, "  {}", style.green("no leaks found"));
    }
    for l in &r.leaks {
        // A mapping's growth (watch) has bytes but no blocks to count.
        let mut head = if l.blocks == 0 && l.region.is_some() {
            format!("  {:<12} {} bytes", l.kind.as_str(), l.bytes)
        } else {
            format!("  {:<12} {} bytes in {} block{}", l.kind.as_str(), l.bytes, l.blocks, if l.blocks == 1 { "" } else { "s" })
        };
        if let Some(api) = &l.api {
            let _ = write!(head, " from {api}");
        }
        if let Some(region) = &l.region {
            let _ = write!(
                head,
                " [{} mapping{}{}]",
                region.kind.as_str(),
                region.flags.as_ref().map(|f| format!(" {f}")).unwrap_or_default(),
                region.path.as_ref().map(|p| format!(" {p}")).unwrap_or_default()
            );
        }
        if let Some(site) = &l.site {
            let _ = write!(head, " at {}:{}", site.file, site.line);
            if let Some(f) = &site.function {
                let _ = write!(head, " ({f})");
            }
        }
        if let Some(pid) = l.pid {
            let _ = write!(head, " [pid {pid}]");
        }
        let _ = writeln!(out, "{head}");
        if let Some(t) = &l.type_name {
            let _ = writeln!(out, "      type: {t}");
        }
        if let Some(c) = &l.content {
            let _ = writeln!(out, "      content: {c:?}");
        }
        for f in &l.stack {
            let loc = match (&f.file, f.line) {
                (Some(file), Some(line)) => format!(" ({}:{line})", file.rsplit('/').next().unwrap_or(file)),
                _ => f.object.as_ref().map(|o| format!(" [{}]", o.rsplit('/').next().unwrap_or(o))).unwrap_or_default(),
            };
            let _ = writeln!(out, "      {}{}", f.function.as_deref().unwrap_or("??"), style.dim(&loc));
        }
    }
    for b in &r.bad_frees {
        let at = |site: &Option<crate::report::Site>| site.as_ref().map(|s| format!(" at {}:{}", s.file, s.line)).unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} free: {}{} of a block from {}{}",
            style.red(b.kind.as_str()),
            b.dealloc,
            at(&b.site),
            b.api.as_deref().unwrap_or("no known allocation"),
            match b.kind {
                crate::report::BadFreeKind::Double => format!(", first freed{}", at(&b.other_site)),
                _ => at(&b.other_site),
            }
        );
        for f in &b.stack {
            let loc = match (&f.file, f.line) {
                (Some(file), Some(line)) => format!(" ({}:{line})", file.rsplit('/').next().unwrap_or(file)),
                _ => f.object.as_ref().map(|o| format!(" [{}]", o.rsplit('/').next().unwrap_or(o))).unwrap_or_default(),
            };
            let _ = writeln!(out, "      {}{}", f.function.as_deref().unwrap_or("??"), style.dim(&loc));
        }
    }
    errors_and_processes(r, style, &mut out);
    for n in &r.notes {
        let _ = writeln!(out, "  note: {}", escape_unprintable(n, true));
    }
    if let Some(s) = &r.stats {
        let _ = writeln!(
            out,
            "  {}",
            style.dim(&format!(
                "{} ms{}{}",
                s.wall_ms,
                s.peak_rss_kib.map(|k| format!(", peak RSS {k} KiB")).unwrap_or_default(),
                s.pause_ms.map(|p| format!(", paused {p:.1} ms")).unwrap_or_default()
            ))
        );
    }
    out
}

/// The memory errors, what suppressions hid, and the processes of a run
/// that had several or did not simply exit.
fn errors_and_processes(r: &Report, style: Style, out: &mut String) {
    use crate::report::End;
    for e in &r.errors {
        let at = e.site.as_ref().map(|s| format!(" at {}:{}", s.file, s.line)).unwrap_or_default();
        let pid = e.pid.map(|p| format!(" [pid {p}]")).unwrap_or_default();
        let _ = writeln!(out, "  {} {}{at}{pid}: {}", style.red("error"), e.kind, e.what);
    }
    for s in &r.suppressed {
        let _ = writeln!(out, "  suppressed: {} leak{} ({} bytes) by {}", s.leaks, if s.leaks == 1 { "" } else { "s" }, s.bytes, s.rule);
    }
    if r.processes.is_empty() {
        return;
    }
    let _ = writeln!(out, "  processes:");
    for p in &r.processes {
        let end = match &p.end {
            End::Exited { code } => format!("exited with status {code}"),
            End::Killed { signal } => style.red(&format!("killed by {signal}")),
            End::Exec { program } => format!("exec'd {program}"),
            End::Running => "still running at the end, killed with the run".to_string(),
            End::Finished => "ended by itself".to_string(),
        };
        let parent = p.parent.map(|q| format!(", parent {q}")).unwrap_or_default();
        let analysed = if p.analysed { "" } else { " (not analysed)" };
        let _ = writeln!(out, "    pid {} {}{parent}: {end}{analysed}", p.pid, p.program);
    }
}

/// The score of one run against the annotations.
#[must_use]
pub fn score(s: &Score, style: Style) -> String {
    let mut out = String::new();
    let problems = s.problems();
    let verdict = if problems.is_empty() { style.green("agrees with the annotations") } else { style.red("disagrees with the annotations") };
    let _ = writeln!(
        out,
        "score: {} found, {} missed ({} explained), {} false ({} explained): {verdict}",
        s.found.len(),
        s.missed.len(),
        s.missed.iter().filter(|m| m.explained.is_some()).count(),
        s.false_reports.len(),
        s.false_reports.iter().filter(|f| f.explained.is_some()).count(),
    );
    if !s.found_frees.is_empty() || !s.missed_frees.is_empty() || !s.false_frees.is_empty() {
        let _ = writeln!(
            out,
            "bad frees: {} found, {} missed ({} explained), {} false ({} explained)",
            s.found_frees.len(),
            s.missed_frees.len(),
            s.missed_frees.iter().filter(|m| m.explained.is_some()).count(),
            s.false_frees.len(),
            s.false_frees.iter().filter(|f| f.explained.is_some()).count(),
        );
    }
    for m in s.missed.iter().filter(|m| m.explained.is_some()) {
        let _ = writeln!(out, "  known miss at {}: {}", m.expected.at, m.explained.as_deref().unwrap_or(""));
    }
    for p in problems {
        let _ = writeln!(out, "  {} {p}", style.red("✗"));
    }
    out
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_string(), |v| format!("{:.0}%", v * 100.0))
}

/// Which parts of a comparison to show.
#[derive(Debug, Clone, Copy)]
pub struct View {
    /// The median cost column; off where the figures come from snapshots.
    pub timings: bool,
    /// Everything: the long-header matrix with the run counts and the
    /// per-sample table, as wide as it takes. Otherwise the output fits
    /// [`NARROW`] columns.
    pub wide: bool,
}

impl View {
    pub const DEFAULT: View = View { timings: true, wide: false };
    pub const WIDE: View = View { timings: true, wide: true };
}

/// The width the default view of a comparison fits in.
pub const NARROW: usize = 100;

/// The accuracy matrix and the disagreements, in [`NARROW`] columns.
#[must_use]
pub fn comparison(c: &Comparison, style: Style) -> String {
    comparison_view(c, style, View::DEFAULT)
}

/// The leak classes any backend of `c` has a tally in, in [`Class::ALL`] order.
#[must_use]
pub fn classes_of(c: &Comparison) -> Vec<Class> {
    Class::ALL.into_iter().filter(|cl| c.summary.values().any(|s| s.by_class.contains_key(cl))).collect()
}

/// A short column header for a leak class.
#[must_use]
pub fn short_class(cl: Class) -> &'static str {
    match cl {
        Class::Definite => "def",
        Class::Indirect => "ind",
        Class::Possible => "poss",
        Class::Reachable => "reach",
        Class::Mmap => "mmap",
        Class::Unclassified => "uncl",
        Class::BadFree => "free",
    }
}

/// Whether the annotations of a class carry a kind to agree on: a bad free
/// has none, and an unclassified finding never agrees.
fn has_kinds(cl: Class) -> bool {
    !matches!(cl, Class::BadFree | Class::Unclassified)
}

/// One matrix cell: found/missed/false, then `kN` where N of the found
/// were reported with the annotated kind.
#[must_use]
pub fn class_cell(cl: Class, t: crate::score::Tally) -> String {
    if has_kinds(cl) { format!("{}/{}/{} k{}", t.found, t.missed, t.false_reports, t.kind_agreed) } else { format!("{}/{}/{}", t.found, t.missed, t.false_reports) }
}

/// Kind agreement of a backend as a share of what it found.
#[must_use]
pub fn kind_share(s: &crate::compare::BackendSummary) -> Option<f64> {
    let (agreed, found) = s.kind_agreement();
    (found > 0).then(|| f64::from(agreed) / f64::from(found))
}

/// The compact matrix: one row per backend, short headers, columns two
/// spaces apart (one after the name), numbers right-aligned; a legend after it.
#[must_use]
pub fn matrix_narrow(c: &Comparison, style: Style, timings: bool) -> String {
    let classes = classes_of(c);
    let mut header: Vec<String> = vec!["backend".into()];
    header.extend(classes.iter().map(|cl| short_class(*cl).to_string()));
    header.extend(["rec", "prec", "kind"].map(String::from));
    if timings {
        header.push("ms".into());
    }
    let mut rows = vec![header];
    for b in &c.backends {
        let s = &c.summary[b];
        let mut row = vec![b.clone()];
        row.extend(classes.iter().map(|cl| class_cell(*cl, s.by_class.get(cl).copied().unwrap_or_default())));
        row.extend([pct(s.total.recall()), pct(s.total.precision()), pct(kind_share(s))]);
        if timings {
            row.push(s.median_wall_ms.to_string());
        }
        rows.push(row);
    }
    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for (n, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = widths[i] - cell.chars().count();
            // One space after the name column (its neighbour is
            // right-aligned, so rarely touches it): sixteen backends with
            // names like `asan-clang` and the ms column keep to 100 columns.
            let gap = if i == 1 { " " } else { "  " };
            if i == 0 {
                let _ = write!(line, "{cell}{}", " ".repeat(pad));
            } else {
                let _ = write!(line, "{gap}{}{cell}", " ".repeat(pad));
            }
        }
        let line = line.trim_end().to_string();
        if n == 0 {
            let _ = writeln!(out, "{}", style.bold(&line));
        } else {
            let _ = writeln!(out, "{line}");
        }
    }
    let legend = format!(
        "cells: annotations found/missed/false reports, kN: N of the found reported with the annotated kind. \
         {}. rec: recall, found of annotated; prec: precision, found of reported; kind: found with the annotated kind{}",
        classes.iter().map(|cl| format!("{} = {}", short_class(*cl), cl.as_str())).collect::<Vec<_>>().join(", "),
        if timings { "; ms: median wall time of one sample run" } else { "" }
    );
    out.push_str(&style.dim(&wrap(&legend, "", NARROW)));
    out
}

/// `text` broken at spaces into lines of at most `width` columns, every
/// line after the first indented by `indent`; a word longer than a line
/// stays whole.
#[must_use]
pub fn wrap(text: &str, indent: &str, width: usize) -> String {
    let lead = &text[..text.len() - text.trim_start().len()];
    let mut out = String::new();
    let mut line = lead.to_string();
    let mut fresh = true;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        if !fresh && line.chars().count() + 1 + word.chars().count() > width {
            out.push_str(&line);
            out.push('\n');
            line = indent.to_string();
            fresh = true;
        }
        if !fresh {
            line.push(' ');
        }
        line.push_str(word);
        fresh = false;
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// The accuracy matrix, the disagreements and the unavailable backends; in
/// the wide view also the run counts and the per-sample table.
#[must_use]
pub fn comparison_view(c: &Comparison, style: Style, view: View) -> String {
    let mut out = String::new();
    if view.wide {
        out.push_str(&matrix_wide(c, style, view.timings));
        out.push('\n');
        out.push_str(&per_sample(c, style));
    } else {
        let _ = writeln!(out, "{}", style.bold("Accuracy by leak class"));
        out.push_str(&matrix_narrow(c, style, view.timings));
    }
    let width = if view.wide { usize::MAX } else { NARROW };
    let failures: Vec<_> = c.outcomes.iter().filter(|o| !o.agrees()).collect();
    if !failures.is_empty() {
        let _ = writeln!(out, "\n{}", style.bold("Disagreements"));
        for o in failures {
            let mut say = |what: &str| out.push_str(&wrap(&format!("  {}::{}: {what}", o.report.backend, o.report.sample), "      ", width));
            match (&o.score, &o.report.status) {
                (_, Status::Failed { error }) => say(&format!("run failed: {error}")),
                (_, Status::NotAnalysed { reason }) => say(&format!("not analysed: {reason}")),
                (Some(s), _) => {
                    for p in s.problems() {
                        say(&p.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    if !c.unavailable.is_empty() {
        let _ = writeln!(out, "\n{}", style.bold("Backends that cannot run here"));
        for u in &c.unavailable {
            out.push_str(&wrap(&format!("  {}: {}", u.backend, u.reason), "    ", width));
            out.push_str(&wrap(&format!("    fix: {}", u.fix), "      ", width));
        }
    }
    out
}

/// The matrix with long headers and the run counts, as wide as it takes.
#[must_use]
pub fn matrix_wide(c: &Comparison, style: Style, timings: bool) -> String {
    let mut out = String::new();
    let classes = classes_of(c);
    let mut matrix = Table::new();
    let mut header = vec![Cell::new("backend")];
    header.extend(classes.iter().map(|cl| Cell::new(cl.as_str())));
    header.extend(["recall", "precision", "kind\nagreed", "runs"].map(Cell::new));
    if timings {
        header.push(Cell::new("median\nms/run"));
    }
    matrix.set_header(header);
    for b in &c.backends {
        let s = &c.summary[b];
        let mut row = vec![Cell::new(b)];
        for cl in &classes {
            let t = s.by_class.get(cl).copied().unwrap_or_default();
            row.push(Cell::new(class_cell(*cl, t)).set_alignment(CellAlignment::Center));
        }
        row.push(Cell::new(pct(s.total.recall())).set_alignment(CellAlignment::Right));
        row.push(Cell::new(pct(s.total.precision())).set_alignment(CellAlignment::Right));
        // Of the annotations found, those reported with their kind: a
        // backend without kinds scores 0 here, whatever it found.
        let (agreed, found) = s.kind_agreement();
        row.push(Cell::new(format!("{agreed}/{found}")).set_alignment(CellAlignment::Right));
        let runs = if s.failed_runs > 0 { format!("{} ({} failed)", s.runs, s.failed_runs) } else { s.runs.to_string() };
        row.push(Cell::new(runs).set_alignment(CellAlignment::Right));
        if timings {
            row.push(Cell::new(s.median_wall_ms).set_alignment(CellAlignment::Right));
        }
        matrix.add_row(row);
    }
    let _ = writeln!(
        out,
        "{}\n{matrix}",
        style.bold("Accuracy by leak class: annotations found/missed/false reports, kN: N found with the annotated kind")
    );
    out
}

/// What one run of a backend on a sample scored, in a few characters:
/// `✓ 2/2`, `✗ 1/2 +1 false`, `skipped`.
#[must_use]
pub fn sample_cell(c: &Comparison, backend: &str, sample: &str) -> String {
    match c.outcome(backend, sample) {
        None => "n/a".to_string(),
        Some(o) => match (&o.score, &o.report.status) {
            (None, _) => "skipped".to_string(),
            (Some(_), Status::Failed { .. }) => "✗ run failed".to_string(),
            (Some(_), Status::NotAnalysed { .. }) => "✗ not analysed".to_string(),
            (Some(s), _) => {
                let total = s.found.len() + s.missed.len();
                let mark = if s.passed() { "✓" } else { "✗" };
                let mut cell = format!("{mark} {}/{total}", s.found.len());
                let explained = s.missed.iter().filter(|m| m.explained.is_some()).count();
                if explained > 0 {
                    let _ = write!(cell, " ({explained} known miss)");
                }
                if !s.false_reports.is_empty() {
                    let _ = write!(cell, " +{} false", s.false_reports.len());
                }
                cell
            }
        },
    }
}

/// The per-sample table: a row per sample, a column per backend.
#[must_use]
pub fn per_sample(c: &Comparison, style: Style) -> String {
    let mut out = String::new();
    let mut table = Table::new();
    let mut header = vec![Cell::new("sample")];
    header.extend(c.backends.iter().map(Cell::new));
    table.set_header(header);
    for sample in &c.samples {
        let mut row = vec![Cell::new(sample)];
        row.extend(c.backends.iter().map(|b| Cell::new(sample_cell(c, b, sample))));
        table.add_row(row);
    }
    let _ = writeln!(out, "{}\n{table}", style.bold("Per sample (✓ = agrees with the annotations and their notes)"));
    out
}
