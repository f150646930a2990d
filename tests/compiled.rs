//! Unit trials of the compile-time backends' parsers (LeakSanitizer's
//! report, debug_new's dump) and the symbol demos' behaviours, with their
//! cases under tests/data/{lsan,debug_new,symbols}/.


use leaklab::backends::debug_new::parse_dump;
use leaklab::backends::lsan::parse_report;
use leaklab::annotations;
use leaklab::backend::{self, Availability, Matching, RunConfig, Target};
use leaklab::catalogue;
use leaklab::process::{self, Spec};
use leaklab::report::{Report, Site};
use leaklab::score::score;
use std::time::Duration;
use leaklab::report::{Kind, Leak, RegionKind};
use leaklab::symbols::{self, Binding, Demo, LinkOutcome, Symbol};
use libtest_mimic::{Failed, Trial};

use crate::units::{data, read, snapshot};

fn totals(leaks: &[Leak], kind: Kind) -> (u64, u64) {
    leaks.iter().filter(|l| l.kind == kind).fold((0, 0), |(b, n), l| (b + l.bytes, n + l.blocks))
}

/// `bad/errors.txt` lists `FILE: what the error must say`; one trial per line.
fn rejection_trials(dir: &str, prefix: &str, parse: fn(&str) -> Result<Vec<Leak>, leaklab::Error>) -> Vec<Trial> {
    let list = std::fs::read_to_string(data(&format!("{dir}/bad/errors.txt"))).expect("errors.txt");
    list.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (file, expect) = line.split_once(": ").expect("`FILE: message` lines");
            let (file, expect) = (file.to_string(), expect.to_string());
            let path = data(&format!("{dir}/bad/{file}"));
            let stem = file.rsplit_once('.').map_or(file.as_str(), |(s, _)| s).to_string();
            Trial::test(format!("{prefix}::rejects_{stem}"), move || {
                let text = read(&path)?;
                match parse(&text) {
                    Ok(leaks) => Err(format!("{file} parsed into {} leaks; it must be rejected", leaks.len()).into()),
                    Err(e @ leaklab::Error::MalformedOutput { .. }) if e.to_string().contains(&expect) => Ok(()),
                    Err(e) => Err(format!("{file}: error `{e}` is not a MalformedOutput saying `{expect}`").into()),
                }
            })
        })
        .collect()
}

pub fn trials() -> Vec<Trial> {
    let mut t = vec![
        Trial::test("lsan_report::lost_tree_direct_and_indirect", || {
            let leaks = parse_report(&read(&data("lsan/lost_tree.log"))?).map_err(|e| e.to_string())?;
            // LSan's own summary says 144 bytes in 6; the parser checked the sum.
            if totals(&leaks, Kind::Definite) != (24, 1) || totals(&leaks, Kind::Indirect) != (120, 5) {
                return Err(format!("expected 24/1 definite and 120/5 indirect, got {leaks:?}").into());
            }
            let first = &leaks[0];
            let f1 = &first.stack[1];
            if first.api.as_deref() != Some("malloc")
                || first.stack[0].object.as_deref() != Some("/lib/x86_64-linux-gnu/liblsan.so.0")
                || f1.function.as_deref() != Some("new_node")
                || f1.line != Some(14)
                || !f1.file.as_deref().is_some_and(|f| f.ends_with("lost_tree.c"))
            {
                return Err(format!("first leak's api or frames misread: {first:?}").into());
            }
            snapshot("lsan_report_lost_tree", &leaks)
        }),
        Trial::test("lsan_report::default_format_cpp", || {
            let leaks = parse_report(&read(&data("lsan/virtual_objects_default_format.stderr"))?).map_err(|e| e.to_string())?;
            if totals(&leaks, Kind::Definite) != (96, 5) {
                return Err(format!("expected 96 bytes in 5 definite blocks, got {leaks:?}").into());
            }
            // `operator new(unsigned long)` holds spaces; `_start` has a module and no file.
            let top = &leaks[0].stack[0];
            let last = leaks[0].stack.last().unwrap();
            if leaks[0].api.as_deref() != Some("new")
                || top.function.as_deref() != Some("operator new(unsigned long)")
                || last.function.as_deref() != Some("_start")
                || last.file.is_some()
                || last.object.is_none()
            {
                return Err(format!("frames misread: {:?}", leaks[0].stack).into());
            }
            snapshot("lsan_report_virtual_objects", &leaks)
        }),
        Trial::test("lsan_report::clean_run_is_empty", || {
            let leaks = parse_report("hello from the program\n").map_err(|e| e.to_string())?;
            if leaks.is_empty() { Ok(()) } else { Err(format!("no report, yet {leaks:?}").into()) }
        }),
        Trial::test("debug_new_dump::vector_of_raw_grouped_by_line", || {
            let leaks = parse_dump(&read(&data("debug_new/vector_of_raw.dump"))?).map_err(|e| e.to_string())?.leaks;
            let [leak] = leaks.as_slice() else {
                return Err(format!("five blocks of one line must make one leak, got {leaks:?}").into());
            };
            let frame = &leak.stack[0];
            if (leak.kind, leak.bytes, leak.blocks, leak.api.as_deref()) != (Kind::Unclassified, 120, 5, Some("new"))
                || frame.line != Some(19)
                || !frame.file.as_deref().is_some_and(|f| f.ends_with("vector_of_raw.cpp"))
            {
                return Err(format!("misread: {leak:?}").into());
            }
            snapshot("debug_new_dump_vector_of_raw", &leaks)
        }),
        Trial::test("debug_new_dump::mmap_shared_file_regions", || {
            let leaks = parse_dump(&read(&data("debug_new/mmap_shared_file.dump"))?).map_err(|e| e.to_string())?.leaks;
            let [leak] = leaks.as_slice() else {
                return Err(format!("three mappings of one line must make one leak, got {leaks:?}").into());
            };
            let region = leak.region.as_ref().map(|r| r.kind);
            if (leak.bytes, leak.blocks, leak.api.as_deref(), region) != (786_432, 3, Some("mmap"), Some(RegionKind::SharedFile)) {
                return Err(format!("misread: {leak:?}").into());
            }
            Ok(())
        }),
        Trial::test("debug_new_runtime::replacements_behave", debug_new_runtime),
        Trial::test("lsan_preload::unmodified_program", || {
            // The plain build (no -fsanitize) of strdup_loop, run as a user's program.
            let sample = catalogue::find("strdup_loop").map_err(|e| e.to_string())?;
            let plain = sample.executable("plain").map_err(|e| e.to_string())?;
            let target = Target::program(plain.to_str().ok_or("path")?, &["3".to_string()]).map_err(|e| e.to_string())?;
            let lsan = backend::by_name("lsan").map_err(|e| e.to_string())?;
            if let Availability::Unavailable { reason, .. } = lsan.availability() {
                return Err(format!("lsan cannot run here: {reason}").into());
            }
            let report = backend::execute(lsan.as_ref(), &target, &RunConfig::default());
            let found: Vec<_> = report
                .leaks
                .iter()
                .filter(|l| l.site.as_ref().is_some_and(|s| s.file == "strdup_loop.c" && s.line == 14))
                .map(|l| (l.kind, l.bytes, l.blocks))
                .collect();
            if found == [(Kind::Definite, 36, 3)] {
                Ok(())
            } else {
                Err(format!("expected 36 bytes in 3 definite blocks at strdup_loop.c:14 with liblsan preloaded, got {report:?}").into())
            }
        }),
        Trial::test("lsan_preload::refuses_static_program", || {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let src = dir.path().join("static.c");
            std::fs::write(&src, "#include <stdlib.h>\nint main(void) { return malloc(5) == NULL; }\n").map_err(|e| e.to_string())?;
            let exe = dir.path().join("static");
            let ok = std::process::Command::new(env!("LEAKLAB_CC")).arg("-static").arg(&src).arg("-o").arg(&exe).status().map_err(|e| e.to_string())?;
            if !ok.success() {
                return Err("cannot link a static program (libc6-dev's libc.a)".into());
            }
            let target = Target::program(exe.to_str().ok_or("path")?, &[]).map_err(|e| e.to_string())?;
            let lsan = backend::by_name("lsan").map_err(|e| e.to_string())?;
            match lsan.run(&target, &RunConfig::default()) {
                Err(e) if e.to_string().contains("statically linked") => Ok(()),
                Err(e) => Err(format!("wrong error: {e}").into()),
                Ok(r) => Err(format!("a static program ran \"under LSan\" with {} leaks: LSan never ran in it", r.leaks.len()).into()),
            }
        }),
    ];
    t.extend(rejection_trials("lsan", "lsan_report", parse_report));
    t.extend(rejection_trials("debug_new", "debug_new_dump", |text| parse_dump(text).map(|d| d.leaks)));
    t.extend(symbol_trials());
    t
}

/// One trial per demo of tests/data/symbols/expectations.txt; see its header.
fn symbol_trials() -> Vec<Trial> {
    let text = std::fs::read_to_string(data("symbols/expectations.txt")).expect("expectations.txt");
    let mut demos: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (demo, check) = line.split_once(' ').expect("`DEMO CHECK...` lines");
        match demos.iter_mut().find(|(d, _)| d == demo) {
            Some((_, checks)) => checks.push(check.to_string()),
            None => demos.push((demo.to_string(), vec![check.to_string()])),
        }
    }
    demos
        .into_iter()
        .map(|(demo, checks)| {
            Trial::test(format!("symbols::{demo}"), move || {
                let sample = catalogue::find(&demo).map_err(|e| e.to_string())?;
                let inspected = symbols::inspect(sample).map_err(|e| e.to_string())?;
                let failures: Vec<String> = checks.iter().filter_map(|c| check(&inspected, c).err().map(|e| format!("`{c}`: {e}"))).collect();
                if failures.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{}\n--- what `leaklab symbols {demo}` shows:\n{}", failures.join("\n"), symbols::render(&inspected)).into())
                }
            })
        })
        .collect()
}

fn binding(word: &str) -> Result<Binding, String> {
    match word {
        "GLOBAL" => Ok(Binding::Global),
        "WEAK" => Ok(Binding::Weak),
        "LOCAL" => Ok(Binding::Local),
        other => Err(format!("unknown binding {other}")),
    }
}

fn has(symbols: &[Symbol], name: &str, bind: &str, section: &str) -> Result<(), String> {
    let b = binding(bind)?;
    let found: Vec<&Symbol> = symbols.iter().filter(|s| s.name == name).collect();
    if found.iter().any(|s| s.binding == b && s.section == section) {
        Ok(())
    } else {
        Err(format!("no {bind} {name} in {section}; found {:?}", found.iter().map(|s| (s.binding, &s.section)).collect::<Vec<_>>()))
    }
}

fn link_outcome<'a>(demo: &'a Demo, index: &str) -> Result<&'a LinkOutcome, String> {
    let i: usize = index.parse().map_err(|_| format!("bad link index {index}"))?;
    demo.links.get(i).map(|l| &l.outcome).ok_or_else(|| format!("no link #{i}"))
}

/// One check line (the demo name already removed).
fn check(demo: &Demo, line: &str) -> Result<(), String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["object", source, name, bind, section] => {
            let o = demo.objects.iter().find(|o| o.source == *source).ok_or_else(|| format!("no object for {source}"))?;
            has(&o.symbols, name, bind, section)
        }
        ["link", index, "exe", name, bind, section] => match link_outcome(demo, index)? {
            LinkOutcome::Linked { resolutions, .. } => {
                let r = resolutions.iter().find(|r| r.name == *name).ok_or_else(|| format!("{name} not resolved"))?;
                let exe = r.in_executable.as_ref().ok_or_else(|| format!("{name} not in the executable"))?;
                has(std::slice::from_ref(exe), name, bind, section)
            }
            LinkOutcome::Failed { message, .. } => Err(format!("the link failed: {message}")),
        },
        ["link", index, "null", name] => match link_outcome(demo, index)? {
            LinkOutcome::Linked { resolutions, .. } => {
                let r = resolutions.iter().find(|r| r.name == *name).ok_or_else(|| format!("{name} not resolved"))?;
                match &r.in_executable {
                    Some(s) if !s.is_defined() && s.binding == Binding::Weak && s.value == 0 => Ok(()),
                    other => Err(format!("{name} is not an undefined weak symbol of value 0: {other:?}")),
                }
            }
            LinkOutcome::Failed { message, .. } => Err(format!("the link failed: {message}")),
        },
        ["link", index, "count", name, n] => match link_outcome(demo, index)? {
            LinkOutcome::Linked { resolutions, .. } => {
                let r = resolutions.iter().find(|r| r.name == *name).ok_or_else(|| format!("{name} not resolved"))?;
                let want: usize = n.parse().map_err(|_| "bad count")?;
                let defs = r.mentions.iter().filter(|m| m.2 != "UND").count();
                if defs == want { Ok(()) } else { Err(format!("{name} has {defs} definitions in the objects, expected {want}")) }
            }
            LinkOutcome::Failed { message, .. } => Err(format!("the link failed: {message}")),
        },
        ["link", index, "verdict", name, rest @ ..] => match link_outcome(demo, index)? {
            LinkOutcome::Linked { resolutions, .. } => {
                let r = resolutions.iter().find(|r| r.name == *name).ok_or_else(|| format!("{name} not resolved"))?;
                let want = rest.join(" ");
                if r.verdict.contains(&want) { Ok(()) } else { Err(format!("verdict `{}` does not say `{want}`", r.verdict)) }
            }
            LinkOutcome::Failed { message, .. } => Err(format!("the link failed: {message}")),
        },
        ["link", index, "prints", rest @ ..] => match link_outcome(demo, index)? {
            LinkOutcome::Linked { stdout, .. } => {
                let want = rest.join(" ");
                if stdout.contains(&want) { Ok(()) } else { Err(format!("the program printed `{stdout}`, not `{want}`")) }
            }
            LinkOutcome::Failed { message, .. } => Err(format!("the link failed: {message}")),
        },
        ["link", index, "fails", rest @ ..] => match link_outcome(demo, index)? {
            LinkOutcome::Failed { stage, message } => {
                let want = rest.join(" ");
                if stage == "linking" && message.contains(&want) {
                    Ok(())
                } else {
                    Err(format!("failed while {stage} with `{message}`, expected the link to fail saying `{want}`"))
                }
            }
            LinkOutcome::Linked { .. } => Err("the link succeeded; it must fail".into()),
        },
        _ => Err("unknown check; see tests/data/symbols/expectations.txt".into()),
    }
}

/// Builds tests/data/debug_new/runtime.cpp with the forced include and the
/// runtime, runs it (it checks its own results and exits 1 on a failure),
/// and scores its dump against its annotations.
fn debug_new_runtime() -> Result<(), Failed> {
    let source = data("debug_new/runtime.cpp");
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let exe = dir.path().join("runtime");
    let status = std::process::Command::new(env!("LEAKLAB_CXX"))
        .args(env!("LEAKLAB_BASE_CFLAGS").split_whitespace())
        .args(["-std=gnu++17", "-include", env!("LEAKLAB_DEBUG_NEW_HEADER")])
        .arg(&source)
        .args([env!("LEAKLAB_DEBUG_NEW_C_OBJECT"), env!("LEAKLAB_DEBUG_NEW_CXX_OBJECT"), "-o"])
        .arg(&exe)
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err("runtime.cpp does not compile with the forced include".into());
    }
    let prefix = dir.path().join("dump");
    let spec = Spec::new(&exe, Duration::from_secs(30)).env("LEAKLAB_DEBUG_NEW_OUT", &prefix);
    let finished = process::run(&spec).map_err(|e| e.to_string())?;
    if !finished.exit.success() {
        return Err(format!("runtime.cpp {}: {}", finished.exit.describe(), finished.stderr_text()).into());
    }
    let dump = std::fs::read_dir(dir.path())
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("dump.")))
        .ok_or("no dump written")?;
    let mut report = Report::new("runtime", "debug-new");
    let parsed = parse_dump(&read(&dump)?).map_err(|e| e.to_string())?;
    // Each `// expect: TEXT` comment of the source is one mismatch note.
    let source_text = read(&source)?;
    let mut want: Vec<&str> = source_text.lines().filter_map(|l| l.split_once("// expect: ").map(|(_, w)| w.trim())).collect();
    let mut got: Vec<&str> = parsed.notes.iter().map(String::as_str).collect();
    want.sort_unstable();
    got.sort_unstable();
    if want != got {
        return Err(format!("mismatch notes {got:?}, expected {want:?}").into());
    }
    for mut leak in parsed.leaks {
        let frame = &leak.stack[0];
        let file = frame.file.as_deref().unwrap_or("").rsplit('/').next().unwrap_or("").to_string();
        leak.site = Some(Site { file, line: frame.line.unwrap_or(0), function: frame.function.clone() });
        report.leaks.push(leak);
    }
    let expected = annotations::parse("runtime.cpp", &source_text).map_err(|e| e.to_string())?;
    let problems = score(&report, &expected, Matching::BySite).problems();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}
