//! The `leaklab` command line: a thin layer over the library.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use leaklab::backend::{self, RunConfig, Target};
use leaklab::backends::detector::Detector;
use leaklab::process::ProgramIo;
use leaklab::compare::{self, CompareConfig};
use leaklab::render::{self, Style};
use leaklab::report::{Outcome, Status};
use leaklab::{bench, book, catalogue, normalize, scan, score, setup, Error};

/// The documented exit codes (report::Outcome).
const EXIT_CODES: &str = "\
Exit codes:
  0  clean: no leaks, no memory errors (a sample: the report agrees with its annotations)
  1  leaks found
  2  usage or harness error
  3  backend unavailable here (the message says how to fix it)
  4  memory errors found (invalid access, bad free, ...) or the program crashed
  5  not analysed: the run happened but its memory could not be analysed
  6  a sample's report disagrees with its annotations
130  interrupted (SIGINT, SIGTERM or SIGHUP): every process of the run was killed";

#[derive(Parser)]
#[command(name = "leaklab", version, about = "Leaky C/C++ programs, run under every leak detector and scored", after_help = EXIT_CODES)]
struct Cli {
    /// Colour the output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    color: ColorChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// `--snapshot`: how a scan takes its snapshot.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SnapshotArg {
    /// Make the stopped process fork; copy where that cannot be injected.
    Fork,
    /// Copy while every thread is stopped.
    Copy,
}

impl SnapshotArg {
    fn want(self) -> scan::snapshot::Want {
        match self {
            SnapshotArg::Fork => scan::snapshot::Want::Fork,
            SnapshotArg::Copy => scan::snapshot::Want::Copy,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Human,
    Json,
}

#[derive(Subcommand)]
enum BookAction {
    /// Rewrite every generated output (runs every backend for the measured ones).
    Generate {
        /// Only the outputs derived from the snapshots (fast, no runs).
        #[arg(long)]
        derived_only: bool,
        /// The derived outputs and the real reports the chapters show (a few
        /// minutes), not the costs, benches, dumps and plots.
        #[arg(long, conflicts_with = "derived_only")]
        reports_only: bool,
    },
    /// Say which generated outputs are stale (exit 1 if any).
    Check,
}

#[derive(Subcommand)]
enum Command {
    /// The catalogue: one entry per sample, with its title and annotated leaks.
    List {
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Run one sample (or, after `--`, any program) under one backend.
    Run {
        /// A sample of the catalogue (see `leaklab list`).
        sample: Option<String>,
        #[arg(long, short, default_value = "valgrind")]
        backend: String,
        /// A detector file of your own (TOML; the book's chapter on the harness), instead of --backend.
        #[arg(long, value_name = "FILE", conflicts_with = "backend")]
        detector: Option<std::path::PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Show the report as the backend made it, without normalization.
        #[arg(long)]
        raw: bool,
        /// Kill the target after this many seconds.
        #[arg(long, default_value_t = 120.0)]
        timeout: f64,
        /// Leak suppressions in LeakSanitizer's format (`leak:PATTERN`), for backends that apply them (repeatable).
        #[arg(long, value_name = "FILE")]
        suppressions: Vec<std::path::PathBuf>,
        /// For a program without a checkpoint: inspect it after it has run this many seconds (under valgrind, counted from when the program starts on memcheck's CPU, after valgrind's own start-up).
        #[arg(long)]
        after: Option<f64>,
        /// Capture the program's stdin, stdout and stderr instead of passing them
        /// through (stdin from /dev/null; only the end of stderr is kept, for errors).
        #[arg(long)]
        capture: bool,
        /// A program and its arguments, instead of a sample: a path, a name
        /// found in PATH or in the current directory, or a sample's name.
        #[arg(last = true)]
        program: Vec<String>,
    },
    /// Every sample under every backend that can run here: the accuracy matrix.
    Compare {
        /// Only these backends (repeatable).
        #[arg(long, short)]
        backend: Vec<String>,
        /// Only these samples (repeatable).
        #[arg(long, short)]
        sample: Vec<String>,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Parallel runs (default: one per CPU).
        #[arg(long, short, default_value_t = 0)]
        jobs: usize,
        #[arg(long, default_value_t = 120.0)]
        timeout: f64,
        /// Leak suppressions in LeakSanitizer's format (`leak:PATTERN`), for backends that apply them (repeatable).
        #[arg(long, value_name = "FILE")]
        suppressions: Vec<std::path::PathBuf>,
        /// A detector file of your own (TOML), a row besides the backends (repeatable).
        #[arg(long, value_name = "FILE")]
        detector: Vec<std::path::PathBuf>,
        /// A saved `compare --format json`: say what got better and what got
        /// worse since (exit 1 when anything got worse, else 0).
        #[arg(long, value_name = "FILE")]
        baseline: Option<std::path::PathBuf>,
        /// Show everything (long headers, run counts, the per-sample table) however wide; by default the output fits 100 columns.
        #[arg(long)]
        wide: bool,
    },
    /// An external suite: the programs of a manifest (JSON lines), each under
    /// each backend, scored against the leaks the manifest lists.
    ///
    /// A line: {"name": "...", "program": "path", "args": [...], "expect":
    /// "leak"|"clean", "leaks": [{"file": "f.c", "line": 12, "kind":
    /// "definite", "size": 16, "count": 1}]}; only "program" is required, and
    /// a relative path is relative to the manifest. `leaklab list --format
    /// json` gives the catalogue's executables and annotations.
    Suite {
        manifest: std::path::PathBuf,
        /// Only these backends (repeatable; default: every backend).
        #[arg(long, short)]
        backend: Vec<String>,
        /// A detector file of your own (TOML), a row besides the backends (repeatable).
        #[arg(long, value_name = "FILE")]
        detector: Vec<std::path::PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Parallel runs (default: one per CPU).
        #[arg(long, short, default_value_t = 0)]
        jobs: usize,
        #[arg(long, default_value_t = 120.0)]
        timeout: f64,
        /// A saved `suite --format json` to compare with (exit 1 when anything got worse).
        #[arg(long, value_name = "FILE")]
        baseline: Option<std::path::PathBuf>,
    },
    /// What each detector costs: an allocation-heavy program natively and under each tool, median time and peak memory.
    Bench {
        /// The ptrace scan instead: pause time and analysis throughput on a big heap.
        #[arg(long)]
        scan: bool,
        /// Heap sizes of the scan target, in MiB (with --scan): a list makes a sweep.
        #[arg(long, value_delimiter = ',', default_value = "1024")]
        heap_mib: Vec<u64>,
        /// The snapshot method to measure (with --scan; default: both, side by side).
        #[arg(long, value_enum)]
        snapshot: Option<SnapshotArg>,
        /// Draw the pause against the heap size into this SVG (with --scan).
        #[arg(long, value_name = "SVG")]
        plot: Option<std::path::PathBuf>,
        /// Only these tools besides native (repeatable): native, hook, lsan, heaptrack, valgrind.
        #[arg(long, short)]
        backend: Vec<String>,
        /// Runs per tool; the table shows medians.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Threads of the bench program, one storm each (repeatable; default 4 and 1); with --scan, of the analysis (default: LEAKLAB_SCAN_THREADS, else one per CPU).
        #[arg(long)]
        threads: Vec<u32>,
        /// Allocation steps per thread.
        #[arg(long, default_value_t = 1_000_000)]
        steps: u64,
        /// Kill a run after this many seconds.
        #[arg(long, default_value_t = 600.0)]
        timeout: f64,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Scan a running process for leaks (ptrace: stop, fork or copy, let go, analyse the copy).
    ///
    /// Exit status: 0 no leaks, 1 leaks, 2 the process cannot be inspected
    /// (the message says why: no rights, already traced, a zombie, a kernel
    /// thread), 5 not analysed (the heap could not be walked: not glibc's
    /// malloc, statically linked, a corrupt heap; the notes say what was seen).
    ///
    /// The scan stops every thread with ptrace (PTRACE_SEIZE and
    /// PTRACE_INTERRUPT), makes the process fork (a child it never sees in
    /// wait(), traced from birth, killed and reaped after the scan) and lets
    /// it go: the pause is the time to copy its page tables. Where the fork
    /// cannot be injected (a seccomp filter, say) it copies the memory while
    /// stopped: about a second for a few hundred MB on a busy machine. The
    /// report's notes say which ran. Signals that arrive meanwhile are delivered when it lets go. The interrupt makes a thread blocked in
    /// epoll_wait, epoll_pwait, sigtimedwait or sigwaitinfo return EINTR
    /// (the kernel does not restart them after a stop): a program that is
    /// scanned must retry those on EINTR, as it must for any signal. read,
    /// nanosleep, futex, poll and the like are restarted.
    Scan {
        #[arg(long)]
        pid: i32,
        /// fork: the stopped process forks and is let go at once, the fork
        /// is read at leisure (copy where a fork cannot be injected: a
        /// seccomp filter, say); copy: copy while stopped.
        #[arg(long, value_enum, default_value_t = SnapshotArg::Fork)]
        snapshot: SnapshotArg,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Write a running process's raw [heap] to a file and show it as hex with its strings marked.
    ///
    /// A heap split by mprotect into several maps lines is written whole:
    /// every piece in address order, one after the other, read-only and
    /// inaccessible pieces included; the view names each piece and its offset.
    Dump {
        #[arg(long)]
        pid: i32,
        /// Where to write the raw bytes (default: heap-PID.bin).
        #[arg(long, short)]
        out: Option<std::path::PathBuf>,
        /// Lines of hex view to print at most.
        #[arg(long, default_value_t = 64)]
        lines: usize,
    },
    /// Which backends can run here, and the command that fixes each that cannot.
    Doctor {
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// A symbol demo's objects (binding, section, COMMON), and what the linker did with them.
    Symbols {
        /// A demo of the catalogue: weak_symbols, weakref_optional, common_symbols, replace_operator_new.
        demo: String,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// The book's generated outputs (book/src/generated/).
    Book {
        #[command(subcommand)]
        action: BookAction,
    },
    /// Watch a process grow: /proc/PID sampled at an interval, a live view
    /// on a terminal, a verdict per class of mappings, and a plot (SVG, PNG).
    Watch {
        /// An existing process, instead of a program after `--`.
        #[arg(long)]
        pid: Option<i32>,
        /// Seconds between samples.
        #[arg(long, default_value_t = 0.5)]
        interval: f64,
        /// Stop after this many seconds (default: when the process ends, or Ctrl-C).
        #[arg(long)]
        duration: Option<f64>,
        /// The plot goes to PREFIX.svg and PREFIX.png.
        #[arg(long, default_value = "leaklab-watch")]
        plot: std::path::PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// A program and its arguments to start and watch (a path, a name in
        /// PATH or in the current directory, or a sample's name).
        #[arg(last = true)]
        program: Vec<String>,
    },
    /// Coursework: list, check, hint and reset the labs of labs/.
    Lab {
        #[command(subcommand)]
        command: leaklab::labs::cli::LabCommand,
    },
    /// Install what the backends need (Debian; needs root).
    Setup {
        /// Print what would be done.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Nobody left behind: orphans of a run come back to leaklab, and a
    // watchdog cleans up if leaklab itself is killed. Forks: still one thread here.
    if let Err(e) = leaklab::contain::supervise() {
        eprintln!("leaklab: {}", render::escape_unprintable(&e.to_string(), true));
        return ExitCode::from(2);
    }
    // On SIGINT, SIGTERM and SIGHUP: kill every run, remove every scratch directory, exit.
    let _ = ctrlc::set_handler(|| {
        // A watch ends on Ctrl-C with its summary and plot; it kills its program itself.
        if leaklab::watch::ACTIVE.load(std::sync::atomic::Ordering::SeqCst) {
            leaklab::watch::STOP.store(true, std::sync::atomic::Ordering::SeqCst);
            return;
        }
        leaklab::contain::interrupted(130);
    });
    let style = Style {
        color: match cli.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        },
    };
    let result = dispatch(cli.command, style);
    if leaklab::contain::is_interrupted() {
        // The signal handler is cleaning up and exits with the signal's code.
        leaklab::contain::interrupted(130);
    }
    leaklab::contain::stop_watchdog();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = e.downcast_ref::<Error>().map_or(2, Error::exit_code);
            eprintln!("leaklab: {}", render::escape_unprintable(&error_text(&e), true));
            ExitCode::from(code as u8)
        }
    }
}

/// An error and its causes, each cause said once: a cause whose text the
/// message already contains (an io error that the message quotes) is not
/// repeated after it.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

/// The program of `-- PROGRAM ARGS`: a path as given; a bare name from PATH,
/// else from the current directory (as valgrind finds it), else the
/// catalogue's sample of that name, saying so on stderr.
fn user_program(program: &str, args: &[String]) -> anyhow::Result<Target> {
    if program.contains('/') || which::which(program).is_ok() {
        return Ok(Target::program(program, args)?);
    }
    let here = format!("./{program}");
    if Path::new(&here).is_file() {
        return Ok(Target::program(&here, args)?);
    }
    match catalogue::find(program) {
        Ok(sample) => {
            let exe = sample.executable("plain")?;
            eprintln!(
                "leaklab: `{}` is not in the current directory nor in PATH; running the catalogue's sample: {}",
                render::escape_unprintable(program, false),
                render::escape_unprintable(&exe.display().to_string(), false)
            );
            let mut t = Target::program(&exe.to_string_lossy(), args)?;
            t.name = sample.name.to_string();
            Ok(t)
        }
        Err(_) => Err(Error::Usage(format!(
            "`{}` is not a file, not found in PATH, and not a sample of the catalogue (`leaklab list`)",
            render::escape_unprintable(program, false)
        ))
        .into()),
    }
}

fn seconds(s: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s).ok().filter(|d| !d.is_zero()).context("--timeout must be a positive number of seconds")
}

fn dispatch(command: Command, style: Style) -> anyhow::Result<u8> {
    match command {
        Command::List { format } => {
            let samples = catalogue::samples();
            match format {
                Format::Human => {
                    print!("{}", render::catalogue(samples, style));
                    let dir = leaklab::artifacts::samples_dir()?;
                    println!(
                        "\nbuilt samples: {}/plain/NAME (run one as a program by name: `leaklab run -- NAME`, `leaklab watch -- NAME 0`)",
                        dir.display()
                    );
                }
                Format::Json => {
                    let list: Vec<_> = samples
                        .iter()
                        .map(|s| {
                            Ok(serde_json::json!({
                                "name": s.name,
                                "title": s.title(),
                                "language": s.language,
                                "sources": s.sources,
                                "args": s.args(),
                                "executable": s.executable("plain")?,
                                "expectations": s.expectations()?,
                            }))
                        })
                        .collect::<Result<_, Error>>()?;
                    println!("{}", serde_json::to_string_pretty(&serde_json::Value::Array(list))?);
                }
            }
            Ok(0)
        }
        Command::Run { sample, backend: name, detector, format, raw, timeout, suppressions, after, capture, program } => {
            let b: Box<dyn backend::Backend> = match &detector {
                Some(file) => Box::new(Detector::load(file)?),
                None => backend::by_name(&name)?,
            };
            let name = b.name().to_string();
            let target = match (&sample, program.split_first()) {
                (Some(s), None) => Target::sample(catalogue::find(s)?)?,
                (None, Some((prog, args))) => user_program(prog, args)?,
                (Some(_), Some(_)) => return Err(Error::Usage("give a sample or `-- PROGRAM ARGS`, not both".into()).into()),
                (None, None) => return Err(Error::Usage("give a sample (`leaklab list`) or `-- PROGRAM ARGS`".into()).into()),
            };
            let after = after.map(|a| Duration::try_from_secs_f64(a).context("--after must be a number of seconds")).transpose()?;
            // A user's program talks to the user (DESIGN.md, Conventions); a
            // catalogue sample is captured, as in the suite.
            let io = if target.sample.is_none() && !capture { ProgramIo::Inherit } else { ProgramIo::Capture };
            let config = RunConfig { timeout: seconds(timeout)?, suppressions, after, io };
            let report = backend::execute(b.as_ref(), &target, &config);
            if leaklab::contain::is_interrupted() {
                leaklab::contain::interrupted(130);
            }
            let shown = if raw { report.clone() } else { normalize::normalize(report.clone()) };
            let scored = match target.sample {
                Some(s) if report.status == Status::Ok => Some(score::score_as(&shown, &s.expectations()?, score::Scoring::of(b.as_ref()))),
                _ => None,
            };
            if let Status::Failed { error } = &report.status {
                // Failures are diagnostics: stderr, and the JSON report for machines.
                eprintln!("leaklab: {} on {}: {}", report.backend, render::escape_unprintable(&report.sample, false), render::escape_unprintable(error, true));
                if format == Format::Json {
                    println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "report": shown }))?);
                }
                return Ok(2);
            }
            if let Status::Skipped { reason, fix } = &report.status {
                // Said once: on stderr for a person, in the JSON for a machine.
                if format == Format::Json {
                    println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "report": shown, "score": null }))?);
                    return Ok(Outcome::Unavailable.code());
                }
                return Err(Error::Unavailable { backend: name, reason: reason.clone(), fix: fix.clone() }.into());
            }
            match format {
                Format::Human => {
                    // A person sees the real figures (bytes, rates, addresses);
                    // the placeholders of normalization are for snapshots.
                    let real = if raw { report.clone() } else { normalize::for_reading(report.clone()) };
                    print!("{}", render::report(&real, style));
                    if let Some(s) = &scored {
                        print!("{}", render::score(s, style));
                    }
                }
                Format::Json => {
                    let value = serde_json::json!({ "report": report_with_stats(shown.clone(), &report), "score": scored });
                    println!("{}", serde_json::to_string_pretty(&value)?);
                }
            }
            match &report.status {
                Status::Skipped { .. } | Status::Failed { .. } => unreachable!("handled above"),
                Status::Ok | Status::NotAnalysed { .. } => Ok(match scored {
                    Some(s) if !s.passed() => Outcome::Disagrees.code(),
                    Some(_) => Outcome::Clean.code(),
                    None => report.outcome().code(),
                }),
            }
        }
        Command::Compare { backend, sample, format, jobs, timeout, suppressions, detector, baseline, wide } => {
            let config = CompareConfig {
                backends: backend,
                samples: sample,
                jobs,
                run: RunConfig { timeout: seconds(timeout)?, suppressions, ..RunConfig::default() },
                detectors: detector.iter().map(|f| Detector::load(f)).collect::<Result<_, _>>()?,
            };
            // A bad baseline is refused before anything runs.
            if let Some(file) = &baseline {
                leaklab::baseline::check_file(file)?;
            }
            let bar = std::io::stderr().is_terminal().then(|| {
                let bar = indicatif::ProgressBar::new(0);
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{spinner} [{elapsed}] {bar:30} {pos}/{len} {msg}")
                        .expect("valid template"),
                );
                bar
            });
            let progress = |done: usize, total: usize, label: &str| {
                if let Some(bar) = &bar {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                    bar.set_message(label.to_string());
                }
            };
            let result = compare::compare(&config, &progress)?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            if let Some(file) = &baseline {
                return show_baseline(file, &result, format, style);
            }
            match format {
                Format::Human => print!("{}", render::comparison_view(&result, style, if wide { render::View::WIDE } else { render::View::DEFAULT })),
                Format::Json => println!("{}", serde_json::to_string_pretty(&result)?),
            }
            if result.backends.is_empty() {
                return Err(Error::Unavailable {
                    backend: config.backends.join(", "),
                    reason: "no requested backend can run here".into(),
                    fix: "see `leaklab doctor`".into(),
                }
                .into());
            }
            Ok(if result.all_agree() { Outcome::Clean.code() } else { Outcome::Disagrees.code() })
        }
        Command::Suite { manifest, backend, detector, format, jobs, timeout, baseline } => {
            let config = CompareConfig {
                jobs,
                run: RunConfig { timeout: seconds(timeout)?, ..RunConfig::default() },
                detectors: detector.iter().map(|f| Detector::load(f)).collect::<Result<_, _>>()?,
                ..CompareConfig::default()
            };
            let cases: Vec<(compare::Case, Option<&'static catalogue::SampleInfo>)> =
                leaklab::suite::load(&manifest)?.into_iter().map(|c| (c, None)).collect();
            if let Some(file) = &baseline {
                leaklab::baseline::check_file(file)?;
            }
            let backends = compare::backends(&backend, &config.detectors)?;
            let progress = |done: usize, total: usize, label: &str| {
                if std::io::stderr().is_terminal() {
                    eprint!("\r\x1b[K[{done}/{total}] {}", render::escape_unprintable(label, false));
                    if done == total {
                        eprintln!();
                    }
                }
            };
            let result = compare::compare_cases(&backends, &cases, &config, &progress);
            if let Some(file) = &baseline {
                return show_baseline(file, &result, format, style);
            }
            match format {
                Format::Human => print!("{}", render::comparison(&result, style)),
                Format::Json => println!("{}", serde_json::to_string_pretty(&result)?),
            }
            if result.backends.is_empty() {
                return Err(Error::Unavailable { backend: backend.join(", "), reason: "no requested backend can run here".into(), fix: "see `leaklab doctor`".into() }.into());
            }
            Ok(if result.all_agree() { Outcome::Clean.code() } else { Outcome::Disagrees.code() })
        }
        Command::Bench { scan: true, heap_mib, runs, threads, format, snapshot, plot, .. } => {
            let methods = snapshot.map_or_else(|| vec![scan::snapshot::Want::Fork, scan::snapshot::Want::Copy], |s| vec![s.want()]);
            let r = scan::bench::run(&scan::bench::ScanBench { heap_mib, runs, methods, threads: threads.first().map_or(0, |&t| t as usize) })?;
            if let Some(svg) = &plot {
                scan::bench::plot(&r, svg)?;
            }
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&r)?),
                Format::Human => print!("{}", scan::bench::render(&r)),
            }
            Ok(u8::from(r.rows.iter().any(|row| row.leaked_found != row.leaked_expected)))
        }
        Command::Bench { scan: false, backend, runs, threads, steps, timeout, format, .. } => {
            let threads = if threads.is_empty() { vec![4, 1] } else { threads };
            let config = bench::BenchConfig { only: backend, runs, threads, steps, timeout: seconds(timeout)? };
            let progress = |name: &str, run: usize, of: usize| eprintln!("bench: {name}, run {run}/{of}");
            let result = bench::bench(&config, &progress)?;
            match format {
                Format::Human => print!("{}", bench::render(&result)),
                Format::Json => println!("{}", serde_json::to_string_pretty(&result)?),
            }
            Ok(u8::from(result.storms.iter().flat_map(|s| &s.rows).any(|r| r.error.is_some())))
        }
        Command::Doctor { format } => {
            let diagnoses = setup::doctor();
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&diagnoses)?),
                Format::Human => {
                    for d in &diagnoses {
                        if d.ready {
                            println!("{} {:<10} {}", style.green("ready"), d.backend, style.dim(&d.summary));
                        } else {
                            println!("{} {:<10} {}", style.red("no   "), d.backend, d.reason.as_deref().unwrap_or(""));
                            println!("      {:<10} fix: {}", "", d.fix.as_deref().unwrap_or(""));
                        }
                    }
                }
            }
            Ok(if diagnoses.iter().all(|d| d.ready) { 0 } else { 3 })
        }
        Command::Symbols { demo, format } => {
            let demo = leaklab::symbols::inspect(catalogue::find(&demo)?)?;
            match format {
                Format::Human => print!("{}", leaklab::symbols::render(&demo)),
                Format::Json => println!("{}", serde_json::to_string_pretty(&demo)?),
            }
            Ok(0)
        }
        Command::Scan { pid, snapshot, format } => {
            let (snap, analysis) = scan::scan_pid(pid, scan::StopPoint::Anywhere, &scan::snapshot::Options { want: snapshot.want() })?;
            let mut report = leaklab::report::Report::new(&scan::process_name(pid), "ptrace");
            report.leaks = analysis.leaks;
            report.notes = analysis.notes;
            if snap.unreadable_bytes > 0 {
                report.notes.push(format!("{} bytes of the process's memory could not be read (zeros in the copy)", snap.unreadable_bytes));
            }
            if let Some(reason) = analysis.not_analysed {
                report.status = Status::NotAnalysed { reason };
            }
            report.stats = Some(leaklab::report::Stats { pause_ms: Some(snap.pause.as_secs_f64() * 1000.0), ..Default::default() });
            match format {
                Format::Human => {
                    print!("{}", render::report(&report, style));
                    eprintln!(
                        "paused {:.1} ms; {} blocks in use ({} bytes), {} free chunks; analysed in {:.1} ms",
                        snap.pause.as_secs_f64() * 1000.0,
                        analysis.blocks,
                        analysis.block_bytes,
                        analysis.walk.free_chunks,
                        analysis.elapsed.as_secs_f64() * 1000.0
                    );
                }
                Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            }
            Ok(report.outcome().code())
        }
        Command::Dump { pid, out, lines } => {
            let dump = scan::dump::heap_of(pid)?;
            let out = out.unwrap_or_else(|| format!("heap-{pid}.bin").into());
            scan::dump::write(&out, &dump.bytes)?;
            print!("{}", scan::dump::pieces_view(&dump, lines));
            let pieces = match dump.pieces.len() {
                1 => String::new(),
                n => format!(" ({n} pieces, in address order)"),
            };
            eprintln!("wrote {} bytes of [heap] at {:#x}{pieces} to {}", dump.bytes.len(), dump.start(), out.display());
            if dump.unreadable > 0 {
                eprintln!("leaklab: {} bytes could not be read and are zeros in the file", dump.unreadable);
            }
            Ok(0)
        }
        Command::Book { action } => {
            let paths = book::BookPaths::in_repo(Path::new(env!("CARGO_MANIFEST_DIR")));
            match action {
                BookAction::Generate { derived_only, reports_only } => {
                    let parts = match (derived_only, reports_only) {
                        (true, _) => book::Parts::Derived,
                        (_, true) => book::Parts::Reports,
                        _ => book::Parts::All,
                    };
                    for name in book::generate(&paths, parts)? {
                        println!("wrote {name}");
                    }
                    Ok(0)
                }
                BookAction::Check => {
                    let stale = book::stale(&paths)?;
                    for s in &stale {
                        println!("{s}");
                    }
                    if !stale.is_empty() {
                        eprintln!("leaklab: refresh with `{}`", book::REFRESH);
                    }
                    Ok(u8::from(!stale.is_empty()))
                }
            }
        }
        Command::Watch { pid, interval, duration, plot, format, program } => {
            let subject = match (pid, program.split_first()) {
                (Some(pid), None) => leaklab::watch::Subject::Pid(pid),
                (None, Some((prog, args))) => {
                    let t = user_program(prog, args)?;
                    leaklab::watch::Subject::Program { program: t.program, args: t.args }
                }
                _ => return Err(Error::Usage("give `--pid N` or `-- PROGRAM ARGS` (one of them)".into()).into()),
            };
            let options = leaklab::watch::Options {
                interval: Duration::try_from_secs_f64(interval).ok().filter(|d| !d.is_zero()).context("--interval must be a positive number of seconds")?,
                duration: duration.map(seconds).transpose()?,
                ..leaklab::watch::Options::default()
            };
            let live = std::io::stderr().is_terminal() && format == Format::Human;
            let s = leaklab::watch::session(&subject, &options, &plot, live)?;
            match format {
                Format::Human => {
                    print!("{}", leaklab::watch::render_summary(&s.summary));
                    println!("plot: {} and {}{}", s.svg.display(), s.png.display(), if s.plot_text { "" } else { " (without text: no DejaVu font; apt-get install fonts-dejavu-core)" });
                }
                Format::Json => println!("{}", serde_json::to_string_pretty(&s)?),
            }
            Ok(u8::from(s.summary.verdict == leaklab::watch::Verdict::Growing))
        }
        Command::Lab { command } => Ok(leaklab::labs::cli::run(command, style)?),
        Command::Setup { dry_run } => {
            for step in setup::setup(dry_run)? {
                println!("{}{step}", if dry_run { "would run: " } else { "done: " });
            }
            Ok(0)
        }
    }
}

/// The matrix, then what changed since the baseline; exit 1 when anything got worse.
fn show_baseline(file: &Path, result: &compare::Comparison, format: Format, style: Style) -> anyhow::Result<u8> {
    let diff = leaklab::baseline::diff_file(file, result)?;
    match format {
        Format::Human => {
            print!("{}", render::comparison(result, style));
            println!();
            print!("{}", diff.render());
        }
        Format::Json => println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "comparison": result, "baseline": diff }))?),
    }
    Ok(u8::from(diff.worse()))
}

/// Normalization drops the run statistics; a person running one sample wants them.
fn report_with_stats(mut shown: leaklab::report::Report, original: &leaklab::report::Report) -> leaklab::report::Report {
    shown.stats.clone_from(&original.stats);
    shown
}
