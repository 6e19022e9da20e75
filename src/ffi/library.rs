//! Library-wide functions: version and thread count.

use super::status::{adj_status, boundary, boundary_or};
use std::ffi::c_char;

/// The version of the loaded library as "MAJOR.MINOR.PATCH" (static string).
/// Compare with the `ADJ_VERSION_*` macros of the header you compiled with.
#[no_mangle]
pub extern "C" fn adj_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Sets the number of worker threads of all kernels (0 = one per core).
/// Thread-safe; a solve already running moves to the new pool at its next
/// kernel. Results do not depend on the thread count.
#[no_mangle]
pub extern "C" fn adj_set_num_threads(num_threads: usize) -> adj_status {
    boundary(|| crate::set_num_threads(num_threads))
}

/// The number of worker threads the kernels use.
#[no_mangle]
pub extern "C" fn adj_get_num_threads() -> usize {
    boundary_or(0, crate::num_threads)
}
