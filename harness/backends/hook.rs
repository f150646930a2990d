//! `hook`: an LD_PRELOAD shim (harness/hook/leaklab_hook.c, built by
//! build.rs) replaces malloc and friends, operator new/delete and
//! mmap/munmap/mremap, keeps every live block with a frame-pointer stack,
//! and checks every free. The harness stops the process where it is
//! inspected, copies its memory (`scan::snapshot`), reads the shim's table
//! out of the copy ([`table`]) and gives every block valgrind's kind by a
//! conservative mark from the process's roots ([`classify`]); what only the
//! C/C++ runtime holds is not reported. Where ptrace is not possible, the
//! shim's dump file (one per process, written at exit or on
//! LEAKLAB_HOOK_SIGNAL) is the fallback: exact blocks and stacks, but
//! `unclassified`, with the runtime's known one-time allocations left out
//! by name (default.supp).

pub mod classify;
pub mod table;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backend::{Availability, Backend, RunConfig, Target};
use crate::error::Error;
use crate::process::{self, Spec};
use crate::report::{BadFree, BadFreeKind, Frame, Kind, Leak, Region, RegionKind, Report, Stats, Status, Suppressed};
use crate::scan;
use crate::trace;
use crate::suppressions::Suppressions;
use crate::symbolize::{MapEntry, Symbolizer};

/// The shim build.rs compiled.
pub const SHIM: &str = env!("LEAKLAB_HOOK_SO");

/// The shim's usable path (unpacked from the binary when OUT_DIR is gone).
#[must_use]
pub fn shim() -> String {
    crate::artifacts::resolve(SHIM).map_or_else(|_| SHIM.to_string(), |p| p.display().to_string())
}

/// The runtime's own one-time allocations, in LeakSanitizer's format.
pub const DEFAULT_SUPPRESSIONS: &str = include_str!("../hook/default.supp");

pub struct Hook;

impl Backend for Hook {
    fn name(&self) -> &'static str {
        "hook"
    }

    fn summary(&self) -> &'static str {
        "LD_PRELOAD shim: malloc/new/mmap interposed, a frame-pointer stack per live block, dumped at exit"
    }

    fn availability(&self) -> Availability {
        let shim = shim();
        if Path::new(&shim).is_file() {
            Availability::Ready
        } else {
            Availability::Unavailable { reason: format!("the shim {shim} is missing"), fix: "cargo build --release".into() }
        }
    }

    fn checks_frees(&self) -> bool {
        true
    }

    fn debian_packages(&self) -> &'static [&'static str] {
        // glibc's separate debug info names libc's frames (stdio buffers, getline).
        &["libc6-dbg"]
    }

    fn run(&self, target: &Target, config: &RunConfig) -> Result<Report, Error> {
        if crate::backend::is_statically_linked(&target.program) {
            let mut report = Report::new(&target.name, self.name());
            report.status = Status::NotAnalysed {
                reason: format!(
                    "{} is statically linked: the dynamic loader never runs in it, so LD_PRELOAD cannot put the hook's shim into it and no allocation of it is seen (valgrind, built against its own malloc replacement, has the same limit)",
                    target.name
                ),
            };
            return Ok(report);
        }
        let mut user = Suppressions::default();
        for file in &config.suppressions {
            user.extend(Suppressions::load(file)?);
        }
        let dir = crate::process::scratch()?;
        let pattern = dir.path().join("hook.%p.dump");
        let preload = match std::env::var("LD_PRELOAD") {
            Ok(existing) if !existing.is_empty() => format!("{}:{existing}", shim()),
            _ => shim(),
        };
        let spec = Spec::new(&target.program, config.timeout).io(config.io)
            .args(&target.args)
            .env("LD_PRELOAD", preload)
            .env("LEAKLAB_HOOK_OUT", &pattern)
            .io(config.io);
        if ptrace_allowed() {
            return self.run_traced(target, config, spec, &user);
        }
        self.run_with_dumps(target, config, spec.env_remove("LEAKLAB_CHECKPOINT"), &user, dir.path())
    }
}

/// What one inspection of one process gave: its table and kinds, or why
/// it has none.
struct Seen {
    earlier: u32,
    classified: Result<(table::Table, classify::Kinds), table::Missing>,
    pause: Duration,
    unreadable: u64,
}

/// Whether this process may ptrace its children (yama's scope 3 forbids it).
fn ptrace_allowed() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").map_or(true, |s| s.trim() != "3")
}

impl Hook {
    /// The run under ptrace (harness/trace.rs): every process of it is
    /// inspected at its last moment (exit, `_exit`, a fatal signal), before
    /// each exec (the shim asks), at `--after`, or when left running; each
    /// inspection reads the shim's table out of a snapshot and classifies it.
    fn run_traced(&self, target: &Target, config: &RunConfig, spec: Spec, user: &Suppressions) -> Result<Report, Error> {
        let tc = trace::TraceConfig {
            checkpoint: false,
            requests: true,
            after: config.after.map(|a| (a, trace::AfterThen::EndRun)),
            at_exit: true,
            left_running: true,
        };
        // The table is read out of the process: no dump file at exit.
        let spec = spec.env("LEAKLAB_HOOK_OUT", "none").env("LEAKLAB_HOOK_SIGNAL", "none").env_remove("LEAKLAB_CHECKPOINT");
        let run = trace::run_traced(&spec, &tc, &mut |insp| {
            let snap = insp.snapshot()?;
            let reason = match insp.moment {
                trace::Moment::Exit(_) => "exit",
                trace::Moment::Request => "exec",
                trace::Moment::After => "after",
                trace::Moment::LeftRunning => "left-running",
                trace::Moment::Checkpoint => "checkpoint",
            };
            let found = table::read(insp.pid as u32, reason, &snap.memory, &snap.maps)?;
            let classified = found.map(|t| {
                let kinds = classify::classify(&snap, &t, scan::StopPoint::Anywhere);
                // For measuring the cost (the closing note's 1 GiB heap).
                if std::env::var_os("LEAKLAB_HOOK_TIMING").is_some() {
                    let bytes: u64 = t.dump.blocks.iter().map(|b| b.size).sum();
                    eprintln!(
                        "hook: pid {}: {} blocks ({} MiB) classified in {:.0} ms, {} MiB scanned; snapshot pause {:.0} ms",
                        insp.pid,
                        t.dump.blocks.len(),
                        bytes >> 20,
                        kinds.elapsed.as_secs_f64() * 1000.0,
                        kinds.scanned >> 20,
                        snap.pause.as_secs_f64() * 1000.0
                    );
                }
                (t, kinds)
            });
            Ok(Seen { earlier: insp.earlier, classified, pause: snap.pause, unreadable: snap.unreadable_bytes })
        })?;

        // An image inspected again (an exec that failed, then its exit) is
        // reported from its last inspection.
        let mut kept: Vec<(i32, Seen)> = Vec::new();
        for i in run.inspections {
            for _ in 0..i.value.earlier {
                if let Some(at) = kept.iter().rposition(|(pid, _)| *pid == i.pid) {
                    kept.remove(at);
                }
            }
            kept.push((i.pid, i.value));
        }
        let finished = run.finished;
        if let Some(failure) = sample_failure(target, &finished) {
            return Err(failure);
        }
        let mut report = Report::new(&target.name, self.name());
        let mut processes = run.processes;
        let several = processes.len() > 1 || kept.len() > 1;
        let mut sym = Symbolizer::new(Vec::new());
        let mut pause = Duration::ZERO;
        for (pid, seen) in &kept {
            pause += seen.pause;
            if seen.unreadable > 0 {
                report.notes.push(format!("pid {pid}: {} bytes of writable mappings could not be read", seen.unreadable));
            }
            match &seen.classified {
                Ok((table, kinds)) => {
                    sym.set_maps(table.dump.maps.clone());
                    let mut part = report_of(&table.dump, Some(kinds), target, user, &mut sym);
                    if several {
                        part.leaks.iter_mut().for_each(|l| l.pid = Some(*pid as u32));
                    }
                    merge(&mut report, part);
                }
                Err(table::Missing::NotLoaded) => {
                    let program = processes.iter().rev().find(|p| p.pid == *pid as u32).map_or_else(|| target.name.clone(), |p| p.program.clone());
                    report.notes.push(format!(
                        "pid {pid} ({program}) was not analysed: the hook's shim is not loaded in it; it was started or exec'd without the LD_PRELOAD leaklab set (a program that clears or edits its environment before exec loses the hook), or it is statically linked"
                    ));
                }
            }
        }
        // Each image of a pid (before and after its execs), in order, is
        // analysed when its last inspection found the table.
        let mut images: BTreeMap<u32, Vec<bool>> = BTreeMap::new();
        for (pid, seen) in &kept {
            images.entry(*pid as u32).or_default().push(seen.classified.is_ok());
        }
        let mut nth: BTreeMap<u32, usize> = BTreeMap::new();
        for p in &mut processes {
            let k = nth.entry(p.pid).or_default();
            p.analysed = images.get(&p.pid).and_then(|v| v.get(*k)).copied().unwrap_or(false);
            *k += 1;
        }
        match finished.exit {
            process::Exit::Signal(sig) if config.after.is_none() => {
                report.notes.push(format!("the program was killed by {}; its leaks are those at that moment", process::signal_name(sig)))
            }
            process::Exit::Code(code) if code != 0 => report.notes.push(format!("the program exited with status {code}")),
            _ => {}
        }
        let plain_exit = processes.len() == 1 && processes.iter().all(|p| p.analysed && matches!(p.end, crate::report::End::Exited { .. }));
        if !plain_exit {
            report.processes = processes;
        }
        report.stats = Some(Stats {
            wall_ms: finished.wall.as_millis() as u64,
            peak_rss_kib: Some(finished.peak_rss_kib),
            pause_ms: Some(pause.as_secs_f64() * 1000.0),
        });
        Ok(report)
    }

    /// The fallback where the process cannot be stopped and read: the
    /// shim's own dumps, unclassified.
    fn run_with_dumps(&self, target: &Target, config: &RunConfig, spec: Spec, user: &Suppressions, dir: &Path) -> Result<Report, Error> {
        let finished = match config.after {
            // A long-running program: ask for a dump while it runs, then stop it.
            Some(after) => {
                let child = process::Child::spawn(&spec)?;
                std::thread::sleep(after);
                // SAFETY: signalling our own child.
                unsafe { libc::kill(child.pid(), libc::SIGUSR2) };
                wait_for_signal_dump(dir, child.pid(), Duration::from_secs(10))?;
                unsafe { libc::killpg(child.pid(), libc::SIGKILL) };
                child.finish()?
            }
            None => process::run(&spec)?,
        };
        let dumps = read_dumps(dir, config.after.is_some())?;
        if dumps.is_empty() {
            return Err(Error::TargetFailed {
                program: target.name.clone(),
                how: format!("{} and wrote no hook dump (it must exit through exit() or return from main)", finished.exit.describe()),
                stderr: finished.stderr_text(),
            });
        }
        let mut report = Report::new(&target.name, self.name());
        match finished.exit {
            _ if config.after.is_some() => {} // killed on purpose after the live dump
            process::Exit::Signal(sig) => report.notes.push(format!("the program was killed by {}", process::signal_name(sig))),
            _ => {
                if let Some(failure) = sample_failure(target, &finished) {
                    return Err(failure);
                }
                if let process::Exit::Code(code) = finished.exit {
                    if code != 0 {
                        report.notes.push(format!("the program exited with status {code}"));
                    }
                }
            }
        }
        report.notes.push(
            "kinds are unclassified: the process could not be stopped and read (ptrace), so the hook's dump file was used; the runtime's known one-time allocations are left out by name".into(),
        );
        let suppressions = with(user, &default_suppressions()?);
        // One symbolizer for every process: forked children share the modules.
        let mut sym = Symbolizer::new(Vec::new());
        let several = dumps.len() > 1;
        for dump in &dumps {
            sym.set_maps(dump.maps.clone());
            let mut part = report_of(dump, None, target, &suppressions, &mut sym);
            if several {
                part.leaks.iter_mut().for_each(|l| l.pid = Some(dump.pid));
            }
            merge(&mut report, part);
        }
        report.stats = Some(Stats { wall_ms: finished.wall.as_millis() as u64, peak_rss_kib: Some(finished.peak_rss_kib), pause_ms: None });
        Ok(report)
    }
}

/// A sample must succeed, as under the other backends.
fn sample_failure(target: &Target, finished: &process::Finished) -> Option<Error> {
    match finished.exit {
        process::Exit::Code(code) if code != 0 && target.sample.is_some() => Some(Error::TargetFailed {
            program: target.name.clone(),
            how: format!("under the hook exited with status {code}"),
            stderr: finished.stderr_text(),
        }),
        _ => None,
    }
}

fn default_suppressions() -> Result<Suppressions, Error> {
    Suppressions::parse("default.supp", DEFAULT_SUPPRESSIONS)
}

fn with(a: &Suppressions, b: &Suppressions) -> Suppressions {
    let mut all = a.clone();
    all.extend(b.clone());
    all
}

/// Adds one process's findings to the run's report.
fn merge(report: &mut Report, mut part: Report) {
    report.leaks.append(&mut part.leaks);
    report.bad_frees.append(&mut part.bad_frees);
    report.notes.append(&mut part.notes);
    for s in part.suppressed {
        report.count_suppressed(s);
    }
}

fn wait_for_signal_dump(dir: &Path, pid: i32, limit: Duration) -> Result<(), Error> {
    let path = dir.join(format!("hook.{pid}.dump.signal1"));
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if std::fs::read_to_string(&path).is_ok_and(|t| t.ends_with("end\n")) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(Error::TargetFailed {
        program: format!("pid {pid}"),
        how: format!("wrote no hook dump within {:.0} s of SIGUSR2 (it may block or replace that signal)", limit.as_secs_f64()),
        stderr: String::new(),
    })
}

/// The dumps in `dir`: the exit dumps, or the first signal dump of each process.
fn read_dumps(dir: &Path, live: bool) -> Result<Vec<Dump>, Error> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if live { name.ends_with(".dump.signal1") } else { name.ends_with(".dump") }
        })
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).map_err(|e| Error::io(f, e))?;
            parse_dump(&text)
        })
        .collect()
}

/// One live heap block of a dump.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DumpBlock {
    pub addr: u64,
    /// The allocator's pointer to the block: `addr` less the shim's header
    /// (and alignment); `addr` itself when not known (a dump file).
    pub base: u64,
    pub size: u64,
    pub api: String,
    pub tid: u32,
    pub pcs: Vec<u64>,
}

/// One live mapping of a dump.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DumpRegion {
    pub addr: u64,
    pub len: u64,
    pub api: String,
    pub kind: RegionKind,
    pub prot: u32,
    pub tid: u32,
    pub pcs: Vec<u64>,
}

/// One bad free of a dump.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DumpBadFree {
    pub kind: BadFreeKind,
    pub addr: u64,
    pub dealloc: String,
    pub api: Option<String>,
    pub size: u64,
    pub pcs: Vec<u64>,
    /// The allocation's stack (mismatched) or the first free's call site (double).
    pub other: Vec<u64>,
}

/// What the shim wrote for one process.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Dump {
    pub pid: u32,
    /// `exit` or `signal`.
    pub reason: String,
    pub blocks: Vec<DumpBlock>,
    pub regions: Vec<DumpRegion>,
    pub bad_frees: Vec<DumpBadFree>,
    /// Records the shim's fixed tables could not hold.
    pub dropped_regions: u64,
    pub dropped_errors: u64,
    /// Blocks whose stack did not fit the shim's table of stacks.
    pub dropped_stacks: u64,
    #[serde(skip)]
    pub maps: Vec<MapEntry>,
    pub map_lines: usize,
}

fn malformed(line: usize, message: impl Into<String>) -> Error {
    Error::MalformedOutput { tool: "the hook shim".into(), message: format!("dump line {line}: {}", message.into()) }
}

fn hex(word: &str, line: usize) -> Result<u64, Error> {
    word.strip_prefix("0x")
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .ok_or_else(|| malformed(line, format!("`{word}` is not a 0x address")))
}

fn dec<T: std::str::FromStr>(word: Option<&str>, what: &str, line: usize) -> Result<T, Error> {
    let word = word.ok_or_else(|| malformed(line, format!("missing {what}")))?;
    word.parse().map_err(|_| malformed(line, format!("{what} `{word}` is not a number")))
}

fn pcs<'a>(words: impl Iterator<Item = &'a str>, line: usize) -> Result<Vec<u64>, Error> {
    words.map(|w| hex(w, line)).collect()
}

/// Parses a dump (format: harness/hook/README.md). A dump without its final
/// `end` line was cut short and is rejected.
pub fn parse_dump(text: &str) -> Result<Dump, Error> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    match lines.next() {
        Some((_, "leaklab-hook 1")) => {}
        Some((n, other)) => return Err(malformed(n, format!("expected the header `leaklab-hook 1`, found `{other}`"))),
        None => return Err(malformed(1, "empty dump")),
    }
    let mut dump = Dump {
        pid: 0,
        reason: String::new(),
        blocks: Vec::new(),
        regions: Vec::new(),
        bad_frees: Vec::new(),
        dropped_regions: 0,
        dropped_errors: 0,
        dropped_stacks: 0,
        maps: Vec::new(),
        map_lines: 0,
    };
    let mut in_maps = false;
    let mut in_unloaded = false;
    let mut unloaded = String::new();
    let mut ended = false;
    for (n, line) in lines {
        if ended {
            return Err(malformed(n, "text after `end`"));
        }
        if line == "end" {
            ended = true;
            continue;
        }
        if in_maps && line == "unloaded" {
            in_maps = false;
            in_unloaded = true;
            continue;
        }
        if in_unloaded {
            unloaded.push_str(line);
            unloaded.push('\n');
            continue;
        }
        if in_maps {
            dump.map_lines += 1;
            match MapEntry::parse(line) {
                Some(m) => dump.maps.push(m),
                None => return Err(malformed(n, format!("not a /proc/PID/maps line: `{line}`"))),
            }
            continue;
        }
        let mut w = line.split(' ');
        match w.next() {
            Some("pid") => dump.pid = dec(w.next(), "pid", n)?,
            Some("reason") => dump.reason = w.next().unwrap_or_default().to_string(),
            Some("B") => {
                let addr = hex(w.next().unwrap_or_default(), n)?;
                let size = dec(w.next(), "size", n)?;
                let api = w.next().ok_or_else(|| malformed(n, "missing api"))?.to_string();
                let tid = dec(w.next(), "thread id", n)?;
                dump.blocks.push(DumpBlock { addr, base: addr, size, api, tid, pcs: pcs(w, n)? });
            }
            Some("R") => {
                let addr = hex(w.next().unwrap_or_default(), n)?;
                let len = dec(w.next(), "length", n)?;
                let api = w.next().ok_or_else(|| malformed(n, "missing api"))?.to_string();
                let kind = match (w.next(), w.next()) {
                    (Some("private"), Some("anon")) => RegionKind::PrivateAnon,
                    (Some("shared"), Some("anon")) => RegionKind::SharedAnon,
                    (Some("private"), Some("file")) => RegionKind::PrivateFile,
                    (Some("shared"), Some("file")) => RegionKind::SharedFile,
                    (a, b) => return Err(malformed(n, format!("unknown mapping kind {a:?} {b:?}"))),
                };
                let prot = dec(w.next(), "protection", n)?;
                let tid = dec(w.next(), "thread id", n)?;
                dump.regions.push(DumpRegion { addr, len, api, kind, prot, tid, pcs: pcs(w, n)? });
            }
            Some("F") => {
                let kind_word = w.next().unwrap_or_default();
                let kind = BadFreeKind::parse(kind_word).ok_or_else(|| malformed(n, format!("unknown bad free `{kind_word}`")))?;
                let addr = hex(w.next().unwrap_or_default(), n)?;
                let dealloc = w.next().ok_or_else(|| malformed(n, "missing deallocator"))?.to_string();
                let api = match w.next() {
                    Some("-") => None,
                    Some(a) => Some(a.to_string()),
                    None => return Err(malformed(n, "missing api")),
                };
                let size = dec(w.next(), "size", n)?;
                let rest: Vec<&str> = w.collect();
                let bar = rest.iter().position(|x| *x == "|").ok_or_else(|| malformed(n, "missing `|` between the two stacks"))?;
                dump.bad_frees.push(DumpBadFree {
                    kind,
                    addr,
                    dealloc,
                    api,
                    size,
                    pcs: pcs(rest[..bar].iter().copied(), n)?,
                    other: pcs(rest[bar + 1..].iter().copied(), n)?,
                });
            }
            Some("dropped") => match w.next() {
                Some("regions") => dump.dropped_regions = dec(w.next(), "count", n)?,
                Some("errors") => dump.dropped_errors = dec(w.next(), "count", n)?,
                Some("stacks") => dump.dropped_stacks = dec(w.next(), "count", n)?,
                other => return Err(malformed(n, format!("dropped what? {other:?}"))),
            },
            Some("maps") => in_maps = true,
            _ => return Err(malformed(n, format!("unknown record `{line}`"))),
        }
    }
    if !ended {
        return Err(malformed(text.lines().count(), "no `end` line: the dump was cut short"));
    }
    if dump.pid == 0 {
        return Err(malformed(2, "no `pid` line"));
    }
    let extra = table::unloaded_entries(&unloaded, &dump.maps);
    dump.maps.extend(extra);
    Ok(dump)
}

/// Symbolizes a dump and turns it into leaks grouped by kind and stack,
/// suppressed blocks counted and left out, and bad frees. With `kinds`
/// (from [`classify`]), each block and mapping has its kind and what only
/// the runtime holds is left out; without, they are `unclassified`.
#[must_use]
pub fn report_of(dump: &Dump, kinds: Option<&classify::Kinds>, target: &Target, suppressions: &Suppressions, sym: &mut Symbolizer) -> Report {
    let mut report = Report::new(&target.name, "hook");
    let mut stacks: BTreeMap<Vec<u64>, Vec<Frame>> = BTreeMap::new();
    let mut symbolize = |pcs: &[u64], sym: &mut Symbolizer| stacks.entry(pcs.to_vec()).or_insert_with(|| clean(sym.stack(pcs))).clone();
    let mut suppressed: Vec<Suppressed> = Vec::new();
    let mut count_suppressed = |rule: String, bytes: u64| match suppressed.iter_mut().find(|s| s.rule == rule) {
        Some(s) => {
            s.leaks += 1;
            s.bytes += bytes;
        }
        None => suppressed.push(Suppressed { rule, leaks: 1, bytes }),
    };

    // (kind, api, stack) → (bytes, blocks)
    let mut groups: Vec<(Kind, String, Vec<Frame>, u64, u64)> = Vec::new();
    for (i, b) in dump.blocks.iter().enumerate() {
        let kind = match kinds {
            Some(k) => match k.blocks.get(i).copied().flatten() {
                Some(kind) => kind,
                None => continue, // the runtime's
            },
            None => Kind::Unclassified,
        };
        let stack = symbolize(&b.pcs, sym);
        if let Some(rule) = suppressions.matching(&stack) {
            count_suppressed(format!("leak:{} ({})", rule.pattern, rule.origin), b.size);
            continue;
        }
        match groups.iter_mut().find(|g| g.0 == kind && g.1 == b.api && g.2 == stack) {
            Some(g) => {
                g.3 += b.size;
                g.4 += 1;
            }
            None => groups.push((kind, b.api.clone(), stack, b.size, 1)),
        }
    }
    for (kind, api, stack, bytes, blocks) in groups {
        let mut leak = Leak::new(kind, bytes, blocks);
        leak.api = Some(api);
        leak.site = target.site_of(&stack);
        leak.stack = stack;
        report.leaks.push(leak);
    }

    let mut regions: Vec<Leak> = Vec::new();
    for (i, r) in dump.regions.iter().enumerate() {
        let kind = match kinds {
            Some(k) => match k.regions.get(i).copied().flatten() {
                Some(kind) => kind,
                None => continue,
            },
            None => Kind::Unclassified,
        };
        let stack = symbolize(&r.pcs, sym);
        if let Some(rule) = suppressions.matching(&stack) {
            count_suppressed(format!("leak:{} ({})", rule.pattern, rule.origin), r.len);
            continue;
        }
        let entry = sym.entry(r.addr);
        let flags = entry.map(|e| e.perms.clone());
        let path = match r.kind {
            // A file unlinked since (a temporary's random name) is left unnamed.
            RegionKind::PrivateFile | RegionKind::SharedFile => entry.and_then(|e| e.file()).map(str::to_string),
            _ => None,
        };
        if let Some(l) = regions
            .iter_mut()
            .find(|l| l.kind == kind && l.stack == stack && l.region.as_ref().is_some_and(|g| g.kind == r.kind && g.flags == flags))
        {
            l.bytes += r.len;
            l.blocks += 1;
            continue;
        }
        let mut leak = Leak::new(kind, r.len, 1);
        leak.api = Some(r.api.clone());
        leak.site = target.site_of(&stack);
        leak.stack = stack;
        leak.region = Some(Region { kind: r.kind, flags, path });
        regions.push(leak);
    }
    report.leaks.extend(regions);
    report.suppressed = suppressed;
    for f in &dump.bad_frees {
        let stack = symbolize(&f.pcs, sym);
        let other_stack = symbolize(&f.other, sym);
        report.bad_frees.push(BadFree {
            kind: f.kind,
            dealloc: f.dealloc.clone(),
            api: f.api.clone(),
            site: target.site_of(&stack),
            other_site: target.site_of(&other_stack),
            stack,
            other_stack,
        });
    }
    if dump.dropped_regions > 0 {
        report.notes.push(format!("the shim's table of mappings was full: {} mappings were not tracked", dump.dropped_regions));
    }
    if dump.dropped_stacks > 0 {
        report.notes.push(format!("the shim's table of stacks was full: {} blocks were recorded without a stack", dump.dropped_stacks));
    }
    if dump.dropped_errors > 0 {
        report.notes.push(format!("the shim's table of bad frees was full: {} were not recorded", dump.dropped_errors));
    }
    report
}

/// Drops frames the walk cannot vouch for: nothing past a frame outside
/// every file-backed module (a broken chain read a stale word, e.g. an
/// address on the stack or the heap).
fn clean(stack: Vec<Frame>) -> Vec<Frame> {
    let end = stack.iter().position(|f| !f.object.as_deref().is_some_and(|o| o.starts_with('/'))).unwrap_or(stack.len());
    let mut stack = stack;
    stack.truncate(end.max(1));
    stack
}
