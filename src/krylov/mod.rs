//! Krylov solvers: preconditioned conjugate gradient, preconditioners and
//! solve reports.

mod cg;
mod ic0;
mod precond;
mod report;
pub mod vector;

pub use cg::{cg, CgOptions};
pub use ic0::Ic0;
pub use precond::{FnPreconditioner, Identity, Jacobi, Preconditioner};
pub use report::{SolveReason, SolveReport};
