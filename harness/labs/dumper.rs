//! Lab 06: the source article's ptrace heap dumper, written by the student
//! in C. The checker starts the lab's target (it leaks a random number of
//! "test_memory" strings and three copies of a random word), waits for its
//! checkpoint, lets it run on, runs the student's dumper on its pid, and
//! checks the heap range, the strings and their counts, and that the target
//! is afterwards running and untraced.

use std::time::Duration;

use regex::Regex;

use super::{compile, Checks, Ctx, Problem};
use crate::backend::Availability;
use crate::error::Error;
use crate::process::{self, Child, Spec};

pub const CHECKS: &[&str] =
    &["builds", "rejects a bad pid", "prints the heap range", "counts test_memory", "finds the word", "target runs on", "target is not traced"];

const SOURCE: &str = "heapdump.c";

/// Attaching to a process that is not one's child needs root, or a Yama
/// ptrace_scope of 0 for one's own processes.
#[must_use]
pub fn availability() -> Availability {
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").ok().and_then(|s| s.trim().parse::<u32>().ok()).unwrap_or(0);
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    match scope {
        3 => Availability::Unavailable { reason: "Yama's ptrace_scope is 3: no process may attach to another".into(), fix: "reboot with kernel.yama.ptrace_scope below 3".into() },
        s if s >= 1 && !root => Availability::Unavailable {
            reason: format!("Yama's ptrace_scope is {s}: only root may attach to a process that is not its child"),
            fix: "run the check as root (sudo leaklab lab check 06), or: sudo sysctl kernel.yama.ptrace_scope=0".into(),
        },
        _ => Availability::Ready,
    }
}

/// `State:` and `TracerPid:` of /proc/PID/status.
fn status(pid: i32) -> Result<(String, i32), Error> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(path.as_ref(), e))?;
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_string());
    let state = field("State:").unwrap_or_default();
    let tracer = field("TracerPid:").and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok((state, tracer))
}

/// The [heap] range of /proc/PID/maps, as maps prints it.
fn heap_range(pid: i32) -> Result<Option<(u64, u64)>, Error> {
    let path = format!("/proc/{pid}/maps");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(path.as_ref(), e))?;
    Ok(crate::maps::parse(&text)?.into_iter().find(|m| m.pseudo() == Some("[heap]")).map(|m| (m.start, m.end)))
}

/// Eight hex digits from the clock and the pid: a word the dumper cannot know in advance.
fn random_word() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("leaklab-{:08x}", nanos ^ (std::process::id() << 16))
}

pub fn run(ctx: &Ctx, checks: &mut Checks) -> Result<(), Error> {
    let build = compile::build(ctx, &[SOURCE], "heapdump", &[])?;
    if !checks.record("builds", build.problems()) {
        return Ok(());
    }
    let target_build = compile::build(ctx, &["target.c"], "target", &[])?;
    if !target_build.ok {
        return Err(Error::LabSetup(format!("the lab's target.c does not build:\n{}", target_build.diagnostics)));
    }
    let shown = ctx.shown(SOURCE);
    let dumper = ctx.path("heapdump");

    // A pid that cannot exist (above the kernel's PID_MAX_LIMIT).
    let bad = process::run(&Spec::new(&dumper, Duration::from_secs(10)).arg("4194305"))?;
    let mut problems = Vec::new();
    if bad.exit.success() {
        problems.push(Problem::at(&shown, None, "`heapdump 4194305` (no such process) exits with status 0; it should fail with a message"));
    } else if bad.stderr.is_empty() {
        problems.push(Problem::at(&shown, None, format!("`heapdump 4194305` {} without a word on stderr", bad.exit.describe())));
    }
    checks.record("rejects a bad pid", problems);

    let copies = 5 + (std::process::id() % 30) as u64;
    let word = random_word();
    let mut target = Child::spawn(&Spec::new(ctx.path("target"), Duration::from_secs(120)).arg(copies.to_string()).arg(&word).env("LEAKLAB_CHECKPOINT", "1"))?;
    target.wait_stop()?;
    let pid = target.pid();
    let heap = heap_range(pid)?.ok_or_else(|| Error::Os("the target has no [heap] mapping".into()))?;
    // It has leaked everything: let it run on, so the dumper meets a live process.
    target.resume();
    std::thread::sleep(Duration::from_millis(100));

    let done = process::run(&Spec::new(&dumper, Duration::from_secs(30)).arg(pid.to_string()))?;
    let out = String::from_utf8_lossy(&done.stdout).into_owned();
    let (state, tracer) = status(pid)?;
    // Leave the target runnable before it is killed, whatever the dumper did.
    target.resume();
    drop(target);

    if !done.exit.success() {
        let why = format!("`heapdump PID` on the running target {}: {}", done.exit.describe(), done.stderr_text().lines().last().unwrap_or(""));
        for name in ["prints the heap range", "counts test_memory", "finds the word"] {
            checks.record(name, vec![Problem::at(&shown, None, why.clone())]);
        }
    } else {
        let first = out.lines().next().unwrap_or("");
        let range = Regex::new(r"^heap ([0-9a-f]+)-([0-9a-f]+) (\d+) bytes$").expect("valid regex");
        let problems = match range.captures(first) {
            None => vec![Problem::at(&shown, None, format!("the first line should be `heap START-END SIZE bytes` (hex as in /proc/PID/maps); it is `{first}`"))],
            Some(c) => {
                let got = (u64::from_str_radix(&c[1], 16).unwrap_or(0), u64::from_str_radix(&c[2], 16).unwrap_or(0));
                let size: u64 = c[3].parse().unwrap_or(0);
                if got != heap {
                    vec![Problem::at(&shown, None, format!("the heap is {:x}-{:x}; the dumper says {:x}-{:x}", heap.0, heap.1, got.0, got.1))]
                } else if size != heap.1 - heap.0 {
                    vec![Problem::at(&shown, None, format!("the heap is {} bytes; the dumper says {size}", heap.1 - heap.0))]
                } else {
                    Vec::new()
                }
            }
        };
        checks.record("prints the heap range", problems);
        let counted = Regex::new(r"^\s*(\d+) (.+)$").expect("valid regex");
        let count_of = |s: &str| out.lines().skip(1).filter_map(|l| counted.captures(l)).find(|c| &c[2] == s).and_then(|c| c[1].parse::<u64>().ok());
        for (name, text, want) in [("counts test_memory", "test_memory", copies), ("finds the word", word.as_str(), 3)] {
            let problems = match count_of(text) {
                Some(n) if n == want => Vec::new(),
                Some(n) => vec![Problem::at(&shown, None, format!("the heap holds {want} copies of `{text}`; the dumper counts {n}"))],
                None => vec![Problem::at(
                    &shown,
                    None,
                    format!("no line `COUNT {text}`: the heap holds {want} copies of that NUL-terminated string (the target ran with `{copies} {word}`)"),
                )],
            };
            checks.record(name, problems);
        }
    }
    checks.record(
        "target runs on",
        if state.starts_with('T') || state.starts_with('t') {
            vec![Problem::at(&shown, None, format!("after the dumper, the target is `{state}`: detach so that it runs on"))]
        } else {
            Vec::new()
        },
    );
    checks.record(
        "target is not traced",
        if tracer != 0 {
            vec![Problem::at(&shown, None, format!("after the dumper exited, the target is still traced by pid {tracer}: PTRACE_DETACH it"))]
        } else {
            Vec::new()
        },
    );
    Ok(())
}
