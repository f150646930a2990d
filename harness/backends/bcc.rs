//! bcc's memleak (`memleak-bpfcc`): eBPF uprobes on libc's allocator record
//! every outstanding allocation of one pid with its user stack (a
//! frame-pointer walk done in the kernel).
//!
//! The run, and the bcc 0.26 pitfalls each step answers:
//! - The target starts stopped before exec (`Spec::stop_before_exec`) and
//!   memleak attaches with `-p PID`: `memleak -c CMD` starts the command
//!   before its probes are attached and misses the first allocations.
//! - `-o 0` and `-T` large: the defaults hide allocations younger than
//!   500 ms and show only the top 10 stacks. `--combined-only` is not used
//!   (it crashes in 0.26).
//! - We wait for memleak's first report, which it prints only after every
//!   probe is attached, then resume the target; at its checkpoint SIGSTOP we
//!   take the first complete report printed after the stop, read
//!   /proc/PID/maps (the target is stopped), stop memleak with SIGTERM (in
//!   the background it ignores SIGINT), and let the target finish.
//! - The target runs with one malloc arena and without malloc's own mmaps
//!   (GLIBC_TUNABLES `arena_max=1:mmap_max=0`): memleak keeps one pending
//!   record per thread, and an mmap inside a malloc (a thread's first
//!   arena, or a block above the mmap threshold, which glibc caps at 32 MiB)
//!   overwrites the malloc's: the block was lost, or recorded as a raw mmap
//!   with a stack inside libc.
//! - memleak's report skips every allocation whose stack its stack map
//!   refused (a bucket collision): we read those from its `allocs` map
//!   (`allocs_map`) and report them without a stack. A sample runs with a
//!   fixed layout, so that which stacks collide is the same on every run.
//! - memleak symbolizes with bcc's own resolver; we resolve the addresses
//!   ourselves through DWARF (addr2line), from the module's mapping in
//!   /proc/PID/maps, so that sites are file:line like every other backend's.
//!
//! glibc and libstdc++ are built without frame pointers, so the kernel's
//! walk loses frames there; `recover` puts back what the program's code
//! determines (the caller of `operator new` when its function calls `new`
//! from one place; a `strdup` the program imports, reported without a
//! site) and the rest is explained in `//~[bcc]` notes. Groups whose stack
//! never leaves the C/C++ runtime through a function the program calls are
//! notes, not leaks: at the checkpoint stdio's buffers and the like are
//! outstanding too.

use std::collections::HashMap;
use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol, ObjectSymbolTable};

use crate::backend::{is_runtime_object, Availability, Backend, RunConfig, Target};
use crate::error::Error;
use crate::process::{Child, Layout, Spec};
use crate::report::{End, Frame, Kind, Leak, Process, Region, RegionKind, Report, Stats};
use crate::maps::{self, Mapping};

mod allocs_map;
mod recover;

pub struct Bcc;

const MEMLEAK: &str = "memleak-bpfcc";
const TRACEFS: &str = "/sys/kernel/tracing";
/// How long memleak may take to compile its BPF program (clang runs in its
/// process; on a saturated machine it takes tens of seconds).
const COMPILE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long it may take from its "Attaching" line to its first report.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts at attaching before the run fails (the target waits, stopped).
const ATTACH_ATTEMPTS: u32 = 3;
/// memleak's line between the compile and the probes.
const ATTACHING: &[u8] = b"Attaching to pid";
/// Environment of the target; see the module comment. No mmap at all
/// rather than a high threshold: glibc caps the threshold at 32 MiB, and a
/// bigger block's inner mmap erased memleak's record of its malloc.
const TUNABLES: &str = "glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0";

fn kernel_release() -> Option<String> {
    // SAFETY: an all-zero utsname is valid; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    // SAFETY: uname NUL-terminates its fields.
    Some(unsafe { CStr::from_ptr(u.release.as_ptr()) }.to_string_lossy().into_owned())
}

fn headers_dir(release: &str) -> PathBuf {
    Path::new("/lib/modules").join(release).join("build")
}

fn tracefs_mounted() -> bool {
    Path::new(TRACEFS).join("uprobe_events").exists() || Path::new("/sys/kernel/debug/tracing/uprobe_events").exists()
}

/// Debian's generic header trees: (`linux-headers-X-amd64`, `linux-headers-X-common`), newest first.
fn debian_header_trees() -> Vec<(PathBuf, PathBuf)> {
    let Ok(dir) = std::fs::read_dir("/usr/src") else { return Vec::new() };
    let mut trees: Vec<(PathBuf, PathBuf)> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            let version = name.strip_prefix("linux-headers-")?.strip_suffix("-amd64")?.to_string();
            let common = Path::new("/usr/src").join(format!("linux-headers-{version}-common"));
            (p.join("include").is_dir() && common.is_dir()).then_some((p, common))
        })
        .collect();
    trees.sort_by_key(|t| std::cmp::Reverse(version_key(&t.0)));
    trees
}

fn version_key(p: &Path) -> Vec<u64> {
    p.to_string_lossy().split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect()
}

impl Backend for Bcc {
    fn name(&self) -> &'static str {
        "bcc"
    }

    fn summary(&self) -> &'static str {
        "bcc's memleak: eBPF uprobes on libc's allocator record each outstanding block and its stack, read at the checkpoint"
    }

    fn availability(&self) -> Availability {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Availability::Unavailable {
                reason: "bcc's memleak loads eBPF programs and needs root".into(),
                fix: "run leaklab as root (sudo leaklab ...)".into(),
            };
        }
        if which::which(MEMLEAK).is_err() {
            return Availability::Unavailable {
                reason: format!("{MEMLEAK} is not installed"),
                fix: "sudo leaklab setup   (or: apt-get install -y bpfcc-tools python3-bpfcc linux-headers-amd64)".into(),
            };
        }
        let Some(release) = kernel_release() else {
            return Availability::Unavailable { reason: "uname failed".into(), fix: "none known".into() };
        };
        let build = headers_dir(&release);
        if !build.join("include").is_dir() {
            return Availability::Unavailable {
                reason: format!("no kernel headers for {release}: {} is missing (bcc compiles its BPF program against them)", build.display()),
                fix: {
                    // Name the installed trees when there are some; else the package's.
                    let (amd64, common) = debian_header_trees()
                        .into_iter()
                        .next()
                        .map(|(a, c)| (a.display().to_string(), c.display().to_string()))
                        .unwrap_or_else(|| ("/usr/src/linux-headers-VERSION-amd64".into(), "/usr/src/linux-headers-VERSION-common".into()));
                    format!(
                        "sudo leaklab setup   (or: apt-get install -y linux-headers-amd64 && mkdir -p /lib/modules/{release} && ln -sfn {amd64} {} && ln -sfn {common} /lib/modules/{release}/source)",
                        build.display()
                    )
                },
            };
        }
        if !tracefs_mounted() {
            return Availability::Unavailable {
                reason: format!("tracefs is not mounted at {TRACEFS} (uprobes are created through it)"),
                fix: format!("sudo leaklab setup   (or: mount -t tracefs nodev {TRACEFS})"),
            };
        }
        Availability::Ready
    }

    fn debian_packages(&self) -> &'static [&'static str] {
        &["bpfcc-tools", "python3-bpfcc", "linux-headers-amd64"]
    }

    /// Links Debian's generic headers as this kernel's when it has none (a
    /// kernel Debian did not build), and mounts tracefs when it is not.
    fn prepare(&self) -> Result<(), Error> {
        let release = kernel_release().ok_or_else(|| Error::Os("uname failed".into()))?;
        let modules = Path::new("/lib/modules").join(&release);
        let build = modules.join("build");
        if !build.join("include").is_dir() {
            let (amd64, common) = debian_header_trees().into_iter().next().ok_or_else(|| {
                Error::Usage("no /usr/src/linux-headers-*-amd64 tree: install linux-headers-amd64 first".into())
            })?;
            std::fs::create_dir_all(&modules).map_err(|e| Error::io(&modules, e))?;
            for (link, to) in [(build.clone(), amd64), (modules.join("source"), common)] {
                // A dangling or stale link is replaced; a real directory is never touched.
                if link.is_symlink() {
                    std::fs::remove_file(&link).map_err(|e| Error::io(&link, e))?;
                }
                if !link.exists() {
                    std::os::unix::fs::symlink(&to, &link).map_err(|e| Error::io(&link, e))?;
                    eprintln!("leaklab setup: linked {} -> {}", link.display(), to.display());
                }
            }
        }
        if !tracefs_mounted() {
            let target = c"/sys/kernel/tracing";
            // SAFETY: valid NUL-terminated strings; no data argument.
            let r = unsafe { libc::mount(c"tracefs".as_ptr(), target.as_ptr(), c"tracefs".as_ptr(), 0, std::ptr::null()) };
            if r != 0 {
                return Err(Error::Os(format!("mount -t tracefs tracefs {TRACEFS}: {}", std::io::Error::last_os_error())));
            }
            eprintln!("leaklab setup: mounted tracefs at {TRACEFS}");
        }
        Ok(())
    }

    fn run(&self, target: &Target, config: &RunConfig) -> Result<Report, Error> {
        match run_once(target, config) {
            // A sample runs the same every time: when memleak itself failed
            // after the sample had started, the whole run is repeated once.
            Err(e) if target.sample.is_some() && is_tool_failure(&e) => run_once(target, config),
            r => r,
        }
    }
}

/// Whether an error is memleak's own (it died or hung), not the program's.
fn is_tool_failure(e: &Error) -> bool {
    matches!(e, Error::TargetFailed { program, .. } if program == MEMLEAK)
}

/// Ends a memleak that failed and turns it into an error with its own words:
/// how it ended (when it ended by itself), its stderr, and the end of its stdout.
fn tool_failure(mut memleak: Child, how: &str) -> Error {
    let exited = memleak.has_exited();
    memleak.signal(libc::SIGKILL);
    let (ended, stderr, stdout) = match memleak.finish() {
        Ok(f) => (exited.then(|| f.exit.describe()), f.stderr_text(), String::from_utf8_lossy(&f.stdout).into_owned()),
        Err(e) => (None, format!("(its output could not be read: {e})"), String::new()),
    };
    let how = match ended {
        Some(ended) => format!("{ended} {how}"),
        None => how.to_string(),
    };
    let mut words = stderr;
    if words.trim().is_empty() {
        // Its stdout's last lines then, where bcc prints some of its errors.
        let tail: Vec<&str> = stdout.lines().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
        words = if tail.is_empty() { "(memleak-bpfcc printed nothing)".into() } else { tail.join("\n") };
    }
    Error::TargetFailed { program: MEMLEAK.into(), how, stderr: words }
}

/// Starts memleak on a pid stopped before its exec and waits for its first
/// report, which it prints only once every probe is attached. The target
/// has not run a single instruction of its own yet, so a failed attach (a
/// BPF compile starved on a loaded machine, a probe that did not attach) is
/// retried at no cost.
fn attach(pid: i32, config: &RunConfig) -> Result<Child, Error> {
    let mut failures = Vec::new();
    for attempt in 1..=ATTACH_ATTEMPTS {
        match attach_once(pid, config) {
            Ok(memleak) => return Ok(memleak),
            Err(Error::TargetFailed { how, stderr, .. }) if attempt < ATTACH_ATTEMPTS => failures.push(format!("attempt {attempt}: {how}: {}", stderr.trim())),
            Err(Error::TargetFailed { program, how, stderr }) => {
                let how = format!(
                    "{how} (attempt {attempt} of {ATTACH_ATTEMPTS}; the target had not started yet){}",
                    failures.iter().map(|f| format!("; {f}")).collect::<String>()
                );
                return Err(Error::TargetFailed { program, how, stderr });
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the last attempt returns")
}

fn attach_once(pid: i32, config: &RunConfig) -> Result<Child, Error> {
    let memleak_spec = Spec::new(MEMLEAK, config.timeout + COMPILE_TIMEOUT + PROBE_TIMEOUT)
        .args(["-p", &pid.to_string(), "-a", "-o", "0", "-T", "1000000", "1"])
        // Its reports must reach the file as they are printed.
        .env("PYTHONUNBUFFERED", "1")
        .env_remove("DEBUGINFOD_URLS");
    let mut memleak = Child::spawn(&memleak_spec)?;
    // Two phases, each bounded: compiling the BPF program (clang, in
    // memleak's process: the slow part on a loaded machine) ends with its
    // "Attaching to pid" line; then the probes go in, and the first report follows.
    let compile_deadline = Instant::now() + COMPILE_TIMEOUT;
    let mut probe_deadline = None;
    loop {
        let out = memleak.stdout_so_far();
        if report_starts(&out, 0).is_some() {
            return Ok(memleak);
        }
        if probe_deadline.is_none() && out.windows(ATTACHING.len()).any(|w| w == ATTACHING) {
            probe_deadline = Some(Instant::now() + PROBE_TIMEOUT);
        }
        let (phase, deadline, limit) = match probe_deadline {
            Some(d) => ("while attaching its probes", d, PROBE_TIMEOUT),
            None => ("while compiling its BPF program", compile_deadline, COMPILE_TIMEOUT),
        };
        if memleak.has_exited() {
            return Err(tool_failure(memleak, &format!("before attaching ({phase})")));
        }
        if Instant::now() > deadline {
            return Err(tool_failure(memleak, &format!("did not attach within {} s ({phase})", limit.as_secs())));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Lets a program run for `after` (`--after`); an exit before that is an error.
fn run_for(child: &mut Child, after: Duration, name: &str) -> Result<(), Error> {
    let until = Instant::now() + after;
    while Instant::now() < until {
        if child.has_exited() {
            return Err(Error::TargetFailed {
                program: name.to_string(),
                how: format!("exited before memleak's report at {:.1} s (`--after`): its outstanding allocations went with it", after.as_secs_f64()),
                stderr: String::new(),
            });
        }
        std::thread::sleep(Duration::from_millis(20).min(until.saturating_duration_since(Instant::now())));
    }
    Ok(())
}

/// One run: the target stopped before exec, memleak attached, the report
/// read at the checkpoint (or after `--after`), the target let go (or killed).
fn run_once(target: &Target, config: &RunConfig) -> Result<Report, Error> {
    let started = Instant::now();
    let spec = Spec::new(&target.program, config.timeout)
        .args(&target.args)
        .io(config.io)
        .env("LEAKLAB_CHECKPOINT", "1")
        .env("GLIBC_TUNABLES", TUNABLES)
        .env_remove("DEBUGINFOD_URLS")
        // memleak drops the stack of an allocation whose stack hashes to a
        // bucket another stack holds (see allocs_map), and the kernel's
        // hash is of the return addresses: under ASLR a sample's report
        // changed now and then (one run in ~500 lost stdout's buffer).
        // With a fixed layout a sample's stacks, so its report, are the
        // same on every run.
        .layout(if target.sample.is_some() { Layout::Fixed } else { Layout::Randomized })
        .stop_before_exec();
    let mut child = Child::spawn(&spec)?;
    child.wait_stop()?;
    let pid = child.pid();
    let mut memleak = attach(pid, config)?;

    child.resume();
    // With `--after`, the program is read wherever it is after that
    // long (stopped first, so that the report and the maps agree), and
    // killed afterwards; without, at its checkpoint.
    if let Some(after) = config.after {
        run_for(&mut child, after, &target.name)?;
        child.signal(libc::SIGSTOP);
    }
    child.wait_stop().map_err(|e| match e {
        // A program of the user's has no checkpoint unless it was written with one.
        Error::TargetFailed { program, how, stderr } if target.sample.is_none() => Error::TargetFailed {
            program,
            how: format!("{how} (memleak reads a program while it is stopped: give `--after SECONDS` to read it while it runs, or stop it with raise(SIGSTOP) when LEAKLAB_CHECKPOINT is set, as c-samples/leaklab.h does)"),
            stderr,
        },
        e => e,
    })?;
    let stopped = Instant::now();
    let maps_path = format!("/proc/{pid}/maps");
    let maps_text = std::fs::read_to_string(&maps_path).map_err(|e| Error::io(Path::new(&maps_path), e))?;
    let maps = maps::parse(&maps_text)?;
    let mark = memleak.stdout_so_far().len();
    // The first report begun after the stop is complete once the next one
    // begins, or sooner, once its groups account for every allocation it
    // listed (`-a` lists each before the groups).
    let text = loop {
        let out = memleak.stdout_so_far();
        if let Some(first) = report_starts(&out, mark) {
            if let Some(next) = report_starts(&out, first + 1) {
                break String::from_utf8_lossy(&out[first..next]).into_owned();
            }
            let so_far = String::from_utf8_lossy(&out[first..]).into_owned();
            if so_far.ends_with('\n') && parse_report(&so_far).is_ok_and(|r| r.is_complete()) {
                break so_far;
            }
        }
        if memleak.has_exited() || stopped.elapsed() > config.timeout {
            return Err(tool_failure(
                memleak,
                "without a report after the program stopped (a failure of memleak, not of the program; run it again)",
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Read while memleak still holds its maps and the target is stopped:
    // what its report leaves out.
    let allocs = allocs_map::read(memleak.pid());
    // The target goes on at once; memleak's exit (detaching its probes)
    // takes a second or two and overlaps the rest of the target's run.
    let pause = stopped.elapsed();
    if config.after.is_some() {
        child.signal(libc::SIGKILL);
    } else {
        child.resume();
    }
    memleak.signal(libc::SIGTERM);
    let _ = memleak.finish();
    let finished = child.finish()?;
    if config.after.is_some() {
        // Killed on purpose, after the report.
    } else if let crate::process::Exit::Signal(sig) = finished.exit {
        return Err(Error::TargetFailed {
            program: target.name.clone(),
            how: format!("was killed by {} after its checkpoint", crate::process::signal_name(sig)),
            stderr: finished.stderr_text(),
        });
    }

    let parsed = parse_report(&text)?;
    let mut symbolizer = Symbolizer::default();
    let mut report = Report::new(&target.name, "bcc");
    if config.after.is_some() {
        report.processes.push(Process { pid: pid as u32, parent: None, program: target.name.clone(), end: End::Running, analysed: true });
    }
    let mut modules = recover::Modules::default();
    for group in &parsed.groups {
        let mut frames = group.frames.clone();
        if let Some(address) = modules.skipped_frame(&maps, &frames) {
            frames.insert(1, RawFrame { address, symbol: String::new() });
        }
        let stack: Vec<Frame> = frames.iter().map(|f| symbolizer.frame(&maps, f)).collect();
        let own = stack.iter().any(|f| f.object.as_deref().is_some_and(|o| !is_runtime_object(o)));
        if !own {
            // The walk ended in the runtime. A function the program imports
            // (strdup, getline) was called by the program from a lost frame:
            // its leak, without a site. Anything else is the runtime's own.
            // Its blocks must be malloc's (in [heap]: the run has no mmapped
            // chunks): pthread_create's thread stacks are the runtime's.
            let names = frames.first().map(|f| modules.function_names(&maps, f.address)).unwrap_or_default();
            let imports = modules.program_imports(&maps);
            if !names.iter().any(|n| imports.contains(n)) || !in_heap(&maps, &parsed.allocations, group) {
                let top = stack.first().and_then(|f| f.function.clone()).unwrap_or_else(|| "??".into());
                report.notes.push(format!(
                    "{} bytes in {} allocations from a stack that never leaves the C/C++ runtime (innermost: {top}): a runtime buffer, or a caller lost to libc's missing frame pointers",
                    group.bytes, group.count
                ));
                continue;
            }
        }
        let mut leak = Leak::new(Kind::Unclassified, group.bytes, group.count);
        leak.api = frames.first().and_then(|f| symbolizer.api(&maps, f, &stack[0]));
        if leak.api.as_deref().is_some_and(|a| a.starts_with("mmap")) {
            leak.region = region_of(&maps, &parsed.allocations, group);
        }
        leak.site = target.site_of(&stack);
        leak.stack = stack;
        report.leaks.push(leak);
    }
    add_stackless(&mut report, &maps, &allocs?);
    report.stats = Some(Stats {
        wall_ms: started.elapsed().as_millis() as u64,
        peak_rss_kib: Some(finished.peak_rss_kib),
        pause_ms: Some(pause.as_secs_f64() * 1000.0),
    });
    Ok(report)
}

/// The allocations memleak recorded without a stack, which its report
/// leaves out: leaks without a stack or site, one per block size (a
/// runtime buffer among them cannot be told apart), and a note that says
/// why they have none. A full map is said too: past it nothing was recorded.
fn add_stackless(report: &mut Report, maps: &[Mapping], allocs: &allocs_map::Allocs) {
    let mut by_size: std::collections::BTreeMap<(u64, Option<Region>), u64> = std::collections::BTreeMap::new();
    for &(address, size, _) in &allocs.stackless {
        // malloc's blocks are in [heap] (the run has one arena and no
        // mmapped chunks); anything else is a mapping of its own.
        let region = mapping_of(maps, address).filter(|m| m.path_text() != "[heap]").and_then(region_at);
        *by_size.entry((size, region)).or_default() += 1;
    }
    for ((size, region), count) in by_size {
        let mut leak = Leak::new(Kind::Unclassified, size * count, count);
        leak.region = region;
        report.leaks.push(leak);
    }
    if let Some(&(_, _, id)) = allocs.stackless.first() {
        let bytes: u64 = allocs.stackless.iter().map(|(_, s, _)| s).sum();
        report.notes.push(format!(
            "{bytes} bytes in {} allocations outstanding without a stack ({}): memleak's report leaves them out; they are listed from its `allocs` map, without a site",
            allocs.stackless.len(),
            allocs_map::stackid_error(id)
        ));
    }
    if allocs.entries >= u64::from(allocs.max_entries) {
        report.notes.push(format!(
            "memleak's table of outstanding allocations was full ({} entries): allocations past that were not recorded",
            allocs.max_entries
        ));
    }
}

/// The byte offset of the first report header at or after `from`.
fn report_starts(out: &[u8], from: usize) -> Option<usize> {
    const HEADER: &[u8] = b"stacks with outstanding allocations:";
    let mut line_start = from;
    // Headers start a line; find a line beginning at or after `from`.
    if from > 0 && out.get(from - 1) != Some(&b'\n') {
        line_start = out[from..].iter().position(|&b| b == b'\n').map(|p| from + p + 1)?;
    }
    let mut pos = line_start;
    while pos < out.len() {
        let end = out[pos..].iter().position(|&b| b == b'\n').map_or(out.len(), |p| pos + p);
        let line = &out[pos..end];
        if line.starts_with(b"[") && line.ends_with(HEADER) && end < out.len() {
            return Some(pos);
        }
        pos = end + 1;
    }
    None
}

/// One frame as memleak prints it: the address and bcc's symbol (`fn+0x1a [libc.so.6]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub address: u64,
    pub symbol: String,
}

/// Outstanding allocations that share a stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub bytes: u64,
    pub count: u64,
    pub frames: Vec<RawFrame>,
}

/// One report of memleak: each allocation (`-a`), then the groups by stack.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemleakReport {
    /// (address, size) of each outstanding allocation.
    pub allocations: Vec<(u64, u64)>,
    pub groups: Vec<Group>,
}

impl MemleakReport {
    /// Whether the groups printed so far account for every allocation the
    /// report listed: a report that is still being printed does not.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        !self.groups.is_empty() && self.groups.iter().map(|g| g.count).sum::<u64>() == self.allocations.len() as u64
    }
}

fn malformed(message: impl Into<String>) -> Error {
    Error::MalformedOutput { tool: MEMLEAK.into(), message: message.into() }
}

/// Parses one report of `memleak -a` (from its header line to the next header).
pub fn parse_report(text: &str) -> Result<MemleakReport, Error> {
    let mut lines = text.lines().peekable();
    match lines.next() {
        Some(h) if h.starts_with('[') && h.ends_with("stacks with outstanding allocations:") => {}
        other => return Err(malformed(format!("a report starts with `[time] Top N stacks ...`, not {other:?}"))),
    }
    let mut out = MemleakReport::default();
    for line in lines {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(rest) = t.strip_prefix("addr = ") {
            let (addr, size) = rest.split_once(" size = ").ok_or_else(|| malformed(format!("bad allocation line `{t}`")))?;
            let addr = u64::from_str_radix(addr.trim(), 16).map_err(|_| malformed(format!("bad address in `{t}`")))?;
            let size = size.trim().parse().map_err(|_| malformed(format!("bad size in `{t}`")))?;
            out.allocations.push((addr, size));
        } else if let Some((bytes, rest)) = t.split_once(" bytes in ") {
            let count = rest.strip_suffix(" allocations from stack").ok_or_else(|| malformed(format!("bad group line `{t}`")))?;
            out.groups.push(Group {
                bytes: bytes.parse().map_err(|_| malformed(format!("bad byte count in `{t}`")))?,
                count: count.parse().map_err(|_| malformed(format!("bad allocation count in `{t}`")))?,
                frames: Vec::new(),
            });
        } else if let Some(hex) = t.strip_prefix("0x") {
            let (addr, symbol) = hex.split_once(|c: char| c.is_whitespace()).unwrap_or((hex, ""));
            let address = u64::from_str_radix(addr, 16).map_err(|_| malformed(format!("bad frame `{t}`")))?;
            let group = out.groups.last_mut().ok_or_else(|| malformed(format!("a frame before any group: `{t}`")))?;
            group.frames.push(RawFrame { address, symbol: symbol.trim().to_string() });
        } else {
            return Err(malformed(format!("unexpected line `{t}`")));
        }
    }
    if let Some(g) = out.groups.iter().find(|g| g.frames.is_empty()) {
        return Err(malformed(format!("a group of {} bytes without a stack", g.bytes)));
    }
    Ok(out)
}

/// Whether the group's blocks are malloc's: of one size, and every
/// outstanding allocation of that size in `[heap]` (memleak's `-a` list
/// does not say which allocation is whose). A group of mixed sizes stays a
/// note: no annotation's shape could match it.
fn in_heap(maps: &[Mapping], allocations: &[(u64, u64)], group: &Group) -> bool {
    if group.count == 0 || group.bytes % group.count != 0 {
        return false;
    }
    let size = group.bytes / group.count;
    let mut of_size = allocations.iter().filter(|(_, s)| *s == size).peekable();
    of_size.peek().is_some() && of_size.all(|(a, _)| mapping_of(maps, *a).is_some_and(|m| m.path_text() == "[heap]"))
}

fn mapping_of(maps: &[Mapping], address: u64) -> Option<&Mapping> {
    maps.iter().find(|m| m.start <= address && address < m.end)
}

/// The region of an mmap group: the mapping that holds an outstanding
/// allocation of the group's block size (memleak's `-a` list does not say
/// which allocation belongs to which stack, so a size that appears in two
/// kinds of mappings gives no answer).
pub fn region_of(maps: &[Mapping], allocations: &[(u64, u64)], group: &Group) -> Option<Region> {
    let size = group.bytes / group.count.max(1);
    let mut kinds = allocations
        .iter()
        .filter(|(_, s)| *s == size)
        .filter_map(|(a, _)| mapping_of(maps, *a))
        .filter_map(|m| m.region_kind().map(|k| (k, m)));
    let (kind, m) = kinds.next()?;
    if kinds.any(|(k, _)| k != kind) {
        return None;
    }
    region_at(m)
}

/// The region of the mapping `m`.
fn region_at(m: &Mapping) -> Option<Region> {
    let kind = m.region_kind()?;
    // A file the program unlinked (a temporary) has no name worth keeping.
    let path = m.path.clone().filter(|p| !p.ends_with(" (deleted)") && !matches!(kind, RegionKind::PrivateAnon | RegionKind::SharedAnon));
    Some(Region { kind, flags: Some(m.perms.clone()), path })
}

/// DWARF (and PLT) look-ups in the modules of the target, cached per file.
#[derive(Default)]
struct Symbolizer {
    loaders: HashMap<String, Option<addr2line::Loader>>,
    files: HashMap<String, Option<Vec<u8>>>,
}

impl Symbolizer {
    fn loader(&mut self, path: &str) -> Option<&addr2line::Loader> {
        self.loaders.entry(path.to_string()).or_insert_with(|| addr2line::Loader::new(path).ok()).as_ref()
    }

    fn bytes(&mut self, path: &str) -> Option<&[u8]> {
        self.files.entry(path.to_string()).or_insert_with(|| std::fs::read(path).ok()).as_deref()
    }

    /// The ELF virtual address of a run-time address inside `m`.
    fn elf_address(&mut self, m: &Mapping, address: u64) -> Option<u64> {
        let file_offset = address - m.start + m.offset;
        let data = self.bytes(m.path_text())?;
        let elf = object::File::parse(data).ok()?;
        elf.segments().find_map(|seg| {
            let (off, size) = seg.file_range();
            (off <= file_offset && file_offset < off + size).then(|| seg.address() + (file_offset - off))
        })
    }

    /// A frame: DWARF file:line where the module has it, else bcc's symbol.
    fn frame(&mut self, maps: &[Mapping], raw: &RawFrame) -> Frame {
        let mut frame = Frame { function: bcc_function(&raw.symbol), ..Frame::default() };
        let Some(m) = mapping_of(maps, raw.address).filter(|m| m.path_text().starts_with('/')).cloned() else {
            return frame;
        };
        frame.object = m.path.clone();
        // Every address of a user stack is a return address: look up the call before it.
        let Some(vaddr) = self.elf_address(&m, raw.address) else { return frame };
        let probe = vaddr.saturating_sub(1);
        if let Some(loader) = self.loader(m.path_text()) {
            if let Ok(Some(loc)) = loader.find_location(probe) {
                frame.file = loc.file.map(str::to_string);
                frame.line = loc.line;
            }
            if let Ok(mut frames) = loader.find_frames(probe) {
                // The innermost (inlined) function names the frame.
                if let Ok(Some(f)) = frames.next() {
                    if let Some(name) = f.function.as_ref().and_then(|n| n.demangle().ok()) {
                        frame.function = Some(name.into_owned());
                    }
                }
            }
            if frame.function.is_none() {
                frame.function = loader.find_symbol(probe).map(demangle);
            }
        }
        frame
    }

    /// The allocating API of a group: the runtime function its innermost
    /// frame is in, or, when the program calls the allocator itself, the
    /// function its `call` instruction goes to through the PLT.
    fn api(&mut self, maps: &[Mapping], raw: &RawFrame, frame: &Frame) -> Option<String> {
        let object = frame.object.as_deref()?;
        if is_runtime_object(object) {
            return frame.function.as_deref().map(api_of_function);
        }
        let m = mapping_of(maps, raw.address)?.clone();
        let ret = self.elf_address(&m, raw.address)?;
        let data = self.bytes(m.path_text())?;
        let elf = object::File::parse(data).ok()?;
        plt_callee(&elf, ret).map(|s| api_of_function(&s))
    }
}

/// Reads `len` bytes at an ELF virtual address from its section.
fn read_at<'a>(elf: &object::File<'a>, vaddr: u64, len: u64) -> Option<&'a [u8]> {
    elf.sections().find_map(|s| {
        let (a, size) = (s.address(), s.size());
        if a <= vaddr && vaddr + len <= a + size {
            let data = s.data().ok()?;
            data.get((vaddr - a) as usize..(vaddr - a + len) as usize)
        } else {
            None
        }
    })
}

/// The function a `call` ending at `ret` calls through the PLT
/// (`call rel32` to a stub `[endbr64] [bnd] jmp *GOT(%rip)`, or
/// `call *GOT(%rip)` without a PLT), named by the GOT slot's relocation.
fn plt_callee(elf: &object::File, ret: u64) -> Option<String> {
    let got = if read_at(elf, ret - 5, 1)? == [0xe8] {
        let rel = i32::from_le_bytes(read_at(elf, ret - 4, 4)?.try_into().ok()?);
        return stub_target(elf, ret.wrapping_add_signed(i64::from(rel)));
    } else if read_at(elf, ret - 6, 2)? == [0xff, 0x15] {
        let disp = i32::from_le_bytes(read_at(elf, ret - 4, 4)?.try_into().ok()?);
        ret.wrapping_add_signed(i64::from(disp))
    } else {
        return None;
    };
    got_symbol(elf, got)
}

/// The function a PLT stub at `stub` jumps to, by its GOT slot's relocation.
fn stub_target(elf: &object::File, mut stub: u64) -> Option<String> {
    if read_at(elf, stub, 4) == Some(&[0xf3, 0x0f, 0x1e, 0xfa]) {
        stub += 4;
    }
    if read_at(elf, stub, 1) == Some(&[0xf2]) {
        stub += 1;
    }
    if read_at(elf, stub, 2)? != [0xff, 0x25] {
        return None;
    }
    let disp = i32::from_le_bytes(read_at(elf, stub + 2, 4)?.try_into().ok()?);
    got_symbol(elf, (stub + 6).wrapping_add_signed(i64::from(disp)))
}

fn got_symbol(elf: &object::File, got: u64) -> Option<String> {
    let symbols = elf.dynamic_symbol_table()?;
    elf.dynamic_relocations()?.find_map(|(offset, r)| match r.target() {
        object::RelocationTarget::Symbol(i) if offset == got => symbols.symbol_by_index(i).ok()?.name().ok().map(str::to_string),
        _ => None,
    })
}

/// bcc's `__GI___strdup+0x1a [libc.so.6]` → `strdup`; None for `[unknown]`.
fn bcc_function(symbol: &str) -> Option<String> {
    let name = symbol.split(" [").next()?.trim();
    if name.is_empty() || name == "[unknown]" {
        return None;
    }
    let name = match name.rfind("+0x") {
        Some(i) => &name[..i],
        None => name,
    };
    let name = name.strip_prefix("__GI___").or_else(|| name.strip_prefix("__GI_")).unwrap_or(name);
    Some(demangle(name))
}

fn demangle(name: &str) -> String {
    crate::symbolize::demangle(name)
}

/// The report's word for an allocator: `new`, `new[]`, `malloc`, `mmap`...
fn api_of_function(f: &str) -> String {
    let base = f.split('(').next().unwrap_or(f).trim();
    let base = base.split('@').next().unwrap_or(base);
    match base {
        "operator new" => "new".into(),
        "operator new[]" => "new[]".into(),
        "mmap64" | "__mmap" => "mmap".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names() {
        assert_eq!(bcc_function("__GI___strdup+0x1a [libc.so.6]").as_deref(), Some("strdup"));
        assert_eq!(bcc_function("[unknown]"), None);
        assert_eq!(api_of_function("operator new(unsigned long)"), "new");
    }
}
