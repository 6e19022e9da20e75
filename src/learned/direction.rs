//! A trained network as the direction generator of the conjugate-direction
//! method on a grid Poisson operator.

use super::contracted::Contracted;
use super::io::Model;
use super::layers::Grid;
use super::network::{Network, Workspace};
use crate::error::{Error, Result};
use crate::krylov::{CoarseSpace, Preconditioner, TwoLevel};
use crate::operator::{GridPoisson, LinearOperator};
use crate::vector;
use std::sync::Mutex;

/// How a network is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Evaluation {
    /// With the finest level contracted into single kernels where the
    /// network allows it (the symmetric form with at most one block per
    /// level: about 3× fewer multiply-adds in 3D, the same network away
    /// from the grid's edge but not within a few cells of it, see
    /// `learned/contracted.rs`), else layer by layer.
    #[default]
    Fastest,
    /// Layer by layer, exactly the network as trained.
    LayerByLayer,
}

/// The evaluation of one network and its buffers.
enum Evaluator<'a> {
    Layers(&'a Network, Workspace),
    Contracted(Box<Contracted<'a>>),
}

/// N(r), or Lᵀ L r for a network of the symmetric form, on the grid
/// of `op`, non-fluid cells masked to zero on input and output. Applies
/// serialise on internal buffers, allocated once (no allocation per
/// direction after the first).
struct NetworkOnGrid<'a> {
    op: &'a GridPoisson,
    buffers: Mutex<(Vec<f32>, Evaluator<'a>)>,
}

impl<'a> NetworkOnGrid<'a> {
    fn new(op: &'a GridPoisson, network: &'a Network, evaluation: Evaluation) -> Result<Self> {
        let grid = Grid::new(op.dims());
        if grid.ndim() != network.architecture().dim {
            return Err(Error::invalid(
                "model",
                format!(
                    "a {}D model cannot generate directions on the {}D grid {:?}",
                    network.architecture().dim,
                    grid.ndim(),
                    grid.dims
                ),
            ));
        }
        let evaluator = if evaluation == Evaluation::Fastest && Contracted::applies(network) {
            Evaluator::Contracted(Box::new(Contracted::new(network)?))
        } else {
            Evaluator::Layers(network, Workspace::default())
        };
        Ok(Self {
            op,
            buffers: Mutex::new((vec![0.0; grid.cells()], evaluator)),
        })
    }
}

/// The network as a (nonlinear) direction source for the
/// conjugate-direction method.
impl Preconditioner for NetworkOnGrid<'_> {
    fn dim(&self) -> usize {
        self.op.dim()
    }

    fn is_linear(&self) -> bool {
        false
    }

    fn apply_dot(&self, r: &[f64], d: &mut [f64]) -> Result<f64> {
        self.apply(r, d)?;
        Ok(vector::dot(r, d))
    }

    fn apply(&self, r: &[f64], d: &mut [f64]) -> Result<()> {
        Error::check_len("r", self.dim(), r.len())?;
        Error::check_len("d", self.dim(), d.len())?;
        let mut guard = self.buffers.lock().unwrap_or_else(|p| p.into_inner());
        let (field, evaluator) = &mut *guard;
        self.op.scatter(r, field)?;
        let grid = Grid::new(self.op.dims());
        let out = match evaluator {
            Evaluator::Layers(network, workspace) => network.direction(grid, field, workspace)?,
            Evaluator::Contracted(contracted) => contracted.direction(grid, field)?,
        };
        self.op.gather(out, d)
    }
}

/// The direction of a trained network on the grid of `op`: D(r) = N(r)
/// (Lᵀ L r for the symmetric form), or with the two-level correction of
/// [`crate::krylov::TwoLevel`], D(r) = C r + (I − C A) s N((I − A C) r),
/// whose scale s absorbs the network's arbitrary one.
pub struct NetworkDirection<'a> {
    generator: Box<dyn Preconditioner + Send + Sync + 'a>,
}

impl<'a> NetworkDirection<'a> {
    /// D(r) = N(r) on `op`; fails when the network's dimension is not the
    /// grid's.
    pub fn new(op: &'a GridPoisson, network: &'a Network) -> Result<Self> {
        Self::with_evaluation(op, network, 0, Evaluation::Fastest)
    }

    /// The two-level direction with aggregates of `coarse_block`ᵈ cells
    /// (≥ 2); also fails when the coarse operator cannot be factored.
    pub fn two_level(
        op: &'a GridPoisson,
        network: &'a Network,
        coarse_block: usize,
    ) -> Result<Self> {
        Self::with_evaluation(op, network, coarse_block, Evaluation::Fastest)
    }

    /// The generator a model file asks for: two-level when its
    /// `coarse_block` is set, else plain.
    pub fn for_model(op: &'a GridPoisson, model: &'a Model) -> Result<Self> {
        Self::with_evaluation(op, &model.network, model.coarse_block, Evaluation::Fastest)
    }

    /// The direction of `network` evaluated as `evaluation` says, plain
    /// (`coarse_block` = 0) or two-level (≥ 2).
    pub fn with_evaluation(
        op: &'a GridPoisson,
        network: &'a Network,
        coarse_block: usize,
        evaluation: Evaluation,
    ) -> Result<Self> {
        let inner = NetworkOnGrid::new(op, network, evaluation)?;
        let generator: Box<dyn Preconditioner + Send + Sync + 'a> = match coarse_block {
            0 => Box::new(inner),
            block => Box::new(TwoLevel::new(op, CoarseSpace::new(op, block)?, inner)?),
        };
        Ok(Self { generator })
    }
}

/// A nonlinear direction source: for the conjugate-direction method only.
impl Preconditioner for NetworkDirection<'_> {
    fn dim(&self) -> usize {
        self.generator.dim()
    }

    fn is_linear(&self) -> bool {
        false
    }

    fn apply_dot(&self, r: &[f64], d: &mut [f64]) -> Result<f64> {
        self.generator.apply_dot(r, d)
    }

    fn apply(&self, r: &[f64], d: &mut [f64]) -> Result<()> {
        self.generator.apply(r, d)
    }
}
