//! jemalloc's leak profiling: the program runs with Debian's libjemalloc
//! preloaded (built with `--enable-prof`) and
//! `MALLOC_CONF=prof:true,prof_leak:true,prof_final:true,lg_prof_sample:0`:
//! every allocation is sampled (`lg_prof_sample:0`) with its backtrace, and
//! at exit (`prof_final`) each process writes its final heap profile,
//! `PREFIX.PID.SEQ.f.heap`, into the run's scratch directory. leaklab reads
//! the profile itself (`heap_profile`: per stack, the live objects and
//! bytes, then the process's maps) and symbolizes the stacks with its own
//! symbolizer; jeprof (perl) is never run.
//!
//! What is live at exit is what jemalloc calls leaked: it knows nothing of
//! reachability, so every finding is `unclassified`, and a block a global
//! still points to is reported like a lost one. The C and C++ runtimes'
//! one-time allocations (stdio buffers, the exception pool) are left out
//! by name, as the hook's dump fallback does.
//!
//! Its byte counts are jemalloc's size classes, not the sizes asked for
//! (the profile records the usable size: a 40-byte malloc is 48 bytes).
//!
//! `prof_leak` also prints a one-line summary on the program's stderr
//! (jemalloc has no option to send it elsewhere); the report is read from
//! the profile alone.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::backend::{Availability, Backend, RunConfig, Target};
use crate::error::Error;
use crate::heap_profile::{self, ProcessEnd, Profiler};
use crate::process::Spec;
use crate::report::{End, Kind, Report};
use crate::suppressions::Suppressions;

pub struct Jemalloc;

/// Where Debian's libjemalloc2 puts the library.
const LIBRARY: &str = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";

/// Runtime allocations kept until exit, which jemalloc reports: the hook's
/// default list (stdio buffers, TLS, locales, dlerror). Those made wholly
/// inside the runtime (libstdc++'s exception pool) are left out by
/// `heap_profile::run` whatever their names.
fn defaults() -> Result<Suppressions, Error> {
    Suppressions::parse("default.supp", crate::backends::hook::DEFAULT_SUPPRESSIONS)
}

/// Profiling on, every allocation sampled, the final profile at exit into `dir`.
fn malloc_conf(dir: &str) -> String {
    format!("prof:true,prof_active:true,prof_leak:true,prof_final:true,lg_prof_sample:0,prof_prefix:{dir}/jeprof")
}

/// `jeprof.PID.SEQ.f.heap` (the final dump; no other kind is enabled).
fn dump_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("jeprof.")?.strip_suffix(".f.heap")?;
    rest.split('.').next()?.parse().ok()
}

fn why_unchecked(end: &ProcessEnd) -> Option<String> {
    Some(match &end.end {
        End::Killed { signal } => format!("killed by {signal}: jemalloc dumps its final profile only in exit()"),
        End::Exec { program } => format!("exec'd {program} before exit()"),
        _ if !end.exited => "left without exit() (_exit, or still running when the run ended): jemalloc dumps only in exit()".into(),
        _ => "exit() ran but jemalloc wrote no final profile".into(),
    })
}

/// Whether the preloaded jemalloc profiles here: a run of `true` under it
/// must leave a final profile (a build without `--enable-prof` refuses
/// `prof:true` and writes none). Found once per leaklab process.
fn probe() -> &'static Availability {
    static RESULT: OnceLock<Availability> = OnceLock::new();
    RESULT.get_or_init(|| {
        let unavailable = |reason: String| Availability::Unavailable {
            reason,
            fix: "apt-get install -y libjemalloc2 (Debian's build has --enable-prof)".into(),
        };
        let Ok(dir) = crate::process::scratch() else { return unavailable("no scratch directory for the probe".into()) };
        let Ok(truth) = which::which("true") else { return unavailable("no `true` program to probe with".into()) };
        let spec = Spec::new(&truth, Duration::from_secs(30))
            .env("LD_PRELOAD", LIBRARY)
            .env("MALLOC_CONF", malloc_conf(&dir.path().display().to_string()));
        let finished = match crate::process::Child::spawn(&spec).and_then(|c| c.finish()) {
            Ok(f) => f,
            Err(e) => return unavailable(format!("the probe under jemalloc failed: {e}")),
        };
        let dumped = std::fs::read_dir(dir.path()).map(|d| d.flatten().any(|e| e.file_name().to_str().and_then(dump_pid).is_some()));
        match dumped {
            Ok(true) => Availability::Ready,
            _ => unavailable(format!(
                "{LIBRARY} wrote no heap profile with MALLOC_CONF=prof:true (built without --enable-prof?); it said: {}",
                finished.stderr_text().lines().next().unwrap_or("nothing")
            )),
        }
    })
}

impl Backend for Jemalloc {
    fn name(&self) -> &'static str {
        "jemalloc"
    }

    fn summary(&self) -> &'static str {
        "jemalloc's leak profiling (prof_leak, prof_final): a backtrace per allocation, what is live at exit read from its heap profile"
    }

    fn availability(&self) -> Availability {
        if !Path::new(LIBRARY).is_file() {
            return Availability::Unavailable { reason: format!("{LIBRARY} is not installed"), fix: "apt-get install -y libjemalloc2".into() };
        }
        probe().clone()
    }

    fn debian_packages(&self) -> &'static [&'static str] {
        &["libjemalloc2"]
    }

    fn run(&self, target: &Target, config: &RunConfig) -> Result<Report, Error> {
        let defaults = defaults()?;
        let library = PathBuf::from(LIBRARY);
        let profiler = Profiler {
            backend: "jemalloc",
            library: &library,
            env: vec![("MALLOC_CONF", malloc_conf("{scratch}"))],
            dump_pid,
            defaults: &defaults,
            why_unchecked,
            layout: crate::process::Layout::Randomized,
        };
        heap_profile::run(&profiler, target, config, Kind::Unclassified)
    }
}
