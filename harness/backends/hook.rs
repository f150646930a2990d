//! `hook`: an LD_PRELOAD shim (harness/hook/leaklab_hook.c, built by
//! build.rs) replaces malloc and friends, operator new/delete and
//! mmap/munmap/mremap, keeps every live block with a frame-pointer stack,
//! checks every free, and dumps what is outstanding at exit (or on
//! LEAKLAB_HOOK_SIGNAL) with /proc/self/maps. This module runs the target
//! with the shim, parses the dumps (one per process: forked children write
//! their own), symbolizes them, applies suppressions and groups blocks by
//! stack. It cannot tell a lost block from a reachable one: leaks are
//! `unclassified`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backend::{Availability, Backend, RunConfig, Target};
use crate::error::Error;
use crate::process::{self, Spec};
use crate::report::{BadFree, BadFreeKind, Frame, Kind, Leak, Region, RegionKind, Report, Stats};
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
        let mut suppressions = Suppressions::parse("default.supp", DEFAULT_SUPPRESSIONS)?;
        for file in &config.suppressions {
            suppressions.extend(Suppressions::load(file)?);
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
            .env_remove("LEAKLAB_CHECKPOINT");
        let finished = match config.after {
            // A long-running program: ask for a dump while it runs, then stop it.
            Some(after) => {
                let child = process::Child::spawn(&spec)?;
                std::thread::sleep(after);
                // SAFETY: signalling our own child.
                unsafe { libc::kill(child.pid(), libc::SIGUSR2) };
                wait_for_signal_dump(dir.path(), child.pid(), Duration::from_secs(10))?;
                unsafe { libc::killpg(child.pid(), libc::SIGKILL) };
                child.finish()?
            }
            None => process::run(&spec)?,
        };
        let dumps = read_dumps(dir.path(), config.after.is_some())?;
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
            // A sample must succeed, as under the other backends.
            process::Exit::Code(code) if code != 0 && target.sample.is_some() => {
                return Err(Error::TargetFailed {
                    program: target.name.clone(),
                    how: format!("under the hook exited with status {code}"),
                    stderr: finished.stderr_text(),
                })
            }
            process::Exit::Code(code) if code != 0 => report.notes.push(format!("the program exited with status {code}")),
            process::Exit::Code(_) => {}
        }
        // One symbolizer for every process: forked children share the modules.
        let mut sym = Symbolizer::new(Vec::new());
        for dump in &dumps {
            sym.set_maps(dump.maps.clone());
            let mut part = report_of(dump, target, &suppressions, &mut sym);
            report.leaks.append(&mut part.leaks);
            report.bad_frees.append(&mut part.bad_frees);
            report.notes.append(&mut part.notes);
        }
        report.stats = Some(Stats { wall_ms: finished.wall.as_millis() as u64, peak_rss_kib: Some(finished.peak_rss_kib), pause_ms: None });
        Ok(report)
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
    let mut ended = false;
    for (n, line) in lines {
        if ended {
            return Err(malformed(n, "text after `end`"));
        }
        if line == "end" {
            ended = true;
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
                dump.blocks.push(DumpBlock { addr, size, api, tid, pcs: pcs(w, n)? });
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
    Ok(dump)
}

/// Symbolizes a dump and turns it into leaks grouped by stack, suppressed
/// blocks left out, and bad frees.
#[must_use]
pub fn report_of(dump: &Dump, target: &Target, suppressions: &Suppressions, sym: &mut Symbolizer) -> Report {
    let mut report = Report::new(&target.name, "hook");
    let mut stacks: BTreeMap<Vec<u64>, Vec<Frame>> = BTreeMap::new();
    let mut symbolize = |pcs: &[u64], sym: &mut Symbolizer| stacks.entry(pcs.to_vec()).or_insert_with(|| clean(sym.stack(pcs))).clone();

    // (api, stack) → (bytes, blocks)
    let mut groups: Vec<(String, Vec<Frame>, u64, u64)> = Vec::new();
    for b in &dump.blocks {
        let stack = symbolize(&b.pcs, sym);
        if suppressions.matching(&stack).is_some() {
            continue;
        }
        match groups.iter_mut().find(|g| g.0 == b.api && g.1 == stack) {
            Some(g) => {
                g.2 += b.size;
                g.3 += 1;
            }
            None => groups.push((b.api.clone(), stack, b.size, 1)),
        }
    }
    for (api, stack, bytes, blocks) in groups {
        let mut leak = Leak::new(Kind::Unclassified, bytes, blocks);
        leak.api = Some(api);
        leak.site = target.site_of(&stack);
        leak.stack = stack;
        report.leaks.push(leak);
    }

    let mut regions: Vec<Leak> = Vec::new();
    for r in &dump.regions {
        let stack = symbolize(&r.pcs, sym);
        if suppressions.matching(&stack).is_some() {
            continue;
        }
        let entry = sym.entry(r.addr);
        let flags = entry.map(|e| e.perms.clone());
        let path = match r.kind {
            // A file unlinked since (a temporary's random name) is left unnamed.
            RegionKind::PrivateFile | RegionKind::SharedFile => entry.and_then(|e| e.file()).map(str::to_string),
            _ => None,
        };
        if let Some(l) = regions.iter_mut().find(|l| l.stack == stack && l.region.as_ref().is_some_and(|g| g.kind == r.kind && g.flags == flags)) {
            l.bytes += r.len;
            l.blocks += 1;
            continue;
        }
        let mut leak = Leak::new(Kind::Unclassified, r.len, 1);
        leak.api = Some(r.api.clone());
        leak.site = target.site_of(&stack);
        leak.stack = stack;
        leak.region = Some(Region { kind: r.kind, flags, path });
        regions.push(leak);
    }
    report.leaks.extend(regions);

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
