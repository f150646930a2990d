//! `leaklab bench --scan`: the cost of a scan on a big heap. A generated C
//! target makes a heap of the asked size in millions of blocks, leaks every
//! 16th, and stops at its checkpoint; it is then scanned several times with
//! each snapshot method while it waits, and the median pause, the scanner's
//! peak memory and the analysis throughput are reported. With several heap
//! sizes it is a sweep, and can be drawn (pause against heap size).

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::snapshot::{self, Method, Want};
use super::{analyse_with, AnalyseOptions};
use crate::error::Error;
use crate::process::{self, Child, Spec};
use crate::report::Kind;

const TARGET_SOURCE: &str = include_str!("bench_target.c");

/// Knobs.
#[derive(Debug, Clone)]
pub struct ScanBench {
    /// Heap sizes of the target, in MiB: one target each.
    pub heap_mib: Vec<u64>,
    pub runs: usize,
    /// The snapshot methods to measure, side by side on the same target.
    pub methods: Vec<Want>,
    /// Threads of the parallel analysis; 0: [`super::reach::default_threads`].
    pub threads: usize,
}

/// Figures of one method on one heap, medians over the runs.
#[derive(Debug, Clone, Serialize)]
pub struct ScanBenchRow {
    pub heap_mib: u64,
    /// The method asked for, and the one that ran (the fork may be refused).
    pub asked: &'static str,
    pub method: &'static str,
    /// Why the fork was not used, when it was asked for and refused.
    pub fork_refused: Option<String>,
    pub blocks: u64,
    pub block_bytes: u64,
    pub leaked_expected: u64,
    pub leaked_found: u64,
    pub runs: usize,
    /// Median time the target was stopped, in seconds.
    pub pause_s: f64,
    /// Median pause per GiB of memory taken.
    pub pause_s_per_gib: f64,
    /// Of the median run's pause: stopping, maps or fork, copy (seconds).
    pub pause_phases_s: [f64; 3],
    /// Bytes of the snapshot (address space of the copied mappings).
    pub copied_bytes: u64,
    /// Median peak resident memory of the scanner during a scan and its analysis, in KiB.
    pub peak_rss_kib: u64,
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
    /// Where the wall time went: each phase of the analysis with its median
    /// seconds on one thread and on all, in the order they run.
    pub phases: Vec<PhaseTime>,
}

/// One phase of the analysis.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseTime {
    pub phase: &'static str,
    /// Median wall seconds on one thread and on all.
    pub one_thread_s: f64,
    pub all_threads_s: f64,
    /// Median CPU seconds on one thread: what the phase costs, even on a busy machine.
    pub one_thread_cpu_s: f64,
}

/// Median seconds of each phase over runs (each run lists the same phases in the same order).
fn phase_medians(one: &[Vec<super::Phase>], all: &[Vec<super::Phase>]) -> Vec<PhaseTime> {
    let Some(first) = one.first() else { return Vec::new() };
    let of = |runs: &[Vec<super::Phase>], i: usize, cpu: bool| {
        median(runs.iter().filter_map(|r| r.get(i)).map(|p| if cpu { p.2 } else { p.1 }.as_secs_f64()).collect())
    };
    first
        .iter()
        .enumerate()
        .map(|(i, p)| PhaseTime { phase: p.0, one_thread_s: of(one, i, false), all_threads_s: of(all, i, false), one_thread_cpu_s: of(one, i, true) })
        .collect()
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

/// Every row, heap by heap, method by method.
#[derive(Debug, Clone, Serialize)]
pub struct ScanBenchResult {
    pub rows: Vec<ScanBenchRow>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The peak resident set of this process since the last reset, in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmHWM:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())))
        .unwrap_or(0)
}

/// Resets the peak resident set to the current one (clear_refs "5").
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn want_name(w: Want) -> &'static str {
    match w {
        Want::Fork => "fork",
        Want::Copy => "copy",
    }
}

/// Builds the target, and for each heap size runs it to its checkpoint and
/// scans it `runs` times with each method.
pub fn run(config: &ScanBench) -> Result<ScanBenchResult, Error> {
    if config.runs == 0 || config.heap_mib.is_empty() || config.heap_mib.contains(&0) || config.methods.is_empty() {
        return Err(Error::Usage("--runs and the heap sizes must be positive".into()));
    }
    let dir = crate::process::scratch()?;
    let src = dir.path().join("bench_target.c");
    let exe = dir.path().join("bench_target");
    std::fs::write(&src, TARGET_SOURCE).map_err(|e| Error::io(&src, e))?;
    let cc = process::run(&Spec::new("cc", Duration::from_secs(120)).arg("-O2").arg("-o").arg(&exe).arg(&src))?;
    if !cc.exit.success() {
        return Err(Error::TargetFailed { program: "cc".into(), how: cc.exit.describe(), stderr: cc.stderr_text() });
    }
    let mut rows = Vec::new();
    for &heap_mib in &config.heap_mib {
        rows.extend(one_heap(&exe, heap_mib, config)?);
    }
    Ok(ScanBenchResult { rows })
}

fn one_heap(exe: &Path, heap_mib: u64, config: &ScanBench) -> Result<Vec<ScanBenchRow>, Error> {
    let spec = Spec::new(exe, Duration::from_secs(600)).arg(heap_mib.to_string()).env("LEAKLAB_CHECKPOINT", "1");
    let mut child = Child::spawn(&spec)?;
    child.wait_stop()?;
    let verbose = std::env::var_os("LEAKLAB_BENCH_VERBOSE").is_some();
    let threads = match config.threads {
        0 => super::reach::default_threads()?,
        n => n,
    };
    let mut measured = Vec::new();
    for &want in &config.methods {
        let mut singles = Vec::new();
        let (mut one_phases, mut all_phases) = (Vec::new(), Vec::new());
        let (mut single_cpus, mut all_cpus) = (Vec::new(), Vec::new());
        let options = snapshot::Options { want };
        let mut pauses = Vec::new();
        let mut phases = Vec::new();
        let mut analyses = Vec::new();
        let mut cpus = Vec::new();
        let mut peaks = Vec::new();
        let mut last = None;
        for _ in 0..config.runs {
            reset_peak_rss();
            let snap = snapshot::take(child.pid(), &options)?;
            let cpu0 = process_cpu();
            let one = analyse_with(&snap, super::StopPoint::Checkpoint, &AnalyseOptions { threads: 1 });
            let cpu1 = process_cpu();
            let all = if threads == 1 { None } else { Some(analyse_with(&snap, super::StopPoint::Checkpoint, &AnalyseOptions { threads })) };
            let cpu2 = process_cpu();
            single_cpus.push(cpu1 - cpu0);
            all_cpus.push(if threads == 1 { cpu1 - cpu0 } else { cpu2 - cpu1 });
            if let Some(all) = &all {
                if all.leaks != one.leaks || all.walk.blocks.len() != one.walk.blocks.len() {
                    return Err(Error::MalformedOutput { tool: "scan bench".into(), message: format!("the analysis on {threads} threads differs from the one on one thread") });
                }
            }
            singles.push(one.elapsed.as_secs_f64());
            one_phases.push(one.phases.clone());
            let a = all.unwrap_or(one);
            all_phases.push(a.phases.clone());
            peaks.push(peak_rss_kib() as f64);
            let copied: u64 = snap.memory.segments().iter().map(|s| s.data.len() as u64).sum();
            if verbose {
                eprintln!(
                    "{}: pause {:?} (stop, maps/fork, copy: {:?}); analysis {:?} ({:?})",
                    snap.method.name(),
                    snap.pause,
                    snap.pause_phases,
                    a.elapsed,
                    a.phases
                );
            }
            pauses.push(snap.pause.as_secs_f64());
            phases.push((snap.pause.as_secs_f64(), snap.pause_phases.map(|d| d.as_secs_f64())));
            analyses.push(a.elapsed.as_secs_f64());
            cpus.push(a.cpu.as_secs_f64());
            last = Some((a, snap.method.clone(), copied));
        }
        let (a, method, copied) = last.expect("runs > 0");
        let pause = median(pauses);
        let analysis = median(analyses.clone());
        let mid = phases.iter().find(|p| p.0 == pause).map_or([0.0; 3], |p| p.1);
        let one_thread = Speed::of(1, singles, single_cpus, a.block_bytes);
        let all_threads = Speed::of(threads, analyses, all_cpus, a.block_bytes);
        let speed = AnalysisSpeed {
            heap_bytes: a.block_bytes,
            speedup: one_thread.analysis_s / all_threads.analysis_s,
            one_thread,
            all_threads,
            phases: phase_medians(&one_phases, &all_phases),
        };
        measured.push((want, a, method, copied, pause, mid, analysis, median(cpus), median(peaks) as u64, speed));
    }
    child.resume();
    let finished = child.finish()?;
    let out = String::from_utf8_lossy(&finished.stdout).into_owned();
    let mut nums = out.split_whitespace().map(|w| w.parse::<u64>());
    let (Some(Ok(_made)), Some(Ok(leaked))) = (nums.next(), nums.next()) else {
        return Err(Error::MalformedOutput { tool: "bench target".into(), message: format!("expected two counts, got {out:?}") });
    };
    Ok(measured
        .into_iter()
        .map(|(want, a, method, copied, pause, mid, analysis, cpu, peak, speed)| ScanBenchRow {
            heap_mib,
            asked: want_name(want),
            method: method.name(),
            fork_refused: match &method {
                Method::Copy { fork_refused } => fork_refused.clone(),
                Method::Fork => None,
            },
            blocks: a.blocks,
            block_bytes: a.block_bytes,
            leaked_expected: leaked,
            leaked_found: a.leaks.iter().filter(|l| l.kind == Kind::Definite && l.region.is_none()).map(|l| l.blocks).sum(),
            runs: config.runs,
            pause_s: pause,
            pause_s_per_gib: pause / (copied as f64 / f64::from(1u32 << 30)),
            pause_phases_s: mid,
            copied_bytes: copied,
            peak_rss_kib: peak,
            analysis_s: analysis,
            analysis_gb_s: a.block_bytes as f64 / analysis / 1e9,
            scan_gb_s: a.scanned as f64 / analysis / 1e9,
            analysis_cpu_s: cpu,
            analysis_cpu_gb_s: a.block_bytes as f64 / cpu / 1e9,
            analysis: speed,
        })
        .collect())
}

/// The analysis figures as a table.
#[must_use]
pub fn render_analysis(a: &AnalysisSpeed) -> String {
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::ASCII_FULL_CONDENSED);
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
    let mut out = format!(
        "{table}\nanalysis of {:.2} GB of heap, timed from the image to the report (heap walk, roots, marking, grouping, verdict); {:.2}x faster on all threads (goal: >= 2 GB/s)\n",
        a.heap_bytes as f64 / 1e9,
        a.speedup
    );
    if !a.phases.is_empty() {
        out.push_str("phases, median wall seconds on one thread / on all (CPU seconds on one):");
        for p in &a.phases {
            out.push_str(&format!(" {} {:.3}/{:.3} ({:.3});", p.phase, p.one_thread_s, p.all_threads_s, p.one_thread_cpu_s));
        }
        out.pop();
        out.push('\n');
    }
    out
}

/// The table of `bench --scan`.
#[must_use]
pub fn render(result: &ScanBenchResult) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:>8}  {:<6} {:>6} {:>10} {:>10} {:>10} {:>9} {:>11} {:>12}  {}\n",
        "heap MiB", "method", "runs", "pause ms", "s per GiB", "peak MiB", "analysis", "GB/s heap", "leaks found", "fork"
    ));
    for r in &result.rows {
        out.push_str(&format!(
            "{:>8}  {:<6} {:>6} {:>10.1} {:>10.3} {:>10.0} {:>8.2}s {:>11.2} {:>12}  {}\n",
            r.heap_mib,
            r.method,
            r.runs,
            r.pause_s * 1000.0,
            r.pause_s_per_gib,
            r.peak_rss_kib as f64 / 1024.0,
            r.analysis_s,
            r.analysis_gb_s,
            format!("{}/{}", r.leaked_found, r.leaked_expected),
            match (&r.fork_refused, r.asked) {
                (Some(why), _) => format!("refused: {why}"),
                (None, "copy") => "not asked".to_string(),
                (None, _) => "used".to_string(),
            }
        ));
    }
    for r in &result.rows {
        out.push_str(&format!("\n{} MiB, {} snapshot:\n", r.heap_mib, r.method));
        out.push_str(&render_analysis(&r.analysis));
    }
    // Side by side: the ratio of the pauses, heap by heap.
    for heap in result.rows.iter().map(|r| r.heap_mib).collect::<std::collections::BTreeSet<_>>() {
        let of = |m: &str| result.rows.iter().find(|r| r.heap_mib == heap && r.asked == m && r.method == m).map(|r| r.pause_s);
        if let (Some(f), Some(c)) = (of("fork"), of("copy")) {
            out.push_str(&format!("{heap} MiB: the fork pauses the target {:.1}x less than the copy\n", c / f));
        }
    }
    out
}

/// A log axis's label: only at 1, 2 and 5 times a power of ten (the
/// ticks between them would crowd the decade's top).
fn one_two_five(v: &f64) -> String {
    if *v <= 0.0 {
        return String::new();
    }
    let m = v / 10f64.powf(v.log10().floor());
    if [1.0, 2.0, 5.0].iter().any(|k| (m - k).abs() < 0.01) { format!("{v:.0}") } else { String::new() }
}

/// Draws the pause (ms) against the heap size (MiB), one line per method,
/// as SVG: 720 px wide for the book's column, text of 18 px and more (the
/// book shrinks the figure to its column). The pause axis is logarithmic:
/// the fork's pauses are a tenth of the copy's, a flat line at the bottom
/// of a linear axis.
pub fn plot(result: &ScanBenchResult, svg: &Path) -> Result<(), Error> {
    use plotters::prelude::*;
    let text = crate::watch::register_font();
    let max_heap = result.rows.iter().map(|r| r.heap_mib).max().unwrap_or(1) as f64;
    let max_pause = result.rows.iter().map(|r| r.pause_s * 1000.0).fold(1.0, f64::max);
    let min_pause = result.rows.iter().map(|r| r.pause_s * 1000.0).filter(|&p| p > 0.0).fold(max_pause, f64::min);
    let draw = || -> Result<(), String> {
        let root = SVGBackend::new(svg, (720, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut builder = ChartBuilder::on(&root);
        builder.margin(16);
        if text {
            builder.caption("Pause of a scan against heap size", ("sans-serif", 26)).x_label_area_size(60).y_label_area_size(84);
        }
        let mut chart = builder.build_cartesian_2d(0.0..max_heap * 1.05, (min_pause / 2.0..max_pause * 2.0).log_scale()).map_err(|e| e.to_string())?;
        let mut mesh = chart.configure_mesh();
        mesh.light_line_style(WHITE);
        if text {
            mesh.x_desc("heap (MiB)").y_desc("pause (ms, log scale)").label_style(("sans-serif", 18)).axis_desc_style(("sans-serif", 20)).x_label_formatter(&|v| format!("{v:.0}")).y_label_formatter(&one_two_five);
        }
        mesh.draw().map_err(|e| e.to_string())?;
        for (method, color) in [("copy", RED), ("fork", BLUE)] {
            let points: Vec<(f64, f64)> =
                result.rows.iter().filter(|r| r.method == method && r.asked == method).map(|r| (r.heap_mib as f64, r.pause_s * 1000.0)).collect();
            if points.is_empty() {
                continue;
            }
            let series = chart.draw_series(LineSeries::new(points.clone(), color.stroke_width(2))).map_err(|e| e.to_string())?;
            if text {
                series.label(method).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            }
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled()))).map_err(|e| e.to_string())?;
        }
        if text {
            chart.configure_series_labels().position(SeriesLabelPosition::UpperLeft).background_style(WHITE).border_style(BLACK).label_font(("sans-serif", 20)).draw().map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())
    };
    draw().map_err(|e| Error::Os(format!("plotting to {}: {e}", svg.display())))
}
