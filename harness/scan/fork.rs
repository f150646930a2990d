//! The fork method of a snapshot: while every thread of the target is
//! stopped, one of them is made to run a `clone` system call (no exit
//! signal, so the target gets no SIGCHLD and a plain `wait()` never sees the
//! child), the child is traced from birth and so never runs an instruction,
//! and the target is let go at once. The child's copy-on-write image is then
//! read at leisure; the child is killed, and reaped from inside the target
//! by one more injected `waitid` in a second stop of one thread.
//!
//! Injection, and what it must leave as it was:
//! - registers: saved and set back, `orig_rax` included;
//! - the system call the thread was in: the thread is brought back into the
//!   same kind of stop it was in (a PTRACE_INTERRUPT stop, inside the
//!   kernel's signal code), so when it is let go the kernel restarts its
//!   call (`-ERESTARTSYS` and the like) exactly as it would have;
//! - the signal mask: every signal is blocked while the injected call runs,
//!   so no signal is taken meanwhile; then the mask is put back. A thread in
//!   ppoll/pselect/sigsuspend holds a temporary mask that the kernel drops
//!   on the first resume: the mask read after that resume is the real one;
//! - pending signals: never taken during the injection; one that the kernel
//!   hands over at the first resume (a thread whose temporary mask was
//!   dropped) aborts the injection with the registers put back and the
//!   signal kept, for the detach to deliver;
//! - errno lives in the thread's TLS: a raw system call does not touch it.

use nix::errno::Errno;

use super::maps::Mapping;

const PTRACE_GETSIGMASK: libc::c_uint = 0x420a;
const PTRACE_SETSIGMASK: libc::c_uint = 0x420b;
const PTRACE_O_TRACESYSGOOD: libc::c_long = 1;
const PTRACE_O_TRACECLONE: libc::c_long = 8;
const PTRACE_EVENT_CLONE: i32 = 3;
const PTRACE_EVENT_STOP: i32 = 128;
/// The kernel's restart codes (include/linux/errno.h): ERESTARTSYS 512,
/// ERESTARTNOINTR 513, ERESTARTNOHAND 514, ERESTART_RESTARTBLOCK 516; a
/// clone that a signal interrupted returns ERESTARTNOINTR.
const ERESTARTNOINTR: i64 = 513;
/// The new process shares the fd table and the fs info instead of copying
/// them: cheaper, and when it dies nothing of the target's is closed.
const CLONE_FLAGS: u64 = (libc::CLONE_FILES | libc::CLONE_FS) as u64;

/// Why the fork is not used; the copy runs instead and the report says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// Where the target can be made to run a system call: the address of a
/// `syscall` instruction (0f 05) in an executable mapping of the vdso or the
/// C library. Any such byte pair will do: the thread is stopped right after
/// the call, before it runs whatever follows.
pub fn syscall_instruction(pid: i32, maps: &[Mapping]) -> Result<u64, Refused> {
    let places = maps.iter().filter(|m| m.executable() && m.readable()).filter(|m| {
        m.pseudo() == Some("[vdso]")
            || m.file().is_some_and(|p| {
                let n = p.rsplit('/').next().unwrap_or(p);
                n.starts_with("libc.so") || n.starts_with("libc-")
            })
    });
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).map_err(|e| Refused(format!("cannot read its code: {e}")))?;
    for m in places {
        // The vdso is a few pages; libc's text needs only its first pages searched.
        let len = m.len().min(1 << 20) as usize;
        let mut buf = vec![0u8; len];
        if std::os::unix::fs::FileExt::read_exact_at(&mem, &mut buf, m.start).is_err() {
            continue;
        }
        if let Some(i) = buf.windows(2).position(|w| w == [0x0f, 0x05]) {
            return Ok(m.start + i as u64);
        }
    }
    Err(Refused("no `syscall` instruction found in its vdso or C library".into()))
}

/// The `Seccomp:` mode of a thread (0: none, 1: strict, 2: filter). A
/// filter may kill the process on `clone`: such a thread is never injected.
pub fn seccomp_mode(pid: i32, tid: i32) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Seccomp:").and_then(|v| v.trim().parse().ok())))
        .unwrap_or(0)
}

fn ptrace_raw(request: libc::c_uint, tid: i32, addr: usize, data: usize) -> Result<libc::c_long, Errno> {
    // SAFETY: the requests used here take either no pointer or a pointer to a
    // live local of the size the request reads or writes.
    let r = unsafe { libc::ptrace(request, tid, addr as *mut libc::c_void, data as *mut libc::c_void) };
    if r < 0 { Err(Errno::last()) } else { Ok(r) }
}

fn getregs(tid: i32) -> Result<libc::user_regs_struct, Errno> {
    // SAFETY: user_regs_struct is plain integers.
    let mut r: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    ptrace_raw(libc::PTRACE_GETREGS, tid, 0, std::ptr::addr_of_mut!(r) as usize)?;
    Ok(r)
}

fn setregs(tid: i32, r: &libc::user_regs_struct) -> Result<(), Errno> {
    ptrace_raw(libc::PTRACE_SETREGS, tid, 0, std::ptr::from_ref(r) as usize).map(drop)
}

fn getmask(tid: i32) -> Result<u64, Errno> {
    let mut m = 0u64;
    ptrace_raw(PTRACE_GETSIGMASK, tid, 8, std::ptr::addr_of_mut!(m) as usize)?;
    Ok(m)
}

fn setmask(tid: i32, m: u64) -> Result<(), Errno> {
    ptrace_raw(PTRACE_SETSIGMASK, tid, 8, std::ptr::from_ref(&m) as usize).map(drop)
}

/// A ptrace-stop as waitpid reports it.
#[derive(Debug, Clone, Copy)]
enum Event {
    /// A syscall-enter or syscall-exit stop (PTRACE_O_TRACESYSGOOD).
    Syscall,
    /// PTRACE_EVENT_CLONE: the new process's pid is in the event message.
    Clone,
    /// An interrupt or group stop (PTRACE_EVENT_STOP).
    Stop,
    /// A signal-delivery-stop of this signal.
    Signal(i32),
    /// The thread is gone (killed meanwhile).
    Gone,
}

fn wait_event(tid: i32) -> Result<Event, Errno> {
    loop {
        let mut status = 0;
        // SAFETY: a valid out-pointer; __WALL waits for threads too.
        let r = unsafe { libc::waitpid(tid, &mut status, libc::__WALL) };
        if r < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                Errno::ECHILD => return Ok(Event::Gone),
                e => return Err(e),
            }
        }
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            return Ok(Event::Gone);
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        let sig = libc::WSTOPSIG(status);
        return Ok(match status >> 16 {
            0 if sig == libc::SIGTRAP | 0x80 => Event::Syscall,
            0 => Event::Signal(sig),
            PTRACE_EVENT_CLONE => Event::Clone,
            PTRACE_EVENT_STOP => Event::Stop,
            // No other event is enabled; treat as a stop to resume from.
            _ => Event::Stop,
        });
    }
}

/// How an injected system call ended.
#[derive(Debug, Clone, Copy)]
pub enum Injected {
    /// It ran and returned `ret`; `child` is the process a clone made. The
    /// thread has its registers and mask as they were, and is back in an
    /// interrupt stop (or, with no call of its own to restart, still in the
    /// injected call's exit stop, which it leaves the same way); `signal` is
    /// one the kernel handed it on the way (a signal-delivery-stop), for the
    /// detach to deliver.
    Ran { ret: i64, child: Option<i32>, signal: i32 },
    /// A signal was handed to the thread before the call ran: nothing was
    /// run, the registers are back, and the thread is in a
    /// signal-delivery-stop of `signal`, for the detach to deliver.
    Signalled { signal: i32 },
}

/// Runs system call `nr` with `args` in thread `tid`, which the caller
/// holds in an interrupt or group stop (never a signal-delivery-stop: the
/// signal would be lost), at the `syscall` instruction `at`.
pub fn inject(tid: i32, at: u64, nr: i64, args: [u64; 6]) -> Result<Injected, Errno> {
    let saved = getregs(tid)?;
    let mask0 = getmask(tid)?;
    ptrace_raw(libc::PTRACE_SETOPTIONS, tid, 0, (PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE) as usize)?;
    setmask(tid, !0)?;
    let all = getmask(tid)?;
    let mut regs = saved;
    regs.rip = at;
    regs.rax = nr as u64;
    // No system call to restart on the way out of the stop: the kernel must
    // not rewind rip or touch rax before the injected call runs.
    regs.orig_rax = u64::MAX;
    [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9] = args;
    setregs(tid, &regs)?;
    let restart = |sig: usize| ptrace_raw(libc::PTRACE_SYSCALL, tid, 0, sig).map(drop);
    restart(0)?;
    // Up to the syscall-enter stop.
    loop {
        match wait_event(tid)? {
            Event::Syscall => break,
            Event::Signal(signal) => {
                // The temporary mask of ppoll & co. was dropped and a signal
                // came through: give it back with the thread as it was.
                setregs(tid, &saved)?;
                ptrace_raw(libc::PTRACE_SETOPTIONS, tid, 0, 0)?;
                return Ok(Injected::Signalled { signal });
            }
            Event::Gone => return Err(Errno::ESRCH),
            Event::Stop | Event::Clone => restart(0)?,
        }
    }
    // The mask the thread really has: the one read first, unless the
    // kernel restored a saved one at the resume (then blocked changed).
    let now = getmask(tid)?;
    let mask = if now == all { mask0 } else { now };
    restart(0)?;
    let mut child = None;
    let ret = loop {
        match wait_event(tid)? {
            Event::Syscall => break getregs(tid)?.rax as i64,
            Event::Clone => {
                let mut msg: libc::c_ulong = 0;
                ptrace_raw(libc::PTRACE_GETEVENTMSG, tid, 0, std::ptr::addr_of_mut!(msg) as usize)?;
                child = i32::try_from(msg).ok();
                restart(0)?;
            }
            Event::Gone => return Err(Errno::ESRCH),
            // Every signal is blocked; a stop is resumed from.
            Event::Signal(_) | Event::Stop => restart(0)?,
        }
    };
    setregs(tid, &saved)?;
    setmask(tid, mask)?;
    ptrace_raw(libc::PTRACE_SETOPTIONS, tid, 0, 0)?;
    // A thread that was not in a system call to restart (computing, or
    // stopped after its call returned) leaves from this stop just as from
    // the one it was in: the way out of a syscall-exit stop touches only a
    // restart code.
    let restarting = saved.orig_rax as i64 >= 0 && matches!(-(saved.rax as i64), 512 | 513 | 514 | 516);
    if !restarting {
        return Ok(Injected::Ran { ret, child, signal: 0 });
    }
    // Back into the stop it was in: an interrupt taken on the way out of
    // this syscall-exit stop stops it inside the kernel's signal code again,
    // before any instruction, whence the detach restarts its own call.
    ptrace_raw(libc::PTRACE_INTERRUPT, tid, 0, 0)?;
    ptrace_raw(libc::PTRACE_CONT, tid, 0, 0)?;
    let signal = loop {
        match wait_event(tid)? {
            Event::Stop => break 0,
            Event::Signal(s) => break s,
            Event::Gone => return Err(Errno::ESRCH),
            Event::Syscall | Event::Clone => ptrace_raw(libc::PTRACE_CONT, tid, 0, 0).map(drop)?,
        }
    };
    Ok(Injected::Ran { ret, child, signal })
}

/// The arguments of the injected clone: no exit signal, no new stack (the
/// child never runs), the fd table and fs info shared.
#[must_use]
pub fn clone_args() -> (i64, [u64; 6]) {
    (libc::SYS_clone, [CLONE_FLAGS, 0, 0, 0, 0, 0])
}

/// The arguments of the injected reap: `waitid(P_PID, child, NULL,
/// WEXITED | WNOHANG | __WALL, NULL)`. WNOHANG: the target's thread must
/// never block in it, whatever became of the child.
#[must_use]
pub fn waitid_args(child: i32) -> (i64, [u64; 6]) {
    let options = (libc::WEXITED | libc::WNOHANG | libc::__WALL) as u32;
    (libc::SYS_waitid, [libc::P_PID as u64, child as u64, 0, u64::from(options), 0, 0])
}

/// Waits for the new process's first stop (it is traced from birth).
pub fn wait_child_stop(child: i32) -> Result<(), Errno> {
    match wait_event(child)? {
        Event::Gone => Err(Errno::ESRCH),
        _ => Ok(()),
    }
}

/// Kills the new process and waits for its death as its tracer; it is then
/// a zombie of the target (or gone, if the target ignores SIGCHLD).
pub fn kill_child(child: i32) {
    // SAFETY: kill takes no pointers.
    unsafe { libc::kill(child, libc::SIGKILL) };
    loop {
        match wait_event(child) {
            Ok(Event::Gone) | Err(_) => return,
            // A stop reported before the kill took effect.
            Ok(_) => {}
        }
    }
}

/// Whether `child` is still a child of `pid` (a zombie waiting to be reaped).
#[must_use]
pub fn still_child_of(pid: i32, child: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { return false };
    let Some((_, rest)) = stat.rsplit_once(')') else { return false };
    rest.split_whitespace().nth(1).and_then(|p| p.parse::<i32>().ok()) == Some(pid)
}

/// `ret` as an errno, for messages.
#[must_use]
pub fn describe_ret(ret: i64) -> String {
    if ret == -ERESTARTNOINTR {
        return "interrupted by a signal".into();
    }
    i32::try_from(-ret).map_or_else(|_| format!("returned {ret}"), |e| Errno::from_raw(e).desc().to_string())
}
