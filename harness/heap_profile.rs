//! Heap profiles as the pprof family writes them, read without pprof or
//! jeprof: jemalloc's `heap_v2` (`prof_final`) and gperftools' legacy
//! `heap profile:` format (the heap checker's leak dump). Both list, per
//! stack of return addresses, the live objects and bytes, then the
//! process's maps after `MAPPED_LIBRARIES:`; the jemalloc and tcmalloc
//! backends symbolize the stacks with `symbolize::Symbolizer` and group them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::backend::{RunConfig, Target};
use crate::backends::lsan::{parse_events, ProcEvent};
use crate::backends::valgrind::api_name;
use crate::error::Error;
use crate::process::Spec;
use crate::report::{End, Kind, Leak, Process, Report, Stats, Suppressed};
use crate::suppressions::Suppressions;
use crate::symbolize::{MapEntry, Symbolizer};

/// One stack's live objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub objects: u64,
    pub bytes: u64,
    /// Return addresses, innermost first (jemalloc's include its own frames).
    pub pcs: Vec<u64>,
}

/// A whole profile: the records with live objects, and the maps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Profile {
    pub records: Vec<Record>,
    pub maps: Vec<MapEntry>,
}

fn malformed(tool: &str, message: String) -> Error {
    Error::MalformedOutput { tool: tool.to_string(), message }
}

/// `objects: bytes [aobjects: abytes]` (either format's counts, after a `t*:` in jemalloc's).
fn counts(text: &str) -> Option<(u64, u64)> {
    let (live, _accumulated) = text.split_once('[')?;
    let (objects, bytes) = live.split_once(':')?;
    Some((objects.trim().parse().ok()?, bytes.trim().parse().ok()?))
}

fn addresses(text: &str) -> Option<Vec<u64>> {
    text.split_whitespace().map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok()).collect()
}

/// The maps after `MAPPED_LIBRARIES:`.
fn maps(lines: &[&str]) -> Vec<MapEntry> {
    lines.iter().filter_map(|l| MapEntry::parse(l.trim_end())).collect()
}

/// Parses either format, checking that the records add up to the header's
/// totals (a profile cut short by a crash while it was written does not).
pub fn parse(text: &str) -> Result<Profile, Error> {
    let lines: Vec<&str> = text.lines().collect();
    let first = lines.first().copied().unwrap_or_default();
    let split = lines.iter().position(|l| l.trim() == "MAPPED_LIBRARIES:");
    let Some(split) = split else {
        let tool = if first.starts_with("heap_v2/") { "jemalloc" } else { "gperftools" };
        return Err(malformed(tool, "no MAPPED_LIBRARIES section: the profile was cut short".into()));
    };
    let (body, map_lines) = (&lines[..split], &lines[split + 1..]);
    let (records, total) = if first.starts_with("heap_v2/") {
        parse_jemalloc(body)?
    } else if first.starts_with("heap profile:") {
        parse_gperftools(body)?
    } else {
        return Err(malformed("heap profile", format!("neither jemalloc's `heap_v2/` nor gperftools' `heap profile:` header: `{first}`")));
    };
    let sum = records.iter().fold((0, 0), |(o, b), r| (o + r.objects, b + r.bytes));
    if sum != total {
        return Err(malformed(
            "heap profile",
            format!("the header says {} objects of {} bytes, the records add up to {} of {}", total.0, total.1, sum.0, sum.1),
        ));
    }
    Ok(Profile { records: records.into_iter().filter(|r| r.objects > 0).collect(), maps: maps(map_lines) })
}

/// `heap_v2/LG_SAMPLE`, `  t*: N: B [..]` (the totals), per-thread lines,
/// then per stack `@ 0x.. 0x..` and its `t*:` line.
fn parse_jemalloc(body: &[&str]) -> Result<(Vec<Record>, (u64, u64)), Error> {
    let bad = |n: usize, what: &str| malformed("jemalloc", format!("heap profile line {}: {what}: `{}`", n + 1, body[n]));
    let mut total = None;
    let mut records: Vec<Record> = Vec::new();
    let mut pending: Option<Vec<u64>> = None;
    for (n, line) in body.iter().enumerate().skip(1) {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('@') {
            if pending.is_some() {
                return Err(bad(n, "a stack without its counts"));
            }
            pending = Some(addresses(rest).ok_or_else(|| bad(n, "not an address"))?);
        } else if let Some(rest) = line.strip_prefix("t*:") {
            let (objects, bytes) = counts(rest).ok_or_else(|| bad(n, "bad counts"))?;
            match pending.take() {
                Some(pcs) => records.push(Record { objects, bytes, pcs }),
                None if total.is_none() && records.is_empty() => total = Some((objects, bytes)),
                None => return Err(bad(n, "counts without a stack")),
            }
        } else if !line.starts_with('t') {
            return Err(bad(n, "not a stack, nor counts"));
        }
    }
    Ok((records, total.ok_or_else(|| malformed("jemalloc", "no `t*:` totals after the header".into()))?))
}

/// `heap profile: N: B [..] @ heapprofile`, then `N: B [..] @ 0x.. 0x..` per record.
fn parse_gperftools(body: &[&str]) -> Result<(Vec<Record>, (u64, u64)), Error> {
    let bad = |n: usize, what: &str| malformed("gperftools", format!("heap profile line {}: {what}: `{}`", n + 1, body[n]));
    let header = body[0].trim_start_matches("heap profile:");
    let total = header.split_once('@').and_then(|(c, _)| counts(c)).ok_or_else(|| bad(0, "bad totals"))?;
    let mut records = Vec::new();
    for (n, line) in body.iter().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let (c, stack) = line.split_once('@').ok_or_else(|| bad(n, "no `@` before the stack"))?;
        let (objects, bytes) = counts(c).ok_or_else(|| bad(n, "bad counts"))?;
        let pcs = addresses(stack).ok_or_else(|| bad(n, "not an address"))?;
        records.push(Record { objects, bytes, pcs });
    }
    Ok((records, total))
}

/// How a preloaded allocator that dumps heap profiles is run (the
/// jemalloc and tcmalloc backends).
pub struct Profiler<'a> {
    /// The backend's name, for the report.
    pub backend: &'static str,
    /// The allocator's library, preloaded first.
    pub library: &'a Path,
    /// Its settings (MALLOC_CONF, HEAPCHECK, ...), given the run's scratch directory.
    pub env: Vec<(&'static str, String)>,
    /// Which dump file is whose: a file name to the pid that wrote it.
    pub dump_pid: fn(&str) -> Option<u32>,
    /// Runtime allocations kept until exit by design, left out by name
    /// (besides the user's `--suppressions`).
    pub defaults: &'a Suppressions,
    /// Why a process that left no dump was not analysed, given how it
    /// ended; None when no dump is the tool's clean result.
    pub why_unchecked: fn(&ProcessEnd) -> Option<String>,
    /// Where the program is laid out (a conservative checker's verdict on
    /// a sample must not depend on ASLR).
    pub layout: crate::process::Layout,
}

/// What the event file of a process says about its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessEnd {
    pub end: End,
    /// It began as a forked copy (no image of its own was started).
    pub forked: bool,
    /// exit() ran in it.
    pub exited: bool,
}

/// Runs `target` with the allocator preloaded (and leaklab's event preload,
/// harness/native/lsan_preload.c, whose checks do nothing without LSan),
/// reads each process's dump and event file from the run's scratch
/// directory, and reports: the leaks of every process that left a dump
/// (`unclassified` unless `kind` says otherwise), and the processes when
/// the run was more than one program that simply exited.
pub fn run(profiler: &Profiler, target: &Target, config: &RunConfig, kind: Kind) -> Result<Report, Error> {
    let program = match target.sample {
        Some(s) => s.executable("plain")?.to_path_buf(),
        None => {
            if crate::backend::is_statically_linked(&target.program) {
                return Err(Error::Usage(format!(
                    "{} is statically linked: LD_PRELOAD cannot bring {}'s allocator into it",
                    target.program.display(),
                    profiler.backend
                )));
            }
            target.program.clone()
        }
    };
    let mut suppressions = profiler.defaults.clone();
    for file in &config.suppressions {
        suppressions.extend(Suppressions::load(file)?);
    }
    let dir = crate::process::scratch()?;
    let procs = dir.path().join("proc");
    let mut preload = vec![profiler.library.display().to_string(), crate::backends::lsan::preload_library()?.display().to_string()];
    if let Ok(existing) = std::env::var("LD_PRELOAD") {
        preload.extend(existing.split([':', ' ']).filter(|s| !s.is_empty()).map(str::to_string));
    }
    let mut spec = Spec::new(&program, config.timeout)
        .args(&target.args)
        .io(config.io)
        .layout(profiler.layout)
        .env("LD_PRELOAD", preload.join(":"))
        .env("LEAKLAB_LSAN_PROCS", &procs)
        // Dumps happen only at exit: a checkpoint stop would gain nothing.
        .env_remove("LEAKLAB_CHECKPOINT")
        .env_remove("LEAKLAB_LSAN_AFTER_MS");
    for (name, value) in &profiler.env {
        spec = spec.env(name, value.replace("{scratch}", &dir.path().display().to_string()));
    }
    let child = crate::process::Child::spawn(&spec)?;
    let main_pid = child.pid() as u32;
    let finished = child.finish()?;

    let mut events: BTreeMap<u32, Vec<ProcEvent>> = BTreeMap::new();
    let mut dumps: BTreeMap<u32, PathBuf> = BTreeMap::new();
    events.entry(main_pid).or_default();
    for entry in std::fs::read_dir(dir.path()).map_err(|e| Error::io(dir.path(), e))? {
        let path = entry.map_err(|e| Error::io(dir.path(), e))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
        if let Some(pid) = name.strip_prefix("proc.").and_then(|p| p.parse::<u32>().ok()) {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            events.insert(pid, parse_events(&text));
        } else if let Some(pid) = (profiler.dump_pid)(&name) {
            events.entry(pid).or_default();
            dumps.insert(pid, path);
        }
    }

    let mut report = Report::new(&target.name, profiler.backend);
    let several = events.len() > 1;
    let mut sym = Symbolizer::new(Vec::new());
    let mut processes = Vec::new();
    let mut unchecked: Vec<String> = Vec::new();
    for (&pid, evs) in &events {
        let mut end = process_end(evs);
        if pid == main_pid {
            end.end = match finished.exit {
                crate::process::Exit::Signal(sig) => End::Killed { signal: crate::process::signal_name(sig) },
                crate::process::Exit::Code(code) => End::Exited { code },
            };
        }
        let program = evs
            .iter()
            .rev()
            .find_map(|e| match e {
                ProcEvent::Start { program, .. } => Some(program.clone()),
                _ => None,
            })
            .unwrap_or_else(|| target.name.clone());
        let parent = evs.iter().find_map(|e| match e {
            ProcEvent::Start { parent, .. } | ProcEvent::Fork { parent } => Some(*parent),
            _ => None,
        });
        let analysed = match dumps.get(&pid) {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
                let profile = parse(&text)?;
                sym.set_maps(profile.maps.clone());
                for mut leak in leaks(&profile, &mut sym, kind) {
                    // A stack wholly inside the C/C++ runtime (a library's
                    // static constructor, such as libstdc++'s exception
                    // pool) is the runtime's own allocation, not the program's.
                    let runtime_only = !leak.stack.is_empty()
                        && leak.stack.iter().all(|f| f.object.as_deref().is_some_and(crate::backend::is_runtime_object));
                    let rule = match suppressions.matching(&leak.stack) {
                        Some(rule) => Some(format!("leak:{} ({})", rule.pattern, rule.origin)),
                        None if runtime_only => Some("the C/C++ runtime's own (no frame outside it)".to_string()),
                        None => None,
                    };
                    if let Some(rule) = rule {
                        report.count_suppressed(Suppressed { rule, leaks: leak.blocks, bytes: leak.bytes });
                        continue;
                    }
                    leak.site = target.site_of(&leak.stack);
                    leak.pid = several.then_some(pid);
                    report.leaks.push(leak);
                }
                true
            }
            None => match (profiler.why_unchecked)(&end) {
                Some(why) => {
                    unchecked.push(format!("{program}: {why}"));
                    false
                }
                None => true,
            },
        };
        let images = evs.iter().filter(|e| matches!(e, ProcEvent::Start { .. })).count();
        for _ in 1..images {
            // An image replaced by exec never reaches its exit-time dump.
            unchecked.push(format!("{program}: an earlier image exec'd it, before any dump"));
        }
        processes.push(Process { pid, parent: parent.filter(|p| events.contains_key(p)), program, end: end.end, analysed });
    }
    unchecked.sort();
    unchecked.dedup();
    for u in unchecked {
        report.notes.push(format!("a process was not analysed: {u}"));
    }
    if several || processes.iter().any(|p| !p.analysed || !matches!(p.end, End::Exited { .. })) {
        report.processes = processes;
    }
    report.stats = Some(Stats { wall_ms: finished.wall.as_millis() as u64, peak_rss_kib: Some(finished.peak_rss_kib), pause_ms: None });
    Ok(report)
}

fn process_end(events: &[ProcEvent]) -> ProcessEnd {
    let mut end = ProcessEnd { end: End::Running, forked: false, exited: false };
    for e in events {
        match e {
            ProcEvent::Start { .. } => end.forked = false,
            ProcEvent::Fork { .. } => end.forked = true,
            ProcEvent::Exit { status } => {
                end.exited = true;
                end.end = End::Exited { code: *status };
            }
            ProcEvent::Signal { signal } => end.end = End::Killed { signal: crate::process::signal_name(*signal) },
            ProcEvent::After => {}
        }
    }
    end
}

/// The profile's records as leaks, one per distinct stack. The allocator's
/// own frames at the top of a stack are dropped; the outermost of them
/// names the API (`malloc`, `operator new[]`).
fn leaks(profile: &Profile, sym: &mut Symbolizer, kind: Kind) -> Vec<Leak> {
    let mut out: Vec<Leak> = Vec::new();
    for record in &profile.records {
        let mut stack = sym.stack(&record.pcs);
        let own = stack.iter().take_while(|f| f.object.as_deref().is_some_and(is_allocator_object)).count();
        let api = match own {
            0 => None,
            n => stack[n - 1].function.as_deref().map(api_name),
        };
        stack.drain(..own);
        match out.iter_mut().find(|l| l.stack == stack) {
            Some(l) => {
                l.bytes += record.bytes;
                l.blocks += record.objects;
            }
            None => {
                let mut leak = Leak::new(kind, record.bytes, record.objects);
                leak.api = api;
                leak.stack = stack;
                out.push(leak);
            }
        }
    }
    out
}

/// A module of one of the preloaded allocators.
fn is_allocator_object(object: &str) -> bool {
    let name = object.rsplit('/').next().unwrap_or(object);
    name.starts_with("libjemalloc") || name.starts_with("libtcmalloc")
}
