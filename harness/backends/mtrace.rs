//! glibc's mtrace: with libc_malloc_debug.so.0 preloaded and `MALLOC_TRACE`
//! naming a file, every malloc, realloc and free after the program's call
//! to `mtrace()` is logged as one line: `@ CALLER + PTR SIZE`, `@ CALLER -
//! PTR`, and `< OLD` / `> NEW SIZE` for a realloc. A block logged and never
//! freed is leaked; there is no reachability, so kinds are `unclassified`.
//!
//! mtrace logs only after the program calls `mtrace()`, which nearly no
//! program does, so leaklab preloads harness/native/mtrace_start.c with it:
//! it calls `mtrace()` from a constructor, before main, and gives each
//! process (and each fork's parent after it) a log file of its own, since
//! glibc's log is a buffered FILE a forked child would otherwise write
//! again. A log is complete only when its process ran exit(), which flushes
//! it: a process that crashed, was killed or left with `_exit` is listed as
//! not analysed.
//!
//! The log is read here, not by glibc's perl `mtrace` script. CALLER is one
//! frame, the allocator's return address, as `module:(function+off)[addr]`
//! or `module:[addr]` with `addr` relative to the module's load base, which
//! is the module's own link-time address: it is symbolized to file:line by
//! leaklab's symbolizer. One frame is all mtrace has: a block that strdup,
//! getline or operator new allocated is logged at libc's or libstdc++'s
//! call to malloc, and its caller in the program is unknown (no site).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use crate::backend::{Availability, Backend, RunConfig, Target};
use crate::backends::preloaded::{self, Preload, Run};
use crate::error::Error;
use crate::report::{End, Frame, Kind, Leak, Report, Stats, Suppressed};
use crate::suppressions::Suppressions;
use crate::symbolize::Symbolizer;

pub struct Mtrace;

const DEBUG_LIBRARY: &str = "libc_malloc_debug.so.0";

/// glibc's malloc debugging library (glibc ≥ 2.34 moved mtrace into it).
pub(crate) fn debug_library() -> Option<PathBuf> {
    ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"]
        .iter()
        .map(|d| Path::new(d).join(DEBUG_LIBRARY))
        .find(|p| p.is_file())
}

pub(crate) fn starter() -> Result<PathBuf, Error> {
    crate::artifacts::resolve(env!("LEAKLAB_MTRACE_PRELOAD"))
}

impl Backend for Mtrace {
    fn name(&self) -> &'static str {
        "mtrace"
    }

    fn summary(&self) -> &'static str {
        "glibc's mtrace(): every malloc and free logged with its caller (one frame); what was never freed at exit is leaked"
    }

    fn availability(&self) -> Availability {
        if debug_library().is_some() {
            Availability::Ready
        } else {
            Availability::Unavailable {
                reason: format!("glibc's {DEBUG_LIBRARY} is not installed (glibc older than 2.34 keeps mtrace in libc itself)"),
                fix: "apt-get install -y libc6".into(),
            }
        }
    }

    fn debian_packages(&self) -> &'static [&'static str] {
        // libc6 ships libc_malloc_debug.so.0; libc6-dbg names libc's callers.
        &["libc6", "libc6-dbg"]
    }

    fn run(&self, target: &Target, config: &RunConfig) -> Result<Report, Error> {
        if let Some(report) = preloaded::statically_linked(target, self.name(), "mtrace") {
            return Ok(report);
        }
        let library = debug_library().ok_or_else(|| Error::Unavailable {
            backend: self.name().into(),
            reason: format!("{DEBUG_LIBRARY} not found"),
            fix: "apt-get install -y libc6".into(),
        })?;
        let mut suppressions = Suppressions::parse("hook/default.supp", crate::backends::hook::DEFAULT_SUPPRESSIONS)?;
        for file in &config.suppressions {
            suppressions.extend(Suppressions::load(file)?);
        }
        let dir = crate::process::scratch()?;
        let libraries = [library, starter()?];
        let env = [("LEAKLAB_MTRACE", dir.path().join("mtrace").into_os_string())];
        let run = preloaded::run(target, config, dir.path(), &Preload { libraries: &libraries, env: &env })?;
        run.check_sample_exit(target, "mtrace")?;
        let mut logs: BTreeMap<u32, Log> = BTreeMap::new();
        for (path, pid) in preloaded::files_by_pid(dir.path(), "mtrace")? {
            let text = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let log = logs.entry(pid).or_default();
            log.read(&String::from_utf8_lossy(&text))
                .map_err(|message| Error::MalformedOutput { tool: format!("mtrace ({})", path.display()), message })?;
        }
        if !logs.contains_key(&run.pid) {
            return Err(Error::MalformedOutput {
                tool: "mtrace".into(),
                message: format!("the program wrote no log {}.{}.0: mtrace() never ran in it", dir.path().join("mtrace").display(), run.pid),
            });
        }
        let mut report = report_of(target, &run, &logs, &suppressions);
        report.stats = Some(Stats { wall_ms: run.finished.wall.as_millis() as u64, peak_rss_kib: Some(run.finished.peak_rss_kib), pause_ms: None });
        Ok(report)
    }
}

fn report_of(target: &Target, run: &Run, logs: &BTreeMap<u32, Log>, suppressions: &Suppressions) -> Report {
    let mut report = Report::new(&target.name, "mtrace");
    let processes = run.processes(target, |p| logs.contains_key(&p.pid) && matches!(p.end, End::Exited { .. }));
    let several = processes.len() > 1;
    let mut sym = Symbolizer::new(Vec::new());
    for (&pid, log) in logs {
        // (caller) → (bytes, blocks)
        let mut groups: BTreeMap<&Caller, (u64, u64)> = BTreeMap::new();
        for (size, caller) in log.live.values() {
            let g = groups.entry(caller).or_default();
            g.0 += size;
            g.1 += 1;
        }
        for (caller, (bytes, blocks)) in groups {
            let stack = caller.frames(target, &mut sym);
            if let Some(rule) = suppressions.matching(&stack) {
                let rule = format!("leak:{} ({})", rule.pattern, rule.origin);
                report.count_suppressed(Suppressed { rule, leaks: blocks, bytes });
                continue;
            }
            let mut leak = Leak::new(Kind::Unclassified, bytes, blocks);
            leak.api = preloaded::runtime_api(&stack);
            leak.site = target.site_of(&stack);
            leak.stack = stack;
            leak.pid = several.then_some(pid);
            report.leaks.push(leak);
        }
    }
    report.notes.extend(preloaded::unanalysed_notes(&processes, "mtrace", |p| match &p.end {
        End::Exec { program } => format!("it exec'd {program}, which dropped its unflushed log"),
        End::Killed { signal } => format!("killed by {signal}: its buffered log was lost with it"),
        _ => "it ended without exit() (e.g. _exit), which does not flush its buffered log".into(),
    }));
    if !Run::simple(&processes) {
        report.processes = processes;
    }
    report
}

/// The one frame mtrace logs: a module (as the dynamic linker names it) and
/// the address relative to its load base, or an address alone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Caller {
    module: Option<String>,
    address: u64,
}

impl Caller {
    fn frames(&self, target: &Target, sym: &mut Symbolizer) -> Vec<Frame> {
        let Some(module) = &self.module else { return vec![Frame::default()] };
        // The main program is named as it was started (`./prog`, or a bare
        // name found through PATH): it is the target's executable.
        let file = if module.starts_with('/') {
            module.clone()
        } else if Path::new(module).file_name() == target.program.file_name() {
            std::fs::canonicalize(&target.program).unwrap_or_else(|_| target.program.clone()).display().to_string()
        } else {
            return vec![Frame { object: Some(module.clone()), ..Frame::default() }];
        };
        sym.frames_in(&file, self.address)
    }
}

/// The blocks of one process's logs that were never freed.
#[derive(Debug, Default)]
struct Log {
    /// pointer → (size, caller)
    live: HashMap<u64, (u64, Caller)>,
}

static LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:@ (?:(.*?):)?(?:\([^()]*\))?\[0x([0-9a-f]+)\] )?([-+<>]) (0x[0-9a-f]+|\(nil\))(?: 0x([0-9a-f]+))?$").expect("regex")
});

impl Log {
    /// Applies one log file's lines; its process's earlier files came first.
    fn read(&mut self, text: &str) -> Result<(), String> {
        for (n, line) in text.lines().enumerate() {
            if line.is_empty() || line.starts_with("= ") {
                continue; // `= Start`, `= End`
            }
            let c = LINE.captures(line).ok_or_else(|| format!("line {}: not an mtrace record: `{line}`", n + 1))?;
            let Some(ptr) = c[4].strip_prefix("0x").and_then(|p| u64::from_str_radix(p, 16).ok()) else {
                continue; // `(nil)`: an allocation that failed
            };
            let caller = Caller {
                module: c.get(1).map(|m| m.as_str().to_string()).filter(|m| !m.is_empty()),
                address: c.get(2).and_then(|a| u64::from_str_radix(a.as_str(), 16).ok()).unwrap_or(0),
            };
            match &c[3] {
                "+" | ">" => {
                    let size = c.get(5).and_then(|s| u64::from_str_radix(s.as_str(), 16).ok()).ok_or_else(|| format!("line {}: an allocation without a size: `{line}`", n + 1))?;
                    self.live.insert(ptr, (size, caller));
                }
                // A free of a block allocated before mtrace() started (by
                // the loader, or in the parent before a fork) is not in the log.
                _ => {
                    self.live.remove(&ptr);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_realloc_moves_a_block_and_a_free_ends_it() {
        let mut log = Log::default();
        log.read("= Start\n@ /bin/p:[0x11e0] + 0x10 0x10\n@ /bin/p:[0x1206] < 0x10\n@ /bin/p:[0x1206] > 0x20 0x1000\n@ /lib/libc.so.6:(__strdup+1a)[0x9e9aa] + 0x30 0xc\n@ /lib/libc.so.6:[0x17a944] - 0x30\n").unwrap();
        assert_eq!(log.live.len(), 1);
        assert_eq!(log.live[&0x20], (0x1000, Caller { module: Some("/bin/p".into()), address: 0x1206 }));
    }
}
