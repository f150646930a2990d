//! A consistent copy of a live process: every thread stopped with ptrace,
//! registers read, the writable mappings copied with process_vm_readv, and
//! the process let go again at once. The analysis then works on the copy.
//!
//! The target is never left stopped or traced: [`Attached`] detaches every
//! thread in `Drop` (also on error and on panic, which unwinds). If the
//! harness itself dies while attached (Ctrl-C runs `exit`, or SIGKILL), the
//! kernel detaches all tracees of an exiting tracer and resumes them; ptrace
//! requests can only come from the tracing thread, so a signal handler could
//! not detach anyway. The attached window is kept short (milliseconds) for
//! the same reason.

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::uio::{process_vm_readv, RemoteIoVec};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

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

/// What was copied from the process, and how long it was stopped.
#[derive(Debug)]
pub struct Snapshot {
    pub pid: i32,
    pub threads: Vec<Thread>,
    pub maps: Vec<Mapping>,
    pub memory: Memory,
    pub pause: Duration,
    /// Of the pause: stopping the threads, reading the maps, copying.
    pub pause_phases: [Duration; 3],
    /// Pages that could not be read (e.g. a file mapping beyond the file's end); zero-filled.
    pub unreadable_bytes: u64,
}

/// Why a scan cannot attach, with what to do about it.
fn attach_error(pid: i32, errno: Errno) -> Error {
    let message = match errno {
        Errno::ESRCH => "the process does not exist (or exited)".to_string(),
        Errno::EPERM => {
            let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").ok().map(|s| s.trim().to_string());
            let yama = match scope.as_deref() {
                Some("0") | None => String::new(),
                Some(s) => format!("; kernel.yama.ptrace_scope is {s} (0 allows attaching to your own processes: `sysctl kernel.yama.ptrace_scope=0`)"),
            };
            format!("ptrace is not permitted: run as the process's owner or as root (CAP_SYS_PTRACE){yama}")
        }
        other => format!("ptrace failed: {other}"),
    };
    Error::Inspect { pid, message }
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
    Ok(())
}

/// The threads we hold stopped; detached (and so resumed) when dropped.
struct Attached {
    tids: Vec<i32>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        for &tid in &self.tids {
            // A thread that exited meanwhile gives ESRCH: nothing to undo.
            let _ = ptrace::detach(Pid::from_raw(tid), None);
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

/// Stops every thread: PTRACE_SEIZE, PTRACE_INTERRUPT, and a wait for the
/// stop. Threads created meanwhile are caught by listing the tasks again
/// until no new one shows up. A thread already in a group-stop (SIGSTOP at
/// the checkpoint) is reported at once after the seize; the interrupt then
/// only leaves a pending trap that the detach clears.
fn stop_all(pid: i32, attached: &mut Attached) -> Result<(), Error> {
    for _round in 0..64 {
        let mut new = false;
        for tid in task_ids(pid)? {
            if attached.tids.contains(&tid) {
                continue;
            }
            let t = Pid::from_raw(tid);
            match ptrace::seize(t, ptrace::Options::empty()) {
                Ok(()) => {}
                // Exited between the listing and the seize.
                Err(Errno::ESRCH) if tid != pid => continue,
                Err(e) => return Err(attach_error(pid, e)),
            }
            attached.tids.push(tid);
            new = true;
            if let Err(e) = ptrace::interrupt(t) {
                if e == Errno::ESRCH {
                    continue;
                }
                return Err(attach_error(pid, e));
            }
            loop {
                match waitpid(t, Some(WaitPidFlag::__WALL)) {
                    Ok(WaitStatus::PtraceEvent(..) | WaitStatus::Stopped(..) | WaitStatus::PtraceSyscall(_)) => break,
                    Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) => {
                        attached.tids.retain(|&x| x != tid);
                        break;
                    }
                    Ok(_) => continue,
                    Err(Errno::EINTR) => continue,
                    Err(Errno::ECHILD) => {
                        attached.tids.retain(|&x| x != tid);
                        break;
                    }
                    Err(e) => return Err(attach_error(pid, e)),
                }
            }
        }
        if !new {
            return Ok(());
        }
    }
    Err(Error::Inspect { pid, message: "threads keep appearing faster than they can be stopped".into() })
}

/// Mappings worth copying: readable and writable (data, bss, heaps, stacks,
/// anonymous memory), except the kernel's own pages.
fn wanted(m: &Mapping) -> bool {
    m.readable() && m.writable() && !matches!(m.pseudo(), Some("[vvar]" | "[vsyscall]" | "[vdso]" | "[vvar_vclock]"))
}

/// A zeroed buffer whose pages are already faulted in, so that filling it
/// during the pause costs only the copy.
fn prefaulted(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    let p = v.as_mut_ptr();
    for off in (0..len).step_by(4096) {
        // SAFETY: off < len; a volatile write so the touch is not optimized away.
        unsafe { std::ptr::write_volatile(p.add(off), 0) };
    }
    v
}

/// Copies [start, start+buf.len()) of the process; unreadable pages stay zero.
/// Returns the number of unreadable bytes.
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

/// Copies every segment, in pieces of at most COPY_PIECE bytes shared out
/// to one thread per core: the kernel's copy from another process runs at
/// a few GB/s per core (page pinning dominates), so the pause shrinks with
/// the cores used. Returns the number of unreadable bytes.
fn copy_parallel(pid: i32, segments: &mut [Segment]) -> u64 {
    const COPY_PIECE: usize = 32 << 20;
    let mut pieces: Vec<(u64, &mut [u8])> = Vec::new();
    for seg in segments.iter_mut() {
        let start = seg.start;
        for (i, piece) in seg.data.chunks_mut(COPY_PIECE).enumerate() {
            pieces.push((start + (i * COPY_PIECE) as u64, piece));
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

/// Stops the process, copies it, and lets it go.
pub fn take(pid: i32) -> Result<Snapshot, Error> {
    check_pid(pid)?;
    // Buffers are made (and their pages faulted in) before the stop, from a
    // first look at the maps; the pause then only pays for the copy.
    let before = maps::read(pid).map_err(|e| match e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => attach_error(pid, Errno::EPERM),
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => Error::Inspect { pid, message: "no such process".into() },
        other => other,
    })?;
    // The copy is whole: a process with more writable address space than
    // this machine has free memory (a huge sparse reservation, say) cannot be
    // scanned this way; say so rather than be killed by the OOM killer.
    let total: u64 = before.iter().filter(|m| wanted(m)).map(Mapping::len).sum();
    if let Some(avail) = mem_available() {
        if total > avail / 10 * 9 {
            return Err(Error::Inspect {
                pid,
                message: format!(
                    "it has {:.1} GiB of writable mappings and this machine {:.1} GiB of available memory: the copy would not fit",
                    total as f64 / f64::from(1u32 << 30),
                    avail as f64 / f64::from(1u32 << 30)
                ),
            });
        }
    }
    let mut buffers: HashMap<(u64, u64), Vec<u8>> =
        before.iter().filter(|m| wanted(m)).map(|m| ((m.start, m.end), prefaulted(m.len() as usize))).collect();

    let mut attached = Attached { tids: Vec::new() };
    let stopped_at = Instant::now();
    stop_all(pid, &mut attached)?;
    let mut threads = Vec::new();
    for &tid in &attached.tids {
        match ptrace::getregs(Pid::from_raw(tid)) {
            Ok(r) => threads.push(Thread {
                tid,
                sp: r.rsp,
                fs_base: r.fs_base,
                regs: vec![
                    r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14,
                    r.r15, r.rip, r.fs_base, r.gs_base,
                ],
            }),
            Err(Errno::ESRCH) => continue,
            Err(e) => return Err(attach_error(pid, e)),
        }
    }
    if threads.is_empty() {
        return Err(Error::Inspect { pid, message: "the process exited while being attached".into() });
    }
    let stopped = stopped_at.elapsed();
    let map_list = maps::read(pid)?;
    let mapped = stopped_at.elapsed();
    let mut segments: Vec<Segment> = map_list
        .iter()
        .filter(|m| wanted(m))
        .map(|m| Segment { start: m.start, data: buffers.remove(&(m.start, m.end)).unwrap_or_else(|| vec![0u8; m.len() as usize]) })
        .collect();
    let unreadable = copy_parallel(pid, &mut segments);
    let copied = stopped_at.elapsed();
    drop(attached);
    let pause = stopped_at.elapsed();
    drop(buffers);
    Ok(Snapshot {
        pid,
        threads,
        maps: map_list,
        memory: Memory::new(segments),
        pause,
        pause_phases: [stopped, mapped - stopped, copied - mapped],
        unreadable_bytes: unreadable,
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
            Ok(r) => threads.push(Thread {
                tid,
                sp: r.rsp,
                fs_base: r.fs_base,
                regs: vec![
                    r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14,
                    r.r15, r.rip, r.fs_base, r.gs_base,
                ],
            }),
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
    let mut segments: Vec<Segment> =
        map_list.iter().filter(|m| wanted(m)).map(|m| Segment { start: m.start, data: prefaulted(m.len() as usize) }).collect();
    let unreadable = copy_parallel(via, &mut segments);
    let copied = started.elapsed();
    Ok(Snapshot {
        pid,
        threads,
        maps: map_list,
        memory: Memory::new(segments),
        pause: copied,
        pause_phases: [stopped, mapped - stopped, copied - mapped],
        unreadable_bytes: unreadable,
    })
}
