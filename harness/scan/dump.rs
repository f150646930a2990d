//! `leaklab dump --pid N`: the raw [heap] of a process, written to a file as
//! the source article's program does, and shown as a hex view with the
//! printable strings marked.

use std::fmt::Write as _;
use std::path::Path;

use super::snapshot;
use crate::error::Error;

/// The [heap] of a process, copied while it is stopped: (start address, bytes).
pub fn heap_of(pid: i32) -> Result<(u64, Vec<u8>), Error> {
    let snap = snapshot::take(pid)?;
    let heap = snap
        .maps
        .iter()
        .find(|m| m.pseudo() == Some("[heap]"))
        .ok_or_else(|| Error::Inspect { pid, message: "it has no [heap] mapping (it never grew its brk heap)".into() })?;
    let bytes = snap.memory.bytes(heap.start, heap.len()).ok_or_else(|| Error::Inspect { pid, message: "its [heap] could not be copied".into() })?;
    Ok((heap.start, bytes.to_vec()))
}

/// Writes the heap to `out`.
pub fn write(out: &Path, bytes: &[u8]) -> Result<(), Error> {
    std::fs::write(out, bytes).map_err(|e| Error::io(out, e))
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
