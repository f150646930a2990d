//! valgrind memcheck: the program runs on valgrind's synthetic CPU, which sees
//! every allocation and, at exit, scans memory for pointers to each block.
//!
//! Every process of the run is traced (`--trace-children=yes`) and writes
//! its own text log, `DIR/valgrind.PID.log`: valgrind reopens the log for a
//! forked child, and an exec'd image starts a fresh one under the same pid.
//! (Its XML output cannot be used for a run with several processes: memcheck
//! 3.19 does not reopen the XML file at fork, so the children's documents
//! interleave in their parent's file with nothing that tells whose a line
//! is.) Each log is parsed by [`parse_log`]: the process's identity, its
//! memory errors, how it ended, and the leak records of its check at exit
//! (the ones after `HEAP SUMMARY:`; a `VALGRIND_DO_LEAK_CHECK` mid-run
//! prints records too, which do not count).
//!
//! An exec'd image also gets its own log, and the image before it a leak
//! check, through the exec shim harness/native/vg_exec.c (LD_PRELOAD).
//!
//! A process still running when the program itself has exited (a child it
//! did not wait for) gets a grace period to end by itself; after that, and
//! for `--after`, memcheck is asked for a leak check of the live process
//! through its gdbserver (`vgdb ... leak_check`), then the process is killed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use regex::Regex;

use crate::backend::{Availability, Backend, RunConfig, Target};
use crate::error::Error;
use crate::process::{self, Spec};
use crate::report::{BadFree, BadFreeKind, End, Frame, Kind, Leak, MemoryError, Process, Report, Stats, Status, Suppressed};
use crate::suppressions::Suppressions;

pub struct Valgrind;

/// How long the processes left when the program itself has exited may take
/// to end by themselves, counted from the last one that ended.
const GRACE: Duration = Duration::from_secs(3);

/// Bound on one `vgdb` leak check of a live process.
const VGDB_TIMEOUT: Duration = Duration::from_secs(60);

/// Leak records that are the C runtime's, not the program's, recognised by
/// the allocation's stack: they are counted in `Report::suppressed`, not
/// listed. The DTV (dynamic thread vector) of a thread still alive at exit
/// is allocated by the loader in `_dl_allocate_tls` and pointed to from
/// inside the thread's control block, one word past its start: memcheck
/// calls it "possibly lost".
const RUNTIME_RULES: &[(&str, &str)] = &[("_dl_allocate_tls", "runtime: the DTV of a thread (_dl_allocate_tls)")];

impl Backend for Valgrind {
    fn name(&self) -> &'static str {
        "valgrind"
    }

    fn summary(&self) -> &'static str {
        "memcheck: the program runs on a synthetic CPU; at exit every block is classified by the pointers that still reach it"
    }

    fn availability(&self) -> Availability {
        match (which::which("valgrind"), which::which("vgdb")) {
            (Ok(_), Ok(_)) => Availability::Ready,
            _ => Availability::Unavailable { reason: "valgrind is not installed".into(), fix: "apt-get install -y valgrind".into() },
        }
    }

    fn checks_frees(&self) -> bool {
        true
    }

    fn debian_packages(&self) -> &'static [&'static str] {
        &["valgrind"]
    }

    fn run(&self, target: &Target, config: &RunConfig) -> Result<Report, Error> {
        let mut report = Report::new(&target.name, self.name());
        if crate::backend::is_statically_linked(&target.program) {
            report.status = Status::NotAnalysed {
                reason: format!(
                    "`{}` is statically linked: memcheck cannot put its own malloc in place of the program's, so it sees no allocation",
                    target.name
                ),
            };
            return Ok(report);
        }
        // A malformed file is refused before anything runs.
        let mut suppressions = Suppressions::default();
        for file in &config.suppressions {
            suppressions.extend(Suppressions::load(file)?);
        }
        let dir = crate::process::scratch()?;
        let spec = memcheck_spec(dir.path(), target, config);
        let started = Instant::now();
        let deadline = started + config.timeout;
        let mut child = process::Child::spawn(&spec)?;
        let leader = child.pid() as u32;
        // `--after` counts the program's own seconds: from when it starts
        // to run on memcheck's CPU (its loader has mapped memcheck's
        // preload), not from valgrind's start-up, which takes a second on a
        // quiet machine and several on a loaded one.
        // A program that never maps the preload (a static one) is checked
        // at the latest when start-up has had its allowance.
        let mut after: Option<Instant> = None;
        let latest = config.after.map(|a| started + a + STARTUP_ALLOWANCE);

        // Wait for the program itself; `has_exited` peeks without reaping
        // or killing, so its children are still there to be looked at.
        let mut after_fired = false;
        while !child.has_exited() {
            let now = Instant::now();
            if now >= deadline {
                drop(child);
                return Err(Error::Timeout { program: target.name.clone(), seconds: config.timeout.as_secs_f64() });
            }
            if after.is_none() {
                after = config.after.filter(|_| client_started(leader)).map(|a| now + a);
            }
            if after.or(latest).is_some_and(|a| now >= a) {
                after_fired = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if !after_fired && config.after.is_some() {
            report.notes.push("the program ended before --after: it was checked at its exit".into());
        }
        if !after_fired {
            wait_for_stragglers(dir.path(), deadline);
        }
        // Whatever still runs is checked live, then killed with the run.
        let mut live_checks: BTreeMap<u32, LogOutput> = BTreeMap::new();
        let mut running: Vec<u32> = Vec::new();
        for pid in live_processes(dir.path()) {
            match vgdb_leak_check(dir.path(), pid) {
                Ok(out) => {
                    live_checks.insert(pid, out);
                }
                Err(e) => report.notes.push(format!("pid {pid}: the live leak check through vgdb failed: {e}")),
            }
            running.push(pid);
            kill_ours(dir.path(), pid);
        }
        // Children forked while the checks ran.
        for pid in live_processes(dir.path()) {
            running.push(pid);
            kill_ours(dir.path(), pid);
        }
        let finished = child.finish()?;

        // Every image of every pid, in the order of their image numbers.
        let mut outputs: BTreeMap<(u32, u32), LogOutput> = BTreeMap::new();
        for entry in std::fs::read_dir(dir.path()).map_err(|e| Error::io(dir.path(), e))? {
            let path = entry.map_err(|e| Error::io(dir.path(), e))?.path();
            let Some(key) = log_pid(&path) else { continue };
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            outputs.insert(key, parse_log(&String::from_utf8_lossy(&bytes)));
        }
        let main_images: Vec<LogOutput> = outputs.range((leader, 0)..=(leader, u32::MAX)).map(|(_, o)| o.clone()).collect();
        match main_images.first() {
            Some(main) if main.command.is_some() => {}
            // valgrind stopped before the program started (bad option, unreadable program).
            Some(main) => {
                return Err(Error::TargetFailed {
                    program: "valgrind".into(),
                    how: format!("{} before starting `{}`", finished.exit.describe(), target.name),
                    stderr: format!("{}\n{}", main.unparsed.join("\n"), finished.stderr_text()),
                })
            }
            None => {
                return Err(Error::TargetFailed {
                    program: "valgrind".into(),
                    how: format!("{} and wrote no log", finished.exit.describe()),
                    stderr: finished.stderr_text(),
                })
            }
        }
        let last_image: BTreeMap<u32, u32> = outputs.keys().map(|&(pid, image)| (pid, image)).collect();
        for (pid, live) in live_checks {
            if let Some(out) = last_image.get(&pid).and_then(|&image| outputs.get_mut(&(pid, image))) {
                out.leaks = live.leaks;
                out.leak_check = true;
            }
        }
        let several = outputs.len() > 1;
        for (&(pid, image), out) in &outputs {
            let last = last_image.get(&pid) == Some(&image);
            let end = if !last {
                match (&out.exec_into, &out.fatal_signal) {
                    (_, Some(signal)) => End::Killed { signal: signal.clone() },
                    (Some(program), None) => End::Exec { program: file_name(program) },
                    // A fork child's image before its exec is a copy of its
                    // parent's memory: not a process of its own.
                    (None, None) => End::Exec { program: file_name(out.forked_exec.as_deref().unwrap_or("?")) },
                }
            } else if pid == leader && !running.contains(&pid) {
                match finished.exit {
                    process::Exit::Signal(sig) => End::Killed { signal: process::signal_name(sig) },
                    process::Exit::Code(code) => End::Exited { code },
                }
            } else if let Some(signal) = &out.fatal_signal {
                End::Killed { signal: signal.clone() }
            } else if running.contains(&pid) {
                End::Running
            } else if out.exit_check {
                End::Finished
            } else {
                // Killed by something else (SIGKILL) before memcheck could check it.
                End::Killed { signal: "SIGKILL".into() }
            };
            add_errors(&mut report, target, out, several.then_some(pid));
            // An image that exec'd unchecked (a fork child's copy of its
            // parent's memory, or an exec the shim could not see) is not a
            // process of its own.
            if !last && out.exec_into.is_none() {
                if pid == leader {
                    report.notes.push(format!("pid {pid} exec'd without the shim seeing it: the leaks of its image `{}` were not checked", out.program()));
                }
                continue;
            }
            add_leaks(&mut report, target, out, pid, several);
            report.processes.push(Process { pid, parent: out.parent, program: out.program(), end, analysed: out.leak_check });
        }
        // The program itself first, then its descendants by pid, each pid's
        // images in order (a stable sort); a program that simply exited,
        // alone, needs no list.
        report.processes.sort_by_key(|p| (p.pid != leader, p.pid));
        if let [only] = report.processes.as_slice() {
            if matches!(only.end, End::Exited { .. }) && only.analysed {
                report.processes.clear();
            }
        }
        if EXEC_SHIM.is_none() && main_images.len() == 1 {
            let expected = std::iter::once(target.program.display().to_string()).chain(target.args.iter().cloned()).collect::<Vec<_>>().join(" ");
            let command = main_images[0].command.clone().unwrap_or_default();
            if command != expected {
                report.notes.push(format!("pid {leader} replaced its image with exec (now `{command}`): memcheck checks the leaks of its last image only"));
            }
        }
        // A sample must run to its end on its own.
        if target.sample.is_some() {
            if let process::Exit::Code(code) = finished.exit {
                if code != 0 {
                    return Err(Error::TargetFailed {
                        program: target.name.clone(),
                        how: format!("under valgrind exited with status {code}"),
                        stderr: finished.stderr_text(),
                    });
                }
            }
        }
        classify_runtime(&mut report, &suppressions);
        report.stats = Some(Stats { wall_ms: finished.wall.as_millis() as u64, peak_rss_kib: Some(finished.peak_rss_kib), pause_ms: None });
        Ok(report)
    }
}

/// How long valgrind's own start-up may delay `--after` at most.
const STARTUP_ALLOWANCE: Duration = Duration::from_secs(30);

/// Whether the program under memcheck (pid `leader`) has begun to run: its
/// dynamic loader mapped memcheck's preload.
fn client_started(leader: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{leader}/maps")).is_ok_and(|m| m.contains("vgpreload_core"))
}

/// The valgrind command line of a run.
fn memcheck_spec(dir: &Path, target: &Target, config: &RunConfig) -> Spec {
    let spec = Spec::new("valgrind", config.timeout)
        .arg("--tool=memcheck")
        .arg("--leak-check=full")
        .arg("--show-leak-kinds=all")
        .arg("--errors-for-leak-kinds=none")
        .arg("--num-callers=40")
        .arg("--track-origins=yes")
        .arg("--trace-children=yes")
        .arg("--child-silent-after-fork=no")
        // Source paths as compiled: a frame of a distribution's library
        // (prefix-mapped, relative) is told from the program's own.
        .arg("--fullpath-after=")
        // A program's own operator new/malloc (replace_operator_new) must
        // run: by default memcheck swaps in its own, and the leak's site
        // moves from the replacement to the new-expression.
        .arg("--soname-synonyms=somalloc=nouserintercepts")
        // valgrind's own files stay in the run's directory: the log of each
        // process, and the gdbserver's FIFOs (left behind when valgrind is
        // killed). The program's own TMPDIR is left alone.
        .arg(format!("--log-file={}", dir.join(format!("valgrind.%p.%q{{{IMAGE_VAR}}}.log")).display()))
        .arg(format!("--vgdb-prefix={}", vgdb_prefix(dir).display()))
        .arg(&target.program)
        .args(&target.args)
        .io(config.io)
        // No checkpoint stop, and no network look-ups for debug info.
        .env_remove("LEAKLAB_CHECKPOINT")
        .env_remove("DEBUGINFOD_URLS");
    // An installed binary finds the shim in its unpacked artifacts.
    match EXEC_SHIM.and_then(|s| crate::artifacts::resolve(s).ok()).map(|p| p.display().to_string()) {
        // The exec shim checks an image before it execs and numbers the
        // images of a pid (harness/native/vg_exec.c).
        Some(shim) => {
            let preload = match std::env::var("LD_PRELOAD") {
                Ok(theirs) if !theirs.is_empty() => format!("{shim}:{theirs}"),
                _ => shim.to_string(),
            };
            spec.env("LD_PRELOAD", preload).env(IMAGE_VAR, "0")
        }
        None => spec.env(IMAGE_VAR, "0"),
    }
}

/// The exec shim build.rs compiled, when valgrind's headers were there.
const EXEC_SHIM: Option<&str> = option_env!("LEAKLAB_VG_EXEC_SO");

/// The image number of a process's log: the shim gives each exec'd image
/// the next one, so valgrind opens a new log instead of truncating.
const IMAGE_VAR: &str = "LEAKLAB_VG_IMAGE";

fn vgdb_prefix(dir: &Path) -> PathBuf {
    dir.join("vgdb-pipe")
}

/// The pid and image number of `DIR/valgrind.PID.IMAGE.log`.
fn log_pid(path: &Path) -> Option<(u32, u32)> {
    let (pid, image) = path.file_name()?.to_str()?.strip_prefix("valgrind.")?.strip_suffix(".log")?.split_once('.')?;
    Some((pid.parse().ok()?, image.parse().ok()?))
}

/// Live (not zombie) processes of this run: valgrind processes whose
/// command line names the run's directory (forked children share their
/// parent's, exec'd images are started with the same options).
fn live_processes(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| is_ours(&needle, pid))
        .collect();
    pids.sort_unstable();
    pids
}

fn is_ours(needle: &str, pid: u32) -> bool {
    let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().chars().next() != Some('Z')))
        .unwrap_or(false);
    alive
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| c.split(|&b| b == 0).any(|arg| String::from_utf8_lossy(arg).contains(needle)))
            .unwrap_or(false)
}

/// Kills one of the run's processes, checked again just before.
fn kill_ours(dir: &Path, pid: u32) {
    if is_ours(&dir.to_string_lossy(), pid) {
        // SAFETY: a plain signal to a process of this run.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
}

/// After the program itself has exited: lets the processes it left end by
/// themselves, as long as one ended within the last [`GRACE`].
fn wait_for_stragglers(dir: &Path, deadline: Instant) {
    let mut last_change = Instant::now();
    let mut alive = live_processes(dir);
    while !alive.is_empty() && Instant::now() < deadline && last_change.elapsed() < GRACE {
        std::thread::sleep(Duration::from_millis(20));
        let now = live_processes(dir);
        if now != alive {
            last_change = Instant::now();
            alive = now;
        }
    }
}

/// Asks memcheck in a live process for a full leak check through its
/// gdbserver, and parses the records (the same text as the log's).
fn vgdb_leak_check(dir: &Path, pid: u32) -> Result<LogOutput, Error> {
    let spec = Spec::new("vgdb", VGDB_TIMEOUT)
        .arg(format!("--vgdb-prefix={}", vgdb_prefix(dir).display()))
        .arg(format!("--pid={pid}"))
        .args(["leak_check", "full", "reachable", "any"]);
    let out = process::run(&spec)?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.exit.success() || !text.contains("LEAK SUMMARY") && !text.contains("no leaks are possible") {
        return Err(Error::TargetFailed { program: "vgdb".into(), how: out.exit.describe(), stderr: out.stderr_text() });
    }
    let mut parsed = parse_log(&format!("HEAP SUMMARY:\n{text}"));
    parsed.leak_check = true;
    Ok(parsed)
}

/// One image's memory errors and bad frees, with their sites, into the
/// report (`pid` when the run has several processes). Shared with detector
/// files of `format = "valgrind-text"` and `"valgrind-xml"`.
pub fn add_errors(report: &mut Report, target: &Target, out: &LogOutput, pid: Option<u32>) {
    for mut e in out.errors.clone() {
        e.site = site_of(target, &e.stack);
        e.pid = pid;
        report.errors.push(e);
    }
    for mut b in out.bad_frees.clone() {
        b.site = site_of(target, &b.stack);
        b.other_site = site_of(target, &b.other_stack);
        report.bad_frees.push(b);
    }
}

/// One image's leak records, with their sites, into the report, and a note
/// when its leak check never ran.
pub fn add_leaks(report: &mut Report, target: &Target, out: &LogOutput, pid: u32, several: bool) {
    if !out.leak_check {
        report.notes.push(format!("pid {pid} ({}) ended before memcheck's leak check", out.program()));
    }
    for mut leak in out.leaks.clone() {
        leak.site = site_of(target, &leak.stack);
        leak.pid = several.then_some(pid);
        report.leaks.push(leak);
    }
}

/// The site of a stack. For a user's program, the innermost frame of its
/// own code: with a source line, and neither in a runtime object nor in a
/// library built with relative (prefix-mapped) source paths, as the
/// distribution's libc is.
fn site_of(target: &Target, stack: &[Frame]) -> Option<crate::report::Site> {
    if target.sample.is_some() {
        return target.site_of(stack);
    }
    let own: Vec<Frame> = stack
        .iter()
        .filter(|f| f.file.as_deref().is_some_and(|p| p.starts_with('/')) || f.object.is_some())
        .cloned()
        .collect();
    target.site_of(&own)
}

/// Moves the runtime's records and the user's suppressed ones out of the
/// leak list, counting them per rule.
pub fn classify_runtime(report: &mut Report, suppressions: &Suppressions) {
    let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    report.leaks.retain(|leak| {
        let runtime = RUNTIME_RULES
            .iter()
            .find(|(function, _)| leak.stack.iter().any(|f| f.function.as_deref() == Some(function)))
            .map(|(_, rule)| (*rule).to_string());
        let rule = runtime.or_else(|| suppressions.matching(&leak.stack).map(|r| format!("leak:{} ({})", r.pattern, r.origin)));
        match rule {
            Some(rule) => {
                let c = counts.entry(rule).or_default();
                c.0 += 1;
                c.1 += leak.bytes;
                false
            }
            None => true,
        }
    });
    report.suppressed.extend(counts.into_iter().map(|(rule, (leaks, bytes))| Suppressed { rule, leaks, bytes }));
}

/// What one process's memcheck log says.
#[derive(Debug, Default, Clone)]
pub struct LogOutput {
    /// The pid of the `==PID==` prefixes.
    pub pid: Option<u32>,
    /// `Command:` of the preamble: the image's program and arguments.
    pub command: Option<String>,
    pub parent: Option<u32>,
    /// The leak records of the check at exit (or of the live check).
    pub leaks: Vec<Leak>,
    pub errors: Vec<MemoryError>,
    pub bad_frees: Vec<BadFree>,
    /// The fatal signal that ended it (`SIGSEGV`), when one did.
    pub fatal_signal: Option<String>,
    /// Whether its leak check ran (at exit, after a fatal signal, or live).
    pub leak_check: bool,
    /// Whether it reached its exit (the heap summary was printed).
    pub exit_check: bool,
    /// The program this image exec'd after memcheck checked it (the shim's
    /// `leaklab-exec-check`).
    pub exec_into: Option<String>,
    /// The program a fork child exec'd without a check of its own.
    pub forked_exec: Option<String>,
    /// Lines before the preamble: valgrind's own complaints.
    pub unparsed: Vec<String>,
}

impl LogOutput {
    /// The image's program's file name (the first word of its command).
    #[must_use]
    pub fn program(&self) -> String {
        file_name(self.command.as_deref().and_then(|c| c.split(' ').next()).unwrap_or("?"))
    }
}

static PREFIX: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^(?:==|\*\*|--)(\d+)(?:==|\*\*|--) ?(.*)$").unwrap());
static RECORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^([\d,]+)(?: \(\+?-?[\d,]+\))?(?: \(([\d,]+)(?: \(\+?-?[\d,]+\))? direct, [\d,]+(?: \(\+?-?[\d,]+\))? indirect\))? bytes in ([\d,]+)(?: \(\+?-?[\d,]+\))? blocks are (definitely lost|indirectly lost|possibly lost|still reachable) in loss record",
    )
    .unwrap()
});
static FRAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^ {3,}(?:at|by) 0x[0-9A-Fa-f]+: (.*)$").unwrap());
static FATAL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^Process terminating with default action of signal \d+ \((SIG\w+)\)").unwrap());

/// One block of the log: a header line, then frames and indented
/// auxiliary lines, each followed by its own frames.
struct Block {
    header: String,
    /// The stacks in order, each after the line that introduced it.
    parts: Vec<(String, Vec<Frame>)>,
}

/// Parses one process's memcheck text log (or the output of a `vgdb`
/// leak check, which uses the same record format).
#[must_use]
pub fn parse_log(text: &str) -> LogOutput {
    let mut out = LogOutput::default();
    let mut blocks: Vec<Block> = Vec::new();
    let mut current: Option<Block> = None;
    // Index in `blocks` of the first block after the last HEAP SUMMARY.
    let mut exit_from: Option<usize> = None;
    for raw in text.lines() {
        let line = match PREFIX.captures(raw) {
            Some(c) => {
                if out.pid.is_none() {
                    out.pid = c[1].parse().ok();
                }
                c.get(2).map_or("", |m| m.as_str()).to_string()
            }
            None if raw.starts_with("HEAP SUMMARY:") => raw.to_string(),
            None => {
                if out.command.is_none() && !raw.trim().is_empty() {
                    out.unparsed.push(raw.to_string());
                }
                continue;
            }
        };
        if line.trim().is_empty() {
            if let Some(b) = current.take() {
                blocks.push(b);
            }
            continue;
        }
        if let Some(cmd) = line.strip_prefix("Command: ") {
            out.command = Some(cmd.to_string());
            continue;
        }
        if let Some(ppid) = line.strip_prefix("Parent PID: ") {
            out.parent = ppid.trim().parse().ok();
            continue;
        }
        // The exec shim's markers (harness/native/vg_exec.c).
        if let Some(program) = line.strip_prefix("leaklab-exec-check ") {
            if let Some(b) = current.take() {
                blocks.push(b);
            }
            exit_from = Some(blocks.len());
            out.exec_into = Some(program.trim().to_string());
            continue;
        }
        if let Some(program) = line.strip_prefix("leaklab-exec ") {
            out.forked_exec = Some(program.trim().to_string());
            continue;
        }
        if line.starts_with("leaklab-exec-failed") {
            out.exec_into = None;
            out.forked_exec = None;
            continue;
        }
        if line.starts_with("HEAP SUMMARY:") {
            if let Some(b) = current.take() {
                blocks.push(b);
            }
            exit_from = Some(blocks.len());
            out.exit_check = true;
            continue;
        }
        if let Some(c) = FRAME.captures(&line) {
            if let Some(b) = &mut current {
                if let Some(last) = b.parts.last_mut() {
                    last.1.push(parse_frame(&c[1]));
                }
            }
            continue;
        }
        if line.starts_with(' ') {
            // An auxiliary line (" Address 0x... is ... free'd", " Block was alloc'd at").
            if let Some(b) = &mut current {
                b.parts.push((line.trim().to_string(), Vec::new()));
            }
            continue;
        }
        if let Some(b) = current.take() {
            blocks.push(b);
        }
        current = Some(Block { header: line.clone(), parts: vec![(String::new(), Vec::new())] });
    }
    if let Some(b) = current.take() {
        blocks.push(b);
    }
    for (i, block) in blocks.iter().enumerate() {
        if RECORD.is_match(&block.header) {
            // Only the check at exit counts; mid-run checks come before it.
            if exit_from.is_none_or(|from| i < from) {
                continue;
            }
            out.leak_check = true;
            let stack = block.parts.first().map(|p| p.1.clone()).unwrap_or_default();
            out.leaks.extend(leak_record(&block.header, stack));
            continue;
        }
        if exit_from.is_some_and(|from| i >= from) && is_summary(&block.header) {
            out.leak_check = true;
            continue;
        }
        if let Some(c) = FATAL.captures(&block.header) {
            out.fatal_signal = Some(c[1].to_string());
            continue;
        }
        if is_summary(&block.header) {
            continue;
        }
        if let Some(e) = memory_error(block) {
            match e {
                Finding::Error(e) => out.errors.push(e),
                Finding::BadFree(b) => out.bad_frees.push(b),
            }
        }
    }
    out
}

/// A loss record's leak from its header (`24 (8 direct, 16 indirect) bytes
/// in 1 blocks are definitely lost in loss record 2 of 3`, the text log's
/// line and the XML's `<xwhat><text>`) and its stack: direct bytes only.
#[must_use]
pub fn leak_record(header: &str, stack: Vec<Frame>) -> Option<Leak> {
    let c = RECORD.captures(header)?;
    let number = |s: &str| s.replace(',', "").parse::<u64>().unwrap_or(0);
    let total = number(&c[1]);
    let bytes = c.get(2).map_or(total, |m| number(m.as_str()));
    let kind = match &c[4] {
        "definitely lost" => Kind::Definite,
        "indirectly lost" => Kind::Indirect,
        "possibly lost" => Kind::Possible,
        _ => Kind::Reachable,
    };
    let mut leak = Leak::new(kind, bytes, number(&c[3]));
    leak.api = stack.first().and_then(|f| f.function.as_deref()).map(api_name);
    leak.stack = stack;
    Some(leak)
}

/// Lines of the summaries, which are not errors.
fn is_summary(header: &str) -> bool {
    [
        "LEAK SUMMARY",
        "All heap blocks were freed",
        "in use at exit",
        "total heap usage",
        "For lists of detected",
        "For counts of detected",
        "ERROR SUMMARY",
        "Use --track-origins",
        "Reachable blocks",
        "To see them, rerun",
        "Rerun with",
        "Memcheck, a memory error detector",
        "Copyright (C)",
        "Using Valgrind",
        "definitely lost:",
        "indirectly lost:",
        "possibly lost:",
        "still reachable:",
        "suppressed:",
        "If you believe this happened",
        "This is a known",
    ]
    .iter()
    .any(|p| header.trim_start().starts_with(p))
        || header.starts_with("Warning:")
}

/// A memory error as the XML gives it: its `<what>` (the text log's header
/// line) and its stacks, each after the `<auxwhat>` that introduced it (the
/// first after an empty one), into the log's errors or bad frees.
pub fn add_error_record(out: &mut LogOutput, what: &str, parts: Vec<(String, Vec<Frame>)>) {
    match memory_error(&Block { header: what.to_string(), parts }) {
        Some(Finding::Error(e)) => out.errors.push(e),
        Some(Finding::BadFree(b)) => out.bad_frees.push(b),
        None => {}
    }
}

enum Finding {
    Error(MemoryError),
    BadFree(BadFree),
}

/// A memcheck error block as a memory error or a bad free. A block without
/// a stack is one of valgrind's messages, not an error.
fn memory_error(block: &Block) -> Option<Finding> {
    let stack = block.parts.first().map(|p| p.1.clone()).unwrap_or_default();
    let header = block.header.trim();
    if header.starts_with("Mismatched free()") || header.starts_with("Invalid free()") {
        let aux = block.parts.get(1).map_or("", |p| p.0.as_str());
        let kind = if header.starts_with("Mismatched") {
            BadFreeKind::Mismatched
        } else if aux.ends_with("free'd") {
            BadFreeKind::Double
        } else {
            BadFreeKind::Invalid
        };
        let other_stack = block.parts.get(1).map(|p| p.1.clone()).unwrap_or_default();
        // The allocation: the stack after an "alloc'd" line.
        let alloc = block.parts.iter().skip(1).find(|p| p.0.ends_with("alloc'd") || p.0.ends_with("alloc'd at")).map(|p| &p.1);
        let dealloc = stack.first().and_then(|f| f.function.as_deref()).map_or_else(|| "free".to_string(), dealloc_name);
        let api = alloc.and_then(|s| s.first()).and_then(|f| f.function.as_deref()).map(api_name);
        return Some(Finding::BadFree(BadFree { kind, dealloc, api, site: None, stack, other_site: None, other_stack }));
    }
    if stack.is_empty() {
        return None;
    }
    let kind = error_kind(header);
    let mut what = header.to_string();
    // --track-origins adds where the bad value or block came from.
    if let Some((aux, origin)) = block.parts.get(1) {
        let at = origin.iter().find(|f| f.line.is_some() && f.file.as_deref().is_some_and(|p| p.starts_with('/')));
        what.push_str(&format!("; {aux}"));
        if let Some(f) = at {
            let file = f.file.as_deref().unwrap_or("?");
            what.push_str(&format!(" at {}:{}", file.rsplit('/').next().unwrap_or(file), f.line.unwrap_or(0)));
        }
    }
    Some(Finding::Error(MemoryError { kind, what, site: None, stack, pid: None }))
}

/// memcheck's error kind (the XML's `<kind>`) from its text header.
pub fn error_kind(header: &str) -> String {
    let table: &[(&str, &str)] = &[
        ("Invalid read", "InvalidRead"),
        ("Invalid write", "InvalidWrite"),
        ("Jump to the invalid address", "InvalidJump"),
        ("Conditional jump or move depends on uninitialised", "UninitCondition"),
        ("Use of uninitialised value", "UninitValue"),
        ("Syscall param", "SyscallParam"),
        ("Source and destination overlap", "Overlap"),
        ("Argument '", "FishyValue"),
        ("Unaddressable byte(s) found during client check", "ClientCheck"),
        ("Uninitialised byte(s) found during client check", "ClientCheck"),
        ("Illegal memory pool address", "InvalidMemPool"),
        ("realloc() with size 0", "ReallocSizeZero"),
        ("Invalid alignment value", "InvalidAlignment"),
        ("Program aborting because of call to", "ClientAbort"),
    ];
    table.iter().find(|(p, _)| header.starts_with(p)).map_or("Error", |(_, k)| k).to_string()
}

/// `fn (in /obj)`, `fn (/dir/file.c:12)`, `??? (in /obj)`, `fn`.
fn parse_frame(text: &str) -> Frame {
    let (function, location) = match text.rfind(" (") {
        Some(i) if text.ends_with(')') => (&text[..i], Some(&text[i + 2..text.len() - 1])),
        _ => (text, None),
    };
    let function = (function != "???").then(|| function.to_string());
    let mut frame = Frame { function, ..Frame::default() };
    match location {
        Some(loc) if loc.starts_with("in ") => frame.object = Some(loc[3..].to_string()),
        Some(loc) => match loc.rsplit_once(':') {
            Some((file, line)) if line.parse::<u32>().is_ok() => {
                frame.file = Some(file.to_string());
                frame.line = line.parse().ok();
            }
            _ => frame.file = Some(loc.to_string()),
        },
        None => {}
    }
    frame
}

fn file_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// The releasing function as the report names it: `delete[]` rather than
/// `operator delete[](void*)`.
pub fn dealloc_name(function: &str) -> String {
    let base = function.split('(').next().unwrap_or(function).trim();
    match base {
        "operator delete[]" => "delete[]".into(),
        "operator delete" => "delete".into(),
        other => other.to_string(),
    }
}

/// The allocating function as the report names it: `new[]` rather than
/// `operator new[](unsigned long)`.
#[must_use]
pub fn api_name(function: &str) -> String {
    let base = function.split('(').next().unwrap_or(function).trim();
    match base {
        "operator new[]" => "new[]".into(),
        "operator new" => "new".into(),
        other => other.to_string(),
    }
}
