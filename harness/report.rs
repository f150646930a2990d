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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl Leak {
    /// A heap leak with only the figures set; backends fill in the rest.
    #[must_use]
    pub fn new(kind: Kind, bytes: u64, blocks: u64) -> Leak {
        Leak { kind, bytes, blocks, api: None, site: None, stack: Vec::new(), content: None, type_name: None, region: None }
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

/// How the run went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Status {
    Ok,
    Skipped { reason: String, fix: String },
    Failed { error: String },
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Stats>,
}

impl Report {
    #[must_use]
    pub fn new(sample: &str, backend: &str) -> Report {
        Report { sample: sample.to_string(), backend: backend.to_string(), status: Status::Ok, leaks: Vec::new(), notes: Vec::new(), bad_frees: Vec::new(), stats: None }
    }

    /// Total bytes and blocks of the leaks of one kind.
    #[must_use]
    pub fn total(&self, kind: Kind) -> (u64, u64) {
        self.leaks.iter().filter(|l| l.kind == kind).fold((0, 0), |(b, n), l| (b + l.bytes, n + l.blocks))
    }
}
