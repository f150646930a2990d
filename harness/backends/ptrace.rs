//! ptrace: no instrumentation at all. The program runs natively; at its
//! checkpoint (or after `--after` seconds) every thread is stopped, the
//! writable memory copied, and the process let go; glibc's heap is then
//! walked in the copy and conservatively marked from the roots. Reports have
//! no stacks: leaks are grouped by size, content and C++ type.

use std::time::{Duration, Instant};

use crate::backend::{Availability, Backend, Matching, RunConfig, Target};
use crate::error::Error;
use crate::process::{Child, Spec};
use crate::report::{Report, Stats};
use crate::scan;

pub struct Ptrace;

/// glibc versions whose malloc layout (malloc_state, heap_info with its
/// pagesize field, safe-linking, tcache key) is the one the walker knows.
const GLIBC_KNOWN: std::ops::RangeInclusive<u32> = 35..=40;

fn glibc_minor() -> Option<u32> {
    // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
    let v = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) }.to_str().ok()?;
    let (major, minor) = v.split_once('.')?;
    (major == "2").then(|| minor.split('.').next()?.parse().ok()).flatten()
}

/// Whether this process may ptrace its own children.
fn ptrace_allowed() -> Result<(), String> {
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").ok().map(|s| s.trim().to_string());
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    match scope.as_deref() {
        Some("3") => Err("kernel.yama.ptrace_scope is 3: ptrace is disabled until reboot".into()),
        Some("2") if !root => Err("kernel.yama.ptrace_scope is 2: only root (CAP_SYS_PTRACE) may attach".into()),
        _ => Ok(()),
    }
}

impl Backend for Ptrace {
    fn name(&self) -> &'static str {
        "ptrace"
    }

    fn summary(&self) -> &'static str {
        "attach to the live process, copy its memory, walk glibc's heap and mark from the roots: no instrumentation, no stacks"
    }

    fn availability(&self) -> Availability {
        if !cfg!(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu")) {
            return Availability::Unavailable {
                reason: "the heap walker knows glibc on x86_64 Linux only".into(),
                fix: "run leaklab on x86_64 Debian 12 (glibc 2.36)".into(),
            };
        }
        match glibc_minor() {
            Some(m) if GLIBC_KNOWN.contains(&m) => {}
            other => {
                return Availability::Unavailable {
                    reason: format!("glibc 2.{} is not a version whose malloc layout the walker knows (2.35-2.40)", other.map_or("?".into(), |m| m.to_string())),
                    fix: "run leaklab on Debian 12 (glibc 2.36)".into(),
                }
            }
        }
        match ptrace_allowed() {
            Ok(()) => Availability::Ready,
            Err(reason) => Availability::Unavailable { reason, fix: "sudo sysctl kernel.yama.ptrace_scope=1".into() },
        }
    }

    fn matching(&self) -> Matching {
        Matching::ByShape
    }

    fn debian_packages(&self) -> &'static [&'static str] {
        // Allocators other than glibc's, for the trials of a scan that must say it could not walk their heap.
        &["libjemalloc2", "libtcmalloc-minimal4"]
    }

    fn run(&self, target: &Target, config: &RunConfig) -> Result<Report, Error> {
        let mut spec = Spec::new(&target.program, config.timeout).io(config.io).args(&target.args);
        if config.after.is_none() {
            spec = spec.env("LEAKLAB_CHECKPOINT", "1");
        } else {
            spec = spec.env_remove("LEAKLAB_CHECKPOINT");
        }
        let mut child = Child::spawn(&spec)?;
        match config.after {
            None => child.wait_stop().map_err(|e| match e {
                // A program of the user's rarely has a checkpoint: say how to scan it.
                Error::TargetFailed { program, how, stderr } if target.sample.is_none() => Error::TargetFailed {
                    program,
                    how: format!("{how}; a program without leaklab_checkpoint() is scanned while it runs with `--after SECONDS`"),
                    stderr,
                },
                other => other,
            })?,
            Some(after) => wait_running(&mut child, after, &target.name)?,
        }
        // The child stays stopped (checkpoint) or is stopped by the scan;
        // either way it runs on once the scan has let it go.
        let started = Instant::now();
        let stop = if config.after.is_none() { scan::StopPoint::Checkpoint } else { scan::StopPoint::Anywhere };
        let scanned = scan::scan_pid(child.pid(), stop);
        let (snap, analysis, wall, peak_rss_kib) = match config.after {
            None => {
                child.resume();
                let (snap, analysis) = scanned?;
                let finished = child.finish()?;
                (snap, analysis, finished.wall, finished.peak_rss_kib)
            }
            Some(after) => {
                // A program scanned while it runs may run forever (a server,
                // `args: 0`): once scanned it is killed with its group.
                let rss = peak_rss(child.pid());
                drop(child);
                let (snap, analysis) = scanned?;
                (snap, analysis, after + started.elapsed(), rss)
            }
        };
        let mut report = Report::new(&target.name, self.name());
        report.leaks = analysis.leaks;
        report.notes = analysis.notes;
        if let Some(reason) = analysis.not_analysed {
            report.status = crate::report::Status::NotAnalysed { reason };
        }
        if snap.unreadable_bytes > 0 {
            report.notes.push(format!("{} bytes of writable mappings could not be read", snap.unreadable_bytes));
        }
        report.stats = Some(Stats {
            wall_ms: wall.as_millis() as u64,
            peak_rss_kib: Some(peak_rss_kib),
            pause_ms: Some(snap.pause.as_secs_f64() * 1000.0),
        });
        Ok(report)
    }
}

/// Lets a program without a checkpoint run for `after`; an exit before is an error.
fn wait_running(child: &mut Child, after: Duration, name: &str) -> Result<(), Error> {
    let until = Instant::now() + after;
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10).min(until - Instant::now()));
        let state = std::fs::read_to_string(format!("/proc/{}/stat", child.pid())).unwrap_or_default();
        // The state is the field after the parenthesised command name.
        let zombie = state.rsplit_once(')').is_none_or(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']));
        if zombie {
            return Err(Error::TargetFailed { program: name.to_string(), how: format!("exited before the scan at {:.1} s", after.as_secs_f64()), stderr: String::new() });
        }
    }
    Ok(())
}

/// VmHWM of a live process, in KiB (0 when unknown).
fn peak_rss(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmHWM:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())))
        .unwrap_or(0)
}
