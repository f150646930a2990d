//! debug_new, the source article's compile-time hook (after nvwa's
//! debug_new): the sample is rebuilt with a forced include
//! (harness/debug_new/debug_new.h) whose macros turn `malloc(n)` into
//! `leaklab_dn_malloc(n, __FILE__, __LINE__, __func__)` and `new T` into
//! `new(__FILE__, __LINE__, __func__) T`. Every such block carries a header
//! with that file, line and function and sits on a list; at exit the runtime writes the blocks
//! still on it. No unwinding and no symbols are needed, but only what the
//! sample's own code allocates is seen: not the buffers libc allocates for
//! it (getline, asprintf), nor what library templates allocate
//! (std::string, std::vector, make_shared). It cannot tell lost from
//! reachable: everything outstanding is `unclassified`. The sample's own
//! mmap/munmap calls are recorded too (as mappings, not blocks).

use std::collections::BTreeMap;

use crate::backend::{Availability, Backend, RunConfig, Target};
use crate::error::Error;
use crate::process::{self, Spec};
use crate::report::{Frame, Kind, Leak, Region, RegionKind, Report, Stats};

pub struct DebugNew;

/// The environment variable naming the dump's path prefix (`.PID` is appended).
const OUT_VAR: &str = "LEAKLAB_DEBUG_NEW_OUT";

impl Backend for DebugNew {
    fn name(&self) -> &'static str {
        "debug-new"
    }

    fn summary(&self) -> &'static str {
        "debug_new: the sample is rebuilt with a forced include that gives every malloc and new its __FILE__, __LINE__ and __func__"
    }

    fn availability(&self) -> Availability {
        // It needs nothing at run time: build.rs compiled the builds with the
        // same compilers as the catalogue.
        Availability::Ready
    }

    fn run(&self, target: &Target, config: &RunConfig) -> Result<Report, Error> {
        let Some(sample) = target.sample else {
            return Err(Error::Usage(
                "debug-new works by recompiling the program's sources with a forced include; it runs catalogue samples only \
                 (for a program of yours: `--backend hook`, `--backend valgrind`, or `--backend lsan`, which preloads LeakSanitizer into it)"
                    .into(),
            ));
        };
        let program = sample.executable("debug-new")?;
        let dir = crate::process::scratch()?;
        let spec = Spec::new(program, config.timeout)
            .args(&target.args)
            .env(OUT_VAR, dir.path().join("debug_new"))
            .env_remove("LEAKLAB_CHECKPOINT");
        let finished = process::run(&spec)?;
        if let process::Exit::Signal(sig) = finished.exit {
            return Err(Error::TargetFailed {
                program: target.name.clone(),
                how: format!("(debug_new build) was killed by {}", process::signal_name(sig)),
                stderr: finished.stderr_text(),
            });
        }
        let mut dumps: Vec<_> = std::fs::read_dir(dir.path())
            .map_err(|e| Error::io(dir.path(), e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        dumps.sort();
        if dumps.is_empty() {
            return Err(Error::TargetFailed {
                program: target.name.clone(),
                how: format!("(debug_new build) {} without writing its dump (did it end with _exit?)", finished.exit.describe()),
                stderr: finished.stderr_text(),
            });
        }
        let mut report = Report::new(&target.name, self.name());
        for dump in &dumps {
            let text = std::fs::read_to_string(dump).map_err(|e| Error::io(dump, e))?;
            let parsed = parse_dump(&text)?;
            for mut leak in parsed.leaks {
                leak.site = target.site_of(&leak.stack);
                report.leaks.push(leak);
            }
            report.notes.extend(parsed.notes);
        }
        report.stats = Some(Stats { wall_ms: finished.wall.as_millis() as u64, peak_rss_kib: Some(finished.peak_rss_kib), pause_ms: None });
        Ok(report)
    }
}

fn malformed(message: impl Into<String>) -> Error {
    Error::MalformedOutput { tool: "debug_new (dump)".into(), message: message.into() }
}

/// Parses one process's dump, grouping its blocks (and its mappings) by
/// allocating line and API:
///
/// ```text
/// debug_new 1 pid=4242
/// block size=24 api=malloc array=0 at=/path/lost_tree.c:14 in=new_node
/// map size=262144 region=private-anon at=/path/mmap_private_anon.c:16 in=leak_mapping
/// mismatch api=new[] released-by=delete at=/path/sample.cpp:12 in=main
/// end blocks=1 maps=1 mismatches=1
/// ```
///
/// The `end` line's counts must equal the numbers of lines: without it the
/// process died while writing. Sites are left unset.
pub fn parse_dump(text: &str) -> Result<Dump, Error> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, first)) if first.starts_with("debug_new 1 ") => {}
        Some((_, first)) => return Err(malformed(format!("line 1 is `{first}`, expected `debug_new 1 pid=N`"))),
        None => return Err(malformed("empty dump")),
    }
    // Ordered so that reports are stable.
    let mut groups: BTreeMap<GroupKey, (u64, u64)> = BTreeMap::new();
    let (mut seen_blocks, mut seen_maps) = (0u64, 0u64);
    let mut notes = Vec::new();
    let mut end = None;
    for (i, line) in lines {
        let at = |what: &str| malformed(format!("line {}: {what}: `{line}`", i + 1));
        if end.is_some() {
            return Err(at("text after the `end` line"));
        }
        if let Some(rest) = line.strip_prefix("end ") {
            let count = |key: &str| -> Result<u64, Error> {
                field(rest, key).and_then(|n| n.parse().ok()).ok_or_else(|| at(&format!("`end` without a numeric {key}=")))
            };
            end = Some((count("blocks")?, count("maps")?, count("mismatches")?));
            continue;
        }
        if let Some(rest) = line.strip_prefix("mismatch ") {
            let api = field(rest, "api").ok_or_else(|| at("no api="))?;
            let by = field(rest, "released-by").ok_or_else(|| at("no released-by="))?;
            let place = rest.split_once(" at=").map(|(_, l)| l).ok_or_else(|| at("no at="))?;
            let (location, function) = place.rsplit_once(" in=").ok_or_else(|| at("no in= after at="))?;
            let (file, line_no) = location.rsplit_once(':').ok_or_else(|| at("at= is not FILE:LINE"))?;
            // The file's name only: notes are not path-normalized.
            let file = file.rsplit('/').next().unwrap_or(file);
            notes.push(format!("mismatched release: a block of {api} at {file}:{line_no} ({function}) was released with {by}"));
            continue;
        }
        let (rest, api, region) = if let Some(rest) = line.strip_prefix("block ") {
            let api = field(rest, "api").ok_or_else(|| at("no api="))?;
            field(rest, "array").filter(|a| *a == "0" || *a == "1").ok_or_else(|| at("array= must be 0 or 1"))?;
            seen_blocks += 1;
            (rest, api, None)
        } else if let Some(rest) = line.strip_prefix("map ") {
            let region = field(rest, "region").and_then(RegionKind::parse).ok_or_else(|| at("no valid region="))?;
            seen_maps += 1;
            (rest, "mmap", Some(region))
        } else {
            return Err(at("expected a `block`, `map` or `end` line"));
        };
        let size: u64 = field(rest, "size").and_then(|s| s.parse().ok()).ok_or_else(|| at("no numeric size="))?;
        // `at=FILE:LINE in=FUNCTION` ends the line; both may hold spaces (a
        // path, `operator delete`), but a function's name never holds ` in=`.
        let place = rest.split_once(" at=").map(|(_, l)| l).ok_or_else(|| at("no at="))?;
        let (location, function) = place.rsplit_once(" in=").ok_or_else(|| at("no in= after at="))?;
        // g++ names namespace scope "top level"; it is no function.
        let function = Some(function.to_string()).filter(|f| !f.is_empty() && f != "top level");
        let (file, line_no) = location.rsplit_once(':').ok_or_else(|| at("at= is not FILE:LINE"))?;
        let line_no: u32 = line_no.parse().map_err(|_| at("at= is not FILE:LINE"))?;
        if file.is_empty() {
            return Err(at("at= has an empty file name"));
        }
        let g = groups.entry((file.to_string(), line_no, function, api.to_string(), region)).or_default();
        g.0 += size;
        g.1 += 1;
    }
    match end {
        None => return Err(malformed("no `end` line: the dump was cut short")),
        Some((b, m, x)) if (b, m, x as usize) != (seen_blocks, seen_maps, notes.len()) => {
            return Err(malformed(format!(
                "the `end` line counts {b} blocks, {m} maps and {x} mismatches, the dump lists {seen_blocks}, {seen_maps} and {}",
                notes.len()
            )))
        }
        Some(_) => {}
    }
    let leaks = groups
        .into_iter()
        .map(|((file, line, function, api, region), (bytes, blocks))| {
            let mut leak = Leak::new(Kind::Unclassified, bytes, blocks);
            leak.api = Some(api);
            leak.region = region.map(|kind| Region { kind, flags: None, path: None });
            leak.stack = vec![Frame { function, file: Some(file), line: Some(line), object: None }];
            leak
        })
        .collect();
    Ok(Dump { leaks, notes })
}

/// What one process's dump says.
#[derive(Debug, Default)]
pub struct Dump {
    pub leaks: Vec<Leak>,
    /// Releases that did not match their allocation, one sentence each.
    pub notes: Vec<String>,
}

/// What a leak groups blocks by: file, line, function, API, mapping kind.
type GroupKey = (String, u32, Option<String>, String, Option<RegionKind>);

/// The value of `key=value` among space-separated fields (before `at=`).
fn field<'a>(fields: &'a str, key: &str) -> Option<&'a str> {
    let head = fields.split(" at=").next().unwrap_or(fields);
    head.split(' ').find_map(|f| f.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}
