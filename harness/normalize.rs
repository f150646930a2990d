//! Normalization of reports for snapshots: one ordered, append-only list of
//! rules. A new rule goes at the end, so that old snapshots stay valid.

use std::sync::LazyLock;

use regex::Regex;

use crate::report::{Frame, Report};

/// One rule: its name (for the docs and for `leaklab run --normalize`) and what it does.
pub struct Rule {
    pub name: &'static str,
    pub why: &'static str,
    pub apply: fn(&mut Report),
}

/// The rules, in the order they run.
pub const RULES: &[Rule] = &[
    Rule { name: "drop-stats", why: "wall time and memory vary from run to run", apply: drop_stats },
    Rule { name: "addresses", why: "addresses change with ASLR", apply: addresses },
    Rule { name: "pids", why: "pids change from run to run", apply: pids },
    Rule { name: "paths", why: "checkouts and build directories differ: keep file names only", apply: paths },
    Rule { name: "frames-below-main", why: "libc's start-up frames say nothing about the leak", apply: frames_below_main },
    Rule {
        name: "runtime-lines",
        why: "line numbers inside the C runtime and the tools change with their versions",
        apply: runtime_lines,
    },
    Rule { name: "sort", why: "backends report in hash or address order", apply: sort },
    Rule {
        name: "bad-frees",
        why: "the stacks of bad frees get the stack rules above (paths, frames below main, runtime lines), and a stable order",
        apply: bad_frees,
    },
    Rule {
        name: "growth-figures",
        why: "how much a process grows in a time window depends on the machine's speed: keep where it grows, not how much",
        apply: growth_figures,
    },
    Rule {
        name: "process-ordinals",
        why: "the pids of a run's processes change from run to run: each becomes its rank in the order the processes are listed (1 for the program itself)",
        apply: process_ordinals,
    },
    Rule {
        name: "pids-in-contents",
        why: "a forked process often writes its pid (getpid) into what it leaks: in a report of several processes, numbers inside contents become N",
        apply: pids_in_contents,
    },
    Rule {
        name: "memory-errors",
        why: "memory errors get the stack rules of bad frees, their texts the address rule, and a stable order",
        apply: memory_errors,
    },
];

/// The rules that only tidy a report for a reader (file names, no start-up
/// frames, a stable order); the others put placeholders in place of real
/// figures, which is for snapshots only.
pub const READING: &[&str] = &["paths", "frames-below-main", "sort"];

/// A report as a person reads it: the [`READING`] rules, in order.
#[must_use]
pub fn for_reading(mut report: Report) -> Report {
    for rule in RULES.iter().filter(|r| READING.contains(&r.name)) {
        (rule.apply)(&mut report);
    }
    report
}

/// Applies every rule, in order.
#[must_use]
pub fn normalize(mut report: Report) -> Report {
    for rule in RULES {
        (rule.apply)(&mut report);
    }
    report
}

fn drop_stats(r: &mut Report) {
    r.stats = None;
}

static ADDRESS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"0x[0-9a-fA-F]{4,}").unwrap());
static PID: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(==|\bpid |\bPID )\d+(==)?").unwrap());

fn each_text(r: &mut Report, f: impl Fn(&str) -> String) {
    for note in &mut r.notes {
        *note = f(note);
    }
    for leak in &mut r.leaks {
        for frame in &mut leak.stack {
            if let Some(func) = &mut frame.function {
                *func = f(func);
            }
        }
        if let Some(site) = &mut leak.site {
            if let Some(func) = &mut site.function {
                *func = f(func);
            }
        }
        if let Some(c) = &mut leak.content {
            *c = f(c);
        }
    }
    if let crate::report::Status::Failed { error } = &mut r.status {
        *error = f(error);
    }
}

fn addresses(r: &mut Report) {
    each_text(r, |s| ADDRESS.replace_all(s, "0x…").into_owned());
}

fn pids(r: &mut Report) {
    each_text(r, |s| PID.replace_all(s, "${1}N${2}").into_owned());
}

fn base_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

fn paths(r: &mut Report) {
    for leak in &mut r.leaks {
        for frame in &mut leak.stack {
            frame.file = frame.file.as_deref().map(base_name);
            frame.object = frame.object.as_deref().map(base_name);
        }
        if let Some(region) = &mut leak.region {
            region.path = region.path.as_deref().map(base_name);
        }
    }
}

fn frames_below_main(r: &mut Report) {
    for leak in &mut r.leaks {
        if let Some(i) = leak.stack.iter().position(|f| f.function.as_deref() == Some("main")) {
            leak.stack.truncate(i + 1);
        }
    }
}

fn runtime_lines(r: &mut Report) {
    for leak in &mut r.leaks {
        for frame in &mut leak.stack {
            if frame.object.as_deref().is_some_and(crate::backend::is_runtime_object) {
                frame.file = None;
                frame.line = None;
            }
        }
    }
}

fn sort(r: &mut Report) {
    r.leaks.sort_by(|a, b| {
        let key = |l: &crate::report::Leak| {
            (l.site.clone(), l.region.as_ref().map(|x| x.kind), l.kind, l.bytes, l.blocks, l.content.clone(), l.type_name.clone())
        };
        key(a).cmp(&key(b)).then_with(|| stack_key(&a.stack).cmp(&stack_key(&b.stack)))
    });
    r.notes.sort();
}

/// Findings of a time window (the `watch` backend) lose their figures, and
/// its notes their numbers.
fn growth_figures(r: &mut Report) {
    if r.backend != "watch" {
        return;
    }
    static NUMBER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\d+").unwrap());
    for leak in &mut r.leaks {
        leak.bytes = 0;
        leak.blocks = 0;
    }
    for note in &mut r.notes {
        *note = NUMBER.replace_all(note, "N").into_owned();
    }
}

fn stack_key(stack: &[Frame]) -> Vec<(Option<String>, Option<u32>)> {
    stack.iter().map(|f| (f.function.clone(), f.line)).collect()
}

/// The stack rules (paths, runtime lines, addresses, frames below main) for
/// the stacks of findings other than leaks.
fn stack_rules(stack: &mut Vec<Frame>) {
    for frame in stack.iter_mut() {
        frame.file = frame.file.as_deref().map(base_name);
        frame.object = frame.object.as_deref().map(base_name);
        if frame.object.as_deref().is_some_and(crate::backend::is_runtime_object) {
            frame.file = None;
            frame.line = None;
        }
        if let Some(func) = &mut frame.function {
            *func = ADDRESS.replace_all(func, "0x…").into_owned();
        }
    }
    if let Some(i) = stack.iter().position(|f| f.function.as_deref() == Some("main")) {
        stack.truncate(i + 1);
    }
}

fn bad_frees(r: &mut Report) {
    for b in &mut r.bad_frees {
        stack_rules(&mut b.stack);
        stack_rules(&mut b.other_stack);
    }
    r.bad_frees.sort_by(|a, b| {
        (a.site.clone(), a.kind, &a.dealloc, &a.api)
            .cmp(&(b.site.clone(), b.kind, &b.dealloc, &b.api))
            .then_with(|| stack_key(&a.stack).cmp(&stack_key(&b.stack)))
    });
}

fn process_ordinals(r: &mut Report) {
    let mut order: Vec<u32> = Vec::new();
    let pids = r.processes.iter().flat_map(|p| [Some(p.pid), p.parent]).chain(r.leaks.iter().map(|l| l.pid)).chain(r.errors.iter().map(|e| e.pid));
    for pid in pids.flatten() {
        if !order.contains(&pid) {
            order.push(pid);
        }
    }
    let rank = |pid: u32| order.iter().position(|&p| p == pid).map_or(0, |i| i as u32 + 1);
    for p in &mut r.processes {
        p.pid = rank(p.pid);
        p.parent = p.parent.map(rank);
    }
    for l in &mut r.leaks {
        l.pid = l.pid.map(rank);
    }
    for e in &mut r.errors {
        e.pid = e.pid.map(rank);
    }
    // Same figures, same order whatever the pids were (a stable sort: the
    // leaks of one process keep the order of the `sort` rule).
    r.processes.sort_by_key(|p| p.pid);
    r.leaks.sort_by_key(|l| l.pid);
}

static NUMBER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[0-9]{2,}").unwrap());

fn pids_in_contents(r: &mut Report) {
    if r.processes.len() < 2 {
        return;
    }
    for l in &mut r.leaks {
        if let Some(c) = &mut l.content {
            *c = NUMBER.replace_all(c, "N").into_owned();
        }
    }
}

fn memory_errors(r: &mut Report) {
    for e in &mut r.errors {
        stack_rules(&mut e.stack);
        e.what = ADDRESS.replace_all(&e.what, "0x…").into_owned();
    }
    r.errors.sort_by(|a, b| (a.pid, &a.site, &a.kind, &a.what).cmp(&(b.pid, &b.site, &b.kind, &b.what)).then_with(|| stack_key(&a.stack).cmp(&stack_key(&b.stack))));
}
