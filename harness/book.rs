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
use crate::render::{self, Style, View};
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

/// The outputs derived from the snapshots: reports as a person reads them,
/// the catalogue, and the accuracy matrix.
pub fn derived(paths: &BookPaths) -> Result<Vec<Artifact>, Error> {
    let plain = Style { color: false };
    let reports = snapshot_reports(&paths.snapshots)?;
    let mut out = vec![Artifact { name: "catalogue.txt".into(), content: render::catalogue(catalogue::samples(), plain).into_bytes() }];
    for ((b, s), r) in &reports {
        if SHOWN_SAMPLES.contains(&s.as_str()) {
            out.push(Artifact { name: format!("report-{b}-{s}.txt"), content: render::report(r, plain).into_bytes() });
        }
    }
    // The accuracy matrix, scored from the snapshots, in the registry's backend order.
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
    let c = Comparison::from_outcomes(backends, samples, outcomes, Vec::new());
    out.push(Artifact { name: "accuracy.txt".into(), content: render::comparison_view(&c, plain, View { timings: false, per_sample: false }).into_bytes() });
    out.push(Artifact { name: "per-sample.txt".into(), content: render::comparison_view(&c, plain, View { timings: false, per_sample: true }).into_bytes() });
    Ok(out)
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

/// The outputs that come from real runs on this machine: the cost of each
/// backend on the catalogue, the allocation bench, the scan bench, a heap
/// dump and a watch plot of the article's strdup loop.
pub fn measured(paths: &BookPaths) -> Result<Vec<Artifact>, Error> {
    let plain = Style { color: false };
    let mut out = Vec::new();

    let c = compare::compare(&CompareConfig { jobs: 1, ..CompareConfig::default() }, &|_, _, _| {})?;
    let mut cost = render::comparison_view(&c, plain, View { timings: true, per_sample: false });
    cost.push_str("\nmedian ms/run: wall time of one sample run under the backend, runs one at a time on a 2-core machine\n");
    out.push(Artifact { name: "cost.txt".into(), content: cost.into_bytes() });

    let bench_config = crate::bench::BenchConfig { runs: 3, ..crate::bench::BenchConfig::default() };
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

    out.push(Artifact { name: "heap-dump-strdup_loop.txt".into(), content: heap_dump_of_strdup_loop()?.into_bytes() });

    // `leaklab symbols` links in a temporary directory; keep file names only.
    let temp = regex::Regex::new(r"/tmp/\.tmp[^/ ]+/(link\d+/)?").expect("valid regex");
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

/// Writes the derived outputs, and the measured ones unless `derived_only`.
pub fn generate(paths: &BookPaths, derived_only: bool) -> Result<Vec<String>, Error> {
    std::fs::create_dir_all(&paths.generated).map_err(|e| Error::io(&paths.generated, e))?;
    let mut artifacts = derived(paths)?;
    if !derived_only {
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
