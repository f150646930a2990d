//! valgrind memcheck: the program runs on valgrind's synthetic CPU, which sees
//! every allocation and, at exit, scans memory for pointers to each block.
//! We ask for XML (one file per process, so forked children are kept apart)
//! and parse it with roxmltree.

use std::path::Path;

use crate::backend::{Availability, Backend, RunConfig, Target};
use crate::error::Error;
use crate::process::{self, Spec};
use crate::report::{BadFree, BadFreeKind, Frame, Kind, Leak, Report, Stats};

pub struct Valgrind;

impl Backend for Valgrind {
    fn name(&self) -> &'static str {
        "valgrind"
    }

    fn summary(&self) -> &'static str {
        "memcheck: the program runs on a synthetic CPU; at exit every block is classified by the pointers that still reach it"
    }

    fn availability(&self) -> Availability {
        match which::which("valgrind") {
            Ok(_) => Availability::Ready,
            Err(_) => Availability::Unavailable {
                reason: "valgrind is not installed".into(),
                fix: "apt-get install -y valgrind".into(),
            },
        }
    }

    fn checks_frees(&self) -> bool {
        true
    }

    fn debian_packages(&self) -> &'static [&'static str] {
        &["valgrind"]
    }

    fn run(&self, target: &Target, config: &RunConfig) -> Result<Report, Error> {
        let dir = crate::process::scratch()?;
        let xml_pattern = dir.path().join("memcheck.%p.xml");
        let spec = Spec::new("valgrind", config.timeout).io(config.io)
            .arg("--tool=memcheck")
            .arg("--leak-check=full")
            .arg("--show-leak-kinds=all")
            .arg("--errors-for-leak-kinds=none")
            .arg("--num-callers=40")
            .arg("--track-origins=yes")
            .arg("--child-silent-after-fork=no")
            // A program's own operator new/malloc (replace_operator_new) must
            // run: by default memcheck swaps in its own, and the leak's site
            // moves from the replacement to the new-expression.
            .arg("--soname-synonyms=somalloc=nouserintercepts")
            .arg("--xml=yes")
            .arg(format!("--xml-file={}", xml_pattern.display()))
            .arg(&target.program)
            .args(&target.args)
            // No checkpoint stop, and no network look-ups for debug info.
            .env_remove("LEAKLAB_CHECKPOINT")
            .env_remove("DEBUGINFOD_URLS");
        let finished = process::run(&spec)?;
        let mut report = Report::new(&target.name, self.name());
        match finished.exit {
            process::Exit::Signal(sig) => {
                return Err(Error::TargetFailed {
                    program: target.name.clone(),
                    how: format!("under valgrind was killed by {}", process::signal_name(sig)),
                    stderr: finished.stderr_text(),
                })
            }
            // valgrind exits with the program's status: a sample must succeed.
            process::Exit::Code(code) if code != 0 && target.sample.is_some() => {
                return Err(Error::TargetFailed {
                    program: target.name.clone(),
                    how: format!("under valgrind exited with status {code}"),
                    stderr: finished.stderr_text(),
                })
            }
            process::Exit::Code(code) if code != 0 => report.notes.push(format!("the program exited with status {code}")),
            process::Exit::Code(_) => {}
        }

        let mut files: Vec<_> = std::fs::read_dir(dir.path())
            .map_err(|e| Error::io(dir.path(), e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "xml"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::TargetFailed {
                program: "valgrind".into(),
                how: format!("{} and wrote no XML", finished.exit.describe()),
                stderr: finished.stderr_text(),
            });
        }
        for file in &files {
            let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
            let parsed = parse_xml(&text)?;
            for mut leak in parsed.leaks {
                leak.site = target.site_of(&leak.stack);
                report.leaks.push(leak);
            }
            report.notes.extend(parsed.errors);
            for mut b in parsed.bad_frees {
                b.site = target.site_of(&b.stack);
                b.other_site = target.site_of(&b.other_stack);
                report.bad_frees.push(b);
            }
        }
        report.stats = Some(Stats { wall_ms: finished.wall.as_millis() as u64, peak_rss_kib: Some(finished.peak_rss_kib), pause_ms: None });
        Ok(report)
    }
}

/// What one memcheck XML file says.
#[derive(Debug, Default)]
pub struct MemcheckOutput {
    pub leaks: Vec<Leak>,
    /// Other errors (uninitialised values, invalid reads, ...), one line each.
    pub errors: Vec<String>,
    /// MismatchedFree and InvalidFree errors; sites are left unset.
    pub bad_frees: Vec<BadFree>,
}

fn malformed(message: impl Into<String>) -> Error {
    Error::MalformedOutput { tool: "valgrind (memcheck XML)".into(), message: message.into() }
}

/// Parses memcheck's XML output (protocol version 4). Sites are left unset.
pub fn parse_xml(text: &str) -> Result<MemcheckOutput, Error> {
    if text.contains("<valgrindoutput>") && !text.contains("</valgrindoutput>") {
        return Err(malformed("no closing </valgrindoutput> and no FINISHED status: the run was cut short"));
    }
    let doc = roxmltree::Document::parse(text).map_err(|e| malformed(e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().name() != "valgrindoutput" {
        return Err(malformed(format!("root element is <{}>, expected <valgrindoutput>", root.tag_name().name())));
    }
    let protocol = child_text(root, "protocolversion").unwrap_or("?");
    if protocol != "4" {
        return Err(malformed(format!("protocol version {protocol}, expected 4")));
    }
    // A run that ended normally closes with a FINISHED status; without it the
    // file is cut short (valgrind was killed) and its leak list incomplete.
    let finished = root.children().filter(|n| n.has_tag_name("status")).any(|s| child_text(s, "state") == Some("FINISHED"));
    if !finished {
        return Err(malformed("no FINISHED status: the run was cut short"));
    }
    let mut out = MemcheckOutput::default();
    for error in root.children().filter(|n| n.has_tag_name("error")) {
        let kind_text = child_text(error, "kind").ok_or_else(|| malformed("<error> without <kind>"))?;
        let stack = error.children().find(|n| n.has_tag_name("stack")).map(parse_stack).unwrap_or_default();
        let kind = match kind_text {
            "Leak_DefinitelyLost" => Kind::Definite,
            "Leak_IndirectlyLost" => Kind::Indirect,
            "Leak_PossiblyLost" => Kind::Possible,
            "Leak_StillReachable" => Kind::Reachable,
            "MismatchedFree" | "InvalidFree" => {
                out.bad_frees.push(bad_free(error, kind_text, stack));
                continue;
            }
            other => {
                let what = child_text(error, "what")
                    .or_else(|| error.children().find(|n| n.has_tag_name("xwhat")).and_then(|x| child_text(x, "text")))
                    .unwrap_or(other);
                let mut note = format!("{other}: {what}{}", where_in_program(&stack));
                // --track-origins adds where the bad value or block came from: an
                // <auxwhat> followed by its own <stack>.
                if let Some(aux) = child_text(error, "auxwhat") {
                    let origin = error.children().filter(|n| n.has_tag_name("stack")).nth(1).map(parse_stack).unwrap_or_default();
                    note.push_str(&format!("; {aux}{}", where_in_program(&origin)));
                }
                out.errors.push(note);
                continue;
            }
        };
        let xwhat = error.children().find(|n| n.has_tag_name("xwhat")).ok_or_else(|| malformed("leak without <xwhat>"))?;
        let number = |tag: &str| -> Result<u64, Error> {
            child_text(xwhat, tag)
                .ok_or_else(|| malformed(format!("leak without <{tag}>")))?
                .parse()
                .map_err(|_| malformed(format!("<{tag}> is not a number")))
        };
        let total = number("leakedbytes")?;
        let blocks = number("leakedblocks")?;
        // <leakedbytes> counts the indirect bytes hanging off a lost block too;
        // the text says "48 (16 direct, 32 indirect) bytes in ..." in that case.
        let bytes = child_text(xwhat, "text").and_then(direct_bytes).unwrap_or(total);
        let api = stack.first().and_then(|f| f.function.as_deref()).map(api_name);
        let mut leak = Leak::new(kind, bytes, blocks);
        leak.api = api;
        leak.stack = stack;
        out.leaks.push(leak);
    }
    Ok(out)
}

/// " at file.c:12", the innermost frame outside the runtime, or nothing.
fn where_in_program(stack: &[Frame]) -> String {
    stack
        .iter()
        .find(|f| f.line.is_some() && !f.object.as_deref().is_some_and(crate::backend::is_runtime_object))
        .map(|f| {
            let file = f.file.as_deref().unwrap_or("?");
            format!(" at {}:{}", file.rsplit('/').next().unwrap_or(file), f.line.unwrap_or(0))
        })
        .unwrap_or_default()
}

/// A MismatchedFree or InvalidFree error. Its first <stack> is the bad free;
/// an <auxwhat> "Address 0x.. is 0 bytes inside a block of size 16 free'd"
/// means a double free, whose second <stack> is the first free; otherwise
/// the second <stack>, when present, is the block's allocation.
fn bad_free(error: roxmltree::Node, kind_text: &str, stack: Vec<Frame>) -> BadFree {
    let stacks: Vec<Vec<Frame>> = error.children().filter(|n| n.has_tag_name("stack")).map(parse_stack).collect();
    let aux = child_text(error, "auxwhat").unwrap_or("");
    let kind = match kind_text {
        "MismatchedFree" => BadFreeKind::Mismatched,
        _ if aux.ends_with("free'd") => BadFreeKind::Double,
        _ => BadFreeKind::Invalid,
    };
    // The allocation's stack is the last one after an "alloc'd" line.
    let alloc = if aux.ends_with("alloc'd") || kind == BadFreeKind::Double { stacks.last().filter(|_| stacks.len() > 1) } else { None };
    let dealloc = stack.first().and_then(|f| f.function.as_deref()).map_or_else(|| "free".to_string(), dealloc_name);
    let api = alloc.and_then(|s| s.first()).and_then(|f| f.function.as_deref()).map(api_name);
    BadFree { kind, dealloc, api, site: None, stack, other_site: None, other_stack: stacks.get(1).cloned().unwrap_or_default() }
}

/// The releasing function as the report names it: `delete[]` rather than
/// `operator delete[](void*)`.
fn dealloc_name(function: &str) -> String {
    let base = function.split('(').next().unwrap_or(function).trim();
    match base {
        "operator delete[]" => "delete[]".into(),
        "operator delete" => "delete".into(),
        other => other.to_string(),
    }
}

/// "48 (16 direct, 32 indirect) bytes in 1 blocks ..." → 16.
fn direct_bytes(text: &str) -> Option<u64> {
    let open = text.find('(')?;
    let rest = &text[open + 1..];
    let (num, rest) = rest.split_once(' ')?;
    rest.starts_with("direct").then(|| num.replace(',', "").parse().ok()).flatten()
}

fn parse_stack(stack: roxmltree::Node) -> Vec<Frame> {
    stack
        .children()
        .filter(|n| n.has_tag_name("frame"))
        .map(|f| {
            let file = child_text(f, "file").map(|file| match child_text(f, "dir") {
                Some(dir) => Path::new(dir).join(file).to_string_lossy().into_owned(),
                None => file.to_string(),
            });
            Frame {
                function: child_text(f, "fn").map(str::to_string),
                file,
                line: child_text(f, "line").and_then(|l| l.parse().ok()),
                object: child_text(f, "obj").map(str::to_string),
            }
        })
        .collect()
}

/// The allocating function as the report names it: `new[]` rather than
/// `operator new[](unsigned long)`.
#[must_use]
pub fn api_name(function: &str) -> String {
    let base = function.split('(').next().unwrap_or(function).trim();
    match base {
        "operator new[]" => "new[]".into(),
        "operator new" => "new".into(),
        other => other.to_string(),
    }
}

fn child_text<'a>(node: roxmltree::Node<'a, 'a>, tag: &str) -> Option<&'a str> {
    node.children().find(|n| n.has_tag_name(tag)).and_then(|n| n.text()).map(str::trim)
}
