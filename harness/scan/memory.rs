//! A copy of some address ranges of another process, with bounds-checked reads.
//! Everything the heap walker and the marker read goes through here, so a
//! corrupt pointer reads `None`, never out of bounds.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// One copied range.
#[derive(Debug, Clone)]
pub struct Segment {
    pub start: u64,
    pub data: Vec<u8>,
}

impl Segment {
    #[must_use]
    pub fn end(&self) -> u64 {
        self.start + self.data.len() as u64
    }
}

/// Copied ranges, sorted and without overlap. Threads may share it.
#[derive(Debug, Default)]
pub struct Memory {
    segments: Vec<Segment>,
    /// The segment of the last `word_fast` read (a hint: any thread may set it).
    last: AtomicUsize,
}

impl Clone for Memory {
    fn clone(&self) -> Memory {
        Memory { segments: self.segments.clone(), last: AtomicUsize::new(self.last.load(Relaxed)) }
    }
}

impl Memory {
    /// Sorts the segments; overlapping ones (never produced by a snapshot,
    /// possible in a test image) are trimmed to the first.
    #[must_use]
    pub fn new(mut segments: Vec<Segment>) -> Memory {
        segments.sort_by_key(|s| s.start);
        let mut out: Vec<Segment> = Vec::with_capacity(segments.len());
        for s in segments {
            if s.data.is_empty() || s.start.checked_add(s.data.len() as u64).is_none() {
                continue;
            }
            if out.last().is_some_and(|p| p.end() > s.start) {
                continue;
            }
            out.push(s);
        }
        Memory { segments: out, last: AtomicUsize::new(0) }
    }

    #[must_use]
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The index of the segment holding `addr`.
    #[must_use]
    pub fn segment_index(&self, addr: u64) -> Option<usize> {
        let i = self.segments.partition_point(|s| s.start <= addr).checked_sub(1)?;
        (addr < self.segments[i].end()).then_some(i)
    }

    /// `len` bytes at `addr`, when they lie inside one segment.
    #[must_use]
    pub fn bytes(&self, addr: u64, len: u64) -> Option<&[u8]> {
        let s = &self.segments[self.segment_index(addr)?];
        let off = (addr - s.start) as usize;
        let end = off.checked_add(usize::try_from(len).ok()?)?;
        s.data.get(off..end)
    }

    /// The little-endian word at `addr`.
    #[must_use]
    pub fn word(&self, addr: u64) -> Option<u64> {
        let b = self.bytes(addr, 8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    /// Like [`Memory::word`], faster for runs of nearby reads (a linear heap
    /// walk): the last segment found is tried first.
    #[must_use]
    pub fn word_fast(&self, addr: u64) -> Option<u64> {
        let i = self.last.load(Relaxed);
        if let Some(s) = self.segments.get(i) {
            if addr >= s.start && addr.checked_add(8).is_some_and(|e| e <= s.end()) {
                let off = (addr - s.start) as usize;
                return Some(u64::from_le_bytes(s.data[off..off + 8].try_into().ok()?));
            }
        }
        let i = self.segment_index(addr)?;
        self.last.store(i, Relaxed);
        self.word(addr)
    }

    #[must_use]
    pub fn u16_at(&self, addr: u64) -> Option<u16> {
        let b = self.bytes(addr, 2)?;
        Some(u16::from_le_bytes(b.try_into().ok()?))
    }

    #[must_use]
    pub fn contains(&self, addr: u64) -> bool {
        self.segment_index(addr).is_some()
    }
}
