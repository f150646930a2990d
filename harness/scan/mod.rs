//! Finding leaks in a live, uninstrumented glibc process from its heap alone:
//! stop it and copy its memory ([`snapshot`]), walk glibc's chunks
//! ([`glibc`]), mark what the roots reach ([`reach`]), and group what nothing
//! reaches by size, content and C++ type ([`group`]). The copy is analysed
//! after the process has been let go.

pub mod bench;
pub mod dump;
pub mod fork;
pub mod glibc;
pub mod group;
pub use crate::maps;
pub mod memory;
pub mod reach;
pub mod snapshot;
pub mod verdict;
pub mod vtables;

use std::time::{Duration, Instant};

use crate::backend::is_runtime_object;
use crate::error::Error;
use crate::report::{Kind, Leak, RegionKind};
use glibc::{Layout, Walk};
use group::LostMapping;
use maps::Mapping;
use reach::{Range, Roots};
use snapshot::Snapshot;

/// Bytes of the red zone below a thread's stack pointer (System V x86_64 ABI):
/// leaf functions keep data there without moving the stack pointer.
const RED_ZONE: u64 = 128;

/// What a scan found, with its costs.
#[derive(Debug)]
pub struct Analysis {
    pub leaks: Vec<Leak>,
    pub walk: Walk,
    /// The marking's class of each of `walk.blocks`, and whether each
    /// candidate region was reached.
    pub classes: Vec<reach::Class>,
    pub regions_reached: Vec<bool>,
    /// Bytes scanned for pointers.
    pub scanned: u64,
    /// In-use blocks and their bytes.
    pub blocks: u64,
    pub block_bytes: u64,
    pub elapsed: Duration,
    /// Where the time went, phase by phase, in order: the walk's, the
    /// roots, the marking's, the grouping and the report.
    pub phases: Vec<Phase>,
    /// CPU time of the analysis's calling thread (the marking's other
    /// threads not included): on a busy machine, the honest measure of a
    /// one-thread analysis's cost.
    pub cpu: Duration,
    /// Threads the marking ran on.
    pub threads: usize,
    /// Why the heap could not be analysed ([`verdict`]); `leaks` is then
    /// empty (a partial list would read as the whole answer) and `notes` say
    /// what could still be seen. A report shows it as `Status::NotAnalysed`.
    pub not_analysed: Option<String>,
    /// What the report should say besides the leaks: the walk's warnings,
    /// threads that were skipped, what a heap not analysed still showed.
    pub notes: Vec<String>,
}

/// What each mapping is, for roots and for mmap leaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A loaded module's file mapping or its .bss; `runtime` for the C/C++ runtime.
    Module { runtime: bool },
    /// A live thread's stack; roots from its SP.
    Stack,
    /// Where malloc's chunks are: [heap] and arena heaps (and their reservations).
    Heap,
    /// The stack of a thread that exited, cached by glibc for reuse: dead
    /// data, except its thread descriptor (at the TCB) which the runtime still uses.
    DeadStack { tcb: u64 },
    /// An anonymous mapping holding a live thread's TLS and TCB (the main
    /// thread's, made by ld.so); the kernel may have merged the program's own
    /// mappings below it into the same line of maps. Above `from`: a root.
    Tls { from: u64 },
    /// Holds mmapped chunks: the rest of it is a root.
    MmappedChunks,
    /// Kernel pages ([vdso], ...) and inaccessible reservations.
    System,
    /// A mapping of the program's own: an mmap leak unless reached.
    Candidate,
}

fn is_module_path(maps: &[Mapping], path: &str) -> bool {
    maps.iter().any(|m| m.executable() && m.file() == Some(path))
}

/// Whether an anonymous mapping holds a thread control block near its top
/// (glibc puts struct pthread there: its `tcb` and `self` words point to itself).
fn find_tcb(snap: &Snapshot, m: &Mapping) -> Option<u64> {
    let lo = m.end.saturating_sub(64 << 10).max(m.start);
    let bytes = snap.memory.bytes(lo, m.end - lo)?;
    bytes.chunks_exact(8).enumerate().find_map(|(i, w)| {
        let a = lo + 8 * i as u64;
        (u64::from_le_bytes(w.try_into().expect("8 bytes")) == a && snap.memory.word(a + 16) == Some(a)).then_some(a)
    })
}

fn roles(snap: &Snapshot, view: &HeapView) -> Vec<Role> {
    let maps = &snap.maps;
    let mut roles = Vec::with_capacity(maps.len());
    for (i, m) in maps.iter().enumerate() {
        let overlaps = |r: &(u64, u64)| m.start < r.1 && r.0 < m.end;
        let role = if let Some(path) = m.file().filter(|p| is_module_path(maps, p)) {
            Role::Module { runtime: is_runtime_object(path) }
        } else if m.pseudo() == Some("[heap]") || view.heaps.iter().any(overlaps) {
            Role::Heap
        } else if m.pseudo() == Some("[stack]") || snap.threads.iter().any(|t| m.contains(t.sp)) {
            Role::Stack
        } else if m.pseudo().is_some() || !m.readable() {
            Role::System
        } else if i > 0 && m.path.is_none() && maps[i - 1].end == m.start && matches!(roles[i - 1], Role::Module { .. }) && m.writable() {
            // The .bss past a module's last file page.
            roles[i - 1]
        } else if view.mmapped.iter().any(overlaps) {
            Role::MmappedChunks
        } else if let Some(tp) = snap.threads.iter().map(|t| t.fs_base).find(|&tp| m.contains(tp)) {
            Role::Tls { from: tls_start(snap, m, tp) }
        } else if let Some(tcb) = (m.anonymous() && !m.shared()).then(|| find_tcb(snap, m)).flatten() {
            Role::DeadStack { tcb }
        } else {
            Role::Candidate
        };
        roles.push(role);
    }
    roles
}

/// Where the TLS part of a mapping holding the thread pointer `tp` begins:
/// the lowest page that the runtime's own data (ld.so's TLS bookkeeping) or
/// the thread's DTV points to, and never above the TCB.
fn tls_start(snap: &Snapshot, m: &Mapping, tp: u64) -> u64 {
    let mut lo = tp;
    if let Some(dtv) = snap.memory.word(tp + 8).filter(|&d| m.contains(d)) {
        lo = lo.min(dtv);
    }
    for rt in snap.maps.iter().filter(|x| x.writable() && x.file().is_some_and(|p| p.contains("ld-linux"))) {
        if let Some(bytes) = snap.memory.bytes(rt.start, rt.len()) {
            for w in bytes.chunks_exact(8) {
                let v = u64::from_le_bytes(w.try_into().expect("8 bytes"));
                if m.contains(v) {
                    lo = lo.min(v);
                }
            }
        }
    }
    lo & !4095
}

/// Where to start scanning a thread's stack at the checkpoint. A thread
/// stopped inside the C runtime (raise(SIGSTOP)) has the runtime's frames
/// below its program frames: their uninitialized slots (a sigset_t of 128
/// bytes in pthread_kill, say) hold stale words of dead program frames.
/// Those frames are skipped: scanning starts at the return address into
/// program code. This is sound for the catalogue's -O0 code only, whose
/// values live in its own frames, not in callee-saved registers that the
/// runtime spills. A thread running program code is scanned from its stack
/// pointer minus the red zone.
fn stack_scan_start(snap: &Snapshot, t: &snapshot::Thread, stack: &Mapping) -> u64 {
    let in_runtime = |addr: u64| {
        snap.maps.iter().any(|m| m.contains(addr) && m.executable() && (m.pseudo() == Some("[vdso]") || m.file().is_some_and(is_runtime_object)))
    };
    let in_program = |addr: u64| snap.maps.iter().any(|m| m.contains(addr) && m.executable() && m.file().is_some_and(|p| !is_runtime_object(p)));
    let red_zone = t.sp.saturating_sub(RED_ZONE).max(stack.start) & !7;
    let rip = t.regs.get(16).copied().unwrap_or(0);
    if !in_runtime(rip) {
        return red_zone;
    }
    let top = stack.end.min(t.sp.saturating_add(64 << 10));
    let Some(bytes) = snap.memory.bytes(t.sp & !7, top - (t.sp & !7)) else { return red_zone };
    bytes
        .chunks_exact(8)
        .position(|w| in_program(u64::from_le_bytes(w.try_into().expect("8 bytes"))))
        .map_or(red_zone, |i| (t.sp & !7) + 8 * i as u64)
}

fn region_kind(m: &Mapping) -> RegionKind {
    match (m.anonymous(), m.shared()) {
        (true, false) => RegionKind::PrivateAnon,
        (true, true) => RegionKind::SharedAnon,
        (false, false) => RegionKind::PrivateFile,
        (false, true) => RegionKind::SharedFile,
    }
}

/// Ranges of `m` not covered by `holes` (sorted).
fn minus(start: u64, end: u64, holes: &[(u64, u64)]) -> Vec<Range> {
    let mut out = Vec::new();
    let mut a = start;
    for &(s, e) in holes {
        if e <= a || s >= end {
            continue;
        }
        if s > a {
            out.push(Range { start: a, end: s });
        }
        a = a.max(e);
    }
    if a < end {
        out.push(Range { start: a, end });
    }
    out
}

/// Where the process was stopped, which decides how its stacks are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopPoint {
    /// At leaklab_checkpoint(): inside raise(SIGSTOP), called from program
    /// code compiled at -O0. The runtime's frames below it are skipped (see
    /// `stack_scan_start`).
    Checkpoint,
    /// Anywhere (`scan --pid`, `--after`): every stack is scanned from its
    /// stack pointer, as optimized code keeps live values in callee-saved
    /// registers that the runtime's frames save on the stack.
    Anywhere,
}

/// What the roots computation must know of the allocator and of the tool
/// that found the blocks: the glibc walk fills it from the heap's shape, the
/// hook from its exact table.
#[derive(Debug, Clone, Default)]
pub struct HeapView {
    /// Where the allocator's blocks live besides `[heap]` (glibc's arena
    /// heaps): not roots.
    pub heaps: Vec<(u64, u64)>,
    /// Blocks that are mappings of their own (glibc's mmapped chunks): not
    /// roots; the rest of the mapping that holds them is one.
    pub mmapped: Vec<(u64, u64)>,
    /// Removed from every root range, sorted: the allocator's metadata, the
    /// tool's own bookkeeping.
    pub excluded: Vec<(u64, u64)>,
    /// The program's own mappings, when known exactly (the hook records each
    /// mmap), sorted and disjoint: these are the candidate mmap leaks, and a
    /// mapping of no known role is the runtime's (ld.so's, libc's). `None`:
    /// every mapping of no known role is a candidate.
    pub regions: Option<Vec<(u64, u64)>>,
    /// More roots of the runtime (the hook's start-up arena, which holds dlsym's data).
    pub runtime: Vec<(u64, u64)>,
}

/// The roots of a marking and the candidate mmap leaks.
#[derive(Debug, Clone, Default)]
pub struct RootSet {
    pub roots: Roots,
    /// Candidate regions (sorted, disjoint) and their mappings, for the report.
    pub candidates: Vec<(u64, u64)>,
    pub candidate_maps: Vec<Mapping>,
}

/// Bytes of glibc's thread descriptor (struct pthread) at the thread
/// pointer: libthread_db's `_thread_db_sizeof_pthread` of the libc leaklab
/// runs with, which is the target's on this machine (2,368 on glibc 2.36).
fn tcb_bytes() -> u64 {
    static SIZE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SIZE.get_or_init(|| {
        // SAFETY: dlsym with a NUL-terminated name; the symbol, when present,
        // is a const unsigned int in libc's read-only data.
        let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"_thread_db_sizeof_pthread".as_ptr()) };
        if p.is_null() { 2368 } else { u64::from(unsafe { *(p as *const u32) }) }
    })
}

/// The roots of a snapshot: data and bss of every module (the C/C++
/// runtime's first), every live thread's registers and stack, static TLS,
/// each live thread's descriptor (the runtime's: it holds the thread's DTV,
/// through which the dynamic TLS blocks are reached), the descriptors of
/// cached dead threads; and the candidate mmap leaks.
#[must_use]
pub fn roots(snap: &Snapshot, view: &HeapView, stop: StopPoint) -> RootSet {
    let maps = &snap.maps;
    let roles = roles(snap, view);
    let mut roots = Roots::default();
    let mut candidates: Vec<(u64, u64)> = Vec::new();
    let mut candidate_maps: Vec<Mapping> = Vec::new();
    let exact = view.regions.as_deref();
    for (m, role) in maps.iter().zip(&roles) {
        match role {
            Role::Module { runtime } if m.writable() => {
                let r = Range { start: m.start, end: m.end };
                if *runtime { roots.runtime.push(r) } else { roots.program.push(r) }
            }
            Role::MmappedChunks => roots.program.extend(minus(m.start, m.end, &view.mmapped)),
            Role::DeadStack { tcb } => roots.runtime.push(Range { start: *tcb, end: m.end }),
            Role::Tls { from } => {
                roots.program.push(Range { start: *from, end: m.end });
                if *from > m.start {
                    match exact {
                        Some(_) => roots.runtime.push(Range { start: m.start, end: *from }),
                        None => {
                            candidates.push((m.start, *from));
                            candidate_maps.push(Mapping { start: m.start, end: *from, ..m.clone() });
                        }
                    }
                }
            }
            Role::Candidate => match exact {
                Some(_) => roots.runtime.push(Range { start: m.start, end: m.end }),
                None => {
                    candidates.push((m.start, m.end));
                    candidate_maps.push(m.clone());
                }
            },
            _ => {}
        }
    }
    if let Some(regions) = exact {
        for &(start, end) in regions {
            let Some(m) = maps.iter().find(|m| m.contains(start)) else { continue };
            candidates.push((start, end));
            candidate_maps.push(Mapping { start, end: end.min(m.end).max(start), ..m.clone() });
        }
    }
    for r in &view.runtime {
        roots.runtime.push(Range { start: r.0, end: r.1 });
    }
    let main_tid = snap.pid;
    for t in &snap.threads {
        roots.registers.extend(&t.regs);
        if let Some(m) = maps.iter().find(|m| m.contains(t.sp)) {
            // Only the thread that stopped itself at the checkpoint (the
            // program's main thread) has the runtime's raise() frames
            // skipped; a helper thread blocked in libc may hold a pointer in
            // a libc frame, so its whole stack from SP counts.
            // A thread inside a system call (rax still holds the -ENOSYS the
            // kernel sets on entry: blocked, or in its exit stop) is in a
            // libc wrapper, which keeps nothing below its stack pointer: the
            // red zone then holds only dead words of earlier calls.
            let in_syscall = t.regs.first() == Some(&(-(libc::ENOSYS as i64) as u64));
            let start = match stop {
                StopPoint::Checkpoint if t.tid == main_tid => stack_scan_start(snap, t, m),
                _ if in_syscall => t.sp.max(m.start) & !7,
                _ => t.sp.saturating_sub(RED_ZONE).max(m.start) & !7,
            };
            roots.program.push(Range { start, end: m.end });
        }
        if let Some(m) = maps.iter().find(|m| m.contains(t.fs_base)) {
            roots.runtime.push(Range { start: t.fs_base, end: (t.fs_base + tcb_bytes()).min(m.end) });
        }
    }
    // Neither the allocator's own data nor the tool's is a root; nor is a
    // candidate region (it is scanned once something reaches it).
    let mut excluded = view.excluded.clone();
    excluded.extend(candidates.iter().copied());
    excluded.sort_unstable();
    for list in [&mut roots.runtime, &mut roots.program] {
        *list = list.iter().flat_map(|r| minus(r.start, r.end, &excluded)).collect();
    }
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by_key(|&i| candidates[i]);
    let candidates: Vec<(u64, u64)> = order.iter().map(|&i| candidates[i]).collect();
    let candidate_maps = order.iter().map(|&i| candidate_maps[i].clone()).collect();
    RootSet { roots, candidates, candidate_maps }
}

/// Knobs of an analysis beyond its snapshot.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnalyseOptions {
    /// Threads; 0: `LEAKLAB_SCAN_THREADS`, else one per CPU
    /// ([`reach::default_threads`]). The analysis does not depend on it.
    pub threads: usize,
}

/// Analyses a snapshot: walks the heap, marks, groups.
#[must_use]
pub fn analyse(snap: &Snapshot, stop: StopPoint) -> Analysis {
    analyse_with(snap, stop, &AnalyseOptions::default())
}

/// [`analyse`] with options.
#[must_use]
pub fn analyse_with(snap: &Snapshot, stop: StopPoint, options: &AnalyseOptions) -> Analysis {
    let started = Instant::now();
    let mut thread_note = None;
    let threads = match options.threads {
        0 => reach::default_threads().unwrap_or_else(|e| {
            thread_note = Some(format!("{e}; the analysis ran on one thread"));
            1
        }),
        n => n,
    };
    let cpu_started = thread_cpu_time();
    let maps = &snap.maps;
    let libc_data: Vec<(u64, u64)> = {
        let mut v = Vec::new();
        for (i, m) in maps.iter().enumerate() {
            let is_libc = m.file().is_some_and(|p| {
                let n = p.rsplit('/').next().unwrap_or(p);
                n.starts_with("libc.so") || n.starts_with("libc-")
            });
            if is_libc && m.writable() {
                v.push((m.start, m.end));
                if let Some(next) = maps.get(i + 1).filter(|n| n.path.is_none() && n.start == m.end && n.writable()) {
                    v.push((next.start, next.end));
                }
            }
        }
        v
    };
    let layout = Layout {
        heap: heap_span(maps),
        libc_data,
        anon: maps
            .iter()
            .filter(|m| m.anonymous() && !m.shared() && m.writable() && m.readable() && !snap.threads.iter().any(|t| m.contains(t.sp)))
            .map(|m| (m.start, m.end))
            .collect(),
        thread_pointers: snap.threads.iter().map(|t| t.fs_base).collect(),
    };
    let walk = glibc::walk_with(&snap.memory, &layout, threads);
    let mut phases = walk.phases.clone();
    let mut lap = Lap::new();
    let mut metadata = walk.metadata.clone();
    metadata.sort_unstable();
    let view = HeapView {
        heaps: walk.arena_heaps.clone(),
        mmapped: walk.mmapped.clone(),
        excluded: metadata,
        regions: None,
        runtime: Vec::new(),
    };
    let RootSet { roots, candidates, candidate_maps } = roots(snap, &view, stop);
    let vt = vtables::Vtables::new(maps);
    phases.push(lap.next("roots, vtables"));
    let vtable_like = |w: u64| vt.vtable_like(w);
    let marking = reach::mark_with(&snap.memory, &walk.blocks, &candidates, &roots, &vtable_like, &reach::MarkOptions { threads, ..Default::default() });
    phases.extend(marking.phases.iter().copied());
    lap.next("marking");
    let mut leaks = group::group_blocks_with(&snap.memory, &walk.blocks, &marking.blocks, &vt, threads);
    let lost: Vec<LostMapping> = candidate_maps
        .iter()
        .zip(&marking.regions_reached)
        .filter(|(_, reached)| !**reached)
        .map(|(m, _)| LostMapping {
            len: m.len(),
            kind: region_kind(m),
            perms: m.perms.clone(),
            // A deleted temp file's name says nothing stable; the kind says it all.
            path: m.file().filter(|p| !p.ends_with("(deleted)")).map(str::to_string),
        })
        .collect();
    leaks.extend(group::group_regions(&lost));
    phases.push(lap.next("group"));
    let block_bytes = walk.blocks.iter().map(|b| b.size).sum();
    let (not_analysed, mut notes) = verdict_and_notes(snap, &walk, &mut leaks);
    notes.extend(thread_note);
    phases.push(lap.next("verdict, notes"));
    let elapsed = started.elapsed();
    Analysis {
        leaks,
        blocks: walk.blocks.len() as u64,
        block_bytes,
        scanned: marking.scanned,
        classes: marking.blocks,
        regions_reached: marking.regions_reached,
        walk,
        elapsed,
        phases,
        cpu: thread_cpu_time().saturating_sub(cpu_started),
        threads,
        not_analysed,
        notes,
    }
}

/// The `[heap]` as one range: an `mprotect` inside it splits it into
/// several maps lines, while malloc's chunks run on across them (the
/// snapshot copies every piece).
fn heap_span(maps: &[Mapping]) -> Option<(u64, u64)> {
    let mut pieces = maps.iter().filter(|m| m.pseudo() == Some("[heap]"));
    let first = pieces.next()?;
    let mut end = first.end;
    for m in pieces {
        // A hole (part of the heap unmapped) ends the walkable range there.
        if m.start != end {
            break;
        }
        end = m.end;
    }
    Some((first.start, end))
}

/// Whether the heap could be analysed, and the report's notes. When it
/// could not, the leaks found are withdrawn into a note: they are only
/// what the part walked showed.
fn verdict_and_notes(snap: &Snapshot, walk: &Walk, leaks: &mut Vec<Leak>) -> (Option<String>, Vec<String>) {
    // A stopped walk is told by the verdict itself.
    let mut notes = walk.warnings.clone();
    if !snap.threads.iter().any(|t| t.tid == snap.pid) {
        notes.push(format!(
            "the main thread (pid {}) has exited (pthread_exit in main); {} other thread{} scanned",
            snap.pid,
            snap.threads.len(),
            if snap.threads.len() == 1 { " was" } else { "s were" }
        ));
    }
    let Some(reason) = verdict::not_analysed(snap, walk) else { return (None, notes) };
    if !leaks.is_empty() || !walk.blocks.is_empty() {
        let bytes: u64 = leaks.iter().filter(|l| l.kind != Kind::Reachable).map(|l| l.bytes).sum();
        let blocks: u64 = leaks.iter().filter(|l| l.kind != Kind::Reachable).map(|l| l.blocks).sum();
        notes.push(format!(
            "what could still be seen: {} blocks in use ({} bytes); {blocks} blocks or mappings ({bytes} bytes) unreachable from the roots, a list left out as it cannot be complete",
            walk.blocks.len(),
            walk.blocks.iter().map(|b| b.size).sum::<u64>()
        ));
        leaks.clear();
    }
    (Some(reason), notes)
}

/// Snapshot and analysis of a running process; the notes say how the
/// snapshot was taken.
pub fn scan_pid(pid: i32, stop: StopPoint, options: &snapshot::Options) -> Result<(Snapshot, Analysis), Error> {
    // A bad LEAKLAB_SCAN_THREADS is told before the process is stopped.
    reach::default_threads()?;
    let mut retaken = Vec::new();
    loop {
        let snap = snapshot::take(pid, options)?;
        let mut analysis = analyse(&snap, stop);
        // A thread stopped inside malloc may have left its arena's chunks
        // half updated (a split whose second header is not written yet): a
        // moment later the same heap walks cleanly, so the image is taken
        // again rather than the heap called unreadable.
        if caught_inside_malloc(&analysis) && retaken.len() < SNAPSHOT_RETAKES {
            retaken.push(analysis.not_analysed.take().unwrap_or_default());
            std::thread::sleep(Duration::from_millis(1 << retaken.len()));
            continue;
        }
        analysis.notes.push(snap.method.note(snap.pause));
        analysis.notes.extend(snap.notes.iter().cloned());
        if !retaken.is_empty() {
            analysis.notes.push(format!(
                "snapshot taken {} times: a thread was inside malloc (its arena locked) and the heap's walk stopped ({})",
                retaken.len() + 1,
                retaken.join("; ")
            ));
        }
        return Ok((snap, analysis));
    }
}

/// How many more images a live scan takes when malloc was caught mid-update.
const SNAPSHOT_RETAKES: usize = 4;

/// Whether the heap's walk stopped in a heap while some arena was locked.
fn caught_inside_malloc(analysis: &Analysis) -> bool {
    analysis.not_analysed.is_some() && !analysis.walk.stopped.is_empty() && !analysis.walk.locked_arenas.is_empty()
}

/// The command name of a process, for reports (`/proc/PID/comm`).
#[must_use]
pub fn process_name(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).map_or_else(|_| format!("pid {pid}"), |s| s.trim().to_string())
}

/// A phase of the analysis: its name, wall time, and the CPU time of the
/// thread that ran it (on one thread, its whole cost even on a busy machine).
pub type Phase = (&'static str, Duration, Duration);

/// Times consecutive phases: each `next` returns the time since the last.
pub(crate) struct Lap(Instant, Duration);

impl Lap {
    pub(crate) fn new() -> Lap {
        Lap(Instant::now(), thread_cpu_time())
    }

    pub(crate) fn next(&mut self, name: &'static str) -> Phase {
        let (now, cpu) = (Instant::now(), thread_cpu_time());
        let phase = (name, now - self.0, cpu.saturating_sub(self.1));
        (self.0, self.1) = (now, cpu);
        phase
    }
}

/// CPU time consumed by the calling thread.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
