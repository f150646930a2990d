//! `leaklab symbols DEMO`: why replacing malloc or operator new works. A
//! demo's files are compiled one by one (with the catalogue's compilers and
//! flags) into a temporary directory; each object's symbols are read with
//! the `object` crate (binding, section or COMMON/UND, size), the objects are
//! linked, and the executable's symbol table says what the linker did:
//! which definition won, where a COMMON symbol went, what stayed undefined.
//! Some demos are also linked a second way (`EXPERIMENTS`): without an
//! optional file, or with `-fno-common`, a link that must fail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use object::{Object, ObjectSection, ObjectSymbol, SymbolKind, SymbolSection};
use serde::Serialize;

use crate::catalogue::{Language, SampleInfo};
use crate::error::Error;
use crate::process::{self, Spec};

/// A second way to link a demo, to show what the first way avoided.
#[derive(Debug, Clone, Copy)]
pub struct Experiment {
    pub demo: &'static str,
    pub label: &'static str,
    /// Source files (names) left out of this link.
    pub without: &'static [&'static str],
    /// Compiler flags added after the demo's own.
    pub flags: &'static [&'static str],
}

pub const EXPERIMENTS: &[Experiment] = &[
    Experiment { demo: "weakref_optional", label: "without plugin.c", without: &["plugin.c"], flags: &[] },
    Experiment { demo: "common_symbols", label: "with -fno-common (gcc's default since gcc 10)", without: &[], flags: &["-fno-common"] },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Binding {
    Global,
    Weak,
    Local,
}

impl Binding {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Binding::Global => "GLOBAL",
            Binding::Weak => "WEAK",
            Binding::Local => "LOCAL",
        }
    }
}

/// One symbol of an object file or executable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Symbol {
    pub name: String,
    /// The C++ name, when `name` is mangled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demangled: Option<String>,
    pub binding: Binding,
    /// `func`, `object`, `tls` or `other`.
    pub kind: &'static str,
    /// The section's name, or `COMMON`, `UND` (undefined), `ABS`.
    pub section: String,
    pub size: u64,
    /// The value: an address in an executable, the alignment of a COMMON symbol.
    pub value: u64,
}

impl Symbol {
    #[must_use]
    pub fn is_defined(&self) -> bool {
        self.section != "UND"
    }

    /// The C++ name if any, else the symbol name.
    #[must_use]
    pub fn display_name(&self) -> &str {
        self.demangled.as_deref().unwrap_or(&self.name)
    }
}

/// The symbols of one object file.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectFile {
    /// The source file it was compiled from (`main.c`).
    pub source: String,
    pub symbols: Vec<Symbol>,
}

/// What the linker made of one global name that the objects mention.
#[derive(Debug, Clone, Serialize)]
pub struct Resolution {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demangled: Option<String>,
    /// (source, binding, section) of every object that mentions it.
    pub mentions: Vec<(String, Binding, String)>,
    /// The symbol in the executable, if it kept one.
    pub in_executable: Option<Symbol>,
    /// One sentence: which definition won, or what became of it.
    pub verdict: String,
}

/// One link of the demo's objects and what came of it.
#[derive(Debug, Clone, Serialize)]
pub struct Link {
    pub label: String,
    pub sources: Vec<String>,
    pub flags: Vec<String>,
    pub outcome: LinkOutcome,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum LinkOutcome {
    /// Linked: what became of each name, and what the program printed.
    Linked { resolutions: Vec<Resolution>, stdout: String, exit: String },
    /// The compiler or linker refused; its diagnostics.
    Failed { stage: String, message: String },
}

/// Everything `leaklab symbols` shows about a demo.
#[derive(Debug, Clone, Serialize)]
pub struct Demo {
    pub sample: String,
    /// Per source file, as compiled with the demo's own flags.
    pub objects: Vec<ObjectFile>,
    /// The catalogue's link first, then the demo's experiments.
    pub links: Vec<Link>,
}

fn compilers(lang: Language) -> &'static str {
    match lang {
        Language::C => env!("LEAKLAB_CC"),
        Language::Cpp => env!("LEAKLAB_CXX"),
    }
}

/// The flags the catalogue builds a sample with (build.rs's BASE_FLAGS,
/// `//@ std:` and `//@ cflags:`).
fn sample_flags(sample: &SampleInfo) -> Vec<String> {
    let mut flags: Vec<String> = env!("LEAKLAB_BASE_CFLAGS").split_whitespace().map(str::to_string).collect();
    flags.push("-I".into());
    flags.push(sample.samples_dir.to_string());
    if let Some(std) = sample.setting("std") {
        flags.push(format!("-std={std}"));
    }
    for (k, v) in sample.settings {
        if *k == "cflags" {
            flags.extend(v.split_whitespace().map(str::to_string));
        }
    }
    flags
}

fn stem(source: &str) -> &str {
    let name = source.rsplit('/').next().unwrap_or(source);
    name.rsplit_once('.').map_or(name, |(s, _)| s)
}

fn file_name(source: &str) -> &str {
    source.rsplit('/').next().unwrap_or(source)
}

/// Runs a compiler step; Err carries its diagnostics.
fn compiler_step(compiler: &str, args: &[std::ffi::OsString]) -> Result<Result<(), String>, Error> {
    let out = Command::new(compiler).args(args).output().map_err(|e| Error::Spawn { program: compiler.to_string(), source: e })?;
    Ok(if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).trim().to_string()) })
}

/// One way to link a demo: its label, the (name, path) sources, extra flags.
type Plan<'a> = (String, Vec<&'a (String, PathBuf)>, Vec<String>);

/// Compiles, reads, links and runs a demo; see the module documentation.
pub fn inspect(sample: &'static SampleInfo) -> Result<Demo, Error> {
    let dir = crate::process::scratch()?;
    let compiler = compilers(sample.language);
    let base = sample_flags(sample);
    let sources: Vec<(String, PathBuf)> =
        sample.sources.iter().zip(sample.source_paths()).map(|(s, p)| (file_name(s).to_string(), p)).collect();

    // The catalogue's way, then each experiment.
    let mut plans: Vec<Plan> =
        vec![("as the catalogue builds it".to_string(), sources.iter().collect(), Vec::new())];
    for e in EXPERIMENTS.iter().filter(|e| e.demo == sample.name) {
        let kept: Vec<&(String, PathBuf)> = sources.iter().filter(|(n, _)| !e.without.contains(&n.as_str())).collect();
        plans.push((e.label.to_string(), kept, e.flags.iter().map(|f| (*f).to_string()).collect()));
    }

    let mut objects = Vec::new();
    let mut links = Vec::new();
    for (index, (label, files, extra)) in plans.into_iter().enumerate() {
        let build = dir.path().join(format!("link{index}"));
        std::fs::create_dir_all(&build).map_err(|e| Error::io(&build, e))?;
        let mut flags = base.clone();
        flags.extend(extra.iter().cloned());
        let mut object_paths = Vec::new();
        let mut failed = None;
        for (name, path) in &files {
            let obj = build.join(format!("{}.o", stem(name)));
            let mut args: Vec<std::ffi::OsString> = flags.iter().map(Into::into).collect();
            args.extend(["-c".into(), path.into(), "-o".into(), obj.clone().into()]);
            if let Err(message) = compiler_step(compiler, &args)? {
                failed = Some(LinkOutcome::Failed { stage: format!("compiling {name}"), message });
                break;
            }
            if index == 0 {
                objects.push(ObjectFile { source: name.clone(), symbols: read_symbols(&obj)? });
            }
            object_paths.push((name.clone(), obj));
        }
        let outcome = match failed {
            Some(f) => f,
            None => link_and_run(sample, compiler, &flags, &object_paths, &build.join(sample.name))?,
        };
        links.push(Link { label, sources: files.iter().map(|(n, _)| n.clone()).collect(), flags: extra, outcome });
    }
    Ok(Demo { sample: sample.name.to_string(), objects, links })
}

fn link_and_run(
    sample: &SampleInfo,
    compiler: &str,
    flags: &[String],
    objects: &[(String, PathBuf)],
    exe: &Path,
) -> Result<LinkOutcome, Error> {
    let mut args: Vec<std::ffi::OsString> = flags.iter().map(Into::into).collect();
    args.extend(objects.iter().map(|(_, o)| o.clone().into()));
    args.extend(["-o".into(), exe.into()]);
    if let Err(message) = compiler_step(compiler, &args)? {
        return Ok(LinkOutcome::Failed { stage: "linking".into(), message });
    }
    let mut per_object = Vec::new();
    for (name, obj) in objects {
        per_object.push((name.clone(), read_symbols(obj)?));
    }
    let exe_symbols = read_symbols(exe)?;
    let exported = dynamic_symbol_names(exe)?;
    let resolutions = resolve(&per_object, &exe_symbols, &exported);
    let finished = process::run(&Spec::new(exe, Duration::from_secs(30)).args(sample.args()).env_remove("LEAKLAB_CHECKPOINT"))?;
    Ok(LinkOutcome::Linked {
        resolutions,
        stdout: String::from_utf8_lossy(&finished.stdout).into_owned(),
        exit: finished.exit.describe(),
    })
}

/// For every non-local name the objects mention, what the executable holds.
fn resolve(objects: &[(String, Vec<Symbol>)], exe: &[Symbol], exported: &[String]) -> Vec<Resolution> {
    let mut names: BTreeMap<&str, Vec<(String, Binding, String)>> = BTreeMap::new();
    for (source, symbols) in objects {
        for s in symbols.iter().filter(|s| s.binding != Binding::Local) {
            names.entry(&s.name).or_default().push((source.clone(), s.binding, s.section.clone()));
        }
    }
    let mut out = Vec::new();
    for (name, mentions) in names {
        let defs: Vec<&(String, Binding, String)> = mentions.iter().filter(|m| m.2 != "UND").collect();
        // Names the objects only use (printf, malloc) are not the demo's subject.
        if defs.is_empty() && !mentions.iter().any(|m| m.1 == Binding::Weak) {
            continue;
        }
        let in_exe = exe.iter().find(|s| s.name == name && s.binding != Binding::Local).cloned();
        let mut verdict = verdict(&defs, in_exe.as_ref());
        if in_exe.as_ref().is_some_and(Symbol::is_defined) && exported.iter().any(|e| e == name) {
            // ld exports an executable's definition when a shared library it
            // links defines or uses the same name: the loader then binds the
            // library's own calls to the executable's copy too.
            verdict.push_str("; exported in .dynsym, so it interposes on the shared libraries' definition, their own calls included");
        }
        let demangled = demangle(name);
        out.push(Resolution { name: name.to_string(), demangled, mentions, in_executable: in_exe, verdict });
    }
    out
}

fn verdict(defs: &[&(String, Binding, String)], exe: Option<&Symbol>) -> String {
    let Some(exe) = exe else {
        return "not in the executable's symbol table".into();
    };
    if !exe.is_defined() {
        return match exe.binding {
            Binding::Weak => "undefined weak: no object defines it, so it resolves to address 0 (a null pointer)".into(),
            _ => "undefined: the dynamic loader will find it in a shared library".into(),
        };
    }
    let commons: Vec<&str> = defs.iter().filter(|d| d.2 == "COMMON").map(|d| d.0.as_str()).collect();
    if commons.len() == defs.len() && !commons.is_empty() {
        return format!("{} COMMON symbol(s) ({}) merged into one {}-byte object in {}", commons.len(), commons.join(", "), exe.size, exe.section);
    }
    let strong: Vec<&str> = defs.iter().filter(|d| d.1 == Binding::Global && d.2 != "COMMON").map(|d| d.0.as_str()).collect();
    let weak: Vec<&str> = defs.iter().filter(|d| d.1 == Binding::Weak).map(|d| d.0.as_str()).collect();
    match (strong.as_slice(), weak.is_empty()) {
        ([one], false) => format!("the strong definition in {one} won over the weak one(s) in {}", weak.join(", ")),
        ([one], true) => format!("defined once, in {one} ({})", exe.section),
        ([], false) => format!("only weak definitions ({}); the first one linked won", weak.join(", ")),
        _ => format!("defined in {} ({})", defs.iter().map(|d| d.0.as_str()).collect::<Vec<_>>().join(", "), exe.section),
    }
}

fn demangle(name: &str) -> Option<String> {
    if !name.starts_with("_Z") {
        return None;
    }
    cpp_demangle::Symbol::new(name.as_bytes()).ok().and_then(|s| s.demangle().ok())
}

/// Names in an executable's dynamic symbol table that it defines (exports).
fn dynamic_symbol_names(path: &Path) -> Result<Vec<String>, Error> {
    let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let file = object::File::parse(&*data)
        .map_err(|e| Error::MalformedOutput { tool: "the linker".into(), message: format!("{}: not an executable: {e}", path.display()) })?;
    Ok(file
        .dynamic_symbols()
        .filter(|s| !s.is_undefined())
        .filter_map(|s| s.name().ok().map(str::to_string))
        .collect())
}

/// Every named symbol of an ELF file (object or executable), in table order;
/// section and file symbols are left out.
pub fn read_symbols(path: &Path) -> Result<Vec<Symbol>, Error> {
    let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let file = object::File::parse(&*data)
        .map_err(|e| Error::MalformedOutput { tool: "the compiler".into(), message: format!("{}: not an object file: {e}", path.display()) })?;
    let mut out = Vec::new();
    for sym in file.symbols() {
        let name = match sym.name() {
            Ok(n) if !n.is_empty() => n.to_string(),
            _ => continue,
        };
        let kind = match sym.kind() {
            SymbolKind::Text => "func",
            SymbolKind::Data => "object",
            SymbolKind::Tls => "tls",
            SymbolKind::Section | SymbolKind::File => continue,
            _ => "other",
        };
        let section = match sym.section() {
            SymbolSection::Undefined => "UND".to_string(),
            SymbolSection::Common => "COMMON".to_string(),
            SymbolSection::Absolute => "ABS".to_string(),
            SymbolSection::Section(idx) => {
                file.section_by_index(idx).ok().and_then(|s| s.name().ok().map(str::to_string)).unwrap_or_else(|| format!("#{}", idx.0))
            }
            _ => "?".to_string(),
        };
        let binding = if sym.is_weak() {
            Binding::Weak
        } else if sym.is_global() {
            Binding::Global
        } else {
            Binding::Local
        };
        out.push(Symbol { demangled: demangle(&name), name, binding, kind, section, size: sym.size(), value: sym.address() });
    }
    Ok(out)
}

/// Human-readable form of a demo, for the CLI.
#[must_use]
pub fn render(demo: &Demo) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "symbols of {}", demo.sample);
    for o in &demo.objects {
        let _ = writeln!(s, "\n{}.o", stem(&o.source));
        let _ = writeln!(s, "  {:<7} {:<7} {:<12} {:>6}  name", "binding", "type", "section", "size");
        // Only what the file defines or declares globally, plus its local
        // definitions: compiler-internal locals are left out.
        for sym in o.symbols.iter().filter(|x| x.binding != Binding::Local || x.kind == "func" || x.kind == "object") {
            let _ = writeln!(s, "  {:<7} {:<7} {:<12} {:>6}  {}", sym.binding.as_str(), sym.kind, sym.section, sym.size, sym.display_name());
        }
    }
    for link in &demo.links {
        let flags = if link.flags.is_empty() { String::new() } else { format!(" {}", link.flags.join(" ")) };
        let _ = writeln!(s, "\nlinked {} ({}{flags}):", link.label, link.sources.join(" "));
        match &link.outcome {
            LinkOutcome::Failed { stage, message } => {
                let _ = writeln!(s, "  FAILED while {stage}:");
                for line in message.lines() {
                    let _ = writeln!(s, "    {line}");
                }
            }
            LinkOutcome::Linked { resolutions, stdout, exit } => {
                for r in resolutions {
                    let name = r.demangled.as_deref().unwrap_or(&r.name);
                    let mentions: Vec<String> = r.mentions.iter().map(|(f, b, sec)| format!("{f}: {} {sec}", b.as_str())).collect();
                    let _ = writeln!(s, "  {name}  [{}]", mentions.join("; "));
                    let _ = writeln!(s, "    → {}", r.verdict);
                }
                let _ = writeln!(s, "  the program {exit} and printed:");
                for line in stdout.lines() {
                    let _ = writeln!(s, "    | {line}");
                }
            }
        }
    }
    s
}
