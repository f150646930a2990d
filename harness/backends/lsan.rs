//! LeakSanitizer (gcc's liblsan): the sample is rebuilt with
//! `-fsanitize=leak`, which replaces malloc and operator new with LSan's
//! allocator. At exit LSan stops every thread (with ptrace, from a helper
//! task), scans the stacks, registers, globals and TLS for pointers, and
//! reports each unreached block: "Direct" when nothing points to it,
//! "Indirect" when only other leaked blocks do. Reachable blocks are not
//! leaks to LSan, and an interior pointer counts as a reference, so it knows
//! neither valgrind's "possibly lost" nor "still reachable".
//!
//! A program the user brings runs unmodified with gcc's liblsan.so preloaded.
//!
//! Catalogue samples run with `use_stacks=0`. LSan checks only at exit,
//! after main has returned (every sample's threads are joined by then), so
//! the stacks hold no live roots, only stale copies of pointers in dead
//! frames; which of those survive depends on the stack's random offset
//! (ASLR), and scanning them made lost_tree, shallow_free and vector_of_raw
//! lose one to three blocks at random from run to run. A program the user
//! brings keeps LSan's default: it may exit from deep inside live frames.

use std::path::{Path, PathBuf};
use std::sync::{LazyLock, OnceLock};

use regex::Regex;

use crate::backend::{Availability, Backend, RunConfig, Target};
use crate::backends::valgrind::api_name;
use crate::error::Error;
use crate::process::{self, Spec};
use crate::report::{Frame, Kind, Leak, Report, Stats};

pub struct Lsan;

/// The exit status LSan gives a run with leaks (or a fatal error), chosen
/// so that it cannot be confused with a sample's own statuses.
const LEAK_EXIT: i32 = 23;

/// Runtime options. `fast_unwind_on_malloc=0`: the frame-pointer unwinder
/// stops inside glibc (built without frame pointers) and loses the caller of
/// strdup; the DWARF unwinder keeps it. `report_objects=0`: addresses of
/// leaked objects are not wanted. The stack format is the default one plus
/// the module of every frame, so that runtime frames can be recognised.
fn options(log_path: &Path, scan_stacks: bool) -> String {
    format!(
        "fast_unwind_on_malloc=0:malloc_context_size=64:report_objects=0:exitcode={LEAK_EXIT}:symbolize=1:\
         detect_leaks=1:use_stacks={}:log_path={}:stack_trace_format=\"    #%n %p in %f %S (%m+%o)\"",
        u8::from(scan_stacks),
        log_path.display()
    )
}

fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "gcc".to_string())
}

/// gcc's liblsan.so, for preloading into a program that was not rebuilt.
fn liblsan() -> Option<PathBuf> {
    let out = std::process::Command::new(cc()).arg("-print-file-name=liblsan.so").output().ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    // Without the library gcc echoes the bare name back.
    (path.is_absolute() && path.exists()).then(|| path.canonicalize().unwrap_or(path))
}

/// The probe build.rs made: it leaks one block, so a working LSan must stop
/// the world, scan and report it.
fn probe_program() -> &'static Path {
    crate::artifacts::resolve_static(env!("LEAKLAB_LSAN_PROBE")).unwrap_or(Path::new(env!("LEAKLAB_LSAN_PROBE")))
}

/// Whether LSan can stop the world here, found once per process by running the probe.
fn probe() -> &'static Availability {
    static RESULT: OnceLock<Availability> = OnceLock::new();
    RESULT.get_or_init(|| {
        let program = probe_program();
        if !program.exists() {
            return Availability::Unavailable {
                reason: "gcc could not link a `-fsanitize=leak` program when leaklab was built (liblsan missing)".into(),
                fix: "apt-get install -y liblsan0 && cargo build".into(),
            };
        }
        let target = Target { name: "lsan-probe".into(), program: program.to_path_buf(), args: Vec::new(), sample: None };
        match run_lsan(&target, &RunConfig::default(), None) {
            Ok(leaks) if leaks.iter().any(|l| l.kind == Kind::Definite && l.bytes == 7) => Availability::Ready,
            Ok(leaks) => Availability::Unavailable {
                reason: format!("LeakSanitizer ran but did not report the probe's 7-byte leak (found {leaks:?})"),
                fix: "run `leaklab run --backend lsan control_clean --raw` and read LSan's messages".into(),
            },
            Err(e) => Availability::Unavailable {
                reason: format!(
                    "LeakSanitizer cannot stop the world here: {}{}",
                    match e {
                        Error::TargetFailed { how, .. } => how.trim_start_matches("stopped LeakSanitizer: ").to_string(),
                        other => other.to_string(),
                    },
                    traced_note()
                ),
                fix: "run outside a debugger or tracer (LSan stops the world with ptrace: no strace/gdb, and a container needs \
                      `--cap-add SYS_PTRACE` or a seccomp profile that allows ptrace; check /proc/sys/kernel/yama/ptrace_scope ≤ 2)"
                    .into(),
            },
        }
    })
}

impl Backend for Lsan {
    fn name(&self) -> &'static str {
        "lsan"
    }

    fn summary(&self) -> &'static str {
        "LeakSanitizer: the program is built with -fsanitize=leak; at exit it stops the world and scans for pointers to every block"
    }

    fn availability(&self) -> Availability {
        if liblsan().is_none() {
            return Availability::Unavailable {
                reason: format!("gcc's LeakSanitizer runtime (liblsan.so) is not installed (`{} -print-file-name=liblsan.so`)", cc()),
                fix: "apt-get install -y liblsan0".into(),
            };
        }
        probe().clone()
    }

    fn debian_packages(&self) -> &'static [&'static str] {
        &["liblsan0"]
    }

    fn run(&self, target: &Target, config: &RunConfig) -> Result<Report, Error> {
        let started = std::time::Instant::now();
        let (program, preload) = match target.sample {
            Some(s) => (s.executable("lsan")?.to_path_buf(), None),
            None => match linkage(&target.program)? {
                // Already built with a sanitizer: its own LSan runs at exit.
                Linkage::Sanitized => (target.program.clone(), None),
                Linkage::Dynamic => {
                    let lib = liblsan().ok_or_else(|| Error::Unavailable {
                        backend: "lsan".into(),
                        reason: "liblsan.so not found".into(),
                        fix: "apt-get install -y liblsan0".into(),
                    })?;
                    (target.program.clone(), Some(lib))
                }
            },
        };
        let run_target = Target { program, ..target.clone() };
        let (leaks, finished) = run_lsan_full(&run_target, config, preload.as_deref())?;
        let mut report = Report::new(&target.name, self.name());
        for mut leak in leaks {
            leak.site = target.site_of(&leak.stack);
            report.leaks.push(leak);
        }
        report.stats = Some(Stats {
            wall_ms: started.elapsed().as_millis() as u64,
            peak_rss_kib: Some(finished.peak_rss_kib),
            pause_ms: None,
        });
        Ok(report)
    }
}

/// How a user's program can get LeakSanitizer.
#[derive(Debug, PartialEq, Eq)]
enum Linkage {
    /// Dynamically linked, no sanitizer: liblsan.so is preloaded.
    Dynamic,
    /// Built with -fsanitize=leak or =address (gcc links the runtime
    /// dynamically, clang statically): nothing to add.
    Sanitized,
}

/// Reads the program's ELF headers. A statically linked program ignores
/// LD_PRELOAD: LSan would silently never run, and a clean report would lie.
fn linkage(program: &Path) -> Result<Linkage, Error> {
    use object::{Object, ObjectSection, ObjectSymbol};
    let data = std::fs::read(program).map_err(|e| Error::io(program, e))?;
    let file = object::File::parse(&*data)
        .map_err(|e| Error::Usage(format!("{} is not an ELF program LeakSanitizer can run: {e}", program.display())))?;
    let dynstr = file.section_by_name(".dynstr").and_then(|s| s.data().ok()).unwrap_or_default();
    let needs = |lib: &[u8]| dynstr.windows(lib.len()).any(|w| w == lib);
    let has_symbol = |name: &str| file.symbols().chain(file.dynamic_symbols()).any(|s| s.name() == Ok(name) && !s.is_undefined());
    if needs(b"liblsan.so") || needs(b"libasan.so") || has_symbol("__lsan_do_leak_check") {
        return Ok(Linkage::Sanitized);
    }
    if file.section_by_name(".interp").is_none() {
        return Err(Error::Usage(format!(
            "{} is statically linked: LD_PRELOAD cannot bring LeakSanitizer into it; rebuild it with `-fsanitize=leak`",
            program.display()
        )));
    }
    Ok(Linkage::Dynamic)
}

fn run_lsan(target: &Target, config: &RunConfig, preload: Option<&Path>) -> Result<Vec<Leak>, Error> {
    run_lsan_full(target, config, preload).map(|(l, _)| l)
}

/// Runs a program with LSan active and parses every process's log.
fn run_lsan_full(target: &Target, config: &RunConfig, preload: Option<&Path>) -> Result<(Vec<Leak>, process::Finished), Error> {
    let dir = crate::process::scratch()?;
    // LSan appends `.PID` to log_path: one log per process, forked children included.
    let log_path = dir.path().join("lsan");
    let mut spec = Spec::new(&target.program, config.timeout)
        .args(&target.args)
        .env("LSAN_OPTIONS", options(&log_path, target.sample.is_none()))
        // LSan reports only at exit: a checkpoint stop would gain nothing.
        .env_remove("LEAKLAB_CHECKPOINT")
        .env_remove("ASAN_OPTIONS")
        .env_remove("DEBUGINFOD_URLS");
    if let Some(lib) = preload {
        spec = spec.env("LD_PRELOAD", lib);
    }
    let finished = process::run(&spec)?;
    if let process::Exit::Signal(sig) = finished.exit {
        return Err(Error::TargetFailed {
            program: target.name.clone(),
            how: format!("under LeakSanitizer was killed by {}", process::signal_name(sig)),
            stderr: finished.stderr_text(),
        });
    }
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .map_err(|e| Error::io(dir.path(), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    logs.sort();
    let mut leaks = Vec::new();
    for log in &logs {
        let text = std::fs::read_to_string(log).map_err(|e| Error::io(log, e))?;
        if let Some(why) = fatal_error(&text) {
            return Err(Error::TargetFailed { program: target.name.clone(), how: format!("stopped LeakSanitizer: {why}"), stderr: text });
        }
        leaks.extend(parse_report(&text)?);
    }
    // The leak exit status and the logs must agree: a status of 23 without
    // a report means LSan's output went missing.
    if finished.exit == process::Exit::Code(LEAK_EXIT) && logs.is_empty() {
        return Err(malformed(format!("the program exited with LSan's status {LEAK_EXIT} but LSan wrote no report")));
    }
    Ok((leaks, finished))
}

fn malformed(message: impl Into<String>) -> Error {
    Error::MalformedOutput { tool: "LeakSanitizer".into(), message: message.into() }
}

/// " (leaklab itself is traced ...)" when it is: its children are then traced too.
fn traced_note() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    match status.lines().find_map(|l| l.strip_prefix("TracerPid:")).map(str::trim) {
        Some(pid) if pid != "0" => format!(" (leaklab itself runs under a tracer, pid {pid})"),
        _ => String::new(),
    }
}

/// LSan's "fatal error" (it could not stop the world), with its hint.
fn fatal_error(text: &str) -> Option<String> {
    if !text.contains("LeakSanitizer has encountered a fatal error") {
        return None;
    }
    let hints: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once("HINT: ").map(|(_, h)| h.trim()))
        .filter(|h| !h.starts_with("For debugging"))
        .collect();
    Some(if hints.is_empty() { "it encountered a fatal error".to_string() } else { hints.join("; ") })
}

static HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(Direct|Indirect) leak of (\d+) byte\(s\) in (\d+) object\(s\) allocated from:$").unwrap()
});
static FRAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^#(\d+) 0x[0-9a-fA-F]+(?: in (.*))?$").unwrap());
static SUMMARY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^SUMMARY: LeakSanitizer: (\d+) byte\(s\) leaked in (\d+) allocation\(s\)\.$").unwrap());
static MODULE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^(.*?) ?\(([^()]*?)\+0x[0-9a-fA-F]+\)$").unwrap());
static SOURCE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^(.*):(\d+)(?::\d+)?$").unwrap());

/// Parses one LSan report (one process's log, or its stderr). Text around
/// the report (the program's own output) is ignored; inside it, every line
/// must be a leak header, a frame, blank, or the summary, whose totals must
/// equal the sum of the leaks. Sites are left unset.
pub fn parse_report(text: &str) -> Result<Vec<Leak>, Error> {
    let Some(start) = text.find("ERROR: LeakSanitizer: detected memory leaks") else {
        if text.contains("LeakSanitizer") && (text.contains("leak of") || text.contains("SUMMARY")) {
            return Err(malformed("leak records without the `ERROR: LeakSanitizer: detected memory leaks` line"));
        }
        return Ok(Vec::new());
    };
    let body = text[start..].split_once('\n').map_or("", |(_, rest)| rest);
    let mut leaks: Vec<Leak> = Vec::new();
    let mut summary = None;
    let mut in_suppressions = false;
    for (n, raw) in body.lines().enumerate() {
        let line = raw.trim();
        let at = |what: &str| malformed(format!("report line {}: {what}: `{line}`", n + 2));
        if line.is_empty() || line.starts_with("-----") {
            continue;
        }
        if let Some(c) = HEADER.captures(line) {
            let kind = if &c[1] == "Direct" { Kind::Definite } else { Kind::Indirect };
            let bytes = c[2].parse().map_err(|_| at("byte count out of range"))?;
            let blocks = c[3].parse().map_err(|_| at("object count out of range"))?;
            leaks.push(Leak::new(kind, bytes, blocks));
        } else if let Some(c) = FRAME.captures(line) {
            let leak = leaks.last_mut().ok_or_else(|| at("a stack frame before any leak header"))?;
            if summary.is_some() {
                return Err(at("a stack frame after the summary"));
            }
            let index: usize = c[1].parse().map_err(|_| at("bad frame number"))?;
            if index != leak.stack.len() {
                return Err(at(&format!("frame #{index} where #{} was due", leak.stack.len())));
            }
            leak.stack.push(parse_frame(c.get(2).map_or("", |m| m.as_str())));
        } else if let Some(c) = SUMMARY.captures(line) {
            summary = Some((c[1].parse::<u64>().map_err(|_| at("bad total"))?, c[2].parse::<u64>().map_err(|_| at("bad total"))?));
        } else if line.starts_with("Suppressions used:") {
            // The table of suppressions that matched: `count bytes template` rows.
            in_suppressions = true;
        } else if in_suppressions || summary.is_some() || line.starts_with("==") {
            // The suppressions table; after the summary, the program's own
            // output; `==PID==` lines are LSan's own notes.
            continue;
        } else {
            return Err(at("not a leak header, a stack frame or the summary"));
        }
    }
    let Some((total_bytes, total_blocks)) = summary else {
        return Err(malformed("no `SUMMARY: LeakSanitizer:` line: the report was cut short"));
    };
    if let Some(l) = leaks.iter().find(|l| l.stack.is_empty()) {
        return Err(malformed(format!("a {} leak of {} byte(s) without a stack", l.kind, l.bytes)));
    }
    let (bytes, blocks) = leaks.iter().fold((0, 0), |(b, n), l| (b + l.bytes, n + l.blocks));
    if (bytes, blocks) != (total_bytes, total_blocks) {
        return Err(malformed(format!(
            "the summary says {total_bytes} byte(s) in {total_blocks} allocation(s), the leaks add up to {bytes} in {blocks}"
        )));
    }
    for leak in &mut leaks {
        leak.api = leak.stack.first().and_then(|f| f.function.as_deref()).map(allocator_name);
    }
    Ok(leaks)
}

/// One frame after `#N 0xADDR in `: `FUNCTION [FILE:LINE[:COL] | <null>] [(MODULE+0xOFF)]`.
fn parse_frame(rest: &str) -> Frame {
    let mut frame = Frame::default();
    let mut rest = rest.trim();
    if let Some(c) = MODULE.captures(rest) {
        frame.object = Some(c[2].to_string()).filter(|m| !m.starts_with('<'));
        rest = c.get(1).map_or("", |m| m.as_str()).trim();
    }
    // The location is the last word when it looks like one; a function name
    // (`operator new(unsigned long)`) may itself contain spaces.
    if let Some((func, last)) = rest.rsplit_once(' ') {
        if last == "<null>" {
            rest = func;
        } else if let Some(c) = SOURCE.captures(last) {
            frame.file = Some(c[1].to_string());
            frame.line = c[2].parse().ok();
            rest = func;
        }
    }
    let func = rest.trim();
    if !func.is_empty() && func != "<null>" {
        frame.function = Some(func.to_string());
    }
    frame
}

/// `__interceptor_malloc` → `malloc`, `operator new[](unsigned long)` → `new[]`.
fn allocator_name(function: &str) -> String {
    let f = function.trim_start_matches("___interceptor_").trim_start_matches("__interceptor_");
    api_name(f)
}
