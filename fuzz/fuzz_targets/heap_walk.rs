//! A small consistent glibc heap, corrupted by the fuzzer's bytes (word
//! patches over main_arena and the heap): the walker and the marker must
//! neither crash nor hang, and blocks never overlap.
#![no_main]

use leaklab::scan::{glibc, reach};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (mem, layout) = glibc::image::patched(data);
    let walk = glibc::walk(&mem, &layout);
    for pair in walk.blocks.windows(2) {
        assert!(pair[0].end() <= pair[1].addr, "blocks overlap");
    }
    let roots = reach::Roots {
        runtime: vec![],
        program: layout.libc_data.iter().map(|&(start, end)| reach::Range { start, end }).collect(),
        registers: layout.heap.map(|h| vec![h.0 + 0x2a0]).unwrap_or_default(),
    };
    let marking = reach::mark(&mem, &walk.blocks, &[], &roots, &|_| false);
    assert_eq!(marking.blocks.len(), walk.blocks.len());
});
