//! The learned conjugate-direction solver (Kaneda, Akar, Chen, Kala, Hyde,
//! Teran, "A Deep Conjugate Direction Method for Iteratively Solving Linear
//! Systems", ICML 2023): a fully convolutional network proposes search
//! directions for [`conjugate_direction`](crate::krylov::conjugate_direction)
//! on grid Poisson operators. Trained ([`train`]), saved and loaded
//! ([`Model`], safetensors) and run ([`NetworkDirection`]) by the library.
//! Learned multigrid ([`MultigridModel`]): a V-cycle schedule trained with
//! the same loss through the cycle, run as CG's preconditioner.
//!
//! ```
//! use adjunct::learned::MultigridModel;
//! use adjunct::{cg, scene, KrylovOptions};
//!
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/multigrid_2d.safetensors");
//! let model = MultigridModel::load(std::path::Path::new(path))?;
//! let problem = scene::obstacles([64, 64, 1], 2)?;
//! let a = problem.operator()?;
//! let m = model.multigrid(&a)?;
//! let mut x = vec![0.0; problem.rhs.len()];
//! let report = cg(&a, &m, &problem.rhs, &mut x, &KrylovOptions::default())?;
//! assert!(report.reason.converged() && report.iterations < 20);
//! # Ok::<(), adjunct::Error>(())
//! ```

mod contracted;
mod direction;
mod file;
mod io;
mod layers;
mod multigrid;
mod network;
#[cfg(test)]
mod reference;
mod solver;
mod train;

pub use direction::{Evaluation, NetworkDirection};
pub use io::{AnyModel, Model};
pub use layers::Grid;
pub use multigrid::{
    schedule_loss_and_gradient, train_schedule, MultigridModel, ScheduleTrainOptions,
};
pub use network::{Architecture, Network, Tape, Workspace};
pub use solver::{CoarseCorrection, ConjugateDirectionSolver, Directions};
pub use train::{
    loss_and_gradient, ritz_dataset, ritz_dataset_weighted, solver_residuals, train, Adam,
    TrainOptions,
};
