//! The learned conjugate-direction solver (Kaneda, Akar, Chen, Kala, Hyde,
//! Teran, "A Deep Conjugate Direction Method for Iteratively Solving Linear
//! Systems", ICML 2023): a fully convolutional network proposes search
//! directions for [`conjugate_direction`](crate::krylov::conjugate_direction)
//! on grid Poisson operators. Trained ([`train`]), saved and loaded
//! ([`Model`], safetensors) and run ([`NetworkDirection`]) by the library.
//! Learned multigrid ([`MultigridModel`]): a V-cycle schedule trained with
//! the same loss through the cycle, run as CG's preconditioner.

mod contracted;
mod direction;
mod file;
mod io;
pub mod layers;
mod multigrid;
mod network;
mod train;

pub use direction::{Evaluation, NetworkDirection};
pub use io::{AnyModel, Model};
pub use multigrid::{
    schedule_loss_and_gradient, train_schedule, MultigridModel, ScheduleTrainOptions,
};
pub use network::{Architecture, Network, Tape, Workspace};
pub use train::{loss_and_gradient, ritz_dataset, solver_residuals, train, Adam, TrainOptions};
