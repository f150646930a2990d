//! `leaklab suite MANIFEST.jsonl`: an external suite of programs the user
//! built (NIST's Juliet CWE-401 cases, a project's own leak tests), one per
//! line, with what each leaks, scored by the same matcher as the catalogue
//! and shown in the same matrix.
//!
//! ```json
//! {"name": "cwe401_01", "program": "bin/cwe401_01", "args": [], "expect": "leak",
//!  "leaks": [{"file": "CWE401_01.c", "line": 31, "kind": "definite", "size": 100, "count": 1}]}
//! ```
//! Only `program` is required; a relative path is relative to the manifest.
//! `"bad_frees": [{"file", "line", "kind": "mismatched"|"double"|"invalid"}]`
//! lists the frees a detector that checks frees must report.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::annotations::{ExpectedBadFree, ExpectedLeak, Expectations, Location};
use crate::backend::Target;
use crate::compare::Case;
use crate::error::Error;
use crate::report::{BadFreeKind, Kind};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(default)]
    name: Option<String>,
    program: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    expect: Option<Expect>,
    #[serde(default)]
    leaks: Vec<LineLeak>,
    /// Mismatched, double and invalid frees, for detectors that check frees.
    #[serde(default)]
    bad_frees: Vec<LineBadFree>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineBadFree {
    file: String,
    line: u32,
    kind: String,
}

#[derive(Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Expect {
    Leak,
    Clean,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineLeak {
    file: String,
    line: u32,
    #[serde(default)]
    kind: Option<String>,
    /// Bytes per block; unknown (0) when left out.
    #[serde(default)]
    size: u64,
    #[serde(default = "one")]
    count: u64,
}

fn one() -> u64 {
    1
}

/// Reads a manifest into cases: each program found (relative to the
/// manifest's folder), its leaks as expectations. A bad line is an error
/// naming the file and the line.
pub fn load(manifest: &Path) -> Result<Vec<Case>, Error> {
    let text = std::fs::read_to_string(manifest).map_err(|e| Error::io(manifest, e))?;
    let base = manifest.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let mut cases: Vec<Case> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let at = |message: String| Error::Usage(format!("{}:{}: {message}", manifest.display(), i + 1));
        if raw.trim().is_empty() || raw.trim_start().starts_with("//") {
            continue;
        }
        let line: Line = serde_json::from_str(raw).map_err(|e| at(format!("{e} (a line is {{\"program\": ..., \"name\", \"args\", \"expect\": \"leak\"|\"clean\", \"leaks\": [{{\"file\", \"line\", \"kind\", \"size\", \"count\"}}]}})")))?;
        let path = if Path::new(&line.program).is_absolute() { PathBuf::from(&line.program) } else { base.join(&line.program) };
        if !path.is_file() {
            return Err(at(format!("program {} does not exist (a relative path is relative to the manifest's folder)", path.display())));
        }
        let mut target = Target::program(&path.to_string_lossy(), &line.args).map_err(|e| at(e.to_string()))?;
        let name = line.name.clone().unwrap_or_else(|| target.name.clone());
        if cases.iter().any(|c| c.name == name) {
            return Err(at(format!("a second program named `{name}`: give each line its own \"name\"")));
        }
        target.name.clone_from(&name);
        let mut expected = Expectations::default();
        for (j, l) in line.leaks.iter().enumerate() {
            let kind = match l.kind.as_deref() {
                None => Kind::Definite,
                Some(word) => Kind::parse(word).ok_or_else(|| at(format!("leak {}: kind `{word}` is not one of definite, indirect, possible, reachable", j + 1)))?,
            };
            if kind == Kind::Unclassified {
                return Err(at(format!("leak {}: an expected leak has a kind (definite, indirect, possible, reachable)", j + 1)));
            }
            // Sites are compared by file name, as reports give them.
            let file = l.file.rsplit('/').next().unwrap_or(&l.file).to_string();
            expected.leaks.push(ExpectedLeak {
                at: Location { file, line: l.line },
                kind,
                size: l.size,
                count: l.count,
                region: None,
                content: None,
                type_name: None,
            });
        }
        for (j, b) in line.bad_frees.iter().enumerate() {
            let kind = BadFreeKind::parse(&b.kind).ok_or_else(|| at(format!("bad free {}: kind `{}` is not one of mismatched, double, invalid", j + 1, b.kind)))?;
            let file = b.file.rsplit('/').next().unwrap_or(&b.file).to_string();
            expected.bad_frees.push(ExpectedBadFree { at: Location { file, line: b.line }, kind });
        }
        match (line.expect, expected.leaks.is_empty()) {
            (Some(Expect::Clean), false) => return Err(at("`expect` is \"clean\" but `leaks` lists leaks".into())),
            (Some(Expect::Leak), true) => {
                return Err(at("`expect` is \"leak\" but `leaks` is empty: list where it leaks (file and line), which is what a detector is scored on".into()))
            }
            _ => {}
        }
        cases.push(Case { name, target: Ok(target), expected });
    }
    if cases.is_empty() {
        return Err(Error::Usage(format!("{}: no programs (one JSON object per line)", manifest.display())));
    }
    Ok(cases)
}
