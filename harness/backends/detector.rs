//! A detector of the user's own, described in a TOML file (`--detector
//! FILE`, `LEAKLAB_DETECTORS`): the command that runs a program under it,
//! where it writes its report, and which of leaklab's parsers reads it
//! (`format`). It is a `Backend` like the built-in ones: scored,
//! snapshotted, a row of the matrix. The book's chapter on the harness
//! documents every key.
//!
//! ```toml
//! name = "mytool"
//! summary = "my leak checker, dev build"
//! command = ["mytool", "--report={report}", "--", "{program}", "{args}"]
//! format = "valgrind-xml"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use toml::Spanned;

use crate::backend::{Availability, Backend, Matching, RunConfig, Target};
use crate::error::Error;
use crate::process::{self, Child, ProgramIo, Spec};
use crate::report::{Frame, Kind, Leak, MemoryError, Process, Report, Stats, Status, Suppressed, End};
use crate::suppressions::Suppressions;

/// The report formats a detector file can name: every parser leaklab has.
pub const FORMATS: &[(&str, &str)] = &[
    ("valgrind-text", "memcheck's text log (`--log-file={report}`, or one file per process in a directory: `--log-file={report}/vg.%p.log`)"),
    ("valgrind-xml", "memcheck's XML (`--xml=yes --xml-file={report}`)"),
    ("lsan", "LeakSanitizer's (or AddressSanitizer's) text report (`LSAN_OPTIONS=log_path={report}/lsan`, or its stderr)"),
    ("leaklab-json", "leaklab's own report, as `leaklab run --format json` prints it (the report, or an object with a `report` field)"),
    ("debug-new", "the dump of leaklab's debug_new runtime (`debug_new 1 pid=N` ... `end ...`)"),
    ("bcc-memleak", "the output of bcc's memleak (`memleak-bpfcc -a -p {pid}`): the last report it printed; frames have no lines, so use `matching = \"shape\"`"),
];

/// How the tool hands over its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportPlace {
    /// `{report}` is a file path the tool writes.
    File,
    /// `{report}` is a directory: every file the tool writes there is read
    /// (one per process).
    Directory,
    /// The tool's standard output (captured) or standard error.
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    ValgrindText,
    ValgrindXml,
    Lsan,
    LeaklabJson,
    DebugNew,
    BccMemleak,
}

impl Format {
    fn parse(word: &str) -> Option<Format> {
        Some(match word {
            "valgrind-text" => Format::ValgrindText,
            "valgrind-xml" => Format::ValgrindXml,
            "lsan" => Format::Lsan,
            "leaklab-json" => Format::LeaklabJson,
            "debug-new" => Format::DebugNew,
            "bcc-memleak" => Format::BccMemleak,
            _ => return None,
        })
    }
}

/// The file as written, every key checked by serde (`deny_unknown_fields`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DetectorFile {
    name: Spanned<String>,
    #[serde(default)]
    summary: Option<String>,
    command: Spanned<Vec<String>>,
    format: Spanned<String>,
    #[serde(default)]
    needs_checkpoint: bool,
    #[serde(default)]
    env: Option<Spanned<BTreeMap<String, String>>>,
    #[serde(default)]
    report: Option<Spanned<String>>,
    #[serde(default)]
    checks_frees: bool,
    #[serde(default)]
    matching: Option<Spanned<String>>,
    #[serde(default)]
    timeout: Option<Spanned<f64>>,
    /// Debian packages `leaklab setup` would install for it (shown by doctor's fix).
    #[serde(default)]
    packages: Vec<String>,
}

/// A loaded detector file.
#[derive(Debug, Clone)]
pub struct Detector {
    pub name: String,
    pub summary: String,
    pub command: Vec<String>,
    pub format: Format,
    pub needs_checkpoint: bool,
    pub env: Vec<(String, String)>,
    pub report: ReportPlace,
    pub checks_frees: bool,
    pub matching: Matching,
    pub timeout: Option<Duration>,
    pub packages: Vec<String>,
    /// The file it was read from, for messages.
    pub file: PathBuf,
}

/// The placeholders a command item (or an env value) may hold.
const PLACEHOLDERS: &[&str] = &["program", "args", "report", "name", "pid"];

/// Names of the built-in backends, which a detector may not take.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl Detector {
    /// Reads and checks a detector file: unknown keys, formats and
    /// placeholders, and a missing or empty command are errors naming the
    /// file, the line and the key.
    pub fn load(file: &Path) -> Result<Detector, Error> {
        let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
        Detector::parse(file, &text)
    }

    /// [`Detector::load`] on text already read.
    pub fn parse(file: &Path, text: &str) -> Result<Detector, Error> {
        let shown = file.display().to_string();
        let at = |offset: usize, key: &str, message: String| Error::Usage(format!("{shown}:{}: `{key}`: {message}", line_of(text, offset)));
        let raw: DetectorFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| line_of(text, s.start));
            Error::Usage(format!("{shown}:{line}: {} (detector files are described in the book's chapter on the harness)", e.message().trim()))
        })?;

        let name = raw.name.get_ref().trim().to_string();
        let name_ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(at(raw.name.span().start, "name", "must be one word of letters, digits, `-` and `_` (it names the matrix's row and the snapshots)".into()));
        }
        if crate::backend::all().iter().any(|b| b.name() == name) {
            return Err(at(raw.name.span().start, "name", format!("`{name}` is a built-in backend's name; give your detector its own")));
        }
        let format = Format::parse(raw.format.get_ref()).ok_or_else(|| {
            let known: Vec<&str> = FORMATS.iter().map(|(f, _)| *f).collect();
            at(raw.format.span().start, "format", format!("unknown format `{}`; known: {}", raw.format.get_ref(), known.join(", ")))
        })?;
        let report = match raw.report.as_ref().map(|r| (r.get_ref().as_str(), r.span().start)) {
            None | Some(("file", _)) => ReportPlace::File,
            Some(("directory", _)) => ReportPlace::Directory,
            Some(("stdout", _)) => ReportPlace::Stdout,
            Some(("stderr", _)) => ReportPlace::Stderr,
            Some((other, start)) => return Err(at(start, "report", format!("`{other}` is not one of file, directory, stdout, stderr"))),
        };
        let matching = match raw.matching.as_ref().map(|m| (m.get_ref().as_str(), m.span().start)) {
            None | Some(("site", _)) => Matching::BySite,
            Some(("shape", _)) => Matching::ByShape,
            Some(("growth", _)) => Matching::ByGrowth,
            Some((other, start)) => return Err(at(start, "matching", format!("`{other}` is not one of site, shape, growth"))),
        };
        let timeout = match &raw.timeout {
            None => None,
            Some(t) => Some(
                Duration::try_from_secs_f64(*t.get_ref())
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| at(t.span().start, "timeout", "must be a positive number of seconds".into()))?,
            ),
        };

        let command_at = raw.command.span().start;
        let command = raw.command.into_inner();
        if command.first().is_none_or(|c| c.trim().is_empty()) {
            return Err(at(command_at, "command", "is empty: give the tool and its arguments, e.g. [\"mytool\", \"--\", \"{program}\", \"{args}\"]".into()));
        }
        let allowed = |p: &str| match p {
            "pid" => raw.needs_checkpoint,
            "report" => matches!(report, ReportPlace::File | ReportPlace::Directory),
            _ => true,
        };
        for (i, item) in command.iter().enumerate() {
            for p in placeholders(item).map_err(|m| at(command_at, "command", format!("item {}: {m}", i + 1)))? {
                if !PLACEHOLDERS.contains(&p.as_str()) {
                    return Err(at(command_at, "command", format!("item {} `{item}`: unknown placeholder `{{{p}}}`; known: {{program}}, {{args}}, {{report}}, {{name}}, {{pid}}", i + 1)));
                }
                if !allowed(&p) {
                    let why = if p == "pid" { "only with needs_checkpoint = true (leaklab starts the program; the tool attaches to {pid})" } else { "only with report = \"file\" or \"directory\"" };
                    return Err(at(command_at, "command", format!("item {} `{item}`: `{{{p}}}` is available {why}", i + 1)));
                }
                if p == "args" && item != "{args}" {
                    return Err(at(command_at, "command", format!("item {} `{item}`: `{{args}}` stands for zero or more items and must be an item of its own", i + 1)));
                }
            }
            if i == 0 && item.contains('{') {
                return Err(at(command_at, "command", "the first item is the tool itself, not a placeholder".into()));
            }
        }
        let mentions = |p: &str| command.iter().any(|c| c.contains(&format!("{{{p}}}")));
        if raw.needs_checkpoint && !mentions("pid") {
            return Err(at(command_at, "command", "with needs_checkpoint = true leaklab starts the program and stops it at its checkpoint: the command must attach to `{pid}`".into()));
        }
        if !raw.needs_checkpoint && !mentions("program") {
            return Err(at(command_at, "command", "must run `{program}` (and pass it `{args}`), or set needs_checkpoint = true and attach to `{pid}`".into()));
        }
        let env_at = raw.env.as_ref().map_or(0, |e| e.span().start);
        let mut env = Vec::new();
        for (k, v) in raw.env.map(Spanned::into_inner).unwrap_or_default() {
            for p in placeholders(&v).map_err(|m| at(env_at, "env", format!("{k}: {m}")))? {
                if p == "args" || !PLACEHOLDERS.contains(&p.as_str()) || !allowed(&p) {
                    return Err(at(env_at, "env", format!("{k} = `{v}`: placeholder `{{{p}}}` cannot be used here; an env value may hold {{program}}, {{name}}, {{report}} (with a report file or directory) and {{pid}} (with needs_checkpoint)")));
                }
            }
            env.push((k, v));
        }
        Ok(Detector {
            summary: raw.summary.unwrap_or_else(|| format!("a detector file ({shown})")),
            name,
            command,
            format,
            needs_checkpoint: raw.needs_checkpoint,
            env,
            report,
            checks_frees: raw.checks_frees,
            matching,
            timeout,
            packages: raw.packages,
            file: file.to_path_buf(),
        })
    }

    /// Every file of a colon-separated list (`LEAKLAB_DETECTORS`).
    pub fn load_list(list: &str) -> Result<Vec<Detector>, Error> {
        list.split(':').filter(|s| !s.trim().is_empty()).map(|f| Detector::load(Path::new(f.trim()))).collect()
    }

    fn timeout(&self, config: &RunConfig) -> Duration {
        self.timeout.unwrap_or(config.timeout)
    }

    /// The command's argv with its placeholders filled.
    fn argv(&self, values: &Values) -> Vec<String> {
        let mut out = Vec::new();
        for item in &self.command {
            if item == "{args}" {
                out.extend(values.args.iter().cloned());
            } else {
                out.push(values.fill(item));
            }
        }
        out
    }
}

/// The placeholders `{word}` of a string; `{{` and `}}` are literal braces.
fn placeholders(item: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = item;
    while let Some(i) = rest.find(['{', '}']) {
        let after = &rest[i + 1..];
        if after.starts_with(&rest[i..=i]) {
            rest = &after[1..];
            continue;
        }
        if rest.as_bytes()[i] == b'}' {
            return Err(format!("`{item}`: a `}}` without its `{{` (write `}}}}` for a brace)"));
        }
        let end = after.find('}').ok_or_else(|| format!("`{item}`: a `{{` without its `}}` (write `{{{{` for a brace)"))?;
        out.push(after[..end].to_string());
        rest = &after[end + 1..];
    }
    Ok(out)
}

/// The values of one run's placeholders.
struct Values {
    program: String,
    args: Vec<String>,
    report: String,
    name: String,
    pid: String,
}

impl Values {
    fn fill(&self, item: &str) -> String {
        let mut out = String::new();
        let mut rest = item;
        while let Some(i) = rest.find(['{', '}']) {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if after.starts_with(&rest[i..=i]) {
                out.push_str(&rest[i..=i]);
                rest = &after[1..];
                continue;
            }
            // Checked at load: a known placeholder, closed.
            let end = after.find('}').unwrap_or(after.len());
            out.push_str(match &after[..end] {
                "program" => &self.program,
                "report" => &self.report,
                "name" => &self.name,
                "pid" => &self.pid,
                _ => "",
            });
            rest = after.get(end + 1..).unwrap_or("");
        }
        out.push_str(rest);
        out
    }
}

impl Backend for Detector {
    fn name(&self) -> &str {
        &self.name
    }

    fn summary(&self) -> &str {
        &self.summary
    }

    fn availability(&self) -> Availability {
        let tool = &self.command[0];
        let found = if tool.contains('/') { Path::new(tool).is_file() } else { which::which(tool).is_ok() };
        if found {
            return Availability::Ready;
        }
        let fix = if self.packages.is_empty() {
            format!("install `{tool}` or give its path in the command of {}", self.file.display())
        } else {
            format!("apt-get install -y {}", self.packages.join(" "))
        };
        Availability::Unavailable { reason: format!("`{tool}` (the command of detector file {}) is not found", self.file.display()), fix }
    }

    fn matching(&self) -> Matching {
        self.matching
    }

    fn checks_frees(&self) -> bool {
        self.checks_frees
    }

    fn run(&self, target: &Target, config: &RunConfig) -> Result<Report, Error> {
        let dir = process::scratch()?;
        let report_path = match self.report {
            ReportPlace::Directory => {
                let d = dir.path().join("report");
                std::fs::create_dir(&d).map_err(|e| Error::io(&d, e))?;
                d
            }
            _ => dir.path().join("report"),
        };
        let mut values = Values {
            program: target.program.display().to_string(),
            args: target.args.clone(),
            report: report_path.display().to_string(),
            name: target.name.clone(),
            pid: String::new(),
        };
        let started = Instant::now();
        let mut notes = Vec::new();
        let (tool, program_exit, rss) = if self.needs_checkpoint {
            self.run_attached(target, config, &mut values)?
        } else {
            if config.after.is_some() {
                notes.push("--after is not used: this detector runs the program itself and reports at its end".to_string());
            }
            let argv = self.argv(&values);
            // The tool's own output is read when it is the report.
            let io = if matches!(self.report, ReportPlace::Stdout | ReportPlace::Stderr) { ProgramIo::Capture } else { config.io };
            let mut spec = Spec::new(&argv[0], self.timeout(config)).args(&argv[1..]).io(io).env_remove("LEAKLAB_CHECKPOINT");
            for (k, v) in &self.env {
                spec = spec.env(k, values.fill(v));
            }
            let finished = process::run(&spec).map_err(|e| self.spawn_error(e))?;
            let rss = finished.peak_rss_kib;
            (finished, None, rss)
        };
        if let process::Exit::Signal(sig) = tool.exit {
            return Err(Error::TargetFailed {
                program: format!("{} (detector {})", self.command[0], self.name),
                how: format!("was killed by {}", process::signal_name(sig)),
                stderr: tool.stderr_text(),
            });
        }
        let texts = self.report_texts(&report_path, &tool)?;
        let mut report = Report::new(&target.name, &self.name);
        let suppressions = {
            let mut s = Suppressions::default();
            for file in &config.suppressions {
                s.extend(Suppressions::load(file)?);
            }
            s
        };
        self.read(&mut report, target, &texts, &suppressions)?;
        report.notes.extend(notes);
        if let Some(process::Exit::Signal(sig)) = program_exit {
            report.processes.push(Process { pid: 0, parent: None, program: target.name.clone(), end: End::Killed { signal: process::signal_name(sig) }, analysed: true });
        }
        report.stats = Some(Stats { wall_ms: started.elapsed().as_millis() as u64, peak_rss_kib: Some(rss), pause_ms: None });
        Ok(report)
    }
}

impl Detector {
    fn spawn_error(&self, e: Error) -> Error {
        match e {
            Error::Spawn { program, source } => Error::Spawn { program: format!("{program} (the command of detector file {})", self.file.display()), source },
            e => e,
        }
    }

    /// needs_checkpoint: leaklab starts the program with LEAKLAB_CHECKPOINT
    /// set, waits for its stop (or stops it after `--after`), runs the tool
    /// with `{pid}` while it is stopped, then lets it go on to its end. The
    /// program is killed with its group if anything fails (Child's drop).
    fn run_attached(&self, target: &Target, config: &RunConfig, values: &mut Values) -> Result<(process::Finished, Option<process::Exit>, u64), Error> {
        let spec = Spec::new(&target.program, config.timeout).args(&target.args).io(config.io).env("LEAKLAB_CHECKPOINT", "1");
        let mut child = Child::spawn(&spec)?;
        if let Some(after) = config.after {
            let until = Instant::now() + after;
            while Instant::now() < until && !child.has_exited() {
                std::thread::sleep(Duration::from_millis(20));
            }
            child.signal(libc::SIGSTOP);
        }
        child.wait_stop().map_err(|e| match e {
            Error::TargetFailed { program, how, stderr } => Error::TargetFailed {
                program,
                how: format!("{how} before its checkpoint (detector {} has needs_checkpoint = true: the program must stop itself with raise(SIGSTOP) when LEAKLAB_CHECKPOINT is set, as c-samples/leaklab.h does, or give --after SECONDS)", self.name),
                stderr,
            },
            e => e,
        })?;
        values.pid = child.pid().to_string();
        let argv = self.argv(values);
        let mut tool = Spec::new(&argv[0], self.timeout(config)).args(&argv[1..]);
        if matches!(self.report, ReportPlace::Stdout | ReportPlace::Stderr) {
            tool = tool.io(ProgramIo::Capture);
        }
        for (k, v) in &self.env {
            tool = tool.env(k, values.fill(v));
        }
        let finished = process::run(&tool).map_err(|e| self.spawn_error(e))?;
        let program_exit = if config.after.is_some() {
            // Stopped where it was: it has no end of its own to reach.
            child.signal(libc::SIGKILL);
            let _ = child.finish()?;
            None
        } else {
            child.resume();
            Some(child.finish()?.exit)
        };
        let rss = finished.peak_rss_kib;
        Ok((finished, program_exit.filter(|e| matches!(e, process::Exit::Signal(_))), rss))
    }

    /// The report's texts: the file, every file of the directory (by name),
    /// or the tool's captured stdout or stderr.
    fn report_texts(&self, path: &Path, tool: &process::Finished) -> Result<Vec<(String, String)>, Error> {
        let missing = |what: String| Error::TargetFailed {
            program: format!("{} (detector {})", self.command[0], self.name),
            how: format!("{} {what}", tool.exit.describe()),
            stderr: tool.stderr_text(),
        };
        match self.report {
            ReportPlace::Stdout => Ok(vec![("stdout".into(), String::from_utf8_lossy(&tool.stdout).into_owned())]),
            ReportPlace::Stderr => Ok(vec![("stderr".into(), String::from_utf8_lossy(&tool.stderr).into_owned())]),
            ReportPlace::File => {
                if !path.is_file() {
                    return Err(missing(format!("without writing its report to {{report}} ({})", path.display())));
                }
                let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
                Ok(vec![("report".into(), String::from_utf8_lossy(&bytes).into_owned())])
            }
            ReportPlace::Directory => {
                let mut files: Vec<PathBuf> =
                    std::fs::read_dir(path).map_err(|e| Error::io(path, e))?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
                files.sort();
                if files.is_empty() {
                    return Err(missing(format!("without writing a report file in the {{report}} directory ({})", path.display())));
                }
                files
                    .iter()
                    .map(|f| {
                        let bytes = std::fs::read(f).map_err(|e| Error::io(f, e))?;
                        Ok((f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), String::from_utf8_lossy(&bytes).into_owned()))
                    })
                    .collect()
            }
        }
    }

    /// Fills the report from the texts with the format's parser, the same
    /// function the built-in backend uses.
    fn read(&self, report: &mut Report, target: &Target, texts: &[(String, String)], suppressions: &Suppressions) -> Result<(), Error> {
        match self.format {
            Format::ValgrindText | Format::ValgrindXml => {
                let mut logs = Vec::new();
                for (file, text) in texts {
                    if self.format == Format::ValgrindText {
                        logs.push(crate::backends::valgrind::parse_log(text));
                    } else {
                        logs.extend(parse_valgrind_xml(text).map_err(|m| Error::MalformedOutput { tool: format!("detector {} ({file})", self.name), message: m })?);
                    }
                }
                let several = logs.len() > 1;
                for (i, out) in logs.iter().enumerate() {
                    let pid = out.pid.unwrap_or(i as u32);
                    crate::backends::valgrind::add_errors(report, target, out, several.then_some(pid));
                    crate::backends::valgrind::add_leaks(report, target, out, pid, several);
                    if several {
                        let end = match &out.fatal_signal {
                            Some(signal) => End::Killed { signal: signal.clone() },
                            None => End::Finished,
                        };
                        report.processes.push(Process { pid, parent: out.parent, program: out.program(), end, analysed: out.leak_check });
                    }
                }
                crate::backends::valgrind::classify_runtime(report, suppressions);
            }
            Format::Lsan => {
                for (_, text) in texts {
                    let log = crate::backends::lsan::parse_log(text)?;
                    for mut leak in log.leaks {
                        leak.site = target.site_of(&leak.stack);
                        report.leaks.push(leak);
                    }
                    report.suppressed.extend(log.suppressed.into_iter().map(|(leaks, bytes, rule)| Suppressed { rule: format!("leak:{rule}"), leaks, bytes }));
                    for e in log.errors {
                        report.errors.push(MemoryError { site: target.site_of(&e.stack), kind: e.kind, what: e.what, stack: e.stack, pid: None });
                    }
                }
            }
            Format::LeaklabJson => {
                for (file, text) in texts {
                    let value: serde_json::Value = serde_json::from_str(text)
                        .map_err(|e| Error::MalformedOutput { tool: format!("detector {} ({file})", self.name), message: format!("not JSON: {e}") })?;
                    let value = value.get("report").cloned().unwrap_or(value);
                    let theirs: Report = serde_json::from_value(value)
                        .map_err(|e| Error::MalformedOutput { tool: format!("detector {} ({file})", self.name), message: format!("not a leaklab report: {e}") })?;
                    if let Status::Failed { error } = &theirs.status {
                        return Err(Error::MalformedOutput { tool: format!("detector {}", self.name), message: format!("its report says the run failed: {error}") });
                    }
                    if report.status == Status::Ok {
                        report.status = theirs.status.clone();
                    }
                    for mut leak in theirs.leaks {
                        if leak.site.is_none() {
                            leak.site = target.site_of(&leak.stack);
                        }
                        report.leaks.push(leak);
                    }
                    for mut b in theirs.bad_frees {
                        if b.site.is_none() {
                            b.site = target.site_of(&b.stack);
                        }
                        report.bad_frees.push(b);
                    }
                    report.errors.extend(theirs.errors);
                    report.notes.extend(theirs.notes);
                    report.processes.extend(theirs.processes);
                    report.suppressed.extend(theirs.suppressed);
                }
            }
            Format::DebugNew => {
                for (_, text) in texts {
                    let dump = crate::backends::debug_new::parse_dump(text)?;
                    for mut leak in dump.leaks {
                        leak.site = target.site_of(&leak.stack);
                        report.leaks.push(leak);
                    }
                    report.notes.extend(dump.notes);
                }
            }
            Format::BccMemleak => {
                for (_, text) in texts {
                    // memleak prints a report per interval: the last one is the latest state.
                    let Some(start) = text.rfind("\n[").map(|i| i + 1).or_else(|| text.starts_with('[').then_some(0)) else {
                        return Err(Error::MalformedOutput { tool: format!("detector {}", self.name), message: "no memleak report (`[time] Top N stacks with outstanding allocations:`)".into() });
                    };
                    let parsed = crate::backends::bcc::parse_report(&text[start..])?;
                    for group in parsed.groups {
                        let stack: Vec<Frame> = group.frames.iter().map(|f| bcc_frame(&f.symbol)).collect();
                        let mut leak = Leak::new(Kind::Unclassified, group.bytes, group.count);
                        leak.site = target.site_of(&stack);
                        leak.api = stack.first().and_then(|f| f.function.clone());
                        leak.stack = stack;
                        report.leaks.push(leak);
                    }
                }
            }
        }
        Ok(())
    }
}

/// `fn+0x1a [libc.so.6]` (memleak's symbol) as a frame without a line.
fn bcc_frame(symbol: &str) -> Frame {
    let (name, object) = match symbol.rsplit_once(" [") {
        Some((n, o)) => (n, o.strip_suffix(']').map(str::to_string)),
        None => (symbol, None),
    };
    let function = name.split('+').next().filter(|f| !f.is_empty() && *f != "[unknown]").map(str::to_string);
    Frame { function, file: None, line: None, object }
}

/// memcheck's XML (one `<valgrindoutput>` document per process; a file
/// may hold several one after the other) as the text parser's `LogOutput`:
/// the loss records through the same record parser (`<xwhat><text>` is the
/// text log's line), the errors through the same classifier.
pub fn parse_valgrind_xml(text: &str) -> Result<Vec<crate::backends::valgrind::LogOutput>, String> {
    let mut outs = Vec::new();
    let documents: Vec<&str> = text.split("<?xml").filter(|d| !d.trim().is_empty()).collect();
    for doc in documents {
        let doc = format!("<?xml{doc}");
        let xml = roxmltree::Document::parse(&doc).map_err(|e| format!("not valgrind's XML: {e}"))?;
        let root = xml.root_element();
        if root.tag_name().name() != "valgrindoutput" {
            return Err(format!("the root element is <{}>, not <valgrindoutput>", root.tag_name().name()));
        }
        let child_text = |n: roxmltree::Node, tag: &str| n.children().find(|c| c.has_tag_name(tag)).and_then(|c| c.text()).map(str::to_string);
        let mut out = crate::backends::valgrind::LogOutput { pid: child_text(root, "pid").and_then(|p| p.trim().parse().ok()), ..Default::default() };
        out.parent = child_text(root, "ppid").and_then(|p| p.trim().parse().ok());
        if let Some(args) = root.children().find(|c| c.has_tag_name("args")) {
            if let Some(argv) = args.children().find(|c| c.has_tag_name("argv")) {
                let exe = child_text(argv, "exe").unwrap_or_default();
                let rest: Vec<String> = argv.children().filter(|c| c.has_tag_name("arg")).filter_map(|c| c.text().map(str::to_string)).collect();
                out.command = Some(std::iter::once(exe).chain(rest).collect::<Vec<_>>().join(" "));
            }
        }
        for node in root.children().filter(roxmltree::Node::is_element) {
            match node.tag_name().name() {
                "error" => {
                    let kind = child_text(node, "kind").unwrap_or_default();
                    // Stacks in order, each after the auxwhat before it.
                    let mut parts: Vec<(String, Vec<Frame>)> = vec![(String::new(), Vec::new())];
                    let mut first = true;
                    for c in node.children().filter(roxmltree::Node::is_element) {
                        match c.tag_name().name() {
                            "auxwhat" => parts.push((c.text().unwrap_or("").trim().to_string(), Vec::new())),
                            "stack" => {
                                let frames = c.children().filter(|f| f.has_tag_name("frame")).map(|f| xml_frame(f)).collect();
                                let slot = if first { &mut parts[0] } else { parts.last_mut().expect("never empty") };
                                slot.1 = frames;
                                first = false;
                            }
                            _ => {}
                        }
                    }
                    if kind.starts_with("Leak_") {
                        let what = node.children().find(|c| c.has_tag_name("xwhat")).and_then(|x| child_text(x, "text")).unwrap_or_default();
                        out.leak_check = true;
                        out.leaks.extend(crate::backends::valgrind::leak_record(&what, parts.swap_remove(0).1));
                    } else {
                        let what = child_text(node, "what")
                            .or_else(|| node.children().find(|c| c.has_tag_name("xwhat")).and_then(|x| child_text(x, "text")))
                            .unwrap_or_default();
                        crate::backends::valgrind::add_error_record(&mut out, what.trim(), parts);
                    }
                }
                "fatal_signal" => out.fatal_signal = child_text(node, "signame"),
                "status" if child_text(node, "state").as_deref().map(str::trim) == Some("FINISHED") => out.exit_check = true,
                _ => {}
            }
        }
        // A run that reached its end with nothing lost has no leak errors: its check still ran.
        if out.exit_check && out.fatal_signal.is_none() {
            out.leak_check = true;
        }
        outs.push(out);
    }
    if outs.is_empty() {
        return Err("an empty report".into());
    }
    Ok(outs)
}

/// A `<frame>`: `<fn>`, `<dir>`/`<file>`/`<line>`, `<obj>`; the object only
/// when there is no source line, as in the text log.
fn xml_frame(f: roxmltree::Node) -> Frame {
    let get = |tag: &str| f.children().find(|c| c.has_tag_name(tag)).and_then(|c| c.text()).map(str::to_string);
    let file = get("file").map(|file| match get("dir") {
        Some(dir) if !file.starts_with('/') => format!("{dir}/{file}"),
        _ => file,
    });
    let line = get("line").and_then(|l| l.parse().ok());
    let object = if file.is_none() { get("obj") } else { None };
    Frame { function: get("fn").filter(|f| f != "???"), file, line, object }
}
