//! Watching a process grow, as the article does with top, pidstat and pmap:
//! /proc/PID/statm, smaps_rollup and maps sampled at an interval; per class
//! of mapping (heap, stack, anonymous, file) the size, the number of
//! mappings and the least-squares growth rate; a verdict; a live terminal
//! view and an SVG/PNG plot.
//!
//! A process that leaks shows it here only once the leak outgrows what the
//! allocator already holds: glibc takes the heap from the kernel 132 KiB at
//! a time and serves blocks of 128 KiB and more with their own mmap, so a
//! slow leak of small blocks leaves [heap] unchanged for a long while, and a
//! leak of large blocks grows the anonymous mappings, not [heap].

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::Error;
use crate::maps::Mapping;
use crate::report::RegionKind;

/// Set by the CLI's Ctrl-C handler while a watch runs: the watch stops,
/// summarizes and plots instead of dying.
pub static STOP: AtomicBool = AtomicBool::new(false);
/// True while a watch runs, so the CLI's Ctrl-C handler sets [`STOP`].
pub static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The class a mapping counts in: the kernel's heap and stacks apart, the
/// rest by the article's four kinds of memory.
#[must_use]
pub fn class(m: &Mapping) -> Class {
    match m.pseudo() {
        Some("[heap]") => return Class::Heap,
        Some(p) if p.starts_with("[stack") => return Class::Stack,
        _ => {}
    }
    match m.region_kind() {
        Some(RegionKind::PrivateAnon) => Class::PrivateAnon,
        Some(RegionKind::SharedAnon) => Class::SharedAnon,
        Some(RegionKind::PrivateFile) => Class::PrivateFile,
        Some(RegionKind::SharedFile) => Class::SharedFile,
        None => Class::Other,
    }
}

/// /proc/PID/statm: (virtual size, resident size) in bytes.
pub fn parse_statm(text: &str, page_size: u64) -> Result<(u64, u64), Error> {
    let bad = || Error::MalformedOutput { tool: "/proc/PID/statm".into(), message: format!("expected 7 page counts, got `{}`", text.trim()) };
    let fields: Vec<u64> = text.split_whitespace().map(str::parse).collect::<Result<_, _>>().map_err(|_| bad())?;
    if fields.len() != 7 {
        return Err(bad());
    }
    Ok((fields[0] * page_size, fields[1] * page_size))
}

/// /proc/PID/smaps_rollup: every `Key: N kB` field, in bytes.
pub fn parse_smaps_rollup(text: &str) -> Result<BTreeMap<String, u64>, Error> {
    let mut out = BTreeMap::new();
    for line in text.lines().skip_while(|l| !l.contains(':') || l.contains("[rollup]")) {
        let bad = || Error::MalformedOutput { tool: "/proc/PID/smaps_rollup".into(), message: format!("unexpected line `{line}`") };
        let (key, value) = line.split_once(':').ok_or_else(bad)?;
        let kib: u64 = value.trim().strip_suffix(" kB").ok_or_else(bad)?.trim().parse().map_err(|_| bad())?;
        out.insert(key.trim().to_string(), kib * 1024);
    }
    if !out.contains_key("Rss") {
        return Err(Error::MalformedOutput { tool: "/proc/PID/smaps_rollup".into(), message: "no Rss field".into() });
    }
    Ok(out)
}

/// A class of mappings, as the article groups pmap's lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    Heap,
    Stack,
    PrivateAnon,
    SharedAnon,
    PrivateFile,
    SharedFile,
    /// [vdso], [vvar], [vsyscall]: the kernel's, never a leak.
    Other,
}

impl Class {
    pub const ALL: [Class; 7] = [Class::Heap, Class::Stack, Class::PrivateAnon, Class::SharedAnon, Class::PrivateFile, Class::SharedFile, Class::Other];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Heap => "heap",
            Class::Stack => "stack",
            Class::PrivateAnon => "private-anon",
            Class::SharedAnon => "shared-anon",
            Class::PrivateFile => "private-file",
            Class::SharedFile => "shared-file",
            Class::Other => "other",
        }
    }
}

/// Size and count of one class's mappings at one time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClassSize {
    pub bytes: u64,
    pub mappings: u32,
}

/// One sample of a process.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the watch began.
    pub t: f64,
    pub rss: u64,
    pub vsz: u64,
    pub mappings: u32,
    /// Anonymous resident bytes (smaps_rollup's `Anonymous`).
    pub anonymous: u64,
    pub classes: BTreeMap<Class, ClassSize>,
}

/// Builds a sample from the three files' text.
pub fn sample_from(t: f64, statm: &str, rollup: &str, maps: &str, page_size: u64) -> Result<Sample, Error> {
    let (vsz, _) = parse_statm(statm, page_size)?;
    let rollup = parse_smaps_rollup(rollup)?;
    let maps = crate::maps::parse(maps)?;
    let mut classes: BTreeMap<Class, ClassSize> = BTreeMap::new();
    for m in &maps {
        let c = classes.entry(class(m)).or_default();
        c.bytes += m.len();
        c.mappings += 1;
    }
    Ok(Sample {
        t,
        rss: rollup["Rss"],
        vsz,
        mappings: maps.len() as u32,
        anonymous: rollup.get("Anonymous").copied().unwrap_or(0),
        classes,
    })
}

#[must_use]
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}

/// Reads one sample of a live process; None once it is gone.
pub fn sample_pid(pid: i32, t: f64) -> Result<Option<Sample>, Error> {
    let dir = format!("/proc/{pid}");
    let read = |name: &str| std::fs::read_to_string(format!("{dir}/{name}"));
    let (statm, rollup, maps) = match (read("statm"), read("smaps_rollup"), read("maps")) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) {
                return Ok(None);
            }
            return Err(Error::io(Path::new(&dir), e));
        }
    };
    // A zombie's files are empty: it is gone as far as memory goes.
    if maps.trim().is_empty() {
        return Ok(None);
    }
    sample_from(t, &statm, &rollup, &maps, page_size()).map(Some)
}

/// Least-squares slope of y over x; 0 with fewer than two distinct x.
#[must_use]
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        return 0.0;
    }
    points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / sxx
}

/// How one class changed over the watch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trend {
    pub class: Class,
    pub first: ClassSize,
    pub last: ClassSize,
    /// Least-squares rate of the class's size, bytes per second.
    pub rate: f64,
    /// It ends bigger than it began and its trend is upward. Mapping sizes
    /// are exact (no sampling noise), so any growth counts.
    pub growing: bool,
}

impl Trend {
    #[must_use]
    pub fn growth(&self) -> i64 {
        self.last.bytes as i64 - self.first.bytes as i64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Growing,
    Steady,
}

/// What a watch saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub seconds: f64,
    pub samples: usize,
    pub rss_rate: f64,
    pub vsz_rate: f64,
    pub trends: Vec<Trend>,
    /// Growing when a class of mappings grows (RSS alone also moves as
    /// pages are touched, which is no leak).
    pub verdict: Verdict,
}

/// Summarizes samples (in time order).
pub fn summarize(samples: &[Sample]) -> Result<Summary, Error> {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return Err(Error::Usage("the process ended before it could be sampled".into()));
    };
    let series = |f: &dyn Fn(&Sample) -> f64| samples.iter().map(|s| (s.t, f(s))).collect::<Vec<_>>();
    let mut trends = Vec::new();
    for class in Class::ALL {
        let size = |s: &Sample| s.classes.get(&class).copied().unwrap_or_default();
        if samples.iter().all(|s| size(s).mappings == 0) {
            continue;
        }
        let rate = slope(&series(&|s| size(s).bytes as f64));
        let (a, b) = (size(first), size(last));
        trends.push(Trend { class, first: a, last: b, rate, growing: b.bytes > a.bytes && rate > 0.0 });
    }
    let verdict = if trends.iter().any(|t| t.growing && t.class != Class::Other) { Verdict::Growing } else { Verdict::Steady };
    Ok(Summary {
        seconds: last.t - first.t,
        samples: samples.len(),
        rss_rate: slope(&series(&|s| s.rss as f64)),
        vsz_rate: slope(&series(&|s| s.vsz as f64)),
        trends,
        verdict,
    })
}

/// Options of one watch.
#[derive(Debug, Clone)]
pub struct Options {
    pub interval: Duration,
    /// Stop after this long; None: until the process ends or Ctrl-C.
    pub duration: Option<Duration>,
    /// Samples taken before this are start-up (the loader mapping libraries,
    /// the first heap), not growth, and are dropped.
    pub warmup: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options { interval: Duration::from_millis(250), duration: None, warmup: Duration::from_millis(500) }
    }
}

/// Why a watch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum End {
    Duration,
    ProcessEnded,
    Interrupted,
}

/// Samples `pid` until the duration passes, the process ends, or [`STOP`]
/// is set. `on_sample` sees every sample kept so far (for a live view).
pub fn watch_pid(pid: i32, options: &Options, mut on_sample: impl FnMut(&[Sample])) -> Result<(Vec<Sample>, End), Error> {
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut next = started + options.warmup;
    loop {
        let now = Instant::now();
        if STOP.load(Ordering::SeqCst) {
            return Ok((samples, End::Interrupted));
        }
        if options.duration.is_some_and(|d| now.duration_since(started) >= d + options.warmup) {
            return Ok((samples, End::Duration));
        }
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(50)));
            continue;
        }
        next += options.interval;
        let t = now.duration_since(started + options.warmup).as_secs_f64();
        match sample_pid(pid, t)? {
            Some(s) => {
                samples.push(s);
                on_sample(&samples);
            }
            None => return Ok((samples, End::ProcessEnded)),
        }
    }
}

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The last `width` values as a sparkline, scaled between their min and max.
#[must_use]
pub fn sparkline(values: &[f64], width: usize) -> String {
    let tail = &values[values.len().saturating_sub(width)..];
    let (lo, hi) = tail.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    tail.iter()
        .map(|&v| if hi > lo { BARS[(((v - lo) / (hi - lo)) * 7.0).round() as usize] } else { BARS[0] })
        .collect()
}

/// Bytes as KiB/MiB/GiB for people.
#[must_use]
pub fn human(bytes: f64) -> String {
    let a = bytes.abs();
    let (v, unit) = if a >= 1024.0 * 1024.0 * 1024.0 {
        (bytes / (1024.0 * 1024.0 * 1024.0), "GiB")
    } else if a >= 1024.0 * 1024.0 {
        (bytes / (1024.0 * 1024.0), "MiB")
    } else if a >= 1024.0 {
        (bytes / 1024.0, "KiB")
    } else {
        return format!("{bytes:.0} B");
    };
    format!("{v:.1} {unit}")
}

/// The live view: sparklines of RSS, VSZ and the mapping count, and the
/// classes' sizes and rates so far. One line each, for redrawing in place.
#[must_use]
pub fn live_view(samples: &[Sample], width: usize) -> Vec<String> {
    let Some(last) = samples.last() else { return vec!["waiting for the first sample...".into()] };
    let col = |f: &dyn Fn(&Sample) -> f64| samples.iter().map(f).collect::<Vec<f64>>();
    let mut lines = vec![
        format!("t={:>6.1}s  RSS  {:>10} {}", last.t, human(last.rss as f64), sparkline(&col(&|s| s.rss as f64), width)),
        format!("           VSZ  {:>10} {}", human(last.vsz as f64), sparkline(&col(&|s| s.vsz as f64), width)),
        format!("           maps {:>10} {}", last.mappings, sparkline(&col(&|s| f64::from(s.mappings)), width)),
    ];
    if let Ok(summary) = summarize(samples) {
        for t in summary.trends.iter().filter(|t| t.class != Class::Other) {
            lines.push(format!(
                "  {:<13}{:>10} in {:>3} mapping(s), {:>12}/s{}",
                t.class.as_str(),
                human(t.last.bytes as f64),
                t.last.mappings,
                human(t.rate),
                if t.growing { "  growing" } else { "" }
            ));
        }
    }
    lines
}

/// A text summary for the end of a watch.
#[must_use]
pub fn render_summary(s: &Summary) -> String {
    let mut out = format!(
        "{} over {:.1} s ({} samples): RSS {}/s, VSZ {}/s\n",
        match s.verdict {
            Verdict::Growing => "growing",
            Verdict::Steady => "steady",
        },
        s.seconds,
        s.samples,
        human(s.rss_rate),
        human(s.vsz_rate)
    );
    for t in &s.trends {
        out.push_str(&format!(
            "  {:<13} {:>10} -> {:>10} ({:+} B), {} -> {} mapping(s), {}/s{}\n",
            t.class.as_str(),
            human(t.first.bytes as f64),
            human(t.last.bytes as f64),
            t.growth(),
            t.first.mappings,
            t.last.mappings,
            human(t.rate),
            if t.growing { "  growing" } else { "" }
        ));
    }
    out
}

/// DejaVu from Debian's fonts-dejavu-core, read at run time: plotters
/// needs a font to draw text, and no system font library is involved.
/// Without the file the plots are drawn without text rather than failing.
const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

pub(crate) fn register_font() -> bool {
    static DONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DONE.get_or_init(|| match std::fs::read(FONT_PATH) {
        Ok(bytes) => {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, bytes).is_ok()
        }
        Err(_) => false,
    })
}

/// Writes the plot of RSS, VSZ (MiB) and the mapping count over time, as
/// SVG to `svg` and PNG to `png`. Returns whether the plots have text.
pub fn plot(samples: &[Sample], title: &str, svg: &Path, png: &Path) -> Result<bool, Error> {
    use plotters::prelude::*;
    if samples.is_empty() {
        return Err(Error::Usage("nothing to plot: no sample was taken".into()));
    }
    let text = register_font();
    fn draw<DB: DrawingBackend>(root: DrawingArea<DB, plotters::coord::Shift>, samples: &[Sample], title: &str, text: bool) -> Result<(), String>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = if text {
            root.titled(title, ("sans-serif", 26)).map_err(|e| e.to_string())?
        } else {
            root
        };
        let panels = root.split_evenly((3, 1));
        let t_max = samples.last().map_or(1.0, |s| s.t).max(0.001);
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);
        let series: [Series; 3] = [
            ("RSS (MiB)", RED, samples.iter().map(|s| (s.t, mib(s.rss))).collect()),
            ("VSZ (MiB)", BLUE, samples.iter().map(|s| (s.t, mib(s.vsz))).collect()),
            ("mappings", GREEN, samples.iter().map(|s| (s.t, f64::from(s.mappings))).collect()),
        ];
        for (area, (label, color, points)) in panels.iter().zip(series) {
            let (lo, hi) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
            // A count is whole: its axis runs between whole numbers and its
            // labels are whole (a flat 24 is not "23.5 .. 24.5" in tenths).
            let whole = label == "mappings";
            let pad = if whole { ((hi - lo) * 0.1).ceil().max(1.0) } else { ((hi - lo) * 0.1).max(hi.abs() * 0.01).max(0.5) };
            let mut builder = ChartBuilder::on(area);
            builder.margin(8);
            if text {
                builder.x_label_area_size(44).y_label_area_size(84).caption(label, ("sans-serif", 22));
            }
            let mut chart = builder.build_cartesian_2d(0.0..t_max, (lo - pad)..(hi + pad)).map_err(|e| e.to_string())?;
            let whole_label = |v: &f64| format!("{v:.0}");
            let mut mesh = chart.configure_mesh();
            // Only the major grid lines: the fine mesh drowns a slow trend.
            mesh.light_line_style(WHITE);
            if text {
                // The book shows the plot at about 750 px of its 900: 18 px
                // labels stay at 15 px there (plotters' default is 12).
                mesh.x_desc("seconds").label_style(("sans-serif", 18)).axis_desc_style(("sans-serif", 18));
            } else {
                mesh.disable_x_mesh().disable_y_mesh().x_labels(0).y_labels(0);
            }
            if whole && text {
                let span = (hi - lo + 2.0 * pad) as usize;
                mesh.y_labels((span + 1).clamp(2, 6)).y_label_formatter(&whole_label);
            }
            mesh.draw().map_err(|e| e.to_string())?;
            chart.draw_series(LineSeries::new(points, color.stroke_width(2))).map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())
    }
    let fail = |path: &Path, e: String| Error::Os(format!("plotting to {}: {e}", path.display()));
    draw(SVGBackend::new(svg, (900, 720)).into_drawing_area(), samples, title, text).map_err(|e| fail(svg, e))?;
    draw(BitMapBackend::new(png, (900, 720)).into_drawing_area(), samples, title, text).map_err(|e| fail(png, e))?;
    Ok(text)
}

/// What `leaklab watch` watches.
#[derive(Debug, Clone)]
pub enum Subject {
    Pid(i32),
    /// A program started (and in the end killed) by the watch.
    Program { program: std::path::PathBuf, args: Vec<String> },
}

/// The outcome of `leaklab watch`.
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    pub pid: i32,
    pub end: End,
    pub summary: Summary,
    pub svg: std::path::PathBuf,
    pub png: std::path::PathBuf,
    /// The plots have axis labels (the DejaVu font was found).
    pub plot_text: bool,
}

/// Watches a process until it ends, the duration passes or Ctrl-C ([`STOP`]),
/// redrawing a live view on stderr when `live`, then plots to
/// `plot_prefix`.svg and .png.
pub fn session(subject: &Subject, options: &Options, plot_prefix: &Path, live: bool) -> Result<Session, Error> {
    use std::io::Write;
    let mut child = None;
    let (pid, title) = match subject {
        Subject::Pid(pid) => {
            if !Path::new(&format!("/proc/{pid}/maps")).exists() {
                return Err(Error::Usage(format!("no process {pid} (or /proc/{pid} is not readable)")));
            }
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            (*pid, format!("{} (pid {pid})", comm.trim()))
        }
        Subject::Program { program, args } => {
            // Without --duration the program runs until Ctrl-C: a day is the bound.
            let bound = options.duration.map_or(Duration::from_secs(86_400), |d| d + options.warmup + Duration::from_secs(10));
            let spec = crate::process::Spec::new(program, bound).args(args).env_remove("LEAKLAB_CHECKPOINT");
            let c = crate::process::Child::spawn(&spec)?;
            let pid = c.pid();
            child = Some(c);
            let name = program.file_name().map_or_else(|| program.display().to_string(), |n| n.to_string_lossy().into_owned());
            (pid, format!("{name} {}", args.join(" ")))
        }
    };
    STOP.store(false, Ordering::SeqCst);
    ACTIVE.store(true, Ordering::SeqCst);
    let mut drawn = 0;
    let result = watch_pid(pid, options, |samples| {
        if !live {
            return;
        }
        let lines = live_view(samples, 60);
        let mut err = std::io::stderr().lock();
        if drawn > 0 {
            // Back to the first line of the previous view, then redraw.
            let _ = write!(err, "\x1b[{drawn}A");
        }
        for l in &lines {
            let _ = writeln!(err, "\x1b[2K{l}");
        }
        // A view that shrank leaves no stale lines below.
        for _ in lines.len()..drawn {
            let _ = writeln!(err, "\x1b[2K");
        }
        drawn = drawn.max(lines.len());
    });
    ACTIVE.store(false, Ordering::SeqCst);
    drop(child);
    let (samples, end) = result?;
    let summary = summarize(&samples)?;
    let svg = plot_prefix.with_extension("svg");
    let png = plot_prefix.with_extension("png");
    let plot_text = plot(&samples, &title, &svg, &png)?;
    Ok(Session { pid, end, summary, svg, png, plot_text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line() {
        let pts: Vec<(f64, f64)> = (0..10).map(|i| (f64::from(i), 3.0 * f64::from(i) + 7.0)).collect();
        assert!((slope(&pts) - 3.0).abs() < 1e-9);
        assert_eq!(slope(&[(1.0, 5.0)]), 0.0);
    }

    #[test]
    fn sparkline_scales() {
        assert_eq!(sparkline(&[0.0, 7.0], 10), "▁█");
        assert_eq!(sparkline(&[2.0, 2.0, 2.0], 2), "▁▁");
    }
}
