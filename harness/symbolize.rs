//! Turning return addresses of a process into frames (function, file, line),
//! given the process's /proc/PID/maps: each address is mapped to its module
//! and to the module's own (link-time) address through the module's ELF
//! program headers, then looked up in DWARF (addr2line) or, without DWARF,
//! in the symbol table. Separate debug info is found by build-id under
//! /usr/lib/debug/.build-id/ (Debian's `-dbg` packages, e.g. libc6-dbg)
//! or through .gnu_debuglink.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSegment, ObjectSymbol};

use crate::error::Error;
use crate::report::Frame;

/// One line of /proc/PID/maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    pub start: u64,
    pub end: u64,
    /// `r-xp`, `rw-s`, ...
    pub perms: String,
    pub offset: u64,
    /// The backing file, `[heap]`, `[stack]`, ...; None for anonymous memory.
    pub path: Option<String>,
}

impl MapEntry {
    /// Parses `start-end perms offset dev inode [path]`.
    pub fn parse(line: &str) -> Option<MapEntry> {
        let mut it = line.splitn(6, ' ');
        let (start, end) = it.next()?.split_once('-')?;
        let perms = it.next()?.to_string();
        let offset = u64::from_str_radix(it.next()?, 16).ok()?;
        let _dev = it.next()?;
        let _inode = it.next()?;
        let path = it.next().map(str::trim).filter(|p| !p.is_empty()).map(str::to_string);
        Some(MapEntry { start: u64::from_str_radix(start, 16).ok()?, end: u64::from_str_radix(end, 16).ok()?, perms, offset, path })
    }

    /// The backing file as a path on disk (not `[heap]`, not a deleted file).
    #[must_use]
    pub fn file(&self) -> Option<&str> {
        self.path.as_deref().filter(|p| p.starts_with('/') && !p.ends_with(" (deleted)"))
    }
}

/// A loaded module: where its segments are in the file and at link time.
struct Module {
    /// (file offset, link-time address, size in the file) of each PT_LOAD.
    segments: Vec<(u64, u64, u64)>,
    dwarf: Option<addr2line::Loader>,
    /// (address, size, name), sorted by address.
    symbols: Vec<(u64, u64, String)>,
}

/// Symbolizes addresses of one process image.
pub struct Symbolizer {
    maps: Vec<MapEntry>,
    modules: HashMap<String, Option<Module>>,
    debug_root: PathBuf,
}

impl Symbolizer {
    #[must_use]
    pub fn new(maps: Vec<MapEntry>) -> Symbolizer {
        Symbolizer { maps, modules: HashMap::new(), debug_root: PathBuf::from("/usr/lib/debug") }
    }

    /// Symbolizes another image of the same programs (a forked child, a
    /// later dump): the maps change, the loaded modules are kept.
    pub fn set_maps(&mut self, maps: Vec<MapEntry>) {
        self.maps = maps;
    }

    /// The frames of a return address, innermost (inlined) first. Return
    /// addresses point after the call: the call's line is that of `pc - 1`.
    pub fn frames(&mut self, pc: u64) -> Vec<Frame> {
        let Some(entry) = self.maps.iter().find(|m| m.start <= pc && pc < m.end) else {
            return vec![Frame::default()];
        };
        let Some(file) = entry.file().map(str::to_string) else {
            return vec![Frame { object: entry.path.clone(), ..Frame::default() }];
        };
        let file_offset = pc - entry.start + entry.offset;
        let svma = self.module(&file).and_then(|m| m.link_address(file_offset));
        match svma {
            Some(svma) => self.frames_in(&file, svma),
            None => vec![Frame { object: Some(file), ..Frame::default() }],
        }
    }

    /// The frames of a return address given as a module and the module's
    /// own (link-time) address, as tools that log `module+offset` give it
    /// (glibc's mtrace, heaptrack's load bases); no maps are needed.
    pub fn frames_in(&mut self, file: &str, svma: u64) -> Vec<Frame> {
        let object = Some(file.to_string());
        let Some(module) = self.module(file) else {
            return vec![Frame { object, ..Frame::default() }];
        };
        let probe = svma.saturating_sub(1);
        let mut out = Vec::new();
        if let Some(dwarf) = &module.dwarf {
            if let Ok(mut frames) = dwarf.find_frames(probe) {
                while let Ok(Some(f)) = frames.next() {
                    let function = f.function.as_ref().and_then(|n| n.demangle().ok()).map(|n| n.into_owned());
                    let (file, line) = match &f.location {
                        Some(loc) => (loc.file.map(str::to_string), loc.line),
                        None => (None, None),
                    };
                    out.push(Frame { function, file, line, object: object.clone() });
                }
            }
        }
        if out.is_empty() || out.iter().all(|f| f.function.is_none()) {
            let function = module.symbol(probe).map(demangle);
            match out.first_mut() {
                Some(first) => first.function = function,
                None => out.push(Frame { function, file: None, line: None, object }),
            }
        }
        out
    }

    fn module(&mut self, file: &str) -> Option<&Module> {
        let debug_root = &self.debug_root;
        self.modules.entry(file.to_string()).or_insert_with(|| Module::load(Path::new(file), debug_root).ok()).as_ref()
    }

    /// The frames of a whole stack of return addresses.
    pub fn stack(&mut self, pcs: &[u64]) -> Vec<Frame> {
        pcs.iter().flat_map(|&pc| self.frames(pc)).collect()
    }

    /// The map entry that contains an address.
    #[must_use]
    pub fn entry(&self, addr: u64) -> Option<&MapEntry> {
        self.maps.iter().find(|m| m.start <= addr && addr < m.end)
    }
}

impl Module {
    fn load(path: &Path, debug_root: &Path) -> Result<Module, Error> {
        let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let obj = object::File::parse(&*data).map_err(|e| Error::MalformedOutput { tool: path.display().to_string(), message: e.to_string() })?;
        let segments = obj
            .segments()
            .map(|s| {
                let (off, size) = s.file_range();
                (off, s.address(), size)
            })
            .collect();
        let debug_file = separate_debug_file(&obj, path, debug_root);
        let has_dwarf = obj.section_by_name(".debug_info").is_some();
        let dwarf_path = match (&debug_file, has_dwarf) {
            (Some(d), _) => Some(d.clone()),
            (None, true) => Some(path.to_path_buf()),
            (None, false) => None,
        };
        let dwarf = dwarf_path.and_then(|p| addr2line::Loader::new(&p).ok());
        // The symbol table of the debug file is complete (.symtab); the
        // stripped module itself only has its exported symbols.
        let mut symbols = match &debug_file {
            Some(d) => std::fs::read(d).ok().and_then(|bytes| object::File::parse(&*bytes).ok().map(|o| symbol_table(&o))).unwrap_or_default(),
            None => Vec::new(),
        };
        if symbols.is_empty() {
            symbols = symbol_table(&obj);
        }
        Ok(Module { segments, dwarf, symbols })
    }

    fn link_address(&self, file_offset: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|&&(off, _, size)| off <= file_offset && file_offset < off + size.max(1))
            .map(|&(off, addr, _)| file_offset - off + addr)
    }

    fn symbol(&self, addr: u64) -> Option<&str> {
        let i = self.symbols.partition_point(|s| s.0 <= addr);
        let (start, size, name) = self.symbols.get(i.checked_sub(1)?)?;
        // A symbol without a size may only name the address it starts at.
        (addr < start + (*size).max(1)).then_some(name.as_str())
    }
}

fn symbol_table(obj: &object::File) -> Vec<(u64, u64, String)> {
    let mut symbols: Vec<(u64, u64, String)> = obj
        .symbols()
        .chain(obj.dynamic_symbols())
        .filter(|s| s.kind() == object::SymbolKind::Text && s.address() != 0)
        .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?.to_string())))
        .filter(|(_, _, n)| !n.is_empty())
        .collect();
    symbols.sort();
    symbols.dedup_by_key(|s| s.0);
    symbols
}

/// /usr/lib/debug/.build-id/xx/yyyy.debug, or the .gnu_debuglink file next
/// to the module or under /usr/lib/debug.
fn separate_debug_file(obj: &object::File, path: &Path, root: &Path) -> Option<PathBuf> {
    if let Ok(Some(id)) = obj.build_id() {
        if id.len() > 1 {
            let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
            let candidate = root.join(".build-id").join(&hex[..2]).join(format!("{}.debug", &hex[2..]));
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    if let Ok(Some((name, _crc))) = obj.gnu_debuglink() {
        let name = String::from_utf8_lossy(name).into_owned();
        let dir = path.parent().unwrap_or(Path::new("/"));
        let rel = dir.strip_prefix("/").unwrap_or(dir);
        for candidate in [dir.join(&name), dir.join(".debug").join(&name), root.join(rel).join(&name)] {
            if candidate.is_file() && candidate != path {
                return Some(candidate);
            }
        }
    }
    None
}

/// A symbol's name as a person reads it: only an Itanium C++ mangling
/// (`_Z...`) is demangled. Any other name is a C (or assembly) name and is
/// kept: a demangler reading `a` or `b` as a mangled *type* would turn the
/// C function `a` into "signed char" and `b` into "bool".
#[must_use]
pub fn demangle(name: &str) -> String {
    if name.starts_with("_Z") {
        if let Some(text) = cpp_demangle::Symbol::new(name.as_bytes()).ok().and_then(|s| s.demangle().ok()) {
            return text;
        }
    }
    name.to_string()
}
