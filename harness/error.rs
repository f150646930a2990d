//! The library's error type. The CLI maps each variant to an exit code.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown sample `{name}`{}; `leaklab list` shows the catalogue", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownSample { name: String, suggestion: Option<String> },

    #[error("unknown backend `{name}`; known backends: {known}")]
    UnknownBackend { name: String, known: String },

    #[error("{file}:{line}: {message}")]
    Annotation { file: String, line: u32, message: String },

    #[error("backend `{backend}` cannot run here: {reason}\n  fix: {fix}")]
    Unavailable { backend: String, reason: String, fix: String },

    #[error("{0}")]
    Usage(String),

    #[error("cannot start `{program}`: {source}")]
    Spawn { program: String, source: std::io::Error },

    #[error("`{program}` timed out after {seconds:.1} s; its process group was killed")]
    Timeout { program: String, seconds: f64 },

    #[error("`{program}` {how}{}", stderr_tail(stderr))]
    TargetFailed { program: String, how: String, stderr: String },

    #[error("malformed output from {tool}: {message}")]
    MalformedOutput { tool: String, message: String },

    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    #[error("{0}")]
    Os(String),

    /// A process that cannot be attached to or read (ptrace backend, `scan --pid`).
    #[error("cannot inspect process {pid}: {message}")]
    Inspect { pid: i32, message: String },

    /// labs/labs.toml or a lab's folder is broken (not the student's files).
    #[error("lab set-up: {0}")]
    LabSetup(String),
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), source }
    }

    /// The process exit code the CLI uses for this error (DESIGN.md, Conventions).
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Unavailable { .. } => 3,
            _ => 2,
        }
    }
}

fn stderr_tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = &lines[lines.len().saturating_sub(8)..];
    format!("; its last words:\n  {}", tail.join("\n  "))
}
