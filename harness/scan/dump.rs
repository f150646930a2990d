//! `leaklab dump --pid N`: the raw [heap] of a process, written to a file as
//! the source article's program does, and shown as a hex view with the
//! printable strings marked. An `mprotect` inside the heap splits it into
//! several maps lines (pieces); every piece is written, in address order.

use std::fmt::Write as _;
use std::path::Path;

use super::snapshot::{self, Selection};
use crate::error::Error;

/// One maps line of `[heap]`, and where its bytes are in the dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub start: u64,
    pub end: u64,
    /// Its protection, as /proc/PID/maps prints it (`r--p`).
    pub perms: String,
    /// Where its bytes begin in [`HeapDump::bytes`] (and in the file).
    pub offset: u64,
}

/// The `[heap]` of a process: its pieces in address order, their bytes one
/// after the other.
#[derive(Debug, Clone)]
pub struct HeapDump {
    pub pieces: Vec<Piece>,
    pub bytes: Vec<u8>,
    /// Bytes no read could get (zeros in the dump).
    pub unreadable: u64,
}

impl HeapDump {
    /// The address of the heap's first byte.
    #[must_use]
    pub fn start(&self) -> u64 {
        self.pieces.first().map_or(0, |p| p.start)
    }
}

/// The [heap] of a process, copied while it is stopped: every piece, and
/// only the heap (read-only and inaccessible pieces included).
pub fn heap_of(pid: i32) -> Result<HeapDump, Error> {
    let snap = snapshot::take_selected(pid, Selection::Heap)?;
    let mut pieces = Vec::new();
    let mut bytes = Vec::new();
    for m in snap.maps.iter().filter(|m| m.pseudo() == Some("[heap]")) {
        let data = snap.memory.bytes(m.start, m.len()).ok_or_else(|| Error::Inspect { pid, message: format!("its [heap] piece at {:#x} could not be copied", m.start) })?;
        pieces.push(Piece { start: m.start, end: m.end, perms: m.perms.clone(), offset: bytes.len() as u64 });
        bytes.extend_from_slice(data);
    }
    if pieces.is_empty() {
        return Err(Error::Inspect { pid, message: "it has no [heap] mapping (it never grew its brk heap; an allocator other than glibc's may use mmap only)".into() });
    }
    Ok(HeapDump { pieces, bytes, unreadable: snap.unreadable_bytes })
}

/// Writes the heap to `out`.
pub fn write(out: &Path, bytes: &[u8]) -> Result<(), Error> {
    std::fs::write(out, bytes).map_err(|e| Error::io(out, e))
}

/// The hex view of every piece, each under a line that says which piece it
/// is, its addresses and protection, and where it starts in the file;
/// `max_lines` bounds the hex lines of all pieces together.
#[must_use]
pub fn pieces_view(dump: &HeapDump, max_lines: usize) -> String {
    let mut out = String::new();
    let mut left = max_lines;
    let n = dump.pieces.len();
    for (i, p) in dump.pieces.iter().enumerate() {
        if n > 1 {
            let _ = writeln!(
                out,
                "[heap] piece {} of {n}: {:#x}-{:#x} {} ({} bytes, at offset {:#x} of the file)",
                i + 1,
                p.start,
                p.end,
                p.perms,
                p.end - p.start,
                p.offset
            );
        }
        let from = p.offset as usize;
        let view = hex_view(p.start, &dump.bytes[from..from + (p.end - p.start) as usize], left);
        left = left.saturating_sub(view.lines().filter(|l| l.len() > 12 && l.as_bytes()[0].is_ascii_hexdigit()).count());
        out.push_str(&view);
    }
    out
}


/// A hex view: 16 bytes a line, address, hex, and ASCII where runs of 4 or
/// more printable bytes (strings) are shown and marked with `«»` in the
/// margin; lines of zeros are folded into one `*` line as hexdump does.
#[must_use]
pub fn hex_view(start: u64, bytes: &[u8], max_lines: usize) -> String {
    let printable = |c: u8| (0x20..0x7f).contains(&c);
    // Which bytes are part of a string of 4 or more printable characters.
    let mut in_string = vec![false; bytes.len()];
    let mut i = 0;
    while i < bytes.len() {
        let j = (i..bytes.len()).find(|&k| !printable(bytes[k])).unwrap_or(bytes.len());
        if j - i >= 4 {
            in_string[i..j].iter_mut().for_each(|b| *b = true);
        }
        i = j.max(i + 1);
    }
    let mut out = String::new();
    let mut lines = 0;
    let mut folded = false;
    for (n, line) in bytes.chunks(16).enumerate() {
        if line.iter().all(|&b| b == 0) {
            if !folded {
                out.push_str("*\n");
                folded = true;
            }
            continue;
        }
        folded = false;
        if lines == max_lines {
            let _ = writeln!(out, "... ({} more bytes; the file has all of it)", bytes.len() - n * 16);
            break;
        }
        lines += 1;
        let base = n * 16;
        let _ = write!(out, "{:012x}  ", start + base as u64);
        for k in 0..16 {
            match line.get(k) {
                Some(b) => {
                    let _ = write!(out, "{b:02x}{}", if k == 7 { "  " } else { " " });
                }
                None => out.push_str(if k == 7 { "    " } else { "   " }),
            }
        }
        out.push('|');
        for (k, &b) in line.iter().enumerate() {
            out.push(if in_string[base + k] { b as char } else { '.' });
        }
        out.push('|');
        if line.iter().enumerate().any(|(k, _)| in_string[base + k]) {
            out.push_str(" «string»");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn marks_strings_and_folds_zeros() {
        let mut bytes = vec![0u8; 64];
        bytes[16..27].copy_from_slice(b"test_memory");
        bytes[40] = b'x';
        let v = super::hex_view(0x1000, &bytes, 100);
        assert!(v.starts_with("*\n"));
        assert!(v.contains("|test_memory.....| «string»"));
        assert!(v.contains("000000001020"));
        assert!(!v.lines().nth(2).unwrap().contains("string"));
    }
}
