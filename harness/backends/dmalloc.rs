//! dmalloc (Debian's libdmalloc5): a replacement malloc, preloaded, that
//! checks every free against its own table and, at exit, logs each block
//! not freed (`log-non-free`): `not freed: '0xPTR|s1' (N bytes) from 'WHERE'`,
//! followed (`log-nonfree-space`) by its first 20 bytes, from which a
//! block's text is read as the ptrace scan reads it (`string_prefix`).
//!
//! The threaded C++ build (libdmallocthcxx) is preloaded: it locks for
//! threads and replaces operator new and delete too. `check-fence` checks
//! the fence-posts around each block at free; `log-trans` (one line per
//! call) stays off. Its log goes to a file per process (`log=DIR/dmalloc.%p`),
//! never to the program's stderr (`print-messages` off).
//!
//! WHERE is `file:line` only in a program rebuilt against dmalloc.h; for a
//! preloaded library dmalloc records no return address on x86-64
//! (`unknown`), so its findings have sizes and counts but no stack: they
//! are matched by shape (`Matching::ByShape`), and the runtime's one-time
//! blocks (stdio's buffers, libstdc++'s emergency pool, a thread's TLS)
//! cannot be told from the program's. For the same reason its bad frees
//! (double, invalid) are reported but cannot be matched to a line, so
//! `checks_frees` stays off.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use crate::backend::{Availability, Backend, Matching, RunConfig, Target};
use crate::backends::preloaded::{self, Preload, Run};
use crate::error::Error;
use crate::scan::group::string_prefix;
use crate::report::{BadFree, BadFreeKind, End, Kind, Leak, MemoryError, Report, Site, Stats};

pub struct Dmalloc;

const LIBRARY: &str = "libdmallocthcxx.so.5";

pub(crate) fn library() -> Option<PathBuf> {
    ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib/x86_64-linux-gnu"].iter().map(|d| Path::new(d).join(LIBRARY)).find(|p| p.is_file())
}

impl Backend for Dmalloc {
    fn name(&self) -> &'static str {
        "dmalloc"
    }

    fn summary(&self) -> &'static str {
        "dmalloc: a preloaded debugging malloc checks every free and logs the blocks not freed at exit (sizes, no stacks)"
    }

    fn availability(&self) -> Availability {
        if library().is_some() {
            Availability::Ready
        } else {
            Availability::Unavailable { reason: format!("dmalloc's {LIBRARY} is not installed"), fix: "apt-get install -y libdmalloc5".into() }
        }
    }

    fn matching(&self) -> Matching {
        Matching::ByShape
    }

    fn debian_packages(&self) -> &'static [&'static str] {
        &["libdmalloc5"]
    }

    fn run(&self, target: &Target, config: &RunConfig) -> Result<Report, Error> {
        if let Some(report) = preloaded::statically_linked(target, self.name(), "dmalloc") {
            return Ok(report);
        }
        let library = library().ok_or_else(|| Error::Unavailable {
            backend: self.name().into(),
            reason: format!("{LIBRARY} not found"),
            fix: "apt-get install -y libdmalloc5".into(),
        })?;
        let dir = crate::process::scratch()?;
        let options = format!("log-stats,log-non-free,log-nonfree-space,check-fence,log={}", dir.path().join("dmalloc.%p").display());
        let libraries = [library];
        let env = [("DMALLOC_OPTIONS", options.into())];
        let run = preloaded::run(target, config, dir.path(), &Preload { libraries: &libraries, env: &env })?;
        run.check_sample_exit(target, "dmalloc")?;
        let mut logs = BTreeMap::new();
        for (path, pid) in preloaded::files_by_pid(dir.path(), "dmalloc")? {
            let text = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let log = parse_log(&String::from_utf8_lossy(&text)).map_err(|message| Error::MalformedOutput { tool: format!("dmalloc ({})", path.display()), message })?;
            logs.insert(pid, log);
        }
        // dmalloc opens its log at its first allocation: a program that
        // made none (only mmap, say) has no log, and no block to report.
        let no_allocation = !logs.contains_key(&run.pid) && matches!(run.finished.exit, crate::process::Exit::Code(_));
        if no_allocation {
            logs.insert(run.pid, Log { checked: true, ..Log::default() });
        }
        let mut report = report_of(target, &run, &logs);
        if no_allocation {
            report.notes.push("the program made no allocation through dmalloc (it opens its log at the first one)".into());
        }
        report.stats = Some(Stats { wall_ms: run.finished.wall.as_millis() as u64, peak_rss_kib: Some(run.finished.peak_rss_kib), pause_ms: None });
        Ok(report)
    }
}

/// The text a block's dump starts with. dmalloc dumps a fixed number of
/// bytes, so when a block's text runs past the dump, where it is cut
/// depends on the length of every number before the cut (a pid, a
/// counter): such a text is kept only up to its first digit, so that the
/// same leak reads the same in every run.
fn dump_text(dump: &[u8], size: u64) -> Option<String> {
    let text = string_prefix(dump)?;
    let cut_by_dump = (dump.len() as u64) < size && text.len() == dump.len();
    if !cut_by_dump {
        return Some(text);
    }
    let keep = text.find(|c: char| c.is_ascii_digit()).unwrap_or(text.len());
    Some(text[..keep].to_string())
}

fn report_of(target: &Target, run: &Run, logs: &BTreeMap<u32, Log>) -> Report {
    let mut report = Report::new(&target.name, "dmalloc");
    let processes = run.processes(target, |p| logs.get(&p.pid).is_some_and(|l| l.checked) && !matches!(p.end, End::Exec { .. }));
    let several = processes.len() > 1;
    for (&pid, log) in logs {
        let pid = several.then_some(pid);
        // (size, where, whether it is text) → (blocks, the text they share)
        let mut groups: BTreeMap<(u64, Option<String>, bool), (u64, Option<String>)> = BTreeMap::new();
        for block in &log.not_freed {
            let text = block.dump.as_deref().and_then(|d| dump_text(d, block.size));
            let entry = groups.entry((block.size, block.at.clone(), text.is_some())).or_insert((0, text.clone()));
            entry.0 += 1;
            if let (Some(have), Some(new)) = (&entry.1, &text) {
                entry.1 = Some(have.chars().zip(new.chars()).take_while(|(a, b)| a == b).map(|(a, _)| a).collect());
            }
        }
        for ((size, at, _), (blocks, text)) in groups {
            let mut leak = Leak::new(Kind::Unclassified, size * blocks, blocks);
            leak.site = at.as_deref().and_then(site);
            leak.content = text.filter(|t| !t.is_empty());
            leak.pid = pid;
            report.leaks.push(leak);
        }
        for e in &log.errors {
            let site = e.at.as_deref().and_then(site);
            match bad_free_kind(&e.function, e.code) {
                Some(kind) => report.bad_frees.push(BadFree {
                    kind,
                    dealloc: e.function.clone(),
                    api: None,
                    site,
                    stack: Vec::new(),
                    other_site: None,
                    other_stack: Vec::new(),
                }),
                None => report.errors.push(MemoryError { kind: format!("dmalloc-{}", e.code), what: e.what.clone(), site, stack: Vec::new(), pid }),
            }
            report.notes.push(format!("dmalloc: {}: {}", e.function, e.what));
        }
    }
    report.notes.extend(preloaded::unanalysed_notes(&processes, "dmalloc", |p| match &p.end {
        End::Exec { program } => format!("it exec'd {program} (dmalloc logs the blocks not freed only at exit)"),
        End::Killed { signal } => format!("killed by {signal} before dmalloc's check at exit"),
        _ => "it ended without exit() (e.g. _exit), before dmalloc's check at exit".into(),
    }));
    if !Run::simple(&processes) {
        report.processes = processes;
    }
    report
}

/// `file:line` as dmalloc.h's macros record it.
fn site(at: &str) -> Option<Site> {
    let (file, line) = at.rsplit_once(':')?;
    Some(Site { file: file.rsplit('/').next().unwrap_or(file).to_string(), line: line.parse().ok()?, function: None })
}

/// dmalloc's error numbers (dmalloc's error_val.h) that are bad frees.
fn bad_free_kind(function: &str, code: u32) -> Option<BadFreeKind> {
    if !matches!(function, "free" | "realloc" | "delete" | "delete[]" | "cfree") {
        return None;
    }
    match code {
        // ERROR_ALREADY_FREE
        61 => Some(BadFreeKind::Double),
        // ERROR_NOT_FOUND, ERROR_NOT_START_BLOCK, ERROR_IS_NULL, ERROR_NOT_ON_BLOCK
        22 | 30 | 20 | 23 => Some(BadFreeKind::Invalid),
        _ => None,
    }
}

#[derive(Debug, Default, PartialEq)]
struct Log {
    not_freed: Vec<Block>,
    errors: Vec<LogError>,
    /// Whether dmalloc's check at exit ran (its not-freed dump is there).
    checked: bool,
}

/// A block not freed.
#[derive(Debug, PartialEq)]
struct Block {
    size: u64,
    /// Where it was allocated (`file:line`), when dmalloc knows.
    at: Option<String>,
    /// Its first bytes (dmalloc dumps 20).
    dump: Option<Vec<u8>>,
}

#[derive(Debug, PartialEq)]
struct LogError {
    function: String,
    what: String,
    code: u32,
    /// Where the pointer came from (`file:line`), when dmalloc knows.
    at: Option<String>,
}

static NOT_FREED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\d+: \d+:\s+not freed: '0x[0-9a-f]+\|s\d+' \((\d+) bytes\) from '(.*)'$").expect("regex"));
static DUMP: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\d+: \d+:\s+dump of '0x[0-9a-f]+': '(.*)'$").expect("regex"));
static ERROR: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\d+: \d+: ERROR: ([^:]+): (.*) \(err (\d+)\)$").expect("regex"));
static POINTER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\d+: \d+:\s+pointer '0x[0-9a-f]+' from '(.*)' prev access").expect("regex"));

/// A known location, not `unknown` nor a bare return address (`ra=0x...`,
/// which a process that has ended cannot be symbolized by).
fn location(at: &str) -> Option<String> {
    (at != "unknown" && !at.starts_with("ra=") && at.contains(':')).then(|| at.to_string())
}

fn parse_log(text: &str) -> Result<Log, String> {
    let mut log = Log::default();
    let mut pointer_from = None;
    for line in text.lines() {
        if let Some(c) = NOT_FREED.captures(line) {
            let size = c[1].parse().map_err(|_| format!("bad size in `{line}`"))?;
            log.not_freed.push(Block { size, at: location(&c[2]), dump: None });
        } else if let Some(c) = DUMP.captures(line) {
            let block = log.not_freed.last_mut().ok_or_else(|| format!("a dump before any block: `{line}`"))?;
            block.dump = Some(unescape(&c[1]));
        } else if let Some(c) = POINTER.captures(line) {
            pointer_from = location(&c[1]);
        } else if let Some(c) = ERROR.captures(line) {
            log.errors.push(LogError { function: c[1].to_string(), what: c[2].to_string(), code: c[3].parse().unwrap_or(0), at: pointer_from.take() });
        } else if line.contains("Dumping Not-Freed Pointers") {
            log.checked = true;
        }
    }
    Ok(log)
}

/// dmalloc's C escapes (`\ooo` octal, `\n`, `\t`, `\\`, `\'`) undone.
fn unescape(text: &str) -> Vec<u8> {
    let raw = text.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' || i + 1 == raw.len() {
            out.push(raw[i]);
            i += 1;
            continue;
        }
        let octal = raw[i + 1..].iter().take(3).take_while(|c| (b'0'..=b'7').contains(c)).count();
        if octal > 0 {
            out.push(raw[i + 1..i + 1 + octal].iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0')) as u8);
            i += 1 + octal;
            continue;
        }
        out.push(match raw[i + 1] {
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            other => other,
        });
        i += 2;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_cut_by_the_dump_ends_before_its_first_number() {
        // A pid of 4 or 5 digits moves where dmalloc's 20 bytes end.
        assert_eq!(dump_text(b"child 1234, message ", 64).as_deref(), Some("child "));
        assert_eq!(dump_text(b"child 12345, message", 64).as_deref(), Some("child "));
        // A whole text (its NUL is in the dump) is kept as it is.
        assert_eq!(dump_text(b"child 1\0\x41", 64).as_deref(), Some("child 1"));
        // So is a block no longer than the dump.
        assert_eq!(dump_text(b"1234567: 7\n12a4567:", 19).as_deref(), Some("1234567: 7\n12a4567:"));
    }

    #[test]
    fn errors_and_unfreed_blocks_are_read() {
        let log = parse_log(
            "1: 4:   pointer '0x7fba72a32fc8' from 'unknown' prev access 'unknown'\n\
             1: 4: ERROR: free: tried to free previously freed pointer (err 61)\n\
             1: 4: Dumping Not-Freed Pointers Changed Since Start:\n\
             1: 4:  not freed: '0x7fba72a29008|s1' (4096 bytes) from 'unknown'\n\
             1: 4:  not freed: '0x7fba72a29108|s1' (12 bytes) from 'leak.c:7'\n\
             1: 4:   dump of '0x7fba72a29108': 'test\\000\\332'\n",
        )
        .unwrap();
        assert!(log.checked);
        assert_eq!(log.not_freed[0], Block { size: 4096, at: None, dump: None });
        assert_eq!(log.not_freed[1], Block { size: 12, at: Some("leak.c:7".into()), dump: Some(b"test\0\xda".to_vec()) });
        assert_eq!(bad_free_kind(&log.errors[0].function, log.errors[0].code), Some(BadFreeKind::Double));
    }
}
