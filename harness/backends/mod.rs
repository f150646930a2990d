//! One module per backend; `crate::backend::all()` lists them.

pub mod valgrind;
pub mod bcc;
pub mod watch;
