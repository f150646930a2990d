//! One module per backend; `crate::backend::all()` lists them.

pub mod debug_new;
pub mod detector;
pub mod hook;
pub mod lsan;
pub mod valgrind;
pub mod bcc;
pub mod ptrace;
pub mod watch;
pub mod heaptrack;
pub mod mtrace;
pub mod dmalloc;
pub mod efence;
pub mod preloaded;
pub mod jemalloc;
pub mod tcmalloc;
pub mod asan;
