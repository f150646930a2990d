//! The `leaklab` command line: a thin layer over the library.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use leaklab::backend::{self, RunConfig, Target};
use leaklab::compare::{self, CompareConfig};
use leaklab::render::{self, Style};
use leaklab::report::{Kind, Status};
use leaklab::{book, catalogue, normalize, score, setup, Error};

#[derive(Parser)]
#[command(name = "leaklab", version, about = "Leaky C/C++ programs, run under every leak detector and scored")]
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
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Show the report as the backend made it, without normalization.
        #[arg(long)]
        raw: bool,
        /// Kill the target after this many seconds.
        #[arg(long, default_value_t = 120.0)]
        timeout: f64,
        /// A program and its arguments, instead of a sample.
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
    },
    /// Which backends can run here, and the command that fixes each that cannot.
    Doctor {
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// The book's generated outputs (book/src/generated/).
    Book {
        #[command(subcommand)]
        action: BookAction,
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
    // No child outlives the harness: on Ctrl-C, kill every supervised group.
    let _ = ctrlc::set_handler(|| {
        leaklab::process::kill_all();
        std::process::exit(130);
    });
    let style = Style {
        color: match cli.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        },
    };
    match dispatch(cli.command, style) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = e.downcast_ref::<Error>().map_or(2, Error::exit_code);
            eprintln!("leaklab: {e:#}");
            ExitCode::from(code as u8)
        }
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
                Format::Human => print!("{}", render::catalogue(samples, style)),
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
                                "expectations": s.expectations()?,
                            }))
                        })
                        .collect::<Result<_, Error>>()?;
                    println!("{}", serde_json::to_string_pretty(&serde_json::Value::Array(list))?);
                }
            }
            Ok(0)
        }
        Command::Run { sample, backend: name, format, raw, timeout, program } => {
            let b = backend::by_name(&name)?;
            let target = match (&sample, program.split_first()) {
                (Some(s), None) => Target::sample(catalogue::find(s)?)?,
                (None, Some((prog, args))) => Target::program(prog, args)?,
                (Some(_), Some(_)) => return Err(Error::Usage("give a sample or `-- PROGRAM ARGS`, not both".into()).into()),
                (None, None) => return Err(Error::Usage("give a sample (`leaklab list`) or `-- PROGRAM ARGS`".into()).into()),
            };
            let config = RunConfig { timeout: seconds(timeout)?, ..RunConfig::default() };
            let report = backend::execute(b.as_ref(), &target, &config);
            let shown = if raw { report.clone() } else { normalize::normalize(report.clone()) };
            let scored = match target.sample {
                Some(s) if report.status == Status::Ok => Some(score::score(&shown, &s.expectations()?, b.matching())),
                _ => None,
            };
            if let Status::Failed { error } = &report.status {
                // Failures are diagnostics: stderr, and the JSON report for machines.
                eprintln!("leaklab: {} on {}: {error}", report.backend, report.sample);
                if format == Format::Json {
                    println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "report": shown }))?);
                }
                return Ok(2);
            }
            match format {
                Format::Human => {
                    print!("{}", render::report(&report_with_stats(shown.clone(), &report), style));
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
                Status::Skipped { reason, fix } => {
                    Err(Error::Unavailable { backend: name, reason: reason.clone(), fix: fix.clone() }.into())
                }
                Status::Failed { .. } => unreachable!("handled above"),
                Status::Ok => Ok(match scored {
                    Some(s) => u8::from(!s.passed()),
                    // A program of the user's: leaks other than still-reachable ones are findings.
                    None => u8::from(shown.leaks.iter().any(|l| l.kind != Kind::Reachable)),
                }),
            }
        }
        Command::Compare { backend, sample, format, jobs, timeout } => {
            let config = CompareConfig { backends: backend, samples: sample, jobs, run: RunConfig { timeout: seconds(timeout)?, ..RunConfig::default() } };
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
            match format {
                Format::Human => print!("{}", render::comparison(&result, style)),
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
            Ok(u8::from(!result.all_agree()))
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
        Command::Book { action } => {
            let paths = book::BookPaths::in_repo(Path::new(env!("CARGO_MANIFEST_DIR")));
            match action {
                BookAction::Generate { derived_only } => {
                    for name in book::generate(&paths, derived_only)? {
                        println!("wrote book/src/generated/{name}");
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
        Command::Lab { command } => Ok(leaklab::labs::cli::run(command, style)?),
        Command::Setup { dry_run } => {
            for step in setup::setup(dry_run)? {
                println!("{}{step}", if dry_run { "would run: " } else { "done: " });
            }
            Ok(0)
        }
    }
}

/// Normalization drops the run statistics; a person running one sample wants them.
fn report_with_stats(mut shown: leaklab::report::Report, original: &leaklab::report::Report) -> leaklab::report::Report {
    shown.stats.clone_from(&original.stats);
    shown
}
