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

use super::glibc::Block;
use super::memory::Memory;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    Unreached,
    Possible,
    Reachable,
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
}

/// The outcome.
#[derive(Debug, Clone)]
pub struct Marking {
    pub blocks: Vec<Class>,
    /// For each candidate region: whether something reachable points into it.
    pub regions_reached: Vec<bool>,
    /// Bytes of memory scanned for pointers (roots and marked blocks).
    pub scanned: u64,
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

/// Scans aligned words of `bytes` (copied from `base`) and calls `hit` for each.
#[inline]
fn words(bytes: &[u8], mut hit: impl FnMut(u64, u64)) {
    for (i, w) in bytes.chunks_exact(8).enumerate() {
        let v = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        hit(i as u64 * 8, v);
    }
}

struct Marker<'a> {
    mem: &'a Memory,
    blocks: &'a [Block],
    index: Index<'a>,
    regions: &'a [(u64, u64)],
    region_index: Index<'a>,
    vtable_like: &'a dyn Fn(u64) -> bool,
    state: Vec<State>,
    runtime: Vec<bool>,
    regions_reached: Vec<bool>,
    stack: Vec<(u32, bool)>,
    region_stack: Vec<usize>,
    runtime_phase: bool,
    runtime_ignored: &'a [u64],
    scanned: u64,
    /// The lowest block or region address, and the width of the span up to the highest end.
    lo: u64,
    width: u64,
}

impl Marker<'_> {
    /// valgrind's default heuristics: an interior pointer that a C++
    /// runtime makes on purpose counts as a start pointer.
    fn heuristic_start(&self, b: &Block, ptr: u64) -> bool {
        // new[] of a type with a destructor: the pointer is past the element count.
        if ptr == b.addr + 8 {
            if let Some(n) = self.mem.word(b.addr) {
                if n != 0 && n <= b.size - 8 {
                    return true;
                }
            }
        }
        // Multiple inheritance: a pointer to a second base, at a vtable
        // pointer, in an object that starts with a vtable pointer.
        if ptr.is_multiple_of(8) {
            if let (Some(a), Some(c)) = (self.mem.word(ptr), self.mem.word(b.addr)) {
                if (self.vtable_like)(a) && (self.vtable_like)(c) {
                    return true;
                }
            }
        }
        false
    }

    #[inline]
    fn visit(&mut self, value: u64, from_reachable: bool) {
        if self.runtime_phase && !self.runtime_ignored.is_empty() && self.runtime_ignored.binary_search(&value).is_ok() {
            return;
        }
        if let Some(k) = self.index.find(value) {
            let b = &self.blocks[k];
            let start = value == b.addr || self.heuristic_start(b, value);
            let new = if start && from_reachable { State::Reachable } else { State::Possible };
            if new > self.state[k] {
                self.state[k] = new;
                if self.runtime_phase {
                    self.runtime[k] = true;
                }
                self.stack.push((k as u32, new == State::Reachable));
            }
        } else if let Some(r) = self.region_index.find(value) {
            if !self.regions_reached[r] {
                self.regions_reached[r] = true;
                self.region_stack.push(r);
            }
        }
    }

    fn scan(&mut self, start: u64, end: u64, from_reachable: bool) {
        let mut a = (start + 7) & !7;
        while a < end {
            let Some(si) = self.mem.segment_index(a) else {
                // Not copied: skip to the next copied segment.
                let segs = self.mem.segments();
                match segs.iter().find(|s| s.start > a) {
                    Some(s) => {
                        a = s.start;
                        continue;
                    }
                    None => return,
                }
            };
            let seg = &self.mem.segments()[si];
            let stop = end.min(seg.end());
            let off = (a - seg.start) as usize;
            let len = ((stop - a) as usize) & !7;
            let bytes = &seg.data[off..off + len];
            self.scanned += len as u64;
            // Most words are not addresses of anything: one wrapping compare
            // against the span of all blocks and regions rejects them before
            // any lookup (the hot loop of the whole scan).
            let (lo, width) = (self.lo, self.width);
            for w in bytes.chunks_exact(8) {
                let v = u64::from_le_bytes(w.try_into().expect("8 bytes"));
                if v.wrapping_sub(lo) < width {
                    self.visit(v, from_reachable);
                }
            }
            a = stop.max(a + 8);
        }
    }

    fn drain(&mut self) {
        // A root scan may push millions of blocks at once (an array of
        // pointers): popping them in ascending address order reads the heap
        // forwards, which the hardware prefetcher follows.
        if self.stack.len() > 1024 {
            self.stack.sort_unstable_by(|a, b| b.0.cmp(&a.0));
        }
        loop {
            if let Some((k, reachable)) = self.stack.pop() {
                let b = self.blocks[k as usize];
                // Reachable may have been upgraded since the push; scan with the best state.
                let reachable = reachable || self.state[k as usize] == State::Reachable;
                self.scan(b.addr, b.end(), reachable);
            } else if let Some(r) = self.region_stack.pop() {
                let (s, e) = self.regions[r];
                self.scan(s, e, true);
            } else {
                return;
            }
        }
    }
}

/// Marks `blocks` (sorted, disjoint) from `roots`; `regions` (sorted,
/// disjoint, not overlapping blocks) are the candidate mmap leaks.
#[must_use]
pub fn mark(mem: &Memory, blocks: &[Block], regions: &[(u64, u64)], roots: &Roots, vtable_like: &dyn Fn(u64) -> bool) -> Marking {
    mark_with(mem, blocks, regions, roots, vtable_like, &MarkOptions::default())
}

/// [`mark`] with options.
#[must_use]
pub fn mark_with(
    mem: &Memory,
    blocks: &[Block],
    regions: &[(u64, u64)],
    roots: &Roots,
    vtable_like: &dyn Fn(u64) -> bool,
    options: &MarkOptions,
) -> Marking {
    let lo = blocks.first().map_or(u64::MAX, |b| b.addr).min(regions.first().map_or(u64::MAX, |r| r.0));
    let hi = blocks.last().map_or(0, Block::end).max(regions.last().map_or(0, |r| r.1));
    let mut m = Marker {
        mem,
        blocks,
        index: Index::from_bounds(blocks.iter().map(|b| b.addr).collect(), blocks.iter().map(Block::end).collect()),
        regions,
        region_index: Index::new(regions),
        vtable_like,
        state: vec![State::Unreached; blocks.len()],
        runtime: vec![false; blocks.len()],
        regions_reached: vec![false; regions.len()],
        stack: Vec::new(),
        region_stack: Vec::new(),
        runtime_phase: true,
        runtime_ignored: &options.runtime_ignored,
        scanned: 0,
        lo,
        width: hi.saturating_sub(lo),
    };
    for r in &roots.runtime {
        m.scan(r.start, r.end, true);
        m.drain();
    }
    m.runtime_phase = false;
    for &v in &roots.registers {
        m.visit(v, true);
    }
    m.drain();
    for r in &roots.program {
        m.scan(r.start, r.end, true);
        m.drain();
    }

    // Lost blocks, in address order as memcheck does: each one not yet
    // claimed heads a clique, and every lost block it reaches (start or
    // interior pointer) is indirect, including earlier heads.
    let mut class: Vec<Class> = (0..blocks.len())
        .map(|k| match (m.state[k], m.runtime[k]) {
            (_, true) => Class::Runtime,
            (State::Reachable, _) => Class::Reachable,
            (State::Possible, _) => Class::Possible,
            (State::Unreached, _) => Class::Definite,
        })
        .collect();
    let mut visited = vec![false; blocks.len()];
    let mut work: Vec<usize> = Vec::new();
    for head in 0..blocks.len() {
        if class[head] != Class::Definite || visited[head] {
            continue;
        }
        visited[head] = true;
        work.push(head);
        while let Some(k) = work.pop() {
            let b = blocks[k];
            let Some(bytes) = mem.bytes(b.addr, b.size & !7) else { continue };
            m.scanned += bytes.len() as u64;
            let (lo, width) = (m.lo, m.width);
            words(bytes, |_, v| {
                if v.wrapping_sub(lo) >= width {
                    return;
                }
                if let Some(j) = m.index.find(v) {
                    if j != head && matches!(class[j], Class::Definite | Class::Indirect) {
                        class[j] = Class::Indirect;
                        if !visited[j] {
                            visited[j] = true;
                            work.push(j);
                        }
                    }
                }
            });
        }
    }
    Marking { blocks: class, regions_reached: m.regions_reached, scanned: m.scanned }
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
