//! Status codes, the thread-local error message and the panic boundary.

use crate::error::Error;
use crate::krylov::SolveReason;
use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Status returned by every fallible function: 0 on success, a negative
/// code on failure, with details in `adj_last_error_message()`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum adj_status {
    /// Success.
    ADJ_OK = 0,
    /// A required pointer argument was NULL.
    ADJ_ERR_NULL_ARGUMENT = -1,
    /// An argument has an invalid value (NaN, unsorted indices, bad flag, ...).
    ADJ_ERR_INVALID_ARGUMENT = -2,
    /// Array lengths or handle dimensions do not agree.
    ADJ_ERR_DIMENSION_MISMATCH = -3,
    /// A matrix or preconditioner is not symmetric positive definite
    /// (found while factoring, or by CG as pᵀAp ≤ 0 or rᵀM⁻¹r ≤ 0).
    ADJ_ERR_NOT_SPD = -4,
    /// An iterative solve reached its iteration limit or produced NaN/Inf.
    ADJ_ERR_NOT_CONVERGED = -5,
    /// A user callback returned nonzero.
    ADJ_ERR_CALLBACK = -6,
    /// An internal error (a Rust panic) was caught at the boundary.
    ADJ_ERR_PANIC = -7,
    /// A file could not be read or written.
    ADJ_ERR_IO = -8,
    /// A file is truncated, corrupted or describes a different model.
    ADJ_ERR_FORMAT = -9,
}

impl adj_status {
    /// The status reporting `error`.
    pub fn of(error: &Error) -> Self {
        match error {
            Error::NullArgument { .. } => adj_status::ADJ_ERR_NULL_ARGUMENT,
            Error::InvalidArgument { .. } => adj_status::ADJ_ERR_INVALID_ARGUMENT,
            Error::DimensionMismatch { .. } => adj_status::ADJ_ERR_DIMENSION_MISMATCH,
            Error::NotSpd { .. } => adj_status::ADJ_ERR_NOT_SPD,
            Error::Callback { .. } => adj_status::ADJ_ERR_CALLBACK,
            Error::NotConverged { .. } => adj_status::ADJ_ERR_NOT_CONVERGED,
            Error::Io { .. } => adj_status::ADJ_ERR_IO,
            Error::Format { .. } => adj_status::ADJ_ERR_FORMAT,
            Error::SolveFailed { report, .. } => match report.reason {
                SolveReason::DivergedIndefiniteOperator
                | SolveReason::DivergedIndefinitePreconditioner => adj_status::ADJ_ERR_NOT_SPD,
                SolveReason::DivergedCallback => adj_status::ADJ_ERR_CALLBACK,
                _ => adj_status::ADJ_ERR_NOT_CONVERGED,
            },
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = message);
}

/// A human-readable description of the last failure on the calling thread:
/// what was wrong, which argument, the expected and found values.
///
/// The string is owned by the library and stays valid until the next
/// failing call on this thread. It is empty before any failure. Calls that
/// succeed leave it unchanged.
#[no_mangle]
pub extern "C" fn adj_last_error_message() -> *const c_char {
    LAST_ERROR.with(|slot| slot.borrow().as_ptr())
}

/// Runs the body of an exported function: converts its error into a
/// status and message, and catches any panic.
pub(crate) fn boundary(body: impl FnOnce() -> crate::Result<()>) -> adj_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => adj_status::ADJ_OK,
        Ok(Err(error)) => {
            set_last_error(&error.to_string());
            adj_status::of(&error)
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            set_last_error(&format!("internal error (panic) in adjunct: {what}"));
            adj_status::ADJ_ERR_PANIC
        }
    }
}

/// Runs the body of an exported function that cannot report a status
/// (free functions, getters): a panic is caught and `fallback` returned.
pub(crate) fn boundary_or<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn a_panic_becomes_a_status_and_message() {
        let status = boundary(|| panic!("boom in a kernel"));
        assert_eq!(status, adj_status::ADJ_ERR_PANIC);
        // SAFETY: valid NUL-terminated string owned by this thread.
        let message = unsafe { CStr::from_ptr(adj_last_error_message()) }
            .to_str()
            .unwrap();
        assert!(message.contains("boom in a kernel"), "{message}");
        assert_eq!(boundary_or(5, || panic!("boom")), 5);
    }
}
