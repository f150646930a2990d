//! The report model every backend produces (DESIGN.md, "The report model").

use serde::{Deserialize, Serialize};

/// valgrind's classification of a lost block, plus `unclassified` for
/// backends that only know a block is still allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Definite,
    Indirect,
    Possible,
    Reachable,
    Unclassified,
}

impl Kind {
    pub const CLASSIFIED: [Kind; 4] = [Kind::Definite, Kind::Indirect, Kind::Possible, Kind::Reachable];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Definite => "definite",
            Kind::Indirect => "indirect",
            Kind::Possible => "possible",
            Kind::Reachable => "reachable",
            Kind::Unclassified => "unclassified",
        }
    }

    #[must_use]
    pub fn parse(word: &str) -> Option<Kind> {
        Kind::CLASSIFIED.into_iter().chain([Kind::Unclassified]).find(|k| k.as_str() == word)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The four kinds of memory of the source article, for mapping leaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RegionKind {
    PrivateAnon,
    SharedAnon,
    PrivateFile,
    SharedFile,
}

impl RegionKind {
    pub const ALL: [RegionKind; 4] =
        [RegionKind::PrivateAnon, RegionKind::SharedAnon, RegionKind::PrivateFile, RegionKind::SharedFile];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RegionKind::PrivateAnon => "private-anon",
            RegionKind::SharedAnon => "shared-anon",
            RegionKind::PrivateFile => "private-file",
            RegionKind::SharedFile => "shared-file",
        }
    }

    #[must_use]
    pub fn parse(word: &str) -> Option<RegionKind> {
        RegionKind::ALL.into_iter().find(|k| k.as_str() == word)
    }
}

/// A leaked mapping rather than a heap block.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Region {
    pub kind: RegionKind,
    /// Protection and sharing as /proc/PID/maps prints them (`rw-s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<String>,
    /// The backing file of a file mapping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A source location: the innermost frame inside the sample's own source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Site {
    pub file: String,
    pub line: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
}

/// One symbolized stack frame, innermost first; no addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Frame {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// The module (executable or shared object) the frame is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
}

/// A group of leaked blocks (or one leaked mapping) that share a stack, or,
/// for stackless backends, a size and content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leak {
    pub kind: Kind,
    /// Bytes lost directly in these blocks (never including indirect bytes).
    pub bytes: u64,
    pub blocks: u64,
    /// The allocating API: `malloc`, `new[]`, `mmap`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<Site>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stack: Vec<Frame>,
    /// What the bytes look like (a string prefix), for stackless backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The C++ class of the object, when known (from its vtable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
    /// The process that leaked it, when the run had several (forked
    /// children, exec'd images); one of `Report::processes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

impl Leak {
    /// A heap leak with only the figures set; backends fill in the rest.
    #[must_use]
    pub fn new(kind: Kind, bytes: u64, blocks: u64) -> Leak {
        Leak { kind, bytes, blocks, api: None, site: None, stack: Vec::new(), content: None, type_name: None, region: None, pid: None }
    }
}

/// What was wrong with a free, in valgrind's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BadFreeKind {
    /// Released with the wrong function (new[] with delete, malloc with delete, new with free).
    Mismatched,
    /// Released a second time.
    Double,
    /// Released a pointer that no allocation returned.
    Invalid,
}

impl BadFreeKind {
    pub const ALL: [BadFreeKind; 3] = [BadFreeKind::Mismatched, BadFreeKind::Double, BadFreeKind::Invalid];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            BadFreeKind::Mismatched => "mismatched",
            BadFreeKind::Double => "double",
            BadFreeKind::Invalid => "invalid",
        }
    }

    #[must_use]
    pub fn parse(word: &str) -> Option<BadFreeKind> {
        BadFreeKind::ALL.into_iter().find(|k| k.as_str() == word)
    }
}

/// A free that does not match an allocation: valgrind's MismatchedFree and
/// InvalidFree errors, the hook's checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadFree {
    pub kind: BadFreeKind,
    /// The releasing function: `free`, `delete`, `delete[]`, `realloc`.
    pub dealloc: String,
    /// The allocating API of the block, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// Where the bad free is (the site rule of leaks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<Site>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stack: Vec<Frame>,
    /// The other end: the allocation (mismatched) or the first free (double).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_site: Option<Site>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_stack: Vec<Frame>,
}

/// A memory error other than a bad free, in valgrind's words: an invalid
/// read or write, a jump on uninitialised memory, a syscall given
/// uninitialised bytes, an overlapping copy, a call the tool refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryError {
    /// memcheck's `<kind>` (`InvalidRead`, `UninitCondition`, ...) or the
    /// tool's own name for it.
    pub kind: String,
    /// The tool's one-line description.
    pub what: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<Site>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stack: Vec<Frame>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// How one process of the run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "how", rename_all = "kebab-case")]
pub enum End {
    Exited { code: i32 },
    /// Killed by a signal (`SIGSEGV`): it crashed, or was killed.
    Killed { signal: String },
    /// Replaced its image with execve; its leaks are those of the old image.
    Exec { program: String },
    /// Still running when the run ended (a child the parent did not wait
    /// for), and then killed with the run.
    Running,
    /// Ended by itself (exit, `_exit`, return from main) with a status the
    /// backend does not see (a child of the program, whose parent reaped it).
    Finished,
}

/// One process of a run: the program itself, a forked child, an exec'd image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u32>,
    /// Its program's file name.
    pub program: String,
    pub end: End,
    /// Whether the backend looked at its memory: a process that was not
    /// analysed has no leaks listed, which says nothing about its leaks.
    pub analysed: bool,
}

/// Leaks left out by a suppression rule, as LeakSanitizer counts them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppressed {
    /// The rule as written (`leak:main`), and where (`my.supp:3`).
    pub rule: String,
    pub leaks: u64,
    pub bytes: u64,
}

impl Report {
    /// Counts leaks a rule left out, one tally per rule.
    pub fn count_suppressed(&mut self, add: Suppressed) {
        match self.suppressed.iter_mut().find(|s| s.rule == add.rule) {
            Some(s) => {
                s.leaks += add.leaks;
                s.bytes += add.bytes;
            }
            None => self.suppressed.push(add),
        }
    }
}

/// How the run went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Status {
    Ok,
    Skipped { reason: String, fix: String },
    Failed { error: String },
    /// The run happened but its memory could not be analysed (a heap the
    /// walker does not know, a statically linked program, a process that
    /// ended before it could be looked at): no leak list, and never "clean".
    NotAnalysed { reason: String },
}

/// Measurements of the run; dropped by normalization since they vary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub wall_ms: u64,
    /// Peak resident set of the process the backend ran (the target, or the
    /// tool hosting it, e.g. valgrind), in KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_kib: Option<u64>,
    /// How long the target was stopped for inspection, for attaching backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_ms: Option<f64>,
}

/// Everything one backend found in one program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub sample: String,
    pub backend: String,
    pub status: Status,
    pub leaks: Vec<Leak>,
    /// Other findings worth showing (invalid frees, tool warnings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Frees that match no allocation, for backends that check frees.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bad_frees: Vec<BadFree>,
    /// Memory errors other than bad frees (backends that check accesses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<MemoryError>,
    /// The processes of the run, when there was more than the program
    /// itself or it did not simply exit (a crash, an exec, a child left running).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<Process>,
    /// What suppression rules left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suppressed: Vec<Suppressed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Stats>,
}

impl Report {
    #[must_use]
    pub fn new(sample: &str, backend: &str) -> Report {
        Report {
            sample: sample.to_string(),
            backend: backend.to_string(),
            status: Status::Ok,
            leaks: Vec::new(),
            notes: Vec::new(),
            bad_frees: Vec::new(),
            errors: Vec::new(),
            processes: Vec::new(),
            suppressed: Vec::new(),
            stats: None,
        }
    }

    /// The exit code of `leaklab run` for this report of a program of the
    /// user's (not a sample: those are scored against their annotations).
    #[must_use]
    pub fn outcome(&self) -> Outcome {
        match &self.status {
            Status::Skipped { .. } => return Outcome::Unavailable,
            Status::Failed { .. } => return Outcome::HarnessError,
            Status::NotAnalysed { .. } => return Outcome::NotAnalysed,
            Status::Ok => {}
        }
        let crashed = self.processes.iter().any(|p| matches!(p.end, End::Killed { .. }));
        if !self.bad_frees.is_empty() || !self.errors.is_empty() || crashed {
            Outcome::MemoryErrors
        } else if self.processes.iter().any(|p| !p.analysed) {
            Outcome::NotAnalysed
        } else if self.leaks.iter().any(|l| l.kind != Kind::Reachable) {
            Outcome::Leaks
        } else {
            Outcome::Clean
        }
    }

    /// Total bytes and blocks of the leaks of one kind.
    #[must_use]
    pub fn total(&self, kind: Kind) -> (u64, u64) {
        self.leaks.iter().filter(|l| l.kind == kind).fold((0, 0), |(b, n), l| (b + l.bytes, n + l.blocks))
    }
}

/// leaklab's exit codes (README, `leaklab --help`), in the spirit of
/// valgrind's `--error-exitcode`: what a script or CI job can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// No leak (still-reachable memory is not one), no memory error.
    Clean = 0,
    /// Leaks found (definite, indirect, possible, unclassified, mmap).
    Leaks = 1,
    /// Bad usage, or the harness or the tool failed.
    HarnessError = 2,
    /// The backend cannot run on this machine.
    Unavailable = 3,
    /// Memory errors found (bad frees, invalid accesses, uninitialised
    /// values), or the program crashed; leaks may have been found too.
    MemoryErrors = 4,
    /// The memory could not be analysed: no verdict on leaks.
    NotAnalysed = 5,
    /// A sample's report disagrees with its annotations (`run SAMPLE`, `compare`).
    Disagrees = 6,
}

impl Outcome {
    #[must_use]
    pub fn code(self) -> u8 {
        self as u8
    }
}
