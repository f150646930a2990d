//! The analysis on several threads gives what it gives on one: the same
//! class for every block, the same regions reached, the same leaks. On
//! generated heaps (tests/data/scan_parallel/graphs.txt: many blocks,
//! cycles, interior pointers, new[] cookies, blocks bigger than the
//! marking's unit of work) and on catalogue samples stopped at their
//! checkpoint. No timing: speed is `leaklab bench --scan`'s business.

use std::path::Path;
use std::time::Duration;

use leaklab::process::{Child, Spec};
use leaklab::scan::reach::{self, Class, MarkOptions};
use leaklab::scan::{self, glibc};
use libtest_mimic::{Completion, Failed, Trial};

const THREADS: [usize; 3] = [2, 3, 8];

fn graphs() -> Vec<(u64, usize)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/scan_parallel/graphs.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut w = l.split_whitespace().map(|w| w.parse::<u64>().unwrap_or_else(|e| panic!("{l:?}: {e}")));
            let (Some(seed), Some(chunks)) = (w.next(), w.next()) else { panic!("{l:?}: want a seed and a chunk count") };
            (seed, chunks as usize)
        })
        .collect()
}

fn graph_trial(seed: u64, chunks: usize) -> Result<(), Failed> {
    let g = glibc::image::graph(seed, chunks);
    let walk = glibc::walk(&g.memory, &g.layout);
    let found: Vec<u64> = walk.blocks.iter().map(|b| b.chunk).collect();
    if found != g.used {
        return Err(format!("the walk found {} blocks, the image has {} in use", found.len(), g.used.len()).into());
    }
    // The walk of one chain from the start, without parts walked in lockstep.
    let serial = glibc::Cut { threads: 1, lanes: 1 };
    same_walk(&glibc::walk_cut(&g.memory, &g.layout, serial), &walk, 1)?;
    for threads in THREADS {
        same_walk(&walk, &glibc::walk_with(&g.memory, &g.layout, threads), threads)?;
    }
    // A corrupt header three quarters in: the walk on parts stops where the walk on one thread does.
    let bad_chunk = g.used[g.used.len() * 3 / 4];
    let segments = g
        .memory
        .segments()
        .iter()
        .map(|s| {
            let mut s = s.clone();
            if (s.start..s.end()).contains(&bad_chunk) {
                let o = (bad_chunk + 8 - s.start) as usize;
                s.data[o..o + 8].copy_from_slice(&0x7fff_ffff_ffff_fff0u64.to_le_bytes());
            }
            s
        })
        .collect();
    let bad = leaklab::scan::memory::Memory::new(segments);
    let bad_walk = glibc::walk(&bad, &g.layout);
    if bad_walk.stopped.is_empty() {
        return Err("the corrupt header did not stop the walk".into());
    }
    same_walk(&glibc::walk_cut(&bad, &g.layout, serial), &bad_walk, 1)?;
    for threads in THREADS {
        same_walk(&bad_walk, &glibc::walk_with(&bad, &g.layout, threads), threads)?;
    }
    let mark = |threads: usize| reach::mark_with(&g.memory, &walk.blocks, &g.regions, &g.roots, &|_| false, &MarkOptions { threads, ..Default::default() });
    let one = mark(1);
    for class in [Class::Runtime, Class::Reachable, Class::Possible, Class::Indirect, Class::Definite] {
        if !one.blocks.contains(&class) {
            return Err(format!("the graph has no {class:?} block: it does not test the marking").into());
        }
    }
    if one.regions_reached != [true, false] {
        return Err(format!("expected the first region reached and not the second, got {:?}", one.regions_reached).into());
    }
    for threads in THREADS {
        let many = mark(threads);
        if let Some(k) = (0..one.blocks.len()).find(|&k| one.blocks[k] != many.blocks[k]) {
            return Err(format!("block {k} at {:#x}: {:?} on one thread, {:?} on {threads}", walk.blocks[k].addr, one.blocks[k], many.blocks[k]).into());
        }
        if one.regions_reached != many.regions_reached {
            return Err(format!("regions reached: {:?} on one thread, {:?} on {threads}", one.regions_reached, many.regions_reached).into());
        }
    }
    // The grouping, cut into runs of blocks, gives the groups of one run.
    let vtables = scan::vtables::Vtables::new(&[]);
    let groups = scan::group::group_blocks(&g.memory, &walk.blocks, &one.blocks, &vtables);
    for threads in THREADS {
        let many = scan::group::group_blocks_with(&g.memory, &walk.blocks, &one.blocks, &vtables, threads);
        if many != groups {
            return Err(format!("the groups on {threads} threads differ from those on one: {many:#?}\nagainst\n{groups:#?}").into());
        }
    }
    Ok(())
}

fn same_walk(one: &glibc::Walk, many: &glibc::Walk, threads: usize) -> Result<(), Failed> {
    if one.blocks != many.blocks || one.stopped != many.stopped || one.warnings != many.warnings || (one.free_chunks, one.free_bytes) != (many.free_chunks, many.free_bytes) {
        return Err(format!(
            "the walk on {threads} threads differs from the one on one thread: {} blocks against {}, stopped {:?} against {:?}",
            many.blocks.len(),
            one.blocks.len(),
            many.stopped,
            one.stopped
        )
        .into());
    }
    Ok(())
}

/// Catalogue samples that stop at a checkpoint in one process.
fn checkpoint_samples() -> Vec<&'static leaklab::catalogue::SampleInfo> {
    leaklab::catalogue::samples()
        .iter()
        .filter(|s| s.applies_to("ptrace"))
        .filter(|s| {
            let text: String = s.source_paths().iter().filter_map(|p| std::fs::read_to_string(p).ok()).collect();
            text.contains("leaklab_checkpoint(") && !text.contains("fork(") && !text.contains("exec")
        })
        .collect()
}

fn sample_trial(sample: &leaklab::catalogue::SampleInfo) -> Result<Completion, Failed> {
    if !matches!(leaklab::backend::by_name("ptrace").map(|b| b.availability()), Ok(leaklab::backend::Availability::Ready)) {
        return Ok(Completion::ignored_with("ptrace cannot run here"));
    }
    let exe = sample.executable("plain").map_err(|e| e.to_string())?;
    let mut child = Child::spawn(&Spec::new(exe, Duration::from_secs(60)).args(sample.args()).env("LEAKLAB_CHECKPOINT", "1")).map_err(|e| e.to_string())?;
    child.wait_stop().map_err(|e| e.to_string())?;
    let snap = scan::snapshot::take(child.pid(), &scan::snapshot::Options::default()).map_err(|e| e.to_string())?;
    drop(child);
    let analyse = |threads: usize| scan::analyse_with(&snap, scan::StopPoint::Checkpoint, &scan::AnalyseOptions { threads });
    let one = analyse(1);
    for threads in THREADS {
        let many = analyse(threads);
        if one.classes != many.classes || one.regions_reached != many.regions_reached {
            return Err(format!("the marking on {threads} threads differs from the one on one thread: {:?} / {:?}", one.classes, many.classes).into());
        }
        if one.leaks != many.leaks || one.not_analysed != many.not_analysed {
            return Err(format!("the report on {threads} threads differs: {:#?}\nagainst\n{:#?}", many.leaks, one.leaks).into());
        }
    }
    Ok(Completion::Completed)
}

pub fn trials() -> Vec<Trial> {
    let mut trials: Vec<Trial> = graphs()
        .into_iter()
        .map(|(seed, chunks)| Trial::test(format!("scan_parallel::graph_{seed}_{chunks}"), move || graph_trial(seed, chunks)))
        .collect();
    for sample in checkpoint_samples() {
        trials.push(Trial::ignorable_test(format!("scan_parallel::{}", sample.name), move || sample_trial(sample)));
    }
    trials
}
