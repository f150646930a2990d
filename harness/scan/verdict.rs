//! Whether a scan could analyse the heap at all. A walk that found nothing
//! because it could not walk says nothing about leaks, so it must never read
//! as "no leaks found": a statically linked program, a process whose malloc
//! is not glibc's (jemalloc, tcmalloc, a program's own allocator), a
//! `[heap]` without glibc's arena, a heap whose chunk walk stopped early.
//! Each is decided from what the snapshot shows: the executable's ELF
//! headers, which loaded module defines `malloc`, whether main_arena was
//! found, where the walk ended.

use std::path::PathBuf;

use object::{Object, ObjectSymbol};

use super::glibc::Walk;
use super::maps::Mapping;
use super::snapshot::Snapshot;

/// Why the heap of this snapshot could not be analysed, or None if it was.
#[must_use]
pub fn not_analysed(snap: &Snapshot, walk: &Walk) -> Option<String> {
    if let Some(exe) = executable(snap) {
        if crate::backend::is_statically_linked(&exe) {
            return Some(format!(
                "{} is statically linked: its malloc is built into the executable, where the walker does not look for glibc's arena (it reads libc.so's data)",
                std::fs::read_link(&exe).unwrap_or(exe).display()
            ));
        }
    }
    let has_heap = snap.maps.iter().any(|m| m.pseudo() == Some("[heap]"));
    if walk.main_arena.is_none() {
        let definers = malloc_definers(snap);
        if !definers.is_empty() {
            let preloaded = preloaded(snap.pid);
            let named: Vec<String> = definers
                .iter()
                .map(|path| {
                    let name = file_name(path);
                    if preloaded.iter().any(|p| same_file(p, path)) {
                        format!("{name} (preloaded with LD_PRELOAD)")
                    } else {
                        name.to_string()
                    }
                })
                .collect();
            let arena = if has_heap { "glibc's main_arena is not in use (the [heap] is not its heap)" } else { "glibc's main_arena is not in use (no [heap])" };
            return Some(format!("it does not use glibc's malloc: malloc is defined by {}, and {arena}; its heap was not analysed", named.join(", ")));
        }
        if has_heap {
            return Some(
                "glibc's main_arena was not found in libc's data, so the [heap] could not be walked (a corrupt arena, or a heap the program manages itself with brk/sbrk)"
                    .into(),
            );
        }
    }
    if !walk.stopped.is_empty() {
        return Some(format!("the walk of malloc's heap stopped before its end ({}): blocks past that point were not seen", walk.stopped.join("; ")));
    }
    None
}

/// The executable of the process: /proc/PID/exe, or through a live thread
/// when the main thread has exited (its own link is then unreadable).
fn executable(snap: &Snapshot) -> Option<PathBuf> {
    // The link itself is opened (not the path it names): it works for a
    // deleted file and across mount namespaces.
    std::iter::once(format!("/proc/{}/exe", snap.pid))
        .chain(snap.threads.iter().map(|t| format!("/proc/{}/task/{}/exe", snap.pid, t.tid)))
        .map(PathBuf::from)
        .find(|link| std::fs::metadata(link).is_ok())
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn is_glibc(path: &str) -> bool {
    let n = file_name(path);
    n.starts_with("libc.so") || n.starts_with("libc-") || n.starts_with("ld-linux")
}

/// The loaded modules, other than glibc itself, whose dynamic symbol table
/// defines `malloc`: the program's calls bind to one of them instead of
/// glibc's (the executable and LD_PRELOAD libraries come first in the
/// dynamic linker's search order).
fn malloc_definers(snap: &Snapshot) -> Vec<String> {
    let mut seen: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for m in snap.maps.iter().filter(|m| m.executable()) {
        let Some(path) = m.file() else { continue };
        if seen.contains(&path) || is_glibc(path) {
            continue;
        }
        seen.push(path);
        if defines_malloc(snap.pid, m, path) {
            out.push(path.to_string());
        }
    }
    out
}

fn defines_malloc(pid: i32, m: &Mapping, path: &str) -> bool {
    // The module as the process sees it (its mount namespace, a deleted file).
    let data = std::fs::read(format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end)).or_else(|_| std::fs::read(path));
    let Ok(data) = data else { return false };
    let Ok(file) = object::File::parse(&*data) else { return false };
    file.dynamic_symbols().any(|s| s.is_definition() && s.name() == Ok("malloc"))
}

/// Whether an LD_PRELOAD entry (a path, or a bare name the dynamic linker
/// looked up) is the module at `path`, which maps shows with its symlinks
/// resolved (`libtcmalloc_minimal.so.4` is `libtcmalloc_minimal.so.4.5.10`).
fn same_file(entry: &str, path: &str) -> bool {
    let module = std::path::Path::new(path);
    let candidate = if entry.contains('/') { PathBuf::from(entry) } else { module.parent().map_or_else(|| PathBuf::from(entry), |d| d.join(entry)) };
    entry == path || candidate.canonicalize().ok().zip(module.canonicalize().ok()).is_some_and(|(a, b)| a == b)
}

/// LD_PRELOAD of the process and /etc/ld.so.preload, as listed.
fn preloaded(pid: i32) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) {
        for var in env.split(|&b| b == 0) {
            if let Some(v) = var.strip_prefix(b"LD_PRELOAD=") {
                out.extend(String::from_utf8_lossy(v).split([':', ' ']).filter(|s| !s.is_empty()).map(str::to_string));
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string("/etc/ld.so.preload") {
        out.extend(text.split_whitespace().map(str::to_string));
    }
    out
}
