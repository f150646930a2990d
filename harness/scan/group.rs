//! What a leak looks like without a stack: leaked blocks grouped by kind,
//! size, C++ type and content, as the source article saw its heap "full of
//! test_memory"; leaked mappings grouped by kind, protection and size.

use std::collections::BTreeMap;

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
    let mut groups: BTreeMap<Key, (u64, Option<String>)> = BTreeMap::new();
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
        let key = Key { kind, size: b.size, type_name, text: text.is_some(), mmapped: b.mmapped };
        let entry = groups.entry(key).or_insert((0, text.clone()));
        entry.0 += 1;
        if let (Some(have), Some(new)) = (&entry.1, &text) {
            entry.1 = Some(common_prefix(have, new));
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
