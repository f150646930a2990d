//! Unit trials whose cases live in tests/data/: the annotation parser, the
//! memcheck XML parser, the normalizer and the scorer.

use std::path::{Path, PathBuf};

use leaklab::annotations;
use leaklab::backend::Matching;
use leaklab::backends::hook::parse_dump;
use leaklab::backends::valgrind::parse_xml;
use leaklab::report::Frame;
use leaklab::suppressions::{pattern_matches, Suppressions};
use leaklab::normalize::{normalize, RULES};
use leaklab::report::Report;
use leaklab::score::score;
use libtest_mimic::{Failed, Trial};

pub(crate) fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

pub(crate) fn read(p: &Path) -> Result<String, Failed> {
    std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()).into())
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

/// A unit snapshot under tests/snapshots/units/, named explicitly.
pub(crate) fn snapshot<T: serde::Serialize>(name: &str, value: &T) -> Result<(), Failed> {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/units"));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| settings.bind(|| insta::assert_yaml_snapshot!(name, value))))
        .map_err(|_| Failed::from(format!("snapshot units/{name} differs; review with `cargo insta review`")))
}

pub fn trials() -> Vec<Trial> {
    let mut t = vec![
        Trial::test("annotations::valid", || {
            let text = read(&data("annotations/valid.c"))?;
            let parsed = annotations::parse("valid.c", &text).map_err(|e| e.to_string())?;
            snapshot("annotations_valid", &parsed)
        }),
        Trial::test("valgrind_xml::lost_tree_direct_and_indirect", || {
            let out = parse_xml(&read(&data("valgrind/lost_tree.xml"))?).map_err(|e| e.to_string())?;
            // The definitely-lost root owns 144 indirect bytes; the report keeps the direct 24.
            let definite: Vec<_> = out.leaks.iter().filter(|l| l.kind == leaklab::report::Kind::Definite).collect();
            if definite.len() != 1 || definite[0].bytes != 24 || definite[0].blocks != 1 {
                return Err(format!("expected one definite leak of 24 direct bytes, got {definite:?}").into());
            }
            snapshot("valgrind_xml_lost_tree", &out.leaks)
        }),
        Trial::test("normalize::rules_are_named_and_ordered", || {
            let names: Vec<&str> = RULES.iter().map(|r| r.name).collect();
            // Append-only: a new rule goes at the end, so these stay a prefix.
            let frozen = ["drop-stats", "addresses", "pids", "paths", "frames-below-main", "runtime-lines", "sort", "bad-frees"];
            if names.len() < frozen.len() || names[..frozen.len()] != frozen {
                return Err(format!("normalization rules were reordered or removed: {names:?}; append new rules at the end").into());
            }
            Ok(())
        }),
        Trial::test("normalize::raw_valgrind_report", || {
            let raw: Report = serde_json::from_str(&read(&data("normalize/raw_report.json"))?).map_err(|e| e.to_string())?;
            let once = normalize(raw);
            if normalize(once.clone()) != once {
                return Err("normalization is not idempotent".into());
            }
            snapshot("normalize_raw_report", &once)
        }),
    ];
    for (name, expect) in [
        ("truncated.xml", "no FINISHED status"),
        ("not_memcheck.xml", "expected <valgrindoutput>"),
        ("garbage.xml", "malformed output from valgrind"),
    ] {
        t.push(Trial::test(format!("valgrind_xml::rejects_{}", name.trim_end_matches(".xml")), move || {
            let text = read(&data(&format!("valgrind/{name}")))?;
            match parse_xml(&text) {
                Ok(_) => Err(format!("{name} parsed; it must be rejected").into()),
                Err(e) if e.to_string().contains(expect) => Ok(()),
                Err(e) => Err(format!("{name}: error `{e}` does not say `{expect}`").into()),
            }
        }));
    }
    for path in sorted_entries(&data("annotations/bad")) {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        t.push(Trial::test(format!("annotations::rejects_{name}"), move || {
            let text = read(&path)?;
            let expect = text.lines().next().and_then(|l| l.strip_prefix("// error: ")).ok_or("case lacks a `// error:` first line")?;
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            match annotations::parse(&file, &text) {
                Ok(parsed) => Err(format!("parsed without error: {parsed:?}").into()),
                Err(e) => {
                    let msg = e.to_string();
                    // The error names the file and line of the bad annotation (line 2 in every case).
                    if !msg.starts_with(&format!("{file}:2: ")) || !msg.contains(expect) {
                        return Err(format!("error `{msg}` should start with `{file}:2:` and say `{expect}`").into());
                    }
                    Ok(())
                }
            }
        }));
    }
    t.push(Trial::test("hook_dump::parses_every_record", || {
        let dump = parse_dump(&read(&data("hook/exit.dump"))?).map_err(|e| e.to_string())?;
        if dump.blocks.len() != 3 || dump.regions.len() != 2 || dump.bad_frees.len() != 3 || dump.maps.len() != 8 {
            return Err(format!(
                "expected 3 blocks, 2 regions, 3 bad frees, 8 maps lines; got {}, {}, {}, {}",
                dump.blocks.len(),
                dump.regions.len(),
                dump.bad_frees.len(),
                dump.maps.len()
            )
            .into());
        }
        let deleted = &dump.maps[5];
        if deleted.file().is_some() || deleted.path.as_deref() != Some("/tmp/leaklab-Ab12Cd (deleted)") {
            return Err(format!("a deleted file's mapping must keep its name but be no file to read: {deleted:?}").into());
        }
        snapshot("hook_dump_exit", &dump)
    }));
    for (name, expect) in [
        ("truncated", "cut short"),
        ("unknown_record", "unknown record `X what`"),
        ("bad_address", "`7f00` is not a 0x address"),
        ("wrong_version", "expected the header `leaklab-hook 1`"),
        ("bad_free_without_bar", "missing `|`"),
        ("after_end", "text after `end`"),
    ] {
        t.push(Trial::test(format!("hook_dump::rejects_{name}"), move || {
            match parse_dump(&read(&data(&format!("hook/{name}.dump")))?) {
                Ok(d) => Err(format!("{name}.dump parsed: {d:?}").into()),
                Err(e) if e.to_string().contains(expect) && e.to_string().contains("dump line") => Ok(()),
                Err(e) => Err(format!("error `{e}` does not name the dump line and say `{expect}`").into()),
            }
        }));
    }
    t.push(Trial::test("suppressions::valid", || {
        let parsed = Suppressions::parse("valid.supp", &read(&data("suppressions/valid.supp"))?).map_err(|e| e.to_string())?;
        snapshot("suppressions_valid", &parsed)
    }));
    t.push(Trial::test("suppressions::hook_defaults_parse", || {
        let parsed = Suppressions::parse("default.supp", leaklab::backends::hook::DEFAULT_SUPPRESSIONS).map_err(|e| e.to_string())?;
        if parsed.rules.is_empty() {
            return Err("the hook's default suppressions are empty".into());
        }
        Ok(())
    }));
    t.push(Trial::test("suppressions::template_matching", || {
        let mut wrong = Vec::new();
        for line in read(&data("suppressions/matching.txt"))?.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let [want, pattern, text] = words[..] else { return Err(format!("bad case line `{line}`").into()) };
            if pattern_matches(pattern, text) != (want == "yes") {
                wrong.push(format!("`{pattern}` against `{text}` should give {want}"));
            }
        }
        if wrong.is_empty() { Ok(()) } else { Err(wrong.join("\n").into()) }
    }));
    t.push(Trial::test("suppressions::match_any_frame_by_function_file_or_module", || {
        let rules = Suppressions::parse("t", "leak:^allocate_dtv$\nleak:eh_alloc.cc\nleak:libfoo.so").map_err(|e| e.to_string())?;
        let frame = |f: &str, file: &str, obj: &str| Frame {
            function: Some(f.into()),
            file: Some(file.into()),
            line: Some(1),
            object: Some(obj.into()),
        };
        let by_function = [frame("calloc", "rtld-malloc.h", "/lib/ld.so"), frame("allocate_dtv", "dl-tls.c", "/lib/ld.so")];
        let by_file = [frame("pool", "/build/eh_alloc.cc", "/lib/libstdc++.so.6")];
        let by_module = [frame("init", "init.c", "/opt/lib/libfoo.so.1")];
        let kept = [frame("main", "strdup_loop.c", "/x/strdup_loop"), frame("allocate_dtv_wrapper", "x.c", "/x/a")];
        for (stack, want) in [(&by_function[..], true), (&by_file[..], true), (&by_module[..], true), (&kept[..], false)] {
            if rules.matching(stack).is_some() != want {
                return Err(format!("stack {stack:?} should {}be suppressed", if want { "" } else { "not " }).into());
            }
        }
        Ok(())
    }));
    for path in sorted_entries(&data("suppressions/bad")) {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        t.push(Trial::test(format!("suppressions::rejects_{name}"), move || {
            let text = read(&path)?;
            let expect = text.lines().next().and_then(|l| l.strip_prefix("# error: ")).ok_or("case lacks a `# error:` first line")?;
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            match Suppressions::parse(&file, &text) {
                Ok(parsed) => Err(format!("parsed without error: {parsed:?}").into()),
                Err(e) if e.to_string().starts_with(&format!("{file}:2: ")) && e.to_string().contains(expect) => Ok(()),
                Err(e) => Err(format!("error `{e}` should start with `{file}:2:` and say `{expect}`").into()),
            }
        }));
    }
    t.push(Trial::test("hook_run::dump_on_signal_while_running", || {
        // strdup_loop with `0` leaks one string every 2 s forever: only a live dump sees it.
        let sample = leaklab::catalogue::find("strdup_loop").map_err(|e| e.to_string())?;
        let mut target = leaklab::backend::Target::sample(sample).map_err(|e| e.to_string())?;
        target.args = vec!["0".into()];
        let config = leaklab::backend::RunConfig {
            timeout: std::time::Duration::from_secs(30),
            after: Some(std::time::Duration::from_millis(800)),
            ..leaklab::backend::RunConfig::default()
        };
        let report = leaklab::backend::Backend::run(&leaklab::backends::hook::Hook, &target, &config).map_err(|e| e.to_string())?;
        let at_line = report.leaks.iter().filter(|l| l.site.as_ref().is_some_and(|s| s.file == "strdup_loop.c" && s.line == 14)).count();
        if at_line != 1 || report.leaks.len() != 1 {
            return Err(format!("expected one leak at strdup_loop.c:14 in the live dump, got {:?}", report.leaks).into());
        }
        Ok(())
    }));
    t.push(Trial::test("hook_run::user_suppressions_apply", || {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let file = dir.path().join("mine.supp");
        std::fs::write(&file, "# the sample's own loop\nleak:^main$\n").map_err(|e| e.to_string())?;
        let sample = leaklab::catalogue::find("strdup_loop").map_err(|e| e.to_string())?;
        let target = leaklab::backend::Target::sample(sample).map_err(|e| e.to_string())?;
        let hook = leaklab::backends::hook::Hook;
        let plain = leaklab::backend::Backend::run(&hook, &target, &leaklab::backend::RunConfig::default()).map_err(|e| e.to_string())?;
        let config = leaklab::backend::RunConfig { suppressions: vec![file], ..leaklab::backend::RunConfig::default() };
        let suppressed = leaklab::backend::Backend::run(&hook, &target, &config).map_err(|e| e.to_string())?;
        if plain.leaks.is_empty() || !suppressed.leaks.is_empty() {
            return Err(format!("expected leaks without the file and none with it; got {} and {}", plain.leaks.len(), suppressed.leaks.len()).into());
        }
        Ok(())
    }));
    t.push(Trial::test("annotations::badfree", || {
        let text = read(&data("annotations/badfree.c"))?;
        let parsed = annotations::parse("badfree.c", &text).map_err(|e| e.to_string())?;
        snapshot("annotations_badfree", &parsed)
    }));
    t.extend(live_trials());
    for dir in sorted_entries(&data("score")) {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        t.push(Trial::test(format!("score::{name}"), move || score_case(&dir)));
    }
    t
}

/// A scoring case: case.c (annotations), report.json ({matching, report}), expected.txt.
fn score_case(dir: &Path) -> Result<(), Failed> {
    let expected = annotations::parse("case.c", &read(&dir.join("case.c"))?).map_err(|e| e.to_string())?;
    let input: serde_json::Value = serde_json::from_str(&read(&dir.join("report.json"))?).map_err(|e| e.to_string())?;
    let matching = match input["matching"].as_str() {
        Some("by-site") => Matching::BySite,
        Some("by-shape") => Matching::ByShape,
        Some("by-growth") => Matching::ByGrowth,
        other => return Err(format!("bad matching {other:?}").into()),
    };
    let report: Report = serde_json::from_value(input["report"].clone()).map_err(|e| e.to_string())?;
    let s = score(&report, &expected, matching);
    let problems = s.problems();
    let mut want_problems = Vec::new();
    let mut want_tally = std::collections::BTreeMap::new();
    let mut want_kinds = None;
    for line in read(&dir.join("expected.txt"))?.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("kinds ") {
            want_kinds = Some(rest.to_string());
        } else if let Some(rest) = line.strip_prefix("tally ") {
            let (class, figures) = rest.split_once(' ').ok_or("bad tally line")?;
            want_tally.insert(class.to_string(), figures.to_string());
        } else if line != "agrees" {
            want_problems.push(line.to_string());
        }
    }
    if problems.len() != want_problems.len() || !want_problems.iter().all(|w| problems.iter().any(|p| p.contains(w.as_str()))) {
        return Err(format!("problems:\n  {}\nexpected ones containing:\n  {}", problems.join("\n  "), want_problems.join("\n  ")).into());
    }
    let got_tally: std::collections::BTreeMap<String, String> = s
        .tallies()
        .into_iter()
        .map(|(c, t)| (c.as_str().to_string(), format!("{}/{}/{}", t.found, t.missed, t.false_reports)))
        .collect();
    if got_tally != want_tally {
        return Err(format!("tallies {got_tally:?}, expected {want_tally:?}").into());
    }
    if let Some(want) = want_kinds {
        let (agreed, found) = s.tallies().values().fold((0, 0), |(a, f), t| (a + t.kind_agreed, f + t.found));
        if format!("{agreed}/{found}") != want {
            return Err(format!("kinds agreed {agreed}/{found}, expected {want}").into());
        }
    }
    Ok(())
}

/// bcc's memleak output and the /proc files of `watch`, captured on this
/// machine (tests/data/bcc, tests/data/watch).
fn live_trials() -> Vec<Trial> {
    use leaklab::backends::bcc::{parse_report, region_of};
    use leaklab::report::RegionKind;
    use leaklab::watch::{self, Class};
    vec![
        Trial::test("bcc_memleak::groups_and_frames", || {
            let r = parse_report(&read(&data("bcc/wrapper_leak.txt"))?).map_err(|e| e.to_string())?;
            let figures: Vec<(u64, u64, usize)> = r.groups.iter().map(|g| (g.bytes, g.count, g.frames.len())).collect();
            if figures != [(40, 1, 5), (80, 2, 5), (4096, 1, 1)] || r.allocations.len() != 4 {
                return Err(format!("groups {figures:?}, {} allocations", r.allocations.len()).into());
            }
            let f = &r.groups[1].frames[1];
            if f.address != 0x557d_41aa_123e || f.symbol != "load_user+0x1a [wrapper_leak]" {
                return Err(format!("frame {f:?}").into());
            }
            Ok(())
        }),
        Trial::test("bcc_memleak::mmap_region_from_maps", || {
            let r = parse_report(&read(&data("bcc/mmap_shared_anon.txt"))?).map_err(|e| e.to_string())?;
            let maps = leaklab::maps::parse(&read(&data("bcc/mmap_shared_anon.maps"))?).map_err(|e| e.to_string())?;
            // MAP_SHARED|MAP_ANONYMOUS shows as a deleted /dev/zero.
            match region_of(&maps, &r.allocations, &r.groups[0]) {
                Some(region) if region.kind == RegionKind::SharedAnon && region.path.is_none() => Ok(()),
                other => Err(format!("region {other:?}").into()),
            }
        }),
        Trial::test("bcc_memleak::rejects_a_frame_without_a_group", || {
            match parse_report("[21:00:00] Top 10 stacks with outstanding allocations:\n\t\t0x0000000000401000\tmain+0x9 [a.out]\n") {
                Err(e) if e.to_string().contains("a frame before any group") => Ok(()),
                other => Err(format!("{other:?}").into()),
            }
        }),
        Trial::test("bcc_memleak::rejects_output_that_is_not_a_report", || {
            match parse_report("Attaching to pid 5080, Ctrl+C to quit.\n") {
                Err(e) if e.to_string().contains("malformed output from memleak-bpfcc") => Ok(()),
                other => Err(format!("{other:?}").into()),
            }
        }),
        Trial::test("watch::captured_proc_files", || {
            let s = watch::sample_from(
                0.0,
                &read(&data("watch/mmap_shared_file.statm"))?,
                &read(&data("watch/mmap_shared_file.smaps_rollup"))?,
                &read(&data("watch/mmap_shared_file.maps"))?,
                4096,
            )
            .map_err(|e| e.to_string())?;
            let shared = s.classes.get(&Class::SharedFile).copied().unwrap_or_default();
            // Three leaked 256 KiB file mappings, each its own line (different files).
            if shared.bytes != 3 * 262_144 || shared.mappings != 3 {
                return Err(format!("shared-file {shared:?}").into());
            }
            if s.vsz != 778 * 4096 || s.rss != 2260 * 1024 || s.mappings != 26 {
                return Err(format!("vsz {} rss {} mappings {}", s.vsz, s.rss, s.mappings).into());
            }
            if s.classes.get(&Class::Stack).map(|c| c.mappings) != Some(1) || s.classes.get(&Class::Other).map(|c| c.mappings) != Some(4) {
                return Err(format!("classes {:?}", s.classes).into());
            }
            Ok(())
        }),
        Trial::test("watch::rejects_malformed_proc_files", || {
            for (what, result) in [
                ("statm", watch::parse_statm("12 34\n", 4096).map(|_| ())),
                ("smaps_rollup", watch::parse_smaps_rollup("Rss: lots\n").map(|_| ())),
                ("maps", leaklab::maps::parse("this is not a maps line\n").map(|_| ())),
            ] {
                match result {
                    Err(e) if e.to_string().contains(what) => {}
                    other => return Err(format!("{what}: {other:?}").into()),
                }
            }
            Ok(())
        }),
        Trial::test("watch::trend_and_verdict", || {
            // [heap] grows 132 KiB every other sample; the stack stays put.
            let samples: Vec<watch::Sample> = (0..8)
                .map(|i| {
                    let mut classes = std::collections::BTreeMap::new();
                    classes.insert(Class::Heap, watch::ClassSize { bytes: 135_168 * (1 + i / 2), mappings: 1 });
                    classes.insert(Class::Stack, watch::ClassSize { bytes: 135_168, mappings: 1 });
                    watch::Sample { t: f64::from(i as u32) * 0.5, rss: 1 << 20, vsz: 1 << 22, mappings: 2, anonymous: 0, classes }
                })
                .collect();
            let s = watch::summarize(&samples).map_err(|e| e.to_string())?;
            let heap = s.trends.iter().find(|t| t.class == Class::Heap).ok_or("no heap trend")?;
            let stack = s.trends.iter().find(|t| t.class == Class::Stack).ok_or("no stack trend")?;
            if s.verdict != watch::Verdict::Growing || !heap.growing || heap.growth() != 3 * 135_168 || stack.growing || stack.rate != 0.0 {
                return Err(format!("{s:?}").into());
            }
            Ok(())
        }),
    ]
}
