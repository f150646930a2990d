//! Lab 06: the source article's ptrace heap dumper, written by the student
//! in C. The checker starts the lab's target, which leaks a random number of
//! "test_memory" strings and three copies of a random word and tells the
//! checker both, and runs the student's dumper on its pid. The checks see
//! that the dump is the target's real heap (range, strings, counts nobody
//! can know in advance), and that the target was really traced: it sleeps in
//! epoll_wait, which a ptrace stop (and nothing that only reads its memory)
//! interrupts; the dumper is built with a destructor that stops it at exit,
//! so the checker sees whether it detached itself before the kernel does it
//! for the exiting tracer; its ptrace() calls go through a wrapper that
//! notes, at PTRACE_DETACH, that the dumper was the target's tracer and the
//! target was stopped (a stop signal alone traces nothing); and afterwards
//! the target runs on.

use std::time::{Duration, Instant};

use regex::Regex;

use super::{compile, Checks, Ctx, Problem};
use crate::backend::Availability;
use crate::error::Error;
use crate::process::{self, Child, Event, Spec};

pub const CHECKS: &[&str] = &[
    "builds",
    "rejects a bad pid",
    "prints the heap range",
    "counts test_memory",
    "finds the word",
    "stops the target while copying",
    "detaches before exiting",
    "target runs on",
];

const SOURCE: &str = "heapdump.c";

/// Linked into the student's dumper: with the variable set, it stops itself
/// on its way out (after main returns or calls exit), so the checker can look
/// at the target while its tracer still exists.
const EXIT_STOP: &str = "/* Added by leaklab's checker: stop at exit so that it can look at the target. */
#include <signal.h>
#include <stdlib.h>
__attribute__((destructor)) static void leaklab_exit_stop(void)
{
    if (getenv(\"LEAKLAB_LAB_EXIT_STOP\") != NULL)
        raise(SIGSTOP);
}
";
const EXIT_STOP_FILE: &str = "leaklab_exit_stop.c";

/// Linked into the student's dumper with `-Wl,--wrap=ptrace`: every ptrace()
/// call goes through it. Just before a PTRACE_DETACH it writes the tracee's
/// `TracerPid` and `State` to the file the checker names, which shows that
/// the dumper really held the target in a ptrace stop (a `kill(pid,
/// SIGSTOP)` stops it too, but traces nothing).
const PTRACE_WITNESS: &str = "/* Added by leaklab's checker: note what a PTRACE_DETACH finds. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
long __real_ptrace(int request, ...);
long __wrap_ptrace(int request, ...)
{
    va_list ap;
    va_start(ap, request);
    int pid = va_arg(ap, int);
    void *addr = va_arg(ap, void *);
    void *data = va_arg(ap, void *);
    va_end(ap);
    const char *log = getenv(\"LEAKLAB_LAB_PTRACE_LOG\");
    if (request == 17 /* PTRACE_DETACH */ && log != NULL) {
        char path[64], line[256];
        int tracer = -1;
        char state = '?';
        snprintf(path, sizeof path, \"/proc/%d/status\", pid);
        FILE *f = fopen(path, \"r\");
        while (f != NULL && fgets(line, sizeof line, f) != NULL) {
            if (strncmp(line, \"State:\", 6) == 0)
                sscanf(line + 6, \" %c\", &state);
            else if (strncmp(line, \"TracerPid:\", 10) == 0)
                tracer = atoi(line + 10);
        }
        if (f != NULL)
            fclose(f);
        FILE *out = fopen(log, \"a\");
        if (out != NULL) {
            fprintf(out, \"detach pid=%d tracer=%d self=%d state=%c\\n\", pid, tracer, (int)getpid(), state);
            fclose(out);
        }
    }
    return __real_ptrace(request, pid, addr, data);
}
";
const PTRACE_WITNESS_FILE: &str = "leaklab_ptrace_witness.c";
const PTRACE_LOG: &str = "ptrace-detach.log";

/// The target's states the witness saw at the dumper's PTRACE_DETACHes of
/// `pid` while the dumper was its tracer.
fn states_at_detach(log: &str, pid: i32) -> Vec<String> {
    let re = Regex::new(r"^detach pid=(-?\d+) tracer=(-?\d+) self=(\d+) state=(\S)$").expect("valid regex");
    log.lines().filter_map(|l| re.captures(l)).filter(|c| c[1].parse() == Ok(pid) && c[2] == c[3]).map(|c| c[4].to_string()).collect()
}

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

/// What the target says about itself: `target: pid P, N copies of test_memory, 3 of WORD`.
fn target_says(out: &str) -> Option<(u64, String)> {
    let re = Regex::new(r"target: pid \d+, (\d+) copies of test_memory, 3 of (\S+)").expect("valid regex");
    let c = re.captures(out)?;
    Some((c[1].parse().ok()?, c[2].to_string()))
}

/// Polls until `f` holds or `limit` passes.
fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn stopped(state: &str) -> bool {
    state.starts_with('T') || state.starts_with('t')
}

pub fn run(ctx: &Ctx, checks: &mut Checks) -> Result<(), Error> {
    let exit_stop = ctx.path(EXIT_STOP_FILE);
    std::fs::write(&exit_stop, EXIT_STOP).map_err(|e| Error::io(&exit_stop, e))?;
    let witness = ctx.path(PTRACE_WITNESS_FILE);
    std::fs::write(&witness, PTRACE_WITNESS).map_err(|e| Error::io(&witness, e))?;
    let build = compile::build(ctx, &[SOURCE, EXIT_STOP_FILE, PTRACE_WITNESS_FILE], "heapdump", &["-Wl,--wrap=ptrace"])?;
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

    let mut target = Child::spawn(&Spec::new(ctx.path("target"), Duration::from_secs(120)).env("LEAKLAB_CHECKPOINT", "1"))?;
    target.wait_stop()?;
    let pid = target.pid();
    let said = String::from_utf8_lossy(&target.stdout_so_far()).into_owned();
    let (copies, word) = target_says(&said).ok_or_else(|| Error::LabSetup(format!("the lab's target did not say what it leaked: {said:?}")))?;
    let heap = heap_range(pid)?.ok_or_else(|| Error::Os("the target has no [heap] mapping".into()))?;
    // It has leaked everything: let it run on into its epoll_wait, so the
    // dumper meets a live process whose wait a ptrace stop interrupts.
    target.resume();
    if !wait_until(Duration::from_secs(10), || status(pid).is_ok_and(|(s, _)| s.starts_with('S'))) {
        return Err(Error::Os("the lab's target did not go to sleep after its checkpoint".into()));
    }

    let mut run = Child::spawn(&Spec::new(&dumper, Duration::from_secs(30)).arg(pid.to_string()).env("LEAKLAB_LAB_EXIT_STOP", "1").env("LEAKLAB_LAB_PTRACE_LOG", ctx.path(PTRACE_LOG)))?;
    // At the dumper's exit stop its tracing, if it never detached, is still on.
    let at_exit = match run.wait_event()? {
        Event::Stopped(_) => {
            let seen = status(pid)?;
            run.resume();
            Some(seen)
        }
        Event::Exited(_) => None,
    };
    let done = run.finish()?;
    let out = String::from_utf8_lossy(&done.stdout).into_owned();
    // A stop interrupts the target's epoll_wait; it says so once it runs again.
    let interrupted = wait_until(Duration::from_secs(3), || String::from_utf8_lossy(&target.stdout_so_far()).contains("target: interrupted"));
    let (state, _) = status(pid)?;
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
                    vec![Problem::at(&shown, None, format!("the target's heap is {:x}-{:x}; the dumper says {:x}-{:x}: read it from the target's own /proc/PID/maps", heap.0, heap.1, got.0, got.1))]
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
        // The count and the word are random, new on every check: they can only come from the target's heap.
        for (name, text, want) in [("counts test_memory", "test_memory", copies), ("finds the word", word.as_str(), 3)] {
            let problems = match count_of(text) {
                Some(n) if n == want => Vec::new(),
                Some(n) => vec![Problem::at(&shown, None, format!("this time the target's heap held {want} copies of `{text}`; the dumper counts {n}"))],
                None => vec![Problem::at(
                    &shown,
                    None,
                    format!("no line `COUNT {text}`: this time the target's heap held {want} copies of that NUL-terminated string"),
                )],
            };
            checks.record(name, problems);
        }
    }
    // Traced: still the target's tracer at exit, or detached it from a ptrace stop.
    let log = std::fs::read_to_string(ctx.path(PTRACE_LOG)).unwrap_or_default();
    let at_detach = states_at_detach(&log, pid);
    let traced = at_exit.as_ref().is_some_and(|(_, t)| *t != 0) || at_detach.iter().any(|s| stopped(s));
    let stopped_somehow = interrupted || at_exit.as_ref().is_some_and(|(s, _)| stopped(s)) || stopped(&state);
    checks.record(
        "stops the target while copying",
        if traced {
            Vec::new()
        } else if !at_detach.is_empty() {
            vec![Problem::at(
                &shown,
                None,
                "the dumper was the target's tracer, but the target was not stopped when it detached: the attach only asks for a stop; wait for it (waitpid) before copying",
            )]
        } else if stopped_somehow {
            vec![Problem::at(
                &shown,
                None,
                "the target was stopped while the dumper ran, but never traced by it: a stop signal freezes it, yet the lab's subject is ptrace: attach, wait for the tracing stop, copy, then PTRACE_DETACH",
            )]
        } else {
            vec![Problem::at(
                &shown,
                None,
                "the target was never stopped while the dumper ran, so its heap was copied while it could still change: attach with ptrace and wait for the stop before reading /proc/PID/mem",
            )]
        },
    );
    checks.record(
        "detaches before exiting",
        match &at_exit {
            Some((_, tracer)) if *tracer != 0 => vec![Problem::at(
                &shown,
                None,
                "when the dumper exits, the target is still traced by it; the kernel detaches an exiting tracer's tracees, but a tool that lives on (a debugger, a profiler) would hold the target: PTRACE_DETACH once the copy is made",
            )],
            Some((s, _)) if stopped(s) => vec![Problem::at(&shown, None, format!("when the dumper exits, the target is `{s}`: detach so that it runs on"))],
            _ => Vec::new(),
        },
    );
    checks.record(
        "target runs on",
        if stopped(&state) {
            vec![Problem::at(&shown, None, format!("after the dumper, the target is `{state}`: PTRACE_DETACH with signal 0 lets it run on; detach on every path"))]
        } else {
            Vec::new()
        },
    );
    Ok(())
}
