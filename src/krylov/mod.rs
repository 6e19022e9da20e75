//! Krylov solvers: preconditioned conjugate gradient for SPD systems,
//! restarted GMRES and BiCGStab for general ones, preconditioners
//! (Jacobi, IC(0), geometric multigrid, callbacks), the conjugate-direction
//! method with its two-level coarse-space correction, and solve reports.

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
pub use conjugate_direction::{
    conjugate_direction, conjugate_direction_reduced, ConjugateDirectionOptions,
    ConjugateDirectionReport, DirectionGenerator, FnDirection, PreconditionerDirection,
};
pub use gmres::gmres;
pub use ic0::Ic0;
pub use multigrid::{
    CoarseOperators, LevelSchedule, Multigrid, MultigridOptions, Precision, Schedule,
    ScheduleParameter,
};
pub(crate) use options::{conclude, true_residual};
pub use options::{KrylovOptions, ResidualNorm};
pub use precond::{FnPreconditioner, Identity, Jacobi, Preconditioner};
pub use pressure::PressureSolver;
pub use single_reduction::{cg_single_reduction, AllreduceSum};
pub use two_level::{CoarseSpace, TwoLevel};
