//! AddressSanitizer (gcc's libasan): the sample is rebuilt with
//! `-fsanitize=address -fsanitize-recover=address`. ASan puts redzones
//! around every block and checks every load and store the compiler
//! instrumented, keeps freed blocks in a quarantine, and checks every free
//! against its allocation (a mismatched, double or invalid free); at exit
//! its LeakSanitizer does what the `lsan` backend's does. With
//! `halt_on_error=0` it reports an error and goes on, so that a program
//! with a bad free still reaches exit() and its leak check.
//!
//! The run, its logs (`log_path`, one per process), the preload that
//! records how each process ended, and the parser are the lsan backend's
//! (`lsan::run_sanitized`): ASan writes the same reports. Its memory errors
//! (use after free, overflows) go to `Report.errors`, its bad frees to
//! `Report.bad_frees`.
//!
//! A program the user brings must have been built with ASan: ASan's checks
//! of accesses are compiled in, and its runtime cannot be preloaded into a
//! program that was not (the `lsan` backend can, for leaks alone).
//!
//! `asan-clang` is the same row with clang's AddressSanitizer (compiler-rt,
//! linked into the program): the catalogue's `asan-clang` build, and on a
//! program of the user's only one clang built with it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::backend::{Availability, Backend, RunConfig, Target};
use crate::backends::lsan::{self, Compiler, HowToRun, Sanitizer};
use crate::error::Error;
use crate::report::{Report, Stats};

/// One AddressSanitizer row: gcc's runtime (`asan`) or clang's (`asan-clang`).
pub struct Asan {
    /// The backend's name, which is also the catalogue's build variant.
    name: &'static str,
    summary: &'static str,
    compiler: Compiler,
}

impl Asan {
    pub const GCC: Asan = Asan {
        name: "asan",
        summary: "AddressSanitizer: built with -fsanitize=address; checks accesses and frees as they happen, LeakSanitizer's scan at exit",
        compiler: Compiler::Gcc,
    };
    pub const CLANG: Asan = Asan {
        name: "asan-clang",
        summary: "AddressSanitizer of clang (compiler-rt, linked in): built with clang -fsanitize=address; the same checks",
        compiler: Compiler::Clang,
    };

    fn sanitizer(&self) -> Sanitizer {
        Sanitizer { backend: self.name, tool: "AddressSanitizer", asan: true }
    }
}

fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "gcc".to_string())
}

/// gcc's libasan.so, which every `-fsanitize=address` build needs at run time.
fn libasan() -> Option<PathBuf> {
    let out = std::process::Command::new(cc()).arg("-print-file-name=libasan.so").output().ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    // Without the library gcc echoes the bare name back.
    (path.is_absolute() && path.exists()).then_some(path)
}

/// The probe build.rs made with `-fsanitize=address` (empty when gcc could not link one).
fn probe_program() -> Option<&'static Path> {
    let built = env!("LEAKLAB_ASAN_PROBE");
    if built.is_empty() {
        return None;
    }
    Some(crate::artifacts::resolve_static(built).unwrap_or(Path::new(built)))
}

fn probe() -> &'static Availability {
    static RESULT: OnceLock<Availability> = OnceLock::new();
    RESULT.get_or_init(|| match probe_program().filter(|p| p.exists()) {
        None => Availability::Unavailable {
            reason: "gcc could not link a `-fsanitize=address` program when leaklab was built (libasan missing)".into(),
            fix: "apt-get install -y libasan8 && cargo build --release".into(),
        },
        Some(program) => lsan::probe_with(&Asan::GCC.sanitizer(), program),
    })
}

/// clang's probe, run once per leaklab process (after `lsan::clang_unavailable`).
fn clang_probe() -> &'static Availability {
    static RESULT: OnceLock<Availability> = OnceLock::new();
    RESULT.get_or_init(|| {
        let built = env!("LEAKLAB_ASAN_CLANG_PROBE");
        let program = crate::artifacts::resolve_static(built).unwrap_or(Path::new(built));
        lsan::probe_with(&Asan::CLANG.sanitizer(), program)
    })
}

impl Backend for Asan {
    fn name(&self) -> &'static str {
        self.name
    }

    fn summary(&self) -> &'static str {
        self.summary
    }

    fn availability(&self) -> Availability {
        if self.compiler == Compiler::Clang {
            let probe = env!("LEAKLAB_ASAN_CLANG_PROBE");
            return lsan::clang_unavailable(self.name, "-fsanitize=address", probe).unwrap_or_else(|| clang_probe().clone());
        }
        if libasan().is_none() {
            return Availability::Unavailable {
                reason: format!("gcc's AddressSanitizer runtime (libasan.so) is not installed (`{} -print-file-name=libasan.so`)", cc()),
                fix: "apt-get install -y libasan8".into(),
            };
        }
        probe().clone()
    }

    fn checks_frees(&self) -> bool {
        true
    }

    fn debian_packages(&self) -> &'static [&'static str] {
        match self.compiler {
            Compiler::Gcc => &["libasan8"],
            Compiler::Clang => lsan::CLANG_PACKAGES,
        }
    }

    fn run(&self, target: &Target, config: &RunConfig) -> Result<Report, Error> {
        let started = std::time::Instant::now();
        let compiler = match self.compiler {
            Compiler::Gcc => "",
            Compiler::Clang => "clang ",
        };
        let program = match target.sample {
            Some(s) => s.executable(self.name)?.to_path_buf(),
            None if lsan::needs_asan(&target.program) => {
                // The runtime is the program's own: clang's is linked in, gcc's loaded.
                let linked_in = lsan::needs_symbolizer(&target.program);
                if self.compiler == Compiler::Clang && !linked_in {
                    return Err(Error::Usage(format!(
                        "{} loads gcc's AddressSanitizer runtime (libasan.so): it was built by gcc, and its row is \
                         `--backend asan`; `asan-clang` runs clang's runtime, which a program built with \
                         `clang -fsanitize=address` carries inside",
                        target.program.display()
                    )));
                }
                target.program.clone()
            }
            None => {
                return Err(Error::Usage(format!(
                    "{} was not built with AddressSanitizer: ASan's checks are compiled into the program; rebuild it with \
                     `{compiler}-fsanitize=address -fsanitize-recover=address -g`, or use `--backend lsan` for its leaks alone",
                    target.program.display()
                )))
            }
        };
        let suppressions = lsan::load_suppressions(&config.suppressions)?;
        let run_target = Target { program, ..target.clone() };
        let symbolizer = lsan::needs_symbolizer(&run_target.program).then(lsan::symbolizer).flatten();
        let how = HowToRun::for_target(target, None, &suppressions).with_symbolizer(symbolizer.as_deref());
        let run = lsan::run_sanitized(&self.sanitizer(), &run_target, config, &how)?;
        let mut report = run.report(target, &suppressions);
        report.stats = Some(Stats {
            wall_ms: started.elapsed().as_millis() as u64,
            peak_rss_kib: Some(run.finished.peak_rss_kib),
            pause_ms: None,
        });
        Ok(report)
    }
}
