//! What a leak looks like without a stack: leaked blocks grouped by kind,
//! size, C++ type and content, as the source article saw its heap "full of
//! test_memory"; leaked mappings grouped by kind, protection and size.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use super::glibc::Block;
use super::memory::Memory;
use super::reach::Class;
use super::vtables::Vtables;
use crate::report::{Kind, Leak, Region, RegionKind};

/// The printable string a block starts with (at least 3 characters, ended
/// by a NUL or the block's end), cut to 40 characters.
#[must_use]
pub fn string_prefix(bytes: &[u8]) -> Option<String> {
    let n = bytes.iter().position(|&c| !(c == b'\t' || c == b'\n' || (0x20..0x7f).contains(&c))).unwrap_or(bytes.len());
    if n < 3 || (n < bytes.len() && bytes[n] != 0) {
        return None;
    }
    Some(String::from_utf8_lossy(&bytes[..n.min(40)]).into_owned())
}

fn common_prefix(a: &str, b: &str) -> String {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).map(|(x, _)| x).collect()
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    kind: Kind,
    size: u64,
    type_name: Option<String>,
    text: bool,
    mmapped: bool,
}

/// Groups the blocks the marking did not attribute to the runtime.
#[must_use]
pub fn group_blocks(mem: &Memory, blocks: &[Block], classes: &[Class], vtables: &Vtables) -> Vec<Leak> {
    group_blocks_with(mem, blocks, classes, vtables, 1)
}

/// [`group_blocks`] on up to `threads` threads, each grouping a run of the
/// blocks: a group's count is a sum and its content the common prefix of
/// its blocks' texts, so the merged groups do not depend on the cut.
#[must_use]
pub fn group_blocks_with(mem: &Memory, blocks: &[Block], classes: &[Class], vtables: &Vtables, threads: usize) -> Vec<Leak> {
    let threads = if blocks.len() < PARALLEL_GROUP { 1 } else { threads.max(1) };
    let per = blocks.len().div_ceil(threads).max(1);
    let part = |range: std::ops::Range<usize>| group_part(mem, &blocks[range.clone()], &classes[range], vtables);
    let parts: Vec<Groups> = if threads == 1 {
        vec![part(0..blocks.len().min(classes.len()))]
    } else {
        let n = blocks.len().min(classes.len());
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..n).step_by(per).map(|a| s.spawn(move || part(a..(a + per).min(n)))).collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
        })
    };
    let mut groups: BTreeMap<Key, (u64, Option<String>)> = BTreeMap::new();
    for p in parts {
        for (k, (n, text)) in p.groups {
            let key = Key { kind: k.kind, size: k.size, type_name: k.type_id.map(|i| p.types[i as usize].clone()), text: k.text, mmapped: k.mmapped };
            let entry = groups.entry(key).or_insert((0, text.clone()));
            entry.0 += n;
            if let (Some(have), Some(new)) = (&entry.1, &text) {
                entry.1 = Some(common_prefix(have, new));
            }
        }
    }
    groups
        .into_iter()
        .map(|(k, (n, content))| {
            let mut l = Leak::new(k.kind, k.size * n, n);
            l.api = Some(if k.mmapped { "malloc (mmapped chunk)" } else { "malloc" }.to_string());
            l.type_name = k.type_name;
            l.content = content.filter(|c| !c.is_empty());
            l
        })
        .collect()
}

/// Fewer blocks than this are grouped on one thread.
const PARALLEL_GROUP: usize = 1 << 14;

/// A group's key within one part: the type is an index into the part's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PartKey {
    kind: Kind,
    size: u64,
    type_id: Option<u32>,
    text: bool,
    mmapped: bool,
}

/// The groups of a run of blocks.
struct Groups {
    groups: HashMap<PartKey, (u64, Option<String>), BuildHasherDefault<WordHasher>>,
    types: Vec<String>,
}

fn group_part(mem: &Memory, blocks: &[Block], classes: &[Class], vtables: &Vtables) -> Groups {
    let mut out = Groups { groups: HashMap::default(), types: Vec::new() };
    for (b, c) in blocks.iter().zip(classes) {
        let kind = match c {
            Class::Runtime => continue,
            Class::Reachable => Kind::Reachable,
            Class::Possible => Kind::Possible,
            Class::Indirect => Kind::Indirect,
            Class::Definite => Kind::Definite,
        };
        let type_name = vtables.type_of(b.first);
        // The block's bytes are read only when its first three look like text.
        let printable = |c: u8| c == b'\t' || c == b'\n' || (0x20..0x7f).contains(&c);
        let looks_like_text = b.first.to_le_bytes()[..3].iter().all(|&c| printable(c));
        let text = if type_name.is_none() && looks_like_text {
            mem.bytes(b.addr, b.size.min(256)).and_then(string_prefix)
        } else {
            None
        };
        let type_id = type_name.map(|t| match out.types.iter().position(|x| *x == t) {
            Some(i) => i as u32,
            None => {
                out.types.push(t);
                (out.types.len() - 1) as u32
            }
        });
        let key = PartKey { kind, size: b.size, type_id, text: text.is_some(), mmapped: b.mmapped };
        let entry = out.groups.entry(key).or_insert((0, None));
        entry.0 += 1;
        entry.1 = match (entry.0, entry.1.take(), text) {
            (1, _, new) => new,
            (_, Some(have), Some(new)) => Some(common_prefix(&have, &new)),
            (_, have, _) => have,
        };
    }
    out
}

/// A fast hash of small keys (FxHash's multiply-rotate): the grouping
/// hashes one key per block, where SipHash's resistance to chosen keys buys nothing.
#[derive(Default)]
struct WordHasher(u64);

impl Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }

    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }

    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// A leaked mapping as the report shows it.
#[derive(Debug, Clone)]
pub struct LostMapping {
    pub len: u64,
    pub kind: RegionKind,
    pub perms: String,
    pub path: Option<String>,
}

/// Groups leaked mappings by kind, protection and length.
#[must_use]
pub fn group_regions(lost: &[LostMapping]) -> Vec<Leak> {
    let mut groups: BTreeMap<(RegionKind, String, u64), (u64, Option<String>)> = BTreeMap::new();
    for m in lost {
        let e = groups.entry((m.kind, m.perms.clone(), m.len)).or_insert((0, m.path.clone()));
        e.0 += 1;
        if e.1 != m.path {
            e.1 = None;
        }
    }
    groups
        .into_iter()
        .map(|((kind, perms, len), (n, path))| {
            let mut l = Leak::new(Kind::Definite, len * n, n);
            l.api = Some("mmap".into());
            l.region = Some(Region { kind, flags: Some(perms), path });
            l
        })
        .collect()
}
