//! What leaklab can recover of the frames memleak's kernel stack walk loses.
//!
//! memleak records a stack at the return of the allocator by walking frame
//! pointers. glibc and libstdc++ keep none, which loses frames in two ways:
//! - A runtime function that leaves `rbp` alone (`operator new`) hides its
//!   own caller: the walk goes from the runtime frame straight to the
//!   caller's caller. The lost frame is a call site inside the function that
//!   the next frame's `call` went to; when that function calls the runtime
//!   function from exactly one place, that place is the lost frame (found in
//!   the module's code, not guessed). With several call sites leaklab does
//!   not choose, and the block stays on the caller's line.
//! - A runtime function that uses `rbp` as a plain register (`strdup`,
//!   `getdelim`) ends the walk: nothing of the program is left. When the
//!   program itself imports that function, the group is the program's
//!   allocation with an unknown caller, reported as a leak without a site;
//!   otherwise (stdio's buffer from `_IO_file_doallocate`) it is the
//!   runtime's own, and stays a note.

use std::collections::{BTreeSet, HashMap};

use object::{Object, ObjectSection, ObjectSymbol, ObjectSymbolTable, SymbolKind};

use crate::backend::is_runtime_object;
use crate::maps::Mapping;

use super::{mapping_of, plt_callee, read_at, stub_target, RawFrame};

/// Parsed facts about the modules of one process, cached per file.
#[derive(Default)]
pub(super) struct Modules {
    files: HashMap<String, Option<Vec<u8>>>,
    imports: Option<BTreeSet<String>>,
}

impl Modules {
    fn bytes(&mut self, path: &str) -> Option<&[u8]> {
        self.files.entry(path.to_string()).or_insert_with(|| std::fs::read(path).ok()).as_deref()
    }

    /// Every function a module of the program (not of the runtime) imports.
    pub(super) fn program_imports(&mut self, maps: &[Mapping]) -> &BTreeSet<String> {
        if self.imports.is_none() {
            let paths: BTreeSet<String> = maps
                .iter()
                .filter(|m| m.path_text().starts_with('/') && m.perms.contains('x') && !is_runtime_object(m.path_text()))
                .map(|m| m.path_text().to_string())
                .collect();
            let mut imports = BTreeSet::new();
            for p in paths {
                let Some(data) = self.bytes(&p) else { continue };
                let Ok(elf) = object::File::parse(data) else { continue };
                for s in elf.dynamic_symbols().filter(|s| s.is_undefined()) {
                    if let Ok(name) = s.name() {
                        imports.insert(name.split('@').next().unwrap_or(name).to_string());
                    }
                }
            }
            self.imports = Some(imports);
        }
        self.imports.as_ref().expect("filled above")
    }

    /// The ELF address of a run-time address, and the module's load bias.
    fn elf_address(&mut self, m: &Mapping, address: u64) -> Option<(u64, u64)> {
        use object::ObjectSegment;
        let file_offset = address - m.start + m.offset;
        let data = self.bytes(m.path_text())?;
        let elf = object::File::parse(data).ok()?;
        elf.segments().find_map(|seg| {
            let (off, size) = seg.file_range();
            (off <= file_offset && file_offset < off + size).then(|| {
                let vaddr = seg.address() + (file_offset - off);
                (vaddr, address - vaddr)
            })
        })
    }

    /// Every name of the function that contains `address` in its module
    /// (`__strdup`, `strdup`: aliases share an address).
    pub(super) fn function_names(&mut self, maps: &[Mapping], address: u64) -> BTreeSet<String> {
        let Some(m) = mapping_of(maps, address).cloned() else { return BTreeSet::new() };
        let Some((vaddr, _)) = self.elf_address(&m, address) else { return BTreeSet::new() };
        let Some(data) = self.bytes(m.path_text()) else { return BTreeSet::new() };
        let Ok(elf) = object::File::parse(data) else { return BTreeSet::new() };
        let tables = [elf.symbol_table(), elf.dynamic_symbol_table()];
        let functions = || tables.iter().flatten().flat_map(|t| t.symbols()).filter(|s| s.kind() == SymbolKind::Text && s.size() > 0);
        // A return address may be one past the function's last byte (a call
        // to a function that does not return): look up the call itself.
        let probe = vaddr.saturating_sub(1);
        let Some(start) = functions().find(|s| s.address() <= probe && probe < s.address() + s.size()).map(|s| s.address()) else {
            return BTreeSet::new();
        };
        functions()
            .filter(|s| s.address() == start)
            .filter_map(|s| s.name().ok().map(|n| n.split('@').next().unwrap_or(n).to_string()))
            .collect()
    }

    /// Whether the runtime function `callee` (a name the program imports)
    /// is one of `names`, or a wrapper in `module` that jumps to one of them
    /// (`operator new[]` is `jmp operator new`): either way a call to it can
    /// leave a frame of `names` innermost.
    fn reaches(&mut self, module: &str, callee: &str, names: &BTreeSet<String>) -> bool {
        if names.contains(callee) {
            return true;
        }
        let Some(data) = self.bytes(module) else { return false };
        let Ok(elf) = object::File::parse(data) else { return false };
        let Some(start) = elf.dynamic_symbols().find(|s| s.is_definition() && s.name().is_ok_and(|n| n == callee)).map(|s| s.address()) else {
            return false;
        };
        let mut at = start;
        if read_at(&elf, at, 4) == Some(&[0xf3, 0x0f, 0x1e, 0xfa]) {
            at += 4;
        }
        if read_at(&elf, at, 1) != Some(&[0xe9]) {
            return false;
        }
        let Some(rel) = read_at(&elf, at + 1, 4).and_then(|b| b.try_into().ok()).map(i32::from_le_bytes) else { return false };
        let target = (at + 5).wrapping_add_signed(i64::from(rel));
        let direct = elf.dynamic_symbols().chain(elf.symbols()).any(|s| s.address() == target && s.name().is_ok_and(|n| names.contains(n)));
        direct || stub_target(&elf, target).is_some_and(|n| names.contains(&n))
    }

    /// The frame the walk skipped between `frames[0]` (inside a runtime
    /// function) and `frames[1]` (a return address in the program), as a
    /// run-time return address, when the code says which one it was.
    pub(super) fn skipped_frame(&mut self, maps: &[Mapping], frames: &[RawFrame]) -> Option<u64> {
        let [inner, outer, ..] = frames else { return None };
        let inner_map = mapping_of(maps, inner.address)?;
        let outer_map = mapping_of(maps, outer.address)?.clone();
        if !is_runtime_object(inner_map.path_text()) || is_runtime_object(outer_map.path_text()) || !outer_map.path_text().starts_with('/') {
            return None;
        }
        let runtime_fn = self.function_names(maps, inner.address);
        if runtime_fn.is_empty() {
            return None;
        }
        let (ret, bias) = self.elf_address(&outer_map, outer.address)?;
        let data = self.bytes(outer_map.path_text())?;
        let elf = object::File::parse(data).ok()?;
        let module = inner_map.path_text().to_string();
        // The outer frame called into the runtime itself: that call is the
        // allocation (nothing was skipped), or whatever it skipped is inside
        // the runtime, not a frame of the program.
        if plt_callee(&elf, ret).is_some() {
            return None;
        }
        // Otherwise it called a function of its own (a direct call; an
        // indirect one names no function), which called the runtime.
        if read_at(&elf, ret.checked_sub(5)?, 1)? != [0xe8] {
            return None;
        }
        let rel = i32::from_le_bytes(read_at(&elf, ret - 4, 4)?.try_into().ok()?);
        let callee = ret.wrapping_add_signed(i64::from(rel));
        let symbols = elf.symbol_table().or_else(|| elf.dynamic_symbol_table())?;
        let function = symbols.symbols().find(|s| s.kind() == SymbolKind::Text && s.address() == callee && s.size() > 0)?;
        let (start, end) = (function.address(), function.address() + function.size());
        let code = elf.sections().find(|s| s.address() <= start && end <= s.address() + s.size())?;
        let bytes = code.data().ok()?;
        let base = code.address();
        // Every `call rel32` (5 bytes) and `call *GOT(%rip)` (6 bytes) in the
        // function whose target is the runtime function. A stray 0xe8 byte
        // that happens to decode to a call into that PLT slot is not a
        // realistic worry; an ambiguous answer is no answer.
        let mut sites = BTreeSet::new();
        let mut callees = Vec::new();
        for at in start..end {
            let i = (at - base) as usize;
            let len = match (bytes.get(i), bytes.get(i + 1)) {
                (Some(0xe8), _) => 5,
                (Some(0xff), Some(0x15)) => 6,
                _ => continue,
            };
            let after = at + len;
            if after <= end {
                if let Some(c) = plt_callee(&elf, after) {
                    callees.push((after, c));
                }
            }
        }
                for (after, c) in callees {
            if self.reaches(&module, &c, &runtime_fn) {
                sites.insert(after);
            }
        }
        match sites.len() {
            1 => sites.first().map(|v| v + bias),
            _ => None,
        }
    }
}
