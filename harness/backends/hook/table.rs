//! Reading the shim's published table (harness/hook/README.md, "The table")
//! out of a memory snapshot of the process: the descriptor
//! `leaklab_hook_table`, found by its dynamic symbol in the mapped
//! libleaklab_hook.so, points to the live blocks' entries (each with its
//! stack; size and api are in the header the shim put before the block), the stacks, the
//! mappings, the bad frees, the shim's own mappings and the maps of
//! modules unloaded by dlclose. Everything is read through
//! `Memory`'s bounds-checked reads: a torn or corrupt table gives an error
//! or fewer records, never a crash.

use object::{Object, ObjectSymbol};

use super::{Dump, DumpBadFree, DumpBlock, DumpRegion};
use crate::error::Error;
use crate::maps::Mapping;
use crate::report::{BadFreeKind, RegionKind};
use crate::scan::memory::Memory;
use crate::symbolize::MapEntry;

/// The descriptor's symbol and the version this reader knows.
pub const SYMBOL: &str = "leaklab_hook_table";
pub const MAGIC: &[u8; 8] = b"LLHOOKT\0";
pub const VERSION: u32 = 3;
/// The shim's file name, as it appears in /proc/PID/maps.
pub const SHIM_FILE_NAME: &str = "libleaklab_hook.so";

// Version 3's record layouts (the shim's _Static_asserts keep them).
const ENTRY_SIZE: u64 = 16;
const HEADER_SIZE: u64 = 16;
const STACK_HEADER: u64 = 16;
const MAX_FRAMES: u64 = 24;
const REGION_SIZE: u64 = 40 + 8 * MAX_FRAMES;
const BAD_FREE_SIZE: u64 = 24 + 16 * MAX_FRAMES;
/// More than this many records in one table is a corrupt count.
const SANE_COUNT: u64 = 1 << 28;

const BLOCK_APIS: [&str; 13] = [
    "malloc", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc", "memalign", "valloc", "pvalloc", "new", "new[]",
    "new(align)", "new[](align)",
];
const REGION_APIS: [&str; 3] = ["mmap", "mmap64", "mremap"];
const DEALLOCS: [&str; 6] = ["free", "realloc", "delete", "delete[]", "delete(align)", "delete[](align)"];

/// The shim's tables of one process, and where its own memory is.
#[derive(Debug, Clone)]
pub struct Table {
    /// The records, in the dump's model (maps from the snapshot).
    pub dump: Dump,
    /// The shim's own mappings (its tables): never roots, never leaks. Sorted.
    pub own: Vec<(u64, u64)>,
    /// The shim's static arena, which serves dlsym's allocations at start-up:
    /// the runtime's data, a root of the runtime.
    pub arena: (u64, u64),
    /// The shim module's writable mappings (.data, .bss): not roots.
    pub shim_data: Vec<(u64, u64)>,
}

/// Why a process has no table: the shim is not in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// libleaklab_hook.so is not mapped (LD_PRELOAD was dropped, or a static program).
    NotLoaded,
}

fn corrupt(what: impl Into<String>) -> Error {
    Error::MalformedOutput { tool: "the hook shim's table".into(), message: what.into() }
}

/// Where the shim is in a process: the descriptor's address and the shim's
/// writable segments (.data and .bss, from its program headers: the
/// kernel may merge the .bss with a neighbouring anonymous mapping).
#[derive(Debug, Clone)]
pub struct Located {
    pub descriptor: u64,
    pub path: String,
    pub data: Vec<(u64, u64)>,
}

/// Finds the shim's descriptor: the shim's load base plus the symbol's
/// link-time address (a shared object's lowest PT_LOAD is at file offset 0).
pub fn locate(maps: &[Mapping]) -> Result<Option<Located>, Error> {
    let Some(first) = maps
        .iter()
        .find(|m| m.offset == 0 && m.file().is_some_and(|p| p.rsplit('/').next() == Some(SHIM_FILE_NAME)))
    else {
        return Ok(None);
    };
    let path = first.file().expect("a file mapping").to_string();
    let data = std::fs::read(&path).map_err(|e| Error::io(std::path::Path::new(&path), e))?;
    let obj = object::File::parse(&*data).map_err(|e| corrupt(format!("{path}: {e}")))?;
    let sym = obj
        .dynamic_symbols()
        .chain(obj.symbols())
        .find(|s| s.name() == Ok(SYMBOL))
        .ok_or_else(|| corrupt(format!("{path} has no symbol {SYMBOL}: an older shim")))?;
    let elf = object::read::elf::ElfFile64::<object::Endianness>::parse(&*data).map_err(|e| corrupt(format!("{path}: {e}")))?;
    use object::read::elf::ProgramHeader;
    let endian = elf.endian();
    let loads: Vec<_> = elf.elf_program_headers().iter().filter(|p| p.p_type(endian) == object::elf::PT_LOAD).collect();
    let lowest = loads.iter().map(|p| p.p_vaddr(endian)).min().unwrap_or(0) & !4095;
    let base = first.start - lowest;
    let writable = loads
        .iter()
        .filter(|p| p.p_flags(endian) & object::elf::PF_W != 0)
        .map(|p| {
            let start = base + p.p_vaddr(endian);
            ((start) & !4095, (start + p.p_memsz(endian) + 4095) & !4095)
        })
        .collect();
    Ok(Some(Located { descriptor: base + sym.address(), path, data: writable }))
}

struct Reader<'a> {
    mem: &'a Memory,
}

impl Reader<'_> {
    fn word(&self, addr: u64, what: &str) -> Result<u64, Error> {
        self.mem.word(addr).ok_or_else(|| corrupt(format!("{what} at {addr:#x} is not in the copied memory")))
    }
    fn u32(&self, addr: u64, what: &str) -> Result<u32, Error> {
        let b = self.mem.bytes(addr, 4).ok_or_else(|| corrupt(format!("{what} at {addr:#x} is not in the copied memory")))?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
    fn pcs(&self, at: u64, depth: u64) -> Vec<u64> {
        (0..depth.min(MAX_FRAMES)).map_while(|i| self.mem.word(at + 8 * i)).collect()
    }
    /// A stack record's return addresses.
    fn stack(&self, addr: u64) -> Vec<u64> {
        if addr == 0 {
            return Vec::new();
        }
        let Some(b) = self.mem.bytes(addr + 8, 4) else { return Vec::new() };
        let depth = u64::from(u32::from_le_bytes(b.try_into().expect("4 bytes")));
        self.pcs(addr + STACK_HEADER, depth)
    }
}

/// Reads the table of process `pid` from its snapshot (`mem`, `maps`).
/// `Ok(Err(Missing))` when the shim is not loaded in it.
pub fn read(pid: u32, reason: &str, mem: &Memory, maps: &[Mapping]) -> Result<Result<Table, Missing>, Error> {
    let Some(located) = locate(maps)? else { return Ok(Err(Missing::NotLoaded)) };
    let desc = located.descriptor;
    let r = Reader { mem };
    let magic = mem.bytes(desc, 8).ok_or_else(|| corrupt(format!("the descriptor at {desc:#x} was not copied")))?;
    if magic != MAGIC {
        return Err(corrupt(format!("the descriptor at {desc:#x} has no magic number")));
    }
    let version = r.u32(desc + 8, "version")?;
    if version != VERSION {
        return Err(corrupt(format!("table version {version}; this leaklab reads version {VERSION}")));
    }
    let f32 = |i: u64| r.u32(desc + 16 + 4 * i, "descriptor field");
    let (entry_size, header_size, chunk_entries, max_chunks) = (f32(0)?, f32(1)?, u64::from(f32(2)?), u64::from(f32(3)?));
    let (stack_slots, stack_header) = (u64::from(f32(4)?), f32(5)?);
    let layout = [entry_size, header_size, stack_header, f32(6)?, f32(7)?, f32(8)?];
    let expected = [ENTRY_SIZE, HEADER_SIZE, STACK_HEADER, REGION_SIZE, BAD_FREE_SIZE, MAX_FRAMES].map(|v| v as u32);
    if layout != expected {
        return Err(corrupt(format!("record sizes {layout:?}, expected {expected:?}: a shim of another build")));
    }
    if chunk_entries == 0 || chunk_entries > 1 << 20 || max_chunks > 1 << 20 {
        return Err(corrupt(format!("{max_chunks} chunks of {chunk_entries} entries")));
    }
    // Pointers start after 16 bytes of header and 10 u32 fields.
    let ptr = |i: u64, what: &str| r.word(desc + 56 + 8 * i, what);
    let chunks = ptr(0, "chunks")?;
    let nchunks = r.word(ptr(1, "nchunks")?, "the chunk count")?;
    if nchunks > max_chunks {
        return Err(corrupt(format!("{nchunks} entry chunks, at most {max_chunks}")));
    }
    let stacks = r.word(ptr(2, "stacks")?, "the stack slots pointer")?;

    let mut dump = Dump {
        pid,
        reason: reason.to_string(),
        blocks: Vec::new(),
        regions: Vec::new(),
        bad_frees: Vec::new(),
        dropped_regions: 0,
        dropped_errors: 0,
        dropped_stacks: 0,
        maps: maps_entries(maps),
        map_lines: maps.len(),
    };
    for c in 0..nchunks {
        let chunk = r.word(chunks + 8 * c, "an entry chunk pointer")?;
        if chunk == 0 {
            continue;
        }
        let bytes = mem
            .bytes(chunk, chunk_entries * ENTRY_SIZE)
            .ok_or_else(|| corrupt(format!("entry chunk {c} at {chunk:#x} was not copied")))?;
        for (k, rec) in bytes.chunks_exact(ENTRY_SIZE as usize).enumerate() {
            let addr = u64::from_le_bytes(rec[0..8].try_into().expect("8 bytes"));
            if addr == 0 {
                continue;
            }
            let tid = u32::from_le_bytes(rec[8..12].try_into().expect("4 bytes"));
            let stack = u64::from(u32::from_le_bytes(rec[12..16].try_into().expect("4 bytes")));
            // The header in front of the block; a thread stopped between
            // writing an entry and its header leaves one that does not
            // point back: that block is not handed out yet.
            let Some(h) = addr.checked_sub(HEADER_SIZE).and_then(|a| mem.bytes(a, HEADER_SIZE)) else { continue };
            let size_api = u64::from_le_bytes(h[0..8].try_into().expect("8 bytes"));
            let entry = u64::from(u32::from_le_bytes(h[12..16].try_into().expect("4 bytes")));
            let (api, shift) = ((size_api >> 48) & 0xff, size_api >> 56);
            if entry != c * chunk_entries + k as u64 || api as usize >= BLOCK_APIS.len() || !(4..=40).contains(&shift) {
                continue;
            }
            let pcs = if stack != 0 && stack <= stack_slots && stacks != 0 {
                mem.word(stacks + 8 * (stack - 1)).map(|s| r.stack(s)).unwrap_or_default()
            } else {
                Vec::new()
            };
            dump.blocks.push(DumpBlock {
                addr,
                base: addr - (1 << shift),
                size: size_api & ((1 << 48) - 1),
                api: BLOCK_APIS[api as usize].to_string(),
                tid,
                pcs,
            });
        }
    }
    dump.blocks.sort_by_key(|b| b.addr);
    dump.blocks.dedup_by_key(|b| b.addr);

    let regions = r.word(ptr(3, "regions")?, "the regions pointer")?;
    let nregions = r.word(ptr(4, "nregions")?, "the region count")?;
    if regions != 0 && nregions > 0 {
        if nregions > SANE_COUNT {
            return Err(corrupt(format!("{nregions} regions")));
        }
        for i in 0..nregions {
            let a = regions + i * REGION_SIZE;
            let Some(rec) = mem.bytes(a, REGION_SIZE) else { break };
            let w = |o: usize| u64::from_le_bytes(rec[o..o + 8].try_into().expect("8 bytes"));
            let d = |o: usize| u32::from_le_bytes(rec[o..o + 4].try_into().expect("4 bytes"));
            let flags = d(20);
            let file = d(24) != 0;
            let kind = match (flags & libc::MAP_SHARED as u32 != 0, file) {
                (false, false) => RegionKind::PrivateAnon,
                (true, false) => RegionKind::SharedAnon,
                (false, true) => RegionKind::PrivateFile,
                (true, true) => RegionKind::SharedFile,
            };
            dump.regions.push(DumpRegion {
                addr: w(0),
                len: w(8),
                api: REGION_APIS.get(rec[32] as usize).copied().unwrap_or("mmap").to_string(),
                kind,
                prot: d(16),
                tid: d(28),
                pcs: r.pcs(a + 40, u64::from(rec[33])),
            });
        }
    }

    let errors = r.word(ptr(5, "errors")?, "the bad-free pointer")?;
    let nerrors = r.word(ptr(6, "nerrors")?, "the bad-free count")?;
    if errors != 0 {
        for i in 0..nerrors.min(SANE_COUNT) {
            let a = errors + i * BAD_FREE_SIZE;
            let Some(rec) = mem.bytes(a, BAD_FREE_SIZE) else { break };
            let kind = match rec[16] {
                0 => BadFreeKind::Mismatched,
                1 => BadFreeKind::Double,
                _ => BadFreeKind::Invalid,
            };
            dump.bad_frees.push(DumpBadFree {
                kind,
                addr: u64::from_le_bytes(rec[0..8].try_into().expect("8 bytes")),
                dealloc: DEALLOCS.get(rec[17] as usize).copied().unwrap_or("free").to_string(),
                api: BLOCK_APIS.get(rec[18] as usize).map(|s| (*s).to_string()),
                size: u64::from_le_bytes(rec[8..16].try_into().expect("8 bytes")),
                pcs: r.pcs(a + 24, u64::from(rec[19])),
                other: r.pcs(a + 24 + 8 * MAX_FRAMES, u64::from(rec[20])),
            });
        }
    }

    let own_at = ptr(7, "own")?;
    let nown = r.word(ptr(8, "nown")?, "the own-range count")?.min(1 << 16);
    let mut own: Vec<(u64, u64)> = (0..nown).filter_map(|i| Some((mem.word(own_at + 16 * i)?, mem.word(own_at + 16 * i + 8)?))).collect();
    own.sort_unstable();
    let arena = (ptr(9, "arena start")?, ptr(10, "arena end")?);

    let unloaded = r.word(ptr(11, "unloaded")?, "the unloaded-maps pointer")?;
    let unloaded_len = r.word(ptr(12, "unloaded length")?, "the unloaded-maps length")?;
    if unloaded != 0 && unloaded_len > 0 {
        if let Some(text) = mem.bytes(unloaded, unloaded_len) {
            dump.maps.extend(unloaded_entries(&String::from_utf8_lossy(text), &dump.maps));
        }
    }
    dump.dropped_stacks = r.word(ptr(13, "dropped stacks")?, "a counter")?;
    dump.dropped_regions = r.word(ptr(14, "dropped regions")?, "a counter")?;
    dump.dropped_errors = r.word(ptr(15, "dropped errors")?, "a counter")?;

    Ok(Ok(Table { dump, own, arena, shim_data: located.data }))
}

fn maps_entries(maps: &[Mapping]) -> Vec<MapEntry> {
    maps.iter().map(|m| MapEntry { start: m.start, end: m.end, perms: m.perms.clone(), offset: m.offset, path: m.path.clone() }).collect()
}

/// The maps lines of modules unloaded since (dlclose), those that do not
/// overlap anything mapped now: the symbolizer finds an address's module
/// by the first line containing it, so these only fill the holes.
pub fn unloaded_entries(text: &str, now: &[MapEntry]) -> Vec<MapEntry> {
    let mut out: Vec<MapEntry> = Vec::new();
    for e in text.lines().filter_map(MapEntry::parse) {
        let overlaps = |x: &MapEntry| x.start < e.end && e.start < x.end;
        if !now.iter().any(overlaps) && !out.iter().any(overlaps) {
            out.push(e);
        }
    }
    out
}
