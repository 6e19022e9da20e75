//! A persistent pressure solver for a simulator's per-frame projection:
//! created once for a grid size, updated each frame with the new cell
//! flags (and face coefficients, spacing, scale or level set), solved with
//! a warm start from the last pressure.

use super::cg::{cg_reusing, CgVectors};
use super::multigrid::{Multigrid, MultigridOptions};
use super::options::KrylovOptions;
use crate::error::{Error, Result};
use crate::operator::{FieldValue, GridPoisson, LinearOperator};
use crate::report::SolveReport;
use std::time::Instant;

/// Multigrid-preconditioned CG on a [`GridPoisson`] operator that is
/// rebuilt every frame.
///
/// Each [`PressureSolver::update`] rebuilds the operator and the V-cycle
/// hierarchy for the frame's cells; [`PressureSolver::solve`] reads the
/// right-hand side from a per-cell field (f64 or f32), starts CG from the
/// last frame's pressure at the cells that are still fluid (0 at new
/// ones), and writes the pressure per cell (0 at solid and air cells).
/// The per-cell vectors of the solve are allocated once and reused.
#[derive(Debug)]
pub struct PressureSolver {
    dims: [usize; 3],
    multigrid_options: MultigridOptions,
    frame: Option<Frame>,
    /// The last pressure per cell (the warm start of the next solve).
    pressure: Vec<f64>,
    /// Right-hand side and solution over the unknowns (reused).
    b: Vec<f64>,
    x: Vec<f64>,
    /// CG's work vectors (reused).
    cg_vectors: CgVectors,
    setup_seconds: f64,
}

#[derive(Debug)]
struct Frame {
    grid: GridPoisson,
    multigrid: Multigrid,
}

impl PressureSolver {
    /// A solver for `nx × ny × nz` grids (`nz = 1` in 2D), with the default
    /// V-cycle; call [`PressureSolver::update`] before the first solve.
    pub fn new(dims: [usize; 3]) -> Result<Self> {
        Self::with_multigrid(dims, MultigridOptions::default())
    }

    /// As [`PressureSolver::new`] with the given V-cycle options.
    pub fn with_multigrid(dims: [usize; 3], options: MultigridOptions) -> Result<Self> {
        let num_cells = dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                Error::invalid("nz", format!("the grid {dims:?} has no cells or too many"))
            })?;
        let mut pressure = crate::alloc::with_capacity(num_cells, "pressure")?;
        pressure.resize(num_cells, 0.0);
        Ok(Self {
            dims,
            multigrid_options: options,
            frame: None,
            pressure,
            b: Vec::new(),
            x: Vec::new(),
            cg_vectors: CgVectors::default(),
            setup_seconds: 0.0,
        })
    }

    /// The grid size.
    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }

    /// Sets up the frame with its operator (the frame's cells, spacing,
    /// face coefficients, scale or level set, built with
    /// [`GridPoisson::builder`]): the V-cycle hierarchy is rebuilt for it,
    /// unless the operator is the same as the last frame's.
    pub fn update(&mut self, grid: GridPoisson) -> Result<()> {
        if grid.dims() != self.dims {
            return Err(Error::invalid(
                "cells",
                format!(
                    "the frame's grid is {:?}, the solver's {:?}",
                    grid.dims(),
                    self.dims
                ),
            ));
        }
        let start = Instant::now();
        // A frame whose operator did not change (static walls, no free
        // surface moving) keeps its hierarchy.
        match &mut self.frame {
            Some(frame) if frame.grid.same_operator(&grid) => {}
            // The hierarchy rebuilt in the last frame's memory.
            Some(frame) => {
                frame.multigrid.update(&grid)?;
                frame.grid = grid;
            }
            None => {
                let multigrid = Multigrid::new(&grid, &self.multigrid_options)?;
                self.frame = Some(Frame { grid, multigrid });
            }
        }
        self.setup_seconds = start.elapsed().as_secs_f64();
        Ok(())
    }

    /// The operator of the current frame (after an update).
    pub fn grid(&self) -> Option<&GridPoisson> {
        self.frame.as_ref().map(|f| &f.grid)
    }

    /// Wall time of the last [`PressureSolver::update`] (the V-cycle
    /// hierarchy), in seconds.
    pub fn setup_seconds(&self) -> f64 {
        self.setup_seconds
    }

    /// Solves A p = b for the frame, b gathered from `rhs` (one value per
    /// cell, e.g. −∇·u*), from the last pressure as initial guess (when
    /// `warm_start`), and writes p to `pressure` (one value per cell, 0 at
    /// solid and air cells). `rhs` must be finite at the fluid cells.
    /// `options.nonzero_initial_guess` is ignored.
    /// On failure `pressure` and the stored warm start are unchanged.
    pub fn solve<F: FieldValue>(
        &mut self,
        rhs: &[F],
        pressure: &mut [F],
        warm_start: bool,
        options: &KrylovOptions,
    ) -> Result<SolveReport> {
        let frame = self.frame.as_ref().ok_or_else(|| {
            Error::invalid("solver", "update the solver with the frame's cells first")
        })?;
        let grid = &frame.grid;
        Error::check_len("pressure", grid.num_cells(), pressure.len())?;
        let n = grid.dim();
        self.b.resize(n, 0.0);
        self.x.resize(n, 0.0);
        grid.gather(rhs, &mut self.b)?;
        // Only fluid cells are read: a simulator may keep anything elsewhere.
        if let Some((u, v)) = crate::vector::first_non_finite(&self.b) {
            return Err(Error::invalid(
                "rhs",
                format!("rhs[{}] (a fluid cell) is {v}", grid.cells_of_unknowns()[u]),
            ));
        }
        if warm_start {
            grid.gather(&self.pressure, &mut self.x)?;
        }
        let options = KrylovOptions {
            nonzero_initial_guess: warm_start,
            ..options.clone()
        };
        let report = cg_reusing(
            grid,
            &frame.multigrid,
            &self.b,
            &mut self.x,
            &options,
            &mut self.cg_vectors,
        )?;
        grid.scatter(&self.x, &mut self.pressure)?;
        grid.scatter(&self.x, pressure)?;
        Ok(report)
    }
}
