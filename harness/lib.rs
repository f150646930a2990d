//! leaklab: a catalogue of leaky C/C++ programs with their leaks written in
//! the source, run under several leak detectors, normalized and scored.
//! ARCHITECTURE.md has the map.

pub mod annotations;
pub mod artifacts;
pub mod backend;
pub mod baseline;
pub mod bench;
pub mod backends;
pub mod book;
pub mod catalogue;
pub mod compare;
pub mod contain;
pub mod error;
pub mod heap_profile;
pub mod labs;
pub mod maps;
pub mod normalize;
pub mod process;
pub mod render;
pub mod report;
pub mod scan;
pub mod score;
pub mod settings;
pub mod setup;
pub mod symbols;
pub mod trace;
pub mod suite;
pub mod suppressions;
pub mod taskstats;
pub mod symbolize;
pub mod watch;

pub use error::Error;
