//! Fallible allocation for buffers whose size comes from a caller or a
//! file: an impossible size is an [`Error::OutOfMemory`], never an abort.

use crate::error::{Error, Result};

/// An empty vector with room for `len` elements, or [`Error::OutOfMemory`].
pub(crate) fn with_capacity<T>(len: usize, what: &'static str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Error::OutOfMemory {
        what,
        elements: len,
    })?;
    Ok(v)
}

/// Appends `value` to `v` (growing it as `Vec::push` does), or fails
/// with [`Error::OutOfMemory`] naming `what`.
pub(crate) fn push<T>(v: &mut Vec<T>, value: T, what: &'static str) -> Result<()> {
    v.try_reserve(1).map_err(|_| Error::OutOfMemory {
        what,
        elements: v.len() + 1,
    })?;
    v.push(value);
    Ok(())
}

/// A vector of `len` copies of `value`, or [`Error::OutOfMemory`].
pub(crate) fn filled<T: Clone>(len: usize, value: T, what: &'static str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    refill(&mut v, len, value, what)?;
    Ok(v)
}

/// Makes `v` `len` copies of `value`, in its memory where it has room, or
/// fails with [`Error::OutOfMemory`] naming `what`.
pub(crate) fn refill<T: Clone>(
    v: &mut Vec<T>,
    len: usize,
    value: T,
    what: &'static str,
) -> Result<()> {
    v.clear();
    v.try_reserve_exact(len).map_err(|_| Error::OutOfMemory {
        what,
        elements: len,
    })?;
    v.resize(len, value);
    Ok(())
}

/// A copy of `values`, or [`Error::OutOfMemory`] naming `what`.
pub(crate) fn copied<T: Clone>(values: &[T], what: &'static str) -> Result<Vec<T>> {
    let mut v = with_capacity(values.len(), what)?;
    v.extend_from_slice(values);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_impossible_size_is_an_error() {
        let e = with_capacity::<u64>(usize::MAX / 2, "test buffer").unwrap_err();
        assert!(matches!(e, Error::OutOfMemory { elements, .. } if elements == usize::MAX / 2));
        assert!(with_capacity::<u8>(3, "small").unwrap().capacity() >= 3);
    }
}
