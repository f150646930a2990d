//! `leaklab compare --baseline before.json`: what changed since a saved
//! comparison (`compare --format json`), per backend, sample and
//! annotation. Both sides are read as JSON values of the same shape, so a
//! baseline from an older leaklab (or a doctored one) only needs the fields
//! read here: `outcomes[].report.{backend, sample, status, notes}` and
//! `outcomes[].score.{found, missed, false_reports, found_frees,
//! missed_frees, false_frees}`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::compare::Comparison;
use crate::error::Error;

/// Whether a change is an improvement, a regression, or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Worse,
    Better,
    Changed,
}

/// One difference between the baseline and now.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Change {
    pub direction: Direction,
    pub backend: String,
    pub sample: String,
    /// What changed, in a sentence: `definite at lost_tree.c:14: found, now missed`.
    pub what: String,
}

/// Every change, worst first.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Diff {
    pub changes: Vec<Change>,
}

impl Diff {
    #[must_use]
    pub fn worse(&self) -> bool {
        self.changes.iter().any(|c| c.direction == Direction::Worse)
    }

    /// Grouped by direction, one line per change.
    #[must_use]
    pub fn render(&self) -> String {
        if self.changes.is_empty() {
            return "baseline: no change\n".into();
        }
        let mut out = String::new();
        for (direction, title) in [(Direction::Worse, "worse"), (Direction::Better, "better"), (Direction::Changed, "changed")] {
            let these: Vec<&Change> = self.changes.iter().filter(|c| c.direction == direction).collect();
            if these.is_empty() {
                continue;
            }
            out.push_str(&format!("{title} ({}):\n", these.len()));
            for c in these {
                out.push_str(&format!("  {}::{}  {}\n", c.backend, c.sample, crate::render::escape_unprintable(&c.what, false)));
            }
        }
        out
    }
}

/// How one annotation fared: missed, found with another kind, found with its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fate {
    Missed,
    Found,
    Agreed,
}

impl Fate {
    fn word(self) -> &'static str {
        match self {
            Fate::Missed => "missed",
            Fate::Found => "found with another kind",
            Fate::Agreed => "found",
        }
    }
}

/// What a run of one backend on one sample says, as comparable facts.
#[derive(Debug, Default)]
struct Facts {
    status: String,
    /// Annotation (`definite at f.c:14`) → its fate.
    annotations: BTreeMap<String, Fate>,
    false_reports: BTreeSet<String>,
    /// A miss or a false report → the `//~[backend]` note that explains it.
    explained: BTreeMap<String, String>,
    /// The report's own notes.
    notes: BTreeSet<String>,
}

fn malformed(file: &Path, message: impl std::fmt::Display) -> Error {
    Error::Usage(format!("baseline {}: {message} (make one with `leaklab compare --format json > FILE`)", file.display()))
}

fn text(v: &Value, path: &[&str]) -> Option<String> {
    let mut v = v;
    for p in path {
        v = v.get(p)?;
    }
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// `definite size=24 count=1 at lost_tree.c:14` from an `expected` object.
fn annotation(e: &Value) -> Option<String> {
    let file = text(e, &["at", "file"])?;
    let line = text(e, &["at", "line"])?;
    let kind = text(e, &["kind"]).unwrap_or_else(|| "badfree".into());
    let region = text(e, &["region"]).map(|r| format!(" {r}")).unwrap_or_default();
    let size = text(e, &["size"]).map(|s| format!(" size={s}")).unwrap_or_default();
    let count = text(e, &["count"]).map(|c| format!(" count={c}")).unwrap_or_default();
    Some(format!("{kind}{region}{size}{count} at {file}:{line}"))
}

/// A false report, by what was reported and where.
fn false_report(f: &Value, item: &str) -> String {
    let r = f.get(item).unwrap_or(&Value::Null);
    let kind = text(r, &["kind"]).unwrap_or_default();
    let at = match (text(r, &["site", "file"]), text(r, &["site", "line"])) {
        (Some(file), Some(line)) => format!("{file}:{line}"),
        _ => match (text(f, &["at", "file"]), text(f, &["at", "line"])) {
            (Some(file), Some(line)) => format!("{file}:{line}"),
            _ => "no site".into(),
        },
    };
    let bytes = text(r, &["bytes"]).map(|b| format!(" {b} bytes")).unwrap_or_default();
    let blocks = text(r, &["blocks"]).map(|b| format!(" in {b} blocks")).unwrap_or_default();
    format!("{kind}{bytes}{blocks} at {at}")
}

fn array<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// The facts of every (backend, sample) of a comparison's JSON. A
/// `compare --baseline --format json` output (`{"comparison": ...}`) is read too.
fn facts(v: &Value) -> Result<BTreeMap<(String, String), Facts>, String> {
    let v = v.get("comparison").unwrap_or(v);
    let outcomes = v.get("outcomes").and_then(Value::as_array).ok_or("no `outcomes` list")?;
    let mut out = BTreeMap::new();
    for (i, o) in outcomes.iter().enumerate() {
        let report = o.get("report").ok_or_else(|| format!("outcome {} has no `report`", i + 1))?;
        let backend = text(report, &["backend"]).ok_or_else(|| format!("outcome {} has no `report.backend`", i + 1))?;
        let sample = text(report, &["sample"]).ok_or_else(|| format!("outcome {} has no `report.sample`", i + 1))?;
        let mut f = Facts { status: text(report, &["status", "state"]).unwrap_or_else(|| "ok".into()), ..Facts::default() };
        f.notes = array(report, "notes").filter_map(Value::as_str).map(str::to_string).collect();
        if let Some(score) = o.get("score").filter(|s| !s.is_null()) {
            for found in array(score, "found") {
                let key = found.get("expected").and_then(annotation).ok_or_else(|| format!("outcome {}: a `found` entry without `expected.at`", i + 1))?;
                let fate = if found.get("kind_agrees").and_then(Value::as_bool).unwrap_or(false) { Fate::Agreed } else { Fate::Found };
                f.annotations.insert(key, fate);
            }
            for found in array(score, "found_frees") {
                let key = annotation(found).ok_or_else(|| format!("outcome {}: a `found_frees` entry without `at`", i + 1))?;
                f.annotations.insert(key, Fate::Agreed);
            }
            for missed in array(score, "missed").chain(array(score, "missed_frees")) {
                let key = missed.get("expected").and_then(annotation).ok_or_else(|| format!("outcome {}: a `missed` entry without `expected.at`", i + 1))?;
                if let Some(why) = text(missed, &["explained"]) {
                    f.explained.insert(format!("miss:{key}"), why);
                }
                f.annotations.insert(key, Fate::Missed);
            }
            for (item, prefix, list) in [("leak", "", "false_reports"), ("bad_free", "bad free ", "false_frees")] {
                for x in array(score, list) {
                    let key = format!("{prefix}{}", false_report(x, item));
                    if let Some(why) = text(x, &["explained"]) {
                        f.explained.insert(format!("false:{key}"), why);
                    }
                    f.false_reports.insert(key);
                }
            }
        }
        out.insert((backend, sample), f);
    }
    Ok(out)
}

/// Checks that a baseline file can be read, before a comparison runs.
pub fn check_file(file: &Path) -> Result<(), Error> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
    let before: Value = serde_json::from_str(&text).map_err(|e| malformed(file, format!("not JSON: {e}")))?;
    facts(&before).map(|_| ()).map_err(|m| malformed(file, m))
}

/// Reads a baseline file and compares the current comparison with it.
pub fn diff_file(file: &Path, now: &Comparison) -> Result<Diff, Error> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
    let before: Value = serde_json::from_str(&text).map_err(|e| malformed(file, format!("not JSON: {e}")))?;
    let before = facts(&before).map_err(|m| malformed(file, m))?;
    let now = serde_json::to_value(now).map_err(|e| Error::Os(format!("serializing the comparison: {e}")))?;
    let now = facts(&now).map_err(|m| Error::Os(format!("the comparison itself: {m}")))?;
    Ok(diff(&before, &now))
}

fn diff(before: &BTreeMap<(String, String), Facts>, now: &BTreeMap<(String, String), Facts>) -> Diff {
    let mut changes = Vec::new();
    let mut push = |direction, (backend, sample): &(String, String), what: String| {
        changes.push(Change { direction, backend: backend.clone(), sample: sample.clone(), what });
    };
    for (key, old) in before {
        let Some(new) = now.get(key) else {
            push(Direction::Worse, key, "gone: the run is no longer in the comparison".into());
            continue;
        };
        if old.status != new.status {
            let direction = match (old.status == "ok", new.status == "ok") {
                (true, false) => Direction::Worse,
                (false, true) => Direction::Better,
                _ => Direction::Changed,
            };
            push(direction, key, format!("status {} → {}", old.status, new.status));
        }
        for (a, fate) in &old.annotations {
            match new.annotations.get(a) {
                None => push(Direction::Changed, key, format!("annotation removed: {a}")),
                Some(now_fate) if now_fate != fate => {
                    let direction = if now_fate > fate { Direction::Better } else { Direction::Worse };
                    push(direction, key, format!("{a}: {}, now {}", fate.word(), now_fate.word()));
                }
                Some(_) => {}
            }
        }
        for (a, fate) in new.annotations.iter().filter(|(a, _)| !old.annotations.contains_key(*a)) {
            push(Direction::Changed, key, format!("annotation added: {a} ({})", fate.word()));
        }
        for f in new.false_reports.difference(&old.false_reports) {
            push(Direction::Worse, key, format!("new false report: {f}"));
        }
        for f in old.false_reports.difference(&new.false_reports) {
            push(Direction::Better, key, format!("false report gone: {f}"));
        }
        // A miss or false report that stays but lost (or gained) its note.
        let stays = |item: &str| match item.split_once(':') {
            Some(("miss", a)) => old.annotations.get(a) == Some(&Fate::Missed) && new.annotations.get(a) == Some(&Fate::Missed),
            Some((_, f)) => old.false_reports.contains(f) && new.false_reports.contains(f),
            None => false,
        };
        let said = |item: &str| match item.split_once(':') {
            Some(("miss", a)) => format!("the miss of {a}"),
            Some((_, f)) => format!("the false report {f}"),
            None => item.to_string(),
        };
        for (item, why) in old.explained.iter().filter(|(i, _)| stays(i) && !new.explained.contains_key(*i)) {
            push(Direction::Worse, key, format!("note removed: {} is no longer explained (was: {why})", said(item)));
        }
        for (item, why) in new.explained.iter().filter(|(i, _)| stays(i) && !old.explained.contains_key(*i)) {
            push(Direction::Better, key, format!("note added: {} is now explained: {why}", said(item)));
        }
        for n in new.notes.difference(&old.notes) {
            push(Direction::Changed, key, format!("report note added: {n}"));
        }
        for n in old.notes.difference(&new.notes) {
            push(Direction::Changed, key, format!("report note removed: {n}"));
        }
    }
    for (key, new) in now.iter().filter(|(k, _)| !before.contains_key(*k)) {
        let missed = new.annotations.values().filter(|f| **f == Fate::Missed).count();
        push(Direction::Changed, key, format!("added: not in the baseline ({} annotations, {missed} missed, {} false reports)", new.annotations.len(), new.false_reports.len()));
    }
    changes.sort();
    Diff { changes }
}
