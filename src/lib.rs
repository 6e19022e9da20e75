//! # adjunct
//!
//! Sparse symmetric positive definite solvers with a stable C ABI.
//!
//! - [`operator`]: linear operators — CSR matrices ([`CsrMatrix`]), the
//!   pressure Poisson stencil of fluid simulators on 2D/3D grids
//!   ([`GridPoisson`]) and matrix-free closures ([`FnOperator`]).
//! - [`krylov`]: preconditioned conjugate gradient ([`cg`]) with identity,
//!   Jacobi, IC(0) and user preconditioners, reporting PETSc-style reasons.
//! - `ffi`: the C ABI declared in `include/adjunct.h`.
//!
//! ```
//! use adjunct::{cg, Cell, KrylovOptions, GridPoisson, Jacobi, LinearOperator};
//!
//! // 2D 8×8 grid, air on the top row, walls elsewhere.
//! let (nx, ny) = (8, 8);
//! let cells: Vec<Cell> = (0..nx * ny)
//!     .map(|c| if c / nx == ny - 1 { Cell::Air } else { Cell::Fluid })
//!     .collect();
//! let a = GridPoisson::builder([nx, ny, 1], &cells).build()?;
//! let b = vec![1.0; a.dim()];
//! let mut x = vec![0.0; a.dim()];
//! let report = cg(&a, &Jacobi::new(&a)?, &b, &mut x, &KrylovOptions::default())?;
//! assert!(report.relative_residual <= 1e-8);
//! # Ok::<(), adjunct::Error>(())
//! ```
//!
//! All solvers work in f64, run their bulk kernels on a rayon pool sized by
//! [`set_num_threads`], and give bitwise-identical results for any thread
//! count.

mod alloc;
pub mod distributed;
pub mod error;
pub mod ffi;
pub mod implicit;
pub mod krylov;
pub mod learned;
pub mod operator;
pub mod ot;
mod parallel;
pub mod random;
mod report;
mod scalar;
pub mod scene;
mod simd;
mod vector;

pub use error::{Error, Result};
pub use krylov::{
    bicgstab, cg, gmres, FnPreconditioner, Ic0, Identity, Jacobi, KrylovOptions, Preconditioner,
    SolveReason, SolveReport,
};
pub use operator::{Cell, CsrMatrix, FnOperator, GridPoisson, LinearOperator};
pub use parallel::{num_threads, set_num_threads};
