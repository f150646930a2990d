//! `watch` as a backend: the sample runs in its forever mode (`0`) for a
//! bounded window while /proc/PID is sampled (crate::watch); every class of
//! mappings that grows is one finding, with its region and its growth over
//! the window. There is no site and no block: it is scored by growth
//! (`Matching::ByGrowth`, harness/score.rs): a sample whose loop leaks must
//! grow in the class its annotations imply, and nothing else may grow.
//!
//! Only samples with a forever mode apply (`SampleInfo::has_forever_mode`):
//! a program that runs to its end in milliseconds shows no trend.

use std::time::Duration;

use crate::backend::{Availability, Backend, Matching, RunConfig, Target};
use crate::catalogue::SampleInfo;
use crate::error::Error;
use crate::process::{Child, Spec};
use crate::report::{Kind, Leak, Region, RegionKind, Report, Stats};
use crate::watch::{self, Class, Options};

pub struct Watch;

/// How long a sample is watched unless `RunConfig::after` says otherwise.
/// glibc grows [heap] 132 KiB at a time: the window must hold a few steps
/// of the slowest sample (strdup_loop's forever mode, about 140 KiB/s here),
/// with room for a loaded machine.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(6);
const INTERVAL: Duration = Duration::from_millis(100);

/// The region a growing class is reported as; the heap is private
/// anonymous memory named `[heap]`, as /proc/PID/maps names it.
fn region(class: Class) -> Option<Region> {
    let (kind, path) = match class {
        Class::Heap => (RegionKind::PrivateAnon, Some("[heap]".to_string())),
        Class::PrivateAnon => (RegionKind::PrivateAnon, None),
        Class::SharedAnon => (RegionKind::SharedAnon, None),
        Class::PrivateFile => (RegionKind::PrivateFile, None),
        Class::SharedFile => (RegionKind::SharedFile, None),
        Class::Stack | Class::Other => return None,
    };
    Some(Region { kind, flags: None, path })
}

impl Backend for Watch {
    fn name(&self) -> &'static str {
        "watch"
    }

    fn summary(&self) -> &'static str {
        "samples /proc/PID statm, smaps_rollup and maps while the program runs: which classes of mappings grow, and how fast"
    }

    fn availability(&self) -> Availability {
        if std::path::Path::new("/proc/self/smaps_rollup").exists() {
            Availability::Ready
        } else {
            Availability::Unavailable {
                reason: "no /proc/self/smaps_rollup: procfs is not mounted, or the kernel is older than 4.14".into(),
                fix: "mount -t proc proc /proc".into(),
            }
        }
    }

    fn matching(&self) -> Matching {
        Matching::ByGrowth
    }

    fn applies(&self, sample: &SampleInfo) -> bool {
        sample.has_forever_mode()
    }

    /// The plots of `leaklab watch` draw their text with DejaVu.
    fn debian_packages(&self) -> &'static [&'static str] {
        &["fonts-dejavu-core"]
    }

    fn run(&self, target: &Target, config: &RunConfig) -> Result<Report, Error> {
        let args = match target.sample {
            Some(s) if !s.has_forever_mode() => {
                return Err(Error::Usage(format!(
                    "sample `{}` has no forever mode (it does not take its iteration count from leaklab_iterations), so there is no growth to watch",
                    s.name
                )))
            }
            Some(_) => vec!["0".to_string()],
            None => target.args.clone(),
        };
        let window = config.after.unwrap_or(DEFAULT_WINDOW);
        // A second of start-up: on a loaded machine the loader and a sample's
        // first passes (its allocator settling) may take longer than the default.
        let options = Options { interval: INTERVAL, duration: Some(window), warmup: Duration::from_secs(1) };
        let spec = Spec::new(&target.program, config.timeout.max(window + options.warmup + Duration::from_secs(10))).io(config.io)
            .args(&args)
            .env_remove("LEAKLAB_CHECKPOINT");
        let child = Child::spawn(&spec)?;
        let (samples, end) = watch::watch_pid(child.pid(), &options, |_| {})?;
        drop(child);
        if end == watch::End::ProcessEnded {
            let t = samples.last().map_or(0.0, |s| s.t);
            return Err(Error::TargetFailed {
                program: target.name.clone(),
                how: format!("ended after {t:.1} s of the {:.1} s watch window; watch needs a program that keeps running", window.as_secs_f64()),
                stderr: String::new(),
            });
        }
        let summary = watch::summarize(&samples)?;
        let mut report = Report::new(&target.name, self.name());
        for t in summary.trends.iter().filter(|t| t.growing) {
            let Some(region) = region(t.class) else {
                report.notes.push(format!("{} grew by {} bytes", t.class.as_str(), t.growth()));
                continue;
            };
            // bytes: growth over the window; blocks: mappings added.
            let mut leak = Leak::new(Kind::Unclassified, t.growth().max(0) as u64, u64::from(t.last.mappings.saturating_sub(t.first.mappings)));
            leak.region = Some(region);
            report.leaks.push(leak);
            report.notes.push(format!("{} grows {:.0} bytes per second", t.class.as_str(), t.rate));
        }
        report.stats = Some(Stats {
            wall_ms: (summary.seconds * 1000.0) as u64,
            peak_rss_kib: samples.iter().map(|s| s.rss / 1024).max(),
            pause_ms: None,
        });
        Ok(report)
    }
}
