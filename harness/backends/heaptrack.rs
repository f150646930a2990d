//! heaptrack (KDE's heap profiler, Debian's heaptrack 1.4): its preload
//! library records every allocation and free with a stack (libunwind,
//! DWARF unwinding, so the caller of strdup is kept). What heaptrack calls
//! leaked is every block not freed when the process ends: it has no notion
//! of reachability, so every leak is `unclassified`.
//!
//! The `heaptrack` script is not used: it prints its own messages on the
//! program's stdout. leaklab does what the script does (LD_PRELOAD of
//! libheaptrack_preload.so, DUMP_HEAPTRACK_OUTPUT naming the recording),
//! with the recording written to a file in the run's scratch directory,
//! and reads that raw recording itself (the script pipes it through
//! heaptrack_interpret): its `m` lines give each module's load base, so
//! every instruction pointer is symbolized by leaklab's own symbolizer at
//! its module's link-time address, and its `+`/`-` lines give every block
//! (heaptrack_print would give merged stacks and no per-block sizes).
//!
//! heaptrack does not follow forks: its preload stops recording in a
//! forked child (and an exec'd image gets no recording of its own), so
//! those processes are listed as not analysed. The runtime's one-time
//! allocations (stdio buffers, ...) are left out by the hook's default
//! suppressions, as heaptrack_print's built-in ones leave them out.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::backend::{Availability, Backend, RunConfig, Target};
use crate::backends::preloaded::{self, Preload, Run};
use crate::error::Error;
use crate::report::{End, Frame, Kind, Leak, Report, Stats, Suppressed};
use crate::suppressions::Suppressions;
use crate::symbolize::Symbolizer;

pub struct Heaptrack;

/// libheaptrack_preload.so, found from the `heaptrack` script as the script
/// finds it (`../lib/heaptrack/` next to its own directory).
fn preload_library() -> Result<PathBuf, String> {
    let script = which::which("heaptrack").map_err(|_| "heaptrack is not installed (no `heaptrack` in PATH)".to_string())?;
    let script = script.canonicalize().unwrap_or(script);
    let lib = script.parent().unwrap_or(Path::new("/")).join("../lib/heaptrack/libheaptrack_preload.so");
    lib.canonicalize().map_err(|_| format!("heaptrack's preload library {} is missing", lib.display()))
}

impl Backend for Heaptrack {
    fn name(&self) -> &'static str {
        "heaptrack"
    }

    fn summary(&self) -> &'static str {
        "heaptrack: a preloaded library records every allocation with its stack; whatever is not freed at exit is leaked (no reachability)"
    }

    fn availability(&self) -> Availability {
        match preload_library() {
            Ok(_) => Availability::Ready,
            Err(reason) => Availability::Unavailable { reason, fix: "apt-get install -y heaptrack".into() },
        }
    }

    fn debian_packages(&self) -> &'static [&'static str] {
        // libc6-dbg names libc's frames (strdup, stdio), which the runtime
        // suppressions match.
        &["heaptrack", "libc6-dbg"]
    }

    fn run(&self, target: &Target, config: &RunConfig) -> Result<Report, Error> {
        if let Some(report) = preloaded::statically_linked(target, self.name(), "heaptrack") {
            return Ok(report);
        }
        let library = preload_library().map_err(|reason| Error::Unavailable {
            backend: self.name().into(),
            reason,
            fix: "apt-get install -y heaptrack".into(),
        })?;
        let mut suppressions = Suppressions::parse("hook/default.supp", crate::backends::hook::DEFAULT_SUPPRESSIONS)?;
        for file in &config.suppressions {
            suppressions.extend(Suppressions::load(file)?);
        }
        let dir = crate::process::scratch()?;
        let recording = dir.path().join("heaptrack.raw");
        let libraries = [library];
        let env = [("DUMP_HEAPTRACK_OUTPUT", recording.clone().into_os_string())];
        let run = preloaded::run(target, config, dir.path(), &Preload { libraries: &libraries, env: &env })?;
        run.check_sample_exit(target, "heaptrack")?;
        let text = std::fs::read(&recording).map_err(|e| Error::io(&recording, e))?;
        // A process killed by a signal takes heaptrack's unwritten buffer
        // with it: an empty recording is then what happened, not a fault of
        // the tool (the program is listed as killed and not analysed).
        let killed_early = text.is_empty() && matches!(run.finished.exit, crate::process::Exit::Signal(_));
        let parsed = if killed_early {
            Recording::default()
        } else {
            parse_recording(&String::from_utf8_lossy(&text))
                .map_err(|message| Error::MalformedOutput { tool: format!("heaptrack ({})", recording.display()), message })?
        };
        let mut report = report_of(target, &run, &parsed, &suppressions);
        if killed_early {
            report.notes.push("heaptrack's recording is empty: the program was killed before heaptrack wrote it out".into());
        }
        report.stats = Some(Stats { wall_ms: run.finished.wall.as_millis() as u64, peak_rss_kib: Some(run.finished.peak_rss_kib), pause_ms: None });
        Ok(report)
    }
}

fn report_of(target: &Target, run: &Run, recording: &Recording, suppressions: &Suppressions) -> Report {
    let mut report = Report::new(&target.name, "heaptrack");
    // heaptrack records the program's first image only, and its recording
    // is complete when that image ended through exit() (heaptrack's writer
    // is buffered: a crash or a kill cuts the last of it off).
    let processes = run.processes(target, |p| p.pid == run.pid && matches!(p.end, End::Exited { .. }));
    let several = processes.len() > 1;
    let mut sym = Symbolizer::new(Vec::new());
    let mut groups: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
    for &(size, trace) in recording.live.values() {
        let g = groups.entry(trace).or_default();
        g.0 += size;
        g.1 += 1;
    }
    for (trace, (bytes, blocks)) in groups {
        let stack: Vec<Frame> = recording.stack(trace).into_iter().flat_map(|ip| recording.frames(ip, &mut sym)).collect();
        if let Some(rule) = suppressions.matching(&stack) {
            let rule = format!("leak:{} ({})", rule.pattern, rule.origin);
            report.count_suppressed(Suppressed { rule, leaks: blocks, bytes });
            continue;
        }
        let mut leak = Leak::new(Kind::Unclassified, bytes, blocks);
        // heaptrack's stacks start at the allocator's caller; only a
        // runtime function that allocates (strdup, operator new) names the API.
        leak.api = preloaded::runtime_api(&stack);
        leak.site = target.site_of(&stack);
        leak.stack = stack;
        leak.pid = several.then_some(run.pid);
        report.leaks.push(leak);
    }
    report.notes.extend(preloaded::unanalysed_notes(&processes, "heaptrack", |p| match &p.end {
        End::Exec { program } => format!("it exec'd {program}; heaptrack records an exec'd image only when started on it"),
        _ if p.pid != run.pid => "heaptrack stops recording in a forked child".into(),
        End::Killed { signal } => format!("killed by {signal}: heaptrack's recording of its last moments is cut short (the blocks listed are those recorded)"),
        _ => "it ended without exit(), so heaptrack's recording is cut short".into(),
    }));
    if !Run::simple(&processes) {
        report.processes = processes;
    }
    report
}

/// heaptrack's raw recording, as far as leaks need it.
#[derive(Debug, Default)]
struct Recording {
    /// (file, load base, [(vaddr, memsz)]) of each module ever loaded.
    modules: Vec<(String, u64, Vec<(u64, u64)>)>,
    /// Trace node i+1: (instruction pointer, parent node); node 0 is the root.
    traces: Vec<(u64, usize)>,
    /// Blocks not freed: pointer → (size, trace node).
    live: HashMap<u64, (u64, usize)>,
}

impl Recording {
    /// The instruction pointers of a trace node, innermost first.
    fn stack(&self, mut node: usize) -> Vec<u64> {
        let mut ips = Vec::new();
        while node != 0 && ips.len() < 256 {
            let Some(&(ip, parent)) = self.traces.get(node - 1) else { break };
            ips.push(ip);
            node = parent;
        }
        ips
    }

    fn frames(&self, ip: u64, sym: &mut Symbolizer) -> Vec<Frame> {
        let module = self.modules.iter().rev().find(|(_, base, segments)| segments.iter().any(|&(v, size)| base + v <= ip && ip < base + v + size));
        match module {
            Some((file, base, _)) if file.starts_with('/') => sym.frames_in(file, ip - base),
            Some((file, ..)) => vec![Frame { object: Some(file.clone()), ..Frame::default() }],
            None => vec![Frame::default()],
        }
    }
}

fn hex(word: Option<&str>, what: &str, line: &str) -> Result<u64, String> {
    word.and_then(|w| u64::from_str_radix(w, 16).ok()).ok_or_else(|| format!("bad {what} in `{line}`"))
}

/// Parses the lines leaks need: `x EXE`, `m LEN NAME BASE (VADDR MEMSZ)*`,
/// `t IP PARENT`, `+ SIZE TRACE PTR`, `- PTR` (all numbers hexadecimal;
/// LEN is the length of NAME, which may contain spaces).
fn parse_recording(text: &str) -> Result<Recording, String> {
    let mut r = Recording::default();
    let mut exe = String::new();
    let mut version_seen = false;
    for line in text.lines() {
        let Some((op, rest)) = line.split_once(' ') else { continue };
        let mut words = rest.split(' ');
        match op {
            "v" => {
                let format = words.nth(1).and_then(|w| u64::from_str_radix(w, 16).ok());
                if format != Some(3) {
                    return Err(format!("recording format {format:?} in `{line}`; leaklab reads heaptrack 1.4's format 3"));
                }
                version_seen = true;
            }
            "x" => exe = rest.split_once(' ').map_or("", |(_, p)| p).to_string(),
            "m" => {
                let (len, rest) = rest.split_once(' ').ok_or_else(|| format!("bad module line `{line}`"))?;
                let len = usize::from_str_radix(len, 16).map_err(|_| format!("bad module line `{line}`"))?;
                let name = rest.get(..len).ok_or_else(|| format!("bad module name in `{line}`"))?;
                if name == "-" {
                    continue; // the module list changed: new `m` lines follow
                }
                let mut numbers = rest[len..].split_whitespace();
                let base = hex(numbers.next(), "module base", line)?;
                let values: Vec<u64> = numbers.map(|w| u64::from_str_radix(w, 16)).collect::<Result<_, _>>().map_err(|_| format!("bad segment in `{line}`"))?;
                let segments = values.chunks(2).filter(|c| c.len() == 2).map(|c| (c[0], c[1])).collect();
                let file = if name == "x" { exe.clone() } else { name.to_string() };
                r.modules.push((file, base, segments));
            }
            "t" => {
                let ip = hex(words.next(), "instruction pointer", line)?;
                let parent = hex(words.next(), "trace parent", line)? as usize;
                r.traces.push((ip, parent));
            }
            "+" => {
                let size = hex(words.next(), "size", line)?;
                let trace = hex(words.next(), "trace", line)? as usize;
                let ptr = hex(words.next(), "pointer", line)?;
                if trace > r.traces.len() {
                    return Err(format!("allocation of unknown trace {trace:x} in `{line}`"));
                }
                r.live.insert(ptr, (size, trace));
            }
            "-" => {
                r.live.remove(&hex(words.next(), "pointer", line)?);
            }
            _ => {}
        }
    }
    if !version_seen {
        return Err("no `v` line: the recording is empty or cut short".into());
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_freed_is_not_live_and_stacks_walk_to_the_root() {
        let r = parse_recording("v 10400 3\nx 3 /bin/p\nm 1 x 1000 0 2000\nt 1100 0\nt 1200 1\n+ c 2 55\n+ 10 1 66\n- 66\n").unwrap();
        assert_eq!(r.live.len(), 1);
        assert_eq!(r.stack(2), vec![0x1200, 0x1100]);
        assert_eq!(r.modules[0], ("/bin/p".to_string(), 0x1000, vec![(0, 0x2000)]));
    }
}
