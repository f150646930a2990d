//! Inputs the checkers make up at check time, so that a lab's work is run on
//! something the student has never seen: a program that only prints the
//! lab's example output, or a tracker that prints the example's leaks from
//! memory, fails on them.

use std::time::{SystemTime, UNIX_EPOCH};

/// A small pseudo-random generator (splitmix64). Not for secrets: it only
/// has to differ from one check to the next.
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock and the process id: a new input every check.
    #[must_use]
    pub fn new() -> Rng {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Rng::seeded(nanos ^ (u64::from(std::process::id()) << 32))
    }

    #[must_use]
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        assert!(low <= high, "empty range {low}..={high}");
        low + self.next_u64() % (high - low + 1)
    }

    /// A lowercase word of `low..=high` letters.
    pub fn word(&mut self, low: u64, high: u64) -> String {
        let len = self.range(low, high);
        (0..len).map(|_| char::from(b'a' + self.range(0, 25) as u8)).collect()
    }
}

impl Default for Rng {
    fn default() -> Rng {
        Rng::new()
    }
}
