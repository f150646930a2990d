//! The peak memory of a child as the kernel accounts it when the child
//! exits (taskstats over generic netlink, `hiwater_rss`).
//!
//! wait4's `ru_maxrss` cannot be used for it: at exec the kernel keeps the
//! high-water mark of the image being replaced, and a child forked from
//! leaklab starts with leaklab's own resident pages, so every program would
//! "peak" at leaklab's size (118 MiB in the book's bench, whatever ran).
//! taskstats reports the high-water mark of the exiting task's own address
//! space, the one exec made. Listening needs CAP_NET_ADMIN; without it
//! [`peak_rss_kib`] answers `None` and callers fall back to `ru_maxrss`.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Mutex, OnceLock};

const NETLINK_GENERIC: i32 = 16;
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const TASKSTATS_CMD_GET: u8 = 1;
const TASKSTATS_CMD_ATTR_REGISTER_CPUMASK: u16 = 3;
const TASKSTATS_TYPE_PID: u16 = 1;
const TASKSTATS_TYPE_STATS: u16 = 3;
const TASKSTATS_TYPE_AGGR_PID: u16 = 4;
/// Offsets in `struct taskstats` (linux/taskstats.h; fields are only ever appended).
const TS_VERSION: usize = 0;
const TS_AC_PPID: usize = 132;
const TS_HIWATER_RSS: usize = 200;
const TS_AC_TGID: usize = 368;
/// `ac_tgid` exists from version 12 on.
const TS_VERSION_WITH_TGID: u16 = 12;
const NLA_NESTED: u16 = 1 << 15;

struct Listener {
    fd: OwnedFd,
    family: u16,
    /// Processes whose exit is awaited.
    watched: HashSet<u32>,
    /// Their peak so far, over their threads and descendants that have
    /// exited, in KiB.
    peaks: HashMap<u32, u64>,
    /// The biggest peak among the exited children of a process not yet
    /// known to be a watched one's descendant, by that process: a child's
    /// record comes before its parent's (a wrapper like heaptrack's shell
    /// script runs the program as its child).
    below: HashMap<u32, u64>,
}

/// Bound on `below`: records of the rest of the machine are forgotten.
const BELOW_LIMIT: usize = 1 << 14;

static LISTENER: OnceLock<Option<Mutex<Listener>>> = OnceLock::new();

fn listener() -> Option<&'static Mutex<Listener>> {
    LISTENER.get_or_init(|| open().map(Mutex::new)).as_ref()
}

/// Listens from now on, so that a child started next cannot exit unseen.
pub fn start() {
    let _ = listener();
}

/// Keeps the exit record of process `pid` (a child just started).
pub fn watch(pid: i32) {
    if let Some(l) = listener() {
        l.lock().unwrap_or_else(|e| e.into_inner()).watched.insert(pid as u32);
    }
}

/// The peak resident size, in KiB, of process `pid`'s last address space,
/// once it has exited and been reaped; `None` when taskstats is not
/// available or its record was lost.
#[must_use]
pub fn peak_rss_kib(pid: i32) -> Option<u64> {
    let mut l = listener()?.lock().unwrap_or_else(|e| e.into_inner());
    l.drain();
    l.watched.remove(&(pid as u32));
    l.peaks.remove(&(pid as u32))
}

impl Listener {
    /// Reads every record queued so far.
    fn drain(&mut self) {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            // SAFETY: a valid buffer of its length.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
            if n < 0 {
                // ENOBUFS: records were dropped; the later ones still come.
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOBUFS) {
                    continue;
                }
                return;
            }
            for (ty, payload) in messages(&buf[..n as usize]) {
                if ty == self.family && payload.len() >= 4 {
                    for exit in exits(&payload[4..]) {
                        self.record(exit);
                    }
                }
            }
        }
    }
}

impl Listener {
    /// Counts an exit towards its process, or towards the watched process
    /// it descends from: the peak of a run is that of its biggest process,
    /// as wait4's `ru_maxrss` would say of its reaped children.
    fn record(&mut self, exit: Exit) {
        let peak = exit.peak.max(self.below.remove(&exit.process).unwrap_or(0));
        let owner = if self.watched.contains(&exit.process) {
            exit.process
        } else if self.watched.contains(&exit.parent) {
            exit.parent
        } else {
            if self.below.len() >= BELOW_LIMIT {
                self.below.clear();
            }
            let b = self.below.entry(exit.parent).or_insert(0);
            *b = (*b).max(peak);
            return;
        };
        let p = self.peaks.entry(owner).or_insert(0);
        *p = (*p).max(peak);
    }
}

/// One task's exit: its process (thread group), that process's parent,
/// and the peak of its address space in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exit {
    process: u32,
    parent: u32,
    peak: u64,
}

/// (type, payload) of each netlink message in a datagram.
fn messages(mut data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 16 {
        let len = u32::from_ne_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
        let ty = u16::from_ne_bytes(data[4..6].try_into().expect("2 bytes"));
        if len < 16 || len > data.len() {
            break;
        }
        out.push((ty, &data[16..len]));
        data = &data[align4(len).min(data.len())..];
    }
    out
}

/// (type, payload) of each netlink attribute.
fn attributes(mut data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 4 {
        let len = u16::from_ne_bytes(data[0..2].try_into().expect("2 bytes")) as usize;
        let ty = u16::from_ne_bytes(data[2..4].try_into().expect("2 bytes")) & !NLA_NESTED;
        if len < 4 || len > data.len() {
            break;
        }
        out.push((ty, &data[4..len]));
        data = &data[align4(len).min(data.len())..];
    }
    out
}

/// Each task exit in a taskstats message: the process is the thread group
/// (`ac_tgid`), or the task itself on a kernel too old to say.
fn exits(attrs: &[u8]) -> Vec<Exit> {
    let mut out = Vec::new();
    for (ty, nested) in attributes(attrs) {
        if ty != TASKSTATS_TYPE_AGGR_PID {
            continue;
        }
        let (mut task, mut stats) = (None, None);
        for (ty, v) in attributes(nested) {
            match ty {
                TASKSTATS_TYPE_PID if v.len() >= 4 => task = Some(u32::from_ne_bytes(v[0..4].try_into().expect("4 bytes"))),
                TASKSTATS_TYPE_STATS if v.len() >= TS_HIWATER_RSS + 8 => stats = Some(v),
                _ => {}
            }
        }
        let (Some(task), Some(s)) = (task, stats) else { continue };
        let version = u16::from_ne_bytes(s[TS_VERSION..TS_VERSION + 2].try_into().expect("2 bytes"));
        let peak = u64::from_ne_bytes(s[TS_HIWATER_RSS..TS_HIWATER_RSS + 8].try_into().expect("8 bytes"));
        let group = (version >= TS_VERSION_WITH_TGID && s.len() >= TS_AC_TGID + 4)
            .then(|| u32::from_ne_bytes(s[TS_AC_TGID..TS_AC_TGID + 4].try_into().expect("4 bytes")))
            .filter(|&g| g != 0)
            .unwrap_or(task);
        let parent = u32::from_ne_bytes(s[TS_AC_PPID..TS_AC_PPID + 4].try_into().expect("4 bytes"));
        out.push(Exit { process: group, parent, peak });
    }
    out
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn attr(ty: u16, value: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(align4(4 + value.len()));
    a.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    a.extend_from_slice(&ty.to_ne_bytes());
    a.extend_from_slice(value);
    a.resize(align4(a.len()), 0);
    a
}

fn send(fd: &OwnedFd, ty: u16, cmd: u8, attrs: &[u8]) -> Option<()> {
    let mut m = Vec::new();
    m.extend_from_slice(&((16 + 4 + attrs.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[cmd, 1, 0, 0]);
    m.extend_from_slice(attrs);
    // SAFETY: a valid buffer of its length.
    let n = unsafe { libc::send(fd.as_raw_fd(), m.as_ptr().cast(), m.len(), 0) };
    (n == m.len() as isize).then_some(())
}

/// The next datagram the kernel sends back.
fn reply(fd: &OwnedFd) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 1 << 16];
    // SAFETY: a valid buffer of its length.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    (n > 0).then(|| buf[..n as usize].to_vec())
}

fn open() -> Option<Listener> {
    // SAFETY: plain socket calls on a descriptor we own.
    let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_GENERIC) };
    if raw < 0 {
        return None;
    }
    // SAFETY: a fresh descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: an all-zero sockaddr_nl binds to a kernel-chosen port.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: a valid sockaddr_nl.
    if unsafe { libc::bind(raw, (&addr as *const libc::sockaddr_nl).cast(), std::mem::size_of::<libc::sockaddr_nl>() as u32) } != 0 {
        return None;
    }
    // Room for the exits of a busy machine between two drains.
    let size: libc::c_int = 8 << 20;
    // SAFETY: an int option.
    unsafe { libc::setsockopt(raw, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, (&size as *const libc::c_int).cast(), 4) };
    send(&fd, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, &attr(CTRL_ATTR_FAMILY_NAME, b"TASKSTATS\0"))?;
    let family = messages(&reply(&fd)?)
        .into_iter()
        .filter(|(ty, p)| *ty == GENL_ID_CTRL && p.len() >= 4)
        .flat_map(|(_, p)| attributes(&p[4..]))
        .find(|(ty, v)| *ty == CTRL_ATTR_FAMILY_ID && v.len() >= 2)
        .map(|(_, v)| u16::from_ne_bytes([v[0], v[1]]))?;
    // Exits are told to listeners of the CPU they happen on: all of them.
    let cpus = std::fs::read_to_string("/sys/devices/system/cpu/possible").ok()?;
    let mut mask = cpus.trim().as_bytes().to_vec();
    mask.push(0);
    send(&fd, family, TASKSTATS_CMD_GET, &attr(TASKSTATS_CMD_ATTR_REGISTER_CPUMASK, &mask))?;
    // An unprivileged registration is refused with an error message.
    if registration_refused(&fd)? {
        return None;
    }
    Some(Listener { fd, family, watched: HashSet::new(), peaks: HashMap::new(), below: HashMap::new() })
}

/// Whether the kernel answered the registration with an error. Without
/// NLM_F_ACK a success sends nothing, so a short wait decides.
fn registration_refused(fd: &OwnedFd) -> Option<bool> {
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    if unsafe { libc::poll(&mut pfd, 1, 50) } <= 0 {
        return Some(false);
    }
    let mut buf = vec![0u8; 1 << 16];
    // SAFETY: a valid buffer; MSG_PEEK leaves a task record for `drain`.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    if n <= 0 {
        return Some(false);
    }
    let error = messages(&buf[..n as usize]).into_iter().find(|(ty, p)| *ty == libc::NLMSG_ERROR as u16 && p.len() >= 4);
    Some(error.is_some_and(|(_, p)| i32::from_ne_bytes(p[0..4].try_into().expect("4 bytes")) != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_peaks_at_its_biggest_process_children_and_grandchildren_included() {
        // SAFETY: a fresh duplicate of stderr; `record` never uses it.
        let fd = unsafe { OwnedFd::from_raw_fd(libc::dup(2)) };
        let mut l = Listener { fd, family: 0, watched: [100].into(), peaks: HashMap::new(), below: HashMap::new() };
        // A grandchild (300, child of 200) exits first, then 200, then a thread of 100, then 100.
        l.record(Exit { process: 300, parent: 200, peak: 900 });
        l.record(Exit { process: 200, parent: 100, peak: 50 });
        l.record(Exit { process: 100, parent: 1, peak: 10 });
        l.record(Exit { process: 100, parent: 1, peak: 20 });
        // Another process of the machine is not counted.
        l.record(Exit { process: 400, parent: 1, peak: 5000 });
        assert_eq!(l.peaks.get(&100), Some(&900));
    }

    #[test]
    fn a_child_peaks_at_its_own_size_not_at_its_parents() {
        start();
        if listener().is_none() {
            // Not root: nothing to measure with; the fallback is wait4's.
            return;
        }
        // The test binary holds 64 MiB; the child (a shell) needs far less.
        let ballast = vec![1u8; 64 << 20];
        let mut child = std::process::Command::new("/bin/sh").args(["-c", "exit 0"]).spawn().expect("sh runs");
        watch(child.id() as i32);
        child.wait().expect("sh exits");
        let peak = peak_rss_kib(child.id() as i32).expect("the exit was recorded");
        assert!(peak > 0 && peak < 32 << 10, "sh peaked at {peak} KiB beside a parent of {} MiB", ballast.len() >> 20);
    }
}
