//! Status codes, the thread-local error message and the panic boundary.

use crate::error::Error;
use crate::krylov::SolveReason;
use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

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
    /// Memory for an object or workspace sized by the arguments could not
    /// be allocated; nothing was changed.
    ADJ_ERR_OUT_OF_MEMORY = -10,
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
            Error::OutOfMemory { .. } => adj_status::ADJ_ERR_OUT_OF_MEMORY,
            Error::SolveFailed { report, .. } => match report.reason {
                SolveReason::DivergedIndefiniteOperator
                | SolveReason::DivergedIndefinitePreconditioner => adj_status::ADJ_ERR_NOT_SPD,
                SolveReason::DivergedCallback => adj_status::ADJ_ERR_CALLBACK,
                _ => adj_status::ADJ_ERR_NOT_CONVERGED,
            },
        }
    }
}

/// The name and meaning of a status code, e.g. "ADJ_ERR_NOT_SPD: a matrix
/// or preconditioner is not symmetric positive definite" (a static string;
/// "unknown status" for a value that is not an `adj_status`). Takes an
/// `int` so that any value is safe to pass.
#[no_mangle]
pub extern "C" fn adj_status_string(status: c_int) -> *const c_char {
    let text: &'static CStr = match status {
        0 => c"ADJ_OK: success",
        -1 => c"ADJ_ERR_NULL_ARGUMENT: a required pointer argument was NULL",
        -2 => c"ADJ_ERR_INVALID_ARGUMENT: an argument has an invalid value",
        -3 => c"ADJ_ERR_DIMENSION_MISMATCH: array lengths or handle dimensions do not agree",
        -4 => c"ADJ_ERR_NOT_SPD: a matrix or preconditioner is not symmetric positive definite",
        -5 => c"ADJ_ERR_NOT_CONVERGED: an iterative method did not converge or produced NaN/Inf",
        -6 => c"ADJ_ERR_CALLBACK: a user callback returned nonzero",
        -7 => c"ADJ_ERR_PANIC: an internal error was caught at the boundary",
        -8 => c"ADJ_ERR_IO: a file could not be read or written",
        -9 => c"ADJ_ERR_FORMAT: a file is truncated, corrupted or describes a different model",
        -10 => c"ADJ_ERR_OUT_OF_MEMORY: memory sized by the arguments could not be allocated",
        _ => c"unknown status",
    };
    text.as_ptr()
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

thread_local! {
    /// How many exported functions are running on this thread (callbacks
    /// can re-enter the library).
    static INSIDE_BOUNDARY: Cell<usize> = const { Cell::new(0) };
}

/// Runs `body` with panics caught and kept off the caller's stderr: the
/// process's panic hook is wrapped once so that it stays silent for panics
/// inside an exported function (they become `ADJ_ERR_PANIC` and a message)
/// and behaves as before everywhere else, e.g. in the host's own Rust code.
fn catch_silently<T>(body: impl FnOnce() -> T) -> std::thread::Result<T> {
    static WRAP_HOOK: Once = Once::new();
    WRAP_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // The library's pool threads (named `adjunct-*`) only run
            // kernels handed over from inside an exported function, which
            // re-raises their panics on the calling thread.
            let library_worker = std::thread::current()
                .name()
                .is_some_and(|name| name.starts_with("adjunct-"));
            if INSIDE_BOUNDARY.with(Cell::get) == 0 && !library_worker {
                previous(info);
            }
        }));
    });
    INSIDE_BOUNDARY.with(|d| d.set(d.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(body));
    INSIDE_BOUNDARY.with(|d| d.set(d.get() - 1));
    result
}

/// Runs the body of an exported function: converts its error into a
/// status and message, and catches any panic.
pub(crate) fn boundary(body: impl FnOnce() -> crate::Result<()>) -> adj_status {
    match catch_silently(body) {
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
    catch_silently(body).unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn every_status_has_its_string() {
        use adj_status::*;
        for status in [
            ADJ_OK,
            ADJ_ERR_NULL_ARGUMENT,
            ADJ_ERR_INVALID_ARGUMENT,
            ADJ_ERR_DIMENSION_MISMATCH,
            ADJ_ERR_NOT_SPD,
            ADJ_ERR_NOT_CONVERGED,
            ADJ_ERR_CALLBACK,
            ADJ_ERR_PANIC,
            ADJ_ERR_IO,
            ADJ_ERR_FORMAT,
            ADJ_ERR_OUT_OF_MEMORY,
        ] {
            // SAFETY: a static NUL-terminated string.
            let text = unsafe { CStr::from_ptr(adj_status_string(status as c_int)) };
            let text = text.to_str().unwrap();
            assert!(text.starts_with(&format!("{status:?}: ")), "{text}");
        }
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(adj_status_string(42)) };
        assert_eq!(unknown.to_str().unwrap(), "unknown status");
    }

    /// The child half of [`panics_inside_the_boundary_print_nothing`].
    #[test]
    #[ignore = "run in a child process by panics_inside_the_boundary_print_nothing"]
    fn panicking_child() {
        assert_eq!(
            boundary(|| panic!("boom on the calling thread")),
            adj_status::ADJ_ERR_PANIC
        );
        // A panic on the library's pool threads, re-raised on this one.
        crate::parallel::set_num_threads(2).unwrap();
        let status = boundary(|| {
            crate::parallel::sum_blocks(64, 1 << 20, |b| {
                if b == 63 {
                    panic!("boom on a pool thread")
                }
                1.0
            });
            Ok(())
        });
        assert_eq!(status, adj_status::ADJ_ERR_PANIC);
        println!("CHILD DONE");
    }

    #[test]
    fn panics_inside_the_boundary_print_nothing() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "ffi::status::tests::panicking_child",
                "--nocapture",
            ])
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success() && stdout.contains("CHILD DONE"),
            "{stdout}{stderr}"
        );
        assert!(!stderr.contains("boom"), "the panic hook printed: {stderr}");
        assert!(!stdout.contains("panicked"), "{stdout}");
    }

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
