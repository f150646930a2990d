//! Naming C++ objects by their vtable pointer: the first word of a polymorphic
//! object points 16 bytes into a `_ZTV…` symbol (past offset-to-top and the
//! typeinfo pointer) of the module that defines the class. Module symbol
//! tables are read with `object` only when a block points into that module.

use std::sync::Mutex;
use std::collections::HashMap;

use object::{Object, ObjectSegment, ObjectSymbol};

use super::maps::Mapping;

struct Module {
    path: String,
    /// Its read-only, non-executable mappings (where vtables live after RELRO).
    ro: Vec<(u64, u64)>,
    /// The address of its first mapping (file offset 0).
    first: u64,
}

/// A module's vtables: (start, end, class name), sorted.
type VtableList = Vec<(u64, u64, String)>;

/// Vtable symbols of the loaded modules, read on demand.
pub struct Vtables {
    modules: Vec<Module>,
    /// Bounds of all read-only module ranges: a quick rejection.
    lo: u64,
    hi: u64,
    /// Per module, read on first use (behind a lock: the marking's threads share a `Vtables`).
    loaded: Mutex<HashMap<usize, VtableList>>,
}

impl Vtables {
    /// The modules of a process: files that have an executable mapping.
    #[must_use]
    pub fn new(maps: &[Mapping]) -> Vtables {
        let mut modules: Vec<Module> = Vec::new();
        for m in maps.iter().filter(|m| m.executable()) {
            let Some(path) = m.file() else { continue };
            if modules.iter().any(|x| x.path == path) {
                continue;
            }
            let of_path: Vec<&Mapping> = maps.iter().filter(|x| x.file() == Some(path)).collect();
            let Some(first) = of_path.iter().find(|x| x.offset == 0).map(|x| x.start) else { continue };
            let ro = of_path.iter().filter(|x| x.readable() && !x.writable() && !x.executable()).map(|x| (x.start, x.end)).collect();
            modules.push(Module { path: path.to_string(), ro, first });
        }
        let lo = modules.iter().flat_map(|m| m.ro.iter().map(|r| r.0)).min().unwrap_or(u64::MAX);
        let hi = modules.iter().flat_map(|m| m.ro.iter().map(|r| r.1)).max().unwrap_or(0);
        Vtables { modules, lo, hi, loaded: Mutex::new(HashMap::new()) }
    }

    fn module_of(&self, ptr: u64) -> Option<usize> {
        if ptr < self.lo || ptr >= self.hi {
            return None;
        }
        self.modules.iter().position(|m| m.ro.iter().any(|&(s, e)| s <= ptr && ptr < e))
    }

    /// Whether a word looks like a vtable pointer: it points into a module's read-only data.
    #[must_use]
    pub fn vtable_like(&self, ptr: u64) -> bool {
        ptr.is_multiple_of(8) && self.module_of(ptr).is_some()
    }

    /// The class whose vtable `ptr` points into, demangled (`Circle`).
    #[must_use]
    pub fn type_of(&self, ptr: u64) -> Option<String> {
        if !ptr.is_multiple_of(8) {
            return None;
        }
        let k = self.module_of(ptr)?;
        let mut loaded = self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let table = loaded.entry(k).or_insert_with(|| read_vtables(&self.modules[k]).unwrap_or_default());
        let i = table.partition_point(|v| v.0 <= ptr).checked_sub(1)?;
        let (s, e, name) = &table[i];
        // The first vtable pointer of an object points past the two header words.
        (ptr >= s + 16 && ptr < *e).then(|| name.clone())
    }
}

fn read_vtables(m: &Module) -> Option<VtableList> {
    let data = std::fs::read(&m.path).ok()?;
    let file = object::File::parse(&*data).ok()?;
    let low = file.segments().map(|s| s.address()).min()? & !0xfff;
    let base = m.first.wrapping_sub(low);
    let mut out: VtableList = file
        .symbols()
        .chain(file.dynamic_symbols())
        .filter_map(|s| {
            let name = s.name().ok()?;
            let class = name.strip_prefix("_ZTV")?;
            if s.size() == 0 {
                return None;
            }
            let demangled = cpp_demangle::Symbol::new(name.as_bytes()).ok()?.demangle().ok()?;
            let class_name = class_of_vtable(&demangled).unwrap_or(class).to_string();
            let start = base.wrapping_add(s.address());
            Some((start, start + s.size(), class_name))
        })
        .collect();
    out.sort();
    out.dedup_by_key(|v| v.0);
    Some(out)
}

/// The class of a demangled vtable symbol: cpp_demangle writes `_ZTV6Circle`
/// as `{vtable(Circle)}`, c++filt as `vtable for Circle`.
fn class_of_vtable(demangled: &str) -> Option<&str> {
    demangled
        .strip_prefix("{vtable(")
        .and_then(|r| r.strip_suffix(")}"))
        .or_else(|| demangled.strip_prefix("vtable for "))
}

#[cfg(test)]
mod tests {
    #[test]
    fn vtable_names() {
        let d = cpp_demangle::Symbol::new(&b"_ZTV6Circle"[..]).unwrap().demangle().unwrap();
        assert_eq!(super::class_of_vtable(&d), Some("Circle"));
        let d = cpp_demangle::Symbol::new(&b"_ZTVN5shape6CircleE"[..]).unwrap().demangle().unwrap();
        assert_eq!(super::class_of_vtable(&d), Some("shape::Circle"));
        assert_eq!(super::class_of_vtable("vtable for Square"), Some("Square"));
        assert_eq!(super::class_of_vtable("typeinfo for Square"), None);
    }
}
