//! `leaklab bench`: what a detector costs. An allocation-heavy program
//! (harness/bench/alloc_storm.cpp: threads replacing blocks of 16..4096
//! bytes with malloc/free, new[]/delete[] and new/delete) runs natively and
//! under each tool that can run here, several times each (round-robin, so
//! that a change of load weighs on every tool alike), once with 4 threads
//! and once with 1 by default; the tables give the median wall and CPU time
//! and peak RSS, their ratios to native, and the CPU ratio of every tool to
//! every other.
//!
//! A tool joins the bench by adding a [`Contender`] to [`contenders`]: a
//! name, and a function that wraps the command line (or says why it cannot
//! run here and how to fix that).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::error::Error;
use crate::process::{self, Spec};

/// The bench program build.rs compiled.
pub const ALLOC_STORM: &str = env!("LEAKLAB_ALLOC_STORM");

/// A tool that cannot run here: why, and the command that fixes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Missing {
    pub reason: String,
    pub fix: String,
}

/// One way of running the bench program.
pub struct Contender {
    pub name: &'static str,
    /// What is measured, in a few words.
    pub summary: &'static str,
    /// The command that runs `program args` this way; `scratch` is an empty
    /// directory of this run for the tool's output files.
    pub wrap: fn(program: &Path, args: &[String], scratch: &Path, timeout: Duration) -> Result<Spec, Missing>,
}

/// Every contender, native first.
#[must_use]
pub fn contenders() -> Vec<Contender> {
    vec![
        Contender { name: "native", summary: "the program alone", wrap: native },
        Contender { name: "hook", summary: "leaklab's LD_PRELOAD shim, a stack per block", wrap: hook },
        Contender { name: "lsan", summary: "gcc's LeakSanitizer runtime by LD_PRELOAD (liblsan.so.0)", wrap: lsan },
        Contender { name: "heaptrack", summary: "heaptrack, recording every call", wrap: heaptrack },
        Contender { name: "valgrind", summary: "valgrind memcheck, --leak-check=full", wrap: valgrind },
        Contender { name: "mtrace", summary: "glibc's mtrace log (libc_malloc_debug.so.0), one line per call", wrap: mtrace },
        Contender { name: "dmalloc", summary: "dmalloc's checking malloc (libdmallocthcxx), not-freed log at exit", wrap: dmalloc },
        Contender { name: "efence", summary: "Electric Fence, a guard page per block", wrap: efence },
        Contender { name: "jemalloc", summary: "jemalloc by LD_PRELOAD, every allocation sampled (lg_prof_sample:0), final profile", wrap: jemalloc },
        Contender { name: "tcmalloc", summary: "gperftools' heap checker (libtcmalloc.so.4, HEAPCHECK=normal)", wrap: tcmalloc },
        Contender { name: "asan", summary: "AddressSanitizer: the program rebuilt with -fsanitize=address, leak check at exit", wrap: asan },
        Contender { name: "lsan-clang", summary: "clang's LeakSanitizer: the program rebuilt with clang -fsanitize=leak", wrap: lsan_clang },
        Contender { name: "asan-clang", summary: "clang's AddressSanitizer: the program rebuilt with clang -fsanitize=address", wrap: asan_clang },
    ]
}

fn native(program: &Path, args: &[String], _scratch: &Path, timeout: Duration) -> Result<Spec, Missing> {
    Ok(Spec::new(program, timeout).args(args))
}

fn hook(program: &Path, args: &[String], scratch: &Path, timeout: Duration) -> Result<Spec, Missing> {
    let shim = crate::backends::hook::shim();
    let shim = shim.as_str();
    if !Path::new(shim).is_file() {
        return Err(Missing { reason: format!("the shim {shim} is missing"), fix: "cargo build".into() });
    }
    Ok(Spec::new(program, timeout).args(args).env("LD_PRELOAD", shim).env("LEAKLAB_HOOK_OUT", scratch.join("hook.%p.dump")))
}

/// Where Debian's gcc puts the LeakSanitizer runtime.
const LIBLSAN: &str = "/usr/lib/x86_64-linux-gnu/liblsan.so.0";

fn lsan(program: &Path, args: &[String], _scratch: &Path, timeout: Duration) -> Result<Spec, Missing> {
    if !Path::new(LIBLSAN).is_file() {
        return Err(Missing { reason: format!("{LIBLSAN} is missing"), fix: "apt-get install -y liblsan0".into() });
    }
    Ok(Spec::new(program, timeout).args(args).env("LD_PRELOAD", LIBLSAN))
}

fn heaptrack(program: &Path, args: &[String], scratch: &Path, timeout: Duration) -> Result<Spec, Missing> {
    tool("heaptrack", "heaptrack")?;
    // -r: record only; the analysis (heaptrack_print) is not part of the run's cost.
    Ok(Spec::new("heaptrack", timeout).arg("-r").arg("-o").arg(scratch.join("heaptrack.%p")).arg(program).args(args))
}

fn valgrind(program: &Path, args: &[String], _scratch: &Path, timeout: Duration) -> Result<Spec, Missing> {
    tool("valgrind", "valgrind")?;
    Ok(Spec::new("valgrind", timeout).args(["--tool=memcheck", "--leak-check=full", "-q"]).arg(program).args(args))
}

fn mtrace(program: &Path, args: &[String], scratch: &Path, timeout: Duration) -> Result<Spec, Missing> {
    let debug = crate::backends::mtrace::debug_library()
        .ok_or_else(|| Missing { reason: "glibc's libc_malloc_debug.so.0 is missing".into(), fix: "apt-get install -y libc6".into() })?;
    let starter = crate::backends::mtrace::starter().map_err(|e| Missing { reason: e.to_string(), fix: "cargo build --release".into() })?;
    Ok(Spec::new(program, timeout)
        .args(args)
        .env("LD_PRELOAD", format!("{}:{}", debug.display(), starter.display()))
        .env("LEAKLAB_MTRACE", scratch.join("mtrace")))
}

fn dmalloc(program: &Path, args: &[String], scratch: &Path, timeout: Duration) -> Result<Spec, Missing> {
    let lib = crate::backends::dmalloc::library()
        .ok_or_else(|| Missing { reason: "dmalloc's libdmallocthcxx.so.5 is missing".into(), fix: "apt-get install -y libdmalloc5".into() })?;
    Ok(Spec::new(program, timeout)
        .args(args)
        .env("LD_PRELOAD", lib)
        .env("DMALLOC_OPTIONS", format!("log-stats,log-non-free,check-fence,log={}", scratch.join("dmalloc.%p").display())))
}

fn efence(program: &Path, args: &[String], _scratch: &Path, timeout: Duration) -> Result<Spec, Missing> {
    let lib = crate::backends::efence::library()
        .ok_or_else(|| Missing { reason: "Electric Fence's libefence.so.0.0 is missing".into(), fix: "apt-get install -y electric-fence".into() })?;
    Ok(Spec::new(program, timeout).args(args).env("LD_PRELOAD", lib))
}

fn jemalloc(program: &Path, args: &[String], scratch: &Path, timeout: Duration) -> Result<Spec, Missing> {
    let lib = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
    if !Path::new(lib).is_file() {
        return Err(Missing { reason: format!("{lib} is missing"), fix: "apt-get install -y libjemalloc2".into() });
    }
    let conf = format!("prof:true,prof_leak:true,prof_final:true,lg_prof_sample:0,prof_prefix:{}/jeprof", scratch.display());
    Ok(Spec::new(program, timeout).args(args).env("LD_PRELOAD", lib).env("MALLOC_CONF", conf))
}

fn tcmalloc(program: &Path, args: &[String], scratch: &Path, timeout: Duration) -> Result<Spec, Missing> {
    let lib = "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4";
    if !Path::new(lib).is_file() {
        return Err(Missing { reason: format!("{lib} is missing"), fix: "apt-get install -y libgoogle-perftools4".into() });
    }
    Ok(Spec::new(program, timeout)
        .args(args)
        .env("LD_PRELOAD", lib)
        .env("HEAPCHECK", "normal")
        .env("HEAP_CHECK_DUMP_DIRECTORY", scratch))
}

/// ASan's checks are compiled in: the bench program's own ASan build
/// (build.rs) runs in its place, with the same arguments.
fn asan(_program: &Path, args: &[String], scratch: &Path, timeout: Duration) -> Result<Spec, Missing> {
    let built = env!("LEAKLAB_ALLOC_STORM_ASAN");
    if built.is_empty() {
        return Err(Missing { reason: "gcc could not link the bench program with -fsanitize=address".into(), fix: "apt-get install -y libasan8 && cargo build --release".into() });
    }
    let program = crate::artifacts::resolve(built).map_err(|e| Missing { reason: e.to_string(), fix: "cargo build --release".into() })?;
    Ok(Spec::new(program, timeout)
        .args(args)
        .env("ASAN_OPTIONS", format!("detect_leaks=1:exitcode=0:log_path={}/asan", scratch.display())))
}

/// clang's runtimes are linked into the program: its clang builds
/// (build.rs) run in its place, with the same arguments.
fn lsan_clang(_program: &Path, args: &[String], scratch: &Path, timeout: Duration) -> Result<Spec, Missing> {
    clang_storm(env!("LEAKLAB_ALLOC_STORM_LSAN_CLANG"), "-fsanitize=leak", args, timeout)
        .map(|spec| spec.env("LSAN_OPTIONS", format!("exitcode=0:log_path={}/lsan", scratch.display())))
}

fn asan_clang(_program: &Path, args: &[String], scratch: &Path, timeout: Duration) -> Result<Spec, Missing> {
    clang_storm(env!("LEAKLAB_ALLOC_STORM_ASAN_CLANG"), "-fsanitize=address", args, timeout)
        .map(|spec| spec.env("ASAN_OPTIONS", format!("detect_leaks=1:exitcode=0:log_path={}/asan", scratch.display())))
}

fn clang_storm(built: &str, flag: &str, args: &[String], timeout: Duration) -> Result<Spec, Missing> {
    if built.is_empty() {
        return Err(Missing { reason: format!("clang could not build the bench program with {flag}"), fix: crate::backends::lsan::CLANG_FIX.into() });
    }
    let program = crate::artifacts::resolve(built).map_err(|e| Missing { reason: e.to_string(), fix: "cargo build --release".into() })?;
    Ok(Spec::new(program, timeout).args(args))
}

fn tool(binary: &str, package: &str) -> Result<PathBuf, Missing> {
    which::which(binary)
        .map_err(|_| Missing { reason: format!("{binary} is not installed"), fix: format!("apt-get install -y {package}") })
}

/// Knobs of a bench.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Contender names; empty means all.
    pub only: Vec<String>,
    pub runs: usize,
    /// One storm per entry: the program's thread count.
    pub threads: Vec<u32>,
    /// Allocation steps per thread (each replaces one block: a free and an allocation).
    pub steps: u64,
    /// Bound on one run.
    pub timeout: Duration,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig { only: Vec::new(), runs: 5, threads: vec![4, 1], steps: 1_000_000, timeout: Duration::from_secs(600) }
    }
}

/// One contender's figures in one storm.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub summary: String,
    /// Why it did not run, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<Missing>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Wall time of each run, in ms.
    pub wall_ms: Vec<f64>,
    /// User + system CPU time of each run, in ms.
    pub cpu_ms: Vec<f64>,
    /// Peak RSS of each run, in KiB.
    pub peak_rss_kib: Vec<u64>,
    pub median_wall_ms: Option<f64>,
    pub median_cpu_ms: Option<f64>,
    pub median_peak_rss_kib: Option<u64>,
    /// Median wall time over native's.
    pub slowdown: Option<f64>,
    /// Median CPU time over native's.
    pub cpu_ratio: Option<f64>,
    /// Median peak RSS over native's.
    pub memory_ratio: Option<f64>,
    /// Median CPU time over each other contender's that ran, by name.
    pub cpu_ratio_to: std::collections::BTreeMap<String, f64>,
    /// Median wall time over each other contender's that ran, by name.
    pub wall_ratio_to: std::collections::BTreeMap<String, f64>,
}

/// One storm: the program with one thread count, under every contender.
#[derive(Debug, Clone, Serialize)]
pub struct Storm {
    pub threads: u32,
    pub steps_per_thread: u64,
    /// malloc/free pairs (and new/delete pairs) over all threads.
    pub allocations: u64,
    pub rows: Vec<Row>,
}

/// The whole bench.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub program: String,
    pub runs: usize,
    pub storms: Vec<Storm>,
}

fn median_f(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => None,
        n if n % 2 == 1 => Some(s[n / 2]),
        n => Some((s[n / 2 - 1] + s[n / 2]) / 2.0),
    }
}

fn median_u(v: &[u64]) -> Option<u64> {
    let mut s = v.to_vec();
    s.sort_unstable();
    match s.len() {
        0 => None,
        n if n % 2 == 1 => Some(s[n / 2]),
        n => Some((s[n / 2 - 1] + s[n / 2]) / 2),
    }
}

fn empty_row(c: &Contender) -> Row {
    Row {
        name: c.name.to_string(),
        summary: c.summary.to_string(),
        missing: None,
        error: None,
        wall_ms: Vec::new(),
        cpu_ms: Vec::new(),
        peak_rss_kib: Vec::new(),
        median_wall_ms: None,
        median_cpu_ms: None,
        median_peak_rss_kib: None,
        slowdown: None,
        cpu_ratio: None,
        memory_ratio: None,
        cpu_ratio_to: std::collections::BTreeMap::new(),
        wall_ratio_to: std::collections::BTreeMap::new(),
    }
}

/// Runs the bench. `progress` gets (contender, run number, runs) before each run.
pub fn bench(config: &BenchConfig, progress: &dyn Fn(&str, usize, usize)) -> Result<BenchResult, Error> {
    if config.runs == 0 {
        return Err(Error::Usage("--runs must be at least 1".into()));
    }
    if config.threads.is_empty() || config.threads.iter().any(|&t| t == 0 || t > 256) || config.steps == 0 {
        return Err(Error::Usage("--threads must be 1..=256 and --steps at least 1".into()));
    }
    let all = contenders();
    for name in &config.only {
        if !all.iter().any(|c| c.name == name) {
            let known: Vec<&str> = all.iter().map(|c| c.name).collect();
            return Err(Error::Usage(format!("no bench contender `{name}`; known: {}", known.join(", "))));
        }
    }
    let program = crate::artifacts::resolve(ALLOC_STORM)?;
    // Native always runs: it is what the ratios divide by.
    let chosen: Vec<&Contender> =
        all.iter().filter(|c| c.name == "native" || config.only.is_empty() || config.only.iter().any(|o| o == c.name)).collect();
    let mut storms = Vec::new();
    for &threads in &config.threads {
        let args = vec![threads.to_string(), config.steps.to_string()];
        let mut rows: Vec<Row> = chosen.iter().map(|c| empty_row(c)).collect();
        // Round-robin, one run of each contender in turn: a change of load on
        // the machine then weighs on every contender alike.
        for run in 0..config.runs {
            for (c, row) in chosen.iter().zip(rows.iter_mut()) {
                if row.missing.is_some() || row.error.is_some() {
                    continue;
                }
                progress(c.name, run + 1, config.runs);
                let scratch = crate::process::scratch()?;
                let spec = match (c.wrap)(&program, &args, scratch.path(), config.timeout) {
                    Ok(spec) => spec.env_remove("LEAKLAB_CHECKPOINT"),
                    Err(m) => {
                        row.missing = Some(m);
                        continue;
                    }
                };
                match process::run(&spec) {
                    Ok(f) if f.exit.success() => {
                        row.wall_ms.push(f.wall.as_secs_f64() * 1000.0);
                        row.cpu_ms.push(f.cpu.as_secs_f64() * 1000.0);
                        row.peak_rss_kib.push(f.peak_rss_kib);
                    }
                    Ok(f) => row.error = Some(format!("the run {}: {}", f.exit.describe(), f.stderr_text().lines().last().unwrap_or(""))),
                    Err(e) => row.error = Some(e.to_string()),
                }
            }
        }
        for row in &mut rows {
            if row.error.is_some() {
                row.wall_ms.clear();
                row.cpu_ms.clear();
                row.peak_rss_kib.clear();
            }
            row.median_wall_ms = median_f(&row.wall_ms);
            row.median_cpu_ms = median_f(&row.cpu_ms);
            row.median_peak_rss_kib = median_u(&row.peak_rss_kib);
        }
        let base = rows.iter().find(|r| r.name == "native").map(|r| (r.median_wall_ms, r.median_cpu_ms, r.median_peak_rss_kib));
        if let Some((Some(wall), Some(cpu), Some(rss))) = base {
            for r in &mut rows {
                r.slowdown = r.median_wall_ms.map(|w| w / wall);
                r.cpu_ratio = r.median_cpu_ms.map(|c| c / cpu.max(1e-3));
                r.memory_ratio = r.median_peak_rss_kib.map(|k| k as f64 / rss.max(1) as f64);
            }
        }
        let medians: Vec<(String, Option<f64>, Option<f64>)> = rows.iter().map(|r| (r.name.clone(), r.median_wall_ms, r.median_cpu_ms)).collect();
        for r in &mut rows {
            for (other, wall, cpu) in &medians {
                if *other == r.name {
                    continue;
                }
                if let (Some(mine), Some(theirs)) = (r.median_cpu_ms, cpu) {
                    r.cpu_ratio_to.insert(other.clone(), mine / theirs.max(1e-3));
                }
                if let (Some(mine), Some(theirs)) = (r.median_wall_ms, wall) {
                    r.wall_ratio_to.insert(other.clone(), mine / theirs.max(1e-3));
                }
            }
        }
        storms.push(Storm { threads, steps_per_thread: config.steps, allocations: u64::from(threads) * config.steps, rows });
    }
    Ok(BenchResult { program: "alloc_storm".into(), runs: config.runs, storms })
}

fn right(s: String) -> comfy_table::Cell {
    comfy_table::Cell::new(s).set_alignment(comfy_table::CellAlignment::Right)
}

fn ratio(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |s| format!("{s:.2}×"))
}

/// The result as tables: per storm, each contender's medians and ratios to
/// native, then the CPU-time ratio of each contender to each other one.
#[must_use]
pub fn render(r: &BenchResult) -> String {
    let mut out = String::new();
    for storm in &r.storms {
        out.push_str(&format!(
            "{} thread{} × {} steps ({} allocations and as many frees, 16..4096 bytes), median of {} runs each\n",
            storm.threads,
            if storm.threads == 1 { "" } else { "s" },
            storm.steps_per_thread,
            storm.allocations,
            r.runs
        ));
        let mut table = comfy_table::Table::new();
        // No rule between rows: the tables fit 100 columns and the book's page.
        table.load_style(comfy_table::presets::ASCII_FULL_CONDENSED);
        table.set_header(["tool", "runs", "wall", "CPU", "peak RSS", "wall ×native", "CPU ×native", "RSS ×native"]);
        for row in &storm.rows {
            let cells = match (&row.missing, &row.error) {
                (Some(m), _) => vec![format!("not run: {}", m.reason), String::new(), format!("fix: {}", m.fix), String::new(), String::new(), String::new()],
                (None, Some(e)) => vec![format!("failed: {e}"), String::new(), String::new(), String::new(), String::new(), String::new()],
                (None, None) => vec![
                    row.median_wall_ms.map_or_else(|| "–".into(), |w| format!("{w:.0} ms")),
                    row.median_cpu_ms.map_or_else(|| "–".into(), |c| format!("{c:.0} ms")),
                    row.median_peak_rss_kib.map_or_else(|| "–".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
                    ratio(row.slowdown),
                    ratio(row.cpu_ratio),
                    ratio(row.memory_ratio),
                ],
            };
            let mut line = vec![comfy_table::Cell::new(&row.name), right(row.wall_ms.len().to_string())];
            line.extend(cells.into_iter().map(right));
            table.add_row(line);
        }
        out.push_str(&format!("{table}\n"));
        let ran: Vec<&Row> = storm.rows.iter().filter(|row| row.median_cpu_ms.is_some()).collect();
        if ran.len() > 1 {
            out.push_str("CPU time, row ÷ column:\n");
            let mut matrix = comfy_table::Table::new();
            matrix.load_style(comfy_table::presets::ASCII_FULL_CONDENSED);
            matrix.set_header(std::iter::once(String::new()).chain(ran.iter().map(|c| c.name.clone())));
            for row in &ran {
                let mut line = vec![comfy_table::Cell::new(&row.name)];
                line.extend(ran.iter().map(|c| right(if c.name == row.name { "1×".into() } else { ratio(row.cpu_ratio_to.get(&c.name).copied()) })));
                matrix.add_row(line);
            }
            out.push_str(&format!("{matrix}\n"));
        }
        out.push('\n');
    }
    if let Some(storm) = r.storms.first() {
        for row in &storm.rows {
            out.push_str(&format!("{:<10} {}\n", row.name, row.summary));
        }
    }
    out
}
