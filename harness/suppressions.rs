//! Leak suppressions in LeakSanitizer's file format: one `leak:PATTERN` per
//! line, `#` comments. A leak is suppressed when any frame of its stack has a
//! function, source file or module that the pattern matches. As in
//! LeakSanitizer, a pattern matches anywhere in the text unless anchored
//! with `^` (start) or `$` (end), and `*` stands for any run of characters.

use std::path::Path;

use crate::error::Error;
use crate::report::Frame;

/// One `leak:` line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Suppression {
    pub pattern: String,
    /// Where it was written, `file:line`.
    pub origin: String,
}

/// A set of suppressions from several files.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Suppressions {
    pub rules: Vec<Suppression>,
}

impl Suppressions {
    /// Parses the text of one file; `name` is used in errors and origins.
    pub fn parse(name: &str, text: &str) -> Result<Suppressions, Error> {
        let mut rules = Vec::new();
        // A byte-order mark that an editor put at the start is not part of the first rule.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |message: String| Error::Annotation { file: name.to_string(), line: i as u32 + 1, message };
            let Some((kind, pattern)) = line.split_once(':') else {
                return Err(err(format!("expected `leak:PATTERN`, found `{}`", crate::render::escape_unprintable(line, false))));
            };
            if kind.trim() != "leak" {
                return Err(err(format!("unsupported suppression type `{}` (only `leak:` is)", crate::render::escape_unprintable(kind.trim(), false))));
            }
            let pattern = pattern.trim();
            if pattern.is_empty() {
                return Err(err("empty pattern after `leak:`".into()));
            }
            rules.push(Suppression { pattern: pattern.to_string(), origin: format!("{name}:{}", i + 1) });
        }
        Ok(Suppressions { rules })
    }

    /// Reads and parses a suppression file.
    pub fn load(path: &Path) -> Result<Suppressions, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Suppressions::parse(&path.display().to_string(), &text)
    }

    pub fn extend(&mut self, other: Suppressions) {
        self.rules.extend(other.rules);
    }

    /// The first rule that suppresses a stack.
    #[must_use]
    pub fn matching(&self, stack: &[Frame]) -> Option<&Suppression> {
        self.rules.iter().find(|r| {
            stack.iter().any(|f| {
                [f.function.as_deref(), f.file.as_deref(), f.object.as_deref()].into_iter().flatten().any(|text| pattern_matches(&r.pattern, text))
            })
        })
    }
}

/// LeakSanitizer's template match: `^` and `$` anchor, `*` is a wildcard,
/// otherwise the pattern may occur anywhere.
#[must_use]
pub fn pattern_matches(pattern: &str, text: &str) -> bool {
    let (anchored_start, p) = match pattern.strip_prefix('^') {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    let (anchored_end, p) = match p.strip_suffix('$') {
        Some(rest) => (true, rest),
        None => (false, p),
    };
    let parts: Vec<&str> = p.split('*').collect();
    let mut pos = 0;
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            continue;
        }
        if i == 0 && anchored_start {
            if !text.starts_with(part) {
                return false;
            }
            pos = part.len();
            continue;
        }
        let last = i == parts.len() - 1;
        if last && anchored_end {
            // The last piece must end the text, after everything matched so far.
            return text.len() >= pos + part.len() && text.ends_with(part);
        }
        match text[pos..].find(part) {
            Some(at) => pos += at + part.len(),
            None => return false,
        }
    }
    // A pattern ending in `*`, or empty pieces: anchored end needs the text to end here.
    !anchored_end || parts.last().is_some_and(|l| l.is_empty()) || pos == text.len()
}
