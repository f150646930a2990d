//! A consistent copy of a live process: every thread stopped with ptrace,
//! registers read, and the writable mappings taken in one of two ways: the
//! stopped process is made to fork ([`fork`]) and let go at once, the
//! fork's copy-on-write image read at leisure (the pause is then the stop
//! and the copy of page tables); or, where a fork cannot be injected, the
//! mappings are copied with process_vm_readv while it is stopped. Either
//! way only pages present or swapped are read of private anonymous memory
//! (/proc/PID/pagemap): an absent page was never written and reads as zero,
//! in a buffer whose untouched pages cost nothing. The analysis then works
//! on the copy.
//!
//! The target is never left stopped or traced: [`Attached`] detaches every
//! thread in `Drop` (also on error and on panic, which unwinds). If the
//! harness itself dies while attached (Ctrl-C runs `exit`, or SIGKILL), the
//! kernel detaches all tracees of an exiting tracer and resumes them; ptrace
//! requests can only come from the tracing thread, so a signal handler could
//! not detach anyway. The attached window is kept short (milliseconds) for
//! the same reason.

use std::io::IoSliceMut;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::uio::{process_vm_readv, RemoteIoVec};
use nix::unistd::Pid;

use super::fork;
use super::maps::{self, Mapping};
use super::memory::{Memory, Segment};
use crate::error::Error;

/// One stopped thread.
#[derive(Debug, Clone)]
pub struct Thread {
    pub tid: i32,
    pub sp: u64,
    /// The thread pointer (FS base): glibc's TCB, next to the static TLS.
    pub fs_base: u64,
    /// Every general-purpose register: roots for the marking.
    pub regs: Vec<u64>,
}

impl Thread {
    /// A stopped thread as its registers describe it.
    fn of_registers(tid: i32, r: &libc::user_regs_struct) -> Thread {
        Thread {
            tid,
            sp: r.rsp,
            fs_base: r.fs_base,
            regs: vec![
                r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15,
                r.rip, r.fs_base, r.gs_base,
            ],
        }
    }
}

/// What was copied from the process, and how long it was stopped.
#[derive(Debug)]
pub struct Snapshot {
    pub pid: i32,
    pub threads: Vec<Thread>,
    pub maps: Vec<Mapping>,
    pub memory: Memory,
    pub pause: Duration,
    /// Of the pause: stopping the threads and reading their registers; then
    /// reading the maps (copy) or injecting the fork (fork); then copying
    /// (copy; zero for a fork, whose image is read after the pause).
    pub pause_phases: [Duration; 3],
    /// Pages that could not be read (e.g. a file mapping beyond the file's end); zero-filled.
    pub unreadable_bytes: u64,
    /// How it was taken: by a fork, or by a copy (and why not a fork).
    pub method: Method,
    /// What the report should say of the snapshot itself (a fork that could
    /// not be reaped, mappings a fork does not inherit).
    pub notes: Vec<String>,
}

/// Why a scan cannot attach, with what to do about it.
fn attach_error(pid: i32, errno: Errno) -> Error {
    let message = match errno {
        Errno::ESRCH => "the process does not exist (or exited)".to_string(),
        // EPERM has several causes besides missing rights: name the real one.
        Errno::EPERM => match why_not_attachable(pid) {
            Some(why) => why,
            None => {
                let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").ok().map(|s| s.trim().to_string());
                let yama = match scope.as_deref() {
                    Some("0") | None => String::new(),
                    Some(s) => format!("; kernel.yama.ptrace_scope is {s} (0 allows attaching to your own processes: `sysctl kernel.yama.ptrace_scope=0`)"),
                };
                format!("ptrace is not permitted: run as the process's owner or as root (CAP_SYS_PTRACE){yama}")
            }
        },
        other => format!("ptrace failed: {other}"),
    };
    Error::Inspect { pid, message }
}

/// What /proc says about one task (a process, or one thread of it).
#[derive(Debug, Clone, Default)]
struct TaskInfo {
    /// The state letter of /proc/PID/stat: R, S, D, T, t, Z, X, ...
    state: char,
    kernel_thread: bool,
    tracer: i32,
}

impl TaskInfo {
    fn dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// PF_KTHREAD in the flags field of /proc/PID/stat (include/linux/sched.h).
const PF_KTHREAD: u64 = 0x0020_0000;

/// /proc/PID/task/TID/{stat,status}; None when the task is gone.
fn task_info(pid: i32, tid: i32) -> Option<TaskInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    // The command name is in parentheses and may itself hold spaces or ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // After the name: state(0) ppid pgrp session tty_nr tpgid flags(6).
    let flags: u64 = fields.get(6)?.parse().ok()?;
    let tracer = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("TracerPid:").and_then(|v| v.trim().parse().ok())))
        .unwrap_or(0);
    Some(TaskInfo { state, kernel_thread: flags & PF_KTHREAD != 0, tracer })
}

/// The command name of a process or thread, for messages.
fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).map_or_else(|_| "gone".to_string(), |s| s.trim().to_string())
}

fn traced_by(tracer: i32) -> String {
    format!(
        "it is already traced by pid {tracer} ({}): a process has one tracer at a time; end or detach that tracer (strace, gdb) and scan again",
        comm(tracer)
    )
}

/// Why the process cannot be attached to, when /proc shows a reason other
/// than missing rights: a kernel thread, a zombie, another tracer.
fn why_not_attachable(pid: i32) -> Option<String> {
    let leader = task_info(pid, pid)?;
    if leader.kernel_thread {
        return Some("it is a kernel thread: it has no user memory to scan".into());
    }
    let live: Vec<TaskInfo> = task_ids(pid).ok()?.into_iter().filter_map(|t| task_info(pid, t)).filter(|t| !t.dead()).collect();
    if live.is_empty() {
        return Some("it is a zombie: it has exited and its parent has not reaped it yet, so its memory is gone".into());
    }
    // TracerPid names the tracing thread; one of ours is not "another tracer".
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    live.iter().map(|t| t.tracer).find(|&t| t != 0 && tgid(t) != Some(me)).map(traced_by)
}

/// The process a thread id belongs to.
fn tgid(tid: i32) -> Option<i32> {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:").and_then(|v| v.trim().parse().ok()))
}

/// Fails clearly when the pid is not a process we could scan.
pub fn check_pid(pid: i32) -> Result<(), Error> {
    if pid <= 0 {
        return Err(Error::Usage(format!("{pid} is not a process id")));
    }
    if pid as u32 == std::process::id() {
        return Err(Error::Usage("leaklab cannot scan itself".into()));
    }
    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        return Err(Error::Inspect { pid, message: "no such process".into() });
    }
    // A thread id is in /proc too (hidden from listings): scan its process.
    if let Some(tgid) = tgid(pid).filter(|&tgid| tgid != pid) {
        return Err(Error::Usage(format!("{pid} is a thread of process {tgid}: scan `--pid {tgid}`")));
    }
    if let Some(why) = why_not_attachable(pid) {
        return Err(Error::Inspect { pid, message: why });
    }
    Ok(())
}

/// One thread we hold stopped, and the signal it was about to receive when
/// it stopped (a signal-delivery-stop): the detach delivers it, so no
/// signal sent to the target while it was attached is lost.
#[derive(Debug, Clone, Copy)]
struct Held {
    tid: i32,
    signal: i32,
}

/// The threads we hold stopped; detached (and so resumed) when dropped.
struct Attached {
    held: Vec<Held>,
    /// The main thread had exited (a zombie leader): it was skipped.
    leader_exited: bool,
}

impl Attached {
    fn holds(&self, tid: i32) -> bool {
        self.held.iter().any(|h| h.tid == tid)
    }
    fn release(&mut self, tid: i32) {
        self.held.retain(|h| h.tid != tid);
    }
    fn tids(&self) -> Vec<i32> {
        self.held.iter().map(|h| h.tid).collect()
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        for h in &self.held {
            // Raw ptrace: nix's Signal cannot hold a realtime signal. A thread
            // that exited meanwhile gives ESRCH: nothing to undo.
            // SAFETY: PTRACE_DETACH takes no pointers; data is the signal to deliver.
            unsafe { libc::ptrace(libc::PTRACE_DETACH, h.tid, std::ptr::null_mut::<libc::c_void>(), h.signal as libc::c_long) };
        }
    }
}

fn task_ids(pid: i32) -> Result<Vec<i32>, Error> {
    let dir = format!("/proc/{pid}/task");
    let entries = std::fs::read_dir(&dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Inspect { pid, message: "no such process".into() },
        _ => Error::io(std::path::Path::new(&dir), e),
    })?;
    let mut tids: Vec<i32> = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    tids.sort_unstable();
    Ok(tids)
}

/// How a seized thread's first wait ended.
enum Stop {
    /// In a ptrace-stop; `signal` is the signal of a signal-delivery-stop
    /// (to be delivered on detach), 0 for the interrupt's or a group-stop.
    Stopped { signal: i32 },
    /// It exited (or was reaped) before it stopped.
    Gone,
}

/// Waits for the stop of a thread just seized and interrupted. The status is
/// read as a raw int: it can carry a realtime signal, which nix's
/// `WaitStatus` cannot represent (it fails with EINVAL).
fn wait_stop(tid: i32) -> Result<Stop, Errno> {
    loop {
        let mut status = 0;
        // SAFETY: a valid out-pointer; __WALL waits for threads too.
        let r = unsafe { libc::waitpid(tid, &mut status, libc::__WALL) };
        if r < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                Errno::ECHILD => return Ok(Stop::Gone),
                e => return Err(e),
            }
        }
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            return Ok(Stop::Gone);
        }
        if libc::WIFSTOPPED(status) {
            let event = (status >> 16) & 0xff;
            // With PTRACE_SEIZE and no options, a stop without an event is a
            // signal-delivery-stop (no syscall stops, no exec SIGTRAP). The
            // interrupt and a group-stop (the checkpoint's SIGSTOP, already in
            // effect) report PTRACE_EVENT_STOP and carry nothing to deliver.
            let signal = if event == 0 { libc::WSTOPSIG(status) } else { 0 };
            return Ok(Stop::Stopped { signal });
        }
    }
}

/// Stops every thread: PTRACE_SEIZE, PTRACE_INTERRUPT, and a wait for the
/// stop. Threads created meanwhile are caught by listing the tasks again
/// until no new one shows up. A thread already in a group-stop (SIGSTOP at
/// the checkpoint) is reported at once after the seize; the interrupt then
/// only leaves a pending trap that the detach clears. A thread that was
/// about to take a signal stops in a signal-delivery-stop instead: its
/// signal is kept and delivered by the detach. Threads that exit meanwhile,
/// and a main thread that already exited (`pthread_exit` in main), are skipped.
fn stop_all(pid: i32, attached: &mut Attached) -> Result<(), Error> {
    for _round in 0..64 {
        let mut new = false;
        for tid in task_ids(pid)? {
            if attached.holds(tid) || (tid == pid && attached.leader_exited) {
                continue;
            }
            let t = Pid::from_raw(tid);
            match ptrace::seize(t, ptrace::Options::empty()) {
                Ok(()) => {}
                // Exited between the listing and the seize.
                Err(Errno::ESRCH) if tid != pid => continue,
                // A thread that has exited but is still listed (a zombie
                // thread, or the main thread after pthread_exit) cannot be
                // attached: skip it; anything else is the process's answer.
                Err(Errno::EPERM) if task_info(pid, tid).is_none_or(|t| t.dead()) => {
                    if tid == pid {
                        attached.leader_exited = true;
                    }
                    continue;
                }
                Err(e) => return Err(attach_error(pid, e)),
            }
            attached.held.push(Held { tid, signal: 0 });
            new = true;
            if let Err(e) = ptrace::interrupt(t) {
                if e == Errno::ESRCH {
                    // Exited after the seize: reap it if it is ours to reap.
                    if let Ok(Stop::Gone) = wait_stop(tid) {
                        attached.release(tid);
                    }
                    continue;
                }
                return Err(attach_error(pid, e));
            }
            match wait_stop(tid) {
                Ok(Stop::Stopped { signal }) => {
                    if let Some(h) = attached.held.iter_mut().find(|h| h.tid == tid) {
                        h.signal = signal;
                    }
                }
                Ok(Stop::Gone) => attached.release(tid),
                Err(e) => return Err(attach_error(pid, e)),
            }
        }
        if !new {
            if attached.held.is_empty() {
                return Err(Error::Inspect { pid, message: why_not_attachable(pid).unwrap_or_else(|| "the process exited while being attached".into()) });
            }
            return Ok(());
        }
    }
    Err(Error::Inspect { pid, message: "threads keep appearing faster than they can be stopped".into() })
}

/// Which mappings a snapshot copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// What the scan reads: readable and writable memory (data, bss, heaps,
    /// stacks, anonymous memory), except the kernel's own pages, and every
    /// piece of `[heap]` whatever its protection, since malloc's chunks run
    /// across the pieces an `mprotect` inside the heap makes.
    Scan,
    /// Only the `[heap]` pieces (`leaklab dump`).
    Heap,
}

impl Selection {
    fn wants(self, m: &Mapping) -> bool {
        let heap = m.pseudo() == Some("[heap]");
        match self {
            Selection::Heap => heap,
            Selection::Scan => heap || (m.readable() && m.writable() && !matches!(m.pseudo(), Some("[vvar]" | "[vsyscall]" | "[vdso]" | "[vvar_vclock]"))),
        }
    }

    /// The address ranges to copy: one per wanted mapping, except that
    /// adjacent `[heap]` pieces make one range, so a block that straddles
    /// two pieces reads as one.
    fn ranges(self, maps: &[Mapping]) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        let mut last_heap = false;
        for m in maps.iter().filter(|m| self.wants(m)) {
            let heap = m.pseudo() == Some("[heap]");
            match out.last_mut() {
                Some(r) if heap && last_heap && r.1 == m.start => r.1 = m.end,
                _ => out.push((m.start, m.end)),
            }
            last_heap = heap;
        }
        out
    }
}

/// How a snapshot should be taken (`--snapshot=fork|copy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Want {
    /// Make the stopped process fork and read the child at leisure; copy
    /// while it is stopped where the fork cannot be injected.
    #[default]
    Fork,
    /// Copy while every thread is stopped.
    Copy,
}

/// Knobs of a snapshot.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub want: Want,
}

/// How a snapshot was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// A copy-on-write fork read after the process was let go.
    Fork,
    /// Copied while stopped; `fork_refused` says why the fork was not used
    /// (None: the copy was asked for).
    Copy { fork_refused: Option<String> },
}

impl Default for Method {
    fn default() -> Method {
        Method::Copy { fork_refused: None }
    }
}

impl Method {
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Method::Fork => "fork",
            Method::Copy { .. } => "copy",
        }
    }

    /// The report's note: "snapshot: fork (pause 3.1 ms)", "snapshot: copy
    /// (pause 80.2 ms; fork refused: seccomp filter on every thread)".
    #[must_use]
    pub fn note(&self, pause: Duration) -> String {
        let ms = pause.as_secs_f64() * 1000.0;
        match self {
            Method::Fork => format!("snapshot: fork (pause {ms:.1} ms)"),
            Method::Copy { fork_refused: None } => format!("snapshot: copy (pause {ms:.1} ms)"),
            Method::Copy { fork_refused: Some(why) } => format!("snapshot: copy (pause {ms:.1} ms; fork refused: {why})"),
        }
    }
}

/// One range to copy, and the runs of it that hold data.
struct Planned {
    start: u64,
    end: u64,
    /// Sorted, disjoint sub-ranges to read; the rest reads as zero.
    runs: Vec<(u64, u64)>,
}

impl Planned {
    fn present(&self) -> u64 {
        self.runs.iter().map(|r| r.1 - r.0).sum()
    }
}

/// Whether a page of `m` that is in neither RAM nor swap is honestly zero:
/// private anonymous memory never written (or discarded with
/// MADV_DONTNEED). A file or shared mapping's absent page still has data
/// (the page cache), so it is read whole.
fn absent_is_zero(m: &Mapping) -> bool {
    !m.shared() && (m.path.is_none() || matches!(m.pseudo(), Some("[heap]" | "[stack]")) || m.path.as_deref().is_some_and(|p| p.starts_with("[anon:")))
}

const PAGE: u64 = 4096;

/// The runs of pages of [start, end) that are present or swapped, from
/// /proc/PID/pagemap (bit 63 present, bit 62 swapped). On any failure the
/// whole range is one run: read what cannot be ruled out.
fn present_runs(pagemap: Option<&std::fs::File>, start: u64, end: u64, out: &mut Vec<(u64, u64)>) {
    let Some(f) = pagemap else {
        out.push((start, end));
        return;
    };
    const ENTRIES: u64 = 64 << 10;
    let mut buf = vec![0u8; (ENTRIES * 8) as usize];
    let mut page = start / PAGE;
    let last = end.div_ceil(PAGE);
    let mut run: Option<(u64, u64)> = None;
    while page < last {
        let n = (last - page).min(ENTRIES);
        let bytes = &mut buf[..(n * 8) as usize];
        if f.read_exact_at(bytes, page * 8).is_err() {
            if let Some(r) = run.take() {
                out.push(r);
            }
            out.push(((page * PAGE).max(start), end));
            return;
        }
        for (i, e) in bytes.chunks_exact(8).enumerate() {
            let entry = u64::from_le_bytes(e.try_into().expect("8 bytes"));
            let a = (page + i as u64) * PAGE;
            if entry & (3 << 62) != 0 {
                match &mut run {
                    Some(r) if r.1 == a.max(start) => r.1 = (a + PAGE).min(end),
                    _ => {
                        if let Some(r) = run.take() {
                            out.push(r);
                        }
                        run = Some((a.max(start), (a + PAGE).min(end)));
                    }
                }
            }
        }
        page += n;
    }
    out.extend(run);
}

/// What to read of the selected mappings of `pid` (any of its threads, or
/// a forked copy): each range with the runs that hold data.
fn plan(pid: i32, maps: &[Mapping], selection: Selection) -> Vec<Planned> {
    let pagemap = std::fs::File::open(format!("/proc/{pid}/pagemap")).ok();
    selection
        .ranges(maps)
        .into_iter()
        .map(|(start, end)| {
            let mut runs: Vec<(u64, u64)> = Vec::new();
            for m in maps.iter().filter(|m| m.start < end && start < m.end) {
                let (s, e) = (m.start.max(start), m.end.min(end));
                if absent_is_zero(m) {
                    present_runs(pagemap.as_ref(), s, e, &mut runs);
                } else {
                    runs.push((s, e));
                }
            }
            // Adjacent runs (two heap pieces) read as one.
            let mut merged: Vec<(u64, u64)> = Vec::with_capacity(runs.len());
            for r in runs {
                match merged.last_mut() {
                    Some(p) if p.1 == r.0 => p.1 = r.1,
                    _ => merged.push(r),
                }
            }
            Planned { start, end, runs: merged }
        })
        .collect()
}

/// A zero-filled buffer of `len` bytes that costs no memory until written:
/// the allocator's calloc takes fresh pages from the kernel for large sizes,
/// so the pages never copied into stay unbacked. None when the address
/// space cannot be had.
fn zeroed(len: usize) -> Option<Vec<u8>> {
    if len == 0 {
        return Some(Vec::new());
    }
    let layout = std::alloc::Layout::array::<u8>(len).ok()?;
    // SAFETY: a non-zero size; on success the pointer owns `len` zeroed
    // bytes from the global allocator with u8's alignment, which is what
    // Vec::from_raw_parts needs.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout);
        if p.is_null() { None } else { Some(Vec::from_raw_parts(p, len, len)) }
    }
}

/// Zeroed buffers for a plan, with the pages of its runs faulted in (when
/// `prefault`), so that filling them while the process is stopped costs
/// only the copy.
fn buffers(pid: i32, planned: &[Planned], prefault: bool) -> Result<Vec<Segment>, Error> {
    let present: u64 = planned.iter().map(Planned::present).sum();
    // Only what holds data is copied: a process with more of it than this
    // machine has free memory cannot be scanned; say so rather than be
    // killed by the OOM killer.
    if let Some(avail) = mem_available() {
        if present > avail / 10 * 9 {
            return Err(Error::Inspect {
                pid,
                message: format!(
                    "it has {:.1} GiB of writable memory in use and this machine {:.1} GiB available: the copy would not fit",
                    present as f64 / f64::from(1u32 << 30),
                    avail as f64 / f64::from(1u32 << 30)
                ),
            });
        }
    }
    let mut out = Vec::with_capacity(planned.len());
    for p in planned {
        let len = (p.end - p.start) as usize;
        let mut data = zeroed(len).ok_or_else(|| Error::Inspect {
            pid,
            message: format!("cannot reserve {:.1} GiB of address space for the copy of its mapping at {:#x}", len as f64 / f64::from(1u32 << 30), p.start),
        })?;
        if prefault {
            let ptr = data.as_mut_ptr();
            for &(s, e) in &p.runs {
                for a in (s - p.start..e - p.start).step_by(PAGE as usize) {
                    // SAFETY: a < len; a volatile write so the touch stays.
                    unsafe { std::ptr::write_volatile(ptr.add(a as usize), 0) };
                }
            }
        }
        out.push(Segment { start: p.start, data });
    }
    Ok(out)
}

/// Copies [start, start+buf.len()) of the process (`pid` may be any of its
/// threads); unreadable pages stay zero. Returns the number of unreadable bytes.
fn copy(pid: i32, start: u64, buf: &mut [u8], mem: &mut Option<std::fs::File>) -> u64 {
    const CHUNK: usize = 64 << 20;
    let mut done = 0usize;
    let mut unreadable = 0u64;
    while done < buf.len() {
        let want = (buf.len() - done).min(CHUNK);
        let remote = [RemoteIoVec { base: (start + done as u64) as usize, len: want }];
        let mut local = [IoSliceMut::new(&mut buf[done..done + want])];
        match process_vm_readv(Pid::from_raw(pid), &mut local, &remote) {
            Ok(n) if n > 0 => {
                done += n;
                continue;
            }
            _ => {}
        }
        // Fallback for this page: /proc/PID/mem (reads what process_vm_readv
        // refuses, e.g. some special mappings); a page neither can read stays zero.
        if mem.is_none() {
            *mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok();
        }
        let page = (4096 - ((start as usize + done) % 4096)).min(buf.len() - done);
        let ok = mem.as_ref().is_some_and(|f| f.read_exact_at(&mut buf[done..done + page], start + done as u64).is_ok());
        if !ok {
            unreadable += page as u64;
        }
        done += page;
    }
    unreadable
}

/// Copies the runs of every segment, in pieces of at most COPY_PIECE bytes
/// shared out to one thread per core: the kernel's copy from another
/// process runs at a few GB/s per core (page pinning dominates), so the
/// copy shrinks with the cores used. Returns the number of unreadable bytes.
fn copy_parallel(pid: i32, segments: &mut [Segment], planned: &[Planned]) -> u64 {
    const COPY_PIECE: usize = 32 << 20;
    let mut pieces: Vec<(u64, &mut [u8])> = Vec::new();
    for (seg, p) in segments.iter_mut().zip(planned) {
        let mut rest: &mut [u8] = &mut seg.data;
        let mut at = seg.start;
        for &(s, e) in &p.runs {
            let (_, tail) = std::mem::take(&mut rest).split_at_mut((s - at) as usize);
            let (run, tail) = tail.split_at_mut((e - s) as usize);
            rest = tail;
            at = e;
            for (i, piece) in run.chunks_mut(COPY_PIECE).enumerate() {
                pieces.push((s + (i * COPY_PIECE) as u64, piece));
            }
        }
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8).min(pieces.len().max(1));
    let queue = std::sync::Mutex::new(pieces);
    let unreadable = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut mem = None;
                loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
                    let Some((start, buf)) = next else { break };
                    let n = copy(pid, start, buf, &mut mem);
                    unreadable.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    unreadable.into_inner()
}

/// MemAvailable from /proc/meminfo, in bytes.
fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = text.lines().find_map(|l| l.strip_prefix("MemAvailable:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// A live thread of the process: the main thread, unless it has exited.
fn live_task(pid: i32) -> i32 {
    if task_info(pid, pid).is_some_and(|t| !t.dead()) {
        return pid;
    }
    task_ids(pid).ok().into_iter().flatten().find(|&t| task_info(pid, t).is_some_and(|i| !i.dead())).unwrap_or(pid)
}

/// The maps of the process, read through one of its threads.
fn read_maps(pid: i32, tid: i32) -> Result<Vec<Mapping>, Error> {
    if tid == pid {
        return maps::read(pid);
    }
    let path = format!("/proc/{pid}/task/{tid}/maps");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(std::path::Path::new(&path), e))?;
    maps::parse(&text)
}

/// Stops the process, takes what the scan reads, and lets it go.
pub fn take(pid: i32, options: &Options) -> Result<Snapshot, Error> {
    take_with(pid, Selection::Scan, options)
}

/// Stops the process, copies the selected mappings while it is stopped,
/// and lets it go.
pub fn take_selected(pid: i32, selection: Selection) -> Result<Snapshot, Error> {
    take_with(pid, selection, &Options { want: Want::Copy })
}

/// Runs the clone in a stopped thread that can take it, while every thread
/// is held. Returns the new process, stopped and traced.
fn fork_stopped(pid: i32, attached: &mut Attached, at: u64) -> Result<Result<(i32, i32), fork::Refused>, Error> {
    let candidates: Vec<i32> = attached.held.iter().filter(|h| h.signal == 0).map(|h| h.tid).collect();
    let mut why = fork::Refused("every thread was stopped taking a signal (a thread is only injected from an interrupt stop)".into());
    let mut filtered = 0;
    for tid in candidates {
        // A seccomp filter may kill the process on clone: never try it.
        if fork::seccomp_mode(pid, tid) != 0 {
            filtered += 1;
            why = fork::Refused(if filtered == attached.held.len() { "seccomp filter on every thread".into() } else { "seccomp filter".into() });
            continue;
        }
        let (nr, args) = fork::clone_args();
        match fork::inject(tid, at, nr, args) {
            Ok(fork::Injected::Ran { ret, child, signal }) => {
                if let Some(h) = attached.held.iter_mut().find(|h| h.tid == tid) {
                    h.signal = signal;
                }
                return Ok(match child {
                    Some(c) if i64::from(c) == ret => match fork::wait_child_stop(c) {
                        Ok(()) => Ok((c, tid)),
                        Err(e) => {
                            fork::kill_child(c);
                            Err(fork::Refused(format!("the clone's child {c} could not be waited for: {e}")))
                        }
                    },
                    // A new process the trace did not catch (never seen): stop it for good.
                    _ if ret > 0 => {
                        // SAFETY: kill takes no pointers.
                        unsafe { libc::kill(ret as i32, libc::SIGKILL) };
                        Err(fork::Refused(format!("the clone's child {ret} was not traced from birth")))
                    }
                    _ => Err(fork::Refused(format!("clone failed: {}", fork::describe_ret(ret)))),
                });
            }
            Ok(fork::Injected::Signalled { signal }) => {
                if let Some(h) = attached.held.iter_mut().find(|h| h.tid == tid) {
                    h.signal = signal;
                }
                why = fork::Refused("a signal arrived in every thread tried".into());
            }
            Err(Errno::ESRCH) => {
                attached.release(tid);
                why = fork::Refused("the thread tried exited".into());
            }
            Err(e) => return Ok(Err(fork::Refused(format!("injection failed: {e}")))),
        }
    }
    Ok(Err(why))
}

/// Reaps the killed child from inside the process: a second stop of one
/// thread runs `waitid` on it. The child has no exit signal, so neither the
/// kernel nor a plain `wait()` of the process would ever reap it. Returns a
/// note when it could not be done.
fn reap(pid: i32, child: i32, at: u64, prefer: i32) -> Option<String> {
    for attempt in 0..50 {
        if !fork::still_child_of(pid, child) {
            return None;
        }
        let tid = if attempt == 0 && task_info(pid, prefer).is_some_and(|t| !t.dead()) { prefer } else { live_task(pid) };
        if fork::seccomp_mode(pid, tid) != 0 {
            break;
        }
        let mut one = Attached { held: Vec::new(), leader_exited: false };
        if ptrace::seize(Pid::from_raw(tid), ptrace::Options::empty()).is_err() {
            continue;
        }
        one.held.push(Held { tid, signal: 0 });
        if ptrace::interrupt(Pid::from_raw(tid)).is_err() {
            continue;
        }
        match wait_stop(tid) {
            Ok(Stop::Stopped { signal: 0 }) => {}
            Ok(Stop::Stopped { signal }) => {
                // Taking a signal: let it have it, and try again.
                one.held[0].signal = signal;
                continue;
            }
            Ok(Stop::Gone) | Err(_) => {
                one.held.clear();
                continue;
            }
        }
        let (nr, args) = fork::waitid_args(child);
        match fork::inject(tid, at, nr, args) {
            Ok(fork::Injected::Ran { signal, .. } | fork::Injected::Signalled { signal }) => one.held[0].signal = signal,
            Err(_) => {}
        }
    }
    fork::still_child_of(pid, child).then(|| format!("the scan's fork (pid {child}) could not be reaped from inside the process: it stays a zombie child until the process waits for it with __WALL"))
}

/// Stops the process, takes the selected mappings (by a fork read at
/// leisure, or by a copy while stopped), and lets it go.
pub fn take_with(pid: i32, selection: Selection, options: &Options) -> Result<Snapshot, Error> {
    check_pid(pid)?;
    // A first look at the maps, before the stop: where a syscall
    // instruction is, and (for the copy) buffers made with their pages
    // faulted in, so the pause pays only for the copy.
    let before = read_maps(pid, live_task(pid)).map_err(|e| match e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => attach_error(pid, Errno::EPERM),
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => Error::Inspect { pid, message: "no such process".into() },
        other => other,
    })?;
    let mut refused: Option<String> = None;
    let syscall_at = match options.want {
        Want::Copy => None,
        Want::Fork => fork::syscall_instruction(pid, &before).map_err(|r| refused = Some(r.0)).ok(),
    };
    let mut buffers_made = match syscall_at {
        Some(_) => None,
        None => {
            let planned = plan(live_task(pid), &before, selection);
            Some((buffers(pid, &planned, true)?, planned))
        }
    };

    let mut attached = Attached { held: Vec::new(), leader_exited: false };
    let stopped_at = Instant::now();
    stop_all(pid, &mut attached)?;
    let mut threads = Vec::new();
    for tid in attached.tids() {
        match ptrace::getregs(Pid::from_raw(tid)) {
            Ok(r) => threads.push(Thread::of_registers(tid, &r)),
            // Killed while stopped (SIGKILL needs no resume): skipped.
            Err(Errno::ESRCH) => continue,
            Err(e) => return Err(attach_error(pid, e)),
        }
    }
    if threads.is_empty() {
        return Err(Error::Inspect { pid, message: "the process exited while being attached".into() });
    }
    let stopped = stopped_at.elapsed();
    if let Some(at) = syscall_at {
        match fork_stopped(pid, &mut attached, at)? {
            Ok((child, injector)) => {
                drop(attached);
                let pause = stopped_at.elapsed();
                return read_fork(pid, child, ForkRead { selection, at, injector, before: &before, threads, pause, phases: [stopped, pause - stopped, Duration::ZERO] });
            }
            Err(fork::Refused(why)) => refused = Some(why),
        }
    }
    // Through a thread we hold: once the main thread has exited, the
    // process's own maps and memory read as empty.
    let reader = if attached.holds(pid) { pid } else { threads[0].tid };
    let map_list = read_maps(pid, reader)?;
    if map_list.is_empty() {
        return Err(Error::Inspect { pid, message: "its memory map is empty: it is exiting".into() });
    }
    // The pages present now, not at the first look.
    let planned = plan(reader, &map_list, selection);
    let mapped = stopped_at.elapsed();
    let mut segments: Vec<Segment> = Vec::with_capacity(planned.len());
    let mut made = buffers_made.take().map(|(segs, _)| segs).unwrap_or_default();
    for p in &planned {
        let len = (p.end - p.start) as usize;
        let data = match made.iter().position(|s| s.start == p.start && s.data.len() == len) {
            Some(i) => made.swap_remove(i).data,
            None => zeroed(len).ok_or_else(|| Error::Inspect { pid, message: format!("cannot reserve {len} bytes for the copy of its mapping at {:#x}", p.start) })?,
        };
        segments.push(Segment { start: p.start, data });
    }
    let unreadable = copy_parallel(reader, &mut segments, &planned);
    let copied = stopped_at.elapsed();
    drop(attached);
    let pause = stopped_at.elapsed();
    drop(made);
    Ok(Snapshot {
        pid,
        threads,
        maps: map_list,
        memory: Memory::new(segments),
        pause,
        pause_phases: [stopped, mapped - stopped, copied - mapped],
        unreadable_bytes: unreadable,
        method: Method::Copy { fork_refused: refused },
        notes: Vec::new(),
    })
}

/// What `read_fork` needs of the stop.
struct ForkRead<'a> {
    selection: Selection,
    at: u64,
    injector: i32,
    before: &'a [Mapping],
    threads: Vec<Thread>,
    pause: Duration,
    phases: [Duration; 3],
}

/// Reads the fork's image while the process runs, then kills and reaps it.
fn read_fork(pid: i32, child: i32, f: ForkRead<'_>) -> Result<Snapshot, Error> {
    // Killed on every path out of here (a panic too: let go by an exiting
    // tracer, it would run the process's code).
    struct Forked(i32);
    impl Drop for Forked {
        fn drop(&mut self) {
            fork::kill_child(self.0);
        }
    }
    let forked = Forked(child);
    let read = (|| {
        let map_list = maps::read(child)?;
        let planned = plan(child, &map_list, f.selection);
        let mut segments = buffers(pid, &planned, false)?;
        let unreadable = copy_parallel(child, &mut segments, &planned);
        Ok::<_, Error>((map_list, segments, unreadable))
    })();
    drop(forked);
    let reap_note = reap(pid, child, f.at, f.injector);
    let (map_list, segments, unreadable) = read?;
    let mut notes: Vec<String> = reap_note.into_iter().collect();
    // A mapping marked MADV_DONTFORK is not in the fork: say what was not seen.
    let missing: u64 = f.before.iter().filter(|m| f.selection.wants(m) && !map_list.iter().any(|c| c.start <= m.start && m.end <= c.end)).map(Mapping::len).sum();
    if missing > 0 {
        notes.push(format!("{missing} bytes of writable mappings were not inherited by the scan's fork (MADV_DONTFORK, or unmapped meanwhile) and were not scanned"));
    }
    Ok(Snapshot {
        pid,
        threads: f.threads,
        maps: map_list,
        memory: Memory::new(segments),
        pause: f.pause,
        pause_phases: f.phases,
        unreadable_bytes: unreadable,
        method: Method::Fork,
        notes,
    })
}

/// Copies a process whose threads `tids` are already stopped by the calling
/// thread, its tracer (harness/trace.rs): nothing is attached, stopped or
/// resumed here. Maps and memory are read through the first thread listed,
/// so a process whose leader has exited (its /proc/PID/maps is empty) is
/// still copied whole.
pub fn take_stopped(pid: i32, tids: &[i32]) -> Result<Snapshot, Error> {
    let started = Instant::now();
    let mut threads = Vec::new();
    for &tid in tids {
        match ptrace::getregs(Pid::from_raw(tid)) {
            Ok(r) => threads.push(Thread::of_registers(tid, &r)),
            // Killed meanwhile (the run's deadline): nothing left to read of it.
            Err(Errno::ESRCH) => continue,
            Err(e) => return Err(Error::Inspect { pid, message: format!("reading the registers of thread {tid}: {e}") }),
        }
    }
    let Some(via) = threads.first().map(|t| t.tid) else {
        return Err(Error::Inspect { pid, message: "none of its threads is left to read".into() });
    };
    let stopped = started.elapsed();
    let map_list = maps::read(via)?;
    let mapped = started.elapsed();
    let planned = plan(via, &map_list, Selection::Scan);
    let mut segments = buffers(pid, &planned, true)?;
    let unreadable = copy_parallel(via, &mut segments, &planned);
    let copied = started.elapsed();
    Ok(Snapshot {
        pid,
        threads,
        maps: map_list,
        memory: Memory::new(segments),
        pause: copied,
        pause_phases: [stopped, mapped - stopped, copied - mapped],
        unreadable_bytes: unreadable,
        method: Method::default(),
        notes: Vec::new(),
    })
}
