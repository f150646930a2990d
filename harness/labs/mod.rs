//! Coursework labs (labs/): the catalogue in labs/labs.toml, the student's
//! progress and hints, and the checker that builds a lab's work and runs its
//! checks. One module per kind of check; `check` dispatches on the `check`
//! key of labs.toml. The student's files are only read (copied into a
//! scratch build directory), except by `reset`.

pub mod annotate;
pub mod answers;
pub mod cli;
pub mod compile;
pub mod dumper;
pub mod generate;
pub mod memleak;
pub mod observe;
pub mod symbols;
pub mod tracker;
pub mod valgrind_fix;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::backend::{self, Availability};
use crate::error::Error;

/// Where the labs live: `LEAKLAB_LABS_DIR`, or labs/ of the checkout leaklab was built from.
#[must_use]
pub fn labs_root() -> PathBuf {
    match std::env::var_os("LEAKLAB_LABS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("labs"),
    }
}

/// Teacher material (reference solutions, ground truth): `LEAKLAB_TEACHER_DIR`,
/// or teacher/labs/ of the checkout. Kept out of labs/ and out of the book, so
/// that a student working in labs/ does not stumble on the answers.
#[must_use]
pub fn teacher_root() -> PathBuf {
    match std::env::var_os("LEAKLAB_TEACHER_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("teacher").join("labs"),
    }
}

/// c-samples/, for leaklab.h.
#[must_use]
pub fn samples_include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("c-samples")
}

/// One `[[lab]]` of labs.toml.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Lab {
    /// Two digits: the order of the labs.
    pub id: String,
    pub name: String,
    pub title: String,
    /// One line: what the lab teaches.
    pub teaches: String,
    /// The book's chapter for the lab, relative to the repository.
    pub chapter: String,
    /// The kind of checker (a module of harness/labs/).
    pub check: String,
    /// The files the student edits; pristine copies are in starter/, the reference in solution/.
    pub files: Vec<String>,
    /// Backends the checks cannot do without.
    #[serde(default)]
    pub backends: Vec<String>,
    /// Backends that confirm the student's answer when they can run; skipped otherwise.
    #[serde(default)]
    pub confirm_with: Vec<String>,
    /// In the order they are given.
    pub hints: Vec<String>,
}

impl Lab {
    /// `01-observe`.
    #[must_use]
    pub fn slug(&self) -> String {
        format!("{}-{}", self.id, self.name)
    }

    #[must_use]
    pub fn dir(&self) -> PathBuf {
        labs_root().join(self.slug())
    }

    /// The lab's teacher material: solution/ and the checker's ground truth.
    #[must_use]
    pub fn teacher_dir(&self) -> PathBuf {
        teacher_root().join(self.slug())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabsFile {
    lab: Vec<Lab>,
}

/// The labs of labs/labs.toml, in order, each checked for a folder, its files and a known checker.
pub fn labs() -> Result<Vec<Lab>, Error> {
    let path = labs_root().join("labs.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let file: LabsFile = toml::from_str(&text).map_err(|e| Error::LabSetup(format!("{}: {e}", path.display())))?;
    for lab in &file.lab {
        if !CHECKERS.contains(&lab.check.as_str()) {
            return Err(Error::LabSetup(format!("{}: lab {}: unknown check `{}` (known: {})", path.display(), lab.id, lab.check, CHECKERS.join(", "))));
        }
        for f in &lab.files {
            for p in [FileSet::Starter.dir(lab).join(f), FileSet::Solution.dir(lab).join(f)] {
                if !p.is_file() {
                    return Err(Error::LabSetup(format!("lab {}: {} is missing", lab.id, p.display())));
                }
            }
        }
    }
    Ok(file.lab)
}

/// The lab with id `id` (`3` and `03` both work) or name `name`.
pub fn find(id: &str) -> Result<Lab, Error> {
    let all = labs()?;
    let want = id.trim();
    all.iter()
        .find(|l| l.id == want || l.name == want || l.slug() == want || (want.parse::<u32>().ok().is_some_and(|n| l.id.parse::<u32>().ok() == Some(n))))
        .cloned()
        .ok_or_else(|| {
            let known: Vec<String> = all.iter().map(Lab::slug).collect();
            Error::Usage(format!("no lab `{id}`; the labs are {}", known.join(", ")))
        })
}

/// A checker: records each of its declared checks (a harness failure is an error).
type Checker = fn(&Ctx, &mut Checks) -> Result<(), Error>;

/// The kinds of checker, by the `check` key of labs.toml.
pub const CHECKERS: &[&str] = &["observe", "valgrind-fix", "tracker", "symbols", "memleak", "dumper", "annotate"];

/// Which copy of the student's files to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileSet {
    /// The files the student edits, in labs/NN-name/.
    Work,
    /// labs/NN-name/starter/: what `reset` restores.
    Starter,
    /// teacher/labs/NN-name/solution/: the reference solution.
    Solution,
    /// A directory the caller names (`check_given`): the suite's wrong solutions.
    Given,
}

impl FileSet {
    /// Where the set's files are; `Given` has no place of its own (see `check_given`).
    #[must_use]
    pub fn dir(self, lab: &Lab) -> PathBuf {
        match self {
            FileSet::Work | FileSet::Given => lab.dir(),
            FileSet::Starter => lab.dir().join("starter"),
            FileSet::Solution => lab.teacher_dir().join("solution"),
        }
    }
}

/// A place in the student's (or the lab's) files, and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    pub message: String,
}

impl Problem {
    pub fn new(message: impl Into<String>) -> Problem {
        Problem { file: None, line: None, message: message.into() }
    }

    pub fn at(file: &Path, line: Option<u32>, message: impl Into<String>) -> Problem {
        Problem { file: Some(backend::display_path(file)), line, message: message.into() }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}: {}", self.message),
            (Some(file), None) => write!(f, "{file}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// How one check went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// A confirmation by a backend that cannot run here; not counted.
    Skipped { reason: String, fix: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

/// The checks of one run, in the lab's fixed order so that the total never
/// depends on how far the student got.
pub struct Checks {
    names: Vec<&'static str>,
    done: BTreeMap<&'static str, Check>,
}

impl Checks {
    #[must_use]
    pub fn new(names: &[&'static str]) -> Checks {
        Checks { names: names.to_vec(), done: BTreeMap::new() }
    }

    /// Records a check: it passes when `problems` is empty. Returns whether it passed.
    pub fn record(&mut self, name: &'static str, problems: Vec<Problem>) -> bool {
        assert!(self.names.contains(&name), "check `{name}` is not declared");
        let outcome = if problems.is_empty() { Outcome::Pass } else { Outcome::Fail };
        let passed = outcome == Outcome::Pass;
        self.done.insert(name, Check { name: name.to_string(), outcome, problems });
        passed
    }

    /// Records a confirmation that could not run.
    pub fn skip(&mut self, name: &'static str, reason: impl Into<String>, fix: impl Into<String>) {
        assert!(self.names.contains(&name), "check `{name}` is not declared");
        self.done.insert(name, Check { name: name.to_string(), outcome: Outcome::Skipped { reason: reason.into(), fix: fix.into() }, problems: Vec::new() });
    }

    /// Whether a check was already recorded (or skipped).
    #[must_use]
    pub fn is_done(&self, name: &str) -> bool {
        self.done.contains_key(name)
    }

    /// The checks in order; those never reached fail, since an earlier one
    /// stopped the run (a build that failed, a file that does not parse).
    fn finish(mut self, stopped_by: Option<&str>) -> Vec<Check> {
        let why = match stopped_by {
            Some(s) => format!("not run: the checks above must pass first (`{s}` fails)"),
            None => "not run".to_string(),
        };
        self.names
            .iter()
            .map(|n| self.done.remove(n).unwrap_or_else(|| Check { name: n.to_string(), outcome: Outcome::Fail, problems: vec![Problem::new(why.clone())] }))
            .collect()
    }

    /// The first declared check that failed, for "not run" messages.
    fn first_failure(&self) -> Option<&'static str> {
        self.names.iter().copied().find(|n| self.done.get(n).is_some_and(|c| c.outcome == Outcome::Fail))
    }
}

/// What a checker sees: the lab, where its files are, and a scratch build directory
/// holding copies of the lab's fixed files and of the student's files.
pub struct Ctx {
    pub lab: Lab,
    pub copy: FileSet,
    /// Where the student's files were taken from.
    pub files_dir: PathBuf,
    pub build: crate::contain::Scratch,
}

impl Ctx {
    fn new(lab: &Lab, copy: FileSet, files_dir: PathBuf) -> Result<Ctx, Error> {
        let build = crate::contain::scratch()?;
        let dir = lab.dir();
        // The lab's own files (the programs the student does not edit, expected outputs).
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Sources and data only: not the student's own builds, backups or notes.
            let lab_file = [".c", ".cpp", ".h", ".txt"].iter().any(|ext| name.ends_with(ext));
            if entry.path().is_file() && lab_file && !lab.files.contains(&name) {
                copy_file(&entry.path(), &build.path().join(&name))?;
            }
        }
        for f in &lab.files {
            let from = files_dir.join(f);
            if !from.is_file() {
                return Err(Error::Usage(format!("{} is missing; `leaklab lab reset {}` restores the starter", backend::display_path(&from), lab.id)));
            }
            copy_file(&from, &build.path().join(f))?;
        }
        Ok(Ctx { lab: lab.clone(), copy, files_dir, build })
    }

    /// Where a file shown to the student is: an edited file in the checked copy, or the lab's own.
    #[must_use]
    pub fn shown(&self, name: &str) -> PathBuf {
        if self.lab.files.iter().any(|f| f == name) {
            self.files_dir.join(name)
        } else {
            self.lab.dir().join(name)
        }
    }

    /// A file in the build directory.
    #[must_use]
    pub fn path(&self, name: &str) -> PathBuf {
        self.build.path().join(name)
    }

    /// The text of a file of the build directory.
    pub fn read(&self, name: &str) -> Result<String, Error> {
        let p = self.path(name);
        std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))
    }

    /// Replaces build-directory paths in a tool's output by the paths the student knows.
    #[must_use]
    pub fn unbuild(&self, text: &str) -> String {
        let prefix = format!("{}/", self.build.path().display());
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(pos) = rest.find(&prefix) {
            out.push_str(&rest[..pos]);
            rest = &rest[pos + prefix.len()..];
            let end = rest.find(|c: char| c == ':' || c.is_whitespace()).unwrap_or(rest.len());
            out.push_str(&backend::display_path(&self.shown(&rest[..end])));
            rest = &rest[end..];
        }
        out.push_str(rest);
        out
    }
}

fn copy_file(from: &Path, to: &Path) -> Result<(), Error> {
    std::fs::copy(from, to).map(|_| ()).map_err(|e| Error::io(from, e))
}

/// The next hint of a lab.
#[derive(Debug, Clone, Serialize)]
pub struct Hint {
    /// 1-based.
    pub number: usize,
    pub of: usize,
    pub text: String,
}

/// The result of `leaklab lab check` on one lab.
#[derive(Debug, Clone, Serialize)]
pub struct LabResult {
    pub id: String,
    pub name: String,
    pub title: String,
    /// Which files were checked: the student's, the starter or the solution.
    pub files: FileSet,
    /// A backend the lab needs cannot run here: nothing was checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<Unavailable>,
    pub checks: Vec<Check>,
    pub passed: usize,
    /// Checks counted (skipped confirmations are not).
    pub total: usize,
    pub complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_hint: Option<Hint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Unavailable {
    pub backend: String,
    pub reason: String,
    pub fix: String,
}

/// Whether a backend known by name can run; unknown names are backends not built into this leaklab.
#[must_use]
pub fn backend_availability(name: &str) -> Availability {
    match backend::by_name(name) {
        Ok(b) => b.availability(),
        Err(_) => Availability::Unavailable {
            reason: format!("the `{name}` backend is not built into this leaklab yet"),
            fix: "update leaklab (git pull) and rebuild it".into(),
        },
    }
}

/// What a lab needs beyond its backends (ptrace rights for the dumper).
fn extra_requirements(lab: &Lab) -> Option<Unavailable> {
    if lab.check == "dumper" {
        if let Availability::Unavailable { reason, fix } = dumper::availability() {
            return Some(Unavailable { backend: "ptrace".into(), reason, fix });
        }
    }
    None
}

/// Builds and checks one lab's files. Harness failures are errors; the
/// student's mistakes are failed checks.
pub fn check(lab: &Lab, copy: FileSet) -> Result<LabResult, Error> {
    check_files(lab, copy, copy.dir(lab))
}

/// Checks the lab's files taken from `dir` (a wrong solution of the suite);
/// records no progress.
pub fn check_given(lab: &Lab, dir: &Path) -> Result<LabResult, Error> {
    check_files(lab, FileSet::Given, dir.to_path_buf())
}

fn check_files(lab: &Lab, copy: FileSet, files_dir: PathBuf) -> Result<LabResult, Error> {
    let mut result = LabResult {
        id: lab.id.clone(),
        name: lab.name.clone(),
        title: lab.title.clone(),
        files: copy,
        unavailable: None,
        checks: Vec::new(),
        passed: 0,
        total: 0,
        complete: false,
        next_hint: None,
    };
    for b in &lab.backends {
        if let Availability::Unavailable { reason, fix } = backend_availability(b) {
            result.unavailable = Some(Unavailable { backend: b.clone(), reason, fix });
            return Ok(result);
        }
    }
    if let Some(u) = extra_requirements(lab) {
        result.unavailable = Some(u);
        return Ok(result);
    }
    let ctx = Ctx::new(lab, copy, files_dir)?;
    let (names, run): (&[&'static str], Checker) = match lab.check.as_str() {
        "observe" => (observe::CHECKS, observe::run),
        "valgrind-fix" => (valgrind_fix::CHECKS, valgrind_fix::run),
        "tracker" => (tracker::CHECKS, tracker::run),
        "symbols" => (symbols::CHECKS, symbols::run),
        "memleak" => (memleak::CHECKS, memleak::run),
        "dumper" => (dumper::CHECKS, dumper::run),
        "annotate" => (annotate::CHECKS, annotate::run),
        other => return Err(Error::LabSetup(format!("unknown check `{other}`"))),
    };
    let mut checks = Checks::new(names);
    // A confirmation by a backend that cannot run is skipped up front, so the
    // total is the same however far the student got.
    for b in &lab.confirm_with {
        if let Availability::Unavailable { reason, fix } = backend_availability(b) {
            let name = format!("{b} agrees");
            let declared = names.iter().copied().find(|n| *n == name).ok_or_else(|| Error::LabSetup(format!("lab {}: no check `{name}` for confirm_with `{b}`", lab.id)))?;
            checks.skip(declared, reason, fix);
        }
    }
    run(&ctx, &mut checks)?;
    let stopped_by = checks.first_failure();
    result.checks = checks.finish(stopped_by);
    result.total = result.checks.iter().filter(|c| !matches!(c.outcome, Outcome::Skipped { .. })).count();
    result.passed = result.checks.iter().filter(|c| c.outcome == Outcome::Pass).count();
    result.complete = result.passed == result.total;
    if copy == FileSet::Work {
        let mut progress = Progress::load()?;
        let entry = progress.labs.entry(lab.id.clone()).or_default();
        entry.last = Some(LastCheck { passed: result.passed, total: result.total, complete: result.complete, at: unix_now() });
        if !result.complete {
            result.next_hint = next_hint(lab, entry.hints_shown);
        }
        progress.save()?;
    } else if !result.complete {
        result.next_hint = next_hint(lab, 0);
    }
    Ok(result)
}

fn next_hint(lab: &Lab, shown: usize) -> Option<Hint> {
    lab.hints.get(shown).map(|t| Hint { number: shown + 1, of: lab.hints.len(), text: t.clone() })
}

/// Shows the next hint of a lab and remembers it was shown. When all were
/// shown, the last one again.
pub fn hint(lab: &Lab) -> Result<Option<Hint>, Error> {
    if lab.hints.is_empty() {
        return Ok(None);
    }
    let mut progress = Progress::load()?;
    let entry = progress.labs.entry(lab.id.clone()).or_default();
    let index = entry.hints_shown.min(lab.hints.len() - 1);
    entry.hints_shown = (index + 1).min(lab.hints.len());
    progress.save()?;
    Ok(next_hint(lab, index))
}

/// Restores the student's files from starter/; the replaced ones are kept as NAME.bak.
pub fn reset(lab: &Lab) -> Result<Vec<PathBuf>, Error> {
    let mut restored = Vec::new();
    for f in &lab.files {
        let work = lab.dir().join(f);
        if work.is_file() {
            copy_file(&work, &lab.dir().join(format!("{f}.bak")))?;
        }
        copy_file(&lab.dir().join("starter").join(f), &work)?;
        restored.push(work);
    }
    let mut progress = Progress::load()?;
    if let Some(entry) = progress.labs.get_mut(&lab.id) {
        entry.last = None;
    }
    progress.save()?;
    Ok(restored)
}

/// The modification times of the student's files, to notice a save.
#[must_use]
pub fn mtimes(lab: &Lab) -> Vec<Option<SystemTime>> {
    lab.files.iter().map(|f| std::fs::metadata(lab.dir().join(f)).and_then(|m| m.modified()).ok()).collect()
}

/// Blocks until one of the student's files changes (polled every 300 ms).
pub fn wait_for_change(lab: &Lab) {
    let before = mtimes(lab);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        if mtimes(lab) != before {
            // Let the editor finish writing.
            std::thread::sleep(Duration::from_millis(200));
            return;
        }
    }
}

/// A lab's state in `leaklab lab list`.
#[derive(Debug, Clone, Serialize)]
pub struct ListEntry {
    pub id: String,
    pub name: String,
    pub title: String,
    pub teaches: String,
    pub chapter: String,
    pub hints_shown: usize,
    pub hints: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<LastCheck>,
}

pub fn list() -> Result<Vec<ListEntry>, Error> {
    let progress = Progress::load()?;
    Ok(labs()?
        .into_iter()
        .map(|l| {
            let p = progress.labs.get(&l.id).cloned().unwrap_or_default();
            ListEntry { hints: l.hints.len(), hints_shown: p.hints_shown, last: p.last, id: l.id, name: l.name, title: l.title, teaches: l.teaches, chapter: l.chapter }
        })
        .collect())
}

/// The first lab whose last check did not pass: the one the student is on.
pub fn current() -> Result<Lab, Error> {
    let progress = Progress::load()?;
    let all = labs()?;
    let first = all.first().cloned().ok_or_else(|| Error::LabSetup("labs.toml lists no lab".into()))?;
    Ok(all.into_iter().find(|l| !progress.labs.get(&l.id).and_then(|p| p.last.as_ref()).is_some_and(|c| c.complete)).unwrap_or(first))
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LastCheck {
    pub passed: usize,
    pub total: usize,
    pub complete: bool,
    /// Seconds since the epoch.
    pub at: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LabProgress {
    #[serde(default)]
    pub hints_shown: usize,
    #[serde(default)]
    pub last: Option<LastCheck>,
}

/// labs/.progress.json: the student's own state, never committed.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Progress {
    #[serde(default)]
    pub labs: BTreeMap<String, LabProgress>,
}

impl Progress {
    fn path() -> PathBuf {
        labs_root().join(".progress.json")
    }

    pub fn load() -> Result<Progress, Error> {
        let path = Progress::path();
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| Error::LabSetup(format!("{}: {e} (delete it to start afresh)", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Progress::default()),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    fn save(&self) -> Result<(), Error> {
        let path = Progress::path();
        let text = serde_json::to_string_pretty(self).expect("progress serializes");
        // Write then rename, so a check interrupted half-way leaves the old file.
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text + "\n").map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
