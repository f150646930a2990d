//! Scoring a report against a sample's annotations (DESIGN.md, Scoring).
//!
//! Backends with stacks match by line: every finding whose site is an
//! annotated line matches the annotations there (by kind, when the backend
//! classifies). Stackless backends match by shape: size per block, count,
//! region, C++ type, content.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::annotations::{ExpectedBadFree, ExpectedLeak, Expectations, Location, Note, NoteKind};
use crate::backend::Matching;
use crate::report::{BadFree, Kind, Leak, RegionKind, Report};

/// A column of the accuracy matrix: valgrind's four kinds, and mappings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Definite,
    Indirect,
    Possible,
    Reachable,
    Mmap,
    /// A false report of a backend that does not classify.
    Unclassified,
    /// A mismatched, double or invalid free (`//~ BADFREE`).
    BadFree,
}

impl Class {
    pub const ALL: [Class; 7] =
        [Class::Definite, Class::Indirect, Class::Possible, Class::Reachable, Class::Mmap, Class::Unclassified, Class::BadFree];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Definite => "definite",
            Class::Indirect => "indirect",
            Class::Possible => "possible",
            Class::Reachable => "reachable",
            Class::Mmap => "mmap",
            Class::Unclassified => "unclassified",
            Class::BadFree => "badfree",
        }
    }

    fn of_kind(kind: Kind) -> Class {
        match kind {
            Kind::Definite => Class::Definite,
            Kind::Indirect => Class::Indirect,
            Kind::Possible => Class::Possible,
            Kind::Reachable => Class::Reachable,
            Kind::Unclassified => Class::Unclassified,
        }
    }

    #[must_use]
    pub fn of_expected(e: &ExpectedLeak) -> Class {
        if e.region.is_some() { Class::Mmap } else { Class::of_kind(e.kind) }
    }

    #[must_use]
    pub fn of_leak(l: &Leak) -> Class {
        if l.region.is_some() { Class::Mmap } else { Class::of_kind(l.kind) }
    }
}

/// An annotation the backend found.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub expected: ExpectedLeak,
    pub bytes: u64,
    pub blocks: u64,
    /// Bytes and blocks are what the annotation says.
    pub exact: bool,
    /// Matched together with the other annotations of its line (a backend
    /// that does not classify): the figures are the line's totals.
    pub pooled: bool,
    /// The backend gave the annotated kind. A finding without a kind
    /// (`unclassified`, a growth) never agrees on one.
    pub kind_agrees: bool,
}

/// An annotation the backend did not find.
#[derive(Debug, Clone, Serialize)]
pub struct Missed {
    pub expected: ExpectedLeak,
    /// The `//~[backend] MISS:` note that explains it.
    pub explained: Option<String>,
}

/// A finding that matches no annotation.
#[derive(Debug, Clone, Serialize)]
pub struct FalseReport {
    pub leak: Leak,
    pub at: Option<Location>,
    /// It sits on a `//~ NOLEAK` trap.
    pub trap: bool,
    pub explained: Option<String>,
}

/// A `//~ BADFREE` the backend did not report.
#[derive(Debug, Clone, Serialize)]
pub struct MissedFree {
    pub expected: ExpectedBadFree,
    pub explained: Option<String>,
}

/// A bad free the backend reported where no `//~ BADFREE` says so.
#[derive(Debug, Clone, Serialize)]
pub struct FalseFree {
    pub bad_free: BadFree,
    pub at: Option<Location>,
    pub explained: Option<String>,
}

/// How one backend did on one sample.
#[derive(Debug, Clone, Serialize)]
pub struct Score {
    pub sample: String,
    pub backend: String,
    pub found: Vec<Found>,
    pub missed: Vec<Missed>,
    pub false_reports: Vec<FalseReport>,
    /// Notes of this backend that no longer explain anything.
    pub stale_notes: Vec<Note>,
    /// Bad frees, scored only for backends that check frees.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub found_frees: Vec<ExpectedBadFree>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missed_frees: Vec<MissedFree>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub false_frees: Vec<FalseFree>,
}

/// found / missed / false counts of one class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub found: u32,
    pub missed: u32,
    pub false_reports: u32,
    /// Of `found`: those reported with the annotated kind.
    pub kind_agreed: u32,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.found += other.found;
        self.missed += other.missed;
        self.false_reports += other.false_reports;
        self.kind_agreed += other.kind_agreed;
    }

    /// kind_agreed / found; None when nothing was found.
    #[must_use]
    pub fn kind_agreement(&self) -> Option<f64> {
        (self.found > 0).then(|| f64::from(self.kind_agreed) / f64::from(self.found))
    }

    /// found / (found + missed); None when nothing was expected.
    #[must_use]
    pub fn recall(&self) -> Option<f64> {
        let d = self.found + self.missed;
        (d > 0).then(|| f64::from(self.found) / f64::from(d))
    }

    /// found / (found + false); None when nothing was reported.
    #[must_use]
    pub fn precision(&self) -> Option<f64> {
        let d = self.found + self.false_reports;
        (d > 0).then(|| f64::from(self.found) / f64::from(d))
    }
}

impl Score {
    /// Per-class tallies: annotations count once each, false reports once per finding.
    #[must_use]
    pub fn tallies(&self) -> BTreeMap<Class, Tally> {
        let mut t: BTreeMap<Class, Tally> = BTreeMap::new();
        for f in &self.found {
            let e = t.entry(Class::of_expected(&f.expected)).or_default();
            e.found += 1;
            e.kind_agreed += u32::from(f.kind_agrees);
        }
        for m in &self.missed {
            t.entry(Class::of_expected(&m.expected)).or_default().missed += 1;
        }
        for f in &self.false_reports {
            t.entry(Class::of_leak(&f.leak)).or_default().false_reports += 1;
        }
        if !self.found_frees.is_empty() || !self.missed_frees.is_empty() || !self.false_frees.is_empty() {
            let b = t.entry(Class::BadFree).or_default();
            b.found += self.found_frees.len() as u32;
            b.missed += self.missed_frees.len() as u32;
            b.false_reports += self.false_frees.len() as u32;
        }
        t
    }

    /// Everything that makes the trial fail, one sentence each.
    #[must_use]
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for m in self.missed.iter().filter(|m| m.explained.is_none()) {
            let e = &m.expected;
            out.push(format!(
                "{}: missed `LEAK {} size={} count={}`; if {} cannot see it, explain with `//~[{}] MISS: why`",
                e.at, e.kind, e.size, e.count, self.backend, self.backend
            ));
        }
        // Inexact finds with a MISS note on their line were moved to `missed`.
        let mut pooled_lines = Vec::new();
        for f in self.found.iter().filter(|f| !f.exact) {
            let e = &f.expected;
            if f.pooled {
                if !pooled_lines.contains(&&e.at) {
                    pooled_lines.push(&e.at);
                    out.push(format!(
                        "{}: found {} bytes in {} blocks where the line's annotations say otherwise (a backend without kinds is matched on the line's totals)",
                        e.at, f.bytes, f.blocks
                    ));
                }
                continue;
            }
            out.push(format!(
                "{}: found {} bytes in {} blocks where `LEAK {} size={} count={}` says {} bytes in {} blocks",
                e.at,
                f.bytes,
                f.blocks,
                e.kind,
                e.size,
                e.count,
                e.bytes(),
                e.count
            ));
        }
        for f in self.false_reports.iter().filter(|f| f.explained.is_none()) {
            let l = &f.leak;
            let at = f.at.as_ref().map(ToString::to_string).unwrap_or_else(|| "(no site in the sample)".into());
            let what = if f.trap { "a NOLEAK trap reported" } else { "reported on no annotated line" };
            let stack: Vec<String> = l
                .stack
                .iter()
                .take(6)
                .map(|fr| format!("{}{}", fr.function.as_deref().unwrap_or("??"), fr.line.map(|n| format!(":{n}")).unwrap_or_default()))
                .collect();
            out.push(format!(
                "{at}: {what}: {} {} bytes in {} blocks{} [{}]; if this is a limit of {}, explain with `//~[{}] FALSE: why`",
                l.kind,
                l.bytes,
                l.blocks,
                l.region.as_ref().map(|r| format!(" ({})", r.kind.as_str())).unwrap_or_default(),
                stack.join(" < "),
                self.backend,
                self.backend
            ));
        }
        for m in self.missed_frees.iter().filter(|m| m.explained.is_none()) {
            out.push(format!(
                "{}: missed `BADFREE {}`; if {} cannot see it, explain with `//~[{}] MISS: why`",
                m.expected.at,
                m.expected.kind.as_str(),
                self.backend,
                self.backend
            ));
        }
        for f in self.false_frees.iter().filter(|f| f.explained.is_none()) {
            let at = f.at.as_ref().map(ToString::to_string).unwrap_or_else(|| "(no site in the sample)".into());
            let b = &f.bad_free;
            out.push(format!(
                "{at}: reported a {} free ({} of a block from {}) where no `//~ BADFREE` is; if this is a limit of {}, explain with `//~[{}] FALSE: why`",
                b.kind.as_str(),
                b.dealloc,
                b.api.as_deref().unwrap_or("nowhere known"),
                self.backend,
                self.backend
            ));
        }
        for n in &self.stale_notes {
            let what = match n.kind {
                NoteKind::Miss => "no longer missed",
                NoteKind::False => "no longer falsely reported",
            };
            out.push(format!("{}: `//~[{}] {}` is stale: the line is {what}; remove the note", n.at, n.backend, kind_word(n.kind)));
        }
        out
    }

    #[must_use]
    pub fn passed(&self) -> bool {
        self.problems().is_empty()
    }
}

fn kind_word(k: NoteKind) -> &'static str {
    match k {
        NoteKind::Miss => "MISS:",
        NoteKind::False => "FALSE:",
    }
}

/// How a backend is scored: its matching, and whether its bad frees count.
#[derive(Debug, Clone, Copy)]
pub struct Scoring {
    pub matching: Matching,
    pub checks_frees: bool,
}

impl Scoring {
    #[must_use]
    pub fn of(backend: &dyn crate::backend::Backend) -> Scoring {
        Scoring { matching: backend.matching(), checks_frees: backend.checks_frees() }
    }
}

/// Scores a report against the expectations of its sample; whether frees
/// are scored is looked up in the built-in registry by the report's backend.
#[must_use]
pub fn score(report: &Report, expected: &Expectations, matching: Matching) -> Score {
    let checks_frees = crate::backend::by_name(&report.backend).is_ok_and(|b| b.checks_frees());
    score_as(report, expected, Scoring { matching, checks_frees })
}

/// Scores a report as `scoring` says (a detector file is not in the registry).
#[must_use]
pub fn score_as(report: &Report, expected: &Expectations, scoring: Scoring) -> Score {
    let matching = scoring.matching;
    let backend = report.backend.as_str();
    let mut found = Vec::new();
    let mut missed = Vec::new();
    let mut false_reports = Vec::new();
    let mut used = vec![false; report.leaks.len()];

    match matching {
        Matching::BySite => {
            let at_of = |l: &Leak| l.site.as_ref().map(|s| Location { file: s.file.clone(), line: s.line });
            for e in &expected.leaks {
                let mut bytes = 0;
                let mut blocks = 0;
                let mut any = false;
                for (i, l) in report.leaks.iter().enumerate() {
                    if at_of(l).as_ref() != Some(&e.at) || l.region.is_some() != e.region.is_some() {
                        continue;
                    }
                    if l.kind == e.kind {
                        any = true;
                        used[i] = true;
                        bytes += l.bytes;
                        blocks += l.blocks;
                    }
                }
                if any {
                    found.push(Found { expected: e.clone(), bytes, blocks, exact: bytes == e.bytes() && blocks == e.count, pooled: false, kind_agrees: true });
                } else {
                    missed.push(e.clone());
                }
            }
            // A backend that does not classify matches the pooled annotations of a line.
            let mut pooled: BTreeMap<(Location, bool), (u64, u64)> = BTreeMap::new();
            for (i, l) in report.leaks.iter().enumerate() {
                if l.kind != Kind::Unclassified {
                    continue;
                }
                let Some(at) = at_of(l) else { continue };
                if expected.leaks.iter().any(|e| e.at == at && e.region.is_some() == l.region.is_some()) {
                    used[i] = true;
                    let p = pooled.entry((at, l.region.is_some())).or_default();
                    p.0 += l.bytes;
                    p.1 += l.blocks;
                }
            }
            let mut still_missed = Vec::new();
            for e in missed.drain(..) {
                match pooled.get(&(e.at.clone(), e.region.is_some())) {
                    Some(&(bytes, blocks)) => {
                        let group: Vec<&ExpectedLeak> =
                            expected.leaks.iter().filter(|x| x.at == e.at && x.region.is_some() == e.region.is_some()).collect();
                        let want_bytes: u64 = group.iter().map(|x| x.bytes()).sum();
                        let want_blocks: u64 = group.iter().map(|x| x.count).sum();
                        found.push(Found { expected: e, bytes, blocks, exact: bytes == want_bytes && blocks == want_blocks, pooled: true, kind_agrees: false });
                    }
                    None => still_missed.push(e),
                }
            }
            missed = still_missed;
            // A finding whose stack lost every frame of the program (a
            // stack walk that ended in the runtime) has no site: it can
            // still be the leak of a missed annotation of its shape, as a
            // stackless backend's finding is.
            let mut still_missed = Vec::new();
            for e in missed.drain(..) {
                let mut hit = None;
                for (i, l) in report.leaks.iter().enumerate() {
                    if !used[i] && l.site.is_none() && shape_matches(&e, &without_unseen(&e, l)) {
                        used[i] = true;
                        let (bytes, blocks) = hit.unwrap_or((0, 0));
                        hit = Some((bytes + l.bytes, blocks + shape_blocks(&e, l)));
                    }
                }
                match hit {
                    Some((bytes, blocks)) => found.push(Found { exact: blocks == e.count, expected: e, bytes, blocks, pooled: false, kind_agrees: false }),
                    None => still_missed.push(e),
                }
            }
            missed = still_missed;
            for (i, l) in report.leaks.iter().enumerate() {
                if !used[i] {
                    let at = at_of(l);
                    let trap = at.as_ref().is_some_and(|a| expected.noleaks.contains(a));
                    false_reports.push(FalseReport { leak: l.clone(), at, trap, explained: None });
                }
            }
        }
        Matching::ByShape => {
            // Most specific annotations first, so a size-only one cannot take
            // the blocks a typed or content-matched one describes.
            let mut order: Vec<&ExpectedLeak> = expected.leaks.iter().collect();
            order.sort_by_key(|e| (e.region.is_none(), e.type_name.is_none(), e.content.is_none()));
            for e in order {
                let mut bytes = 0;
                let mut blocks = 0;
                let mut any = false;
                let mut kind_agrees = true;
                for (i, l) in report.leaks.iter().enumerate() {
                    if used[i] || !shape_matches(e, l) {
                        continue;
                    }
                    any = true;
                    kind_agrees &= l.kind == e.kind;
                    used[i] = true;
                    bytes += l.bytes;
                    blocks += shape_blocks(e, l);
                }
                if any {
                    // Figures are exact when the count agrees and every block has
                    // the annotated size as the backend can see it (shape_matches).
                    found.push(Found { expected: e.clone(), bytes, blocks, exact: blocks == e.count, pooled: false, kind_agrees });
                } else {
                    missed.push(e.clone());
                }
            }
            for (i, l) in report.leaks.iter().enumerate() {
                if !used[i] {
                    false_reports.push(FalseReport { leak: l.clone(), at: None, trap: false, explained: None });
                }
            }
        }
        Matching::ByGrowth => {
            // Each annotation names the class of mappings its leak grows
            // (growth_class); it is found when that class grew. Several
            // annotations may share one growing class (a tree's nodes); a
            // class that grew with no annotation to explain it is a false
            // report. Figures are not compared: the growth over a window of
            // the forever mode has no relation to the annotated counts.
            for e in &expected.leaks {
                let want = growth_class(e);
                let hits: Vec<usize> =
                    report.leaks.iter().enumerate().filter(|(_, l)| leak_class(l) == Some(want)).map(|(i, _)| i).collect();
                if hits.is_empty() {
                    missed.push(e.clone());
                    continue;
                }
                let (mut bytes, mut blocks) = (0, 0);
                for i in hits {
                    used[i] = true;
                    bytes += report.leaks[i].bytes;
                    blocks += report.leaks[i].blocks;
                }
                // A growing class of mappings says nothing about the kind.
                found.push(Found { expected: e.clone(), bytes, blocks, exact: true, pooled: false, kind_agrees: false });
            }
            for (i, l) in report.leaks.iter().enumerate() {
                if !used[i] {
                    false_reports.push(FalseReport { leak: l.clone(), at: None, trap: false, explained: None });
                }
            }
        }
    }

    let (found_frees, missed_frees, false_frees) = score_frees(report, expected, scoring.checks_frees);

    // Explanations, and notes that explain nothing any more.
    let mut stale_notes = Vec::new();
    let mut missed: Vec<Missed> = missed
        .into_iter()
        .map(|e| {
            let explained = expected.note(backend, NoteKind::Miss, &e.at).map(|n| n.why.clone());
            Missed { expected: e, explained }
        })
        .collect();
    for f in &mut false_reports {
        f.explained = match &f.at {
            Some(at) => expected.note(backend, NoteKind::False, at).map(|n| n.why.clone()),
            // Unlocated findings (stackless backends) are explained by any FALSE note of the backend.
            None => expected.notes.iter().find(|n| n.backend == backend && n.kind == NoteKind::False).map(|n| n.why.clone()),
        };
    }
    // A MISS note also covers figures that differ on its line: the found
    // annotation is then treated as missed-but-explained for the trial.
    let mut still_found = Vec::new();
    for f in found {
        if !f.exact {
            if let Some(n) = expected.note(backend, NoteKind::Miss, &f.expected.at) {
                missed.push(Missed { expected: f.expected, explained: Some(n.why.clone()) });
                continue;
            }
        }
        still_found.push(f);
    }
    let found = still_found;
    for n in expected.notes.iter().filter(|n| n.backend == backend) {
        let in_use = match n.kind {
            NoteKind::Miss => missed.iter().any(|m| m.expected.at == n.at) || missed_frees.iter().any(|m| m.expected.at == n.at),
            NoteKind::False => {
                false_reports.iter().any(|f| match &f.at {
                    Some(at) => at == &n.at,
                    None => true,
                }) || false_frees.iter().any(|f| f.at.as_ref() == Some(&n.at))
            }
        };
        if !in_use {
            stale_notes.push(n.clone());
        }
    }
    Score {
        sample: report.sample.clone(),
        backend: backend.to_string(),
        found,
        missed,
        false_reports,
        stale_notes,
        found_frees,
        missed_frees,
        false_frees,
    }
}

/// Matches reported bad frees to `//~ BADFREE` lines by site and kind, for
/// backends that check frees (`Backend::checks_frees`); others are not
/// scored on frees at all.
fn score_frees(report: &Report, expected: &Expectations, checks_frees: bool) -> (Vec<ExpectedBadFree>, Vec<MissedFree>, Vec<FalseFree>) {
    let backend = report.backend.as_str();
    if !checks_frees {
        return (Vec::new(), Vec::new(), Vec::new());
    }
    let at_of = |b: &BadFree| b.site.as_ref().map(|s| Location { file: s.file.clone(), line: s.line });
    let mut used = vec![false; report.bad_frees.len()];
    let mut found = Vec::new();
    let mut missed = Vec::new();
    for e in &expected.bad_frees {
        let mut any = false;
        for (i, b) in report.bad_frees.iter().enumerate() {
            if b.kind == e.kind && at_of(b).as_ref() == Some(&e.at) {
                used[i] = true;
                any = true;
            }
        }
        if any {
            found.push(e.clone());
        } else {
            let explained = expected.note(backend, NoteKind::Miss, &e.at).map(|n| n.why.clone());
            missed.push(MissedFree { expected: e.clone(), explained });
        }
    }
    let false_frees = report
        .bad_frees
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(b, _)| {
            let at = at_of(b);
            let explained = at.as_ref().and_then(|a| expected.note(backend, NoteKind::False, a)).map(|n| n.why.clone());
            FalseFree { bad_free: b.clone(), at, explained }
        })
        .collect();
    (found, missed, false_frees)
}

/// The sizes a stackless backend may see for a block of `n` requested bytes:
/// `n` itself, or what glibc's malloc really gives (malloc_usable_size), from
/// a heap chunk (request2size minus the header) or from its own mapping
/// (rounded up to pages). A heap walker sees only the latter.
#[must_use]
pub fn sizes_seen(n: u64) -> [u64; 3] {
    let chunk = ((n + 8 + 15) & !15).max(32);
    let mapped = (chunk + 8 + 4095) & !4095;
    [n, chunk - 8, mapped - 16]
}

/// How many annotated blocks a matching finding stands for. The kernel
/// merges adjacent mappings of equal protection into one, so a leaked region
/// of k times the annotated size is k leaked mappings.
fn shape_blocks(e: &ExpectedLeak, l: &Leak) -> u64 {
    match (&e.region, &l.region) {
        (Some(_), Some(_)) if e.size > 0 && l.bytes.is_multiple_of(e.size) => l.bytes / e.size,
        _ => l.blocks,
    }
}

/// glibc's default mmap threshold: malloc serves blocks of this size and
/// more with their own anonymous mapping rather than from [heap].
pub const GLIBC_MMAP_THRESHOLD: u64 = 128 * 1024;

/// Where the leak of an annotation grows, for `Matching::ByGrowth`: its
/// region, or for a heap block [heap] (`true`), unless the block is large
/// enough for malloc to mmap it.
#[must_use]
pub fn growth_class(e: &ExpectedLeak) -> (RegionKind, bool) {
    match e.region {
        Some(kind) => (kind, false),
        None if e.size >= GLIBC_MMAP_THRESHOLD => (RegionKind::PrivateAnon, false),
        None => (RegionKind::PrivateAnon, true),
    }
}

/// The class a growth finding is in: its region, and whether it is [heap].
fn leak_class(l: &Leak) -> Option<(RegionKind, bool)> {
    let r = l.region.as_ref()?;
    Some((r.kind, r.path.as_deref() == Some("[heap]")))
}

/// The annotation's content and type are checked only where the finding
/// says anything about them: a backend that sees no contents cannot
/// disagree with them.
fn without_unseen(e: &ExpectedLeak, l: &Leak) -> Leak {
    let mut l = l.clone();
    if l.content.is_none() {
        l.content.clone_from(&e.content);
    }
    if l.type_name.is_none() {
        l.type_name.clone_from(&e.type_name);
    }
    l
}

fn shape_matches(e: &ExpectedLeak, l: &Leak) -> bool {
    if l.blocks == 0 {
        return false;
    }
    let size_ok = if e.region.is_some() {
        e.size > 0 && l.bytes.is_multiple_of(e.size) && l.bytes / e.size >= l.blocks
    } else {
        l.bytes.is_multiple_of(l.blocks) && sizes_seen(e.size).contains(&(l.bytes / l.blocks))
    };
    if !size_ok {
        return false;
    }
    if l.kind != Kind::Unclassified && l.kind != e.kind {
        return false;
    }
    match (&e.region, &l.region) {
        (Some(want), Some(got)) => return *want == got.kind,
        (None, None) => {}
        _ => return false,
    }
    if let Some(t) = &e.type_name {
        if l.type_name.as_ref() != Some(t) {
            return false;
        }
    }
    if let Some(c) = &e.content {
        if !l.content.as_deref().is_some_and(|got| got.starts_with(c.as_str())) {
            return false;
        }
    }
    true
}
