//! Krylov solvers: preconditioned conjugate gradient for SPD systems,
//! restarted GMRES and BiCGStab for general ones, preconditioners
//! (Jacobi, IC(0), geometric multigrid, callbacks), the conjugate-direction
//! method with its two-level coarse-space correction, and solve reports.
//!
//! ```
//! use adjunct::krylov::{cg, Ic0, KrylovOptions, Multigrid, MultigridOptions, SolveReason};
//! use adjunct::scene;
//!
//! let problem = scene::smoke([32, 32, 32], 2)?;
//! let a = problem.operator()?;
//! let options = KrylovOptions { rtol: 1e-8, ..KrylovOptions::default() };
//! let (mut x, mut y) = (vec![0.0; problem.rhs.len()], vec![0.0; problem.rhs.len()]);
//! let mg = cg(&a, &Multigrid::new(&a, &MultigridOptions::default())?, &problem.rhs, &mut x, &options)?;
//! let ic = cg(&a, &Ic0::new(&a.to_csr()?)?, &problem.rhs, &mut y, &options)?;
//! assert_eq!(mg.reason, SolveReason::ConvergedRtol);
//! assert!(mg.iterations < ic.iterations);
//! # Ok::<(), adjunct::Error>(())
//! ```

mod bicgstab;
mod cg;
mod conjugate_direction;
mod gmres;
mod ic0;
pub(crate) mod multigrid;
mod options;
mod precond;
mod pressure;
mod single_reduction;
mod two_level;

pub use crate::report::{SolveReason, SolveReport};
pub use bicgstab::bicgstab;
pub use cg::cg;
pub(crate) use conjugate_direction::conjugate_direction_reduced;
pub use conjugate_direction::{
    conjugate_direction, ConjugateDirectionOptions, ConjugateDirectionReport,
};
pub use gmres::gmres;
pub use ic0::Ic0;
pub use multigrid::{
    CoarseOperators, LevelSchedule, Multigrid, MultigridOptions, Precision, Schedule,
    ScheduleParameter,
};
pub(crate) use options::{conclude, true_residual};
pub use options::{KrylovOptions, ResidualNorm};
pub(crate) use precond::require_linear;
pub use precond::{FnPreconditioner, Identity, Jacobi, Preconditioner};
pub use pressure::PressureSolver;
pub use single_reduction::{cg_single_reduction, AllreduceSum};
pub use two_level::{CoarseSpace, TwoLevel};
