//! The `Backend` trait, the targets backends run, and the registry.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::catalogue::SampleInfo;
use crate::error::Error;
use crate::report::{Frame, Report, Site, Stats, Status};

/// A program to run under a backend: a catalogue sample, or anything the user brings.
#[derive(Debug, Clone)]
pub struct Target {
    /// The sample's name, or the program's file name.
    pub name: String,
    /// The executable of the plain build (for a sample) or the user's program.
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Set for catalogue samples: their sources, settings and other builds.
    pub sample: Option<&'static SampleInfo>,
}

impl Target {
    /// A catalogue sample with its default `//@ args:`.
    pub fn sample(sample: &'static SampleInfo) -> Result<Target, Error> {
        Ok(Target {
            name: sample.name.to_string(),
            program: sample.executable("plain")?.to_path_buf(),
            args: sample.args(),
            sample: Some(sample),
        })
    }

    /// A program the user brings, found through PATH when it has no slash.
    pub fn program(program: &str, args: &[String]) -> Result<Target, Error> {
        let path = if program.contains('/') {
            let p = PathBuf::from(program);
            if !p.is_file() {
                return Err(Error::Usage(format!("no such program: {program}")));
            }
            p
        } else {
            which::which(program).map_err(|_| Error::Usage(format!("`{program}` is not a file and not found in PATH")))?
        };
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| program.to_string());
        Ok(Target { name, program: path, args: args.to_vec(), sample: None })
    }

    /// The site of a stack: the innermost frame in the sample's own sources,
    /// or, for a user's program, the innermost frame with a source line that
    /// is not in the C/C++ runtime or in a tool.
    #[must_use]
    pub fn site_of(&self, stack: &[Frame]) -> Option<Site> {
        let frame = match self.sample {
            Some(s) => {
                let names = s.source_file_names();
                stack.iter().find(|f| f.file.as_deref().map(file_name).is_some_and(|n| names.contains(&n)))
            }
            None => stack.iter().find(|f| f.file.is_some() && f.line.is_some() && !f.object.as_deref().is_some_and(is_runtime_object)),
        }?;
        Some(Site { file: file_name(frame.file.as_deref()?).to_string(), line: frame.line?, function: frame.function.clone() })
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Whether an executable is statically linked (no program interpreter):
/// nothing can be preloaded into it and no libc of its own can be found by
/// name, so interposing and heap-walking backends cannot analyse it.
#[must_use]
pub fn is_statically_linked(program: &Path) -> bool {
    use object::read::elf::{ElfFile64, ProgramHeader};
    let Ok(data) = std::fs::read(program) else { return false };
    let Ok(elf) = ElfFile64::<object::Endianness>::parse(&*data) else { return false };
    let endian = elf.endian();
    !elf.elf_program_headers().iter().any(|ph| ph.p_type(endian) == object::elf::PT_INTERP)
}

/// Shared objects of the C/C++ runtime and of the tools, whose frames are never a leak's site.
#[must_use]
pub fn is_runtime_object(object: &str) -> bool {
    let name = file_name(object);
    ["libc.so", "libc-", "ld-linux", "libstdc++", "libgcc_s", "libm.so", "vgpreload", "liblsan", "libasan", "libleaklab_hook", "libjemalloc", "libtcmalloc"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// Knobs of one run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Bound on the target's run (and on each tool process).
    pub timeout: Duration,
    /// For a program without a checkpoint: inspect it after this long.
    pub after: Option<Duration>,
    /// LeakSanitizer-format suppression files (`leak:PATTERN`) the user adds
    /// to the backend's defaults.
    pub suppressions: Vec<PathBuf>,
    /// The target program's stdin, stdout and stderr (never a tool's own
    /// report, which a backend reads from a file of its own).
    pub io: crate::process::ProgramIo,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig { timeout: Duration::from_secs(120), after: None, suppressions: Vec::new(), io: crate::process::ProgramIo::Capture }
    }
}

/// Whether a backend can run on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    Ready,
    /// Why not, and the exact command that fixes it.
    Unavailable { reason: String, fix: String },
}

/// How a backend's findings are matched against annotations (DESIGN.md, Scoring).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matching {
    /// Each finding has a site: it matches the annotations on that line.
    BySite,
    /// Findings have no stack: they match on size, count, content or region.
    ByShape,
    /// Findings are classes of mappings that grew (the `watch` backend):
    /// a leaking sample must grow where its annotations imply, nothing else may.
    ByGrowth,
}

/// One leak detector.
pub trait Backend: Send + Sync {
    /// The name used on the command line and in `//~[name]` notes.
    fn name(&self) -> &str;
    /// How it works, in one line.
    fn summary(&self) -> &str;
    /// Whether it can run here; checked before every run.
    fn availability(&self) -> Availability;
    fn matching(&self) -> Matching {
        Matching::BySite
    }
    /// Whether it checks every free against its allocation (mismatched,
    /// double and invalid frees); `//~ BADFREE` annotations are scored only then.
    fn checks_frees(&self) -> bool {
        false
    }
    /// Whether the backend can say anything about a sample (besides its
    /// `//@ backends:` setting): `watch` needs a forever mode.
    fn applies(&self, _sample: &SampleInfo) -> bool {
        true
    }
    /// Debian packages the backend needs; `leaklab setup` installs them.
    fn debian_packages(&self) -> &'static [&'static str] {
        &[]
    }
    /// Machine set-up beyond packages (run by `leaklab setup`, as root).
    fn prepare(&self) -> Result<(), Error> {
        Ok(())
    }
    /// Runs the target and reports what was found. Errors are the backend's
    /// own failures (the tool crashed, its output was malformed, the target hung).
    fn run(&self, target: &Target, config: &RunConfig) -> Result<Report, Error>;
}

/// Every backend leaklab knows, in the order of DESIGN.md.
#[must_use]
pub fn all() -> Vec<Box<dyn Backend>> {
    vec![
        Box::new(crate::backends::hook::Hook),
        Box::new(crate::backends::debug_new::DebugNew),
        Box::new(crate::backends::valgrind::Valgrind),
        Box::new(crate::backends::bcc::Bcc),
        Box::new(crate::backends::ptrace::Ptrace),
        Box::new(crate::backends::lsan::Lsan::GCC),
        Box::new(crate::backends::watch::Watch),
        Box::new(crate::backends::heaptrack::Heaptrack),
        Box::new(crate::backends::mtrace::Mtrace),
        Box::new(crate::backends::dmalloc::Dmalloc),
        Box::new(crate::backends::efence::Efence),
        Box::new(crate::backends::jemalloc::Jemalloc),
        Box::new(crate::backends::tcmalloc::Tcmalloc),
        Box::new(crate::backends::asan::Asan::GCC),
        Box::new(crate::backends::lsan::Lsan::CLANG),
        Box::new(crate::backends::asan::Asan::CLANG),
    ]
}

/// The built-in backends, then the user's detector files
/// (`backends/detector.rs`), each once: a detector may not take a name
/// already in the list.
pub fn with_detectors(detectors: &[crate::backends::detector::Detector]) -> Result<Vec<Box<dyn Backend>>, Error> {
    let mut backends = all();
    for d in detectors {
        if backends.iter().any(|b| b.name() == d.name) {
            return Err(Error::Usage(format!("{}: a backend called `{}` is already given; each detector file needs its own name", d.file.display(), d.name)));
        }
        backends.push(Box::new(d.clone()));
    }
    Ok(backends)
}

/// The backend called `name`.
pub fn by_name(name: &str) -> Result<Box<dyn Backend>, Error> {
    by_name_among(all(), name)
}

/// The backend called `name` among `backends` (built-ins and detectors).
pub fn by_name_among(backends: Vec<Box<dyn Backend>>, name: &str) -> Result<Box<dyn Backend>, Error> {
    let known: Vec<&str> = backends.iter().map(|b| b.name()).collect();
    let known = known.join(", ");
    backends
        .into_iter()
        .find(|b| b.name() == name)
        .ok_or_else(|| Error::UnknownBackend { name: name.to_string(), known })
}

/// Runs a backend on a target and always returns a report: an unavailable
/// backend gives `skipped`, a failure gives `failed` with the error.
#[must_use]
pub fn execute(backend: &dyn Backend, target: &Target, config: &RunConfig) -> Report {
    if let Availability::Unavailable { reason, fix } = backend.availability() {
        let mut r = Report::new(&target.name, backend.name());
        r.status = Status::Skipped { reason, fix };
        return r;
    }
    let started = Instant::now();
    match backend.run(target, config) {
        Ok(mut r) => {
            let stats = r.stats.get_or_insert_with(Stats::default);
            if stats.wall_ms == 0 {
                stats.wall_ms = started.elapsed().as_millis() as u64;
            }
            r
        }
        Err(e) => {
            let mut r = Report::new(&target.name, backend.name());
            r.status = Status::Failed { error: e.to_string() };
            r.stats = Some(Stats { wall_ms: started.elapsed().as_millis() as u64, ..Stats::default() });
            r
        }
    }
}

/// Makes a path printable relative to the working directory when it is below it.
#[must_use]
pub fn display_path(p: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(cwd).ok().map(|r| r.display().to_string()))
        .unwrap_or_else(|| p.display().to_string())
}
