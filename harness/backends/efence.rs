//! Electric Fence (Debian's electric-fence, libefence.so.0.0 preloaded):
//! a malloc that puts every block against an inaccessible guard page, so
//! that the first access past its end (or, with EF_PROTECT_FREE, into it
//! after its free) faults on the spot, and that aborts on a free of an
//! address it did not hand out. It finds no leaks: its finding is the
//! crash, and the crash's stack says where.
//!
//! With it goes harness/native/crash_stack.c, which on a deadly signal
//! writes the signal, the faulting address, whether it was a write, the
//! return addresses (backtrace) and /proc/self/maps to a file of the run's
//! scratch directory; leaklab symbolizes them with its own symbolizer.
//! Electric Fence's own message goes to the program's stderr, which stays
//! the program's; the finding is read from the crash alone:
//! - SIGSEGV/SIGBUS: an invalid read or write at the faulting line;
//! - SIGILL raised inside Electric Fence's free or realloc (its abort): a
//!   bad free at the line that called it. Electric Fence merges a freed
//!   block's slot with its free neighbours, so a second free of it is not
//!   found either: it reports a double free as "address not from malloc()",
//!   and leaklab calls both `invalid`.
//! It does not check that a block is released with the function that
//! allocated it (new[] with delete): mismatched frees go unseen.

use std::path::{Path, PathBuf};

use crate::backend::{Availability, Backend, RunConfig, Target};
use crate::backends::preloaded::{self, Preload, Run};
use crate::catalogue::SampleInfo;
use crate::error::Error;
use crate::report::{BadFree, BadFreeKind, Frame, MemoryError, Report, Stats};
use crate::symbolize::{MapEntry, Symbolizer};

pub struct Efence;

const LIBRARY: &str = "libefence.so.0.0";

pub(crate) fn library() -> Option<PathBuf> {
    ["/usr/lib", "/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu"].iter().map(|d| Path::new(d).join(LIBRARY)).find(|p| p.is_file())
}

fn crash_stack() -> Result<PathBuf, Error> {
    crate::artifacts::resolve(env!("LEAKLAB_CRASH_STACK_PRELOAD"))
}

impl Backend for Efence {
    fn name(&self) -> &'static str {
        "efence"
    }

    fn summary(&self) -> &'static str {
        "Electric Fence: every block against a guard page; an overrun faults at the bad access, a bad free aborts (no leak detection)"
    }

    fn availability(&self) -> Availability {
        if library().is_some() {
            Availability::Ready
        } else {
            Availability::Unavailable { reason: format!("Electric Fence's {LIBRARY} is not installed"), fix: "apt-get install -y electric-fence".into() }
        }
    }

    fn checks_frees(&self) -> bool {
        true
    }

    /// Only where there is a bad free to catch: it finds no leaks.
    fn applies(&self, sample: &SampleInfo) -> bool {
        sample.expectations().is_ok_and(|e| !e.bad_frees.is_empty())
    }

    fn debian_packages(&self) -> &'static [&'static str] {
        &["electric-fence"]
    }

    fn run(&self, target: &Target, config: &RunConfig) -> Result<Report, Error> {
        if let Some(report) = preloaded::statically_linked(target, self.name(), "Electric Fence") {
            return Ok(report);
        }
        let library = library().ok_or_else(|| Error::Unavailable {
            backend: self.name().into(),
            reason: format!("{LIBRARY} not found"),
            fix: "apt-get install -y electric-fence".into(),
        })?;
        let dir = crate::process::scratch()?;
        let libraries = [library, crash_stack()?];
        let env = [("LEAKLAB_CRASH_STACK", dir.path().join("crash").into_os_string())];
        let run = preloaded::run(target, config, dir.path(), &Preload { libraries: &libraries, env: &env })?;
        run.check_sample_exit(target, "Electric Fence")?;
        let mut report = Report::new(&target.name, self.name());
        let processes = run.processes(target, |_| true);
        let several = processes.len() > 1;
        for (path, pid) in preloaded::files_by_pid(dir.path(), "crash")? {
            let text = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let crash = parse_crash(&String::from_utf8_lossy(&text))
                .map_err(|message| Error::MalformedOutput { tool: format!("the crash record {}", path.display()), message })?;
            finding(&crash, target, several.then_some(pid), &mut report);
        }
        report.notes.push("Electric Fence finds no leaks: it catches overruns (guard pages) and bad frees".into());
        if !Run::simple(&processes) {
            report.processes = processes;
        }
        report.stats = Some(Stats { wall_ms: run.finished.wall.as_millis() as u64, peak_rss_kib: Some(run.finished.peak_rss_kib), pause_ms: None });
        Ok(report)
    }
}

/// What crash_stack.c wrote.
#[derive(Debug, PartialEq)]
struct Crash {
    signal: i32,
    address: u64,
    write: bool,
    pcs: Vec<u64>,
    maps: Vec<MapEntry>,
}

fn parse_crash(text: &str) -> Result<Crash, String> {
    let mut lines = text.lines();
    let head = lines.next().ok_or("empty")?;
    let words: Vec<&str> = head.split(' ').collect();
    let (signal, address, write) = match words.as_slice() {
        ["signal", n, addr, w] => (
            n.parse().map_err(|_| format!("bad signal in `{head}`"))?,
            u64::from_str_radix(addr, 16).map_err(|_| format!("bad address in `{head}`"))?,
            *w == "1",
        ),
        _ => return Err(format!("not a `signal N ADDR W` line: `{head}`")),
    };
    let mut pcs = Vec::new();
    let mut maps = Vec::new();
    let mut in_maps = false;
    for line in lines {
        if in_maps {
            maps.extend(MapEntry::parse(line));
        } else if line == "maps" {
            in_maps = true;
        } else if let Some(pc) = line.strip_prefix("pc ") {
            pcs.push(u64::from_str_radix(pc, 16).map_err(|_| format!("bad pc line `{line}`"))?);
        }
    }
    if !in_maps {
        return Err("cut short before its maps".into());
    }
    Ok(Crash { signal, address, write, pcs, maps })
}

/// Whether a frame is Electric Fence's function that releases a block.
fn efence_release(frame: &Frame) -> Option<&str> {
    let in_efence = frame.object.as_deref().is_some_and(|o| o.rsplit('/').next().is_some_and(|n| n.starts_with("libefence")));
    let function = frame.function.as_deref()?;
    (in_efence && matches!(function, "free" | "realloc" | "cfree")).then_some(function)
}

/// The crash as a bad free or a memory error.
fn finding(crash: &Crash, target: &Target, pid: Option<u32>, report: &mut Report) {
    let mut sym = Symbolizer::new(crash.maps.clone());
    let stack = sym.stack(&crash.pcs);
    // The handler's own frames and the signal trampoline come first: the
    // stack that matters starts below them (at the fault, or in efence).
    let own = stack.iter().rposition(|f| f.object.as_deref().is_some_and(|o| o.contains("libleaklab_"))).map_or(0, |i| i + 1);
    let stack: Vec<Frame> = stack[own..].to_vec();
    let signal = crate::process::signal_name(crash.signal);
    if let (libc::SIGILL, Some(i)) = (crash.signal, stack.iter().position(|f| efence_release(f).is_some())) {
        let dealloc = efence_release(&stack[i]).unwrap_or("free").to_string();
        let caller: Vec<Frame> = stack[i + 1..].to_vec();
        report.bad_frees.push(BadFree {
            kind: BadFreeKind::Invalid,
            dealloc,
            api: None,
            site: target.site_of(&caller),
            stack: caller,
            other_site: None,
            other_stack: Vec::new(),
        });
        return;
    }
    let (kind, what) = match crash.signal {
        libc::SIGSEGV | libc::SIGBUS => (
            if crash.write { "InvalidWrite" } else { "InvalidRead" },
            format!(
                "{signal}: invalid {} at {:#x} (past the end of a block, onto Electric Fence's guard page, or into freed memory)",
                if crash.write { "write" } else { "read" },
                crash.address
            ),
        ),
        _ => ("Crash", format!("{signal} (Electric Fence aborts with SIGILL on an error it finds outside a free)")),
    };
    report.errors.push(MemoryError { kind: kind.into(), what, site: target.site_of(&stack), stack, pid });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_record_is_read_whole_or_refused() {
        let c = parse_crash("signal 11 7f0000001000 1\npc 401000\npc 401100\nmaps\n00400000-00401000 r-xp 00000000 08:01 1 /bin/p\n").unwrap();
        assert_eq!((c.signal, c.address, c.write, c.pcs.len(), c.maps.len()), (11, 0x7f00_0000_1000, true, 2, 1));
        assert!(parse_crash("signal 11 7f0000001000 1\npc 401000\n").is_err());
    }
}
