//! Extensible C structs.
//!
//! Every options, report and result struct of the C ABI starts with
//! `size_t struct_size`, the size of the struct as the caller's header
//! declares it, set by `adj_<struct>_init(&s, sizeof s)`. New fields are
//! only ever appended, so the library can serve callers built against any
//! header version:
//!
//! - an older caller (smaller `struct_size`): the library reads and writes
//!   only the fields that caller knows; the others take their defaults;
//! - a newer caller (larger `struct_size`): the fields this library does
//!   not know must be zero (what a newer `_init` writes for them when the
//!   struct was initialised by an older library, and the default every
//!   future field must have); a nonzero byte there is rejected, because
//!   the caller asked for something this library cannot do;
//! - a `struct_size` below the first published layout, or above 4 KiB, is
//!   rejected (an uninitialised struct).
//!
//! `_init` takes a pointer, not a returned value, because a struct
//! returned by value cannot grow: a newer library would write past an
//! older caller's copy.

use super::args::out_ptr;
use crate::error::{Error, Result};
use std::mem::size_of;

/// Bytes of the leading `struct_size` field.
const HEAD: usize = size_of::<usize>();

/// The largest `struct_size` accepted: anything larger is garbage.
const MAX_STRUCT_SIZE: usize = 4096;

/// A C struct of the ABI that can grow.
///
/// # Safety
/// Implementors are `#[repr(C)]` structs whose first field is
/// `struct_size: usize` and whose other fields are numbers, raw pointers or
/// optional function pointers, so that any bytes copied from a caller are
/// a valid value.
pub(crate) unsafe trait Versioned: Copy {
    /// The struct's name in the header.
    const NAME: &'static str;
    /// `sizeof` of the first published layout (0.2.0): the smallest
    /// `struct_size` accepted. It never changes when fields are appended.
    const FIRST_SIZE: usize;
    /// The defaults, with `struct_size` = this library's size.
    fn defaults() -> Self;
}

fn check_size<T: Versioned>(size: usize, argument: &'static str) -> Result<()> {
    if (T::FIRST_SIZE..=MAX_STRUCT_SIZE).contains(&size) {
        Ok(())
    } else {
        Err(Error::invalid(
            argument,
            format!(
                "{argument}->struct_size = {size}, but a {} has {} bytes in its first layout and {} in this library's: initialise it with {}_init(&s, sizeof s)",
                T::NAME,
                T::FIRST_SIZE,
                size_of::<T>(),
                T::NAME
            ),
        ))
    }
}

/// The caller's `struct_size` at `ptr`, checked.
///
/// # Safety
/// `ptr` is non-NULL and valid for reading a `usize`.
unsafe fn caller_size<T: Versioned>(ptr: *const T, argument: &'static str) -> Result<usize> {
    // SAFETY: every versioned struct starts with `struct_size`.
    let size = unsafe { ptr.cast::<usize>().read_unaligned() };
    check_size::<T>(size, argument)?;
    Ok(size)
}

/// Reads the caller's struct at `ptr` (NULL: the defaults): the fields
/// within its `struct_size`, the defaults for the rest.
///
/// # Safety
/// `ptr` is NULL or valid for reading its `struct_size` bytes.
pub(crate) unsafe fn read<T: Versioned>(ptr: *const T, argument: &'static str) -> Result<T> {
    let mut value = T::defaults();
    if ptr.is_null() {
        return Ok(value);
    }
    // SAFETY: non-NULL and readable by contract.
    let size = unsafe { caller_size(ptr, argument) }?;
    let bytes = ptr.cast::<u8>();
    if size > size_of::<T>() {
        // SAFETY: the caller's struct has `size` readable bytes.
        let tail =
            unsafe { std::slice::from_raw_parts(bytes.add(size_of::<T>()), size - size_of::<T>()) };
        if let Some(k) = tail.iter().position(|&b| b != 0) {
            return Err(Error::invalid(
                argument,
                format!(
                    "{argument}->struct_size = {size} is larger than this library's {} ({} bytes, version {}), and byte {} beyond it is set: the caller uses a field this library does not have",
                    T::NAME,
                    size_of::<T>(),
                    env!("CARGO_PKG_VERSION"),
                    size_of::<T>() + k
                ),
            ));
        }
    }
    let known = size.min(size_of::<T>());
    // SAFETY: both sides hold at least `known` bytes; any bytes are a valid
    // value of the fields (trait contract). struct_size keeps ours.
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes.add(HEAD),
            (&mut value as *mut T).cast::<u8>().add(HEAD),
            known - HEAD,
        )
    };
    Ok(value)
}

/// An output struct the caller passed (NULL: none), checked before any
/// work is done so that a bad `struct_size` fails early.
pub(crate) struct Output<T> {
    ptr: *mut T,
    size: usize,
}

impl<T: Versioned> Output<T> {
    /// Checks the caller's `struct_size` at `ptr` (may be NULL).
    ///
    /// # Safety
    /// `ptr` is NULL or valid for reading and writing its `struct_size` bytes
    /// until [`Output::write`].
    pub(crate) unsafe fn new(ptr: *mut T, argument: &'static str) -> Result<Self> {
        let size = if ptr.is_null() {
            0
        } else {
            // SAFETY: forwarded contract.
            unsafe { caller_size(ptr, argument) }?
        };
        Ok(Self { ptr, size })
    }

    /// Writes the fields of `value` that the caller's struct has.
    pub(crate) fn write(&self, value: &T) {
        if self.ptr.is_null() {
            return;
        }
        let known = self.size.min(size_of::<T>());
        // SAFETY: checked in `new`: the caller's struct has `size` writable
        // bytes; its struct_size is left as it is.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (value as *const T).cast::<u8>().add(HEAD),
                self.ptr.cast::<u8>().add(HEAD),
                known - HEAD,
            )
        };
    }
}

/// The body of `adj_<struct>_init`: writes the defaults into the caller's
/// struct of `struct_size` bytes (zero beyond this library's fields) and
/// sets its `struct_size`.
///
/// # Safety
/// `ptr` is NULL (reported) or valid for writing `struct_size` bytes.
pub(crate) unsafe fn init<T: Versioned>(
    ptr: *mut T,
    struct_size: usize,
    argument: &'static str,
) -> Result<()> {
    out_ptr(ptr, argument)?;
    check_size::<T>(struct_size, "struct_size")?;
    let defaults = T::defaults();
    let bytes = ptr.cast::<u8>();
    let known = struct_size.min(size_of::<T>());
    // SAFETY: the caller's struct has `struct_size` writable bytes.
    unsafe {
        std::ptr::write_bytes(bytes, 0, struct_size);
        std::ptr::copy_nonoverlapping((&defaults as *const T).cast::<u8>(), bytes, known);
        ptr.cast::<usize>().write_unaligned(struct_size);
    }
    Ok(())
}

/// `sizeof` of the public struct named `name` (e.g. "adj_cg_options") in
/// this library, or 0 for a name that is not one; NULL gives 0. A binding
/// that declares the structs itself (ctypes, Julia, Fortran) compares its
/// layouts with these at load time.
#[no_mangle]
pub unsafe extern "C" fn adj_sizeof(name: *const std::ffi::c_char) -> usize {
    use super::*;
    use std::mem::size_of;
    if name.is_null() {
        return 0;
    }
    // SAFETY: a NUL-terminated string by contract.
    let name = unsafe { std::ffi::CStr::from_ptr(name) };
    super::status::boundary_or(0, || match name.to_bytes() {
        b"adj_cg_options" => size_of::<adj_cg_options>(),
        b"adj_solve_report" => size_of::<adj_solve_report>(),
        b"adj_implicit_options" => size_of::<adj_implicit_options>(),
        b"adj_root_problem" => size_of::<adj_root_problem>(),
        b"adj_cdm_options" => size_of::<adj_cdm_options>(),
        b"adj_cdm_report" => size_of::<adj_cdm_report>(),
        b"adj_ot_options" => size_of::<adj_ot_options>(),
        b"adj_ot_result" => size_of::<adj_ot_result>(),
        b"adj_grid_options" => size_of::<adj_grid_options>(),
        b"adj_comm" => size_of::<adj_comm>(),
        b"adj_comm_stats" => size_of::<adj_comm_stats>(),
        _ => 0,
    })
}

/// Implements [`Versioned`] for a struct (cbindgen reads the `_init`
/// functions, which are written out beside each struct: it does not expand
/// macros).
/// `first_size = ...` gives the size of its first layout when fields have
/// been appended since (the offset of the first appended field).
macro_rules! versioned {
    ($ty:ident, $defaults:expr) => {
        versioned!($ty, first_size = std::mem::size_of::<$ty>(), $defaults);
    };
    ($ty:ident, first_size = $first:expr, $defaults:expr) => {
        // SAFETY: $ty is #[repr(C)], starts with `struct_size: usize`, and
        // its other fields are numbers, pointers or optional callbacks.
        unsafe impl $crate::ffi::versioned::Versioned for $ty {
            const NAME: &'static str = stringify!($ty);
            const FIRST_SIZE: usize = $first;
            fn defaults() -> Self {
                $defaults
            }
        }
    };
}
pub(crate) use versioned;
