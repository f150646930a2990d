//! Walking glibc 2.36's malloc heap (x86_64) in a copied image, without
//! debug symbols: the main arena is found by its shape in libc's writable
//! segment, the other arenas through its `next` list, their heaps through
//! `heap_info` headers on HEAP_MAX_SIZE alignment, and mmapped chunks by
//! their IS_MMAPPED header at page starts of anonymous mappings.
//!
//! Free chunks are told apart from used ones by the bins (unsorted, small,
//! large: doubly linked from the arena), the fastbins and the tcache (both
//! singly linked and safe-linked: a stored link is `(slot >> 12) ^ target`),
//! and the top chunk. The image may be corrupt or hostile: every read is
//! bounds-checked (`Memory` returns None), every list walk is bounded and
//! cycle-checked, and a bad link ends that walk with a warning.

use std::collections::HashSet;

use super::memory::{Memory, Segment};

// struct malloc_state, glibc 2.36, x86_64 (malloc/malloc.c).
const AR_FASTBINS: u64 = 16; // mfastbinptr fastbinsY[10]
const NFASTBINS: u64 = 10;
const AR_TOP: u64 = 96;
const AR_BINS: u64 = 112; // mchunkptr bins[254]
const NBINS: u64 = 128;
const AR_NEXT: u64 = 2160;
const AR_SYSTEM_MEM: u64 = 2184;
/// sizeof(struct malloc_state).
pub const ARENA_SIZE: u64 = 2200;
/// sizeof(heap_info): ar_ptr, prev, size, mprotect_size, pagesize, pad.
const HEAP_INFO_SIZE: u64 = 48;
/// HEAP_MAX_SIZE = 2 * DEFAULT_MMAP_THRESHOLD_MAX on 64-bit.
pub const HEAP_MAX: u64 = 64 << 20;
const MINSIZE: u64 = 32;
const PREV_INUSE: u64 = 1;
const IS_MMAPPED: u64 = 2;
const SIZE_BITS: u64 = 7;
/// sizeof(tcache_perthread_struct) = 64 u16 counts + 64 pointers, as a chunk.
const TCACHE_CHUNK: u64 = 0x290;
const TCACHE_BINS: u64 = 64;
/// Bound on any single list walk.
const MAX_LIST: usize = 1 << 24;
const MAX_ARENAS: usize = 1024;
const MAX_HEAPS_PER_ARENA: usize = 4096;

/// Where to look, from /proc/PID/maps (or a test image).
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// The `[heap]` mapping (the main arena's sbrk heap).
    pub heap: Option<(u64, u64)>,
    /// libc's writable ranges (its .data and .bss), where main_arena lives.
    pub libc_data: Vec<(u64, u64)>,
    /// Anonymous writable mappings that may hold mmapped chunks.
    pub anon: Vec<(u64, u64)>,
    /// Each thread's FS base: the tcache pointer is in the static TLS below it.
    pub thread_pointers: Vec<u64>,
}

/// An allocated block: a chunk in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// The chunk header's address.
    pub chunk: u64,
    /// The address malloc returned.
    pub addr: u64,
    /// Usable bytes (malloc_usable_size): the chunk minus its header.
    pub size: u64,
    pub mmapped: bool,
    /// The block's first word, read while the walk had the chunk in cache:
    /// a vtable pointer or the start of a string, for grouping.
    pub first: u64,
}

impl Block {
    #[must_use]
    pub fn end(&self) -> u64 {
        self.addr + self.size
    }
}

/// The result of the walk.
#[derive(Debug, Clone, Default)]
pub struct Walk {
    pub main_arena: Option<u64>,
    pub arenas: Vec<u64>,
    /// Blocks in use, sorted by address, not overlapping.
    pub blocks: Vec<Block>,
    pub free_chunks: u64,
    pub free_bytes: u64,
    /// The allocator's own memory: arena structs in heaps, heap_info headers,
    /// tcache_perthread_structs. Neither blocks nor roots.
    pub metadata: Vec<(u64, u64)>,
    /// Every non-main arena heap's reservation [h, h + HEAP_MAX).
    pub arena_heaps: Vec<(u64, u64)>,
    /// Ranges covered by mmapped chunks.
    pub mmapped: Vec<(u64, u64)>,
    /// The tcache key (glibc's random `tcache_key`), when a free tcache entry showed it.
    pub tcache_key: Option<u64>,
    /// What looked wrong; the walk went on around it.
    pub warnings: Vec<String>,
    /// Heaps whose chunk walk ended before the heap's end (a corrupt or
    /// missing chunk header), and why: blocks past that point were not seen.
    pub stopped: Vec<String>,
    /// Arenas whose mutex was held when the image was taken: a thread was
    /// inside malloc or free, and that arena's chunks may be half updated.
    pub locked_arenas: Vec<u64>,
    /// Where the walk's time went, phase by phase (for `bench --scan`).
    pub phases: Vec<crate::scan::Phase>,
}

/// A chunk as the linear walk saw it.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    at: u64,
    size: u64,
    /// The next chunk's PREV_INUSE bit (fastbin and tcache chunks keep it set).
    inuse_bit: bool,
    /// The first chunk of its heap (where a thread's tcache struct is made).
    first: bool,
    /// The first word of its user part.
    word0: u64,
}

/// Finds main_arena: a malloc_state whose `top` is in [heap], whose `next`
/// list comes back to it, and whose unsorted bin is empty or points into a heap.
#[must_use]
pub fn find_main_arena(mem: &Memory, layout: &Layout) -> Option<u64> {
    let (hs, he) = layout.heap?;
    for &(start, end) in &layout.libc_data {
        let mut x = (start + 7) & !7;
        while x + ARENA_SIZE <= end {
            if looks_like_main_arena(mem, x, hs, he) {
                return Some(x);
            }
            x += 8;
        }
    }
    None
}

fn looks_like_main_arena(mem: &Memory, x: u64, hs: u64, he: u64) -> bool {
    let Some(top) = mem.word(x + AR_TOP) else { return false };
    if top < hs || top >= he || top % 16 != 0 {
        return false;
    }
    // mutex (0, 1 or 2) and flags are small.
    if mem.word(x).is_none_or(|w| (w & 0xffff_ffff) > 2) {
        return false;
    }
    let unsorted = x + AR_BINS - 16;
    let fd = mem.word(x + AR_BINS).unwrap_or(0);
    let bk = mem.word(x + AR_BINS + 8).unwrap_or(0);
    let bin_ok = |p: u64| p == unsorted || (p.is_multiple_of(16) && p != 0);
    if !bin_ok(fd) || !bin_ok(bk) {
        return false;
    }
    if mem.word(x + AR_SYSTEM_MEM).is_none_or(|s| s == 0 || s > (1 << 46)) {
        return false;
    }
    let mut n = x;
    for _ in 0..MAX_ARENAS {
        match mem.word(n.wrapping_add(AR_NEXT)) {
            Some(next) if next == x => return true,
            Some(next) if next != 0 && next % 8 == 0 => n = next,
            _ => return false,
        }
    }
    false
}

/// Reads words of the copied segments for one thread (`Memory::word_fast`
/// caches in a `Cell`, which cannot cross threads): the last segment is tried first.
struct Words<'a> {
    segs: &'a [Segment],
    last: usize,
}

impl<'a> Words<'a> {
    fn new(segs: &'a [Segment]) -> Words<'a> {
        Words { segs, last: 0 }
    }

    #[inline(always)]
    fn word(&mut self, addr: u64) -> Option<u64> {
        let hit = |s: &Segment| addr >= s.start && addr.checked_add(8).is_some_and(|e| e <= s.end());
        if !self.segs.get(self.last).is_some_and(hit) {
            let i = self.segs.partition_point(|s| s.start <= addr).checked_sub(1)?;
            if !hit(&self.segs[i]) {
                return None;
            }
            self.last = i;
        }
        let s = &self.segs[self.last];
        let off = (addr - s.start) as usize;
        Some(u64::from_le_bytes(s.data[off..off + 8].try_into().ok()?))
    }

    /// Asks for the cache line holding `addr` without waiting for it (nothing
    /// outside the last segment read).
    #[inline]
    fn prefetch(&self, addr: u64) {
        let Some(s) = self.segs.get(self.last) else { return };
        if addr < s.start || addr >= s.end() {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        {
            let p = s.data[(addr - s.start) as usize..].as_ptr();
            // SAFETY: a prefetch never faults; p points into the segment's data anyway.
            #[allow(unused_unsafe)]
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
            }
        }
    }
}

/// The bounds of one heap's linear walk.
#[derive(Clone, Copy)]
struct Bounds {
    first: u64,
    limit: u64,
    top: Option<u64>,
}

/// One step of a linear walk at `p`.
enum Step {
    Chunk(Chunk),
    /// The heap's end, its top chunk or a fencepost.
    End,
    /// A walk that cannot go on (a header outside the image, an impossible size).
    Stop(String),
}

#[inline]
fn step(words: &mut Words, b: Bounds, p: u64) -> Step {
    match head(words, b, p) {
        Step::Chunk(mut c) => {
            c.inuse_bit = inuse_bit(words, b, p + c.size);
            Step::Chunk(c)
        }
        other => other,
    }
}

/// `step` without the PREV_INUSE bit of the chunk after (left set): the
/// lockstep walk reads that bit one round later, once its line has come.
#[inline]
fn head(words: &mut Words, b: Bounds, p: u64) -> Step {
    if !p.checked_add(16).is_some_and(|e| e <= b.limit) || Some(p) == b.top {
        return Step::End;
    }
    let Some(field) = words.word(p + 8) else {
        return Step::Stop(format!("chunk header at {p:#x} is not in the image; walk of this heap stopped"));
    };
    let size = field & !SIZE_BITS;
    // A 16-byte fencepost (or a zero header) ends a heap that is not the arena's last.
    if size <= 16 && b.top.is_none_or(|t| t < b.first || t >= b.limit) {
        return Step::End;
    }
    if size < MINSIZE || !size.is_multiple_of(16) || size > b.limit - p {
        return Step::Stop(format!("chunk at {p:#x} has an impossible size {field:#x}; walk of this heap stopped"));
    }
    let word0 = words.word(p + 16).unwrap_or(0);
    Step::Chunk(Chunk { at: p, size, inuse_bit: true, first: p == b.first, word0 })
}

/// Whether the chunk ending at `next` is in use, by the PREV_INUSE bit of
/// the header at `next` (a chunk ending at the heap's limit counts as in use).
#[inline]
fn inuse_bit(words: &mut Words, b: Bounds, next: u64) -> bool {
    match words.word(next.wrapping_add(8)) {
        Some(n) if next.checked_add(16).is_some_and(|e| e <= b.limit) || Some(next) == b.top => n & PREV_INUSE != 0,
        _ => true,
    }
}

/// How a piece of a walk ended.
enum Ending {
    /// At this address, the piece's end: the next piece goes on from there.
    At(u64),
    /// The heap's walk ended, with a reason when it stopped early.
    Done(Option<String>),
}

/// Walks chunks linearly from `first` up to `limit` (or the arena's top).
/// A walk that cannot go on is recorded in `stopped`.
///
/// A big heap is cut into parts: `lanes` per thread. Each part but the
/// first starts on the first address from which a chain of chunk headers
/// looks sound, and is walked to its end. The walk from the start then
/// joins a part's chain where it lands on one of its chunks: from a chunk
/// on, the chain is the same whoever walks it, so the result is the walk's
/// of one chain from the start. Where it never lands on one (the chain
/// guessed was not the heap's), it walks on by itself.
///
/// A thread walks its parts in lockstep: one chain waits for each header to
/// come from memory before it knows where the next one is, while the reads
/// of independent chains overlap.
fn walk_chunks(mem: &Memory, b: Bounds, cut: Cut, out: &mut Vec<Piece>, stopped: &mut Vec<String>) {
    let len = b.limit.saturating_sub(b.first);
    let (threads, per_thread) = if len < PARALLEL_WALK { (1, 1) } else { (cut.threads.max(1), cut.lanes.max(1)) };
    let parts = threads * per_thread;
    let bound = |i: usize| if i == parts { b.limit } else { (b.first + len / parts as u64 * i as u64) & !15 };
    let segs = mem.segments();
    let walk_group = |group: std::ops::Range<usize>| -> Vec<Part> {
        let mut words = Words::new(segs);
        let mut lanes: Vec<Part> = group
            .map(|i| {
                let (from, until) = (bound(i), bound(i + 1));
                let chunks = Vec::with_capacity(usize::try_from((until - from) / 256).unwrap_or(0));
                let start = if i == 0 { Some(b.first) } else { (0..SYNC_SEARCH / 16).map(|k| from + 16 * k).find(|&q| q < until && sound_chain(&mut words, b, q)) };
                match start {
                    Some(p) => Part { p, until, chunks, pending: None, ending: None },
                    None => Part { p: until, until, chunks, pending: None, ending: Some(Ending::At(until)) },
                }
            })
            .collect();
        // Each round, a lane finishes the chunk it read last round (its
        // next header, asked for then, has come meanwhile), reads the next
        // one and asks for the header after it.
        loop {
            let mut live = false;
            for l in lanes.iter_mut().filter(|l| l.ending.is_none()) {
                live = true;
                if let Some(mut c) = l.pending.take() {
                    c.inuse_bit = inuse_bit(&mut words, b, l.p);
                    l.chunks.push(c);
                }
                if l.p >= l.until {
                    l.ending = Some(Ending::At(l.p));
                    continue;
                }
                match head(&mut words, b, l.p) {
                    Step::Chunk(c) => {
                        l.p = c.at + c.size;
                        l.pending = Some(c);
                        words.prefetch(l.p + 8);
                        words.prefetch(l.p + 16);
                    }
                    Step::End => l.ending = Some(Ending::Done(None)),
                    Step::Stop(why) => l.ending = Some(Ending::Done(Some(why))),
                }
            }
            if !live {
                return lanes;
            }
        }
    };
    let walked: Vec<Part> = if threads == 1 {
        walk_group(0..parts)
    } else {
        std::thread::scope(|s| {
            let walk_group = &walk_group;
            let handles: Vec<_> = (1..threads).map(|t| s.spawn(move || walk_group(t * per_thread..(t + 1) * per_thread))).collect();
            let mut all = walk_group(0..per_thread);
            for h in handles {
                all.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
            }
            all
        })
    };
    // The parts' lists are kept as they are, from where the chain joins
    // them: no copy into one list.
    let mut parts_walked = walked.into_iter();
    let Some(first) = parts_walked.next() else { return };
    let mut ending = first.ending.unwrap_or(Ending::At(first.p));
    out.push(Piece { chunks: first.chunks, from: 0 });
    let mut words = Words::new(segs);
    for (i, part) in parts_walked.enumerate() {
        let until = bound(i + 2);
        let part_end = part.ending.unwrap_or(Ending::At(part.p));
        let mut part_end = Some(part_end);
        let mut bridge = Vec::new();
        loop {
            let Ending::At(p) = ending else { break };
            if p >= until {
                break;
            }
            if let Ok(k) = part.chunks.binary_search_by_key(&p, |c| c.at) {
                out.push(Piece { chunks: std::mem::take(&mut bridge), from: 0 });
                out.push(Piece { chunks: part.chunks, from: k });
                ending = part_end.take().unwrap_or(Ending::At(until));
                break;
            }
            ending = match step(&mut words, b, p) {
                Step::Chunk(c) => {
                    bridge.push(c);
                    Ending::At(c.at + c.size)
                }
                Step::End => Ending::Done(None),
                Step::Stop(why) => Ending::Done(Some(why)),
            };
        }
        out.push(Piece { chunks: bridge, from: 0 });
    }
    out.retain(|p| p.from < p.chunks.len());
    if let Ending::Done(Some(why)) = ending {
        stopped.push(why);
    }
}

/// How a heap's chunk walk is cut into parts.
#[derive(Debug, Clone, Copy)]
pub struct Cut {
    /// Threads walking parts of a big heap.
    pub threads: usize,
    /// Parts each thread walks at once ([`LANES`] by default; 1: one chain per thread).
    pub lanes: usize,
}

/// Parts a thread walks at once: past four, the walk is bound by memory, not by latency.
pub const LANES: usize = 4;

/// One part of a cut walk.
struct Part {
    /// Where its walk is.
    p: u64,
    until: u64,
    chunks: Vec<Chunk>,
    /// The chunk read last, waiting for the PREV_INUSE bit at `p`.
    pending: Option<Chunk>,
    /// How it ended, once it has.
    ending: Option<Ending>,
}

/// A run of a heap's chunks in address order: a part's list from `from` on.
struct Piece {
    chunks: Vec<Chunk>,
    from: usize,
}

impl Piece {
    fn chunks(&self) -> &[Chunk] {
        &self.chunks[self.from..]
    }
}

/// The chunks of every heap: runs in address order, disjoint.
struct Chunks<'a> {
    runs: Vec<&'a [Chunk]>,
}

impl<'a> Chunks<'a> {
    fn new(pieces: &'a [Piece]) -> Chunks<'a> {
        let mut runs: Vec<&[Chunk]> = pieces.iter().map(Piece::chunks).filter(|r| !r.is_empty()).collect();
        runs.sort_unstable_by_key(|r| r[0].at);
        Chunks { runs }
    }

    fn iter(&self) -> impl Iterator<Item = &'a Chunk> + '_ {
        self.runs.iter().flat_map(|r| r.iter())
    }

    fn len(&self) -> usize {
        self.runs.iter().map(|r| r.len()).sum()
    }

    /// The chunk at `at`.
    fn find(&self, at: u64) -> Option<&'a Chunk> {
        let run = self.runs[self.runs.partition_point(|r| r[0].at <= at).checked_sub(1)?];
        run.binary_search_by_key(&at, |c| c.at).ok().map(|i| &run[i])
    }

    /// The chunks cut into `n` runs of lists of about as many chunks, in order.
    fn split(&self, n: usize) -> Vec<Vec<&'a [Chunk]>> {
        let per = self.len().div_ceil(n.max(1)).max(1);
        let mut out: Vec<Vec<&[Chunk]>> = vec![Vec::new()];
        let mut room = per;
        for &run in &self.runs {
            let mut rest = run;
            while !rest.is_empty() {
                if room == 0 {
                    out.push(Vec::new());
                    room = per;
                }
                let (now, later) = rest.split_at(room.min(rest.len()));
                out.last_mut().expect("one list at least").push(now);
                room -= now.len();
                rest = later;
            }
        }
        out
    }
}

/// Heaps smaller than this are walked on one thread.
const PARALLEL_WALK: u64 = 16 << 20;
/// How far past its start a part of a parallel walk looks for a chain of sound headers.
const SYNC_SEARCH: u64 = 64 << 10;
/// Chunks in a row that must look sound for a part of a parallel walk to start there.
const SYNC_CHAIN: usize = 16;

/// Whether `SYNC_CHAIN` chunks in a row from `q` have sound headers.
fn sound_chain(words: &mut Words, b: Bounds, mut q: u64) -> bool {
    for _ in 0..SYNC_CHAIN {
        match step(words, b, q) {
            Step::Chunk(c) => q = c.at + c.size,
            Step::End => return true,
            Step::Stop(_) => return false,
        }
    }
    true
}

/// Walks a safe-linked singly linked list from the user address of its first
/// entry; the link is the entry's first word. A revealed link is a user
/// address (tcache) or a chunk address (fastbins: `to_user` = 16).
fn walk_safe_list(mem: &Memory, head_user: u64, to_user: u64, max: usize, free: &mut HashSet<u64>, warnings: &mut Vec<String>, what: &str) -> Vec<u64> {
    let mut seen = Vec::new();
    let mut visited = HashSet::new();
    let mut e = head_user;
    while e != 0 {
        if seen.len() >= max {
            warnings.push(format!("{what}: longer than {max} entries; walk stopped"));
            break;
        }
        if !e.is_multiple_of(16) || !visited.insert(e) {
            warnings.push(format!("{what}: bad or repeated entry {e:#x}; walk stopped"));
            break;
        }
        let Some(stored) = mem.word(e) else {
            warnings.push(format!("{what}: entry {e:#x} is not in the image; walk stopped"));
            break;
        };
        free.insert(e - 16);
        seen.push(e);
        let next = stored ^ (e >> 12);
        e = if next == 0 { 0 } else { next.wrapping_add(to_user) };
    }
    seen
}

/// Walks an arena's fastbins, bins, and returns the free chunks found.
fn arena_free_lists(mem: &Memory, arena: u64, free: &mut HashSet<u64>, warnings: &mut Vec<String>) {
    for i in 0..NFASTBINS {
        let Some(head) = mem.word(arena.wrapping_add(AR_FASTBINS + 8 * i)) else { continue };
        if head == 0 {
            continue;
        }
        // Fastbin heads hold chunk pointers; the safe-linked fd is at chunk+16.
        walk_safe_list(mem, head.wrapping_add(16), 16, MAX_LIST, free, warnings, &format!("arena {arena:#x} fastbin {i}"));
    }
    for i in 1..NBINS {
        let bin = arena.wrapping_add(AR_BINS + (i - 1) * 16 - 16);
        let mut visited = HashSet::new();
        let mut p = mem.word(bin.wrapping_add(16)).unwrap_or(bin);
        let mut n = 0usize;
        while p != bin {
            n += 1;
            if n > MAX_LIST || !p.is_multiple_of(16) || !visited.insert(p) {
                warnings.push(format!("arena {arena:#x} bin {i}: broken or cyclic list at {p:#x}; walk stopped"));
                break;
            }
            let Some(fd) = mem.word(p.wrapping_add(16)) else {
                warnings.push(format!("arena {arena:#x} bin {i}: chunk {p:#x} is not in the image; walk stopped"));
                break;
            };
            free.insert(p);
            p = fd;
        }
    }
}

/// Checks that a 0x290 chunk is a tcache_perthread_struct: every count
/// matches the length of its (safe-linked) list of chunks of that bin's size.
fn tcache_lists(mem: &Memory, chunk: u64, chunks: &Chunks) -> Option<Vec<(u64, Vec<u64>)>> {
    let size_of = |at: u64| chunks.find(at).map(|c| c.size);
    let base = chunk + 16;
    let mut lists = Vec::new();
    for i in 0..TCACHE_BINS {
        let count = u64::from(mem.u16_at(base + 2 * i)?);
        let head = mem.word(base + 2 * TCACHE_BINS + 8 * i)?;
        if (count == 0) != (head == 0) {
            return None;
        }
        if head == 0 {
            continue;
        }
        let mut scratch = HashSet::new();
        let mut w = Vec::new();
        let entries = walk_safe_list(mem, head, 0, count as usize, &mut scratch, &mut w, "tcache");
        if entries.len() as u64 != count {
            return None;
        }
        let want = 32 + 16 * i;
        if entries.iter().any(|&e| size_of(e - 16) != Some(want)) {
            return None;
        }
        lists.push((i, entries));
    }
    Some(lists)
}

/// The chunks in use as blocks (neither on a free list nor a tcache
/// struct), and the count and bytes of the free ones. A big heap's chunks
/// are split among `threads`: each counts its share, then writes its
/// blocks straight into its place in the one list (no second copy).
fn blocks_of(chunks: &Chunks, free: &[u64], tcaches: &[u64], threads: usize) -> (Vec<Block>, u64, u64) {
    let is_free = |c: &Chunk| !c.inuse_bit || (!free.is_empty() && free.binary_search(&c.at).is_ok());
    let is_tcache = |c: &Chunk| tcaches.binary_search(&c.at).is_ok();
    let is_block = |c: &Chunk| !is_free(c) && !is_tcache(c);
    let block = |c: &Chunk| Block { chunk: c.at, addr: c.at + 16, size: c.size - 8, mmapped: false, first: c.word0 };
    // One pass over a run of chunks: its blocks counted, its free chunks counted and summed.
    let tally = |part: &[&[Chunk]]| {
        part.iter().flat_map(|r| r.iter()).fold((0usize, 0u64, 0u64), |(k, n, b), c| {
            if is_free(c) {
                (k, n + 1, b + c.size)
            } else if is_tcache(c) {
                (k, n, b)
            } else {
                (k + 1, n, b)
            }
        })
    };
    let threads = if chunks.len() < PARALLEL_BLOCKS { 1 } else { threads.max(1) };
    if threads == 1 {
        let (_, n, b) = tally(&chunks.runs);
        return (chunks.iter().filter(|c| is_block(c)).map(block).collect(), n, b);
    }
    let parts = chunks.split(threads);
    let counts: Vec<(usize, u64, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = parts.iter().map(|part| s.spawn(move || tally(part))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    });
    let total: usize = counts.iter().map(|c| c.0).sum();
    let mut blocks: Vec<Block> = Vec::with_capacity(total);
    {
        let mut room = &mut blocks.spare_capacity_mut()[..total];
        std::thread::scope(|s| {
            for (part, &(n, _, _)) in parts.iter().zip(&counts) {
                let (mine, rest) = room.split_at_mut(n);
                room = rest;
                s.spawn(move || {
                    for (slot, c) in mine.iter_mut().zip(part.iter().flat_map(|r| r.iter()).filter(|c| is_block(c))) {
                        slot.write(block(c));
                    }
                });
            }
        });
    }
    // SAFETY: each part's thread wrote its `n` blocks into its own `n`
    // slots, the slots together are the first `total`, and the scope has
    // joined every thread.
    unsafe { blocks.set_len(total) };
    let (n, b) = counts.iter().fold((0, 0), |(n, b), c| (n + c.1, b + c.2));
    (blocks, n, b)
}

/// Chunks past which the blocks are made on every thread.
const PARALLEL_BLOCKS: usize = 1 << 16;

/// Finds mmapped chunks at page starts of an anonymous range.
fn mmapped_chunks(mem: &Memory, start: u64, end: u64, out: &mut Vec<Block>, ranges: &mut Vec<(u64, u64)>) {
    let mut p = (start + 4095) & !4095;
    while p + 4096 <= end {
        let (Some(prev), Some(field)) = (mem.word(p), mem.word(p + 8)) else {
            p += 4096;
            continue;
        };
        let size = field & !SIZE_BITS;
        if prev == 0 && field & SIZE_BITS == IS_MMAPPED && size >= 4096 && size.is_multiple_of(4096) && size <= end - p {
            out.push(Block { chunk: p, addr: p + 16, size: size - 16, mmapped: true, first: mem.word(p + 16).unwrap_or(0) });
            ranges.push((p, p + size));
            p += size;
        } else {
            p += 4096;
        }
    }
}

/// Walks every heap of the process image, on one thread.
#[must_use]
pub fn walk(mem: &Memory, layout: &Layout) -> Walk {
    walk_with(mem, layout, 1)
}

/// [`walk`] on up to `threads` threads: a big heap's chunks are walked in
/// parts (see `walk_chunks`); the result does not depend on `threads`.
#[must_use]
pub fn walk_with(mem: &Memory, layout: &Layout, threads: usize) -> Walk {
    walk_cut(mem, layout, Cut { threads, lanes: LANES })
}

/// [`walk`] with its heaps cut as `cut` says; the result does not depend on it.
#[must_use]
pub fn walk_cut(mem: &Memory, layout: &Layout, cut: Cut) -> Walk {
    let mut w = Walk::default();
    let mut lap = crate::scan::Lap::new();
    let mut pieces: Vec<Piece> = Vec::new();
    let main = find_main_arena(mem, layout);
    w.main_arena = main;
    if let (Some(m), Some((hs, he))) = (main, layout.heap) {
        let top = mem.word(m + AR_TOP);
        let limit = top.and_then(|t| mem.word(t.wrapping_add(8)).map(|s| t.saturating_add(s & !SIZE_BITS))).map_or(he, |l| l.min(he));
        walk_chunks(mem, Bounds { first: hs, limit, top }, cut, &mut pieces, &mut w.stopped);
        w.arenas.push(m);
        w.metadata.push((m, m + ARENA_SIZE));
        // The other arenas, through the `next` list.
        let mut a = mem.word(m + AR_NEXT).unwrap_or(m);
        while a != m && w.arenas.len() < MAX_ARENAS {
            if w.arenas.contains(&a) {
                w.warnings.push(format!("arena list loops at {a:#x}"));
                break;
            }
            w.arenas.push(a);
            let top = mem.word(a.wrapping_add(AR_TOP)).unwrap_or(0);
            let mut h = top & !(HEAP_MAX - 1);
            for _ in 0..MAX_HEAPS_PER_ARENA {
                if h == 0 || h.checked_add(HEAP_MAX).is_none() || mem.word(h) != Some(a) {
                    if h != 0 {
                        w.warnings.push(format!("heap {h:#x} does not belong to arena {a:#x}"));
                    }
                    break;
                }
                let size = mem.word(h + 16).unwrap_or(0).min(HEAP_MAX);
                let first = if a == h.wrapping_add(HEAP_INFO_SIZE) { (h + HEAP_INFO_SIZE + ARENA_SIZE + 15) & !15 } else { h + HEAP_INFO_SIZE };
                w.metadata.push((h, first));
                w.arena_heaps.push((h, h + HEAP_MAX));
                walk_chunks(mem, Bounds { first, limit: h + size, top: Some(top) }, cut, &mut pieces, &mut w.stopped);
                let prev = mem.word(h + 8).unwrap_or(0);
                if !prev.is_multiple_of(HEAP_MAX) || w.arena_heaps.iter().any(|r| r.0 == prev) {
                    if prev != 0 {
                        w.warnings.push(format!("heap {h:#x} has a bad prev link {prev:#x}"));
                    }
                    break;
                }
                h = prev;
            }
            match mem.word(a.wrapping_add(AR_NEXT)) {
                Some(n) => a = n,
                None => {
                    w.warnings.push(format!("arena {a:#x} is not in the image"));
                    break;
                }
            }
        }
    }
    w.phases.push(lap.next("walk: chunks"));
    // No main_arena with a [heap]: nothing was walked; `scan::verdict` says why.
    // The mutex is the arena's first int (0 free, 1 or 2 held).
    w.locked_arenas = w.arenas.iter().copied().filter(|&a| mem.word(a).is_some_and(|m| m & 0xffff_ffff != 0)).collect();

    // Free chunks: bins and fastbins of every arena, then the tcaches.
    let mut free: HashSet<u64> = HashSet::new();
    for &a in &w.arenas {
        arena_free_lists(mem, a, &mut free, &mut w.warnings);
    }
    let chunks = Chunks::new(&pieces);
    let tls_words: HashSet<u64> = layout
        .thread_pointers
        .iter()
        .flat_map(|&tp| (1..=2048u64).filter_map(move |i| tp.checked_sub(8 * i)))
        .filter_map(|a| mem.word(a))
        .collect();
    let mut tcaches = HashSet::new();
    let candidates: Vec<Chunk> = chunks.iter().filter(|c| c.size == TCACHE_CHUNK && c.inuse_bit && !free.contains(&c.at)).copied().collect();
    for c in &candidates {
        if !c.first && !tls_words.contains(&(c.at + 16)) {
            continue;
        }
        if let Some(lists) = tcache_lists(mem, c.at, &chunks) {
            tcaches.insert(c.at);
            w.metadata.push((c.at, c.at + c.size));
            for (_, entries) in lists {
                for e in entries {
                    free.insert(e - 16);
                    if let Some(key) = mem.word(e.wrapping_add(8)) {
                        match w.tcache_key {
                            None => w.tcache_key = Some(key),
                            Some(k) if k != key => w.warnings.push(format!("tcache entry {e:#x} has a key that differs from the others")),
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    w.phases.push(lap.next("walk: bins, tcache"));
    let mut free: Vec<u64> = free.into_iter().collect();
    free.sort_unstable();
    // A handful of tcaches: a sorted list, not a hash per chunk.
    let mut tcaches: Vec<u64> = tcaches.into_iter().collect();
    tcaches.sort_unstable();
    let (blocks, free_chunks, free_bytes) = blocks_of(&chunks, &free, &tcaches, cut.threads);
    drop(chunks);
    drop(pieces);
    w.blocks = blocks;
    w.free_chunks = free_chunks;
    w.free_bytes = free_bytes;
    let heap_blocks = w.blocks.len();
    for &(s, e) in &layout.anon {
        let inside_heap = w.arena_heaps.iter().any(|&(hs, he)| s < he && hs < e) || layout.heap.is_some_and(|(hs, he)| s < he && hs < e);
        if !inside_heap {
            mmapped_chunks(mem, s, e, &mut w.blocks, &mut w.mmapped);
        }
    }
    // The walk's blocks come in address order (chunks are sorted and
    // disjoint), the mmapped ones after them: the list needs a sort only
    // when these are out of order or land among the heap's (an arena's
    // heap among the mappings), a check of the few mmapped ones.
    let (heap, mapped) = w.blocks.split_at(heap_blocks);
    let in_order = mapped.windows(2).all(|p| p[0].end() <= p[1].addr) && mapped.first().is_none_or(|m| heap.last().is_none_or(|h| h.end() <= m.addr));
    if !in_order {
        w.blocks.sort_by_key(|b| b.addr);
        w.blocks.dedup_by(|b, a| b.addr < a.end());
    }
    w.phases.push(lap.next("walk: blocks, mmapped"));
    w
}

/// A small, consistent glibc heap image (main_arena in a fake libc data
/// page, a [heap] with every kind of chunk), for the unit tests and the fuzz
/// target, which corrupt it on purpose.
pub mod image {
    use super::*;
    use crate::scan::memory::Segment;

    pub const LIBC: u64 = 0x7f00_0000_0000;
    pub const ARENA: u64 = LIBC + 0x100;
    pub const HEAP: u64 = 0x5555_5555_0000;
    pub const HEAP_LEN: u64 = 0x21000;

    pub struct Image {
        pub libc: Vec<u8>,
        pub heap: Vec<u8>,
    }

    impl Image {
        pub fn put(&mut self, addr: u64, v: u64) {
            let (buf, base) = if addr >= LIBC { (&mut self.libc, LIBC) } else { (&mut self.heap, HEAP) };
            let o = (addr - base) as usize;
            buf[o..o + 8].copy_from_slice(&v.to_le_bytes());
        }
        pub fn put16(&mut self, addr: u64, v: u16) {
            let o = (addr - HEAP) as usize;
            self.heap[o..o + 2].copy_from_slice(&v.to_le_bytes());
        }
        pub fn chunk(&mut self, at: u64, size: u64, prev_inuse: bool) {
            self.put(at + 8, size | u64::from(prev_inuse));
        }
        pub fn memory(&self) -> (Memory, Layout) {
            let mem = Memory::new(vec![Segment { start: LIBC, data: self.libc.clone() }, Segment { start: HEAP, data: self.heap.clone() }]);
            let layout = Layout {
                heap: Some((HEAP, HEAP + HEAP_LEN)),
                libc_data: vec![(LIBC, LIBC + self.libc.len() as u64)],
                anon: vec![],
                thread_pointers: vec![],
            };
            (mem, layout)
        }
    }

    /// A small but complete heap: tcache struct, a used block, a tcache'd
    /// block, a fastbin block, an unsorted-bin block, a used block, top.
    pub fn sample() -> (Image, [u64; 5]) {
        let mut im = Image { libc: vec![0; 0x1000], heap: vec![0; HEAP_LEN as usize] };
        let tcache = HEAP;
        let a = tcache + 0x290; // used, 0x20
        let b = a + 0x20; // tcache bin 1, 0x30
        let c = b + 0x30; // fastbin 0, 0x20
        let d = c + 0x20; // unsorted, 0x100
        let e = d + 0x100; // used, 0x20
        let top = e + 0x20;
        im.chunk(tcache, 0x290, true);
        im.chunk(a, 0x20, true);
        im.chunk(b, 0x30, true);
        im.chunk(c, 0x20, true);
        im.chunk(d, 0x100, true);
        im.chunk(e, 0x20, false); // d is free: e's PREV_INUSE is clear
        im.put(e, 0x100); // prev_size
        im.chunk(top, HEAP + HEAP_LEN - top, true);
        // tcache: counts[1] = 1, entries[1] = b's user pointer, b's next = 0 (protected), key.
        im.put16(tcache + 16 + 2, 1);
        im.put(tcache + 16 + 128 + 8, b + 16);
        im.put(b + 16, (b + 16) >> 12); // PROTECT_PTR(pos, NULL)
        im.put(b + 24, 0xfeed_beef_dead_c0de);
        // main_arena: fastbin 0 = c (next NULL, protected), top, unsorted bin holds d.
        im.put(ARENA + AR_FASTBINS, c);
        im.put(c + 16, (c + 16) >> 12);
        im.put(ARENA + AR_TOP, top);
        for i in 1..NBINS {
            let bin = ARENA + AR_BINS + (i - 1) * 16 - 16;
            im.put(bin + 16, bin);
            im.put(bin + 24, bin);
        }
        let unsorted = ARENA + AR_BINS - 16;
        im.put(ARENA + AR_BINS, d);
        im.put(ARENA + AR_BINS + 8, d);
        im.put(d + 16, unsorted);
        im.put(d + 24, unsorted);
        im.put(ARENA + AR_NEXT, ARENA);
        im.put(ARENA + AR_SYSTEM_MEM, HEAP_LEN);
        (im, [a, b, c, d, e])
    }


    /// A generated heap and what to mark it from, for trials that compare markings.
    pub struct Graph {
        pub memory: Memory,
        pub layout: Layout,
        pub roots: crate::scan::reach::Roots,
        /// Candidate regions (one segment of the image): some blocks point into the first.
        pub regions: Vec<(u64, u64)>,
        /// The chunks a walk must find in use.
        pub used: Vec<u64>,
    }

    /// Where a generated graph keeps its roots and its candidate regions.
    pub const DATA: u64 = 0x6000_0000_0000;
    pub const MAP: u64 = 0x6100_0000_0000;

    /// A main arena and a [heap] of `chunks` chunks (one in eight free, some
    /// bigger than 256 KiB), whose blocks point at each other at random:
    /// start pointers, interior pointers, new[] cookies, cycles, chains;
    /// roots in a data segment (its first 256 bytes the runtime's) and in
    /// registers. The same `seed` gives the same graph.
    #[must_use]
    pub fn graph(seed: u64, chunks: usize) -> Graph {
        let mut x = seed | 1;
        let mut rand = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Chunk sizes and which are free; a free chunk is never followed by another (glibc coalesces).
        let mut layout_chunks: Vec<(u64, u64, bool)> = Vec::with_capacity(chunks);
        let mut p = HEAP;
        let mut prev_free = true;
        for _ in 0..chunks {
            let size = if rand() % 500 == 0 { (300 << 10) + 16 * (rand() % 64) } else { 32 + 16 * (rand() % 64) };
            let free = !prev_free && rand() % 8 == 0;
            layout_chunks.push((p, size, free));
            prev_free = free;
            p += size;
        }
        let top = p;
        let heap_len = (top - HEAP + 0x1000 + 4095) & !4095;
        let mut heap = vec![0u8; heap_len as usize];
        let mut libc = vec![0u8; 0x1000];
        let put = |buf: &mut Vec<u8>, base: u64, addr: u64, v: u64| {
            let o = (addr - base) as usize;
            buf[o..o + 8].copy_from_slice(&v.to_le_bytes());
        };
        let used: Vec<(u64, u64)> = layout_chunks.iter().filter(|c| !c.2).map(|c| (c.0, c.1)).collect();
        let mut prev_free = false;
        for &(at, size, free) in &layout_chunks {
            put(&mut heap, HEAP, at + 8, size | u64::from(!prev_free));
            prev_free = free;
        }
        put(&mut heap, HEAP, top + 8, (HEAP + heap_len - top) | u64::from(!prev_free));
        let pick = |rand: &mut dyn FnMut() -> u64| used[(rand() % used.len() as u64) as usize];
        for &(at, size) in &used {
            let addr = at + 16;
            let words = (size - 8) / 8;
            for i in 0..words {
                // Non-pointers, most of them.
                put(&mut heap, HEAP, addr + 8 * i, rand() & 0x00ff_ffff_ffff_fff0);
            }
            match rand() % 16 {
                // A new[] cookie: an element count in the first word.
                0 => put(&mut heap, HEAP, addr, 1 + rand() % ((size - 16) / 8)),
                1 => put(&mut heap, HEAP, addr + 8 * (rand() % words), MAP + 8 * (rand() % 512)),
                _ => {}
            }
            for _ in 0..(rand() % 3) {
                let (t, tsize) = pick(&mut rand);
                let v = match rand() % 4 {
                    0 => t + 16 + 8 * (rand() % ((tsize - 8) / 8)),
                    1 => t + 24,
                    _ => t + 16,
                };
                put(&mut heap, HEAP, addr + 8 * (rand() % words), v);
            }
        }
        // main_arena: top, empty bins, alone on its `next` list.
        put(&mut libc, LIBC, ARENA + AR_TOP, top);
        for i in 1..NBINS {
            let bin = ARENA + AR_BINS + (i - 1) * 16 - 16;
            put(&mut libc, LIBC, bin + 16, bin);
            put(&mut libc, LIBC, bin + 24, bin);
        }
        put(&mut libc, LIBC, ARENA + AR_NEXT, ARENA);
        put(&mut libc, LIBC, ARENA + AR_SYSTEM_MEM, heap_len);
        let mut data = vec![0u8; 0x1000];
        for i in 0..(0x1000 / 8) {
            if rand() % 4 == 0 {
                let (t, _) = pick(&mut rand);
                put(&mut data, DATA, DATA + 8 * i, if rand() % 8 == 0 { t + 32 } else { t + 16 });
            }
        }
        let mut map = vec![0u8; 0x2000];
        for i in 0..(0x2000 / 8) {
            if rand() % 16 == 0 {
                let (t, _) = pick(&mut rand);
                put(&mut map, MAP, MAP + 8 * i, t + 16);
            }
        }
        let registers = (0..8).map(|_| pick(&mut rand).0 + 16).collect();
        use crate::scan::reach::{Range, Roots};
        Graph {
            memory: Memory::new(vec![
                Segment { start: LIBC, data: libc },
                Segment { start: HEAP, data: heap },
                Segment { start: DATA, data },
                Segment { start: MAP, data: map },
            ]),
            layout: Layout { heap: Some((HEAP, HEAP + heap_len)), libc_data: vec![(LIBC, LIBC + 0x1000)], anon: vec![], thread_pointers: vec![] },
            roots: Roots {
                runtime: vec![Range { start: DATA, end: DATA + 256 }],
                program: vec![Range { start: DATA + 256, end: DATA + 0x1000 }],
                registers,
            },
            regions: vec![(MAP, MAP + 0x1000), (MAP + 0x1000, MAP + 0x2000)],
            used: used.iter().map(|c| c.0).collect(),
        }
    }

    /// The sample image with the fuzzer's bytes applied as patches: each
    /// 10 bytes are a word index (u16, into main_arena or the first 8 KiB of
    /// the heap) and the value to write there (u64).
    #[must_use]
    pub fn patched(data: &[u8]) -> (Memory, Layout) {
        let (mut im, _) = sample();
        for rec in data.chunks_exact(10) {
            let idx = u64::from(u16::from_le_bytes([rec[0], rec[1]]));
            let value = u64::from_le_bytes(rec[2..10].try_into().expect("8 bytes"));
            let addr = if idx < ARENA_SIZE / 8 { ARENA + idx * 8 } else { HEAP + ((idx - ARENA_SIZE / 8) % 1024) * 8 };
            im.put(addr, value);
        }
        let (mem, mut layout) = im.memory();
        layout.anon = vec![(HEAP + 0x1000, HEAP + HEAP_LEN)];
        layout.thread_pointers = vec![HEAP + 0x800];
        (mem, layout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::*;

    #[test]
    fn walks_a_clean_heap() {
        let (im, [a, _b, _c, _d, e]) = sample();
        let (mem, layout) = im.memory();
        let w = walk(&mem, &layout);
        assert_eq!(w.main_arena, Some(ARENA));
        assert!(w.warnings.is_empty(), "{:?}", w.warnings);
        let used: Vec<u64> = w.blocks.iter().map(|b| b.chunk).collect();
        assert_eq!(used, vec![a, e], "tcache struct, tcache'd, fastbin and unsorted chunks are not blocks");
        assert_eq!(w.blocks[0].size, 0x18);
        assert_eq!(w.free_chunks, 3);
        assert_eq!(w.tcache_key, Some(0xfeed_beef_dead_c0de));
        assert!(w.metadata.contains(&(HEAP, HEAP + 0x290)));
    }

    #[test]
    fn cyclic_lists_end_with_a_warning() {
        let (mut im, [_a, b, c, d, _e]) = sample();
        // tcache entry pointing to itself, fastbin to itself, unsorted bin looping without the head.
        im.put16(HEAP + 16 + 2, 5);
        im.put(b + 16, ((b + 16) >> 12) ^ (b + 16));
        im.put(c + 16, ((c + 16) >> 12) ^ c);
        im.put(d + 16, d);
        let (mem, layout) = im.memory();
        let w = walk(&mem, &layout);
        assert!(w.warnings.iter().any(|x| x.contains("fastbin")), "{:?}", w.warnings);
        assert!(w.warnings.iter().any(|x| x.contains("bin 1")), "{:?}", w.warnings);
    }

    #[test]
    fn impossible_sizes_stop_the_walk() {
        let (mut im, [a, ..]) = sample();
        im.chunk(a, 0xffff_ffff_ffff_fff0, true);
        let (mem, layout) = im.memory();
        let w = walk(&mem, &layout);
        assert!(w.stopped.iter().any(|x| x.contains("impossible size")), "{:?}", w.stopped);
        assert!(w.blocks.iter().all(|b| b.chunk < a));
    }

    #[test]
    fn a_held_arena_mutex_is_seen() {
        let (mut im, _) = sample();
        let (mem, layout) = im.memory();
        assert!(walk(&mem, &layout).locked_arenas.is_empty());
        im.put(ARENA, 2); // locked, with waiters
        let (mem, layout) = im.memory();
        assert_eq!(walk(&mem, &layout).locked_arenas, vec![ARENA]);
    }

    #[test]
    fn no_arena_no_walk() {
        let (mut im, _) = sample();
        im.put(ARENA + AR_NEXT, 0);
        let (mem, layout) = im.memory();
        let w = walk(&mem, &layout);
        assert_eq!(w.main_arena, None);
        assert!(w.blocks.is_empty());
        assert!(w.stopped.is_empty() && w.warnings.is_empty(), "the verdict, not a warning, says the heap was not walked");
    }

    /// Thousands of corrupted variants of the sample heap (random words set
    /// to random values, many of them pointers into the image): the walk and
    /// the marking never panic, and stay bounded.
    #[test]
    fn corrupted_heaps_never_crash() {
        let (im, _) = sample();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rand = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2000 {
            let mut bad = Image { libc: im.libc.clone(), heap: im.heap[..0x800].to_vec() };
            bad.heap.resize(HEAP_LEN as usize, 0);
            for _ in 0..(1 + rand() % 8) {
                let in_arena = rand() % 2 == 0;
                let addr = if in_arena { ARENA + (rand() % (ARENA_SIZE / 8)) * 8 } else { HEAP + (rand() % 0x100) * 8 };
                let v = match rand() % 5 {
                    0 => HEAP + rand() % 0x800,
                    1 => ARENA + rand() % ARENA_SIZE,
                    2 => rand(),
                    3 => (rand() % 0x400) | (rand() % 8),
                    _ => 0,
                };
                bad.put(addr, v);
            }
            let (mem, layout) = bad.memory();
            let w = walk(&mem, &layout);
            let roots = crate::scan::reach::Roots {
                runtime: vec![],
                program: vec![crate::scan::reach::Range { start: LIBC, end: LIBC + 0x1000 }],
                registers: vec![HEAP + 0x2b0],
            };
            let m = crate::scan::reach::mark(&mem, &w.blocks, &[], &roots, &|_| false);
            assert_eq!(m.blocks.len(), w.blocks.len());
            for pair in w.blocks.windows(2) {
                assert!(pair[0].end() <= pair[1].addr, "blocks overlap");
            }
        }
    }

    /// Inputs the fuzzer once crashed on (tests/data/fuzz/heap_walk/).
    #[test]
    fn fuzz_regressions() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz/heap_walk");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("the regression inputs") {
            let data = std::fs::read(entry.expect("entry").path()).expect("readable");
            let (mem, layout) = patched(&data);
            let w = walk(&mem, &layout);
            let roots = crate::scan::reach::Roots { runtime: vec![], program: vec![crate::scan::reach::Range { start: LIBC, end: LIBC + 0x1000 }], registers: vec![] };
            let _ = crate::scan::reach::mark(&mem, &w.blocks, &[], &roots, &|_| false);
            n += 1;
        }
        assert!(n > 0);
    }

    #[test]
    fn patched_images() {
        let (mem, layout) = patched(&[]);
        assert_eq!(walk(&mem, &layout).blocks.len(), 2);
        // Word 12 of main_arena is `top`: pointing it at the tcache chunk ends the walk at once.
        let mut rec = vec![12u8, 0];
        rec.extend_from_slice(&HEAP.to_le_bytes());
        let (mem, layout) = patched(&rec);
        assert!(walk(&mem, &layout).blocks.is_empty());
    }
}
