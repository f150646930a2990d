//! The `//~` annotations of a sample: its ground truth (c-samples/README.md
//! has the grammar).

use crate::error::Error;
use crate::report::{BadFreeKind, Kind, RegionKind};

/// A line of a sample's source, by file name and 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Location {
    pub file: String,
    pub line: u32,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// `//~ LEAK kind size=N count=N ...`: blocks a correct detector reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExpectedLeak {
    pub at: Location,
    pub kind: Kind,
    /// Bytes per block (or the mapping's length).
    pub size: u64,
    pub count: u64,
    pub region: Option<RegionKind>,
    pub content: Option<String>,
    pub type_name: Option<String>,
}

impl ExpectedLeak {
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.size * self.count
    }
}

/// `//~ BADFREE kind`: a free that a backend checking frees must report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExpectedBadFree {
    pub at: Location,
    pub kind: BadFreeKind,
}

/// Whether a note explains a miss or a false report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum NoteKind {
    Miss,
    False,
}

/// `//~[backend] MISS: why` or `FALSE: why`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Note {
    pub at: Location,
    pub backend: String,
    pub kind: NoteKind,
    pub why: String,
}

/// Everything a sample's sources say a detector must (and must not) find.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Expectations {
    pub leaks: Vec<ExpectedLeak>,
    /// `//~ NOLEAK` traps.
    pub noleaks: Vec<Location>,
    pub notes: Vec<Note>,
    /// `//~ BADFREE` lines.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bad_frees: Vec<ExpectedBadFree>,
}

impl Expectations {
    pub fn extend(&mut self, other: Expectations) {
        self.leaks.extend(other.leaks);
        self.bad_frees.extend(other.bad_frees);
        self.noleaks.extend(other.noleaks);
        self.notes.extend(other.notes);
    }

    /// The note of `backend` of `kind` on a line, if any.
    #[must_use]
    pub fn note(&self, backend: &str, kind: NoteKind, at: &Location) -> Option<&Note> {
        self.notes.iter().find(|n| n.backend == backend && n.kind == kind && &n.at == at)
    }
}

/// Backend names a note may name; a typo must not silently explain nothing.
pub const BACKEND_NAMES: &[&str] = &["hook", "debug-new", "valgrind", "bcc", "ptrace", "lsan", "watch", "heaptrack", "mtrace", "dmalloc", "efence", "jemalloc", "tcmalloc", "asan", "lsan-clang", "asan-clang"];

/// Parses the annotations of one source file. `file` is the name sites use.
pub fn parse(file: &str, text: &str) -> Result<Expectations, Error> {
    let mut out = Expectations::default();
    for (idx, raw) in text.lines().enumerate() {
        let line = idx as u32 + 1;
        let Some(pos) = raw.find("//~") else { continue };
        let err = |message: String| Error::Annotation { file: file.to_string(), line, message };
        let mut rest = &raw[pos + 3..];
        let carets = rest.bytes().take_while(|&b| b == b'^').count() as u32;
        rest = &rest[carets as usize..];
        if carets >= line {
            return Err(err(format!("{carets} caret(s) point above the first line")));
        }
        let at = Location { file: file.to_string(), line: line - carets };
        let backend = if let Some(inner) = rest.strip_prefix('[') {
            let Some(end) = inner.find(']') else {
                return Err(err("unclosed `[backend]`".into()));
            };
            let name = &inner[..end];
            if !BACKEND_NAMES.contains(&name) {
                return Err(err(format!("unknown backend `{name}` (known: {})", BACKEND_NAMES.join(", "))));
            }
            rest = &inner[end + 1..];
            Some(name.to_string())
        } else {
            None
        };
        if !rest.starts_with(char::is_whitespace) {
            return Err(err("expected a space after `//~`, its carets and its `[backend]`".into()));
        }
        let rest = rest.trim();
        let (word, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        match (word, &backend) {
            ("LEAK", None) => out.leaks.push(parse_leak(tail).map_err(err)?.at(at)),
            ("NOLEAK", None) => {
                let tail = tail.trim();
                if !tail.is_empty() && !(tail.starts_with('(') && tail.ends_with(')')) {
                    return Err(err("NOLEAK takes only a reason in parentheses".into()));
                }
                out.noleaks.push(at);
            }
            ("BADFREE", None) => {
                let words: Vec<&str> = tail.split_whitespace().collect();
                let kind = match words.as_slice() {
                    [word] => BadFreeKind::parse(word).ok_or_else(|| {
                        err(format!("unknown bad free `{word}` (expected mismatched, double or invalid)"))
                    })?,
                    [] => return Err(err("BADFREE needs a kind: mismatched, double or invalid".into())),
                    [_, extra, ..] => return Err(err(format!("BADFREE takes only its kind, found `{extra}` after it"))),
                };
                out.bad_frees.push(ExpectedBadFree { at, kind });
            }
            ("MISS:" | "FALSE:", Some(b)) => {
                let why = tail.trim();
                if why.is_empty() {
                    return Err(err(format!("`{word}` needs a reason")));
                }
                let kind = if word == "MISS:" { NoteKind::Miss } else { NoteKind::False };
                out.notes.push(Note { at, backend: b.clone(), kind, why: why.to_string() });
            }
            ("LEAK" | "NOLEAK" | "BADFREE", Some(_)) => {
                return Err(err(format!("`{word}` is ground truth for every backend: drop the `[backend]`")))
            }
            ("MISS:" | "FALSE:", None) => {
                return Err(err(format!("`{word}` needs a backend: `//~[valgrind] {word} why`")))
            }
            _ => return Err(err(format!("expected LEAK, NOLEAK, BADFREE, MISS: or FALSE:, found `{word}`"))),
        }
    }
    Ok(out)
}

/// A LEAK annotation before its location is known.
struct PendingLeak(ExpectedLeak);

impl PendingLeak {
    fn at(mut self, at: Location) -> ExpectedLeak {
        self.0.at = at;
        self.0
    }
}

fn parse_leak(tail: &str) -> Result<PendingLeak, String> {
    let tail = tail.trim_start();
    let (kind_word, mut rest) = tail.split_once(char::is_whitespace).unwrap_or((tail, ""));
    let kind = match Kind::parse(kind_word) {
        Some(Kind::Unclassified) | None => {
            return Err(format!("unknown leak kind `{kind_word}` (expected definite, indirect, possible or reachable)"))
        }
        Some(k) => k,
    };
    let mut leak = ExpectedLeak {
        at: Location { file: String::new(), line: 0 },
        kind,
        size: 0,
        count: 1,
        region: None,
        content: None,
        type_name: None,
    };
    let mut have_size = false;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let Some((key, after)) = rest.split_once('=') else {
            return Err(format!("expected key=value, found `{}`", rest.split_whitespace().next().unwrap_or(rest)));
        };
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let (v, after) = read_quoted(quoted)?;
            (v, after)
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        rest = after;
        let number = |v: &str| v.parse::<u64>().map_err(|_| format!("`{key}` must be a number, found `{v}`"));
        match key {
            "size" => {
                leak.size = number(&value)?;
                have_size = true;
            }
            "count" => leak.count = number(&value)?,
            "region" => {
                leak.region = Some(RegionKind::parse(&value).ok_or_else(|| {
                    format!("unknown region `{value}` (expected private-anon, shared-anon, private-file or shared-file)")
                })?)
            }
            "content" => leak.content = Some(value),
            "type" => leak.type_name = Some(value),
            _ => return Err(format!("unknown attribute `{key}` (expected size, count, region, content or type)")),
        }
    }
    if !have_size {
        return Err("LEAK needs `size=N` (bytes per block)".into());
    }
    if leak.count == 0 {
        return Err("`count=0` is no leak: use NOLEAK".into());
    }
    Ok(PendingLeak(leak))
}

/// Reads a `"..."` value (the opening quote already consumed), with `\"` and `\\` escapes.
fn read_quoted(s: &str) -> Result<(String, &str), String> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\'))) => value.push(e),
                Some((_, 'n')) => value.push('\n'),
                _ => return Err("bad escape in quoted value (use \\\" \\\\ or \\n)".into()),
            },
            c => value.push(c),
        }
    }
    Err("unterminated quoted value".into())
}
