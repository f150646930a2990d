//! valgrind's four kinds for the hook's blocks: a conservative mark over a
//! memory snapshot of the process, with the hook's exact blocks (address
//! and requested size from its table) rather than a guess from the heap's
//! shape, and roots from `scan::roots` (the same roots as the ptrace scan).
//! The shim's own tables and data are neither roots nor blocks; its
//! start-up arena (dlsym's allocations) is the runtime's.

use std::time::{Duration, Instant};

use super::table::Table;
use crate::report::Kind;
use crate::scan::glibc::Block;
use crate::scan::reach::{self, Class};
use crate::scan::snapshot::Snapshot;
use crate::scan::{self, vtables, HeapView, StopPoint};

/// The kind of each block and mapping of a table; `None`: only the C/C++
/// runtime holds it (stdio buffers, a thread's DTV, libstdc++'s pool), not
/// reported, as memcheck frees it before its leak check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kinds {
    /// In the order of `table.dump.blocks`.
    pub blocks: Vec<Option<Kind>>,
    /// In the order of `table.dump.regions`.
    pub regions: Vec<Option<Kind>>,
    /// Bytes scanned for pointers, and the time the classification took.
    pub scanned: u64,
    pub elapsed: Duration,
}

/// glibc's chunk header bit for a chunk that is a mapping of its own.
const IS_MMAPPED: u64 = 2;

/// Whether the block at `addr` is one of glibc's mmapped chunks: its header
/// says so and the chunk (less its alignment padding, kept in prev_size)
/// starts a page. Under another allocator the test simply fails.
fn mmapped_chunk(snap: &Snapshot, addr: u64) -> Option<(u64, u64)> {
    let size = snap.memory.word(addr.checked_sub(8)?)?;
    let pad = snap.memory.word(addr - 16)?;
    let chunk = addr - 16;
    (size & IS_MMAPPED != 0 && chunk.checked_sub(pad)? % 4096 == 0 && size & !7 > 0).then(|| (chunk - pad, chunk + (size & !7)))
}

/// The next chunk's header when it lies inside the block's requested
/// bytes: glibc's usable size includes the next chunk's first word, and the
/// allocator's own pointers (main_arena's `top`, a bin) point there.
fn chunk_boundary(snap: &Snapshot, b: &Block) -> Option<u64> {
    // `chunk` is what malloc returned to the shim, which put its header
    // (and the user's block) after it.
    let size = snap.memory.word(b.chunk.checked_sub(8)?)?;
    if size & IS_MMAPPED != 0 {
        return None;
    }
    let next = (b.chunk - 16).checked_add(size & !7)?;
    (next >= b.addr && next < b.end()).then_some(next)
}

/// Ranges of `r` outside `holes` (sorted).
fn without(r: (u64, u64), holes: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut a = r.0;
    for &(s, e) in holes {
        if e <= a || s >= r.1 {
            continue;
        }
        if s > a {
            out.push((a, s));
        }
        a = a.max(e);
    }
    if a < r.1 {
        out.push((a, r.1));
    }
    out
}

/// Classifies every block and mapping of `table` in `snap`.
#[must_use]
pub fn classify(snap: &Snapshot, table: &Table, stop: StopPoint) -> Kinds {
    let started = Instant::now();
    let dump = &table.dump;
    // The table is sorted by address (table::read); a zero-byte block still
    // owns its address, as memcheck counts a pointer to it.
    let blocks: Vec<Block> = dump
        .blocks
        .iter()
        .map(|b| Block { chunk: b.base, addr: b.addr, size: b.size.max(1), mmapped: false, first: snap.memory.word(b.addr).unwrap_or(0) })
        .collect();
    let overlaps_block = |s: u64, e: u64| {
        let i = blocks.partition_point(|b| b.end() <= s);
        blocks.get(i).is_some_and(|b| b.addr < e)
    };

    let mut mmapped = Vec::new();
    let mut heaps: Vec<(u64, u64)> = Vec::new();
    for b in &blocks {
        let in_brk = snap.maps.iter().any(|m| m.contains(b.addr) && m.pseudo() == Some("[heap]"));
        if in_brk {
            continue;
        }
        if let Some(r) = mmapped_chunk(snap, b.chunk) {
            mmapped.push(r);
        } else if let Some(m) = snap.maps.iter().find(|m| m.contains(b.addr)) {
            // An arena heap of glibc's (or another allocator's extent).
            if heaps.last() != Some(&(m.start, m.end)) && !heaps.contains(&(m.start, m.end)) {
                heaps.push((m.start, m.end));
            }
        }
    }
    mmapped.sort_unstable();
    mmapped.dedup();

    // The shim's own memory: its tables, and its .data/.bss except the arena.
    let mut excluded: Vec<(u64, u64)> = table.own.clone();
    for &d in &table.shim_data {
        excluded.extend(without(d, &[table.arena]));
    }
    excluded.sort_unstable();

    // The mappings the program made, that the shim recorded: sorted,
    // disjoint, and apart from blocks and the shim's own memory.
    let mut region_order: Vec<usize> = (0..dump.regions.len()).collect();
    region_order.sort_by_key(|&i| dump.regions[i].addr);
    let mut regions: Vec<(u64, u64)> = Vec::new();
    let mut region_slot: Vec<Option<usize>> = vec![None; dump.regions.len()];
    for &i in &region_order {
        let r = &dump.regions[i];
        let (s, e) = (r.addr, r.addr + r.len);
        let clashes = regions.last().is_some_and(|p| p.1 > s) || overlaps_block(s, e) || excluded.iter().any(|x| x.0 < e && s < x.1);
        if r.len == 0 || clashes {
            continue;
        }
        region_slot[i] = Some(regions.len());
        regions.push((s, e));
    }

    let view = HeapView { heaps, mmapped, excluded, regions: Some(regions), runtime: vec![table.arena] };
    let rootset = scan::roots(snap, &view, stop);
    let mut options = reach::MarkOptions { runtime_ignored: blocks.iter().filter_map(|b| chunk_boundary(snap, b)).collect(), ..Default::default() };
    options.runtime_ignored.sort_unstable();
    // roots() keeps the regions that lie in a mapping of the snapshot; find
    // each record's place among them.
    let region_slot: Vec<Option<usize>> = region_slot
        .iter()
        .enumerate()
        .map(|(i, slot)| slot.and_then(|_| rootset.candidates.binary_search(&(dump.regions[i].addr, dump.regions[i].addr + dump.regions[i].len)).ok()))
        .collect();
    let vt = vtables::Vtables::new(&snap.maps);
    let vtable_like = |w: u64| vt.vtable_like(w);
    let marking = reach::mark_with(&snap.memory, &blocks, &rootset.candidates, &rootset.roots, &vtable_like, &options);

    if std::env::var_os("LEAKLAB_HOOK_DEBUG").is_some() {
        for (b, c) in blocks.iter().zip(&marking.blocks) {
            eprintln!("block {:#x} {} {:?}", b.addr, b.size, c);
        }
        for (what, ranges) in [("runtime", &rootset.roots.runtime), ("program", &rootset.roots.program)] {
            for r in ranges {
                eprintln!("{what} root {:#x}-{:#x}", r.start, r.end);
                let mut a = r.start & !7;
                while a < r.end {
                    if let Some(w) = snap.memory.word(a) {
                        if let Some((b, c)) = blocks.iter().zip(&marking.blocks).find(|(b, _)| w >= b.addr && w < b.end()) {
                            eprintln!("   {a:#x} -> {w:#x} (block {:#x} {:?})", b.addr, c);
                        }
                    }
                    a += 8;
                }
            }
        }
        for t in &snap.threads {
            eprintln!("thread {} sp {:#x} regs {:x?}", t.tid, t.sp, t.regs);
        }
    }
    let kinds = marking
        .blocks
        .iter()
        .map(|c| match c {
            Class::Runtime => None,
            Class::Reachable => Some(Kind::Reachable),
            Class::Possible => Some(Kind::Possible),
            Class::Indirect => Some(Kind::Indirect),
            Class::Definite => Some(Kind::Definite),
        })
        .collect();
    let region_kinds = region_slot
        .iter()
        .map(|slot| match slot {
            Some(k) if marking.regions_reached[*k] => Some(Kind::Reachable),
            // A mapping nothing points into is lost; one the shim could not
            // place apart from the rest is reported as such rather than dropped.
            Some(_) => Some(Kind::Definite),
            None => Some(Kind::Unclassified),
        })
        .collect();
    Kinds { blocks: kinds, regions: region_kinds, scanned: marking.scanned, elapsed: started.elapsed() }
}
