//! Checked conversion of C pointer arguments.

use crate::error::{Error, Result};

/// The `len` elements at `ptr` as a slice; `argument` names it in errors.
///
/// # Safety
/// When non-NULL, `ptr` must point to `len` readable, initialised elements
/// that outlive the returned slice and are not written meanwhile.
pub(crate) unsafe fn slice<'a, T>(
    ptr: *const T,
    len: usize,
    argument: &'static str,
) -> Result<&'a [T]> {
    if ptr.is_null() {
        // An empty array may be NULL (a grid without fluid cells).
        return if len == 0 {
            Ok(&[])
        } else {
            Err(Error::NullArgument { argument })
        };
    }
    check_extent::<T>(len, argument)?;
    // SAFETY: non-NULL, within isize::MAX bytes, and the caller guarantees
    // `len` valid elements.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// No array of `len` elements of T can exist when it would span more than
/// `isize::MAX` bytes: such a length is a caller's error, reported before
/// the pointer is touched.
fn check_extent<T>(len: usize, argument: &'static str) -> Result<()> {
    match len.checked_mul(std::mem::size_of::<T>()) {
        Some(bytes) if bytes <= isize::MAX as usize => Ok(()),
        _ => Err(Error::invalid(
            argument,
            format!(
                "a length of {len} elements of {} bytes exceeds the address space",
                std::mem::size_of::<T>()
            ),
        )),
    }
}

/// The `len` elements at `ptr` as a mutable slice.
///
/// # Safety
/// When non-NULL, `ptr` must point to `len` writable elements that outlive
/// the returned slice and are not accessed otherwise meanwhile.
pub(crate) unsafe fn slice_mut<'a, T>(
    ptr: *mut T,
    len: usize,
    argument: &'static str,
) -> Result<&'a mut [T]> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&mut [])
        } else {
            Err(Error::NullArgument { argument })
        };
    }
    check_extent::<T>(len, argument)?;
    // SAFETY: non-NULL, within isize::MAX bytes, and the caller guarantees
    // `len` valid elements.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// The object behind a handle pointer.
///
/// # Safety
/// When non-NULL, `ptr` must be a live handle returned by this library.
pub(crate) unsafe fn handle<'a, T>(ptr: *const T, argument: &'static str) -> Result<&'a T> {
    // SAFETY: the caller guarantees a live handle when non-NULL.
    unsafe { ptr.as_ref() }.ok_or(Error::NullArgument { argument })
}

/// Checks that an output pointer is non-NULL before any work is done.
pub(crate) fn out_ptr<T>(ptr: *mut T, argument: &'static str) -> Result<()> {
    if ptr.is_null() {
        Err(Error::NullArgument { argument })
    } else {
        Ok(())
    }
}

/// Moves `value` into a new handle written to `*out`.
///
/// # Safety
/// `out` must be valid for a write (checked non-NULL by [`out_ptr`]).
pub(crate) unsafe fn emit_handle<T>(out: *mut *mut T, value: T) {
    // SAFETY: the caller checked `out` and guarantees it is writable.
    unsafe { *out = Box::into_raw(Box::new(value)) };
}

/// Releases a handle made by [`emit_handle`]; NULL is accepted.
///
/// # Safety
/// `ptr` must be NULL or a live handle of type T, not used afterwards.
pub(crate) unsafe fn free_handle<T>(ptr: *mut T) {
    if !ptr.is_null() {
        // SAFETY: the caller guarantees a live handle made by `emit_handle`.
        drop(unsafe { Box::from_raw(ptr) });
    }
}

/// Checks that every value of the input array `argument` is finite.
pub(crate) fn finite_input(argument: &'static str, values: &[f64]) -> Result<()> {
    match crate::vector::first_non_finite(values) {
        None => Ok(()),
        Some((i, v)) => Err(Error::invalid(
            argument,
            format!("{argument}[{i}] is {v} (every entry must be finite)"),
        )),
    }
}

/// Checks, before an output array `argument` is written, that every value
/// computed for it is finite: finite inputs can still overflow, and a NaN
/// or infinity must never come back as `ADJ_OK`.
pub(crate) fn finite_output(argument: &'static str, values: &[f64]) -> Result<()> {
    match crate::vector::first_non_finite(values) {
        None => Ok(()),
        Some((i, v)) => Err(Error::NotConverged {
            message: format!(
                "{argument}[{i}] came out {v} (the computation overflowed for these inputs); no output was written"
            ),
        }),
    }
}

/// Checks that the numeric option `argument` is finite and within `range`
/// (`what` describes the range in the message).
pub(crate) fn option_in(
    argument: &'static str,
    value: f64,
    range: std::ops::RangeInclusive<f64>,
    what: &str,
) -> Result<()> {
    if value.is_finite() && range.contains(&value) {
        Ok(())
    } else {
        Err(Error::invalid(
            argument,
            format!("{argument} = {value} must be {what}"),
        ))
    }
}

/// A C boolean argument: 0 or 1, anything else an error naming it.
pub(crate) fn flag(value: i32, argument: &'static str) -> Result<bool> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(Error::invalid(
            argument,
            format!("{argument} = {other} must be 0 or 1"),
        )),
    }
}
