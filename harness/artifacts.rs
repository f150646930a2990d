//! The files build.rs makes in OUT_DIR (samples, the hook shim, stop_exec,
//! the bench program, ...), wherever the binary runs.
//!
//! In the clone they are used where cargo built them. An installed binary
//! (`cargo install`) outlives its OUT_DIR, so every artifact is also
//! embedded in the binary and, when OUT_DIR is gone, unpacked once into
//! `$XDG_CACHE_HOME/leaklab/<content hash>/` (or `~/.cache/leaklab/...`):
//! written into a fresh directory beside it, then renamed into place, so a
//! concurrent leaklab sees all of it or none of it.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::error::Error;

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

/// The usable path of an artifact that build.rs wrote at `built` (an
/// absolute path in OUT_DIR): that path while it exists, else the unpacked copy.
pub fn resolve(built: &str) -> Result<PathBuf, Error> {
    let path = Path::new(built);
    if path.exists() && !force_embedded() {
        return Ok(path.to_path_buf());
    }
    let Ok(rel) = path.strip_prefix(OUT_DIR) else { return Ok(path.to_path_buf()) };
    Ok(unpacked()?.join(rel))
}

/// [`resolve`] for a `&'static` path (the catalogue hands out `&'static Path`).
pub fn resolve_static(built: &'static str) -> Result<&'static Path, Error> {
    static CACHE: Mutex<Option<HashMap<&'static str, &'static Path>>> = Mutex::new(None);
    if Path::new(built).exists() && !force_embedded() {
        return Ok(Path::new(built));
    }
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let map = cache.get_or_insert_with(HashMap::new);
    if let Some(p) = map.get(built) {
        return Ok(p);
    }
    let p: &'static Path = Box::leak(resolve(built)?.into_boxed_path());
    map.insert(built, p);
    Ok(p)
}

/// harness/native/stop_exec.c, built.
pub fn stop_exec() -> Result<PathBuf, Error> {
    resolve(concat!(env!("OUT_DIR"), "/stop_exec"))
}

/// Where the built samples are (`<dir>/<variant>/<name>`).
pub fn samples_dir() -> Result<PathBuf, Error> {
    resolve(concat!(env!("OUT_DIR"), "/samples"))
}

/// Whether this binary runs from its unpacked copy (its OUT_DIR is gone).
#[must_use]
pub fn is_unpacked() -> bool {
    !Path::new(OUT_DIR).exists() || force_embedded()
}

/// `LEAKLAB_EMBEDDED=1` uses the embedded copy even where OUT_DIR exists:
/// how the trials check what an installed binary does after `cargo clean`.
fn force_embedded() -> bool {
    std::env::var_os("LEAKLAB_EMBEDDED").is_some_and(|v| !v.is_empty() && v != "0")
}

fn cache_root() -> Result<PathBuf, Error> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(h) => PathBuf::from(h).join(".cache"),
            None => return Err(Error::Os(format!("the build directory {OUT_DIR} is gone and neither XDG_CACHE_HOME nor HOME is set to unpack leaklab's programs into"))),
        },
    };
    Ok(base.join("leaklab"))
}

/// The unpacked copy of every embedded artifact, made on first use.
fn unpacked() -> Result<PathBuf, Error> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| unpack().map_err(|e| e.to_string())).clone().map_err(Error::Os)
}

fn unpack() -> Result<PathBuf, Error> {
    let root = cache_root()?;
    let dest = root.join(CONTENT_HASH);
    if dest.is_dir() {
        return Ok(dest);
    }
    std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    let staging = tempfile::Builder::new().prefix(".unpack-").tempdir_in(&root).map_err(|e| Error::io(&root, e))?;
    for (rel, data, exec) in EMBEDDED {
        let path = staging.path().join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut f = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        f.write_all(data).map_err(|e| Error::io(&path, e))?;
        let mode = if *exec { 0o755 } else { 0o644 };
        f.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(|e| Error::io(&path, e))?;
    }
    let staged = staging.keep();
    match std::fs::rename(&staged, &dest) {
        Ok(()) => Ok(dest),
        // Another leaklab unpacked the same contents first: use its copy.
        Err(_) if dest.is_dir() => {
            let _ = std::fs::remove_dir_all(&staged);
            Ok(dest)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staged);
            Err(Error::io(&dest, e))
        }
    }
}
