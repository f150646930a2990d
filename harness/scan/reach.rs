//! Conservative reachability over a copied image, classified as memcheck does:
//! reachable (a chain of start pointers from the roots), possible (reached,
//! but only through some pointer into a block's middle), and, among the
//! blocks nothing reaches, indirect (reached from another lost block) or
//! definite (the head of a lost structure).
//!
//! Marking runs twice. First from the C/C++ runtime's own data (libc's,
//! libstdc++'s, ld.so's writable segments): what only the runtime holds (the
//! stdio buffers, libstdc++'s emergency pool, locale data) is not the
//! program's and is never reported, as memcheck frees it at exit before its
//! leak check. Then from the program's roots: registers, live stacks, the
//! executable's data, TLS; what this second pass reaches is "still reachable".
//!
//! Candidate regions (mappings the program made) are marked like blocks: one
//! that nothing reaches is an mmap leak, and only a reached one is scanned.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::{Condvar, Mutex};

use super::glibc::Block;
use super::memory::{Memory, Segment};

/// How a block ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Reached from the runtime's roots: not the program's business.
    Runtime,
    Reachable,
    Possible,
    Indirect,
    Definite,
}

/// A range of roots.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

/// What to mark from.
#[derive(Debug, Clone, Default)]
pub struct Roots {
    /// The runtime's data: marked first.
    pub runtime: Vec<Range>,
    /// The program's memory roots.
    pub program: Vec<Range>,
    /// Register values (all threads).
    pub registers: Vec<u64>,
}

/// Knobs of a marking beyond its roots.
#[derive(Debug, Clone, Default)]
pub struct MarkOptions {
    /// Addresses (sorted) that the runtime's own pointers may hold without
    /// holding a block: the allocator's chunk headers that lie inside the
    /// block before them (glibc's usable size overlaps the next chunk's
    /// first word, and main_arena's `top` or a bin points there). Ignored
    /// while marking from the runtime's roots. Empty for the glibc walk,
    /// whose blocks end before the next header.
    pub runtime_ignored: Vec<u64>,
    /// Threads of the marking; 0: [`default_threads`]. The result does not
    /// depend on it.
    pub threads: usize,
}

/// The outcome.
#[derive(Debug, Clone)]
pub struct Marking {
    pub blocks: Vec<Class>,
    /// For each candidate region: whether something reachable points into it.
    pub regions_reached: Vec<bool>,
    /// Bytes of memory scanned for pointers (roots and marked blocks).
    pub scanned: u64,
    /// Where the marking's time went, phase by phase (for `bench --scan`).
    pub phases: Vec<crate::scan::Phase>,
}

const PAGE_SHIFT: u32 = 12;
/// A new span of the page index starts where blocks are this far apart.
const SPAN_GAP: u64 = 64 << 20;

struct Span {
    start: u64,
    end: u64,
    /// For each page of the span: the index of the first block ending after the page's start.
    page_first: Vec<u32>,
}

/// Finds the block (or region) holding an address: a bounds filter, the span,
/// then the page's first candidate and a short binary search.
struct Index<'a> {
    starts: Vec<u64>,
    ends: Vec<u64>,
    spans: Vec<Span>,
    lo: u64,
    hi: u64,
    _blocks: std::marker::PhantomData<&'a ()>,
}

impl<'a> Index<'a> {
    fn new(ranges: &[(u64, u64)]) -> Index<'a> {
        Index::from_bounds(ranges.iter().map(|r| r.0).collect(), ranges.iter().map(|r| r.1).collect())
    }

    fn from_bounds(starts: Vec<u64>, ends: Vec<u64>) -> Index<'a> {
        let mut spans: Vec<Span> = Vec::new();
        let mut i = 0;
        while i < starts.len() {
            let mut j = i + 1;
            let mut end = ends[i];
            while j < starts.len() && starts[j] <= end.saturating_add(SPAN_GAP) {
                end = end.max(ends[j]);
                j += 1;
            }
            let start = starts[i] & !((1 << PAGE_SHIFT) - 1);
            let pages = ((end - start) >> PAGE_SHIFT) as usize + 1;
            let mut page_first = Vec::with_capacity(pages);
            let mut k = i;
            for p in 0..pages {
                let page_start = start + ((p as u64) << PAGE_SHIFT);
                while k < j && ends[k] <= page_start {
                    k += 1;
                }
                page_first.push(k as u32);
            }
            spans.push(Span { start, end, page_first });
            i = j;
        }
        let lo = starts.first().copied().unwrap_or(u64::MAX);
        let hi = spans.iter().map(|s| s.end).max().unwrap_or(0);
        Index { starts, ends, spans, lo, hi, _blocks: std::marker::PhantomData }
    }

    #[inline]
    fn find(&self, addr: u64) -> Option<usize> {
        if addr < self.lo || addr >= self.hi {
            return None;
        }
        let si = self.spans.partition_point(|s| s.start <= addr).checked_sub(1)?;
        let span = &self.spans[si];
        if addr >= span.end {
            return None;
        }
        let page = ((addr - span.start) >> PAGE_SHIFT) as usize;
        let first = span.page_first[page] as usize;
        let last = span.page_first.get(page + 1).map_or(self.starts.len(), |&n| (n as usize + 1).min(self.starts.len()));
        let k = first + self.starts[first..last.max(first)].partition_point(|&s| s <= addr);
        let k = k.checked_sub(1)?;
        (k >= first && addr < self.ends[k]).then_some(k)
    }
}

/// The copied segments as a view that threads can share: `Memory` caches its
/// last segment in a `Cell`, so it cannot cross threads itself.
#[derive(Clone, Copy)]
pub(crate) struct Image<'a> {
    segs: &'a [Segment],
}

impl<'a> Image<'a> {
    pub(crate) fn new(mem: &'a Memory) -> Image<'a> {
        Image { segs: mem.segments() }
    }

    /// The index of the segment holding `addr`, or of the first one after it.
    #[inline]
    fn segment_at_or_after(&self, addr: u64) -> usize {
        let i = self.segs.partition_point(|s| s.start <= addr);
        if i > 0 && addr < self.segs[i - 1].end() { i - 1 } else { i }
    }

    #[inline]
    pub(crate) fn word(&self, addr: u64) -> Option<u64> {
        let s = self.segs.get(self.segs.partition_point(|s| s.start <= addr).checked_sub(1)?)?;
        let off = usize::try_from(addr - s.start).ok()?;
        let b = s.data.get(off..off.checked_add(8)?)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    /// Calls `f` with each copied piece of `[start, end)`, 8-aligned, as words.
    #[inline]
    fn pieces(&self, start: u64, end: u64, mut f: impl FnMut(&[u8])) {
        let mut a = (start + 7) & !7;
        let mut i = self.segment_at_or_after(a);
        while a < end {
            let Some(seg) = self.segs.get(i) else { return };
            if seg.start >= end {
                return;
            }
            a = a.max((seg.start + 7) & !7);
            let stop = end.min(seg.end());
            if a < stop {
                let off = (a - seg.start) as usize;
                let len = ((stop - a) as usize) & !7;
                f(&seg.data[off..off + len]);
            }
            a = stop;
            i += 1;
        }
    }
}

/// Scans aligned words of `bytes` and calls `hit` with each value inside `[lo, lo + width)`.
/// Most words are not addresses of anything: one wrapping compare per word
/// rejects them, four words at a time (the hot loop of the whole scan).
#[inline]
fn candidates(bytes: &[u8], lo: u64, width: u64, mut hit: impl FnMut(u64)) {
    let word = |w: &[u8]| u64::from_le_bytes(w.try_into().expect("8 bytes"));
    let mut quads = bytes.chunks_exact(32);
    for q in &mut quads {
        let (a, b, c, d) = (word(&q[0..8]), word(&q[8..16]), word(&q[16..24]), word(&q[24..32]));
        let any = (a.wrapping_sub(lo) < width) | (b.wrapping_sub(lo) < width) | (c.wrapping_sub(lo) < width) | (d.wrapping_sub(lo) < width);
        if any {
            for v in [a, b, c, d] {
                if v.wrapping_sub(lo) < width {
                    hit(v);
                }
            }
        }
    }
    for w in quads.remainder().chunks_exact(8) {
        let v = word(w);
        if v.wrapping_sub(lo) < width {
            hit(v);
        }
    }
}

const UNREACHED: u8 = 0;
const POSSIBLE: u8 = 1;
const REACHABLE: u8 = 2;

/// A range is scanned this much at a time, the rest left on the worklist
/// where an idle thread can take it.
const PIECE: u64 = 256 << 10;

/// Work of the marking.
#[derive(Debug, Clone, Copy)]
enum Item {
    /// A block to scan, with the state it had when pushed: if it has been
    /// upgraded since, a newer item scans it, and this one is dropped.
    Block(u32, u8),
    /// Memory to scan: a root range, a reached region, or part of a big block.
    Range { start: u64, end: u64, reachable: bool },
}

/// What the threads share: read-only inputs and atomic marks. The marking
/// only ever raises a mark (unreached < possible < reachable) and scans a
/// block again when its mark rises, so the result is the least fixpoint,
/// whatever the order in which threads visit blocks.
struct Shared<'a> {
    image: Image<'a>,
    blocks: &'a [Block],
    index: Index<'a>,
    regions: &'a [(u64, u64)],
    region_index: Index<'a>,
    vtable_like: &'a (dyn Fn(u64) -> bool + Sync),
    state: Vec<AtomicU8>,
    regions_reached: Vec<AtomicBool>,
    /// While marking from the runtime's roots: the addresses to ignore.
    ignored: &'a [u64],
    lo: u64,
    width: u64,
}

impl Shared<'_> {
    /// valgrind's default heuristics: an interior pointer that a C++
    /// runtime makes on purpose counts as a start pointer.
    fn heuristic_start(&self, b: &Block, ptr: u64) -> bool {
        // new[] of a type with a destructor: the pointer is past the element count.
        if ptr == b.addr + 8 {
            if let Some(n) = self.image.word(b.addr) {
                if n != 0 && n <= b.size - 8 {
                    return true;
                }
            }
        }
        // Multiple inheritance: a pointer to a second base, at a vtable
        // pointer, in an object that starts with a vtable pointer.
        if ptr.is_multiple_of(8) {
            if let (Some(a), Some(c)) = (self.image.word(ptr), self.image.word(b.addr)) {
                if (self.vtable_like)(a) && (self.vtable_like)(c) {
                    return true;
                }
            }
        }
        false
    }

    #[inline]
    fn visit(&self, value: u64, from_reachable: bool, out: &mut Vec<Item>) {
        if !self.ignored.is_empty() && self.ignored.binary_search(&value).is_ok() {
            return;
        }
        if let Some(k) = self.index.find(value) {
            // The index's bounds, not the block list: 16 bytes a block, not 40, in the lines the marking reads.
            let start = value == self.index.starts[k] || self.heuristic_start(&self.blocks[k], value);
            let new = if start && from_reachable { REACHABLE } else { POSSIBLE };
            // A plain load first: most pointers lead to blocks already marked.
            if new > self.state[k].load(Relaxed) && self.state[k].fetch_max(new, Relaxed) < new {
                out.push(Item::Block(k as u32, new));
            }
        } else if let Some(r) = self.region_index.find(value) {
            if !self.regions_reached[r].load(Relaxed) && !self.regions_reached[r].swap(true, Relaxed) {
                let (start, end) = self.regions[r];
                out.push(Item::Range { start, end, reachable: true });
            }
        }
    }

    /// Scans `[start, end)` for pointers; returns the bytes scanned.
    fn scan(&self, start: u64, end: u64, reachable: bool, out: &mut Vec<Item>) -> u64 {
        let mut n = 0;
        self.image.pieces(start, end, |bytes| {
            n += bytes.len() as u64;
            candidates(bytes, self.lo, self.width, |v| self.visit(v, reachable, out));
        });
        n
    }

    /// One item; what it reaches goes onto `out`. Returns the bytes scanned.
    fn process(&self, item: Item, out: &mut Vec<Item>) -> u64 {
        let (start, end, reachable) = match item {
            Item::Block(k, pushed) => {
                let now = self.state[k as usize].load(Relaxed);
                if now > pushed {
                    return 0;
                }
                (self.index.starts[k as usize], self.index.ends[k as usize], now == REACHABLE)
            }
            Item::Range { start, end, reachable } => (start, end, reachable),
        };
        let end = if end - start > PIECE {
            out.push(Item::Range { start: start + PIECE, end, reachable });
            start + PIECE
        } else {
            end
        };
        let before = out.len();
        let n = self.scan(start, end, reachable, out);
        // A root range may push many blocks at once (an array of pointers):
        // taking them in ascending address order reads the heap forwards,
        // which the hardware prefetcher follows.
        if out.len() - before > 64 {
            out[before..].sort_unstable_by_key(|i| std::cmp::Reverse(item_address(&self.index.starts, i)));
        }
        n
    }
}

fn item_address(starts: &[u64], i: &Item) -> u64 {
    match *i {
        Item::Block(k, _) => starts[k as usize],
        Item::Range { start, .. } => start,
    }
}

/// The shared worklist of a parallel marking: each thread works from its own
/// stack and hands half of it over when another thread is idle.
struct Pool {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Threads waiting for work: a worker with spare items checks it.
    hungry: AtomicUsize,
    threads: usize,
}

struct Queue {
    items: Vec<Item>,
    idle: usize,
    done: bool,
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A worker that panicked has already failed the marking; the queue itself stays consistent.
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes work for an idle worker; false when all the work is done.
    fn take(&self, local: &mut Vec<Item>) -> bool {
        let mut q = self.lock();
        loop {
            if q.done {
                return false;
            }
            if !q.items.is_empty() {
                let n = q.items.len().div_ceil(self.threads);
                let at = q.items.len() - n;
                local.extend(q.items.drain(at..));
                return true;
            }
            if q.idle + 1 == self.threads {
                q.done = true;
                self.wake.notify_all();
                return false;
            }
            q.idle += 1;
            self.hungry.fetch_add(1, Relaxed);
            q = self.wake.wait(q).unwrap_or_else(std::sync::PoisonError::into_inner);
            q.idle -= 1;
            self.hungry.fetch_sub(1, Relaxed);
        }
    }

    /// Gives the older half of `local` (the items deepest in its stack) to idle workers.
    fn give(&self, local: &mut Vec<Item>) {
        let half = local.len() / 2;
        let mut q = self.lock();
        q.items.extend(local.drain(..half));
        self.wake.notify_all();
    }

    fn work(&self, shared: &Shared, mut local: Vec<Item>) -> u64 {
        let mut scanned = 0;
        loop {
            while let Some(item) = local.pop() {
                scanned += shared.process(item, &mut local);
                if local.len() >= 2 && self.hungry.load(Relaxed) > 0 {
                    self.give(&mut local);
                }
            }
            if !self.take(&mut local) {
                return scanned;
            }
        }
    }
}

/// Marks from `seeds` until nothing new is reached, on `threads` threads;
/// returns the bytes scanned.
fn run(shared: &Shared, seeds: Vec<Item>, threads: usize) -> u64 {
    if threads <= 1 {
        let pool = Pool { queue: Mutex::new(Queue { items: Vec::new(), idle: 0, done: false }), wake: Condvar::new(), hungry: AtomicUsize::new(0), threads: 1 };
        return pool.work(shared, seeds);
    }
    let pool = Pool { queue: Mutex::new(Queue { items: seeds, idle: 0, done: false }), wake: Condvar::new(), hungry: AtomicUsize::new(0), threads };
    std::thread::scope(|s| {
        let workers: Vec<_> = (1..threads).map(|_| s.spawn(|| pool.work(shared, Vec::new()))).collect();
        let mine = pool.work(shared, Vec::new());
        mine + workers.into_iter().map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).sum::<u64>()
    })
}

/// Threads for the analysis: `LEAKLAB_SCAN_THREADS` when set, else one per CPU.
///
/// # Errors
/// `Error::Usage` when `LEAKLAB_SCAN_THREADS` is not a count in 1..=256.
pub fn default_threads() -> Result<usize, crate::error::Error> {
    match std::env::var("LEAKLAB_SCAN_THREADS") {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=256).contains(&n) => Ok(n),
            _ => Err(crate::error::Error::Usage(format!("LEAKLAB_SCAN_THREADS={v:?} is not a thread count (1..=256)"))),
        },
        Err(_) => Ok(std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)),
    }
}

/// Marks `blocks` (sorted, disjoint) from `roots`; `regions` (sorted,
/// disjoint, not overlapping blocks) are the candidate mmap leaks.
#[must_use]
pub fn mark(mem: &Memory, blocks: &[Block], regions: &[(u64, u64)], roots: &Roots, vtable_like: &(dyn Fn(u64) -> bool + Sync)) -> Marking {
    mark_with(mem, blocks, regions, roots, vtable_like, &MarkOptions::default())
}

/// [`mark`] with options.
#[must_use]
pub fn mark_with(
    mem: &Memory,
    blocks: &[Block],
    regions: &[(u64, u64)],
    roots: &Roots,
    vtable_like: &(dyn Fn(u64) -> bool + Sync),
    options: &MarkOptions,
) -> Marking {
    let threads = match options.threads {
        0 => default_threads().unwrap_or(1),
        n => n,
    };
    let mut lap = crate::scan::Lap::new();
    let mut phases = Vec::new();
    let lo = blocks.first().map_or(u64::MAX, |b| b.addr).min(regions.first().map_or(u64::MAX, |r| r.0));
    let hi = blocks.last().map_or(0, Block::end).max(regions.last().map_or(0, |r| r.1));
    let mut shared = Shared {
        image: Image::new(mem),
        blocks,
        index: {
            let (starts, ends) = blocks.iter().map(|b| (b.addr, b.end())).unzip();
            Index::from_bounds(starts, ends)
        },
        regions,
        region_index: Index::new(regions),
        vtable_like,
        state: (0..blocks.len()).map(|_| AtomicU8::new(UNREACHED)).collect(),
        regions_reached: (0..regions.len()).map(|_| AtomicBool::new(false)).collect(),
        ignored: &options.runtime_ignored,
        lo,
        width: hi.saturating_sub(lo),
    };
    phases.push(lap.next("mark: index"));
    let ranges = |rs: &[Range]| -> Vec<Item> { rs.iter().rev().map(|r| Item::Range { start: r.start, end: r.end, reachable: true }).collect() };
    // First what the runtime's data reaches; then, with a fixpoint between
    // them, the program's roots.
    let mut scanned = run(&shared, ranges(&roots.runtime), threads);
    phases.push(lap.next("mark: from the runtime"));
    let runtime: Vec<bool> = shared.state.iter().map(|s| s.load(Relaxed) != UNREACHED).collect();
    shared.ignored = &[];
    let mut seeds = ranges(&roots.program);
    for &v in &roots.registers {
        if v.wrapping_sub(shared.lo) < shared.width {
            shared.visit(v, true, &mut seeds);
        }
    }
    scanned += run(&shared, seeds, threads);
    phases.push(lap.next("mark: from the program"));

    let mut class: Vec<Class> = (0..blocks.len())
        .map(|k| match (shared.state[k].load(Relaxed), runtime[k]) {
            (_, true) => Class::Runtime,
            (REACHABLE, _) => Class::Reachable,
            (POSSIBLE, _) => Class::Possible,
            _ => Class::Definite,
        })
        .collect();
    phases.push(lap.next("mark: classes"));
    scanned += cliques(&shared, &mut class, threads);
    phases.push(lap.next("mark: indirect"));
    Marking { blocks: class, regions_reached: shared.regions_reached.iter().map(|r| r.load(Relaxed)).collect(), scanned, phases }
}

/// Lost blocks, in address order as memcheck does: each one not yet
/// claimed heads a clique, and every lost block it reaches (start or
/// interior pointer) is indirect, including earlier heads. The lost blocks'
/// pointers to lost blocks are found in parallel; the walk over them, whose
/// outcome depends on the order of heads, runs on one thread. Returns the
/// bytes scanned.
fn cliques(shared: &Shared, class: &mut [Class], threads: usize) -> u64 {
    let lost: Vec<u32> = (0..class.len()).filter(|&k| class[k] == Class::Definite).map(|k| k as u32).collect();
    if lost.is_empty() {
        return 0;
    }
    let is_lost: &[Class] = class;
    // Edges of a run of lost blocks: for each, the lost blocks it points to,
    // in word order (offsets into one list).
    let edges_of = |part: &[u32]| -> (Vec<u32>, Vec<u32>, u64) {
        let mut offsets = Vec::with_capacity(part.len() + 1);
        let mut targets = Vec::new();
        let mut scanned = 0;
        offsets.push(0);
        for &k in part {
            let b = &shared.blocks[k as usize];
            shared.image.pieces(b.addr, b.addr + (b.size & !7), |bytes| {
                scanned += bytes.len() as u64;
                candidates(bytes, shared.lo, shared.width, |v| {
                    if let Some(j) = shared.index.find(v) {
                        if is_lost[j] == Class::Definite {
                            targets.push(j as u32);
                        }
                    }
                });
            });
            offsets.push(targets.len() as u32);
        }
        (offsets, targets, scanned)
    };
    let threads = if lost.len() < 1024 { 1 } else { threads.max(1) };
    let per = lost.len().div_ceil(threads);
    let parts: Vec<(Vec<u32>, Vec<u32>, u64)> = if threads == 1 {
        vec![edges_of(&lost)]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = lost.chunks(per).map(|part| s.spawn(move || edges_of(part))).collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
        })
    };
    // Position of each lost block in `lost`, to find its edges.
    let mut slot = vec![u32::MAX; class.len()];
    for (i, &k) in lost.iter().enumerate() {
        slot[k as usize] = i as u32;
    }
    let edges = |k: usize| -> &[u32] {
        let i = slot[k] as usize;
        let (offsets, targets, _) = &parts[i / per];
        let within = i % per;
        &targets[offsets[within] as usize..offsets[within + 1] as usize]
    };
    let mut visited = vec![false; class.len()];
    let mut work: Vec<usize> = Vec::new();
    for &head in &lost {
        let head = head as usize;
        if class[head] != Class::Definite || visited[head] {
            continue;
        }
        visited[head] = true;
        work.push(head);
        while let Some(k) = work.pop() {
            for &j in edges(k) {
                let j = j as usize;
                if j != head {
                    class[j] = Class::Indirect;
                    if !visited[j] {
                        visited[j] = true;
                        work.push(j);
                    }
                }
            }
        }
    }
    parts.iter().map(|p| p.2).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::memory::Segment;

    const HEAP: u64 = 0x10_0000;
    const DATA: u64 = 0x20_0000;
    const RT: u64 = 0x30_0000;
    const MAP: u64 = 0x40_0000;

    fn block(i: u64) -> Block {
        Block { chunk: HEAP + i * 64, addr: HEAP + i * 64 + 16, size: 40, mmapped: false, first: 0 }
    }

    #[test]
    fn classifies_as_memcheck_does() {
        // Blocks 0..9 of 40 bytes; words set below.
        let mut heap = vec![0u8; 64 * 10];
        let mut data = vec![0u8; 64];
        let mut rt = vec![0u8; 64];
        let put = |buf: &mut Vec<u8>, base: u64, addr: u64, v: u64| {
            let o = (addr - base) as usize;
            buf[o..o + 8].copy_from_slice(&v.to_le_bytes());
        };
        let b: Vec<Block> = (0..10).map(block).collect();
        put(&mut data, DATA, DATA, b[0].addr); // 0 reachable
        put(&mut heap, HEAP, b[0].addr, b[1].addr + 8); // 1 possible (interior)
        put(&mut heap, HEAP, b[1].addr, b[2].addr); // 2 possible (start, from a possible block)
        put(&mut heap, HEAP, b[3].addr, b[4].addr); // 3 definite, 4 indirect
        put(&mut heap, HEAP, b[6].addr, b[5].addr); // 5 <-> 6 cycle: 5 definite (lower), 6 indirect
        put(&mut heap, HEAP, b[5].addr, b[6].addr);
        put(&mut rt, RT, RT, b[7].addr); // 7 runtime's
        put(&mut heap, HEAP, b[7].addr, b[8].addr); // 8 reached from the runtime's block: runtime's too
        put(&mut data, DATA, DATA + 8, MAP + 100); // the first region is reached, the second not
        put(&mut heap, HEAP, b[9].addr, MAP + 0x1000); // a lost block's pointer does not reach a region
        let mem = Memory::new(vec![
            Segment { start: HEAP, data: heap },
            Segment { start: DATA, data: data },
            Segment { start: RT, data: rt },
        ]);
        let roots = Roots { runtime: vec![Range { start: RT, end: RT + 64 }], program: vec![Range { start: DATA, end: DATA + 64 }], registers: vec![] };
        let regions = [(MAP, MAP + 0x1000), (MAP + 0x1000, MAP + 0x2000)];
        let m = mark(&mem, &b, &regions, &roots, &|_| false);
        use Class::*;
        assert_eq!(m.blocks, vec![Reachable, Possible, Possible, Definite, Indirect, Definite, Indirect, Runtime, Runtime, Definite]);
        assert_eq!(m.regions_reached, vec![true, false]);
    }

    #[test]
    fn index_finds_blocks_across_pages_and_spans() {
        let ranges = [(0x1000, 0x1010), (0x1ff8, 0x2100), (0x9000_0000, 0x9000_0040)];
        let idx = Index::new(&ranges);
        assert_eq!(idx.find(0x1000), Some(0));
        assert_eq!(idx.find(0x100f), Some(0));
        assert_eq!(idx.find(0x1010), None);
        assert_eq!(idx.find(0x2000), Some(1));
        assert_eq!(idx.find(0x20ff), Some(1));
        assert_eq!(idx.find(0x2100), None);
        assert_eq!(idx.find(0x9000_0020), Some(2));
        assert_eq!(idx.find(0x5000_0000), None);
        assert_eq!(idx.find(0), None);
    }
}
