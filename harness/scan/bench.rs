//! `leaklab bench --scan`: the cost of a scan on a big heap. A generated C
//! target makes about 1 GiB of heap in millions of blocks, leaks every 16th,
//! and stops at its checkpoint; it is then scanned several times while it
//! waits, and the median pause and analysis throughput are reported.

use std::time::Duration;

use serde::Serialize;

use super::{analyse, snapshot};
use crate::error::Error;
use crate::process::{self, Child, Spec};
use crate::report::Kind;

const TARGET_SOURCE: &str = include_str!("bench_target.c");

/// Knobs.
#[derive(Debug, Clone)]
pub struct ScanBench {
    pub heap_mib: u64,
    pub runs: usize,
}

/// Figures, medians over the runs.
#[derive(Debug, Clone, Serialize)]
pub struct ScanBenchResult {
    pub heap_mib: u64,
    pub blocks: u64,
    pub block_bytes: u64,
    pub leaked_expected: u64,
    pub leaked_found: u64,
    pub runs: usize,
    /// Median time the target was stopped, in seconds.
    pub pause_s: f64,
    /// Median pause per GiB of copied memory.
    pub pause_s_per_gib: f64,
    pub copied_bytes: u64,
    /// Median analysis time (walk, mark, group), in seconds.
    pub analysis_s: f64,
    /// Heap bytes analysed per second (GB/s, 10^9).
    pub analysis_gb_s: f64,
    /// Bytes scanned for pointers per second (GB/s).
    pub scan_gb_s: f64,
    /// Median CPU time of the analysis, and the heap throughput by it:
    /// on a shared machine the wall time includes waiting for a core.
    pub analysis_cpu_s: f64,
    pub analysis_cpu_gb_s: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Builds the target, runs it to its checkpoint, scans it `runs` times.
pub fn run(config: &ScanBench) -> Result<ScanBenchResult, Error> {
    if config.runs == 0 || config.heap_mib == 0 {
        return Err(Error::Usage("--runs and the heap size must be positive".into()));
    }
    let dir = crate::process::scratch()?;
    let src = dir.path().join("bench_target.c");
    let exe = dir.path().join("bench_target");
    std::fs::write(&src, TARGET_SOURCE).map_err(|e| Error::io(&src, e))?;
    let cc = process::run(&Spec::new("cc", Duration::from_secs(120)).arg("-O2").arg("-o").arg(&exe).arg(&src))?;
    if !cc.exit.success() {
        return Err(Error::TargetFailed { program: "cc".into(), how: cc.exit.describe(), stderr: cc.stderr_text() });
    }
    let spec = Spec::new(&exe, Duration::from_secs(600)).arg(config.heap_mib.to_string()).env("LEAKLAB_CHECKPOINT", "1");
    let mut child = Child::spawn(&spec)?;
    child.wait_stop()?;
    let verbose = std::env::var_os("LEAKLAB_BENCH_VERBOSE").is_some();
    let mut pauses = Vec::new();
    let mut analyses = Vec::new();
    let mut cpus = Vec::new();
    let mut last = None;
    let mut copied = 0;
    for _ in 0..config.runs {
        let snap = snapshot::take(child.pid())?;
        let a = analyse(&snap, super::StopPoint::Checkpoint);
        copied = snap.memory.segments().iter().map(|s| s.data.len() as u64).sum();
        if verbose {
            eprintln!("pause {:?} (stop, maps, copy: {:?}); analysis {:?} (walk, mark, group: {:?})", snap.pause, snap.pause_phases, a.elapsed, a.phases);
        }
        pauses.push(snap.pause.as_secs_f64());
        analyses.push(a.elapsed.as_secs_f64());
        cpus.push(a.cpu.as_secs_f64());
        last = Some((a, snap.memory.segments().len()));
    }
    child.resume();
    let finished = child.finish()?;
    let out = String::from_utf8_lossy(&finished.stdout).into_owned();
    let mut nums = out.split_whitespace().map(|w| w.parse::<u64>());
    let (Some(Ok(_made)), Some(Ok(leaked))) = (nums.next(), nums.next()) else {
        return Err(Error::MalformedOutput { tool: "bench target".into(), message: format!("expected two counts, got {out:?}") });
    };
    let (a, _) = last.expect("runs > 0");
    let leaked_found = a.leaks.iter().filter(|l| l.kind == Kind::Definite && l.region.is_none()).map(|l| l.blocks).sum();
    let pause = median(pauses);
    let analysis = median(analyses);
    Ok(ScanBenchResult {
        heap_mib: config.heap_mib,
        blocks: a.blocks,
        block_bytes: a.block_bytes,
        leaked_expected: leaked,
        leaked_found,
        runs: config.runs,
        pause_s: pause,
        pause_s_per_gib: pause / (copied as f64 / f64::from(1u32 << 30)),
        copied_bytes: copied,
        analysis_s: analysis,
        analysis_gb_s: a.block_bytes as f64 / analysis / 1e9,
        scan_gb_s: a.scanned as f64 / analysis / 1e9,
        analysis_cpu_s: median(cpus.clone()),
        analysis_cpu_gb_s: a.block_bytes as f64 / median(cpus) / 1e9,
    })
}
