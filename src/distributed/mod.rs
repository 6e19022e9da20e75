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
//!
//! On one rank ([`SingleRank`]) the solve is the serial one; with MPI, each
//! rank passes its box and a [`Communicator`] over its MPI communicator.
//!
//! ```
//! use adjunct::distributed::{
//!     distributed_mgpcg, DistributedGridPoisson, DistributedMultigrid, GridBox, SingleRank,
//! };
//! use adjunct::{Cell, KrylovOptions, LinearOperator, MultigridOptions};
//!
//! // A 16×16×16 box, the top layer air: this rank owns all of it.
//! let n = 16;
//! let cells: Vec<Cell> = (0..n * n * n)
//!     .map(|c| if c / (n * n) == n - 1 { Cell::Air } else { Cell::Fluid })
//!     .collect();
//! let owned = GridBox { lo: [0; 3], hi: [n; 3] };
//! let a = DistributedGridPoisson::builder(Box::new(SingleRank), [n; 3], owned, &cells).build()?;
//! let m = DistributedMultigrid::new(&a, &MultigridOptions::default())?;
//! let b = vec![1.0; a.dim()];
//! let mut x = vec![0.0; a.dim()];
//! let report = distributed_mgpcg(&a, &m, &b, &mut x, &KrylovOptions::default())?;
//! assert!(report.solve.relative_residual <= 1e-8);
//! # Ok::<(), adjunct::Error>(())
//! ```

mod comm;
mod decomposition;
mod ghosts;
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
