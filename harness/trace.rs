//! A traced run: the program runs under ptrace from its first instruction
//! to its last, with every process it starts (forks, vforks, clones without
//! CLONE_THREAD) and every image it execs, and each process is handed to an
//! inspector at its moments, all of its threads stopped.
//!
//! [`run_traced`] starts `spec` (through `process::Child` and the
//! stop_exec stopper, then PTRACE_SEIZE with EXITKILL, TRACEEXIT,
//! TRACEFORK, TRACEVFORK, TRACECLONE, TRACEEXEC) and runs one event loop on
//! the calling thread, which must stay the one that makes every ptrace
//! request: call it from the thread that will also read the tracees. The
//! moments ([`Moment`]): `Checkpoint` (the program's own `raise(SIGSTOP)`
//! when [`TraceConfig::checkpoint`] is set; the stop is suppressed),
//! `Request` (a process asks to be inspected: with [`INSPECT_ENV`] set in
//! its environment, which `run_traced` does when
//! [`TraceConfig::requests`] is set, it sends itself
//! `sigqueue(getpid(), SIGSTOP, (union sigval){ .sival_int = INSPECT_VALUE })`,
//! e.g. the hook's shim just before execve; the stop is suppressed and the
//! process goes on once the inspector returns), `After` (every live process
//! at [`TraceConfig::after`]), `Exit` (the process's last moment: its
//! threads in their PTRACE_EVENT_EXIT stops, the memory still mapped,
//! whatever the ending: exit, `_exit`, exit_group from any thread, a fatal
//! signal), and `LeftRunning` (a process still running when the main
//! program has ended, inspected before it is killed with the run). The
//! inspector gets an [`Inspection`]: pid, parent, program, moment, the
//! stopped threads, and [`Inspection::snapshot`] / [`Inspection::read`] to
//! copy memory out of the stopped process. Every other signal is
//! re-injected as it came (realtime ones too); group-stops get
//! PTRACE_LISTEN so job control works. On any error, at the deadline
//! (`Error::Timeout`), or on a panic in the inspector, every process of the
//! run is killed and reaped: no tracee is left stopped, none outlives the run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use nix::sys::ptrace;
use nix::unistd::Pid;

use crate::error::Error;
use crate::process::{signal_name, Child, Exit, Finished, Spec};
use crate::report::{End, Process};
use crate::scan::snapshot::{self, Snapshot};

/// Set in the program's environment when [`TraceConfig::requests`] is: a
/// process may then ask for an inspection (see [`INSPECT_VALUE`]).
pub const INSPECT_ENV: &str = "LEAKLAB_INSPECT_ON_SIGSTOP";

/// The `sival_int` of the SIGSTOP a process queues to itself to ask to be
/// inspected ("LKLB"); a plain `raise(SIGSTOP)` is the checkpoint.
pub const INSPECT_VALUE: i32 = 0x4c4b_4c42;

/// What to do at `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterThen {
    /// Inspect every live process, then end the run (a server runs forever).
    EndRun,
    /// Inspect every live process, then let the run go on.
    Continue,
}

/// When to inspect, and what the run does around the inspections.
#[derive(Debug, Clone)]
pub struct TraceConfig {
    /// A process's own `raise(SIGSTOP)` is its checkpoint: inspect, suppress
    /// the stop. Unset, such a stop is delivered (the program stops itself).
    pub checkpoint: bool,
    /// Honour inspection requests ([`INSPECT_ENV`], [`INSPECT_VALUE`]).
    pub requests: bool,
    /// Inspect every live process this long after the program started.
    pub after: Option<(Duration, AfterThen)>,
    /// Inspect every process at its end (`Moment::Exit`).
    pub at_exit: bool,
    /// Inspect the processes still running when the main program has ended
    /// (`Moment::LeftRunning`) before killing them with the run.
    pub left_running: bool,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig { checkpoint: false, requests: false, after: None, at_exit: true, left_running: true }
    }
}

/// How a process is ending, seen at its exit stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// exit, `_exit`, exit_group, a return from main: the status.
    Exited(i32),
    /// A fatal signal (SIGSEGV, SIGABRT, SIGKILL, ...).
    Killed(i32),
}

impl Ending {
    /// From the wait-style status PTRACE_GETEVENTMSG gives at PTRACE_EVENT_EXIT.
    #[must_use]
    pub fn from_status(status: i32) -> Ending {
        if status & 0x7f == 0 {
            Ending::Exited((status >> 8) & 0xff)
        } else {
            Ending::Killed(status & 0x7f)
        }
    }

    #[must_use]
    pub fn end(self) -> End {
        match self {
            Ending::Exited(code) => End::Exited { code },
            Ending::Killed(sig) => End::Killed { signal: signal_name(sig) },
        }
    }
}

/// Why a process is being inspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    Checkpoint,
    Request,
    After,
    Exit(Ending),
    LeftRunning,
}

/// One process, every thread stopped, handed to the inspector.
#[derive(Debug)]
pub struct Inspection<'a> {
    pub pid: i32,
    pub parent: Option<i32>,
    /// File name of its current image.
    pub program: &'a str,
    pub moment: Moment,
    /// Its threads, all stopped by the tracer.
    pub threads: &'a [i32],
    /// How many times this image was inspected before (at its checkpoint, on
    /// request, at `after`).
    pub earlier: u32,
}

impl Inspection<'_> {
    /// A copy of the process's writable memory, its maps and registers.
    pub fn snapshot(&self) -> Result<Snapshot, Error> {
        snapshot::take_stopped(self.pid, self.threads)
    }

    /// Reads `buf.len()` bytes at `addr` of the process.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Error> {
        let via = self.threads.first().copied().unwrap_or(self.pid);
        let mut local = [std::io::IoSliceMut::new(buf)];
        let len = local[0].len();
        let remote = [nix::sys::uio::RemoteIoVec { base: addr as usize, len }];
        match nix::sys::uio::process_vm_readv(Pid::from_raw(via), &mut local, &remote) {
            Ok(n) if n == len => Ok(()),
            Ok(n) => Err(Error::Inspect { pid: self.pid, message: format!("read {n} of {len} bytes at {addr:#x}") }),
            Err(e) => Err(Error::Inspect { pid: self.pid, message: format!("reading {len} bytes at {addr:#x}: {e}") }),
        }
    }
}

/// What the inspector returned at one moment of one process.
#[derive(Debug)]
pub struct Inspected<T> {
    pub pid: i32,
    pub moment: Moment,
    pub value: T,
}

/// A finished traced run.
#[derive(Debug)]
pub struct TracedRun<T> {
    /// The main program: its exit, output (when captured), wall time, peak RSS.
    pub finished: Finished,
    /// Every process image of the run in the order they ended; `analysed`
    /// says whether the inspector was given it at least once.
    pub processes: Vec<Process>,
    pub inspections: Vec<Inspected<T>>,
}

// ---------------------------------------------------------------------------
// The event decisions, as pure functions (unit-tested in tests/trace.rs).

/// A wait status of a traced thread, read as a raw int: nix's WaitStatus
/// cannot hold realtime signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Exited(i32),
    Killed(i32),
    /// Signal-delivery-stop: the signal to re-inject (or suppress).
    Signal(i32),
    /// PTRACE_EVENT_STOP with a stop signal: a group-stop (job control).
    GroupStop(i32),
    /// PTRACE_EVENT_STOP with SIGTRAP: PTRACE_INTERRUPT, a new tracee's
    /// first stop, or the end of a group-stop.
    Trap,
    Fork,
    Vfork,
    Clone,
    Exec,
    ExitEvent,
    Other(i32),
}

/// Reads a raw wait status.
#[must_use]
pub fn classify(status: i32) -> Stop {
    if libc::WIFEXITED(status) {
        return Stop::Exited(libc::WEXITSTATUS(status));
    }
    if libc::WIFSIGNALED(status) {
        return Stop::Killed(libc::WTERMSIG(status));
    }
    let sig = libc::WSTOPSIG(status);
    match status >> 16 {
        0 => Stop::Signal(sig),
        libc::PTRACE_EVENT_STOP => {
            if matches!(sig, libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU) {
                Stop::GroupStop(sig)
            } else {
                Stop::Trap
            }
        }
        libc::PTRACE_EVENT_FORK => Stop::Fork,
        libc::PTRACE_EVENT_VFORK => Stop::Vfork,
        libc::PTRACE_EVENT_CLONE => Stop::Clone,
        libc::PTRACE_EVENT_EXEC => Stop::Exec,
        libc::PTRACE_EVENT_EXIT => Stop::ExitEvent,
        e => Stop::Other(e),
    }
}

/// What a SIGSTOP a process received is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfStop {
    Checkpoint,
    Request,
    /// Sent by someone else, or a checkpoint nobody asked for: delivered.
    Deliver,
}

/// Decides on a SIGSTOP's signal-delivery-stop from its siginfo: sent by
/// the process to itself (si_pid its pid, a user-sent code), queued with
/// [`INSPECT_VALUE`] (a request) or raised (the checkpoint).
#[must_use]
pub fn self_stop(config: &TraceConfig, tgid: i32, si_code: i32, si_pid: i32, si_value: i32) -> SelfStop {
    // SI_USER (kill), SI_QUEUE (sigqueue), SI_TKILL (raise/tgkill): sent by a process.
    let user_sent = matches!(si_code, libc::SI_USER | libc::SI_QUEUE | libc::SI_TKILL);
    if !user_sent || si_pid != tgid {
        return SelfStop::Deliver;
    }
    if si_code == libc::SI_QUEUE && si_value == INSPECT_VALUE {
        return if config.requests { SelfStop::Request } else { SelfStop::Deliver };
    }
    if config.checkpoint {
        SelfStop::Checkpoint
    } else {
        SelfStop::Deliver
    }
}

/// Whether a thread's exit stop is the end of its process: a thread that
/// leaves with the `exit` syscall (pthread_exit) while others still run is
/// not; exit_group from any thread, a fatal signal, or the last thread's
/// exit is. `orig_rax` is the syscall the thread is in (-1 for none).
#[must_use]
pub fn ends_process(orig_rax: i64, others_running: usize) -> bool {
    orig_rax != libc::SYS_exit || others_running == 0
}

// ---------------------------------------------------------------------------
// The tracer.

/// How to let a stopped thread go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resume {
    /// PTRACE_CONT, injecting this signal (0: none).
    Cont(i32),
    /// PTRACE_LISTEN: stays in its group-stop, woken by SIGCONT.
    Listen,
}

#[derive(Debug)]
struct Thread {
    tgid: i32,
    /// Stopped by us, and how to resume it; None while it runs.
    stop: Option<Resume>,
    interrupted: bool,
    /// Let go from its exit stop: it never stops again (a leader that
    /// pthread_exits stays listed until its whole process is gone).
    exiting: bool,
}

#[derive(Debug)]
struct Proc {
    parent: Option<i32>,
    program: String,
    threads: BTreeSet<i32>,
    /// An inspection waiting for every thread to stop.
    want: Option<Moment>,
    end: Option<End>,
    /// Inspections of the current image.
    inspections: u32,
    /// The stop_exec stopper before its exec of the program: not a process
    /// of the program's.
    launcher: bool,
    /// A vfork child before its exec: it runs in its parent's memory, which
    /// is inspected as the parent's.
    shares_parent_memory: bool,
    /// Still running when the main program ended.
    left_running: bool,
    /// Order of creation, for the order of the report's processes.
    seq: u64,
}

struct Tracer<'a, T> {
    config: &'a TraceConfig,
    main: i32,
    threads: BTreeMap<i32, Thread>,
    procs: BTreeMap<i32, Proc>,
    /// Ended images with their process's creation order.
    ended: Vec<(u64, Process)>,
    created: u64,
    inspections: Vec<Inspected<T>>,
    main_status: Option<(Exit, u64, Duration)>,
    main_ended: bool,
    /// The run is being ended: every remaining process is killed.
    ending_run: bool,
    /// The main process ended before its exec of the program (stop_exec's execvp failed).
    launch_failed: bool,
}

fn os(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Os(format!("{what}: {e}"))
}

fn raw_ptrace(req: libc::c_uint, tid: i32, data: usize) -> Result<(), nix::errno::Errno> {
    // SAFETY: a ptrace request on a thread we trace; addr unused.
    let r = unsafe { libc::ptrace(req, tid, 0usize, data) };
    if r < 0 {
        Err(nix::errno::Errno::last())
    } else {
        Ok(())
    }
}

/// Tgid and PPid of a task, from /proc.
fn task_ids(tid: i32) -> Option<(i32, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse().ok());
    Some((field("Tgid:")?, field("PPid:")?))
}

/// The file name of a process's image.
fn image_name(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| crate::scan::process_name(pid))
}

/// The syscall a blocked thread is in, from /proc/TID/syscall.
fn blocked_in(tid: i32) -> Option<i64> {
    std::fs::read_to_string(format!("/proc/{tid}/syscall")).ok()?.split_whitespace().next()?.parse().ok()
}

impl<T> Tracer<'_, T> {
    /// Runs user code (not stopped by us, not dying): it can still stop.
    fn is_running(&self, tid: i32) -> bool {
        self.threads.get(&tid).is_some_and(|t| t.stop.is_none() && !t.exiting)
    }

    fn proc_of(&self, tid: i32) -> Option<i32> {
        self.threads.get(&tid).map(|t| t.tgid)
    }

    /// Registers a tracee seen for the first time (its creation event may
    /// come after its first stop).
    fn learn(&mut self, tid: i32, parent_hint: Option<i32>) {
        if self.threads.contains_key(&tid) {
            return;
        }
        let (tgid, ppid) = task_ids(tid).unwrap_or((tid, parent_hint.unwrap_or(0)));
        self.threads.insert(tid, Thread { tgid, stop: None, interrupted: false, exiting: false });
        let parent = parent_hint.or((ppid > 0).then_some(ppid));
        let program = parent.and_then(|p| self.procs.get(&p)).map_or_else(|| image_name(tgid), |p| p.program.clone());
        if !self.procs.contains_key(&tgid) {
            self.created += 1;
        }
        let seq = self.created;
        let proc = self.procs.entry(tgid).or_insert_with(|| Proc {
            parent,
            program,
            threads: BTreeSet::new(),
            want: None,
            end: None,
            inspections: 0,
            launcher: false,
            shares_parent_memory: false,
            left_running: false,
            seq,
        });
        proc.threads.insert(tid);
    }

    /// Asks for an inspection of `pid`; a pending one is kept, except that
    /// the end of a process replaces it (it could not happen any more).
    fn want(&mut self, pid: i32, moment: Moment) {
        if let Some(p) = self.procs.get_mut(&pid) {
            if p.launcher {
                return;
            }
            match (p.want, moment) {
                (None, _) | (Some(_), Moment::Exit(_)) => p.want = Some(moment),
                _ => {}
            }
        }
    }

    fn resume(&mut self, tid: i32) {
        let Some(t) = self.threads.get_mut(&tid) else { return };
        let Some(how) = t.stop.take() else { return };
        // ESRCH: killed meanwhile; its death is reported by wait.
        let _ = match how {
            Resume::Cont(sig) => raw_ptrace(libc::PTRACE_CONT, tid, sig as usize),
            Resume::Listen => raw_ptrace(libc::PTRACE_LISTEN, tid, 0),
        };
    }

    /// A thread stopped: hold it if its process awaits an inspection, else let it go.
    fn stopped(&mut self, tid: i32, how: Resume) {
        let Some(t) = self.threads.get_mut(&tid) else {
            let _ = raw_ptrace(libc::PTRACE_CONT, tid, 0);
            return;
        };
        t.stop = Some(how);
        t.interrupted = false;
        let tgid = t.tgid;
        if self.procs.get(&tgid).is_none_or(|p| p.want.is_none()) {
            self.resume(tid);
        }
    }

    fn gone(&mut self, tid: i32, stop: Stop, usage: &libc::rusage) {
        let Some(t) = self.threads.remove(&tid) else { return };
        let tgid = t.tgid;
        if tid == tgid {
            // The leader is reported last: the process is gone.
            if let Some(mut p) = self.procs.remove(&tgid) {
                for other in std::mem::take(&mut p.threads) {
                    self.threads.remove(&other);
                }
                let end = p.end.take().unwrap_or(match stop {
                    Stop::Killed(sig) => End::Killed { signal: signal_name(sig) },
                    Stop::Exited(code) => End::Exited { code },
                    _ => End::Running,
                });
                self.launch_failed |= p.launcher && tgid == self.main;
                if !p.launcher {
                    let process = Process {
                        pid: tgid as u32,
                        parent: p.parent.map(|x| x as u32),
                        program: p.program,
                        end,
                        analysed: p.inspections > 0 || p.shares_parent_memory,
                    };
                    self.ended.push((p.seq, process));
                }
            }
            if tgid == self.main {
                let tv = |t: libc::timeval| Duration::new(t.tv_sec.max(0) as u64, (t.tv_usec.max(0) as u32) * 1000);
                let exit = match stop {
                    Stop::Killed(sig) => Exit::Signal(sig),
                    Stop::Exited(code) => Exit::Code(code),
                    _ => Exit::Signal(libc::SIGKILL),
                };
                self.main_status = Some((exit, crate::process::peak_rss_kib(tgid, &usage), tv(usage.ru_utime) + tv(usage.ru_stime)));
                self.on_main_ended();
            }
        } else if let Some(p) = self.procs.get_mut(&tgid) {
            p.threads.remove(&tid);
        }
    }

    /// The main program ended (its exit stop, or its death): the processes
    /// still running are marked, and inspected if the config asks.
    fn on_main_ended(&mut self) {
        if self.main_ended {
            return;
        }
        self.main_ended = true;
        let others: Vec<i32> = self.procs.iter().filter(|(&pid, p)| pid != self.main && p.end.is_none()).map(|(&pid, _)| pid).collect();
        for pid in others {
            if let Some(p) = self.procs.get_mut(&pid) {
                p.left_running = true;
            }
            if self.config.left_running {
                self.want(pid, Moment::LeftRunning);
            }
        }
    }

    fn handle(&mut self, tid: i32, status: i32, usage: &libc::rusage) -> Result<(), Error> {
        let stop = classify(status);
        if matches!(stop, Stop::Exited(_) | Stop::Killed(_)) {
            self.gone(tid, stop, usage);
            return Ok(());
        }
        self.learn(tid, None);
        let tgid = self.proc_of(tid).unwrap_or(tid);
        let t = Pid::from_raw(tid);
        match stop {
            Stop::Signal(libc::SIGSTOP) => {
                let info = ptrace::getsiginfo(t).ok();
                let decision = info.map_or(SelfStop::Deliver, |i| {
                    // SAFETY: si_pid and si_value are read as the kernel filled them for a user-sent signal.
                    let (pid, value) = unsafe { (i.si_pid(), i.si_value().sival_ptr as usize as i32) };
                    self_stop(self.config, tgid, i.si_code, pid, value)
                });
                match decision {
                    SelfStop::Checkpoint if !self.procs.get(&tgid).is_some_and(|p| p.launcher) => {
                        self.want(tgid, Moment::Checkpoint);
                        self.stopped(tid, Resume::Cont(0));
                    }
                    SelfStop::Request if !self.procs.get(&tgid).is_some_and(|p| p.launcher) => {
                        self.want(tgid, Moment::Request);
                        self.stopped(tid, Resume::Cont(0));
                    }
                    _ => self.stopped(tid, Resume::Cont(libc::SIGSTOP)),
                }
            }
            Stop::Signal(sig) => self.stopped(tid, Resume::Cont(sig)),
            Stop::GroupStop(_) => self.stopped(tid, Resume::Listen),
            Stop::Trap | Stop::Other(_) => self.stopped(tid, Resume::Cont(0)),
            Stop::Fork | Stop::Vfork | Stop::Clone => {
                if let Ok(new) = ptrace::getevent(t) {
                    let new = new as i32;
                    let is_thread = stop == Stop::Clone && task_ids(new).is_some_and(|(g, _)| g == tgid);
                    if is_thread {
                        self.learn(new, None);
                    } else {
                        self.learn(new, Some(tgid));
                        if let Some(p) = self.procs.get_mut(&new) {
                            p.parent = Some(tgid);
                            p.shares_parent_memory = stop == Stop::Vfork;
                        }
                    }
                }
                self.stopped(tid, Resume::Cont(0));
            }
            Stop::Exec => {
                let former = ptrace::getevent(t).map_or(tid, |f| f as i32);
                // The other threads are gone; a non-leader that exec'd now has the leader's tid.
                let others: Vec<i32> = self.procs.get(&tgid).map(|p| p.threads.iter().copied().filter(|&x| x != tgid).collect()).unwrap_or_default();
                for o in others {
                    self.threads.remove(&o);
                }
                if former != tgid {
                    self.threads.remove(&former);
                }
                self.threads.entry(tgid).or_insert(Thread { tgid, stop: None, interrupted: false, exiting: false });
                let new_program = image_name(tgid);
                if let Some(p) = self.procs.get_mut(&tgid) {
                    p.threads = BTreeSet::from([tgid]);
                    p.want = None;
                    if p.launcher {
                        p.launcher = false;
                    } else {
                        let process = Process {
                            pid: tgid as u32,
                            parent: p.parent.map(|x| x as u32),
                            program: std::mem::replace(&mut p.program, new_program.clone()),
                            end: End::Exec { program: new_program.clone() },
                            analysed: p.inspections > 0 || p.shares_parent_memory,
                        };
                        self.ended.push((p.seq, process));
                    }
                    p.program = new_program;
                    p.inspections = 0;
                    p.shares_parent_memory = false;
                    p.end = None;
                }
                self.stopped(tid, Resume::Cont(0));
            }
            Stop::ExitEvent => {
                let status = ptrace::getevent(t).unwrap_or(0) as i32;
                let orig_rax = ptrace::getregs(t).map_or(-1, |r| r.orig_rax as i64);
                if let Some(th) = self.threads.get_mut(&tid) {
                    th.exiting = true;
                }
                let others_running = self.procs.get(&tgid).map_or(0, |p| p.threads.iter().filter(|&&x| x != tid && self.is_running(x)).count());
                let launcher = self.procs.get(&tgid).is_some_and(|p| p.launcher);
                if !launcher && ends_process(orig_rax, others_running) {
                    let ending = Ending::from_status(status);
                    let shared = self.procs.get(&tgid).is_some_and(|p| p.shares_parent_memory);
                    if let Some(p) = self.procs.get_mut(&tgid) {
                        p.end = Some(ending.end());
                    }
                    if self.config.at_exit && !shared {
                        self.want(tgid, Moment::Exit(ending));
                    }
                    if tgid == self.main {
                        self.on_main_ended();
                    }
                }
                self.stopped(tid, Resume::Cont(0));
            }
            Stop::Exited(_) | Stop::Killed(_) => unreachable!("handled above"),
        }
        Ok(())
    }

    /// Runs the inspections whose process has every thread stopped, and
    /// interrupts the threads still running of the others.
    fn progress(&mut self, inspect: &mut dyn FnMut(&Inspection) -> Result<T, Error>) -> Result<(), Error> {
        let pending: Vec<i32> = self.procs.iter().filter(|(_, p)| p.want.is_some()).map(|(&pid, _)| pid).collect();
        for pid in pending {
            let Some(p) = self.procs.get(&pid) else { continue };
            // Threads past their exit stop are not waited for, nor inspected.
            let tids: Vec<i32> = p.threads.iter().copied().filter(|x| self.threads.get(x).is_some_and(|t| t.stop.is_some() || !t.exiting)).collect();
            if tids.is_empty() {
                // Nothing left to stop (killed): the moment is lost.
                self.procs.get_mut(&pid).expect("listed").want = None;
                continue;
            }
            let running: Vec<i32> = tids.iter().copied().filter(|&x| self.is_running(x)).collect();
            if !running.is_empty() {
                if matches!(p.want, Some(Moment::Exit(_))) && running.iter().any(|&x| matches!(blocked_in(x), Some(n) if n == libc::SYS_execve || n == libc::SYS_execveat)) {
                    // The exit stops were those of threads an execve kills, not
                    // the process's end: let them go, the exec goes on.
                    let p = self.procs.get_mut(&pid).expect("listed");
                    p.want = None;
                    p.end = None;
                    for tid in tids {
                        self.resume(tid);
                    }
                    continue;
                }
                for tid in running {
                    let t = self.threads.get_mut(&tid).expect("listed");
                    if !t.interrupted {
                        t.interrupted = true;
                        let _ = raw_ptrace(libc::PTRACE_INTERRUPT, tid, 0);
                    }
                }
                continue;
            }
            let p = self.procs.get(&pid).expect("listed");
            let moment = p.want.expect("pending");
            let program = p.program.clone();
            let insp = Inspection { pid, parent: p.parent, program: &program, moment, threads: &tids, earlier: p.inspections };
            let value = inspect(&insp)?;
            self.inspections.push(Inspected { pid, moment, value });
            let p = self.procs.get_mut(&pid).expect("listed");
            p.inspections += 1;
            p.want = None;
            for tid in tids {
                self.resume(tid);
            }
        }
        Ok(())
    }

    /// Kills every process of the run and reaps them all (bounded).
    fn kill_all(&mut self) {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            for (&pid, p) in self.procs.iter_mut() {
                p.end.get_or_insert(End::Running);
                // SAFETY: SIGKILL to a process we trace (it dies even while ptrace-stopped).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let held: Vec<i32> = self.threads.iter().filter(|(_, t)| t.stop.is_some()).map(|(&tid, _)| tid).collect();
            for tid in held {
                self.resume(tid);
            }
            if self.procs.is_empty() && self.main_status.is_some() {
                return;
            }
            match self.wait(Duration::from_millis(50)) {
                Ok(Some((tid, status, usage))) => {
                    let stop = classify(status);
                    if matches!(stop, Stop::Exited(_) | Stop::Killed(_)) {
                        self.gone(tid, stop, &usage);
                    } else {
                        // Its exit stop, or a tracee forked as we killed: let it
                        // go on to its death (a second SIGKILL would not wake
                        // a thread stopped at its exit).
                        self.learn(tid, None);
                        let _ = raw_ptrace(libc::PTRACE_CONT, tid, 0);
                    }
                }
                Ok(None) => {}
                Err(_) => return,
            }
            if Instant::now() >= until {
                return;
            }
        }
    }

    /// One event of this thread's tracees and children, waiting at most `slice`.
    fn wait(&self, slice: Duration) -> Result<Option<(i32, i32, libc::rusage)>, Error> {
        let until = Instant::now() + slice;
        let mut nap = Duration::from_micros(20);
        loop {
            let mut status = 0;
            // SAFETY: an all-zero rusage is a valid value.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // __WNOTHREAD: only this thread's children and tracees, never a
            // child another thread of the harness waits for.
            // SAFETY: wait4 with valid out-pointers.
            let r = unsafe { libc::wait4(-1, &mut status, libc::WNOHANG | libc::__WALL | libc::__WNOTHREAD, &mut usage) };
            if r > 0 {
                return Ok(Some((r, status, usage)));
            }
            if r < 0 {
                let e = std::io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::ECHILD) => return Ok(None),
                    _ => return Err(os("wait4", e)),
                }
            }
            let now = Instant::now();
            if now >= until {
                return Ok(None);
            }
            std::thread::sleep(nap.min(until - now));
            nap = (nap * 2).min(Duration::from_millis(2));
        }
    }
}

impl<T> Drop for Tracer<'_, T> {
    fn drop(&mut self) {
        // Errors and panics: nothing of the run stays stopped or alive.
        if !self.procs.is_empty() || self.main_status.is_none() {
            self.kill_all();
        }
    }
}

/// Runs `spec` traced, calling `inspect` at each moment `config` asks for.
pub fn run_traced<T>(spec: &Spec, config: &TraceConfig, inspect: &mut dyn FnMut(&Inspection) -> Result<T, Error>) -> Result<TracedRun<T>, Error> {
    let mut spec = spec.clone().stop_before_exec();
    if config.requests {
        spec = spec.env(INSPECT_ENV, "1");
    } else {
        spec = spec.env_remove(INSPECT_ENV);
    }
    let label = std::path::Path::new(&spec.program).file_name().unwrap_or(&spec.program).to_string_lossy().into_owned();
    let mut child = Child::spawn(&spec)?;
    let started = Instant::now();
    let deadline = started + spec.timeout;
    child.wait_stop()?;
    let pid = child.pid();
    let options = ptrace::Options::PTRACE_O_EXITKILL
        | ptrace::Options::PTRACE_O_TRACEEXIT
        | ptrace::Options::PTRACE_O_TRACEFORK
        | ptrace::Options::PTRACE_O_TRACEVFORK
        | ptrace::Options::PTRACE_O_TRACECLONE
        | ptrace::Options::PTRACE_O_TRACEEXEC;
    ptrace::seize(Pid::from_raw(pid), options).map_err(|e| Error::Inspect { pid, message: format!("PTRACE_SEIZE: {e}") })?;
    let mut tracer = Tracer {
        config,
        main: pid,
        threads: BTreeMap::from([(pid, Thread { tgid: pid, stop: None, interrupted: false, exiting: false })]),
        procs: BTreeMap::from([(
            pid,
            Proc {
                parent: None,
                program: label.clone(),
                threads: BTreeSet::from([pid]),
                want: None,
                end: None,
                inspections: 0,
                launcher: true,
                shares_parent_memory: false,
                left_running: false,
                seq: 0,
            },
        )]),
        ended: Vec::new(),
        created: 0,
        inspections: Vec::new(),
        main_status: None,
        main_ended: false,
        ending_run: false,
        launch_failed: false,
    };
    // The stopper waits in its group-stop; SIGCONT lets it exec the program.
    child.resume();
    let result = event_loop(&mut tracer, inspect, deadline, started, &label, spec.timeout);
    match result {
        Ok(()) => {
            tracer.kill_all();
            let (exit, rss, cpu) = tracer.main_status.expect("the loop ends when the main program is reaped");
            if tracer.launch_failed {
                let finished = child.reaped(exit, rss, cpu);
                return Err(Error::TargetFailed { program: label, how: "could not be executed".into(), stderr: finished.stderr_text() });
            }
            let finished = child.reaped(exit, rss, cpu);
            // The program first (its images in order), then the others as they were created.
            let mut ended = std::mem::take(&mut tracer.ended);
            ended.sort_by_key(|(seq, _)| *seq);
            let processes = ended.into_iter().map(|(_, p)| p).collect();
            let inspections = std::mem::take(&mut tracer.inspections);
            Ok(TracedRun { finished, processes, inspections })
        }
        Err(e) => {
            tracer.kill_all();
            if let Some((exit, rss, cpu)) = tracer.main_status {
                child.reaped(exit, rss, cpu);
            }
            Err(e)
        }
    }
}

fn event_loop<T>(
    tracer: &mut Tracer<'_, T>,
    inspect: &mut dyn FnMut(&Inspection) -> Result<T, Error>,
    deadline: Instant,
    started: Instant,
    label: &str,
    timeout: Duration,
) -> Result<(), Error> {
    let mut after = tracer.config.after;
    loop {
        let now = Instant::now();
        if now >= deadline {
            tracer.kill_all();
            return Err(Error::Timeout { program: label.to_string(), seconds: timeout.as_secs_f64() });
        }
        if let Some((delay, then)) = after {
            let launched = tracer.procs.get(&tracer.main).is_none_or(|p| !p.launcher);
            if now >= started + delay && launched {
                after = None;
                let live: Vec<i32> = tracer.procs.iter().filter(|(_, p)| p.end.is_none()).map(|(&pid, _)| pid).collect();
                for pid in live {
                    tracer.want(pid, Moment::After);
                }
                if then == AfterThen::EndRun {
                    tracer.ending_run = true;
                }
            }
        }
        let slice = after.map_or(Duration::from_millis(50), |(delay, _)| (started + delay).saturating_duration_since(now).max(Duration::from_micros(100)));
        let slice = slice.min(deadline.saturating_duration_since(now)).min(Duration::from_millis(50));
        if let Some((tid, status, usage)) = tracer.wait(slice)? {
            tracer.handle(tid, status, &usage)?;
        }
        tracer.progress(inspect)?;
        let inspecting = tracer.procs.values().any(|p| p.want.is_some());
        if !inspecting && (tracer.ending_run || (tracer.main_ended && tracer.main_status.is_some())) {
            // Whatever is left ran past the main program (or past `after`).
            return Ok(());
        }
        if tracer.main_status.is_some() && tracer.procs.is_empty() {
            return Ok(());
        }
    }
}
