//! The crate's one error type. Every variant maps onto one C status code
//! (see `ffi::status`), and its `Display` text is what
//! `adj_last_error_message()` returns: what was wrong, which argument, and
//! the expected and found values.
//!
//! ```
//! use adjunct::{cg, CsrMatrix, Error, Identity, KrylovOptions};
//!
//! // A non-symmetric matrix: CG refuses it, naming what is wrong.
//! let a = CsrMatrix::from_parts(2, 2, &[0u32, 2, 3], &[0u32, 1, 1], &[2.0, 1.0, 3.0])?;
//! let mut x = vec![0.0; 2];
//! match cg(&a, &Identity { dim: 2 }, &[1.0, 1.0], &mut x, &KrylovOptions::default()) {
//!     Err(Error::NotSpd { message }) => assert!(message.contains("not symmetric")),
//!     other => panic!("{other:?}"),
//! }
//! // A length that does not match names the argument.
//! let e = cg(&a, &Identity { dim: 2 }, &[1.0], &mut x, &KrylovOptions::default()).unwrap_err();
//! assert!(matches!(e, Error::DimensionMismatch { argument: "b", .. }));
//! # Ok::<(), Error>(())
//! ```

use crate::report::SolveReport;
use std::fmt;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `adjunct`.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// A required pointer argument was NULL (C ABI only).
    NullArgument {
        /// Name of the argument, as in the C header.
        argument: &'static str,
    },
    /// An argument has an invalid value (NaN, negative size, unsorted indices, ...).
    InvalidArgument {
        /// Name of the argument.
        argument: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// Two sizes that must agree do not.
    DimensionMismatch {
        /// Name of the argument whose size is wrong.
        argument: &'static str,
        /// The size it must have.
        expected: usize,
        /// The size it has.
        found: usize,
    },
    /// A matrix or preconditioner is not symmetric positive definite
    /// (found while factoring it, before any solve).
    NotSpd {
        /// What was found.
        message: String,
    },
    /// An iterative solve stopped without converging: it reached its
    /// iteration limit, detected an indefinite operator or preconditioner,
    /// produced NaN/Inf, or a callback failed. The report says which.
    SolveFailed {
        /// Name of the solver ("CG", ...).
        solver: &'static str,
        /// The state of the solve when it stopped.
        report: Box<SolveReport>,
        /// The underlying cause when a callback failed.
        cause: Option<Box<Error>>,
    },
    /// An iterative method other than a Krylov solve (for example entropic
    /// OT) stopped before reaching its tolerance.
    NotConverged {
        /// What was reached, and the iteration counts.
        message: String,
    },
    /// A file could not be read or written.
    Io {
        /// The path.
        path: String,
        /// The operating system's message.
        message: String,
    },
    /// A file's contents are not what was expected (truncated, corrupted,
    /// wrong tensor names, shapes or dtypes).
    Format {
        /// What is wrong, naming the tensor or field.
        message: String,
    },
    /// An allocation sized by the caller's data could not be made.
    OutOfMemory {
        /// What was being allocated.
        what: &'static str,
        /// How many elements it needed.
        elements: usize,
    },
    /// A user callback returned a nonzero status.
    Callback {
        /// Which callback ("operator apply", "preconditioner", ...).
        callback: &'static str,
        /// The nonzero value it returned.
        code: i32,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(argument: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            argument,
            message: message.into(),
        }
    }

    /// Checks `found == expected` for the length of `argument`.
    pub fn check_len(argument: &'static str, expected: usize, found: usize) -> Result<()> {
        if expected == found {
            Ok(())
        } else {
            Err(Error::DimensionMismatch {
                argument,
                expected,
                found,
            })
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NullArgument { argument } => write!(f, "argument `{argument}` is NULL"),
            Error::InvalidArgument { argument, message } => {
                write!(f, "invalid argument `{argument}`: {message}")
            }
            Error::DimensionMismatch {
                argument,
                expected,
                found,
            } => write!(
                f,
                "dimension mismatch for `{argument}`: expected length {expected}, found {found}"
            ),
            Error::NotSpd { message } => {
                write!(f, "not symmetric positive definite: {message}")
            }
            Error::SolveFailed {
                solver,
                report,
                cause,
            } => {
                write!(
                    f,
                    "{solver} stopped after {} iterations: {} (residual norm {:.3e}, relative {:.3e})",
                    report.iterations,
                    report.reason.description(),
                    report.residual_norm,
                    report.relative_residual
                )?;
                if let Some(cause) = cause {
                    write!(f, ": {cause}")?;
                }
                Ok(())
            }
            Error::NotConverged { message } => write!(f, "not converged: {message}"),
            Error::Io { path, message } => write!(f, "cannot access `{path}`: {message}"),
            Error::Format { message } => write!(f, "invalid model file: {message}"),
            Error::OutOfMemory { what, elements } => {
                write!(
                    f,
                    "out of memory: cannot allocate {what} ({elements} elements)"
                )
            }
            Error::Callback { callback, code } => {
                write!(f, "the {callback} callback returned {code}")
            }
        }
    }
}

impl std::error::Error for Error {}
