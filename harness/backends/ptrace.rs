//! ptrace: no instrumentation at all. The program runs natively; at its
//! checkpoint (or after `--after` seconds) every thread is stopped, the
//! writable memory copied, and the process let go; glibc's heap is then
//! walked in the copy and conservatively marked from the roots. Reports have
//! no stacks: leaks are grouped by size, content and C++ type.

use crate::backend::{Availability, Backend, Matching, RunConfig, Target};
use crate::error::Error;
use crate::process::Spec;
use crate::report::{End, Report, Stats, Status};
use crate::scan;
use crate::trace::{self, AfterThen, Inspection, Moment, TraceConfig, TracedRun};

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

    fn run(&self, target: &Target, config: &RunConfig) -> Result<Report, Error> {
        let mut spec = Spec::new(&target.program, config.timeout).args(&target.args).io(config.io);
        // Without `--after`, a process that calls leaklab_checkpoint() is
        // scanned there; every process is scanned at its end otherwise.
        spec = if config.after.is_none() { spec.env("LEAKLAB_CHECKPOINT", "1") } else { spec.env_remove("LEAKLAB_CHECKPOINT") };
        let trace_config = TraceConfig {
            checkpoint: config.after.is_none(),
            requests: false,
            // A program scanned while it runs may run forever (a server,
            // `args: 0`): once scanned it is killed with the run.
            after: config.after.map(|d| (d, AfterThen::EndRun)),
            at_exit: true,
            left_running: true,
        };
        let mut inspect = |insp: &Inspection| -> Result<Option<Scanned>, Error> {
            // An image scanned at its checkpoint has told what it leaks there:
            // the sample chose that moment.
            if insp.earlier > 0 && matches!(insp.moment, Moment::Exit(_) | Moment::LeftRunning) {
                return Ok(None);
            }
            let stop = match insp.moment {
                Moment::Checkpoint => scan::StopPoint::Checkpoint,
                // At exit the stacks are read from their stack pointers: what
                // lies below is dead, what is above is live (the frames of
                // exit() and its callers, or of the crashing code).
                _ => scan::StopPoint::Anywhere,
            };
            Ok(Some(match insp.snapshot() {
                Ok(mut snap) => {
                    if matches!(insp.moment, Moment::Exit(_)) {
                        forget_exit_arguments(&mut snap);
                    }
                    let analysis = scan::analyse(&snap, stop);
                    Scanned { pid: insp.pid, moment: insp.moment, snap: Some(snap), analysis: Some(analysis), error: None }
                }
                Err(e) => Scanned { pid: insp.pid, moment: insp.moment, snap: None, analysis: None, error: Some(e.to_string()) },
            }))
        };
        let run = trace::run_traced(&spec, &trace_config, &mut inspect)?;
        Ok(report(&target.name, self.name(), config, run))
    }
}

/// One scan of one process.
struct Scanned {
    pid: i32,
    moment: Moment,
    snap: Option<scan::snapshot::Snapshot>,
    analysis: Option<scan::Analysis>,
    error: Option<String>,
}

/// The report of a traced run: every process's leaks, with its pid when the
/// run had several.
fn report(name: &str, backend: &str, config: &RunConfig, run: TracedRun<Option<Scanned>>) -> Report {
    let mut report = Report::new(name, backend);
    let scans: Vec<Scanned> = run.inspections.into_iter().filter_map(|i| i.value).collect();
    let several = run.processes.len() > 1;
    let mut analysed = std::collections::HashSet::new();
    let mut pause = 0.0f64;
    for s in &scans {
        let (Some(snap), Some(analysis)) = (&s.snap, &s.analysis) else {
            report.notes.push(format!("pid {} could not be scanned: {}", s.pid, s.error.as_deref().unwrap_or("unknown error")));
            continue;
        };
        // Stopped while it runs, with no heap found and nothing lost: it had
        // not started allocating (`--after 0` stops it at its first
        // instruction), or its allocator is not glibc's. Not "clean".
        let running = matches!(s.moment, Moment::After | Moment::LeftRunning);
        if running && analysis.walk.main_arena.is_none() && analysis.walk.blocks.is_empty() && analysis.leaks.is_empty() {
            report.notes.push(format!("pid {}: glibc's heap was not found, so it was not analysed", s.pid));
            continue;
        }
        analysed.insert((s.pid, moment_rank(s.moment)));
        pause = pause.max(snap.pause.as_secs_f64() * 1000.0);
        for w in &analysis.walk.warnings {
            report.notes.push(if several { format!("pid {}: {w}", s.pid) } else { w.clone() });
        }
        if snap.unreadable_bytes > 0 {
            report.notes.push(format!("{} bytes of writable mappings of pid {} could not be read", snap.unreadable_bytes, s.pid));
        }
        for leak in &analysis.leaks {
            let mut leak = leak.clone();
            if several {
                leak.pid = Some(s.pid as u32);
            }
            report.leaks.push(leak);
        }
    }
    let mut processes = run.processes;
    for p in &mut processes {
        // A scan that failed or found no heap did not analyse the process.
        let failed = scans.iter().any(|s| s.pid as u32 == p.pid && !analysed.contains(&(s.pid, moment_rank(s.moment))));
        p.analysed &= !failed;
        if let End::Killed { signal } = &p.end {
            report.notes.push(format!("pid {} ({}) was killed by {signal}", p.pid, p.program));
        }
    }
    if let Some(after) = config.after {
        if scans.iter().any(|s| matches!(s.moment, Moment::Exit(_))) && !scans.iter().any(|s| s.moment == Moment::After) {
            report.notes.push(format!("the program ended before the scan at {:.1} s: it was scanned at its exit", after.as_secs_f64()));
        }
    }
    let main_simple = processes.len() == 1 && matches!(processes[0].end, End::Exited { .. });
    if analysed.is_empty() {
        report.status = Status::NotAnalysed { reason: "no process of the run could be scanned".into() };
    }
    if !main_simple || processes.iter().any(|p| !p.analysed) {
        report.processes = processes;
    }
    report.stats = Some(Stats { wall_ms: run.finished.wall.as_millis() as u64, peak_rss_kib: Some(run.finished.peak_rss_kib), pause_ms: Some(pause) });
    report
}

fn moment_rank(m: Moment) -> u8 {
    match m {
        Moment::Checkpoint => 0,
        Moment::Request => 1,
        Moment::After => 2,
        Moment::Exit(_) => 3,
        Moment::LeftRunning => 4,
    }
}

/// A thread stopped in the exit or exit_group syscall never runs again: its
/// caller-saved registers hold only that syscall's arguments (a status),
/// not pointers, though they may keep stale copies of one (glibc's memset
/// leaves its destination in a scratch register). Callee-saved registers,
/// the stack pointer and the stack stay roots: the callers of exit() are
/// live, as valgrind and LeakSanitizer count them.
fn forget_exit_arguments(snap: &mut scan::snapshot::Snapshot) {
    // Indices in Thread::regs: rax, rcx, rdx, rsi, rdi, r8, r9, r10, r11.
    const SCRATCH: [usize; 9] = [0, 2, 3, 4, 5, 8, 9, 10, 11];
    for t in &mut snap.threads {
        let in_exit = nix::sys::ptrace::getregs(nix::unistd::Pid::from_raw(t.tid))
            .is_ok_and(|r| r.orig_rax as i64 == libc::SYS_exit || r.orig_rax as i64 == libc::SYS_exit_group);
        if in_exit {
            for i in SCRATCH {
                if let Some(r) = t.regs.get_mut(i) {
                    *r = 0;
                }
            }
        }
    }
}
