//! Trials of the hook backend's complete detector: the shim's table read
//! out of a memory image, classification on a synthetic process, and
//! programs run the way a user runs them (`leaklab run --backend hook --
//! ./prog`): a leak in a function that also prints, a crash after leaking,
//! children that `_exit`, a leak-free program with threads and iostreams,
//! and the messages where the hook is lost.

use std::collections::BTreeMap;
use std::path::Path;

use leaklab::backends::hook::{classify, table, Dump, DumpBlock, DumpRegion};
use leaklab::maps::Mapping;
use leaklab::report::Kind;
use leaklab::scan::memory::{Memory, Segment};
use leaklab::scan::snapshot::{Snapshot, Thread};
use leaklab::scan::StopPoint;
use libtest_mimic::{Completion, Failed, Trial};
use serde_json::Value;

use crate::repro;

fn data(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hook").join(rel)
}

fn hex(w: &str) -> Result<u64, Failed> {
    u64::from_str_radix(w.trim_start_matches("0x"), 16).map_err(|_| Failed::from(format!("`{w}` is not a hex address")))
}

fn mapping(range: &str, perms: &str, path: Option<&str>) -> Result<Mapping, Failed> {
    let (s, e) = range.split_once('-').ok_or("a map line needs START-END")?;
    Ok(Mapping { start: hex(s)?, end: hex(e)?, perms: perms.into(), offset: 0, inode: 0, path: path.map(str::to_string) })
}

/// A synthetic process described in a file: its maps, threads, blocks,
/// regions and the words that point at them, with each block's expected kind.
struct Image {
    snap: Snapshot,
    table: table::Table,
    expected: Vec<(String, Option<Kind>)>,
}

fn expect_word(w: &str) -> Result<Option<Kind>, Failed> {
    Ok(match w {
        "runtime" => None,
        other => Some(Kind::parse(other).ok_or_else(|| Failed::from(format!("unknown kind `{other}`")))?),
    })
}

fn load_image(text: &str) -> Result<Image, Failed> {
    let mut maps = Vec::new();
    let mut threads = Vec::new();
    let mut names: BTreeMap<String, u64> = BTreeMap::new();
    let mut blocks = Vec::new();
    let mut regions = Vec::new();
    let mut expected = Vec::new();
    let mut words: Vec<(u64, String)> = Vec::new();
    for line in text.lines().map(|l| l.split('#').next().unwrap_or("").trim()).filter(|l| !l.is_empty()) {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["map", range, perms] => maps.push(mapping(range, perms, None)?),
            ["map", range, perms, path] => maps.push(mapping(range, perms, Some(path))?),
            ["thread", sp] => threads.push(Thread { tid: 1, sp: hex(sp)?, fs_base: 0, regs: vec![] }),
            ["block", name, addr, size, kind] => {
                names.insert((*name).into(), hex(addr)?);
                blocks.push(DumpBlock { addr: hex(addr)?, base: hex(addr)?, size: size.parse()?, api: "malloc".into(), tid: 1, pcs: vec![] });
                expected.push(((*name).to_string(), expect_word(kind)?));
            }
            ["region", name, addr, len, kind] => {
                names.insert((*name).into(), hex(addr)?);
                regions.push(DumpRegion {
                    addr: hex(addr)?,
                    len: len.parse()?,
                    api: "mmap".into(),
                    kind: leaklab::report::RegionKind::PrivateAnon,
                    prot: 3,
                    tid: 1,
                    pcs: vec![],
                });
                expected.push(((*name).to_string(), expect_word(kind)?));
            }
            ["word", addr, value] => words.push((hex(addr)?, (*value).to_string())),
            _ => return Err(format!("cannot read `{line}`").into()),
        }
    }
    let mut segments: Vec<Segment> =
        maps.iter().filter(|m| m.writable()).map(|m| Segment { start: m.start, data: vec![0; m.len() as usize] }).collect();
    for (addr, value) in words {
        let v = match value.split_once('+') {
            _ if value.starts_with("0x") => hex(&value)?,
            Some((name, off)) => names.get(name).ok_or(format!("unknown name {name}"))? + off.parse::<u64>()?,
            None => *names.get(&value).ok_or(format!("unknown name {value}"))?,
        };
        let seg = segments.iter_mut().find(|s| s.start <= addr && addr + 8 <= s.end()).ok_or(format!("{addr:#x} is in no writable map"))?;
        let o = (addr - seg.start) as usize;
        seg.data[o..o + 8].copy_from_slice(&v.to_le_bytes());
    }
    let snap = Snapshot {
        pid: 1,
        threads,
        maps: maps.clone(),
        memory: Memory::new(segments),
        pause: std::time::Duration::ZERO,
        pause_phases: [std::time::Duration::ZERO; 3],
        unreadable_bytes: 0,
        method: Default::default(),
        notes: Vec::new(),
    };
    let dump = Dump {
        pid: 1,
        reason: "exit".into(),
        blocks,
        regions,
        bad_frees: vec![],
        dropped_regions: 0,
        dropped_errors: 0,
        dropped_stacks: 0,
        maps: vec![],
        map_lines: maps.len(),
    };
    Ok(Image { snap, table: table::Table { dump, own: vec![], arena: (0, 0), shim_data: vec![] }, expected })
}

fn classification_of_a_synthetic_process() -> Result<(), Failed> {
    let image = load_image(&std::fs::read_to_string(data("classify_image.txt"))?)?;
    let kinds = classify::classify(&image.snap, &image.table, StopPoint::Anywhere);
    let got: Vec<Option<Kind>> = kinds.blocks.iter().chain(&kinds.regions).copied().collect();
    let wrong: Vec<String> = image
        .expected
        .iter()
        .zip(&got)
        .filter(|((_, want), got)| want != *got)
        .map(|((name, want), got)| format!("{name}: expected {want:?}, got {got:?}"))
        .collect();
    if wrong.is_empty() { Ok(()) } else { Err(wrong.join("\n").into()) }
}

/// Writes `v` at `addr` of the segment that holds it.
fn put(segs: &mut [Segment], addr: u64, bytes: &[u8]) {
    let s = segs.iter_mut().find(|s| s.start <= addr && addr + bytes.len() as u64 <= s.end()).expect("inside a segment");
    let o = (addr - s.start) as usize;
    s.data[o..o + bytes.len()].copy_from_slice(bytes);
}

/// The table reader on an image laid out as harness/hook/README.md says,
/// at the place the built shim's symbol gives.
fn table_reader_reads_the_abi() -> Result<(), Failed> {
    let shim = leaklab::backends::hook::SHIM;
    const BASE: u64 = 0x7f00_0000_0000;
    let shim_map = Mapping { start: BASE, end: BASE + 0x20_0000, perms: "rw-p".into(), offset: 0, inode: 1, path: Some(shim.into()) };
    let located = table::locate(std::slice::from_ref(&shim_map))?.ok_or("the shim mapping was not recognised")?;
    let desc = located.descriptor;
    const TABLES: u64 = 0x5000_0000;
    const HEAP: u64 = 0x6000_0000;
    let (chunk_dir, chunk, stack_slots, stack, regions, own, nown, counts) =
        (TABLES, TABLES + 0x1000, TABLES + 0x2000, TABLES + 0x2800, TABLES + 0x3000, TABLES + 0x4000, TABLES + 0x5000, TABLES + 0x5100);
    let mut segs = vec![
        Segment { start: BASE, data: vec![0; 0x20_0000] },
        Segment { start: TABLES, data: vec![0; 0x6000] },
        Segment { start: HEAP, data: vec![0; 0x4000] },
    ];
    let mut d = Vec::new();
    d.extend_from_slice(table::MAGIC);
    // version, size; entry, header; 8 entries a chunk, 4 chunks; 16 stack slots, stack header; region, bad free; frames, pid
    for v in [3u32, 184, 16, 16, 8, 4, 16, 16, 232, 408, 24, 4242] {
        d.extend_from_slice(&v.to_le_bytes());
    }
    let nchunks = counts + 72;
    let stacks_ptr = counts + 80;
    for v in [chunk_dir, nchunks, stacks_ptr, counts, counts + 8, counts + 16, counts + 24, own, nown, BASE + 0x100, BASE + 0x200, counts + 32, counts + 40, counts + 48, counts + 56, counts + 64] {
        d.extend_from_slice(&v.to_le_bytes());
    }
    put(&mut segs, desc, &d);
    put(&mut segs, nchunks, &1u64.to_le_bytes());
    put(&mut segs, chunk_dir, &chunk.to_le_bytes());
    put(&mut segs, stacks_ptr, &stack_slots.to_le_bytes());
    // Stack id 3 is slot 2.
    put(&mut segs, stack_slots + 16, &stack.to_le_bytes());
    put(&mut segs, stack + 8, &2u32.to_le_bytes());
    put(&mut segs, stack + 16, &[0x401111u64.to_le_bytes(), 0x402222u64.to_le_bytes()].concat());
    // Entries: 0 a malloc block, 1 free, 2 a new[] block aligned to 64, 3 an
    // entry whose header names another entry (a block not handed out yet).
    // A live entry holds its block's stack id; the header's check is the shim's own.
    let entry = |addr: u64, tid: u32, stack: u32| [addr.to_le_bytes().as_slice(), &tid.to_le_bytes(), &stack.to_le_bytes()].concat();
    put(&mut segs, chunk, &[entry(HEAP + 0x10, 7, 3), entry(0, 0, 0), entry(HEAP + 0x1040, 8, 0), entry(HEAP + 0x2010, 9, 3)].concat());
    let header = |size: u64, api: u64, shift: u64, check: u32, entry: u32| {
        [(size | api << 48 | shift << 56).to_le_bytes().as_slice(), &check.to_le_bytes(), &entry.to_le_bytes()].concat()
    };
    put(&mut segs, HEAP, &header(10, 0, 4, 0x8765_4321, 0));
    put(&mut segs, HEAP + 0x1030, &header(20, 10, 6, 0x1234_5679, 2));
    put(&mut segs, HEAP + 0x2000, &header(30, 0, 4, 0x0bad_f00d, 1));
    // One region, recorded with MAP_SHARED on a file.
    let mut r = Vec::new();
    r.extend_from_slice(&0x9000u64.to_le_bytes());
    r.extend_from_slice(&4096u64.to_le_bytes());
    for v in [3u32, libc::MAP_SHARED as u32, 1, 7] {
        r.extend_from_slice(&v.to_le_bytes());
    }
    r.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 0]); // api mmap64, one frame
    r.extend_from_slice(&0x403333u64.to_le_bytes());
    put(&mut segs, regions, &r);
    put(&mut segs, counts, &regions.to_le_bytes());
    put(&mut segs, counts + 8, &1u64.to_le_bytes());
    put(&mut segs, own, &[(TABLES).to_le_bytes(), (TABLES + 0x6000).to_le_bytes()].concat());
    put(&mut segs, nown, &1u64.to_le_bytes());
    put(&mut segs, counts + 56, &3u64.to_le_bytes()); // dropped regions

    let mem = Memory::new(segs);
    let t = match table::read(9, "exit", &mem, std::slice::from_ref(&shim_map))? {
        Ok(t) => t,
        Err(missing) => return Err(format!("no table: {missing:?}").into()),
    };
    let blocks: Vec<(u64, u64, u64, &str, u32, Vec<u64>)> =
        t.dump.blocks.iter().map(|b| (b.addr, b.base, b.size, b.api.as_str(), b.tid, b.pcs.clone())).collect();
    let want = vec![(HEAP + 0x10, HEAP, 10, "malloc", 7, vec![0x401111, 0x402222]), (HEAP + 0x1040, HEAP + 0x1000, 20, "new[]", 8, vec![])];
    if blocks != want {
        return Err(format!("blocks {blocks:x?}, expected {want:x?}").into());
    }
    let r = &t.dump.regions;
    if r.len() != 1 || r[0].addr != 0x9000 || r[0].len != 4096 || r[0].kind != leaklab::report::RegionKind::SharedFile || r[0].api != "mmap64" || r[0].pcs != [0x403333] {
        return Err(format!("regions {r:?}").into());
    }
    if t.own != [(TABLES, TABLES + 0x6000)] || t.arena != (BASE + 0x100, BASE + 0x200) || t.dump.dropped_regions != 3 {
        return Err(format!("own {:x?}, arena {:x?}, dropped regions {}", t.own, t.arena, t.dump.dropped_regions).into());
    }
    // Another version is refused, not misread.
    let mut segs = mem.segments().to_vec();
    put(&mut segs, desc + 8, &2u32.to_le_bytes());
    match table::read(9, "exit", &Memory::new(segs), std::slice::from_ref(&shim_map)) {
        Err(e) if e.to_string().contains("version 2") => Ok(()),
        other => Err(format!("a version-2 table (the stack in the header) was not refused: {other:?}").into()),
    }
}

fn hook_ready() -> Option<Completion> {
    match leaklab::backend::by_name("hook").map(|b| b.availability()) {
        Ok(leaklab::backend::Availability::Ready) => None,
        _ => Some(Completion::ignored_with("the hook's shim is not built")),
    }
}

fn leaks(report: &Value) -> Vec<&Value> {
    report["leaks"].as_array().map(|a| a.iter().collect()).unwrap_or_default()
}

fn describe(report: &Value) -> String {
    serde_json::to_string_pretty(&report["leaks"]).unwrap_or_default()
}

/// `leaklab run --format json --backend hook -- PROGRAM ARGS`: exit code, the report, stderr.
fn run_hook(program_and_args: &[&str]) -> Result<(Option<i32>, Value, String), Failed> {
    let (rc, value, stderr) = repro::run_json("hook", &[], program_and_args)?;
    // `run` prints the report with its score (null for a user's program).
    let report = value.get("report").cloned().unwrap_or(value);
    Ok((rc, report, stderr))
}

fn user_trial(name: &'static str, check: fn() -> Result<(), Failed>) -> Trial {
    Trial::ignorable_test(format!("hook::user::{name}"), move || {
        if let Some(skip) = hook_ready() {
            return Ok(skip);
        }
        check().map(|()| Completion::Completed)
    })
}

/// printleak.c: greet() leaks its message and prints it; stdout's buffer is the runtime's.
fn leak_in_a_function_that_prints() -> Result<(), Failed> {
    let (rc, report, stderr) = run_hook(&["printleak"])?;
    let l = leaks(&report);
    let ok = l.len() == 1
        && l[0]["kind"] == "definite"
        && l[0]["bytes"] == 13
        && l[0]["site"]["file"] == "printleak.c"
        && l[0]["site"]["line"] == 10
        && rc == Some(1);
    if ok { Ok(()) } else { Err(format!("expected one definite leak of 13 bytes at printleak.c:10 and exit 1; rc {rc:?}, leaks {}\n{stderr}", describe(&report)).into()) }
}

/// crash.c: 64 bytes lost, then SIGSEGV.
fn crash_after_leaking() -> Result<(), Failed> {
    let (rc, report, stderr) = run_hook(&["crash"])?;
    let l = leaks(&report);
    let found = l.iter().any(|x| x["kind"] == "definite" && x["bytes"] == 64 && x["site"]["file"] == "crash.c" && x["site"]["line"] == 4);
    let killed = report["processes"].as_array().is_some_and(|p| p.iter().any(|p| p["end"]["how"] == "killed" && p["end"]["signal"] == "SIGSEGV"));
    if found && killed && l.len() == 1 && rc == Some(4) {
        Ok(())
    } else {
        Err(format!("expected the 64-byte definite leak at crash.c:4, the process killed by SIGSEGV and exit 4; rc {rc:?}, report {report}\n{stderr}").into())
    }
}

/// forks.c with `_exit`: child k leaks k+1 blocks, the parent 1: 1,276 blocks from 51 processes.
fn children_that_exit_without_exit() -> Result<(), Failed> {
    let (rc, report, stderr) = run_hook(&["forks", "50", "_exit"])?;
    let l = leaks(&report);
    let blocks: u64 = l.iter().filter(|x| x["kind"] == "definite").filter_map(|x| x["blocks"].as_u64()).sum();
    let pids: std::collections::BTreeSet<u64> = l.iter().filter_map(|x| x["pid"].as_u64()).collect();
    let analysed = report["processes"].as_array().map_or(0, |p| p.iter().filter(|p| p["analysed"] == true).count());
    if blocks == 1276 && pids.len() == 51 && analysed == 51 && rc == Some(1) {
        Ok(())
    } else {
        Err(format!("expected 1,276 definite blocks from 51 analysed processes, each with its pid, and exit 1; got {blocks} blocks, {} pids, {analysed} analysed, rc {rc:?}\n{stderr}", pids.len()).into())
    }
}

/// threadsio.cpp: stdio, iostreams, threads (two still blocked at exit), an exception.
fn threads_and_iostreams_are_clean() -> Result<(), Failed> {
    let (rc, report, stderr) = run_hook(&["threadsio"])?;
    let suppressed = report["suppressed"].as_array().map_or(0, Vec::len);
    if leaks(&report).is_empty() && suppressed == 0 && rc == Some(0) {
        Ok(())
    } else {
        Err(format!("expected no leak, nothing suppressed and exit 0; rc {rc:?}, leaks {}, suppressed {suppressed}\n{stderr}", describe(&report)).into())
    }
}

/// reexec.c `unset`: the second image runs without LD_PRELOAD; the first image's leak is still found.
fn reexec_without_the_preload_says_so() -> Result<(), Failed> {
    let (rc, report, stderr) = run_hook(&["reexec", "unset"])?;
    let first = leaks(&report).iter().any(|x| x["bytes"] == 111 && x["kind"] == "definite");
    let said = report["notes"].as_array().is_some_and(|n| n.iter().any(|n| n.as_str().is_some_and(|s| s.contains("without the LD_PRELOAD"))));
    let unanalysed = report["processes"].as_array().is_some_and(|p| p.iter().any(|p| p["analysed"] == false));
    if first && said && unanalysed && rc == Some(5) {
        Ok(())
    } else {
        Err(format!("expected the first image's 111 bytes, a note that LD_PRELOAD was lost, an unanalysed image and exit 5; rc {rc:?}, report {report}\n{stderr}").into())
    }
}

/// fds.c `full`: no descriptor is left at exit; reading the stopped process needs none.
fn full_descriptor_table_at_exit() -> Result<(), Failed> {
    let (rc, report, stderr) = run_hook(&["fds", "full"])?;
    let l = leaks(&report);
    let six = l.iter().filter(|x| x["kind"] == "definite" && x["site"]["file"] == "fds.c").filter_map(|x| x["blocks"].as_u64()).sum::<u64>();
    if six == 6 && rc == Some(1) {
        Ok(())
    } else {
        Err(format!("expected the 6 definite blocks of 600 bytes at fds.c and exit 1; rc {rc:?}, leaks {}\n{stderr}", describe(&report)).into())
    }
}

/// inband.c: aligned blocks, reallocs, frees of pointers the shim did not
/// hand out (one behind a copied header, one after an unmapped page, a
/// small and a big block twice), and 8 threads freeing each other's blocks:
/// exactly the 82 blocks it loses (13,380 bytes), 2 invalid frees and 2
/// double frees (exit 4: memory errors), and the program's own checks pass
/// under the shim.
fn inband_headers_and_foreign_frees() -> Result<(), Failed> {
    let (rc, report, stderr) = run_hook(&["inband"])?;
    let l = leaks(&report);
    let sum = |key: &str| l.iter().filter_map(|x| x[key].as_u64()).sum::<u64>();
    let definite = l.iter().all(|x| x["kind"] == "definite");
    let by_api = |api: &str, bytes: u64| l.iter().any(|x| x["api"] == api && x["bytes"] == bytes && x["blocks"] == 1);
    let bad: Vec<&str> = report["bad_frees"].as_array().map(|a| a.iter().filter_map(|b| b["kind"].as_str()).collect()).unwrap_or_default();
    let mut bad_sorted = bad.clone();
    bad_sorted.sort_unstable();
    let ok = sum("blocks") == 82
        && sum("bytes") == 13_380
        && definite
        && by_api("aligned_alloc", 5000)
        && by_api("posix_memalign", 100)
        && bad_sorted == ["double", "double", "invalid", "invalid"]
        && !stderr.contains("inband: ")
        && rc == Some(4);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected 82 definite blocks of 13,380 bytes (aligned_alloc 5000, posix_memalign 100), bad frees 2 double + 2 invalid, exit 4; rc {rc:?}, bad frees {bad:?}, leaks {}\n{stderr}",
            describe(&report)
        )
        .into())
    }
}

/// stacks.c `hook`: blocks from one path share the shim's stack, another
/// site or caller gets another (read from the block headers); blocks that
/// start a page (plain ones by chance, 2,000 vallocs freed by another
/// thread) are freed cleanly, and one freed twice is reported; the 15
/// blocks it loses are three stacks: 7 and 3 blocks of 24 bytes from one
/// line reached through two callers, 5 of 40 from another.
fn stacks_shared_and_page_aligned_blocks() -> Result<(), Failed> {
    let (rc, report, stderr) = run_hook(&["stacks", "hook"])?;
    let l = leaks(&report);
    let mut groups: Vec<(u64, u64, u64)> = l
        .iter()
        .filter(|x| x["kind"] == "definite" && x["site"]["file"] == "stacks.c")
        .filter_map(|x| Some((x["blocks"].as_u64()?, x["bytes"].as_u64()?, x["site"]["line"].as_u64()?)))
        .collect();
    groups.sort_unstable();
    let shape: Vec<(u64, u64)> = groups.iter().map(|g| (g.0, g.1)).collect();
    let one_line = groups.len() == 3 && groups[0].2 == groups[2].2 && groups[1].2 != groups[0].2;
    let bad: Vec<&str> = report["bad_frees"].as_array().map(|a| a.iter().filter_map(|b| b["kind"].as_str()).collect()).unwrap_or_default();
    if shape == [(3, 72), (5, 200), (7, 168)] && one_line && l.len() == 3 && bad == ["double"] && !stderr.contains("stacks: ") && rc == Some(4) {
        Ok(())
    } else {
        Err(format!("expected three definite leaks, 3 x 24 and 7 x 24 bytes from one line and 5 x 40 from another, one double free, exit 4; rc {rc:?}, groups {groups:?}, bad frees {bad:?}, leaks {}\n{stderr}", describe(&report)).into())
    }
}

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("hook::units::table_reader_reads_the_abi", table_reader_reads_the_abi),
        Trial::test("hook::units::classification_of_a_synthetic_process", classification_of_a_synthetic_process),
        user_trial("leak_in_a_function_that_prints", leak_in_a_function_that_prints),
        user_trial("crash_after_leaking", crash_after_leaking),
        user_trial("children_that__exit", children_that_exit_without_exit),
        user_trial("threads_and_iostreams_are_clean", threads_and_iostreams_are_clean),
        user_trial("reexec_without_the_preload_says_so", reexec_without_the_preload_says_so),
        user_trial("full_descriptor_table_at_exit", full_descriptor_table_at_exit),
        user_trial("inband_headers_and_foreign_frees", inband_headers_and_foreign_frees),
        user_trial("stacks_shared_and_page_aligned_blocks", stacks_shared_and_page_aligned_blocks),
    ]
}
