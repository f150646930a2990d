//! What the backends whose tool is a preloaded library (heaptrack, mtrace,
//! dmalloc, efence) share: the run itself, with the tool's libraries in
//! LD_PRELOAD, and the account of every process of the run.
//!
//! None of those tools says which processes there were, nor how they
//! ended, so the lsan backend's event recorder (harness/native/lsan_preload.c,
//! which without LeakSanitizer only records) goes in with them: one file of
//! events per process (start, fork, exit, deadly signal). A backend then
//! says which processes its tool analysed (e.g. heaptrack: the program, not
//! its forked children; mtrace and dmalloc: those that ran exit()).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::backend::{RunConfig, Target};
use crate::backends::lsan::{parse_events, ProcEvent};
use crate::error::Error;
use crate::process::{self, Finished, Spec};
use crate::report::{End, Frame, Process, Report, Status};

/// The tool's side of a run.
pub struct Preload<'a> {
    /// Libraries to preload, in order (before the user's own LD_PRELOAD).
    pub libraries: &'a [PathBuf],
    /// The tool's environment (where its log goes, its options).
    pub env: &'a [(&'a str, OsString)],
}

/// How a run went: the program's end, and the events of each process.
pub struct Run {
    pub finished: Finished,
    /// The program's own pid.
    pub pid: u32,
    pub(crate) events: BTreeMap<u32, Vec<ProcEvent>>,
}

/// A report saying why a statically linked program cannot be analysed
/// (the loader never runs in it, so nothing is preloaded), or None.
#[must_use]
pub fn statically_linked(target: &Target, backend: &str, tool: &str) -> Option<Report> {
    if !crate::backend::is_statically_linked(&target.program) {
        return None;
    }
    let mut report = Report::new(&target.name, backend);
    report.status = Status::NotAnalysed {
        reason: format!("`{}` is statically linked: LD_PRELOAD cannot bring {tool} into it, so none of its allocations is seen", target.name),
    };
    Some(report)
}

/// Runs the target with the tool preloaded; its files go to `dir`.
pub fn run(target: &Target, config: &RunConfig, dir: &Path, preload: &Preload) -> Result<Run, Error> {
    let recorder = crate::artifacts::resolve(env!("LEAKLAB_LSAN_PRELOAD"))?;
    let mut libraries: Vec<String> = preload.libraries.iter().map(|l| l.display().to_string()).collect();
    libraries.push(recorder.display().to_string());
    if let Ok(theirs) = std::env::var("LD_PRELOAD") {
        libraries.extend(theirs.split([':', ' ']).filter(|s| !s.is_empty()).map(str::to_string));
    }
    let mut spec = Spec::new(&target.program, config.timeout)
        .args(&target.args)
        .io(config.io)
        .env("LD_PRELOAD", libraries.join(":"))
        .env("LEAKLAB_LSAN_PROCS", dir.join("proc"))
        // The tools report at exit: a checkpoint stop gains nothing.
        .env_remove("LEAKLAB_CHECKPOINT")
        .env_remove("LEAKLAB_LSAN_AFTER_MS");
    for (key, value) in preload.env {
        spec = spec.env(key, value);
    }
    let child = process::Child::spawn(&spec)?;
    let pid = child.pid() as u32;
    let finished = child.finish()?;
    let mut events = BTreeMap::new();
    events.insert(pid, Vec::new());
    for (path, pid) in files_by_pid(dir, "proc")? {
        let text = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        events.insert(pid, parse_events(&String::from_utf8_lossy(&text)));
    }
    Ok(Run { finished, pid, events })
}

/// The files `DIR/STEM.PID` (and `DIR/STEM.PID.N`, in the order of N) by pid.
pub fn files_by_pid(dir: &Path, stem: &str) -> Result<Vec<(PathBuf, u32)>, Error> {
    let mut files: Vec<(u32, u32, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let Some(rest) = name.strip_prefix(stem).and_then(|r| r.strip_prefix('.')) else { continue };
        let (pid, n) = rest.split_once('.').unwrap_or((rest, "0"));
        let (Ok(pid), Ok(n)) = (pid.parse::<u32>(), n.parse::<u32>()) else { continue };
        files.push((pid, n, path));
    }
    files.sort();
    Ok(files.into_iter().map(|(pid, _, path)| (path, pid)).collect())
}

impl Run {
    /// One entry per program image of every process, the program first;
    /// `analysed` says whether the tool looked at an image's memory.
    pub fn processes(&self, target: &Target, analysed: impl Fn(&Process) -> bool) -> Vec<Process> {
        let mut all = Vec::new();
        let start_program = |events: &[ProcEvent]| {
            events.iter().rev().find_map(|e| match e {
                ProcEvent::Start { program, .. } => Some(program.clone()),
                _ => None,
            })
        };
        for (&pid, events) in &self.events {
            let mut parent = None;
            let mut images: Vec<Process> = Vec::new();
            let mut current = Process { pid, parent: None, program: String::new(), end: End::Finished, analysed: false };
            let mut begun = false;
            for event in events {
                match event {
                    ProcEvent::Start { parent: p, program } => {
                        if begun {
                            let next = Process { pid, parent: None, program: program.clone(), end: End::Finished, analysed: false };
                            let mut old = std::mem::replace(&mut current, next);
                            old.end = End::Exec { program: program.clone() };
                            images.push(old);
                        } else {
                            current.program.clone_from(program);
                        }
                        parent = parent.or(Some(*p));
                        begun = true;
                    }
                    ProcEvent::Fork { parent: p } => {
                        parent = Some(*p);
                        begun = true;
                    }
                    ProcEvent::Exit { status } => current.end = End::Exited { code: *status },
                    ProcEvent::Signal { signal } => current.end = End::Killed { signal: process::signal_name(*signal) },
                    ProcEvent::After => {}
                }
            }
            if pid == self.pid {
                // The kernel's word on how the program ended.
                current.end = match self.finished.exit {
                    process::Exit::Signal(sig) => End::Killed { signal: process::signal_name(sig) },
                    process::Exit::Code(code) => End::Exited { code },
                };
                if current.program.is_empty() || images.is_empty() {
                    current.program.clone_from(&target.name);
                }
            }
            if current.program.is_empty() {
                // A forked child runs its parent's program.
                current.program = parent
                    .and_then(|p| self.events.get(&p))
                    .and_then(|e| start_program(e))
                    .unwrap_or_else(|| target.name.clone());
            }
            images.push(current);
            let parent = parent.filter(|p| self.events.contains_key(p));
            for mut image in images {
                image.parent = parent;
                image.analysed = analysed(&image);
                all.push(image);
            }
        }
        all.sort_by_key(|p| p.pid != self.pid);
        all
    }

    /// Whether the run was the program alone, which simply exited: then
    /// the report lists no processes.
    #[must_use]
    pub fn simple(processes: &[Process]) -> bool {
        matches!(processes, [only] if only.analysed && matches!(only.end, End::Exited { .. }))
    }

    /// A sample must run to its end on its own: a failing status is the
    /// backend's failure, not a finding.
    pub fn check_sample_exit(&self, target: &Target, tool: &str) -> Result<(), Error> {
        match self.finished.exit {
            process::Exit::Code(code) if code != 0 && target.sample.is_some() => Err(Error::TargetFailed {
                program: target.name.clone(),
                how: format!("under {tool} exited with status {code}"),
                stderr: self.finished.stderr_text(),
            }),
            _ => Ok(()),
        }
    }
}

/// The notes for processes the tool did not analyse, one per program and reason.
#[must_use]
pub fn unanalysed_notes(processes: &[Process], tool: &str, why: impl Fn(&Process) -> String) -> Vec<String> {
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    for p in processes.iter().filter(|p| !p.analysed) {
        let key = (p.program.clone(), why(p));
        match seen.iter().position(|k| *k == key) {
            Some(i) => counts[i] += 1,
            None => {
                seen.push(key);
                counts.push(1);
            }
        }
    }
    seen.into_iter()
        .zip(counts)
        .map(|((program, why), n)| {
            let who = if n == 1 { format!("a process of {program} was") } else { format!("{n} processes of {program} were") };
            format!("{who} not analysed by {tool}: {why}")
        })
        .collect()
}

/// The allocating API of a stack that starts at the allocator's caller, as
/// heaptrack's and mtrace's do: only when that caller is a runtime function
/// that allocates (`strdup`, `operator new`, `getline`), named as the
/// program calls it (glibc's internal `__GI___strdup` is `strdup`).
#[must_use]
pub fn runtime_api(stack: &[Frame]) -> Option<String> {
    let first = stack.first().filter(|f| f.object.as_deref().is_some_and(crate::backend::is_runtime_object))?;
    let function = first.function.as_deref()?;
    let name = function.trim_start_matches("__GI_").trim_start_matches('_').trim_start_matches("libc_");
    Some(crate::backends::valgrind::api_name(name))
}
