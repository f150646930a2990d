//! The book's generated outputs (book/src/generated/).
//!
//! Two sorts: *derived* outputs are computed from the committed snapshots
//! (which the suite keeps true to what the backends really print), so they are
//! deterministic and a test compares them byte for byte; *measured* outputs
//! (timings, plots, dumps) come from real runs, and the manifest records a
//! fingerprint of their inputs so a test can tell when they are stale.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::backend;
use crate::catalogue;
use crate::compare::{self, CompareConfig, Comparison, Outcome};
use crate::error::Error;
use crate::render::{self, Style};
use crate::report::Report;
use crate::score::score;

/// The command that refreshes everything here; named in every staleness error.
pub const REFRESH: &str = "cargo run --release -- book generate";

/// Samples whose reports the book shows, per backend that has a snapshot of them.
const SHOWN_SAMPLES: &[&str] = &["strdup_loop", "new_array_loop", "lost_tree", "interior_pointer", "mmap_shared_anon"];

/// One generated file.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// File name under book/src/generated/.
    pub name: String,
    pub content: Vec<u8>,
}

/// Where things live, relative to the repository root.
#[derive(Debug, Clone)]
pub struct BookPaths {
    pub generated: PathBuf,
    pub snapshots: PathBuf,
    /// The README, which carries a copy of the accuracy matrix.
    pub readme: PathBuf,
}

impl BookPaths {
    #[must_use]
    pub fn in_repo(root: &Path) -> BookPaths {
        BookPaths { generated: root.join("book/src/generated"), snapshots: root.join("tests/snapshots"), readme: root.join("README.md") }
    }
}

/// Reads a committed insta snapshot of a report.
pub fn read_snapshot(path: &Path) -> Result<Report, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    // An insta snapshot is a `---`-delimited header, then the YAML value.
    let body = text.splitn(3, "---\n").nth(2).ok_or_else(|| Error::MalformedOutput {
        tool: "insta snapshot".into(),
        message: format!("{}: no `---` header", path.display()),
    })?;
    serde_yaml::from_str(body).map_err(|e| Error::MalformedOutput { tool: "insta snapshot".into(), message: format!("{}: {e}", path.display()) })
}

/// Every backend × sample report in the snapshots, keyed by (backend, sample).
pub fn snapshot_reports(dir: &Path) -> Result<BTreeMap<(String, String), Report>, Error> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let Some(stem) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".snap")) else { continue };
        let Some((backend, sample)) = stem.split_once("__") else { continue };
        out.insert((backend.to_string(), sample.to_string()), read_snapshot(&path)?);
    }
    Ok(out)
}

/// The accuracy matrix scored from the snapshots, in the registry's backend order.
pub fn snapshot_comparison(paths: &BookPaths) -> Result<Comparison, Error> {
    let reports = snapshot_reports(&paths.snapshots)?;
    let mut outcomes = Vec::new();
    let mut backends = Vec::new();
    for b in backend::all() {
        let mut any = false;
        for sample in catalogue::samples() {
            if let Some(r) = reports.get(&(b.name().to_string(), sample.name.to_string())) {
                any = true;
                let sc = score(r, &sample.expectations()?, b.matching());
                outcomes.push(Outcome { report: r.clone(), score: Some(sc), wall_ms: 0 });
            }
        }
        if any {
            backends.push(b.name().to_string());
        }
    }
    let samples = catalogue::samples().iter().map(|s| s.name.to_string()).collect();
    Ok(Comparison::from_outcomes(backends, samples, outcomes, Vec::new()))
}

/// The outputs derived from the snapshots: the catalogue, and the accuracy
/// matrix as text (for the README), as an HTML table and as a heatmap, and
/// the per-sample table.
pub fn derived(paths: &BookPaths) -> Result<Vec<Artifact>, Error> {
    let plain = Style { color: false };
    let mut out = vec![Artifact { name: "catalogue.txt".into(), content: render::catalogue(catalogue::samples(), plain).into_bytes() }];
    let c = snapshot_comparison(paths)?;
    out.push(Artifact { name: "accuracy.txt".into(), content: render::matrix_narrow(&c, plain, false).into_bytes() });
    out.push(Artifact { name: "accuracy.html".into(), content: matrix_html(&c).into_bytes() });
    out.push(Artifact { name: "accuracy-heatmap.svg".into(), content: heatmap_svg(&c).into_bytes() });
    out.push(Artifact { name: "per-sample.html".into(), content: per_sample_html(&c).into_bytes() });
    for (sample, source) in LISTED_SOURCES {
        let info = catalogue::find(sample)?;
        let Some(i) = info.sources.iter().position(|s| s == source) else {
            return Err(Error::MalformedOutput { tool: "book".into(), message: format!("sample {sample} has no source {source}") });
        };
        let file = source.rsplit('/').next().unwrap_or(source);
        out.push(Artifact { name: format!("listing-{file}"), content: listing(info.texts[i]).into_bytes() });
    }
    Ok(out)
}

/// Sources the book prints, as (sample, source file).
const LISTED_SOURCES: &[(&str, &str)] = &[
    ("strdup_loop", "strdup_loop.c"),
    ("mmap_shared_anon", "mmap_shared_anon.c"),
    ("new_array_loop", "new_array_loop.cpp"),
    ("lost_tree", "lost_tree.c"),
    ("common_symbols", "common_symbols/filler.c"),
    ("common_symbols", "common_symbols/releaser.c"),
];

/// A sample's source as the book prints it: without the per-backend notes
/// (`//~[valgrind] MISS: ...`), which explain the scores but bury the code
/// under fourteen detectors' limits. A line that was only notes goes; an
/// annotation that reaches lines above with carets gets its carets
/// recounted, so it still names the same line.
#[must_use]
pub fn listing(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut kept: Vec<(usize, String)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let stripped = match backend_note_start(line) {
            Some(at) => line[..at].trim_end(),
            None => line,
        };
        if stripped.trim().is_empty() && !line.trim().is_empty() {
            continue;
        }
        kept.push((i, stripped.to_string()));
    }
    let new_index: BTreeMap<usize, usize> = kept.iter().enumerate().map(|(n, (i, _))| (*i, n)).collect();
    let mut out = String::new();
    for (n, (i, line)) in kept.iter().enumerate() {
        out.push_str(&recount_carets(line, *i, n, &new_index));
        out.push('\n');
    }
    out
}

/// Where a `//~[backend]` or `//~^^[backend]` note starts in a line.
fn backend_note_start(line: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(rel) = line[from..].find("//~") {
        let at = from + rel;
        if line[at + 3..].trim_start_matches('^').starts_with('[') {
            return Some(at);
        }
        from = at + 3;
    }
    None
}

/// `line` (old index `old`, new index `new`) with the carets of its
/// annotation recounted for the lines that were dropped between it and its target.
fn recount_carets(line: &str, old: usize, new: usize, new_index: &BTreeMap<usize, usize>) -> String {
    let Some(at) = line.find("//~^") else { return line.to_string() };
    let carets = line[at + 3..].chars().take_while(|c| *c == '^').count();
    let Some(&target) = old.checked_sub(carets).and_then(|t| new_index.get(&t)) else { return line.to_string() };
    format!("{}//~{}{}", &line[..at], "^".repeat(new - target), &line[at + 3 + carets..])
}

/// Text made safe inside HTML or SVG.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The matrix as an HTML table (mdbook passes raw HTML through).
fn matrix_html(c: &Comparison) -> String {
    let classes = render::classes_of(c);
    let mut out = String::from("<table class=\"matrix\">\n<thead><tr><th>backend</th>");
    for cl in &classes {
        out.push_str(&format!("<th title=\"{}\">{}</th>", cl.as_str(), render::short_class(*cl)));
    }
    out.push_str("<th>recall</th><th>precision</th><th>kind</th></tr></thead>\n<tbody>\n");
    for b in &c.backends {
        let s = &c.summary[b];
        out.push_str(&format!("<tr><th>{}</th>", esc(b)));
        for cl in &classes {
            let t = s.by_class.get(cl).copied().unwrap_or_default();
            out.push_str(&format!("<td>{}</td>", render::class_cell(*cl, t)));
        }
        let pct = |x: Option<f64>| x.map_or_else(|| "–".to_string(), |v| format!("{:.0}%", v * 100.0));
        out.push_str(&format!("<td>{}</td><td>{}</td><td>{}</td></tr>\n", pct(s.total.recall()), pct(s.total.precision()), pct(render::kind_share(s))));
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// The per-sample table as HTML: a row per sample, a column per backend.
fn per_sample_html(c: &Comparison) -> String {
    // Fourteen backends do not fit the page's width: two tables of half each.
    let half = c.backends.len().div_ceil(2).max(1);
    c.backends.chunks(half).map(|bs| per_sample_table(c, bs)).collect::<Vec<_>>().join("\n")
}

fn per_sample_table(c: &Comparison, backends: &[String]) -> String {
    let mut out = String::from("<table class=\"per-sample\">\n<thead><tr><th>sample</th>");
    for b in backends {
        out.push_str(&format!("<th>{}</th>", esc(b)));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for sample in &c.samples {
        out.push_str(&format!("<tr><th>{}</th>", esc(sample)));
        for b in backends {
            // The long cell as a tooltip; in the table the known misses are
            // a `*`, so a row stays on one line.
            let long = render::sample_cell(c, b, sample);
            let short = regex::Regex::new(r" \(\d+ known miss\)").expect("valid regex").replace(&long, "*").replace(" false", "f");
            out.push_str(&format!("<td title=\"{}\">{}</td>", esc(&long), esc(&short)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// The heatmap of the matrix: a row per backend, a column per leak class,
/// recall as the cell's colour (red 0 % to green 100 %, grey where nothing
/// was annotated), found/missed/false written in the cell.
fn heatmap_svg(c: &Comparison) -> String {
    let classes = render::classes_of(c);
    let (label_w, cell_w, cell_h, top) = (110, 86, 34, 40);
    let width = label_w + cell_w * (classes.len() + 1) + 10;
    let height = top + cell_h * c.backends.len() + 40;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"14\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let columns: Vec<String> = classes.iter().map(|cl| cl.as_str().to_string()).chain(std::iter::once("all".to_string())).collect();
    for (i, name) in columns.iter().enumerate() {
        let x = label_w + cell_w * i + cell_w / 2;
        out.push_str(&format!("<text x=\"{x}\" y=\"{}\" text-anchor=\"middle\" font-weight=\"bold\">{name}</text>\n", top - 12));
    }
    for (row, b) in c.backends.iter().enumerate() {
        let s = &c.summary[b];
        let y = top + cell_h * row;
        out.push_str(&format!("<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-weight=\"bold\">{}</text>\n", label_w - 8, y + cell_h / 2 + 5, esc(b)));
        let tallies = classes.iter().map(|cl| s.by_class.get(cl).copied().unwrap_or_default()).chain(std::iter::once(s.total));
        for (i, t) in tallies.enumerate() {
            let x = label_w + cell_w * i;
            let fill = t.recall().map_or_else(|| "#e4e4e4".to_string(), |r| format!("hsl({:.0}, 70%, 72%)", 120.0 * r));
            out.push_str(&format!("<rect x=\"{x}\" y=\"{y}\" width=\"{cell_w}\" height=\"{cell_h}\" fill=\"{fill}\" stroke=\"white\" stroke-width=\"2\"/>\n"));
            out.push_str(&format!(
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}/{}/{}</text>\n",
                x + cell_w / 2,
                y + cell_h / 2 + 5,
                t.found,
                t.missed,
                t.false_reports
            ));
        }
    }
    out.push_str(&format!(
        "<text x=\"{label_w}\" y=\"{}\" font-size=\"13\">cells: found/missed/false; colour: recall, red 0 % to green 100 %; grey: nothing annotated</text>\n</svg>\n",
        height - 14
    ));
    out
}

/// A fingerprint of what the measured outputs depend on: every sample's
/// sources and the list of backends.
#[must_use]
pub fn fingerprint() -> String {
    let mut h = Sha256::new();
    for s in catalogue::samples() {
        h.update(s.name.as_bytes());
        for t in s.texts {
            h.update(t.as_bytes());
        }
    }
    for b in backend::all() {
        h.update(b.name().as_bytes());
    }
    h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// What a run costs under each backend: the runs' wall times, median and
/// slowest, beside the backend's recall (the matrix itself is shown once,
/// above it in the book).
fn cost_table(c: &Comparison) -> String {
    let mut out = format!("{:<11} {:>5} {:>10} {:>9} {:>8}\n", "backend", "runs", "median ms", "max ms", "recall");
    for b in &c.backends {
        let mut walls: Vec<u64> = c.outcomes.iter().filter(|o| &o.report.backend == b).map(|o| o.wall_ms).collect();
        walls.sort_unstable();
        let s = &c.summary[b];
        let recall = s.total.recall().map_or_else(|| "–".to_string(), |v| format!("{:.0}%", v * 100.0));
        out.push_str(&format!("{:<11} {:>5} {:>10} {:>9} {:>8}\n", b, walls.len(), s.median_wall_ms, walls.last().copied().unwrap_or(0), recall));
    }
    out.push_str("\nwall ms of one run of a built sample, two runs at a time, 2 cores\n");
    out
}

/// The outputs that come from real runs on this machine: the cost of each
/// backend on the catalogue, the allocation bench, the scan bench, a heap
/// dump and a watch plot of the article's strdup loop.
pub fn measured(paths: &BookPaths) -> Result<Vec<Artifact>, Error> {
    let mut out = Vec::new();

    let c = compare::compare(&CompareConfig { jobs: 2, ..CompareConfig::default() }, &|_, _, _| {})?;
    out.push(Artifact { name: "cost.txt".into(), content: cost_table(&c).into_bytes() });

    // mtrace (about 28x native) and efence (about 139x) would take most of
    // the book's time: `leaklab bench -b mtrace -b efence` measures them.
    let only = crate::bench::contenders().iter().map(|c| c.name.to_string()).filter(|n| n != "mtrace" && n != "efence").collect();
    let bench_config = crate::bench::BenchConfig { runs: 3, steps: 250_000, only, ..crate::bench::BenchConfig::default() };
    let bench = crate::bench::bench(&bench_config, &|_, _, _| {})?;
    out.push(Artifact { name: "bench.txt".into(), content: crate::bench::render(&bench).into_bytes() });

    let scan_config = crate::scan::bench::ScanBench {
        heap_mib: vec![1024],
        runs: 3,
        methods: vec![crate::scan::snapshot::Want::Fork, crate::scan::snapshot::Want::Copy],
        threads: 0,
    };
    let scan_text = crate::scan::bench::render(&crate::scan::bench::run(&scan_config)?);
    out.push(Artifact { name: "scan-bench.txt".into(), content: scan_text.into_bytes() });

    out.extend(reports(paths)?);

    out.push(Artifact { name: "heap-dump-strdup_loop.txt".into(), content: heap_dump_of_strdup_loop()?.into_bytes() });

    // `leaklab symbols` links in a temporary directory; keep file names only.
    let temp = regex::Regex::new(r"/tmp/[^/ ]+/(link\d+/)?").expect("valid regex");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/");
    for demo in ["weak_symbols", "weakref_optional", "common_symbols", "replace_operator_new"] {
        let text = crate::symbols::render(&crate::symbols::inspect(catalogue::find(demo)?)?);
        let text = temp.replace_all(&text, "").replace(root, "");
        out.push(Artifact { name: format!("symbols-{demo}.txt"), content: text.into_bytes() });
    }

    // The watch writes its plots itself; they land in generated/ directly.
    let sample = catalogue::find("strdup_loop")?;
    let subject = crate::watch::Subject::Program { program: sample.executable("plain")?.to_path_buf(), args: vec!["0".into()] };
    let options = crate::watch::Options { duration: Some(std::time::Duration::from_secs(6)), ..crate::watch::Options::default() };
    let session = crate::watch::session(&subject, &options, &paths.generated.join("watch-strdup_loop"), false)?;
    out.push(Artifact { name: "watch-strdup_loop.txt".into(), content: crate::watch::render_summary(&session.summary).into_bytes() });
    Ok(out)
}

/// The real reports the book shows, kept as run (JSON) for the freshness check.
const REAL_REPORTS: &str = "reports.json";

/// memcheck's own text report of the sample the book shows beside leaklab's.
const MEMCHECK_LOG: &str = "memcheck-lost_tree.txt";
const MEMCHECK_SAMPLE: &str = "lost_tree";

/// The backends and samples whose real reports the book shows: each shown
/// sample under each backend that has a snapshot of it.
fn shown_runs(paths: &BookPaths) -> Result<Vec<(String, String)>, Error> {
    let snapshots = snapshot_reports(&paths.snapshots)?;
    Ok(backend::all()
        .iter()
        .flat_map(|b| SHOWN_SAMPLES.iter().map(move |s| (b.name().to_string(), (*s).to_string())))
        .filter(|key| snapshots.contains_key(key))
        .collect())
}

/// A report as the book prints it: what the user sees from `leaklab run`,
/// with a growth rate (which depends on the machine's speed) written as
/// "about" its value to two figures.
#[must_use]
pub fn book_text(report: &Report) -> String {
    static RATE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| regex::Regex::new(r"(\d+) bytes per second").expect("valid regex"));
    let mut shown = crate::normalize::for_reading(report.clone());
    for note in &mut shown.notes {
        *note = RATE.replace_all(note, |c: &regex::Captures| format!("about {} per second", about_bytes(c[1].parse().unwrap_or(0)))).into_owned();
    }
    render::report(&shown, Style { color: false })
}

/// A byte count to two significant figures in B, KiB or MiB.
fn about_bytes(n: u64) -> String {
    let (v, unit) = match n {
        0..1024 => return format!("{n} B"),
        1024..1_048_576 => (n as f64 / 1024.0, "KiB"),
        _ => (n as f64 / 1_048_576.0, "MiB"),
    };
    let digits = if v >= 100.0 { 0 } else if v >= 10.0 { 0 } else { 1 };
    let rounded = if v >= 100.0 { (v / 10.0).round() * 10.0 } else { v };
    format!("{rounded:.digits$} {unit}")
}

/// The real reports and memcheck's own log.
fn reports(paths: &BookPaths) -> Result<Vec<Artifact>, Error> {
    let mut out = real_reports(paths)?;
    out.push(Artifact { name: MEMCHECK_LOG.into(), content: memcheck_log()?.into_bytes() });
    Ok(out)
}

/// Runs every shown sample under every shown backend for real.
fn real_reports(paths: &BookPaths) -> Result<Vec<Artifact>, Error> {
    let mut kept = BTreeMap::new();
    let mut out = Vec::new();
    for (b, s) in shown_runs(paths)? {
        let backend = backend::by_name(&b)?;
        let target = crate::backend::Target::sample(catalogue::find(&s)?)?;
        let report = backend::execute(backend.as_ref(), &target, &crate::backend::RunConfig::default());
        out.push(Artifact { name: format!("report-{b}-{s}.txt"), content: book_text(&report).into_bytes() });
        kept.insert(format!("{b}::{s}"), report);
    }
    let json = serde_json::to_string_pretty(&kept).map_err(|e| Error::MalformedOutput { tool: "serde_json".into(), message: e.to_string() })?;
    out.push(Artifact { name: REAL_REPORTS.into(), content: (json + "\n").into_bytes() });
    Ok(out)
}

/// memcheck run the way a user types it, its own text report (stderr) as
/// it printed it, the checkout's path cut from the command line.
fn memcheck_log() -> Result<String, Error> {
    use crate::process::Spec;
    let sample = catalogue::find(MEMCHECK_SAMPLE)?;
    let spec = Spec::new("valgrind", std::time::Duration::from_secs(120))
        .arg("--leak-check=full")
        .arg("--show-leak-kinds=all")
        .arg(sample.executable("plain")?)
        .args(sample.args())
        .env_remove("LEAKLAB_CHECKPOINT")
        .env_remove("DEBUGINFOD_URLS");
    let finished = crate::process::run(&spec)?;
    let text = finished.stderr_text();
    let exe = sample.executable("plain")?.display().to_string();
    let name = exe.rsplit('/').next().unwrap_or(&exe).to_string();
    Ok(text.replace(&exe, &format!("./{name}")))
}

/// The "LEAK SUMMARY" of a memcheck text report: bytes and blocks per kind
/// (definitely, indirectly, possibly lost, still reachable).
fn memcheck_summary(text: &str) -> BTreeMap<String, (u64, u64)> {
    static LINE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(definitely lost|indirectly lost|possibly lost|still reachable): ([\d,]+) bytes in ([\d,]+) blocks").expect("valid regex")
    });
    let number = |s: &str| s.replace(',', "").parse().unwrap_or(0);
    LINE.captures_iter(text).map(|c| (c[1].to_string(), (number(&c[2]), number(&c[3])))).collect()
}

/// The same summary from a leaklab report.
fn report_summary(r: &Report) -> BTreeMap<String, (u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> =
        ["definitely lost", "indirectly lost", "possibly lost", "still reachable"].iter().map(|k| ((*k).to_string(), (0, 0))).collect();
    for l in &r.leaks {
        let key = match l.kind {
            crate::report::Kind::Definite => "definitely lost",
            crate::report::Kind::Indirect => "indirectly lost",
            crate::report::Kind::Possible => "possibly lost",
            crate::report::Kind::Reachable => "still reachable",
            crate::report::Kind::Unclassified => continue,
        };
        if l.region.is_some() {
            continue;
        }
        let e = out.entry(key.to_string()).or_default();
        e.0 += l.bytes;
        e.1 += l.blocks;
    }
    out
}

/// The article's demo: the strdup loop stopped at its checkpoint, its [heap]
/// copied out and shown as hex with the strings marked.
fn heap_dump_of_strdup_loop() -> Result<String, Error> {
    use crate::process::{Child, Spec};
    let sample = catalogue::find("strdup_loop")?;
    let spec = Spec::new(sample.executable("plain")?, std::time::Duration::from_secs(60)).args(sample.args()).env("LEAKLAB_CHECKPOINT", "1");
    let mut child = Child::spawn(&spec)?;
    child.wait_stop()?;
    let dumped = crate::scan::dump::heap_of(child.pid());
    child.resume();
    child.finish()?;
    let dump = dumped?;
    let (start, bytes) = (dump.start(), dump.bytes);
    // The strings live past glibc's first chunks (the tcache and stdio buffers).
    let first = bytes.windows(11).position(|w| w == b"test_memory").unwrap_or(0) & !0xf;
    let from = first.saturating_sub(64);
    Ok(crate::scan::dump::hex_view(start + from as u64, &bytes[from..], 20))
}

const MANIFEST: &str = "MANIFEST";

/// Which generated outputs to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parts {
    /// Only those derived from the snapshots: no runs.
    Derived,
    /// The derived ones and the real reports (with memcheck's own log).
    Reports,
    /// Everything, the measured manifest too.
    All,
}

/// Writes the generated outputs `parts` names.
pub fn generate(paths: &BookPaths, parts: Parts) -> Result<Vec<String>, Error> {
    std::fs::create_dir_all(&paths.generated).map_err(|e| Error::io(&paths.generated, e))?;
    let mut artifacts = derived(paths)?;
    if parts == Parts::Reports {
        artifacts.extend(reports(paths)?);
    }
    if parts == Parts::All {
        artifacts.extend(measured(paths)?);
        let manifest = format!("# inputs of the measured outputs; `{REFRESH}` rewrites this\nfingerprint {}\n", fingerprint());
        artifacts.push(Artifact { name: MANIFEST.into(), content: manifest.into_bytes() });
    }
    let mut written = Vec::new();
    if let Some(matrix) = artifacts.iter().find(|a| a.name == "accuracy.txt") {
        let readme_path = paths.readme.clone();
        let readme = std::fs::read_to_string(&readme_path).map_err(|e| Error::io(&readme_path, e))?;
        if let Some(updated) = readme_with(&readme, &String::from_utf8_lossy(&matrix.content)) {
            std::fs::write(&readme_path, updated).map_err(|e| Error::io(&readme_path, e))?;
            written.push("README.md (its accuracy matrix)".to_string());
        }
    }
    for a in artifacts {
        let path = paths.generated.join(&a.name);
        std::fs::write(&path, &a.content).map_err(|e| Error::io(&path, e))?;
        written.push(format!("book/src/generated/{}", a.name));
    }
    Ok(written)
}

const README_BEGIN: &str = "<!-- accuracy:begin -->\n";
const README_END: &str = "<!-- accuracy:end -->";

/// README.md with its copy of the accuracy matrix replaced by `matrix`.
fn readme_with(readme: &str, matrix: &str) -> Option<String> {
    let start = readme.find(README_BEGIN)? + README_BEGIN.len();
    let end = readme.find(README_END)?;
    (start <= end).then(|| format!("{}```\n{matrix}```\n{}", &readme[..start], &readme[end..]))
}

/// What is stale under book/src/generated/, one sentence each.
pub fn stale(paths: &BookPaths) -> Result<Vec<String>, Error> {
    let mut problems = Vec::new();
    let derived = derived(paths)?;
    if let Some(matrix) = derived.iter().find(|a| a.name == "accuracy.txt") {
        let readme = std::fs::read_to_string(&paths.readme).unwrap_or_default();
        match readme_with(&readme, &String::from_utf8_lossy(&matrix.content)) {
            Some(fresh) if fresh == readme => {}
            Some(_) => problems.push("README.md's copy of the accuracy matrix is stale".to_string()),
            None => problems.push(format!("README.md lacks the `{}` … `{README_END}` markers of the accuracy matrix", README_BEGIN.trim())),
        }
    }
    for a in derived {
        let path = paths.generated.join(&a.name);
        match std::fs::read(&path) {
            Ok(existing) if existing == a.content => {}
            Ok(_) => problems.push(format!("book/src/generated/{} is stale", a.name)),
            Err(_) => problems.push(format!("book/src/generated/{} is missing", a.name)),
        }
    }
    problems.extend(stale_real_reports(paths)?);
    let manifest = std::fs::read_to_string(paths.generated.join(MANIFEST)).unwrap_or_default();
    let recorded = manifest.lines().find_map(|l| l.strip_prefix("fingerprint ")).unwrap_or("none");
    if recorded != fingerprint() {
        problems.push(format!(
            "the measured outputs (cost, plots, dumps) were made from other samples or backends (fingerprint {recorded}, now {})",
            fingerprint()
        ));
    }
    Ok(problems)
}

/// The real reports are fresh when each, normalized, is its committed
/// snapshot (which the suite keeps true to what the backend prints), its
/// text is what the book makes of it, and memcheck's own report sums to
/// what leaklab's valgrind backend found. Timings and addresses may
/// differ from run to run; what they found may not.
fn stale_real_reports(paths: &BookPaths) -> Result<Vec<String>, Error> {
    let mut problems = Vec::new();
    let path = paths.generated.join(REAL_REPORTS);
    let kept: BTreeMap<String, Report> = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| Error::MalformedOutput { tool: "book".into(), message: format!("{}: {e}", path.display()) })?,
        Err(_) => {
            problems.push(format!("book/src/generated/{REAL_REPORTS} is missing"));
            BTreeMap::new()
        }
    };
    let snapshots = snapshot_reports(&paths.snapshots)?;
    let yaml = |r: &Report| serde_yaml::to_string(r).unwrap_or_default();
    for (b, s) in shown_runs(paths)? {
        let Some(real) = kept.get(&format!("{b}::{s}")) else {
            problems.push(format!("book/src/generated/{REAL_REPORTS} lacks the run of {b} on {s}"));
            continue;
        };
        if yaml(&crate::normalize::normalize(real.clone())) != yaml(&snapshots[&(b.clone(), s.clone())]) {
            problems.push(format!("the book's run of {b} on {s} found other leaks than its snapshot tests/snapshots/{b}__{s}.snap"));
        }
        let txt = format!("report-{b}-{s}.txt");
        match std::fs::read_to_string(paths.generated.join(&txt)) {
            Ok(text) if text == book_text(real) => {}
            Ok(_) => problems.push(format!("book/src/generated/{txt} is not what the book makes of its run")),
            Err(_) => problems.push(format!("book/src/generated/{txt} is missing")),
        }
    }
    if let Some(snapshot) = snapshots.get(&("valgrind".to_string(), MEMCHECK_SAMPLE.to_string())) {
        let log = std::fs::read_to_string(paths.generated.join(MEMCHECK_LOG)).unwrap_or_default();
        let summary = memcheck_summary(&log);
        if summary.is_empty() {
            problems.push(format!("book/src/generated/{MEMCHECK_LOG} is missing or has no LEAK SUMMARY"));
        } else if summary != report_summary(snapshot) {
            problems.push(format!("book/src/generated/{MEMCHECK_LOG}'s LEAK SUMMARY is not what the valgrind backend finds on {MEMCHECK_SAMPLE}"));
        }
    }
    Ok(problems)
}
