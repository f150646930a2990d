//! `leaklab doctor` and `leaklab setup`: what the backends need, and getting it.

use crate::backend::{self, Availability};
use crate::error::Error;

/// One backend's state on this machine.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Diagnosis {
    pub backend: String,
    pub summary: String,
    pub ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Every backend's availability, with the fix for each that cannot run.
#[must_use]
pub fn doctor() -> Vec<Diagnosis> {
    backend::all()
        .iter()
        .map(|b| {
            let (ready, reason, fix) = match b.availability() {
                Availability::Ready => (true, None, None),
                Availability::Unavailable { reason, fix } => (false, Some(reason), Some(fix)),
            };
            Diagnosis { backend: b.name().into(), summary: b.summary().into(), ready, reason, fix }
        })
        .collect()
}

/// Installs every backend's Debian packages and prepares the machine. Needs root.
pub fn setup(dry_run: bool) -> Result<Vec<String>, Error> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 && !dry_run {
        return Err(Error::Usage("`leaklab setup` installs Debian packages and needs root: run `sudo leaklab setup`".into()));
    }
    let backends = backend::all();
    let mut packages: Vec<&str> = backends.iter().flat_map(|b| b.debian_packages().iter().copied()).collect();
    packages.sort_unstable();
    packages.dedup();
    let mut done = Vec::new();
    let install = format!("apt-get install -y --no-install-recommends {}", packages.join(" "));
    if dry_run {
        done.push("apt-get update".to_string());
        done.push(install);
        return Ok(done);
    }
    if which::which("apt-get").is_err() {
        return Err(Error::Usage(format!("no apt-get here: install these packages by hand: {}", packages.join(" "))));
    }
    let apt = |args: &[&str]| -> Result<(), Error> {
        duct::cmd("apt-get", args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .run()
            .map(|_| ())
            .map_err(|e| Error::Os(format!("apt-get {}: {e}", args.join(" "))))
    };
    apt(&["update"])?;
    done.push("apt-get update".into());
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(&packages);
    apt(&args)?;
    done.push(install);
    for b in &backends {
        b.prepare()?;
    }
    Ok(done)
}
