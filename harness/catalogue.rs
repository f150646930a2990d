//! The built-in catalogue: every program of c-samples/ as build.rs compiled it.

use std::path::{Path, PathBuf};

use crate::annotations::{self, Expectations};
use crate::error::Error;

/// Source language of a sample; decides the compiler and the runtime it links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    C,
    Cpp,
}

/// One sample as build.rs found and compiled it.
#[derive(Debug)]
pub struct SampleInfo {
    pub name: &'static str,
    pub language: Language,
    /// Source files relative to `samples_dir` (`foo.c`, or `demo/main.c` for a folder).
    pub sources: &'static [&'static str],
    pub samples_dir: &'static str,
    /// The sources' text, embedded so the binary needs no checkout to score.
    pub texts: &'static [&'static str],
    /// (build variant, executable path); "plain" is always there.
    pub builds: &'static [(&'static str, &'static str)],
    /// `//@ key: value` settings in source order.
    pub settings: &'static [(&'static str, &'static str)],
}

include!(concat!(env!("OUT_DIR"), "/catalogue.rs"));

/// Every sample of the catalogue, sorted by name.
#[must_use]
pub fn samples() -> &'static [SampleInfo] {
    SAMPLES
}

/// The sample called `name`, or an error listing what exists.
pub fn find(name: &str) -> Result<&'static SampleInfo, Error> {
    SAMPLES.iter().find(|s| s.name == name).ok_or_else(|| Error::UnknownSample {
        name: name.to_string(),
        suggestion: closest(name),
    })
}

fn closest(name: &str) -> Option<String> {
    SAMPLES
        .iter()
        .map(|s| s.name)
        .filter(|s| s.contains(name) || name.contains(*s) || common_prefix(s, name) >= 4)
        .max_by_key(|s| common_prefix(s, name))
        .map(str::to_string)
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

impl SampleInfo {
    /// The first value of a setting.
    #[must_use]
    pub fn setting(&self, key: &str) -> Option<&'static str> {
        self.settings.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    #[must_use]
    pub fn title(&self) -> &'static str {
        self.setting("title").unwrap_or("")
    }

    /// The arguments the harness passes (`//@ args:`), which the annotated counts assume.
    #[must_use]
    pub fn args(&self) -> Vec<String> {
        self.setting("args").map(|a| a.split_whitespace().map(str::to_string).collect()).unwrap_or_default()
    }

    /// The executable of a build variant ("plain", or one a backend added).
    /// (Unpacked from the binary when its build directory is gone: crate::artifacts.)
    pub fn executable(&self, variant: &str) -> Result<&'static Path, Error> {
        let built = self
            .builds
            .iter()
            .find(|(v, _)| *v == variant)
            .map(|(_, p)| *p)
            .ok_or_else(|| Error::Usage(format!("sample `{}` has no `{variant}` build", self.name)))?;
        crate::artifacts::resolve_static(built)
    }

    /// Absolute paths of the source files.
    #[must_use]
    pub fn source_paths(&self) -> Vec<PathBuf> {
        self.sources.iter().map(|s| Path::new(self.samples_dir).join(s)).collect()
    }

    /// Whether `backend` applies (`//@ backends:` lists them; default all).
    #[must_use]
    pub fn applies_to(&self, backend: &str) -> bool {
        match self.setting("backends") {
            None => true,
            Some(list) => list.split(',').map(str::trim).any(|b| b == backend),
        }
    }

    /// Whether `0` as its argument makes it loop forever (DESIGN.md, the
    /// checkpoint): leaklab.h's `leaklab_iterations` is how a sample offers it.
    #[must_use]
    pub fn has_forever_mode(&self) -> bool {
        self.texts.iter().any(|t| t.contains("leaklab_iterations("))
    }

    /// The ground truth written in the sources.
    pub fn expectations(&self) -> Result<Expectations, Error> {
        let mut all = Expectations::default();
        for (rel, text) in self.sources.iter().zip(self.texts) {
            let file_name = rel.rsplit('/').next().unwrap_or(rel);
            all.extend(annotations::parse(file_name, text)?);
        }
        Ok(all)
    }

    /// File names (no directory) of the sources, which is how sites name them.
    #[must_use]
    pub fn source_file_names(&self) -> Vec<&'static str> {
        self.sources.iter().map(|s| s.rsplit('/').next().unwrap_or(s)).collect()
    }
}
