//! Compiling the student's C and C++ with the compilers leaklab was built
//! with (build.rs records them), in the check's build directory.

use std::time::Duration;

use regex::Regex;

use super::{Ctx, Problem};
use crate::error::Error;
use crate::process::{self, Spec};

/// Debug info and frame pointers so every tool can name lines; no
/// optimisation so the lines that allocate are the lines written.
pub const FLAGS: &[&str] = &["-g", "-O0", "-fno-omit-frame-pointer", "-Wall", "-Wextra"];

const COMPILE_TIMEOUT: Duration = Duration::from_secs(120);

/// The C compiler, or the C++ one for `.cpp` sources.
#[must_use]
pub fn compiler(cpp: bool) -> &'static str {
    if cpp { env!("LEAKLAB_CXX") } else { env!("LEAKLAB_CC") }
}

/// How one compiler run went.
pub struct Build {
    pub ok: bool,
    /// The compiler's diagnostics, paths as the student knows them.
    pub diagnostics: String,
}

impl Build {
    /// The errors as problems with file:line (linker errors have no line).
    #[must_use]
    pub fn problems(&self) -> Vec<Problem> {
        let located = Regex::new(r"^(?P<file>[^\s:]+):(?P<line>\d+):(?:\d+:)? (?:fatal )?error: (?P<msg>.*)$").expect("valid regex");
        let linker = Regex::new(r"(undefined reference to|multiple definition of) `[^']+'").expect("valid regex");
        let mut out = Vec::new();
        for l in self.diagnostics.lines() {
            if let Some(c) = located.captures(l) {
                out.push(Problem {
                    file: Some(c["file"].to_string()),
                    line: c["line"].parse().ok(),
                    message: format!("error: {}", &c["msg"]),
                });
            } else if let Some(c) = linker.captures(l) {
                // "/usr/bin/ld: /tmp/x.o: in function `main': main_a.c:(.text+0x5): undefined reference to `plugin_init'"
                out.push(Problem::new(format!("link error: {}", &c[0])));
            }
        }
        if out.is_empty() && !self.ok {
            let tail: Vec<&str> = self.diagnostics.lines().rev().take(6).collect::<Vec<_>>().into_iter().rev().collect();
            out.push(Problem::new(format!("the build failed:\n{}", tail.join("\n"))));
        }
        out.dedup();
        out
    }
}

/// Compiles `sources` (files of the build directory) into `output` there.
pub fn build(ctx: &Ctx, sources: &[&str], output: &str, extra: &[&str]) -> Result<Build, Error> {
    let cpp = sources.iter().any(|s| s.ends_with(".cpp"));
    let spec = Spec::new(compiler(cpp), COMPILE_TIMEOUT)
        .args(FLAGS)
        .arg("-I")
        .arg(ctx.build.path())
        .arg("-I")
        .arg(super::samples_include_dir())
        .args(extra)
        .args(sources.iter().map(|s| ctx.path(s)))
        .arg("-o")
        .arg(ctx.path(output))
        .env("LC_ALL", "C");
    let done = process::run(&spec)?;
    Ok(Build { ok: done.exit.success(), diagnostics: ctx.unbuild(&done.stderr_text()) })
}
