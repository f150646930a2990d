//! gperftools' heap checker: the program runs with libtcmalloc.so.4
//! preloaded and `HEAPCHECK=normal`. tcmalloc records a backtrace for every
//! allocation; at exit the checker (a destructor of the library, after the
//! program's own) marks every block reachable from the roots (globals,
//! thread stacks and registers, by a conservative scan as LSan's), and
//! writes what it could not reach to `PROGRAM.PID._main_-end.heap` in
//! `HEAP_CHECK_DUMP_DIRECTORY`, the run's scratch directory, then ends the
//! program with status 1. leaklab reads that file itself (`heap_profile`:
//! gperftools' legacy heap-profile format, with the maps) and symbolizes
//! the stacks; pprof is never run. Its summary ("Leak of N bytes in M
//! objects allocated from:") goes to the program's stderr, which stays the
//! user's.
//!
//! Kinds: every block it lists is unreachable, lost for certain, but it
//! does not tell a block nothing points to (valgrind's definite) from one
//! only other lost blocks point to (indirect), so its findings are
//! `unclassified`: calling them definite would be wrong for every indirect
//! one. Reachable blocks it does not report at all.
//!
//! The checker checks only the process it started in: a forked child is
//! never checked (the checker compares the pid), nor a process that ends
//! by `_exit`, exec or a signal.

use std::path::Path;

use crate::backend::{Availability, Backend, RunConfig, Target};
use crate::error::Error;
use crate::heap_profile::{self, ProcessEnd, Profiler};
use crate::report::{End, Kind, Report};
use crate::suppressions::Suppressions;

pub struct Tcmalloc;

/// Where Debian's libgoogle-perftools4 puts the library.
const LIBRARY: &str = "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4";

/// `PROGRAM.PID._main_-end.heap` (PROGRAM may itself hold dots).
fn dump_pid(name: &str) -> Option<u32> {
    let rest = name.strip_suffix("._main_-end.heap")?;
    rest.rsplit('.').next()?.parse().ok()
}

fn why_unchecked(end: &ProcessEnd) -> Option<String> {
    Some(match &end.end {
        End::Killed { signal } => format!("killed by {signal}: the heap checker runs only at exit"),
        End::Exec { program } => format!("exec'd {program} before exit"),
        _ if end.forked => "a forked child: gperftools' heap checker checks only the process it started in".into(),
        _ if !end.exited => "left without exit() (_exit, or still running when the run ended): the heap checker runs only at exit".into(),
        // exit() ran, and the checker after it found nothing: no dump is its clean result.
        _ => return None,
    })
}

impl Backend for Tcmalloc {
    fn name(&self) -> &'static str {
        "tcmalloc"
    }

    fn summary(&self) -> &'static str {
        "gperftools' heap checker (HEAPCHECK=normal with libtcmalloc): what no root reaches at exit, read from its leak dump"
    }

    fn availability(&self) -> Availability {
        if !Path::new(LIBRARY).is_file() {
            return Availability::Unavailable {
                reason: format!("{LIBRARY} is not installed"),
                fix: "apt-get install -y libgoogle-perftools4".into(),
            };
        }
        Availability::Ready
    }

    fn debian_packages(&self) -> &'static [&'static str] {
        &["libgoogle-perftools4"]
    }

    fn run(&self, target: &Target, config: &RunConfig) -> Result<Report, Error> {
        let defaults = Suppressions::default();
        let library = Path::new(LIBRARY);
        let mut env = vec![
            ("HEAPCHECK", "normal".to_string()),
            ("HEAP_CHECK_DUMP_DIRECTORY", "{scratch}".into()),
            // Its advice names pprof; nothing runs it.
            ("PPROF_PATH", "/nonexistent/pprof".into()),
        ];
        if target.sample.is_some() {
            // A sample has returned from main when the checker runs: its
            // stacks hold only stale copies of pointers in dead frames, and
            // counting what they reach as live made error_path_leak lose a
            // block in one run out of two (as use_stacks=0 for LSan).
            env.push(("HEAP_CHECK_IGNORE_THREAD_LIVE", "false".into()));
        }
        let profiler = Profiler {
            backend: "tcmalloc",
            library,
            env,
            dump_pid,
            defaults: &defaults,
            why_unchecked,
            // With ASLR, where a stale copy of a pointer falls (a root or
            // not) changed error_path_leak's verdict from run to run.
            layout: if target.sample.is_some() { crate::process::Layout::Fixed } else { crate::process::Layout::Randomized },
        };
        heap_profile::run(&profiler, target, config, Kind::Unclassified)
    }
}
