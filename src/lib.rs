//! # adjunct
//!
//! Sparse symmetric positive definite solvers, entropic optimal transport
//! and implicit differentiation, with a stable C ABI.
//!
//! A tour of the modules:
//!
//! - [`operator`]: linear operators — CSR matrices ([`CsrMatrix`]), the
//!   pressure Poisson stencil of fluid simulators on 2D/3D grids
//!   ([`GridPoisson`]: fluid, solid and air cells, per-face coefficients,
//!   ghost-fluid surfaces) and matrix-free closures ([`FnOperator`]).
//! - [`krylov`]: preconditioned conjugate gradient ([`cg`], and
//!   [`cg_single_reduction`] with one reduction per iteration), GMRES,
//!   BiCGStab, the conjugate-direction method ([`conjugate_direction`]);
//!   preconditioners (identity, [`Jacobi`], [`Ic0`], geometric
//!   [`Multigrid`], closures: one [`Preconditioner`] trait for every
//!   r ↦ M⁻¹ r, linear or, for the conjugate-direction method, not); the
//!   persistent per-frame [`PressureSolver`].
//!   Every solve returns a [`SolveReport`] with a PETSc-style
//!   [`SolveReason`].
//! - [`distributed`]: the grid operator and its V-cycle split into one box
//!   per rank, the caller's MPI reached through a
//!   [`Communicator`](distributed::Communicator); [`distributed_mgpcg`].
//! - [`learned`]: the direction network of the learned conjugate-direction
//!   solver (Kaneda et al. 2023): layers, training on Ritz vectors,
//!   safetensors model files; and learned multigrid, a V-cycle
//!   [`Schedule`](krylov::Schedule) trained through the cycle with the same
//!   loss ([`MultigridModel`](learned::MultigridModel)).
//!   [`ConjugateDirectionSolver`](learned::ConjugateDirectionSolver) runs
//!   either, or any [`Preconditioner`], with the optional two-level
//!   correction.
//! - [`ot`]: entropic optimal transport, log-domain Sinkhorn and
//!   Sinkhorn-Newton-Sparse (Tang et al. 2024).
//! - [`implicit`]: gradients by implicit differentiation (Blondel et al.
//!   2021) of user root problems, linear solves and optimal transport.
//! - [`scene`]: ready-made pressure problems (a smoke plume, obstacles in
//!   a tank, …) with their right-hand sides, seeded and reproducible: the
//!   scenes of the examples, benchmarks and documented figures, for users
//!   to measure their own settings on.
//!
//! The C ABI (`include/adjunct.h`, `adj_*`) comes from the `ffi` module,
//! which is hidden from these docs and is not part of the Rust API: its
//! items are C declarations, reachable from Rust only so that the crate's
//! own tests drive the ABI exactly as a C caller does.
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
#[doc(hidden)]
pub mod ffi;
pub mod implicit;
pub mod krylov;
pub mod learned;
pub mod operator;
pub mod ot;
mod parallel;
mod random;
mod report;
mod scalar;
pub mod scene;
mod simd;
mod vector;

pub use distributed::distributed_mgpcg;
pub use error::{Error, Result};
pub use krylov::{
    bicgstab, cg, cg_single_reduction, conjugate_direction, gmres, FnPreconditioner, Ic0, Identity,
    Jacobi, KrylovOptions, Multigrid, MultigridOptions, Preconditioner, PressureSolver,
    SolveReason, SolveReport,
};
pub use operator::{Cell, CsrMatrix, FnOperator, GridPoisson, LinearOperator};
pub use parallel::{num_threads, set_num_threads};
