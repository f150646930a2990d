//! `leaklab bench --scan`: the cost of a scan on a big heap. A generated C
//! target makes about 1 GiB of heap in millions of blocks, leaks every 16th,
//! and stops at its checkpoint; it is then scanned several times while it
//! waits, and the median pause and analysis throughput are reported. Each
//! snapshot is analysed on one thread and on all of them ([`AnalysisSpeed`]),
//! and the two analyses must agree.

use std::time::Duration;

use serde::Serialize;

use super::{analyse_with, snapshot, AnalyseOptions};
use crate::error::Error;
use crate::process::{self, Child, Spec};
use crate::report::Kind;

const TARGET_SOURCE: &str = include_str!("bench_target.c");

/// Knobs.
#[derive(Debug, Clone)]
pub struct ScanBench {
    pub heap_mib: u64,
    pub runs: usize,
    /// Threads of the parallel analysis; 0: [`super::reach::default_threads`].
    pub threads: usize,
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
    /// The analysis on one thread and on all.
    pub analysis: AnalysisSpeed,
}

/// Analysis throughput: heap bytes analysed (the blocks in use) over the
/// wall time of the analysis (walk, mark, group), medians over the runs.
#[derive(Debug, Clone, Serialize)]
pub struct AnalysisSpeed {
    pub heap_bytes: u64,
    pub one_thread: Speed,
    pub all_threads: Speed,
    /// `all_threads` over `one_thread` (wall time).
    pub speedup: f64,
}

/// One thread count's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Speed {
    pub threads: usize,
    /// Median wall time of the analysis, in seconds.
    pub analysis_s: f64,
    /// GB/s (10^9) in all.
    pub gb_s: f64,
    /// GB/s per thread used.
    pub gb_s_per_core: f64,
    /// Median CPU time of the analysis over all its threads, in seconds: on
    /// a busy machine the wall time includes waiting for a core.
    pub cpu_s: f64,
    /// GB/s of heap per second of CPU.
    pub cpu_gb_s: f64,
}

impl Speed {
    fn of(threads: usize, times: Vec<f64>, cpu: Vec<f64>, bytes: u64) -> Speed {
        let s = median(times);
        let cpu_s = median(cpu);
        let gb_s = bytes as f64 / s / 1e9;
        Speed { threads, analysis_s: s, gb_s, gb_s_per_core: gb_s / threads as f64, cpu_s, cpu_gb_s: bytes as f64 / cpu_s / 1e9 }
    }
}

/// CPU time of this process (all threads): the bench runs nothing else while it analyses.
fn process_cpu() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// The analysis figures as a table.
#[must_use]
pub fn render_analysis(a: &AnalysisSpeed) -> String {
    let mut table = comfy_table::Table::new();
    table.set_header(["analysis", "threads", "median wall", "GB/s", "GB/s per core", "median CPU", "GB/s per CPU second"]);
    for (name, s) in [("one thread", &a.one_thread), ("all threads", &a.all_threads)] {
        let right = |s: String| comfy_table::Cell::new(s).set_alignment(comfy_table::CellAlignment::Right);
        table.add_row(vec![
            comfy_table::Cell::new(name),
            right(s.threads.to_string()),
            right(format!("{:.3} s", s.analysis_s)),
            right(format!("{:.2}", s.gb_s)),
            right(format!("{:.2}", s.gb_s_per_core)),
            right(format!("{:.3} s", s.cpu_s)),
            right(format!("{:.2}", s.cpu_gb_s)),
        ]);
    }
    format!("{table}\nanalysis of {:.2} GB of heap; {:.2}x faster on all threads (goal: >= 2 GB/s)\n", a.heap_bytes as f64 / 1e9, a.speedup)
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
    let threads = match config.threads {
        0 => super::reach::default_threads()?,
        n => n,
    };
    let mut pauses = Vec::new();
    let mut analyses = Vec::new();
    let mut singles = Vec::new();
    let (mut single_cpus, mut all_cpus) = (Vec::new(), Vec::new());
    let mut cpus = Vec::new();
    let mut last = None;
    let mut copied = 0;
    for _ in 0..config.runs {
        let snap = snapshot::take(child.pid())?;
        let cpu0 = process_cpu();
        let one = analyse_with(&snap, super::StopPoint::Checkpoint, &AnalyseOptions { threads: 1 });
        let cpu1 = process_cpu();
        let a = if threads == 1 { None } else { Some(analyse_with(&snap, super::StopPoint::Checkpoint, &AnalyseOptions { threads })) };
        let cpu2 = process_cpu();
        single_cpus.push(cpu1 - cpu0);
        all_cpus.push(if threads == 1 { cpu1 - cpu0 } else { cpu2 - cpu1 });
        if let Some(a) = &a {
            if a.leaks != one.leaks || a.walk.blocks.len() != one.walk.blocks.len() {
                return Err(Error::MalformedOutput { tool: "scan bench".into(), message: format!("the analysis on {threads} threads differs from the one on one thread") });
            }
        }
        copied = snap.memory.segments().iter().map(|s| s.data.len() as u64).sum();
        if verbose {
            eprintln!("pause {:?} (stop, maps, copy: {:?}); analysis on 1 thread {:?} (walk, mark, group: {:?})", snap.pause, snap.pause_phases, one.elapsed, one.phases);
            if let Some(a) = &a {
                eprintln!("  on {threads} threads {:?} (walk, mark, group: {:?})", a.elapsed, a.phases);
            }
        }
        pauses.push(snap.pause.as_secs_f64());
        singles.push(one.elapsed.as_secs_f64());
        cpus.push(one.cpu.as_secs_f64());
        let a = a.unwrap_or(one);
        analyses.push(a.elapsed.as_secs_f64());
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
    let analysis = median(analyses.clone());
    let one_thread = Speed::of(1, singles, single_cpus, a.block_bytes);
    let all_threads = Speed::of(threads, analyses, all_cpus, a.block_bytes);
    let speed = AnalysisSpeed { heap_bytes: a.block_bytes, speedup: one_thread.analysis_s / all_threads.analysis_s, one_thread, all_threads };
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
        analysis: speed,
    })
}
