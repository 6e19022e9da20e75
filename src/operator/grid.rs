//! The pressure-projection Poisson operator of a fluid simulator on a
//! regular 2D or 3D grid, applied matrix-free.
//!
//! Cells are numbered `c = i + nx·(j + ny·k)` (x fastest: the memory order
//! of a C array `[nz][ny][nx]` or a Julia array `(nx, ny, nz)`). Every fluid
//! cell is one unknown; unknowns are numbered in cell order. For a fluid
//! cell i,
//!
//! (A p)_i = Σ_{faces f of i} β_f / h_a² · (p_i − p_nb(f)),
//!
//! where the neighbour across face f (normal to axis a) contributes
//! - p_nb = its pressure when it is fluid,
//! - p_nb = 0 when it is air (Dirichlet, free surface),
//! - nothing (the face is dropped) when it is solid or outside the grid
//!   (Neumann wall).
//!
//! A = −∇·(β∇) is symmetric; it is positive definite when every connected
//! fluid region touches air, and singular (constants on the region) for a
//! region enclosed by walls. β_f defaults to 1 (e.g. 1/ρ on the face for
//! variable density), h_a to 1.

use super::codes::{AIR, SOLID};
use super::runs::RunPlan;
use super::{CsrMatrix, LinearOperator};
use crate::alloc;
use crate::error::{Error, Result};
use crate::parallel::{for_blocks, sum_blocks, DisjointSlice};
use crate::scalar::{FieldValue, Real};
use std::ops::Range;

/// The kind of a grid cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Cell {
    /// An unknown pressure.
    Fluid = 0,
    /// A wall: no flow through its faces (homogeneous Neumann).
    Solid = 1,
    /// Free surface: pressure fixed to 0 (homogeneous Dirichlet).
    Air = 2,
}

impl Cell {
    /// The cell kind of a C flag value (`ADJ_CELL_*`).
    pub fn from_code(code: u8) -> Option<Cell> {
        match code {
            0 => Some(Cell::Fluid),
            1 => Some(Cell::Solid),
            2 => Some(Cell::Air),
            _ => None,
        }
    }
}

/// Cells (fluid plus all) per block of the parallel apply.
const BLOCK_WORK: usize = 16 * 1024;

/// Options of a [`GridPoisson`] operator; see [`GridPoisson::builder`].
#[derive(Debug, Clone)]
pub struct GridPoissonBuilder<'a> {
    dims: [usize; 3],
    cells: &'a [Cell],
    spacing: [f64; 3],
    face_coefficients: Option<&'a [f64]>,
    scale: f64,
    air_level_set: Option<(&'a [f64], f64)>,
    /// The number of axes when the grid is a box of a larger one (a box one
    /// layer thick of a 3D grid has 3), for [`GridPoissonBuilder::build_box`].
    axes: Option<usize>,
}

impl<'a> GridPoissonBuilder<'a> {
    /// Grid spacing h_a per axis (only the first `ndim` are used); default 1.
    pub fn spacing(mut self, spacing: [f64; 3]) -> Self {
        self.spacing = spacing;
        self
    }

    /// Per-face coefficients β ≥ 0, axis-major: entry `a·ncells + c` is the
    /// face between cell c and its +a neighbour (entries of the last layer
    /// along a are not used). Length `ndim·ncells`; default all 1.
    pub fn face_coefficients(mut self, beta: &'a [f64]) -> Self {
        self.face_coefficients = Some(beta);
        self
    }

    /// A scalar factor s > 0 on the whole operator, A = s·(−∇·β∇): e.g.
    /// dt/ρ, so that b is the divergence itself and `atol` is in its units.
    /// Default 1.
    pub fn scale(mut self, scale: f64) -> Self {
        self.scale = scale;
        self
    }

    /// Ghost-fluid free surfaces (Gibou et al. 2002): `phi` is a level set
    /// of the liquid, one value per cell (< 0 inside the liquid, ≥ 0 in the
    /// air), in any unit of length. Each face between a fluid cell i and an
    /// air cell a then puts the Dirichlet condition p = 0 on the interface
    /// at the fraction θ = φ_i / (φ_i − φ_a) of the way from i to a, by
    /// weighting the face β/(θ h²) instead of β/h²; θ is clamped to
    /// [`min_fraction`, 1] (usually 0.01), and is 1 where φ does not change
    /// sign across the face. The face coefficients the operator reports
    /// (and multigrid coarsens) then include the 1/θ factors.
    pub fn air_level_set(mut self, phi: &'a [f64], min_fraction: f64) -> Self {
        self.air_level_set = Some((phi, min_fraction));
        self
    }

    /// Validates the grid and builds the operator.
    pub fn build(self) -> Result<GridPoisson> {
        GridPoisson::new(self)
    }

    /// Builds the operator of a box of a grid with `axes` axes (a box one
    /// layer thick of a 3D grid has 3, and its face coefficients 3 per
    /// cell), for products only: the regions of its null space, which are
    /// the whole grid's, are not looked for.
    pub(crate) fn build_box(mut self, axes: usize) -> Result<GridPoisson> {
        self.axes = Some(axes);
        GridPoisson::new(self)
    }

    /// Checks the grid size, cells, scale, spacing and face coefficients;
    /// returns the number of cells and s/h_a² per axis.
    fn validated(&self) -> Result<(usize, [f64; 3])> {
        let dims = self.dims;
        for (a, name) in ["nx", "ny", "nz"].iter().enumerate() {
            if dims[a] == 0 {
                return Err(Error::invalid(name, "grid dimensions must be at least 1"));
            }
        }
        let num_cells = dims[0]
            .checked_mul(dims[1])
            .and_then(|v| v.checked_mul(dims[2]))
            .filter(|&v| v < AIR as usize)
            .ok_or_else(|| {
                Error::invalid(
                    "nz",
                    format!("the grid {dims:?} has more than 2^32-2 cells"),
                )
            })?;
        Error::check_len("cells", num_cells, self.cells.len())?;
        let ndim = self.axes.unwrap_or(ndim_of(dims));
        let scale = self.scale;
        if !(scale.is_finite() && scale > 0.0) {
            return Err(Error::invalid(
                "scale",
                format!("scale = {scale} must be finite and > 0"),
            ));
        }
        let mut inv_h2 = [0.0; 3];
        for (a, (&h, w)) in self.spacing.iter().zip(&mut inv_h2).take(ndim).enumerate() {
            if !(h.is_finite() && h > 0.0) {
                return Err(Error::invalid(
                    "spacing",
                    format!("spacing[{a}] = {h} must be finite and > 0"),
                ));
            }
            *w = scale / (h * h);
            if !w.is_finite() {
                return Err(Error::invalid(
                    "spacing",
                    format!("spacing[{a}] = {h:e} is so small that scale/h² overflows"),
                ));
            }
        }
        if let Some(beta) = self.face_coefficients {
            Error::check_len("face_coefficients", ndim * num_cells, beta.len())?;
            if let Some((k, v)) = beta
                .iter()
                .enumerate()
                .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
            {
                return Err(Error::invalid(
                    "face_coefficients",
                    format!("face_coefficients[{k}] = {v} must be finite and >= 0"),
                ));
            }
        }
        Ok((num_cells, inv_h2))
    }

    /// Every stencil entry, and a diagonal Σ β/h² over 2·ndim faces, must
    /// be finite, so that the matrix and its exports are.
    fn check_face_weights(&self, beta: Option<&[f64]>, inv_h2: [f64; 3]) -> Result<()> {
        let ndim = self.axes.unwrap_or(ndim_of(self.dims));
        let max_beta = beta.map_or(1.0, |beta| beta.iter().fold(0.0, |m: f64, &v| m.max(v)));
        let max_inv_h2 = inv_h2.iter().fold(0.0, |m: f64, &v| m.max(v));
        if (2.0 * ndim as f64 * max_beta * max_inv_h2).is_finite() {
            return Ok(());
        }
        let argument = if self.face_coefficients.is_some() {
            "face_coefficients"
        } else {
            "spacing"
        };
        Err(Error::invalid(
            argument,
            format!(
                "the largest face weight β/h² = {max_beta:e} × {max_inv_h2:e} overflows a diagonal entry of A (at most {} such faces per cell)",
                2 * ndim
            ),
        ))
    }
}

/// Fluid regions enclosed by walls (no air): A is singular on each, with the
/// constant vector on the region as null vector.
#[derive(Debug, Clone)]
struct FloatingRegions {
    /// Region of each unknown, `u32::MAX` when its region touches air.
    region: Vec<u32>,
    /// Number of unknowns and first unknown of each floating region.
    size: Vec<usize>,
    first: Vec<usize>,
}

impl FloatingRegions {
    /// Σ of v over each region.
    fn sums(&self, v: &[f64]) -> Vec<f64> {
        let mut sums = vec![0.0; self.size.len()];
        for (&r, &vu) in self.region.iter().zip(v) {
            if r != u32::MAX {
                sums[r as usize] += vu;
            }
        }
        sums
    }

    /// ‖Σ_k (s_k/|k|) 1_k‖₂ for the region sums s_k: the norm of the
    /// null-space component.
    fn component_norm(&self, sums: &[f64]) -> f64 {
        sums.iter()
            .zip(&self.size)
            .map(|(s, &m)| s * s / m as f64)
            .sum::<f64>()
            .sqrt()
    }
}

/// The grid Poisson operator; see the module documentation for the stencil.
#[derive(Debug, Clone)]
pub struct GridPoisson {
    dims: [usize; 3],
    /// s/h_a² per axis (0 on the unused z axis of a 2D grid).
    inv_h2: [f64; 3],
    /// The scalar factor s.
    scale: f64,
    /// Per cell: its unknown index when fluid, else `AIR` or `SOLID`.
    unknown: Vec<u32>,
    /// Cell index of each unknown.
    cell_of_unknown: Vec<u32>,
    face_coefficients: Option<Vec<f64>>,
    /// First unknown of each grid row (j, k), and the total at the end.
    row_start: Vec<usize>,
    /// The parallel apply's blocks of grid rows, over all rows.
    blocks: Vec<Range<usize>>,
    /// The runs of the stencil kernel, when every face between two fluid
    /// cells has β = 1 (no face coefficients, or a ghost-fluid surface
    /// alone).
    runs: Option<RunPlan>,
    /// With `runs` and face coefficients: what the runs' uniform faces to
    /// air leave out.
    air_corrections: AirCorrections,
    floating: Option<FloatingRegions>,
}

/// The coordinates (i, j, k) of cell c = i + nx·(j + ny·k) of a grid of
/// `dims`.
pub(crate) fn cell_coords(c: usize, dims: [usize; 3]) -> [usize; 3] {
    let [nx, ny, _] = dims;
    [c % nx, (c / nx) % ny, c / (nx * ny)]
}

/// The `finish` of [`GridPoisson::apply_then`] that turns the values of A x
/// into those of b − A x.
pub(crate) fn into_residual<T: Real>(b: &[T]) -> impl Fn(usize, &mut [T]) + Sync + '_ {
    move |first, y| {
        for (yi, &bi) in y.iter_mut().zip(&b[first..]) {
            *yi = bi - *yi;
        }
    }
}

/// Face weights β_f / h_a² as seen by the stencil kernel.
trait FaceWeight {
    fn weight(&self, axis: usize, lower_cell: usize) -> f64;
}

struct UniformWeight([f64; 3]);

impl FaceWeight for UniformWeight {
    #[inline(always)]
    fn weight(&self, axis: usize, _: usize) -> f64 {
        self.0[axis]
    }
}

struct PerFaceWeight<'a> {
    inv_h2: [f64; 3],
    beta: &'a [f64],
    num_cells: usize,
}

impl FaceWeight for PerFaceWeight<'_> {
    #[inline(always)]
    fn weight(&self, axis: usize, lower_cell: usize) -> f64 {
        self.inv_h2[axis] * self.beta[axis * self.num_cells + lower_cell]
    }
}

impl GridPoisson {
    /// Starts building the operator for an `nx×ny×nz` grid (`nz = 1` for
    /// 2D) with one [`Cell`] per cell, in cell order.
    pub fn builder(dims: [usize; 3], cells: &[Cell]) -> GridPoissonBuilder<'_> {
        GridPoissonBuilder {
            dims,
            cells,
            spacing: [1.0; 3],
            face_coefficients: None,
            scale: 1.0,
            air_level_set: None,
            axes: None,
        }
    }

    fn new(options: GridPoissonBuilder<'_>) -> Result<Self> {
        let dims = options.dims;
        let (num_cells, inv_h2) = options.validated()?;
        let scale = options.scale;
        let face_coefficients = match options.face_coefficients {
            None => None,
            Some(beta) => Some(alloc::copied(beta, "face coefficients")?),
        };
        let face_coefficients = match options.air_level_set {
            None => face_coefficients,
            Some((phi, min_fraction)) => Some(ghost_fluid_coefficients(
                dims,
                options.cells,
                face_coefficients,
                phi,
                min_fraction,
            )?),
        };
        options.check_face_weights(face_coefficients.as_deref(), inv_h2)?;

        let mut unknown = alloc::with_capacity(num_cells, "cell indices")?;
        let num_fluid = options.cells.iter().filter(|&&c| c == Cell::Fluid).count();
        let mut cell_of_unknown = alloc::with_capacity(num_fluid, "unknown indices")?;
        for (c, cell) in options.cells.iter().enumerate() {
            unknown.push(match cell {
                Cell::Fluid => {
                    cell_of_unknown.push(c as u32);
                    (cell_of_unknown.len() - 1) as u32
                }
                Cell::Solid => SOLID,
                Cell::Air => AIR,
            });
        }
        // No fluid cell (a drained or not yet filled scene) is valid: the
        // system has no unknowns and every solve is the empty one.

        let num_rows = dims[1] * dims[2];
        let mut row_start = alloc::with_capacity(num_rows + 1, "row starts")?;
        let mut count = 0;
        for r in 0..num_rows {
            row_start.push(count);
            let row = &unknown[r * dims[0]..(r + 1) * dims[0]];
            count += row.iter().filter(|&&u| u < AIR).count();
        }
        row_start.push(count);

        let mut blocks = Vec::new();
        let mut start = 0;
        for r in 0..num_rows {
            let work = (r + 1 - start) * dims[0] + row_start[r + 1] - row_start[start];
            if work >= BLOCK_WORK {
                blocks.push(start..r + 1);
                start = r + 1;
            }
        }
        if start < num_rows {
            blocks.push(start..num_rows);
        }

        // The run plan needs β = 1 between fluid cells: true of a
        // ghost-fluid surface alone, whose 1/θ factors sit on faces to air.
        let uniform_fluid_faces = face_coefficients.as_deref().is_none_or(|beta| {
            fluid_face_range(dims, &unknown, beta).is_none_or(|range| range == (1.0, 1.0))
        });
        let runs = match uniform_fluid_faces {
            true => Some(RunPlan::new(dims, &unknown)?),
            false => None,
        };
        let air_corrections = match (&runs, &face_coefficients) {
            (Some(_), Some(beta)) => AirCorrections::new(dims, inv_h2, &unknown, beta)?,
            _ => AirCorrections::default(),
        };
        let mut grid = Self {
            dims,
            inv_h2,
            scale,
            unknown,
            cell_of_unknown,
            face_coefficients,
            row_start,
            blocks,
            runs,
            air_corrections,
            floating: None,
        };
        if options.axes.is_none() {
            grid.floating = grid.find_floating_regions();
        }
        Ok(grid)
    }

    /// The operator of a box from [`GridPoissonBuilder::build_box`] that
    /// is the whole grid, with the regions of its null space found.
    pub(crate) fn into_whole_grid(mut self) -> Self {
        self.floating = self.find_floating_regions();
        self
    }

    /// Grid size `[nx, ny, nz]`.
    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }

    /// The number of axes: 2 when nz = 1, else 3.
    pub fn ndim(&self) -> usize {
        ndim_of(self.dims)
    }

    /// Number of cells nx·ny·nz.
    pub fn num_cells(&self) -> usize {
        self.unknown.len()
    }

    /// The kind of cell `c`.
    pub fn cell(&self, c: usize) -> Cell {
        match self.unknown[c] {
            SOLID => Cell::Solid,
            AIR => Cell::Air,
            _ => Cell::Fluid,
        }
    }

    /// The grid spacing per axis (1 on the unused z axis of a 2D grid).
    pub fn spacing(&self) -> [f64; 3] {
        self.inv_h2.map(|w| {
            if w > 0.0 {
                (self.scale / w).sqrt()
            } else {
                1.0
            }
        })
    }

    /// The scalar factor s of A = s·(−∇·β∇).
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// `true` when `other` is the same operator: the same grid, cells,
    /// spacing, scale and face coefficients (one pass over the cells).
    pub fn same_operator(&self, other: &GridPoisson) -> bool {
        self.dims == other.dims
            && self.inv_h2 == other.inv_h2
            && self.scale == other.scale
            && self.unknown == other.unknown
            && self.face_coefficients == other.face_coefficients
    }

    /// The weight s·β/h_a² of the face between cell `lower` and its +a
    /// neighbour (β = 1 without face coefficients).
    pub(crate) fn face_weight(&self, axis: usize, lower: usize) -> f64 {
        match &self.face_coefficients {
            None => UniformWeight(self.inv_h2).weight(axis, lower),
            Some(beta) => self.per_face(beta).weight(axis, lower),
        }
    }

    /// The per-face coefficients β given at construction, if any.
    pub fn face_coefficients(&self) -> Option<&[f64]> {
        self.face_coefficients.as_deref()
    }

    /// The unknown index of cell `c`, or `None` when it is not fluid.
    pub fn unknown_of_cell(&self, c: usize) -> Option<usize> {
        let u = self.unknown[c];
        (u < AIR).then_some(u as usize)
    }

    /// The smallest and largest face coefficient over the faces between two
    /// fluid cells; `None` without face coefficients or such faces.
    pub(crate) fn fluid_face_coefficient_range(&self) -> Option<(f64, f64)> {
        let beta = self.face_coefficients.as_deref()?;
        fluid_face_range(self.dims, &self.unknown, beta)
    }

    /// The cell of each unknown, in unknown order.
    pub(crate) fn cells_of_unknowns(&self) -> &[u32] {
        &self.cell_of_unknown
    }

    /// Per cell: its unknown index when fluid, else [`AIR`] or [`SOLID`].
    pub(crate) fn unknown_codes(&self) -> &[u32] {
        &self.unknown
    }

    /// The unknowns of grid rows `rows` (a row: fixed j, k; rows numbered
    /// j + ny·k), a contiguous range since unknowns are in cell order.
    pub(crate) fn unknowns_of_rows(&self, rows: Range<usize>) -> Range<usize> {
        self.row_start[rows.start]..self.row_start[rows.end]
    }

    /// y ← A x, then `finish(first, y_row)` on the values of each grid row
    /// (its unknowns first..first + y_row.len()) while they are in cache:
    /// the fused form of a kernel that post-processes A x (a residual, a
    /// Jacobi update). Lengths as for [`LinearOperator::apply`].
    pub(crate) fn apply_then<T: Real, F>(&self, x: &[T], y: &mut [T], finish: &F) -> Result<()>
    where
        F: Fn(usize, &mut [T]) + Sync,
    {
        self.apply_then_on(&self.blocks, x, y, finish)
    }

    /// The grid rows (j + ny·k) of the cells `own` (per axis a range of
    /// this grid's coordinates), in blocks for [`GridPoisson::apply_then_on`]:
    /// a rank's own rows of its grid with the ghost layer.
    pub(crate) fn rows_within(&self, own: &[Range<usize>; 3]) -> Vec<Range<usize>> {
        let ny = self.dims[1];
        let mut pieces: Vec<Range<usize>> = Vec::new();
        for block in &self.blocks {
            for r in block.clone() {
                if !(own[1].contains(&(r % ny)) && own[2].contains(&(r / ny))) {
                    continue;
                }
                match pieces.last_mut() {
                    Some(last) if last.end == r && last.start >= block.start => last.end = r + 1,
                    _ => pieces.push(r..r + 1),
                }
            }
        }
        pieces
    }

    /// [`GridPoisson::apply_then`] on the grid rows `rows` only (blocks of
    /// [`GridPoisson::rows_within`]); the other entries of y are left as
    /// they are.
    pub(crate) fn apply_then_on<T: Real, F>(
        &self,
        rows: &[Range<usize>],
        x: &[T],
        y: &mut [T],
        finish: &F,
    ) -> Result<()>
    where
        F: Fn(usize, &mut [T]) + Sync,
    {
        self.apply_checked::<false, T, F>(rows, x, y, finish)
            .map(|_| ())
    }

    /// The blocks of grid rows `blocks` of y ← A x (y over all unknowns),
    /// with `finish` as for [`GridPoisson::apply_then`]; returns xᵀ(A x)
    /// over those rows when `DOT` (else 0, and no reduction is computed).
    fn apply_checked<const DOT: bool, T: Real, F>(
        &self,
        blocks: &[Range<usize>],
        x: &[T],
        y: &mut [T],
        finish: &F,
    ) -> Result<f64>
    where
        F: Fn(usize, &mut [T]) + Sync,
    {
        Error::check_len("x", self.dim(), x.len())?;
        Error::check_len("y", self.dim(), y.len())?;
        Ok(match &self.face_coefficients {
            None => {
                self.apply_all::<DOT, _, _, _>(&UniformWeight(self.inv_h2), blocks, x, y, finish)
            }
            Some(beta) => {
                self.apply_all::<DOT, _, _, _>(&self.per_face(beta), blocks, x, y, finish)
            }
        })
    }

    /// The face weights s·β/h² of coefficients `beta`.
    fn per_face<'a>(&self, beta: &'a [f64]) -> PerFaceWeight<'a> {
        PerFaceWeight {
            inv_h2: self.inv_h2,
            beta,
            num_cells: self.num_cells(),
        }
    }

    /// out ← (b − A x) on the unknowns of grid row `r` (j + ny·k), serially
    /// (for a caller that consumes the residual row by row).
    pub(crate) fn residual_row<T: Real>(&self, r: usize, b: &[T], x: &[T], out: &mut [T]) {
        let finish = into_residual(b);
        match &self.face_coefficients {
            None => self.apply_rows::<false, _, _, _>(
                &UniformWeight(self.inv_h2),
                r..r + 1,
                x,
                out,
                &finish,
            ),
            Some(beta) => {
                self.apply_rows::<false, _, _, _>(&self.per_face(beta), r..r + 1, x, out, &finish)
            }
        };
    }

    /// `true` when some fluid region is enclosed by walls, so A is singular.
    pub fn is_singular(&self) -> bool {
        self.floating.is_some()
    }

    /// The index (0..[`GridPoisson::num_enclosed_regions`]) of the fluid
    /// region enclosed by walls that unknown `u` lies in; None when its
    /// region touches air.
    pub(crate) fn enclosed_region(&self, u: usize) -> Option<usize> {
        let region = self.floating.as_ref()?.region[u];
        (region != u32::MAX).then_some(region as usize)
    }

    /// The number of fluid regions enclosed by walls.
    pub(crate) fn num_enclosed_regions(&self) -> usize {
        self.floating.as_ref().map_or(0, |f| f.size.len())
    }

    /// Gathers the fluid cells of a per-cell field (f64, or the f32 of a
    /// simulator's arrays) into a vector of unknowns.
    pub fn gather<F: FieldValue>(&self, field: &[F], unknowns: &mut [f64]) -> Result<()> {
        Error::check_len("field", self.num_cells(), field.len())?;
        Error::check_len("unknowns", self.dim(), unknowns.len())?;
        let n = unknowns.len();
        let out = DisjointSlice::new(unknowns);
        for_blocks(n.div_ceil(BLOCK_WORK), 2 * n, |b| {
            let range = b * BLOCK_WORK..((b + 1) * BLOCK_WORK).min(n);
            // SAFETY: blocks are disjoint.
            let unknowns = unsafe { out.range(range.clone()) };
            for (u, &c) in unknowns.iter_mut().zip(&self.cell_of_unknown[range]) {
                *u = field[c as usize].to_f64();
            }
        });
        Ok(())
    }

    /// Scatters unknowns into a per-cell field; non-fluid cells are set to 0.
    pub fn scatter<F: FieldValue>(&self, unknowns: &[f64], field: &mut [F]) -> Result<()> {
        Error::check_len("unknowns", self.dim(), unknowns.len())?;
        Error::check_len("field", self.num_cells(), field.len())?;
        let n = field.len();
        let out = DisjointSlice::new(field);
        for_blocks(n.div_ceil(BLOCK_WORK), 2 * n, |b| {
            let range = b * BLOCK_WORK..((b + 1) * BLOCK_WORK).min(n);
            // SAFETY: blocks are disjoint.
            let field = unsafe { out.range(range.clone()) };
            for (value, &code) in field.iter_mut().zip(&self.unknown[range]) {
                *value = F::from_f64(if code < AIR {
                    unknowns[code as usize]
                } else {
                    0.0
                });
            }
        });
        Ok(())
    }

    fn coords(&self, c: usize) -> [usize; 3] {
        cell_coords(c, self.dims)
    }

    /// Calls `f(neighbour_cell, weight)` for each in-grid neighbour of cell
    /// `c` at `ijk`, in increasing cell order, with the `lower` flag telling
    /// whether the neighbour precedes `c`.
    #[inline(always)]
    fn for_each_neighbour<W: FaceWeight>(
        &self,
        w: &W,
        c: usize,
        ijk: [usize; 3],
        mut f: impl FnMut(usize, f64, bool),
    ) {
        let [nx, ny, nz] = self.dims;
        let stride = [1, nx, nx * ny];
        let size = [nx, ny, nz];
        for a in (0..3).rev() {
            if ijk[a] > 0 {
                let nb = c - stride[a];
                f(nb, w.weight(a, nb), true);
            }
        }
        for a in 0..3 {
            if ijk[a] + 1 < size[a] {
                f(c + stride[a], w.weight(a, c), false);
            }
        }
    }

    /// One block of rows of y = A p; returns pᵀy over the block.
    fn apply_rows<const DOT: bool, W: FaceWeight, T: Real, F: Fn(usize, &mut [T])>(
        &self,
        w: &W,
        rows: Range<usize>,
        p: &[T],
        y: &mut [T],
        finish: &F,
    ) -> f64 {
        let offset = self.row_start[rows.start];
        let mut dot = 0.0;
        for r in rows {
            let out = &mut y[self.row_start[r] - offset..self.row_start[r + 1] - offset];
            dot += match &self.runs {
                Some(plan) => self.apply_run_row::<DOT, T>(plan, r, p, out),
                None => self.apply_general_row::<DOT, W, T>(w, r, p, out),
            };
            finish(self.row_start[r], out);
        }
        dot
    }

    /// Row r of y = A p, cell by cell; returns pᵀy over the row when `DOT`.
    fn apply_general_row<const DOT: bool, W: FaceWeight, T: Real>(
        &self,
        w: &W,
        r: usize,
        p: &[T],
        y: &mut [T],
    ) -> f64 {
        let [nx, ny, _] = self.dims;
        let (j, k) = (r % ny, r / ny);
        let mut dot = 0.0;
        let mut out = 0;
        for i in 0..nx {
            let c = r * nx + i;
            let u = self.unknown[c];
            if u >= AIR {
                continue;
            }
            let mut diag = T::default();
            let mut off = T::default();
            self.for_each_neighbour(w, c, [i, j, k], |nb, wf, _| {
                let v = self.unknown[nb];
                if v != SOLID {
                    let wf = T::from_f64(wf);
                    diag += wf;
                    if v != AIR {
                        off += wf * p[v as usize];
                    }
                }
            });
            let pu = p[u as usize];
            let yu = diag * pu - off;
            y[out] = yu;
            out += 1;
            if DOT {
                dot += (pu * yu).to_f64();
            }
        }
        dot
    }

    /// Row r of y = A p run by run (β = 1 between fluid cells, with the
    /// air-face corrections); returns pᵀy over the row when `DOT`.
    fn apply_run_row<const DOT: bool, T: Real>(
        &self,
        plan: &RunPlan,
        r: usize,
        p: &[T],
        y: &mut [T],
    ) -> f64 {
        let start = self.row_start[r];
        let w = self.inv_h2.map(T::from_f64);
        for run in plan.row(r) {
            let at = run.first as usize - start;
            plan.apply_run(run, w, p, &mut y[at..at + run.len as usize]);
        }
        for &(u, extra) in self.air_corrections.of_row(r) {
            let u = u as usize;
            y[u - start] += T::from_f64(extra) * p[u];
        }
        if !DOT {
            return 0.0;
        }
        let pr = &p[start..start + y.len()];
        y.iter().zip(pr).map(|(&a, &b)| (a * b).to_f64()).sum()
    }

    /// The blocks of grid rows `blocks` of y = A p block by block,
    /// `finish` run on each row of y (see [`GridPoisson::apply_then`]);
    /// returns pᵀ(A p) over those rows.
    fn apply_all<const DOT: bool, W: FaceWeight + Sync, T: Real, F: Fn(usize, &mut [T]) + Sync>(
        &self,
        w: &W,
        blocks: &[Range<usize>],
        p: &[T],
        y: &mut [T],
        finish: &F,
    ) -> f64 {
        let y = DisjointSlice::new(y);
        let work = self.dim() * (2 + self.num_cells() / self.dim().max(1));
        sum_blocks(blocks.len(), work, |b| {
            let rows = blocks[b].clone();
            // SAFETY: disjoint blocks of rows own disjoint ranges of y.
            let y = unsafe { y.range(self.unknowns_of_rows(rows.clone())) };
            self.apply_rows::<DOT, _, _, _>(w, rows, p, y, finish)
        })
    }

    /// Row u of A: its nonzeros in increasing column order, and whether
    /// the cell has an air neighbour across a face with β > 0.
    fn row(&self, u: usize) -> StencilRow {
        let c = self.cell_of_unknown[u] as usize;
        let mut row = StencilRow::default();
        let mut diag = 0.0;
        let mut diag_slot = None;
        self.for_each_neighbour(self, c, self.coords(c), |nb, wf, lower| {
            let v = self.unknown[nb];
            if v == SOLID || wf == 0.0 {
                return;
            }
            diag += wf;
            if !lower && diag_slot.is_none() {
                diag_slot = Some(row.push(u, 0.0));
            }
            if v == AIR {
                row.touches_air = true;
            } else {
                row.push(v as usize, -wf);
            }
        });
        let slot = diag_slot.unwrap_or_else(|| row.push(u, 0.0));
        row.entries[slot].1 = diag;
        row
    }

    /// The matrix of this operator in CSR form (for IC(0), direct solvers
    /// and tests). Faces with β = 0 are not stored. Fails when the matrix
    /// has more nonzeros than the CSR type's 2³²−1 (grids of more than
    /// about 600 million fluid cells) or the memory cannot be allocated.
    pub fn to_csr(&self) -> Result<CsrMatrix> {
        let n = self.dim();
        let nnz: usize = (0..n).map(|u| self.row(u).entries().len()).sum();
        if nnz > u32::MAX as usize {
            return Err(Error::invalid(
                "op",
                format!(
                    "the CSR form of this grid has {nnz} nonzeros, more than the supported 2^32-1"
                ),
            ));
        }
        let mut row_ptr = alloc::with_capacity(n + 1, "row pointers")?;
        let mut cols = alloc::with_capacity(nnz, "column indices")?;
        let mut vals = alloc::with_capacity(nnz, "values")?;
        row_ptr.push(0);
        for u in 0..n {
            for &(col, v) in self.row(u).entries() {
                cols.push(col as u32);
                vals.push(v);
            }
            row_ptr.push(cols.len() as u32);
        }
        // Valid by construction: fewer than 2^32 - 2 cells, at most 7 sorted
        // entries per row, and the construction bounded every weight so that
        // a diagonal Σ β/h² is finite.
        Ok(CsrMatrix::from_valid_parts(n, row_ptr, cols, vals))
    }

    /// Finds the connected fluid regions (cells coupled through faces with
    /// β > 0) that touch no air cell.
    ///
    /// Union-find over segments (runs of fluid cells along x coupled
    /// through their x faces), linked across y and z faces: one union per
    /// pair of touching segments rather than per face.
    fn find_floating_regions(&self) -> Option<FloatingRegions> {
        let n = self.dim();
        let [nx, ny, _] = self.dims;
        let stride = [1, nx, nx * ny];
        let mut segment = vec![0u32; n];
        let mut parent: Vec<u32> = Vec::new();
        let mut touches_air: Vec<bool> = Vec::new();
        let union = |parent: &mut Vec<u32>, a: u32, b: u32| {
            let (a, b) = (find_root(parent, a as usize), find_root(parent, b as usize));
            parent[a.max(b)] = a.min(b) as u32;
        };
        // With uniform weights each run is one segment.
        if let Some(plan) = &self.runs {
            for run in plan.all() {
                let s = parent.len() as u32;
                parent.push(s);
                let facings = plan.facings(run);
                let air = facings.iter().any(|f| f.across == AIR);
                touches_air.push(run.air_before || run.air_after || air);
                let first = run.first as usize;
                segment[first..first + run.len as usize].fill(s);
                for f in facings {
                    if f.side.is_lower() && f.across != AIR {
                        union(&mut parent, s, segment[f.across as usize]);
                    }
                }
            }
        } else {
            for r in 0..self.row_start.len() - 1 {
                let (j, k) = (r % ny, r / ny);
                // The last pair of segments linked across y and across z.
                let mut linked = [(u32::MAX, u32::MAX); 2];
                for i in 0..nx {
                    let c = r * nx + i;
                    let u = self.unknown[c];
                    if u >= AIR {
                        continue;
                    }
                    let u = u as usize;
                    let s = if i > 0 && self.unknown[c - 1] < AIR && self.weight(0, c - 1) > 0.0 {
                        segment[u - 1]
                    } else {
                        parent.push(parent.len() as u32);
                        touches_air.push(false);
                        (parent.len() - 1) as u32
                    };
                    segment[u] = s;
                    for (axis, present) in [(1, j > 0), (2, k > 0)] {
                        let nb = c.wrapping_sub(stride[axis]);
                        if !present || self.unknown[nb] >= AIR || self.weight(axis, nb) == 0.0 {
                            continue;
                        }
                        let pair = (s, segment[self.unknown[nb] as usize]);
                        if linked[axis - 1] != pair {
                            linked[axis - 1] = pair;
                            union(&mut parent, pair.0, pair.1);
                        }
                    }
                    self.for_each_neighbour(self, c, [i, j, k], |nb, wf, _| {
                        if wf > 0.0 && self.unknown[nb] == AIR {
                            touches_air[s as usize] = true;
                        }
                    });
                }
            }
        }
        let num_segments = parent.len();
        let mut root_touches_air = vec![false; num_segments];
        for (s, &air) in touches_air.iter().enumerate() {
            if air {
                let r = find_root(&mut parent, s);
                root_touches_air[r] = true;
            }
        }
        let mut region_of_segment = vec![u32::MAX; num_segments];
        let (mut size, mut first) = (Vec::new(), Vec::new());
        for s in 0..num_segments {
            let r = find_root(&mut parent, s);
            if root_touches_air[r] {
                continue;
            }
            if region_of_segment[r] == u32::MAX {
                region_of_segment[r] = size.len() as u32;
                size.push(0);
                first.push(usize::MAX);
            }
            region_of_segment[s] = region_of_segment[r];
        }
        if size.is_empty() {
            return None;
        }
        let region: Vec<u32> = segment
            .iter()
            .enumerate()
            .map(|(u, &s)| {
                let region = region_of_segment[s as usize];
                if region != u32::MAX {
                    let m = region as usize;
                    size[m] += 1;
                    first[m] = first[m].min(u);
                }
                region
            })
            .collect();
        Some(FloatingRegions {
            region,
            size,
            first,
        })
    }
}

/// The smallest and largest β in `beta` over the faces between two fluid
/// cells of the grid (cells coded by `unknown`), if it has such faces.
fn fluid_face_range(dims: [usize; 3], unknown: &[u32], beta: &[f64]) -> Option<(f64, f64)> {
    let n = unknown.len();
    let strides = [1, dims[0], dims[0] * dims[1]];
    let mut range: Option<(f64, f64)> = None;
    for a in 0..ndim_of(dims) {
        for c in 0..n {
            let inside = (c / strides[a]) % dims[a] + 1 < dims[a];
            if inside && unknown[c] < AIR && unknown[c + strides[a]] < AIR {
                let b = beta[a * n + c];
                range = Some(range.map_or((b, b), |(low, high)| (low.min(b), high.max(b))));
            }
        }
    }
    range
}

/// The part of a grid operator with β = 1 between fluid cells that the
/// run plan's uniform faces to air leave out: per fluid cell whose faces to
/// air have β ≠ 1, Σ over those faces of w_a(β − 1) with w_a = s/h_a².
#[derive(Debug, Clone, Default)]
struct AirCorrections {
    /// (unknown, correction), in unknown order.
    entries: Vec<(u32, f64)>,
    /// Those of grid row r are `entries[row_start[r]..row_start[r + 1]]`
    /// (empty without corrections).
    row_start: Vec<usize>,
}

impl AirCorrections {
    fn new(dims: [usize; 3], inv_h2: [f64; 3], unknown: &[u32], beta: &[f64]) -> Result<Self> {
        let n = unknown.len();
        let strides = [1, dims[0], dims[0] * dims[1]];
        let num_rows = dims[1] * dims[2];
        let mut entries = Vec::new();
        let mut row_start = alloc::with_capacity(num_rows + 1, "air-face corrections")?;
        for r in 0..num_rows {
            row_start.push(entries.len());
            for c in r * dims[0]..(r + 1) * dims[0] {
                let u = unknown[c];
                if u >= AIR {
                    continue;
                }
                let mut extra = 0.0;
                for a in 0..ndim_of(dims) {
                    let at = (c / strides[a]) % dims[a];
                    if at + 1 < dims[a] && unknown[c + strides[a]] == AIR {
                        extra += inv_h2[a] * (beta[a * n + c] - 1.0);
                    }
                    if at > 0 && unknown[c - strides[a]] == AIR {
                        extra += inv_h2[a] * (beta[a * n + c - strides[a]] - 1.0);
                    }
                }
                if extra != 0.0 {
                    alloc::push(&mut entries, (u, extra), "air-face corrections")?;
                }
            }
        }
        row_start.push(entries.len());
        Ok(Self { entries, row_start })
    }

    /// The corrections of grid row `r`.
    fn of_row(&self, r: usize) -> &[(u32, f64)] {
        match self.row_start.get(r..r + 2) {
            Some(&[from, to]) => &self.entries[from..to],
            _ => &[],
        }
    }
}

/// The face coefficients of a ghost-fluid free surface (see
/// [`GridPoissonBuilder::air_level_set`]): `beta` (or all 1) with every
/// face between a fluid and an air cell divided by its fraction θ.
fn ghost_fluid_coefficients(
    dims: [usize; 3],
    cells: &[Cell],
    beta: Option<Vec<f64>>,
    phi: &[f64],
    min_fraction: f64,
) -> Result<Vec<f64>> {
    let num_cells = cells.len();
    let ndim = ndim_of(dims);
    Error::check_len("air_level_set", num_cells, phi.len())?;
    if let Some((c, v)) = phi.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::invalid(
            "air_level_set",
            format!("air_level_set[{c}] is {v}"),
        ));
    }
    if !(min_fraction > 0.0 && min_fraction <= 1.0) {
        return Err(Error::invalid(
            "min_air_fraction",
            format!("min_air_fraction = {min_fraction} must be in (0, 1]"),
        ));
    }
    let mut beta = match beta {
        Some(beta) => beta,
        None => {
            let mut ones = alloc::with_capacity(ndim * num_cells, "face coefficients")?;
            ones.resize(ndim * num_cells, 1.0);
            ones
        }
    };
    let stride = [1, dims[0], dims[0] * dims[1]];
    for (c, &cell) in cells.iter().enumerate() {
        if cell != Cell::Fluid {
            continue;
        }
        let p = [
            c % dims[0],
            (c / dims[0]) % dims[1],
            c / (dims[0] * dims[1]),
        ];
        for a in 0..ndim {
            let lower = (p[a] > 0).then(|| c - stride[a]);
            let upper = (p[a] + 1 < dims[a]).then(|| c + stride[a]);
            for q in [lower, upper].into_iter().flatten() {
                if cells[q] != Cell::Air {
                    continue;
                }
                let (inside, outside) = (phi[c], phi[q]);
                let theta = if inside < 0.0 && outside >= 0.0 {
                    (inside / (inside - outside)).clamp(min_fraction, 1.0)
                } else {
                    1.0
                };
                beta[a * num_cells + c.min(q)] /= theta;
            }
        }
    }
    Ok(beta)
}

/// The number of axes of an `nx × ny × nz` grid: 2 when nz = 1, else 3.
fn ndim_of(dims: [usize; 3]) -> usize {
    if dims[2] > 1 {
        3
    } else {
        2
    }
}

/// The root of `u` in a union-find forest, with path halving.
fn find_root(parent: &mut [u32], mut u: usize) -> usize {
    while parent[u] as usize != u {
        let grandparent = parent[parent[u] as usize];
        parent[u] = grandparent;
        u = grandparent as usize;
    }
    u
}

impl FaceWeight for GridPoisson {
    fn weight(&self, axis: usize, lower_cell: usize) -> f64 {
        let beta = self
            .face_coefficients
            .as_ref()
            .map_or(1.0, |b| b[axis * self.num_cells() + lower_cell]);
        self.inv_h2[axis] * beta
    }
}

/// The nonzeros of one row of a grid operator (at most 7).
#[derive(Default)]
struct StencilRow {
    entries: [(usize, f64); 7],
    len: usize,
    touches_air: bool,
}

impl StencilRow {
    fn push(&mut self, col: usize, value: f64) -> usize {
        self.entries[self.len] = (col, value);
        self.len += 1;
        self.len - 1
    }

    fn entries(&self) -> &[(usize, f64)] {
        &self.entries[..self.len]
    }
}

impl LinearOperator for GridPoisson {
    fn dim(&self) -> usize {
        self.cell_of_unknown.len()
    }

    fn as_grid(&self) -> Option<&GridPoisson> {
        Some(self)
    }

    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<()> {
        self.apply_then(x, y, &|_, _| {})
    }

    fn apply_dot(&self, x: &[f64], y: &mut [f64]) -> Result<f64> {
        self.apply_checked::<true, _, _>(&self.blocks, x, y, &|_, _| {})
    }

    fn diagonal(&self) -> Option<Vec<f64>> {
        let [nx, ny, _] = self.dims;
        let mut diagonal = Vec::with_capacity(self.dim());
        if let Some(plan) = &self.runs {
            for run in plan.all() {
                plan.push_diagonal(run, self.inv_h2, &mut diagonal);
            }
            for &(u, extra) in &self.air_corrections.entries {
                diagonal[u as usize] += extra;
            }
            return Some(diagonal);
        }
        for r in 0..self.row_start.len() - 1 {
            let (j, k) = (r % ny, r / ny);
            for i in 0..nx {
                let c = r * nx + i;
                if self.unknown[c] >= AIR {
                    continue;
                }
                let mut diag = 0.0;
                self.for_each_neighbour(self, c, [i, j, k], |nb, wf, _| {
                    if self.unknown[nb] != SOLID {
                        diag += wf;
                    }
                });
                diagonal.push(diag);
            }
        }
        Some(diagonal)
    }

    fn check_cg_solvable(&self, b: &[f64]) -> Result<()> {
        let Some(floating) = &self.floating else {
            return Ok(());
        };
        let sums = floating.sums(b);
        let norm = floating.component_norm(&sums);
        let threshold = super::INCONSISTENCY_RTOL * crate::vector::norm2(b);
        if norm <= threshold {
            return Ok(());
        }
        let worst = (0..sums.len())
            .max_by(|&a, &b| {
                (sums[a].abs() / (floating.size[a] as f64).sqrt())
                    .total_cmp(&(sums[b].abs() / (floating.size[b] as f64).sqrt()))
            })
            .unwrap_or(0);
        let ijk = self.coords(self.cell_of_unknown[floating.first[worst]] as usize);
        Err(Error::invalid(
            "b",
            format!(
                "the right-hand side is inconsistent: the fluid region of {} cells containing cell {ijk:?} touches no air cell, \
                 so A is singular there and the sum of b over it must be 0, but it is {:.6e}; the null-space component of b \
                 has norm {norm:.3e} > {:e}·‖b‖ = {threshold:.3e}, more than rounding (the solvers remove a smaller one; \
                 remove the mean of b over the region, or add an air cell)",
                floating.size[worst],
                sums[worst],
                super::INCONSISTENCY_RTOL,
            ),
        ))
    }

    fn has_null_space(&self) -> bool {
        self.floating.is_some()
    }

    fn remove_null_space(&self, v: &mut [f64]) -> f64 {
        let Some(floating) = &self.floating else {
            return 0.0;
        };
        let mut means = floating.sums(v);
        let removed = floating.component_norm(&means);
        for (mean, &m) in means.iter_mut().zip(&floating.size) {
            *mean /= m as f64;
        }
        for (vu, &r) in v.iter_mut().zip(&floating.region) {
            if r != u32::MAX {
                *vu -= means[r as usize];
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SplitMix;

    /// A x on the rows of a box (`rows_within`, then `apply_then_on`)
    /// equals the whole product there and leaves every other entry as it
    /// was, with uniform and per-face weights, on a grid of several
    /// parallel blocks.
    #[test]
    fn products_on_the_rows_of_a_box_match_the_whole_product() {
        let dims = [33, 40, 30];
        let mut rng = SplitMix(7);
        let cells: Vec<Cell> = (0..dims.iter().product())
            .map(|_| match rng.uniform() {
                u if u < 0.1 => Cell::Solid,
                u if u < 0.15 => Cell::Air,
                _ => Cell::Fluid,
            })
            .collect();
        let beta: Vec<f64> = (0..3 * cells.len()).map(|_| 0.1 + rng.uniform()).collect();
        let own = [0..33, 1..39, 2..29];
        for with_beta in [false, true] {
            let builder = GridPoisson::builder(dims, &cells);
            let a = if with_beta {
                builder.face_coefficients(&beta).build().unwrap()
            } else {
                builder.build().unwrap()
            };
            let x: Vec<f64> = (0..a.dim()).map(|_| rng.normal()).collect();
            let mut whole = vec![0.0; a.dim()];
            a.apply(&x, &mut whole).unwrap();
            let rows = a.rows_within(&own);
            assert!(rows.len() > a.blocks.len());
            let mut y = vec![f64::NAN; a.dim()];
            a.apply_then_on(&rows, &x, &mut y, &|_, _| {}).unwrap();
            for (u, (&yu, &wu)) in y.iter().zip(&whole).enumerate() {
                let c = a.cell_of_unknown[u] as usize;
                let (j, k) = ((c / dims[0]) % dims[1], c / (dims[0] * dims[1]));
                if own[1].contains(&j) && own[2].contains(&k) {
                    assert_eq!(yu, wu, "unknown {u}");
                } else {
                    assert!(yu.is_nan(), "unknown {u} outside the rows was written");
                }
            }
        }
    }
}
