//! Distributed solves of the grid Poisson operator: the grid split into
//! one box per rank, the caller's message layer (MPI) reached through a
//! [`Communicator`] — the library never links MPI.
//!
//! - [`DistributedGridPoisson`]: this rank's part of the operator, with
//!   ghost layers exchanged through the communicator.
//! - [`DistributedMultigrid`]: the geometric V-cycle of
//!   [`Multigrid`](crate::krylov::Multigrid) on the distributed grid, the
//!   same preconditioner whatever the decomposition.
//! - [`distributed_mgpcg`]: CG with it, one reduction per iteration.

mod comm;
mod decomposition;
mod grid;
mod halo;
mod multigrid;
mod regions;
mod runs;
mod solve;

pub use comm::{CommStats, Communicator, HaloMessage, SingleRank};
pub use decomposition::GridBox;
pub use grid::{DistributedGridPoisson, DistributedGridPoissonBuilder};
pub use multigrid::DistributedMultigrid;
pub use solve::{distributed_mgpcg, DistributedSolveReport};
