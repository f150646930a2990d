//! One module per backend; `crate::backend::all()` lists them.

pub mod hook;
pub mod valgrind;
