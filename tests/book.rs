//! Trials of the book and of the human output it shows: no snapshot
//! placeholders where a reader looks, `compare` fits 100 columns, the
//! matrix is printed once, the figures are there, every link resolves.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use leaklab::book::{snapshot_comparison, BookPaths};
use leaklab::compare::Comparison;
use leaklab::render::{self, Style, View, NARROW};
use libtest_mimic::{Failed, Trial};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn data(name: &str) -> PathBuf {
    root().join("tests/data/book").join(name)
}

fn read(path: &Path) -> Result<String, Failed> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()).into())
}

/// The files under `dir` (recursively) whose name ends with one of `exts`.
fn files(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if exts.iter().any(|x| path.extension().is_some_and(|e| e == *x)) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The book prints a sample without the per-backend notes; the
/// annotations it keeps still name the lines they named.
fn listing_drops_backend_notes() -> Result<(), Failed> {
    let got = leaklab::book::listing(&read(&data("listing-notes.c"))?);
    let want = read(&data("listing-notes.expected"))?;
    if got != want {
        return Err(format!("listing of tests/data/book/listing-notes.c:\n{got}\nwanted:\n{want}").into());
    }
    Ok(())
}

fn placeholders() -> Result<Vec<String>, Failed> {
    Ok(read(&data("placeholders.txt"))?.lines().filter(|l| !l.is_empty()).map(String::from).collect())
}

/// Lines of `text` that hold a placeholder, as `file:line: text`.
fn placeholder_lines(name: &str, text: &str, patterns: &[String]) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| patterns.iter().any(|p| l.contains(p.as_str())))
        .map(|(i, l)| format!("{name}:{}: {}", i + 1, l.trim()))
        .collect()
}

/// The chapters, the generated outputs and (when it was built) the HTML
/// book hold no snapshot placeholder.
fn no_placeholders() -> Result<(), Failed> {
    let patterns = placeholders()?;
    let mut found = Vec::new();
    let mut sources = files(&root().join("book/src"), &["md", "txt", "html"]);
    sources.extend(files(&root().join("book/book"), &["html"]));
    for path in sources {
        let name = path.strip_prefix(root()).unwrap_or(&path).display().to_string();
        found.extend(placeholder_lines(&name, &read(&path)?, &patterns));
    }
    if found.is_empty() { Ok(()) } else { Err(format!("snapshot placeholders a reader sees:\n  {}", found.join("\n  ")).into()) }
}

/// `leaklab run` shows the real figures: the watch backend's growth in
/// bytes and its rate, not the snapshot's `0 bytes` and `N`.
fn run_shows_real_figures() -> Result<(), Failed> {
    let spec = leaklab::process::Spec::new(env!("CARGO_BIN_EXE_leaklab"), Duration::from_secs(120))
        .args(["--color=never", "run", "--backend", "watch", "strdup_loop"]);
    let finished = leaklab::process::run(&spec).map_err(|e| e.to_string())?;
    let out = String::from_utf8_lossy(&finished.stdout).into_owned();
    let found = placeholder_lines("leaklab run", &out, &placeholders()?);
    if !found.is_empty() {
        return Err(format!("placeholders in `leaklab run`'s output:\n  {}\n{out}", found.join("\n  ")).into());
    }
    let rate = regex::Regex::new(r"grows [1-9]\d* bytes per second").unwrap();
    let bytes = regex::Regex::new(r"unclassified +[1-9]\d* bytes").unwrap();
    if !rate.is_match(&out) || !bytes.is_match(&out) {
        return Err(format!("expected the heap's real growth and rate in:\n{out}").into());
    }
    Ok(())
}

/// The comparison of every backend that has snapshots, with a slow median
/// (10 s a run) so the cost column is at its widest.
fn comparison_of_snapshots() -> Result<Comparison, Failed> {
    let c = snapshot_comparison(&BookPaths::in_repo(root())).map_err(|e| e.to_string())?;
    let outcomes = c.outcomes.into_iter().map(|o| leaklab::compare::Outcome { wall_ms: 9999, ..o }).collect();
    Ok(Comparison::from_outcomes(c.backends, c.samples, outcomes, c.unavailable))
}

fn compare_fits_narrow() -> Result<(), Failed> {
    let c = comparison_of_snapshots()?;
    if c.backends.len() < 2 {
        return Err("expected the snapshots of several backends".into());
    }
    let text = render::comparison_view(&c, Style { color: false }, View::DEFAULT);
    let long: Vec<String> =
        text.lines().filter(|l| l.chars().count() > NARROW).map(|l| format!("{} columns: {l}", l.chars().count())).collect();
    if !long.is_empty() {
        return Err(format!("lines of `leaklab compare` wider than {NARROW} columns:\n{}", long.join("\n")).into());
    }
    // Every backend has its row, with recall and precision on it.
    for b in &c.backends {
        let row = text.lines().find(|l| l.split_whitespace().next() == Some(b.as_str())).ok_or(format!("no row for {b}:\n{text}"))?;
        if row.matches('%').count() < 2 && !row.contains('–') {
            return Err(format!("the row of {b} lacks recall and precision: {row}").into());
        }
    }
    let wide = render::comparison_view(&c, Style { color: false }, View::WIDE);
    if !wide.contains("Per sample") || !wide.contains("precision") {
        return Err(format!("the wide view lacks the per-sample table or the long headers:\n{wide}").into());
    }
    Ok(())
}

/// The wrapping the narrow view uses keeps words whole and indents.
fn wrap_keeps_width() -> Result<(), Failed> {
    let text = read(&data("long-line.txt"))?;
    let wrapped = render::wrap(text.trim_end(), "    ", 40);
    let expected = read(&data("long-line.wrapped"))?;
    if wrapped != expected {
        return Err(format!("wrapped at 40:\n{wrapped}\nexpected:\n{expected}").into());
    }
    Ok(())
}

/// The chapters (not the generated outputs they include) of book/src.
fn chapters() -> Vec<PathBuf> {
    files(&root().join("book/src"), &["md"]).into_iter().filter(|p| !p.starts_with(root().join("book/src/generated"))).collect()
}

/// The accuracy matrix is printed once in the book, as an HTML table and
/// as a heatmap, and the per-sample table does not repeat it.
fn matrix_once() -> Result<(), Failed> {
    let mut counts = std::collections::BTreeMap::new();
    for page in chapters() {
        let text = read(&page)?;
        for name in ["generated/accuracy.html", "generated/accuracy-heatmap.svg", "generated/accuracy.txt", "generated/per-sample.html"] {
            *counts.entry(name).or_insert(0) += text.matches(name).count();
        }
    }
    let expected = [("generated/accuracy.html", 1), ("generated/accuracy-heatmap.svg", 1), ("generated/accuracy.txt", 0), ("generated/per-sample.html", 1)];
    for (name, n) in expected {
        if counts[name] != n {
            return Err(format!("the book shows {name} {} times, expected {n}", counts[name]).into());
        }
    }
    let per_sample = read(&root().join("book/src/generated/per-sample.html"))?;
    if per_sample.contains("recall") || per_sample.contains("precision") {
        return Err("per-sample.html repeats the accuracy matrix".into());
    }
    Ok(())
}

/// At least six figures of book/src/figures/ are shown by the chapters,
/// and every one is an SVG that parses.
fn figures_shown() -> Result<(), Failed> {
    let figures = files(&root().join("book/src/figures"), &["svg"]);
    let text: String = chapters().iter().map(|p| read(p).unwrap_or_default()).collect();
    let mut shown = 0;
    for f in &figures {
        let name = f.file_name().unwrap().to_string_lossy();
        let svg = read(f)?;
        if !svg.contains("<svg") || !svg.trim_end().ends_with("</svg>") {
            return Err(format!("{name} is not a whole SVG").into());
        }
        if text.contains(&format!("figures/{name}")) {
            shown += 1;
        }
    }
    if shown < 6 {
        return Err(format!("the chapters show {shown} figures of book/src/figures/, expected at least 6").into());
    }
    Ok(())
}

/// A heading's id as mdbook makes it: the heading's text without its
/// markup, lower-cased, spaces to `-`, other punctuation dropped.
fn heading_id(heading: &str) -> String {
    let link = regex::Regex::new(r"\[([^\]]*)\]\([^)]*\)").unwrap();
    let text = link.replace_all(heading, "$1");
    let text = regex::Regex::new(r"<[^>]*>").unwrap().replace_all(&text, "");
    text.trim()
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                Some(c.to_lowercase().next().unwrap_or(c))
            } else if c.is_whitespace() {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// The text of a page outside code fences and inline code.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            let code = regex::Regex::new(r"`[^`]*`").unwrap();
            out.push_str(&code.replace_all(line, "``"));
            out.push('\n');
        }
    }
    out
}

/// The ids a page's headings and HTML elements get, duplicates numbered
/// as mdbook numbers them (`x`, `x-1`, `x-2`).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let explicit = regex::Regex::new(r"\{#([\w-]+)\}\s*$").unwrap();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if fenced {
            continue;
        }
        let Some(heading) = line.strip_prefix('#').map(|h| h.trim_start_matches('#')) else { continue };
        if !heading.starts_with(' ') {
            continue;
        }
        let id = match explicit.captures(heading) {
            Some(c) => c[1].to_string(),
            None => heading_id(heading),
        };
        let mut unique = id.clone();
        let mut n = 0;
        while ids.contains(&unique) {
            n += 1;
            unique = format!("{id}-{n}");
        }
        ids.insert(unique);
    }
    let html = regex::Regex::new(r#"\b(?:id|name)="([^"]+)""#).unwrap();
    ids.extend(html.captures_iter(text).map(|c| c[1].to_string()));
    ids
}

/// The broken relative links and anchors of the pages under `src`.
fn broken_links(src: &Path) -> Result<Vec<String>, Failed> {
    let markdown = regex::Regex::new(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+[^)]*)?\)").unwrap();
    let html = regex::Regex::new(r#"\b(?:href|src)="([^"]+)""#).unwrap();
    let mut broken = Vec::new();
    for page in files(src, &["md"]) {
        if page.starts_with(src.join("generated")) {
            continue;
        }
        let text = read(&page)?;
        let body = prose(&text);
        let name = page.strip_prefix(src).unwrap_or(&page).display().to_string();
        let targets = markdown.captures_iter(&body).chain(html.captures_iter(&body)).map(|c| c[1].to_string());
        for target in targets {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = target.split_once('#').map_or((target.as_str(), None), |(f, a)| (f, Some(a)));
            let dest = if file.is_empty() {
                page.clone()
            } else {
                // mdbook turns a link to a chapter's .md into its .html.
                let joined = page.parent().unwrap().join(file);
                let md = joined.with_extension("md");
                if file.ends_with(".html") && md.is_file() { md } else { joined }
            };
            let Ok(dest) = dest.canonicalize() else {
                broken.push(format!("{name}: {target}: no such file"));
                continue;
            };
            if !dest.starts_with(src.canonicalize().map_err(|e| e.to_string())?) {
                broken.push(format!("{name}: {target}: outside the book (the built book has no such page)"));
                continue;
            }
            if let Some(anchor) = anchor {
                if !anchors(&read(&dest)?).contains(anchor) {
                    broken.push(format!("{name}: {target}: no heading with the id `{anchor}`"));
                }
            }
        }
    }
    Ok(broken)
}

fn links_resolve() -> Result<(), Failed> {
    let broken = broken_links(&root().join("book/src"))?;
    if broken.is_empty() { Ok(()) } else { Err(format!("broken links in the book:\n  {}", broken.join("\n  ")).into()) }
}

/// The link checker finds exactly the broken links of its test pages.
fn link_checker_finds_breaks() -> Result<(), Failed> {
    let broken = broken_links(&data("links"))?;
    let expected = [
        "other.md: missing.md: no such file",
        "other.md: page.md#no-such-heading: no heading with the id `no-such-heading`",
        "other.md: page.md#same-heading-2: no heading with the id `same-heading-2`",
    ];
    if broken != expected {
        return Err(format!("expected {expected:#?}\ngot {broken:#?}").into());
    }
    Ok(())
}

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("book::no_placeholders", no_placeholders),
        Trial::test("book::run_shows_real_figures", run_shows_real_figures),
        Trial::test("book::compare_fits_100_columns", compare_fits_narrow),
        Trial::test("book::wrap_keeps_width", wrap_keeps_width),
        Trial::test("book::matrix_printed_once", matrix_once),
        Trial::test("book::figures_shown", figures_shown),
        Trial::test("book::links_resolve", links_resolve),
        Trial::test("book::listing_drops_backend_notes", listing_drops_backend_notes),
        Trial::test("book::link_checker_finds_breaks", link_checker_finds_breaks),
    ]
}
