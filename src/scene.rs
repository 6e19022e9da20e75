//! Ready-made pressure-projection problems for examples, benchmarks and
//! tests: a smoke-style box with a spherical obstacle and an air layer on
//! top, and a right-hand side from the divergence of a velocity field.
//!
//! ```
//! use adjunct::{cg, scene, KrylovOptions, LinearOperator, Multigrid, MultigridOptions};
//!
//! // A 32³ smoke box (a sphere, two layers of air on top), solved by MGPCG.
//! let problem = scene::smoke([32, 32, 32], 2)?;
//! let a = problem.operator()?;
//! assert_eq!(problem.rhs.len(), a.dim());
//! let m = Multigrid::new(&a, &MultigridOptions::default())?;
//! let mut p = vec![0.0; a.dim()];
//! let report = cg(&a, &m, &problem.rhs, &mut p, &KrylovOptions::default())?;
//! assert!(report.iterations < 20);
//! # Ok::<(), adjunct::Error>(())
//! ```

use crate::error::Result;
use crate::operator::{Cell, GridPoisson};

/// A grid pressure problem A p = b.
#[derive(Debug, Clone)]
pub struct PressureProblem {
    /// Grid size `[nx, ny, nz]` (`nz = 1` in 2D).
    pub dims: [usize; 3],
    /// Cell kinds in cell order `i + nx·(j + ny·k)`.
    pub cells: Vec<Cell>,
    /// Grid spacing h = 1/max(nx, ny, nz) (the domain's longest side is 1).
    pub spacing: f64,
    /// Right-hand side per unknown: b = −(∇·u) for a velocity field u on
    /// the cell faces, with u = 0 on faces touching solid cells.
    pub rhs: Vec<f64>,
}

impl PressureProblem {
    /// Builds the operator of this problem.
    pub fn operator(&self) -> Result<GridPoisson> {
        GridPoisson::builder(self.dims, &self.cells)
            .spacing([self.spacing; 3])
            .build()
    }
}

/// A box of `dims` cells (use `nz = 1` for 2D) with walls on every side,
/// the top `air_layers` layers (largest y in 2D, largest z in 3D) air, and a
/// solid sphere (disc in 2D) of radius 0.15 at (0.5, 0.5, 0.4) in units of
/// the longest side. The velocity field is a smooth swirl plus a rising plume
/// under the obstacle.
pub fn smoke(dims: [usize; 3], air_layers: usize) -> Result<PressureProblem> {
    let [nx, ny, nz] = dims;
    let ndim = if nz > 1 { 3 } else { 2 };
    let up = ndim - 1;
    let center = |c: usize| cell_center(dims, c);
    let extent = [nx, ny, nz];
    let cells: Vec<Cell> = (0..nx * ny * nz)
        .map(|c| {
            let x = center(c);
            let layer = [c % nx, (c / nx) % ny, c / (nx * ny)][up];
            let mut d2 = (x[0] - 0.5).powi(2) + (x[1] - if ndim == 2 { 0.4 } else { 0.5 }).powi(2);
            if ndim == 3 {
                d2 += (x[2] - 0.4).powi(2);
            }
            if layer + air_layers >= extent[up] {
                Cell::Air
            } else if d2 < 0.15f64.powi(2) {
                Cell::Solid
            } else {
                Cell::Fluid
            }
        })
        .collect();
    Ok(with_velocity_divergence(dims, cells))
}

/// A scene unlike [`smoke`], for held-out tests and benchmarks of models
/// trained on it: walls, the top `air_layers` layers air, and three solid
/// obstacles of other shapes and places, in units of the longest side as
/// in [`smoke`] — two boxes, spanning [0.15, 0.35) × [0.2, 0.45) and
/// [0.6, 0.85) × [0.5, 0.65) in x × y (× [0.2, 0.5) and [0.5, 0.8) in z in
/// 3D), and a sphere (disc) of radius 0.1 at (0.7, 0.25, 0.25); same
/// velocity field as [`smoke`].
pub fn obstacles(dims: [usize; 3], air_layers: usize) -> Result<PressureProblem> {
    let [nx, ny, nz] = dims;
    let up = if nz > 1 { 2 } else { 1 };
    let cells = (0..nx * ny * nz)
        .map(|c| {
            let x = cell_center(dims, c);
            let layer = [c % nx, (c / nx) % ny, c / (nx * ny)][up];
            let in_box =
                |lo: [f64; 3], hi: [f64; 3]| (0..=up).all(|a| x[a] >= lo[a] && x[a] < hi[a]);
            let ball = (0..=up)
                .map(|a| (x[a] - [0.7, 0.25, 0.25][a]).powi(2))
                .sum::<f64>();
            if layer + air_layers >= dims[up] {
                Cell::Air
            } else if in_box([0.15, 0.2, 0.2], [0.35, 0.45, 0.5])
                || in_box([0.6, 0.5, 0.5], [0.85, 0.65, 0.8])
                || ball < 0.1f64.powi(2)
            {
                Cell::Solid
            } else {
                Cell::Fluid
            }
        })
        .collect();
    Ok(with_velocity_divergence(dims, cells))
}

/// The centre of cell `c` (cell order `i + nx·(j + ny·k)`) in units of the
/// longest side.
fn cell_center(dims: [usize; 3], c: usize) -> [f64; 3] {
    let [nx, ny, nz] = dims;
    let h = 1.0 / nx.max(ny).max(nz) as f64;
    let ijk = [c % nx, (c / nx) % ny, c / (nx * ny)];
    ijk.map(|i| (i as f64 + 0.5) * h)
}

/// The problem on `cells` (walls around the box) with the right-hand side
/// from the smoke velocity field: a swirl plus a rising plume.
fn with_velocity_divergence(dims: [usize; 3], cells: Vec<Cell>) -> PressureProblem {
    let [nx, ny, nz] = dims;
    let ndim = if nz > 1 { 3 } else { 2 };
    let up = ndim - 1;
    let extent = dims;
    let h = 1.0 / nx.max(ny).max(nz) as f64;
    let center = |c: usize| cell_center(dims, c);
    // Face velocity normal to axis a at the face centre p.
    let velocity = |a: usize, p: [f64; 3]| -> f64 {
        let swirl = match a {
            0 => (2.0 * std::f64::consts::PI * p[1]).sin() * (std::f64::consts::PI * p[2]).cos(),
            1 => {
                -(2.0 * std::f64::consts::PI * p[0]).sin()
                    * (1.0 + 0.5 * (std::f64::consts::PI * p[2]).sin())
            }
            _ => {
                0.3 * (2.0 * std::f64::consts::PI * p[0]).cos()
                    * (2.0 * std::f64::consts::PI * p[1]).cos()
            }
        };
        let plume = if a == up
            && (p[0] - 0.5).powi(2) + if ndim == 3 { (p[1] - 0.5).powi(2) } else { 0.0 } < 0.01
            && p[up] < 0.3
        {
            1.0
        } else {
            0.0
        };
        swirl + plume
    };
    let stride = [1, nx, nx * ny];
    let is_solid = |c: Option<usize>| c.is_none_or(|c| cells[c] == Cell::Solid);
    let mut rhs = Vec::new();
    for (c, &cell) in cells.iter().enumerate() {
        if cell != Cell::Fluid {
            continue;
        }
        let ijk = [c % nx, (c / nx) % ny, c / (nx * ny)];
        let x = center(c);
        let mut div = 0.0;
        for a in 0..ndim {
            let lower = (ijk[a] > 0).then(|| c - stride[a]);
            let upper = (ijk[a] + 1 < extent[a]).then(|| c + stride[a]);
            let mut face = x;
            face[a] -= 0.5 * h;
            let u_lo = if is_solid(lower) {
                0.0
            } else {
                velocity(a, face)
            };
            face[a] += h;
            let u_hi = if is_solid(upper) {
                0.0
            } else {
                velocity(a, face)
            };
            div += (u_hi - u_lo) / h;
        }
        rhs.push(-div);
    }
    PressureProblem {
        dims,
        cells,
        spacing: h,
        rhs,
    }
}
