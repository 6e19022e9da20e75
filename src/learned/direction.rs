//! A trained network as the direction generator of the conjugate-direction
//! method on a grid Poisson operator.

use super::io::Model;
use super::layers::Grid;
use super::network::{Network, SplitMix, Workspace};
use super::train::{from_field, to_field};
use crate::error::{Error, Result};
use crate::krylov::{vector, CoarseSpace, DirectionGenerator, TwoLevel};
use crate::operator::{GridPoisson, LinearOperator};
use std::sync::Mutex;

/// s · N(r), or s · Lᵀ L r for a network of the symmetric form, on the grid
/// of `op`, non-fluid cells masked to zero on input and output. Applies
/// serialise on internal buffers, allocated once (no allocation per
/// direction after the first).
struct NetworkOnGrid<'a> {
    op: &'a GridPoisson,
    network: &'a Network,
    scale: f64,
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
            scale: 1.0,
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
        if self.scale != 1.0 {
            d.iter_mut().for_each(|v| *v *= self.scale);
        }
        Ok(())
    }
}

/// The direction of a trained network on the grid of `op`: D(r) = N(r)
/// (Lᵀ L r for the symmetric form), or with the two-level correction of
/// [`crate::krylov::TwoLevel`], D(r) = C r + (I − C A) s N((I − A C) r).
///
/// The network's own scale is arbitrary (the training loss eliminates it),
/// but the two-level form adds s N to the coarse correction, so s matters:
/// it is fitted once, when the generator is built, as the exact line-search
/// step s = nᵀ r / nᵀ A n for n = N(r) on a fixed pseudo-random residual
/// r = (I − A C) v (iteration counts change little for s within ×3 of it).
pub struct NetworkDirection<'a> {
    generator: Generator<'a>,
}

enum Generator<'a> {
    Network(NetworkOnGrid<'a>),
    TwoLevel(Box<TwoLevel<'a, NetworkOnGrid<'a>>>),
}

impl<'a> NetworkDirection<'a> {
    /// D(r) = N(r) on `op`; fails when the network's dimension is not the
    /// grid's.
    pub fn new(op: &'a GridPoisson, network: &'a Network) -> Result<Self> {
        Ok(Self {
            generator: Generator::Network(NetworkOnGrid::new(op, network)?),
        })
    }

    /// The two-level direction with aggregates of `coarse_block`ᵈ cells
    /// (≥ 2); also fails when the coarse operator cannot be factored.
    pub fn two_level(
        op: &'a GridPoisson,
        network: &'a Network,
        coarse_block: usize,
    ) -> Result<Self> {
        let mut inner = NetworkOnGrid::new(op, network)?;
        let coarse = CoarseSpace::new(op, coarse_block)?;
        inner.scale = fitted_scale(op, &coarse, &inner)?;
        Ok(Self {
            generator: Generator::TwoLevel(Box::new(TwoLevel::new(op, coarse, inner)?)),
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

/// s = nᵀ r / nᵀ A n for n = N(r), r = (I − A C) v, v pseudo-random (fixed
/// seed); 1 when the network's output has no positive curvature there.
fn fitted_scale(op: &GridPoisson, coarse: &CoarseSpace, net: &NetworkOnGrid) -> Result<f64> {
    let n = op.dim();
    let mut rng = SplitMix(0x5EED);
    let v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let (mut r, mut scratch, mut d) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    coarse.deflate(op, &v, &mut r, &mut scratch)?;
    net.direction(&r, &mut d)?;
    op.apply(&d, &mut scratch)?;
    let (dr, dad) = (vector::dot(&d, &r), vector::dot(&d, &scratch));
    let s = dr / dad;
    Ok(if s.is_finite() && s > 0.0 { s } else { 1.0 })
}

impl DirectionGenerator for NetworkDirection<'_> {
    fn dim(&self) -> usize {
        match &self.generator {
            Generator::Network(g) => g.dim(),
            Generator::TwoLevel(g) => g.dim(),
        }
    }

    fn direction(&self, r: &[f64], d: &mut [f64]) -> Result<()> {
        match &self.generator {
            Generator::Network(g) => g.direction(r, d),
            Generator::TwoLevel(g) => g.direction(r, d),
        }
    }
}
