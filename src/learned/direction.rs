//! A trained network as the direction generator of the conjugate-direction
//! method on a grid Poisson operator.

use super::io::Model;
use super::layers::Grid;
use super::network::{Network, Workspace};
use super::train::{from_field, to_field};
use crate::error::{Error, Result};
use crate::krylov::{CoarseSpace, DirectionGenerator, TwoLevel};
use crate::operator::{GridPoisson, LinearOperator};
use std::sync::Mutex;

/// N(r), or Lᵀ L r for a network of the symmetric form, on the grid
/// of `op`, non-fluid cells masked to zero on input and output. Applies
/// serialise on internal buffers, allocated once (no allocation per
/// direction after the first).
struct NetworkOnGrid<'a> {
    op: &'a GridPoisson,
    network: &'a Network,
    buffers: Mutex<(Vec<f32>, Workspace)>,
}

impl<'a> NetworkOnGrid<'a> {
    fn new(op: &'a GridPoisson, network: &'a Network) -> Result<Self> {
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
        Ok(Self {
            op,
            network,
            buffers: Mutex::new((vec![0.0; grid.cells()], Workspace::default())),
        })
    }
}

impl DirectionGenerator for NetworkOnGrid<'_> {
    fn dim(&self) -> usize {
        self.op.dim()
    }

    fn direction(&self, r: &[f64], d: &mut [f64]) -> Result<()> {
        Error::check_len("r", self.dim(), r.len())?;
        Error::check_len("d", self.dim(), d.len())?;
        let mut guard = self.buffers.lock().unwrap_or_else(|p| p.into_inner());
        let (field, workspace) = &mut *guard;
        to_field(self.op, r, field);
        let grid = Grid::new(self.op.dims());
        let out = self.network.direction(grid, field, workspace)?;
        from_field(self.op, out, d);
        Ok(())
    }
}

/// The direction of a trained network on the grid of `op`: D(r) = N(r)
/// (Lᵀ L r for the symmetric form), or with the two-level correction of
/// [`crate::krylov::TwoLevel`], D(r) = C r + (I − C A) s N((I − A C) r),
/// whose scale s absorbs the network's arbitrary one.
pub struct NetworkDirection<'a> {
    generator: Box<dyn DirectionGenerator + Send + Sync + 'a>,
}

impl<'a> NetworkDirection<'a> {
    /// D(r) = N(r) on `op`; fails when the network's dimension is not the
    /// grid's.
    pub fn new(op: &'a GridPoisson, network: &'a Network) -> Result<Self> {
        Ok(Self {
            generator: Box::new(NetworkOnGrid::new(op, network)?),
        })
    }

    /// The two-level direction with aggregates of `coarse_block`ᵈ cells
    /// (≥ 2); also fails when the coarse operator cannot be factored.
    pub fn two_level(
        op: &'a GridPoisson,
        network: &'a Network,
        coarse_block: usize,
    ) -> Result<Self> {
        let inner = NetworkOnGrid::new(op, network)?;
        let coarse = CoarseSpace::new(op, coarse_block)?;
        Ok(Self {
            generator: Box::new(TwoLevel::new(op, coarse, inner)?),
        })
    }

    /// The generator a model file asks for: two-level when its
    /// `coarse_block` is set, else plain.
    pub fn for_model(op: &'a GridPoisson, model: &'a Model) -> Result<Self> {
        match model.coarse_block {
            0 => Self::new(op, &model.network),
            block => Self::two_level(op, &model.network, block),
        }
    }
}

impl DirectionGenerator for NetworkDirection<'_> {
    fn dim(&self) -> usize {
        self.generator.dim()
    }

    fn direction(&self, r: &[f64], d: &mut [f64]) -> Result<()> {
        self.generator.direction(r, d)
    }
}
