//! Geometric multigrid V-cycle preconditioner for the grid Poisson operator
//! (after McAdams, Sifakis, Teran, "A parallel multigrid Poisson solver for
//! fluids simulation on large grids", SCA 2010).
//!
//! - Coarsening: each coarse cell covers 2×2(×2) fine cells and is air if any
//!   child is air (Dirichlet wins), else fluid if any child is fluid, else
//!   solid; the coarse operator is the same stencil rediscretised at twice
//!   the spacing (face coefficients β averaged over the fine faces of each
//!   coarse face), or, for an operator whose face coefficients between
//!   fluid cells vary by more than 10×, the Galerkin product A_c = R A P
//!   ([`CoarseOperators`]), which keeps its grip at coefficient jumps the
//!   averaged stencil smears (17 instead of 1 183 iterations at a 1e6
//!   contrast in 2D).
//! - Transfers: cell-centred multilinear prolongation P (weights 3/4 and 1/4
//!   per axis; a coarse neighbour that is solid or outside the grid is
//!   replaced by the parent cell, as a Neumann wall mirrors it; an air
//!   neighbour contributes 0), and restriction R = Pᵀ/2ᵈ, both applied
//!   from their rule ([`transfer`]): nothing to assemble at setup, and no
//!   matrix to stream through memory in the cycle.
//! - Smoothing: damped-Jacobi sweeps before and after the coarse
//!   correction, ν on the finest level and doubling on the next k levels
//!   (2, 4, 8, 8, … sweeps of ω = 0.9 by default), each fused with the
//!   stencil apply (one pass).
//!   Jacobi is self-adjoint and, with ω < 1, a contraction when the
//!   eigenvalues of D⁻¹A lie in [0, 2]: true of the stencil levels
//!   (diagonally dominant), and made true of the Galerkin levels, whose
//!   off-diagonal row sums may exceed the diagonal, by the ℓ1-scaled
//!   diagonal d̃ᵢ = max(aᵢᵢ, ½Σⱼ|aᵢⱼ|). R is a multiple of Pᵀ, so the
//!   V-cycle M⁻¹ is symmetric positive definite and plain CG stays valid. A [`Schedule`] gives each
//!   level its own damping per sweep and a scale of the coarse correction
//!   (a learned one: [`crate::learned::MultigridModel`]).
//! - Coarsest level: dense Cholesky (faer), at most `coarsest_unknowns`.
//!
//! Every buffer is allocated at setup; applying the preconditioner takes a
//! lock on them, so concurrent applies of one preconditioner serialise.

mod axis_galerkin;
mod galerkin;
mod lattice;
mod lumping;
mod schedule;
pub(crate) mod tangent;
pub(crate) mod transfer;

use super::precond::Preconditioner;
use crate::error::{Error, Result};
use crate::operator::{into_residual, Cell, CsrMatrix, GridPoisson, LinearOperator, AIR, SOLID};
use crate::scalar::Real;
use crate::vector;
use axis_galerkin::{AxisParts, AxisStencil};
pub use schedule::{LevelSchedule, Schedule, ScheduleParameter};
use std::ops::Range;
use std::sync::Mutex;
use std::time::Instant;
use transfer::Transfer;

/// Options of [`Multigrid::new`].
#[derive(Debug, Clone)]
pub struct MultigridOptions {
    /// Damped-Jacobi sweeps ν before and after the coarse correction on the
    /// finest level (coarser levels: see `sweep_doublings`). Default 2.
    pub smoothing_sweeps: usize,
    /// The number k of levels below the finest on which the sweep count
    /// doubles: level l runs ν·2^min(l, k) sweeps, so that with the
    /// defaults the levels run 2, 4, 8, 8, … sweeps. A coarse sweep costs
    /// 1/2ᵈ of its parent's, so each doubling adds at most a quarter (3D)
    /// or a half (2D) of the finest level's smoothing, and buys a better
    /// coarse correction, which the obstacle- and air-coarsened levels
    /// need. 0 gives the classical cycle (ν sweeps on every level); at
    /// most 6. Default 2, with ν = 2 and ω = 0.9: chosen with
    /// `examples/bench_cdm.rs --multigrid-only`'s sweep, where it beat
    /// the former default (k = 0, ν = 3) on every held-out scene (128³
    /// smoke scene of `examples/mpi/smoke_scene.h`: 13 iterations
    /// against 16).
    pub sweep_doublings: usize,
    /// Jacobi damping ω ∈ (0, 1]. Default 0.9.
    pub damping: f64,
    /// Coarsen until a level has at most this many unknowns (≤ 4096); that
    /// level is solved by dense Cholesky. Default 1000.
    pub coarsest_unknowns: usize,
    /// How the coarse operators are formed. Default
    /// [`CoarseOperators::Automatic`].
    pub coarse_operators: CoarseOperators,
    /// The precision of the V-cycle's vectors and arithmetic (CG around
    /// it stays in f64). Default [`Precision::Single`].
    pub precision: Precision,
    /// Per-level damping of each sweep and scale of the coarse correction
    /// (checked by [`Schedule::check`]); when set, it replaces
    /// `smoothing_sweeps` and `damping`. Default `None`.
    pub schedule: Option<Schedule>,
}

/// The floating-point precision of the V-cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// f64 throughout.
    #[default]
    Double,
    /// f32 vectors and stencil arithmetic on every level (half the memory
    /// traffic), the coarsest solve and the operator data in f64: a
    /// preconditioner accurate to ~1e-7, which CG in f64 corrects.
    Single,
}

/// The operators of the coarse levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CoarseOperators {
    /// [`CoarseOperators::Galerkin`] when the face coefficients between
    /// fluid cells vary by more than a factor of 10 (variable density:
    /// contrast the rediscretised levels lose), else
    /// [`CoarseOperators::Rediscretized`]. A ghost-fluid free surface
    /// alone (its 1/θ factors sit on the faces to air cells) keeps the
    /// rediscretised levels: 11 iterations instead of Galerkin's 10 on
    /// 128³ `scene::obstacles`, in 0.13× the time
    /// (`examples/bench_coarse_operators.rs`).
    #[default]
    Automatic,
    /// The same stencil on each coarse grid, face coefficients averaged
    /// over the fine faces of a coarse face: cheapest, but 1 200 iterations
    /// instead of 17 at a 1e6 coefficient contrast.
    Rediscretized,
    /// The Galerkin product A_c = R A P with the V-cycle's own transfers
    /// (up to 25 entries per row in 2D, 75 in 3D: the cell-centred
    /// transfers reach 2 cells along an axis): robust to contrast, at a
    /// 10× longer setup in 3D.
    Galerkin,
    /// The Galerkin product lumped back onto the 5- or 7-point stencil,
    /// level by level (A_{l+1} = lump(R A_l P)): each coupling between
    /// cells that are not face neighbours is moved onto the faces of the
    /// lattice paths between them, so that linear functions and constants
    /// keep their energy (the rule is in `lumping.rs`). In uniform fluid
    /// it is the rediscretised stencil; at obstacles, air and coefficient
    /// jumps it keeps what the Galerkin product knows of the cut cells,
    /// with the cost per cycle of a 7-point level. Held-out
    /// `scene::obstacles` at rtol 1e-8 with Chebyshev smoothing (ν = 4):
    /// 7 iterations at 64³, 128³ and 512² instead of 8–9 rediscretised
    /// (5–6 with the unlumped product); at a 1e6 contrast 13–38
    /// iterations where Galerkin takes 11–31. The setup is that of the
    /// Galerkin product plus the lumping.
    LumpedGalerkin,
    /// Galerkin products axis by axis: each level keeps its operator as
    /// parts along the axes, and each part is coarsened by the V-cycle's
    /// prolongation with its interpolation along that axis only
    /// (A_{c,a} = P_aᵀ A_a P_a / 2ᵈ; the rule is in `axis_galerkin.rs`).
    /// Each coarse row couples a cell to the cells 1 and 2 away along each
    /// axis (13 entries in 3D), knows the open fine faces and the air
    /// along each axis, and costs one pass over the fine unknowns to
    /// build. Held-out `scene::obstacles` at rtol 1e-8 with Chebyshev
    /// smoothing (ν = 4): 6 iterations at 64³, 128³ and 512² instead of
    /// 8–9 rediscretised, at 2–4× the rediscretised setup (0.11 s
    /// against 0.03–0.05 s at 128³), so it pays for a hierarchy that serves
    /// several right-hand sides (`examples/bench_coarse_operators.rs`).
    /// Its prolongation is constant across each axis, so it loses its
    /// grip beyond a 1e3 coefficient contrast (29–221 iterations where
    /// [`CoarseOperators::Galerkin`] takes 14–31).
    AxisGalerkin,
}

impl CoarseOperators {
    /// Every variant.
    pub const ALL: [CoarseOperators; 5] = [
        CoarseOperators::Automatic,
        CoarseOperators::Rediscretized,
        CoarseOperators::Galerkin,
        CoarseOperators::LumpedGalerkin,
        CoarseOperators::AxisGalerkin,
    ];

    /// Its name in files and on command lines: `automatic`,
    /// `rediscretized`, `galerkin`, `lumped-galerkin` or `axis-galerkin`.
    pub fn name(self) -> &'static str {
        match self {
            CoarseOperators::Automatic => "automatic",
            CoarseOperators::Rediscretized => "rediscretized",
            CoarseOperators::Galerkin => "galerkin",
            CoarseOperators::LumpedGalerkin => "lumped-galerkin",
            CoarseOperators::AxisGalerkin => "axis-galerkin",
        }
    }

    /// The variant of [`CoarseOperators::name`] `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// These coarse operators for `a`, with [`CoarseOperators::AxisGalerkin`]
    /// replaced by [`CoarseOperators::Galerkin`] when the face coefficients
    /// between fluid cells of `a` vary by more than [`AXIS_CONTRAST`],
    /// beyond which the axis levels lose their grip: the hierarchy a
    /// schedule trained on axis levels runs on.
    pub(crate) fn within_contrast_of(self, a: &GridPoisson) -> Self {
        if self == CoarseOperators::AxisGalerkin && fluid_face_contrast(a) > AXIS_CONTRAST {
            CoarseOperators::Galerkin
        } else {
            self
        }
    }
}

impl Default for MultigridOptions {
    fn default() -> Self {
        Self {
            smoothing_sweeps: 2,
            sweep_doublings: 2,
            damping: 0.9,
            coarsest_unknowns: 1000,
            coarse_operators: CoarseOperators::Automatic,
            precision: Precision::Single,
            schedule: None,
        }
    }
}

impl MultigridOptions {
    /// The schedule the cycle runs: the given one, or ν·2^min(l, k)
    /// sweeps of ω and γ = 1 on level l.
    pub(crate) fn resolved_schedule(&self) -> Schedule {
        self.schedule.clone().unwrap_or_else(|| {
            Schedule::doubling(self.smoothing_sweeps, self.damping, self.sweep_doublings)
        })
    }

    /// Checks that every option is in range.
    pub(crate) fn check(&self) -> Result<()> {
        if let Some(schedule) = &self.schedule {
            return self.check_coarsest().and(schedule.check());
        }
        if !(self.damping > 0.0 && self.damping <= 1.0) {
            return Err(Error::invalid(
                "damping",
                format!("damping = {} must be in (0, 1]", self.damping),
            ));
        }
        if self.smoothing_sweeps == 0 {
            return Err(Error::invalid(
                "smoothing_sweeps",
                "at least one smoothing sweep is needed",
            ));
        }
        if self.sweep_doublings > MAX_SWEEP_DOUBLINGS {
            return Err(Error::invalid(
                "sweep_doublings",
                format!(
                    "sweep_doublings = {} must be at most {MAX_SWEEP_DOUBLINGS}",
                    self.sweep_doublings
                ),
            ));
        }
        if self.smoothing_sweeps > MAX_SWEEPS >> self.sweep_doublings {
            return Err(Error::invalid(
                "smoothing_sweeps",
                format!(
                    "smoothing_sweeps = {} doubled {} times exceeds {MAX_SWEEPS} sweeps per level",
                    self.smoothing_sweeps, self.sweep_doublings
                ),
            ));
        }
        self.check_coarsest()
    }

    fn check_coarsest(&self) -> Result<()> {
        if !(1..=MAX_COARSEST).contains(&self.coarsest_unknowns) {
            return Err(Error::invalid(
                "coarsest_unknowns",
                format!(
                    "coarsest_unknowns = {} must be in 1..={MAX_COARSEST}",
                    self.coarsest_unknowns
                ),
            ));
        }
        Ok(())
    }
}

/// The contrast of the face coefficients between fluid cells above which
/// [`CoarseOperators::Automatic`] picks Galerkin levels (at 1e2 the
/// rediscretised levels take 16 iterations against Galerkin's 13, at 1e4
/// 111 against 16).
const AUTOMATIC_CONTRAST: f64 = 10.0;

/// The contrast of the face coefficients between fluid cells up to which
/// the axis-Galerkin levels keep within 1.5× of Galerkin's iterations
/// (`tests/multigrid_contrast.rs`; at 1e4 and beyond they take 29–221
/// where Galerkin takes 14–31).
const AXIS_CONTRAST: f64 = 1e3;

/// max β / min β over the faces between two fluid cells of `a` (1 without
/// face coefficients; infinite when one of them is 0).
fn fluid_face_contrast(a: &GridPoisson) -> f64 {
    match a.fluid_face_coefficient_range() {
        Some((low, high)) if high > 0.0 => high / low,
        _ => 1.0,
    }
}

/// Largest coarsest level for the dense factorisation.
const MAX_COARSEST: usize = 4096;

/// The most sweeps of one level of a schedule built from `smoothing_sweeps`.
const MAX_SWEEPS: usize = 1024;

/// The most levels on which the sweep count doubles.
const MAX_SWEEP_DOUBLINGS: usize = 6;

/// One level: its grid and its operator.
pub(crate) struct Level {
    /// The level's grid: its cells, and its operator unless `galerkin`.
    pub(crate) op: GridPoisson,
    /// The Galerkin-type operator of this level, when used.
    pub(crate) galerkin: Option<GalerkinOperator>,
}

/// A coarse level's operator computed from the finer one.
pub(crate) enum GalerkinOperator {
    /// R A P or its lumping, or the coarsest axis-Galerkin level (only
    /// factored), as a sparse matrix.
    Sparse(CsrMatrix),
    /// The axis-by-axis products, applied as a stencil on the level's grid.
    Axis(AxisStencil),
}

impl Level {
    /// y ← A_l x, then `finish(first, y_rows)` on each block of rows of y
    /// (fused into the stencil apply on a grid level); on a grid level
    /// with `rows`, on those grid rows only ([`GridPoisson::rows_within`]).
    fn apply_then<T: Real, F>(
        &self,
        rows: Option<&[Range<usize>]>,
        x: &[T],
        y: &mut [T],
        finish: &F,
    ) -> Result<()>
    where
        F: Fn(usize, &mut [T]) + Sync,
    {
        match (&self.galerkin, rows) {
            // Galerkin levels are serial: every row is the level's own.
            (Some(GalerkinOperator::Sparse(a)), _) => {
                debug_assert!(rows.is_none());
                a.apply_real(x, y)?;
                finish(0, y);
                Ok(())
            }
            (Some(GalerkinOperator::Axis(a)), _) => {
                debug_assert!(rows.is_none());
                Error::check_len("x", self.op.dim(), x.len())?;
                Error::check_len("y", self.op.dim(), y.len())?;
                a.apply_then(x, y, finish);
                Ok(())
            }
            (None, Some(rows)) => self.op.apply_then_on(rows, x, y, finish),
            (None, None) => self.op.apply_then(x, y, finish),
        }
    }

    /// x ← x + ω D⁻¹ (b − A x) on `bufs`, one damped-Jacobi sweep through
    /// `bufs.next`; with `rows`, on those grid rows only (a rank's own
    /// rows: the ghost rows' values come from the next exchange).
    pub(crate) fn smooth<T: Real>(
        &self,
        omega: f64,
        bufs: &mut Buffers<T>,
        rows: Option<&[Range<usize>]>,
    ) -> Result<()> {
        let Buffers {
            inv_diagonal,
            b,
            x,
            next,
            ..
        } = bufs;
        self.jacobi_sweep(omega, inv_diagonal, b, x, next, rows)?;
        std::mem::swap(x, next);
        Ok(())
    }

    /// x_new ← x + ω D⁻¹ (b − A x), with `inv_diagonal` = D⁻¹, on `rows`
    /// as for [`Level::smooth`].
    fn jacobi_sweep<T: Real>(
        &self,
        omega: f64,
        inv_diagonal: &[T],
        b: &[T],
        x: &[T],
        x_new: &mut [T],
        rows: Option<&[Range<usize>]>,
    ) -> Result<()> {
        let omega = T::from_f64(omega);
        self.apply_then(rows, x, x_new, &|first, ax: &mut [T]| {
            let range = first..first + ax.len();
            for (((y, &xi), &wi), &bi) in ax
                .iter_mut()
                .zip(&x[range.clone()])
                .zip(&inv_diagonal[range.clone()])
                .zip(&b[range])
            {
                *y = xi + omega * wi * (bi - *y);
            }
        })
    }

    /// b_coarse ← R (b − A x) by `transfer` (from this level), the residual
    /// taken as 0 off the cells `own` of this level's grid: on a grid
    /// level in one pass, on a Galerkin level through `r`.
    pub(crate) fn restrict_residual<T: Real>(
        &self,
        transfer: &Transfer<'_>,
        b: &[T],
        x: &[T],
        own: [Range<usize>; 3],
        r: &mut [T],
        b_coarse: &mut [T],
    ) -> Result<()> {
        if self.galerkin.is_none() {
            transfer.restrict_residual(b, x, own, b_coarse);
            return Ok(());
        }
        // Galerkin levels are serial: `own` is the whole grid.
        self.residual(b, x, r)?;
        transfer.restrict(r, b_coarse);
        Ok(())
    }

    /// r ← b − A x.
    pub(crate) fn residual<T: Real>(&self, b: &[T], x: &[T], r: &mut [T]) -> Result<()> {
        self.apply_then(None, x, r, &into_residual(b))
    }
}

/// Per-level data of one V-cycle: the smoother's D⁻¹ (0 on a zero row),
/// the right-hand side, iterate, residual (on a Galerkin level only; a
/// grid level restricts its residual as it computes it), and the next
/// iterate of a smoothing sweep.
#[derive(Default)]
pub(crate) struct Buffers<T> {
    pub(crate) inv_diagonal: Vec<T>,
    pub(crate) b: Vec<T>,
    pub(crate) x: Vec<T>,
    pub(crate) r: Vec<T>,
    pub(crate) next: Vec<T>,
}

/// The V-cycle's data in its precision (behind one lock in [`Cycles`]):
/// per level its buffers, and the coarsest level's vector in f64.
#[derive(Default)]
pub(crate) struct Cycle<T> {
    pub(crate) levels: Vec<Buffers<T>>,
    pub(crate) coarsest: Vec<f64>,
}

impl<T: Real> Cycle<T> {
    /// The cycle's data for `levels`, in the memory of `old` (the last
    /// frame's cycle, or an empty one): no fresh pages to fault in. Stale
    /// values are kept, since the cycle writes each vector before reading it.
    pub(crate) fn new(levels: &[Level], old: Cycle<T>) -> Self {
        let mut old_levels = old.levels.into_iter();
        let buffers = levels
            .iter()
            .map(|level| {
                let mut buffers = old_levels.next().unwrap_or_default();
                let n = level.op.dim();
                for v in [&mut buffers.b, &mut buffers.x, &mut buffers.next] {
                    v.resize(n, T::default());
                }
                let residual_len = if level.galerkin.is_some() { n } else { 0 };
                buffers.r.resize(residual_len, T::default());
                // A Galerkin level's off-diagonal row sums may exceed its
                // diagonal, and damped Jacobi would then overshoot (an
                // indefinite V-cycle at a 1e3 contrast in 3D): its smoother
                // is ℓ1-scaled instead (for a stencil level the same).
                let diagonal = match &level.galerkin {
                    Some(GalerkinOperator::Sparse(a)) => Some(a.l1_smoothing_diagonal()),
                    Some(GalerkinOperator::Axis(a)) => Some(a.l1_smoothing_diagonal()),
                    None => level.op.diagonal(),
                };
                // An isolated fluid cell (every face a wall) has a zero row:
                // it is its own enclosed region, whose null space the
                // solvers remove, so the smoother leaves it at 0.
                buffers.inv_diagonal.clear();
                buffers.inv_diagonal.extend(
                    diagonal
                        .unwrap_or_default()
                        .iter()
                        .map(|&d| T::from_f64(if d > 0.0 { 1.0 / d } else { 0.0 })),
                );
                buffers
            })
            .collect();
        let mut coarsest = old.coarsest;
        coarsest.resize(levels.last().map_or(0, |l| l.op.dim()), 0.0);
        Cycle {
            levels: buffers,
            coarsest,
        }
    }
}

/// The V-cycle in the precision of [`MultigridOptions::precision`].
pub(crate) enum Cycles {
    Double(Mutex<Cycle<f64>>),
    Single(Mutex<Cycle<f32>>),
}

/// The data of `cycle` (a poisoned lock's too: every buffer is rewritten
/// before it is read).
fn unlocked<T>(cycle: &mut Mutex<Cycle<T>>) -> &mut Cycle<T> {
    cycle
        .get_mut()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The geometric multigrid V-cycle M⁻¹ ≈ A⁻¹ for a [`GridPoisson`] operator.
pub struct Multigrid {
    levels: Vec<Level>,
    coarse: faer::linalg::solvers::Llt<f64>,
    options: MultigridOptions,
    schedule: Schedule,
    cycle: Cycles,
    setup_seconds: f64,
}

impl std::fmt::Debug for Multigrid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Multigrid")
            .field("levels", &self.level_dims())
            .field("options", &self.options)
            .field("setup_seconds", &self.setup_seconds)
            .finish()
    }
}

/// The coarse grid of `fine`: dimensions, cells and face coefficients.
fn coarsen(fine: &GridPoisson) -> Result<GridPoisson> {
    let fd = fine.dims();
    let d = fine.ndim();
    let mut cd = [1; 3];
    for a in 0..d {
        cd[a] = fd[a].div_ceil(2);
    }
    let num_coarse = cd[0] * cd[1] * cd[2];
    // Per coarse cell the strongest kind of its children: air (2) over
    // fluid (1) over solid (0).
    let mut rank = vec![0u8; num_coarse];
    for (r, row) in fine.unknown_codes().chunks_exact(fd[0]).enumerate() {
        let (j, k) = (r % fd[1], r / fd[1]);
        let parents = &mut rank[(j / 2 + cd[1] * (k / 2)) * cd[0]..][..cd[0]];
        for (i, &code) in row.iter().enumerate() {
            let kind = match code {
                SOLID => 0,
                AIR => 2,
                _ => 1,
            };
            let parent = &mut parents[i / 2];
            *parent = (*parent).max(kind);
        }
    }
    let cells: Vec<Cell> = rank
        .iter()
        .map(|&k| match k {
            2 => Cell::Air,
            1 => Cell::Fluid,
            _ => Cell::Solid,
        })
        .collect();
    let h = fine.spacing();
    let spacing = [
        2.0 * h[0],
        2.0 * h[1],
        if d == 3 { 2.0 * h[2] } else { 1.0 },
    ];
    let beta = fine
        .face_coefficients()
        .map(|beta| coarse_face_coefficients(beta, d, fd, cd));
    let builder = GridPoisson::builder(cd, &cells)
        .spacing(spacing)
        .scale(fine.scale());
    match &beta {
        Some(beta) => builder.face_coefficients(beta).build(),
        None => builder.build(),
    }
}

/// The coefficient of each coarse face: the mean of β over the fine faces
/// it covers (the +a faces of the children in fine layer 2·c_a + 1 along a,
/// when that layer is not the last).
fn coarse_face_coefficients(beta: &[f64], d: usize, fd: [usize; 3], cd: [usize; 3]) -> Vec<f64> {
    let (num_fine, num_coarse) = (fd[0] * fd[1] * fd[2], cd[0] * cd[1] * cd[2]);
    let mut coarse = vec![0.0; d * num_coarse];
    for a in 0..d {
        let fine_beta = &beta[a * num_fine..(a + 1) * num_fine];
        let coarse_beta = &mut coarse[a * num_coarse..(a + 1) * num_coarse];
        for (c, out) in coarse_beta.iter_mut().enumerate() {
            let cc = [c % cd[0], (c / cd[0]) % cd[1], c / (cd[0] * cd[1])];
            if 2 * cc[a] + 2 >= fd[a] {
                continue;
            }
            // The children's coordinates, fixed to 2·c_a + 1 along a.
            let span = |b: usize| {
                if b == a {
                    2 * cc[b] + 1..2 * cc[b] + 2
                } else {
                    2 * cc[b]..(2 * cc[b] + 2).min(fd[b])
                }
            };
            let (mut sum, mut count) = (0.0, 0);
            for k in span(2) {
                for j in span(1) {
                    for i in span(0) {
                        sum += fine_beta[i + fd[0] * (j + fd[1] * k)];
                        count += 1;
                    }
                }
            }
            *out = sum / count as f64;
        }
    }
    coarse
}

impl Multigrid {
    /// Builds the hierarchy for `a` (copied). Fails when the options are out
    /// of range or the coarsest level cannot be factored even with a small
    /// diagonal shift.
    pub fn new(a: &GridPoisson, options: &MultigridOptions) -> Result<Self> {
        Self::build(a, options, None)
    }

    /// Rebuilds the hierarchy for the operator `a` of a new frame (cells,
    /// coefficients; the grid size may differ), with the same options, in
    /// the memory of the current one. On failure `self` is unchanged.
    pub fn update(&mut self, a: &GridPoisson) -> Result<()> {
        let options = self.options.clone();
        *self = Self::build(a, &options, Some(&mut self.cycle))?;
        Ok(())
    }

    fn build(
        a: &GridPoisson,
        options: &MultigridOptions,
        old: Option<&mut Cycles>,
    ) -> Result<Self> {
        let start = Instant::now();
        options.check()?;
        let mut ops = vec![a.clone()];
        loop {
            let last = ops.last().expect("at least the fine level");
            let dims = last.dims();
            if last.dim() <= options.coarsest_unknowns || dims.iter().all(|&n| n <= 2) {
                break;
            }
            let coarse = coarsen(last)?;
            ops.push(coarse);
        }
        let coarsest = ops.last().expect("at least the fine level");
        if coarsest.dim() > MAX_COARSEST {
            return Err(Error::invalid(
                "op",
                format!(
                    "the coarsest grid {:?} still has {} unknowns (more than {MAX_COARSEST})",
                    coarsest.dims(),
                    coarsest.dim()
                ),
            ));
        }
        let galerkin = galerkin_levels(a, &ops, options.coarse_operators)?;
        let coarse = match galerkin.last() {
            Some(Some(GalerkinOperator::Sparse(a))) => dense_cholesky_of(a, coarsest.dims())?,
            _ => dense_cholesky(coarsest)?,
        };
        let levels: Vec<Level> = ops
            .into_iter()
            .zip(galerkin)
            .map(|(op, galerkin)| Level { op, galerkin })
            .collect();
        let cycle = match (options.precision, old) {
            (Precision::Double, Some(Cycles::Double(old))) => Cycles::Double(Mutex::new(
                Cycle::new(&levels, std::mem::take(unlocked(old))),
            )),
            (Precision::Single, Some(Cycles::Single(old))) => Cycles::Single(Mutex::new(
                Cycle::new(&levels, std::mem::take(unlocked(old))),
            )),
            (Precision::Double, _) => {
                Cycles::Double(Mutex::new(Cycle::new(&levels, Cycle::default())))
            }
            (Precision::Single, _) => {
                Cycles::Single(Mutex::new(Cycle::new(&levels, Cycle::default())))
            }
        };
        Ok(Self {
            levels,
            coarse,
            options: options.clone(),
            schedule: options.resolved_schedule(),
            cycle,
            setup_seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// The grid size of every level, finest first.
    pub fn level_dims(&self) -> Vec<[usize; 3]> {
        self.levels.iter().map(|l| l.op.dims()).collect()
    }

    /// Wall time of [`Multigrid::new`], in seconds.
    pub fn setup_seconds(&self) -> f64 {
        self.setup_seconds
    }

    /// The schedule the cycle runs.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The smoother's D⁻¹ of every level, in f64 (from the cycle's buffers).
    fn inv_diagonals(&self) -> Vec<Vec<f64>> {
        fn widened<T: Real>(cycle: &Mutex<Cycle<T>>) -> Vec<Vec<f64>> {
            let guard = cycle.lock().unwrap_or_else(|p| p.into_inner());
            let to_f64 = |b: &Buffers<T>| b.inv_diagonal.iter().map(|w| w.to_f64()).collect();
            guard.levels.iter().map(to_f64).collect()
        }
        match &self.cycle {
            Cycles::Double(cycle) => widened(cycle),
            Cycles::Single(cycle) => widened(cycle),
        }
    }

    /// Replaces the schedule (checked by [`Schedule::check`]); the
    /// hierarchy does not depend on it, so nothing is rebuilt.
    pub fn set_schedule(&mut self, schedule: Schedule) -> Result<()> {
        schedule.check()?;
        self.options.schedule = Some(schedule.clone());
        self.schedule = schedule;
        Ok(())
    }

    /// x = A_c⁻¹ b on the coarsest level, through the f64 vector `wide`.
    fn coarsest_solve<T: Real>(&self, b: &[T], x: &mut [T], wide: &mut [f64]) {
        use faer::linalg::solvers::Solve;
        let level = self.levels.last().expect("at least the fine level");
        for (w, &b) in wide.iter_mut().zip(b) {
            *w = b.to_f64();
        }
        // On an enclosed region the factor is of A + εI: its null-space
        // component (rounding, amplified 1/ε by the solve) is projected
        // out before and after, so the cycle stays symmetric positive
        // (semi)definite in either precision.
        level.op.remove_null_space(wide);
        let n = wide.len();
        self.coarse
            .solve_in_place(faer::MatMut::from_column_major_slice_mut(wide, n, 1));
        level.op.remove_null_space(wide);
        for (x, &w) in x.iter_mut().zip(wide.iter()) {
            *x = T::from_f64(w);
        }
    }

    /// One V-cycle from level `l` on `bufs[0].b`, result in `bufs[0].x`
    /// (`bufs` holds the buffers of levels l, l+1, …; `wide` the coarsest
    /// level's f64 vector).
    fn vcycle<T: Real>(&self, l: usize, bufs: &mut [Buffers<T>], wide: &mut [f64]) -> Result<()> {
        let level = &self.levels[l];
        let (here, coarser) = bufs.split_first_mut().expect("a buffer per level");
        if l + 1 == self.levels.len() {
            self.coarsest_solve(&here.b, &mut here.x, wide);
            return Ok(());
        }
        let schedule = self.schedule.level(l);
        // First sweep from x = 0: x = ω D⁻¹ b.
        vector::scaled_multiply(
            schedule.damping[0],
            &here.inv_diagonal,
            &here.b,
            &mut here.x,
        );
        for &omega in &schedule.damping[1..] {
            level.smooth(omega, here, None)?;
        }
        let transfer = Transfer {
            fine: &level.op,
            coarse: &self.levels[l + 1].op,
            shift: [0; 3],
        };
        let whole = level.op.dims().map(|n| 0..n);
        level.restrict_residual(
            &transfer,
            &here.b,
            &here.x,
            whole,
            &mut here.r,
            &mut coarser[0].b,
        )?;
        self.vcycle(l + 1, coarser, wide)?;
        vector::scale(schedule.correction, &mut coarser[0].x);
        transfer.prolong_add(&coarser[0].x, &mut here.x);
        for &omega in schedule.damping.iter().rev() {
            level.smooth(omega, here, None)?;
        }
        Ok(())
    }

    /// z = M⁻¹ r with the cycle's precision; returns rᵀz.
    fn precondition<T: Real>(
        &self,
        cycle: &Mutex<Cycle<T>>,
        r: &[f64],
        z: &mut [f64],
    ) -> Result<f64> {
        let mut guard = cycle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Cycle { levels, coarsest } = &mut *guard;
        vector::convert(r, &mut levels[0].b);
        self.vcycle(0, levels, coarsest)?;
        Ok(vector::widen_dot(&levels[0].x, r, z))
    }
}

/// The operators of the levels `ops` of `a` that `choice` computes from
/// the finer level (`None` on the finest and on rediscretised levels); the
/// coarsest one, only factored, as a sparse matrix.
fn galerkin_levels(
    a: &GridPoisson,
    ops: &[GridPoisson],
    choice: CoarseOperators,
) -> Result<Vec<Option<GalerkinOperator>>> {
    let mut levels: Vec<Option<GalerkinOperator>> = (0..ops.len()).map(|_| None).collect();
    let products = match choice {
        CoarseOperators::Galerkin | CoarseOperators::LumpedGalerkin => true,
        CoarseOperators::Rediscretized => false,
        CoarseOperators::Automatic => fluid_face_contrast(a) > AUTOMATIC_CONTRAST,
        CoarseOperators::AxisGalerkin => {
            let coarsest = ops.len() - 1;
            let mut parts: Option<AxisParts> = None;
            for l in 1..ops.len() {
                let next = match &parts {
                    None => AxisParts::of_grid(&ops[0], &ops[1])?,
                    Some(parts) => parts.coarsened(&ops[l - 1], &ops[l])?,
                };
                levels[l] = Some(if l == coarsest {
                    GalerkinOperator::Sparse(next.to_csr(&ops[l])?)
                } else {
                    GalerkinOperator::Axis(next.stencil(&ops[l])?)
                });
                parts = Some(next);
            }
            return Ok(levels);
        }
    };
    if products {
        // Galerkin: A_{l+1} = R_l A_l P_l from the finest level down.
        let fine = ops[0].to_csr()?;
        let mut previous: Option<CsrMatrix> = None;
        for l in 0..ops.len() - 1 {
            let transfer = Transfer {
                fine: &ops[l],
                coarse: &ops[l + 1],
                shift: [0; 3],
            };
            let mut a_c = galerkin::product(previous.as_ref().unwrap_or(&fine), &transfer)?;
            if choice == CoarseOperators::LumpedGalerkin {
                a_c = lumping::lumped(&a_c, &ops[l + 1])?;
            }
            if let Some(done) = previous.replace(a_c) {
                levels[l] = Some(GalerkinOperator::Sparse(done));
            }
        }
        levels[ops.len() - 1] = previous.map(GalerkinOperator::Sparse);
    }
    Ok(levels)
}

/// Dense Cholesky of the coarsest operator; retried with a diagonal shift
/// of 1e-10 × the largest diagonal entry when the grid is singular (a fluid
/// region without air at this resolution).
fn dense_cholesky(op: &GridPoisson) -> Result<faer::linalg::solvers::Llt<f64>> {
    dense_cholesky_of(&op.to_csr()?, op.dims())
}

/// [`dense_cholesky`] of a sparse matrix, for the coarsest level of `dims`.
fn dense_cholesky_of(csr: &CsrMatrix, dims: [usize; 3]) -> Result<faer::linalg::solvers::Llt<f64>> {
    let n = csr.dim();
    let mut dense = faer::Mat::<f64>::zeros(n, n);
    let (ptr, cols, vals) = (csr.row_ptr(), csr.col_idx(), csr.values());
    for i in 0..n {
        for k in ptr[i] as usize..ptr[i + 1] as usize {
            dense[(i, cols[k] as usize)] = vals[k];
        }
    }
    if let Ok(llt) = dense.llt(faer::Side::Lower) {
        return Ok(llt);
    }
    let shift = 1e-10 * (0..n).map(|i| dense[(i, i)]).fold(0.0f64, f64::max);
    for i in 0..n {
        dense[(i, i)] += shift;
    }
    dense.llt(faer::Side::Lower).map_err(|_| Error::NotSpd {
        message: format!("the coarsest multigrid level {dims:?} is not positive definite"),
    })
}

impl Preconditioner for Multigrid {
    fn dim(&self) -> usize {
        self.levels[0].op.dim()
    }

    fn apply_dot(&self, r: &[f64], z: &mut [f64]) -> Result<f64> {
        Error::check_len("r", self.dim(), r.len())?;
        Error::check_len("z", self.dim(), z.len())?;
        match &self.cycle {
            Cycles::Double(cycle) => self.precondition(cycle, r, z),
            Cycles::Single(cycle) => self.precondition(cycle, r, z),
        }
    }
}
