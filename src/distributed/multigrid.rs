//! The geometric multigrid V-cycle of [`Multigrid`] on a distributed grid:
//! the same coarsening rule, transfers and damped-Jacobi smoother, each
//! rank working on its box with ghost layers exchanged on every level.
//!
//! Coarse cell c belongs to the owner of fine cell 2c, so the boxes of a
//! coarse level are the fine ones' halved (cuts ⌈c/2⌉). Coarsening goes on
//! while the serial hierarchy would (more than `coarsest_unknowns`
//! unknowns) and every rank's coarse box is non-empty; that last
//! distributed level is then gathered onto every rank (one reduction of a
//! zero-filled vector of the level's unknowns) and the rest of the cycle
//! is the serial [`Multigrid`] of that level, run redundantly. The
//! preconditioner is the serial one's, whatever the decomposition.
//!
//! Per V-cycle and distributed level: one face exchange per smoothing
//! sweep and after the prolongation, and a full-neighbour exchange each
//! for the restriction (the coarse ghost cells' sums go to their owners)
//! and for the coarse correction; one reduction for the gathered level.

use super::comm::{Collective, CommStats};
use super::decomposition::Decomposition;
use super::grid::{
    cell_code, cell_of_code, extend_cells, local_grid, owned_and_halo, DistributedGridPoisson,
};
use super::halo::{Halo, HaloValue};
use super::runs::OwnedRuns;
use crate::error::{Error, Result};
use crate::krylov::multigrid::transfer::Transfer;
use crate::krylov::multigrid::{Buffers, Cycle, Cycles, Level};
use crate::krylov::{
    CoarseOperators, Multigrid, MultigridOptions, Precision, Preconditioner, Schedule,
};
use crate::operator::{Cell, GridPoisson};
use crate::scalar::Real;
use crate::vector;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::Instant;

/// The most cells of the level gathered onto every rank (16.8 M: 134 MB
/// per rank for its reduction and a serial hierarchy of that size).
const MAX_GATHERED: usize = 1 << 24;

/// The owned cells per axis, in the coordinates of the local grid (the
/// extended box).
fn own_cells(decomposition: &Decomposition) -> [std::ops::Range<usize>; 3] {
    let (owned, extended) = (decomposition.owned(), decomposition.extended());
    [0, 1, 2].map(|a| owned.lo[a] - extended.lo[a]..owned.hi[a] - extended.lo[a])
}

/// How a distributed level is split over the ranks.
struct Part {
    decomposition: Decomposition,
    /// The local unknown of each owned unknown.
    owned_unknowns: Vec<u32>,
    /// Exchanges with the face neighbours, and with all neighbours.
    faces: Halo,
    all: Halo,
    /// The grid rows of the owned cells, which the smoother updates (the
    /// ghost rows' values come from the exchanges).
    own_rows: Vec<std::ops::Range<usize>>,
}

impl Part {
    fn new(decomposition: Decomposition, local: &GridPoisson) -> Self {
        let (owned_unknowns, faces) = owned_and_halo(&decomposition, local);
        let all = Halo::new(&decomposition, false, |c| {
            local.unknown_of_cell(c).map(|u| u as u32)
        });
        let own_rows = local.rows_within(&own_cells(&decomposition));
        Self {
            decomposition,
            owned_unknowns,
            faces,
            all,
            own_rows,
        }
    }

    /// The parity of the extended box's first cell per axis: the shift of
    /// the transfers to the next level.
    fn shift(&self) -> [usize; 3] {
        self.decomposition.extended().lo.map(|l| l % 2)
    }
}

/// The multigrid V-cycle M⁻¹ ≈ A⁻¹ of a [`DistributedGridPoisson`]
/// operator, as a [`Preconditioner`] on this rank's unknowns. Applying it
/// is collective.
pub struct DistributedMultigrid {
    collective: Rc<Collective>,
    /// The distributed levels' local grids, finest first.
    levels: Vec<Level>,
    parts: Vec<Part>,
    /// The serial cycle from the last distributed level on.
    tail: Multigrid,
    /// The tail's unknown of each owned unknown of the last level.
    gather: Vec<u32>,
    /// The tail's right-hand side and result.
    gathered: Mutex<(Vec<f64>, Vec<f64>)>,
    /// Copies between owned and local vectors of the finest level.
    runs: OwnedRuns,
    cycle: Cycles,
    options: MultigridOptions,
    /// The schedule of the distributed levels.
    schedule: Schedule,
    setup: CommStats,
    setup_seconds: f64,
}

impl std::fmt::Debug for DistributedMultigrid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistributedMultigrid")
            .field("distributed_levels", &self.levels.len())
            .field("tail_levels", &self.tail.level_dims())
            .field("options", &self.options)
            .finish()
    }
}

/// The cells and face coefficients of this rank's coarse cells (global
/// coordinates), from the fine level's local grid, by the serial rule:
/// air over fluid over solid among the children, and the mean of the
/// children's β across the coarse face (0 on the grid's last layer).
fn coarse_cell(fine: &GridPoisson, fine_part: &Decomposition, c: [usize; 3]) -> Cell {
    let (extended, dims, ndim) = (fine_part.extended(), fine_part.dims, fine_part.ndim());
    let mut kind = Cell::Solid;
    for_each_child(c, ndim, dims, None, |f| {
        kind = match (kind, fine.cell(extended.index(f))) {
            (Cell::Air, _) | (_, Cell::Air) => Cell::Air,
            (Cell::Fluid, _) | (_, Cell::Fluid) => Cell::Fluid,
            _ => Cell::Solid,
        };
    });
    kind
}

fn coarse_beta(fine: &GridPoisson, fine_part: &Decomposition, a: usize, c: [usize; 3]) -> f64 {
    let (extended, dims, ndim) = (fine_part.extended(), fine_part.dims, fine_part.ndim());
    if 2 * c[a] + 2 >= dims[a] {
        return 0.0;
    }
    let beta = fine.face_coefficients().expect("coefficients");
    let n = extended.num_cells();
    let (mut sum, mut count) = (0.0, 0);
    for_each_child(c, ndim, dims, Some(a), |f| {
        sum += beta[a * n + extended.index(f)];
        count += 1;
    });
    sum / count as f64
}

/// Calls `f` on the fine children 2c + δ of coarse cell c inside the fine
/// grid (z outermost); along `layer`'s axis only the upper child.
fn for_each_child(
    c: [usize; 3],
    ndim: usize,
    dims: [usize; 3],
    layer: Option<usize>,
    mut f: impl FnMut([usize; 3]),
) {
    let span = |b: usize| {
        if b >= ndim {
            c[b]..c[b] + 1
        } else if layer == Some(b) {
            2 * c[b] + 1..2 * c[b] + 2
        } else {
            2 * c[b]..(2 * c[b] + 2).min(dims[b])
        }
    };
    for k in span(2) {
        for j in span(1) {
            for i in span(0) {
                f([i, j, k]);
            }
        }
    }
}

impl DistributedMultigrid {
    /// Builds the hierarchy of `a` (collective). The coarse operators are
    /// rediscretised ([`CoarseOperators::Galerkin`],
    /// [`CoarseOperators::LumpedGalerkin`] and
    /// [`CoarseOperators::AxisGalerkin`] are refused: their products are
    /// not distributed).
    pub fn new(a: &DistributedGridPoisson, options: &MultigridOptions) -> Result<Self> {
        let start = Instant::now();
        let collective = Rc::clone(&a.collective);
        let before = collective.stats();
        if matches!(
            options.coarse_operators,
            CoarseOperators::Galerkin
                | CoarseOperators::LumpedGalerkin
                | CoarseOperators::AxisGalerkin
        ) {
            return Err(Error::invalid(
                "coarse_operators",
                "the distributed V-cycle has rediscretised coarse levels only",
            ));
        }
        let options = MultigridOptions {
            coarse_operators: CoarseOperators::Rediscretized,
            ..options.clone()
        };
        options.check()?;
        let mut levels = vec![Level {
            op: a.local.clone(),
            galerkin: None,
        }];
        let mut parts = vec![Part::new(a.decomposition.clone(), &a.local)];
        loop {
            let (fine, part) = (&levels[levels.len() - 1].op, &parts[parts.len() - 1]);
            let mut unknowns = [part.owned_unknowns.len() as f64];
            collective.allreduce(&mut unknowns);
            let dims = part.decomposition.dims;
            if unknowns[0] <= options.coarsest_unknowns as f64 || dims.iter().all(|&n| n <= 2) {
                break;
            }
            let Some(coarse) = part.decomposition.coarsened() else {
                break;
            };
            let fine_part = &part.decomposition;
            let beta = fine
                .face_coefficients()
                .map(|_| move |a: usize, c: [usize; 3]| coarse_beta(fine, fine_part, a, c));
            let (cells, beta) = extend_cells(
                &collective,
                &coarse,
                |c| coarse_cell(fine, fine_part, c),
                beta.as_ref()
                    .map(|f| f as &dyn Fn(usize, [usize; 3]) -> f64),
            );
            let h = fine.spacing();
            let ndim = coarse.ndim();
            let spacing = [0, 1, 2].map(|a| if a < ndim { 2.0 * h[a] } else { 1.0 });
            let local = collective.agree_on(local_grid(
                coarse.extended().dims(),
                &cells,
                spacing,
                fine.scale(),
                beta.as_deref(),
            ))?;
            parts.push(Part::new(coarse, &local));
            levels.push(Level {
                op: local,
                galerkin: None,
            });
        }
        // The gathered tail starts at the last distributed level, and runs
        // the rest of the schedule.
        let schedule = options.resolved_schedule();
        let tail_options = MultigridOptions {
            schedule: Some(schedule.starting_at(levels.len() - 1)),
            ..options.clone()
        };
        let (tail, gather) = gather_tail(
            &collective,
            &levels[levels.len() - 1].op,
            &parts[parts.len() - 1],
            &tail_options,
        );
        let tail = collective.agree_on(tail)?;
        let tail_dim = tail.dim();
        let cycle = match options.precision {
            Precision::Double => Cycles::Double(Mutex::new(Cycle::new(&levels, Cycle::default()))),
            Precision::Single => Cycles::Single(Mutex::new(Cycle::new(&levels, Cycle::default()))),
        };
        Ok(Self {
            setup: collective.stats() - before,
            collective,
            levels,
            parts,
            tail,
            gather,
            gathered: Mutex::new((vec![0.0; tail_dim], vec![0.0; tail_dim])),
            runs: a.runs.clone(),
            cycle,
            options,
            schedule,
            setup_seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// The whole grid's size on every level: the distributed ones, then
    /// the serial tail's (its first is the last distributed one).
    pub fn level_dims(&self) -> Vec<[usize; 3]> {
        let mut dims: Vec<[usize; 3]> = self.parts.iter().map(|p| p.decomposition.dims).collect();
        dims.extend(self.tail.level_dims().into_iter().skip(1));
        dims
    }

    /// The number of distributed levels (the last one is gathered).
    pub fn distributed_levels(&self) -> usize {
        self.levels.len()
    }

    /// Wall time of the setup, in seconds.
    pub fn setup_seconds(&self) -> f64 {
        self.setup_seconds
    }

    /// Communication of the setup.
    pub fn setup_comm_stats(&self) -> CommStats {
        self.setup
    }

    fn vcycle<T: Real + HaloValue>(
        &self,
        l: usize,
        bufs: &mut [Buffers<T>],
        gathered: &mut (Vec<f64>, Vec<f64>),
    ) -> Result<()> {
        let (level, part) = (&self.levels[l], &self.parts[l]);
        let (here, coarser) = bufs.split_first_mut().expect("a buffer per level");
        let collective = &*self.collective;
        if l + 1 == self.levels.len() {
            let (r, z) = gathered;
            r.fill(0.0);
            for (&e, &g) in part.owned_unknowns.iter().zip(&self.gather) {
                r[g as usize] = here.b[e as usize].to_f64();
            }
            collective.allreduce(r);
            self.tail.apply_dot(r, z)?;
            for (&e, &g) in part.owned_unknowns.iter().zip(&self.gather) {
                here.x[e as usize] = T::from_f64(z[g as usize]);
            }
            return Ok(());
        }
        let schedule = self.schedule.level(l);
        let smooth = |here: &mut Buffers<T>, omega: f64, exchange: bool| -> Result<()> {
            level.smooth(omega, here, Some(&part.own_rows))?;
            if exchange {
                part.faces.exchange(collective, &mut here.x);
            }
            Ok(())
        };
        vector::scaled_multiply(
            schedule.damping[0],
            &here.inv_diagonal,
            &here.b,
            &mut here.x,
        );
        part.faces.exchange(collective, &mut here.x);
        for &omega in &schedule.damping[1..] {
            smooth(here, omega, true)?;
        }
        let (coarse_level, coarse_part) = (&self.levels[l + 1], &self.parts[l + 1]);
        let transfer = Transfer {
            fine: &level.op,
            coarse: &coarse_level.op,
            shift: part.shift(),
        };
        // The ghost cells' residuals are their owners' to restrict.
        level.restrict_residual(
            &transfer,
            &here.b,
            &here.x,
            own_cells(&part.decomposition),
            &mut here.r,
            &mut coarser[0].b,
        )?;
        coarse_part.all.accumulate(collective, &mut coarser[0].b);
        self.vcycle(l + 1, coarser, gathered)?;
        coarse_part.all.exchange(collective, &mut coarser[0].x);
        vector::scale(schedule.correction, &mut coarser[0].x);
        transfer.prolong_add(&coarser[0].x, &mut here.x);
        part.faces.exchange(collective, &mut here.x);
        let sweeps = schedule.damping.len();
        for (s, &omega) in schedule.damping.iter().rev().enumerate() {
            smooth(here, omega, s + 1 < sweeps)?;
        }
        Ok(())
    }

    fn precondition<T: Real + HaloValue>(
        &self,
        cycle: &Mutex<Cycle<T>>,
        r: &[f64],
        z: &mut [f64],
    ) -> Result<f64> {
        let mut guard = cycle.lock().unwrap_or_else(|p| p.into_inner());
        let mut gathered = self.gathered.lock().unwrap_or_else(|p| p.into_inner());
        let levels = &mut guard.levels;
        let runs = &self.runs;
        runs.scatter(r, &mut levels[0].b, |from, to| {
            for (t, &f) in to.iter_mut().zip(from) {
                *t = T::from_f64(f);
            }
        });
        self.vcycle(0, levels, &mut gathered)?;
        Ok(runs.gather(&levels[0].x, z, |from, to, o| {
            vector::widen_dot_serial(from, &r[o..o + to.len()], to)
        }))
    }
}

/// The last distributed level gathered onto every rank as one grid (one
/// reduction of its cells and coefficients), its serial hierarchy, and
/// the gathered grid's unknown of each owned unknown.
fn gather_tail(
    collective: &Collective,
    local: &GridPoisson,
    part: &Part,
    options: &MultigridOptions,
) -> (Result<Multigrid>, Vec<u32>) {
    let decomposition = &part.decomposition;
    let (dims, ndim) = (decomposition.dims, decomposition.ndim());
    let (owned, extended) = (decomposition.owned(), decomposition.extended());
    let n: usize = dims.iter().product();
    let with_beta = local.face_coefficients().is_some();
    let fields = if with_beta { 1 + ndim } else { 1 };
    if n > MAX_GATHERED {
        return (
            Err(Error::invalid(
                "box",
                format!(
                    "the boxes cannot be halved below a level of {dims:?} cells (a box would be empty), \
                     and that level, gathered onto every rank, has more than {MAX_GATHERED} cells: \
                     use thicker boxes (fewer ranks along the thin axis)"
                ),
            )),
            Vec::new(),
        );
    }
    let mut values = match crate::alloc::with_capacity(fields * n, "gathered coarse level") {
        Ok(mut v) => {
            v.resize(fields * n, 0.0);
            v
        }
        Err(e) => return (Err(e), Vec::new()),
    };
    let global = |c: [usize; 3]| c[0] + dims[0] * (c[1] + dims[1] * c[2]);
    owned.for_each(|c| {
        let (g, e) = (global(c), extended.index(c));
        values[g] = cell_code(local.cell(e));
        if let Some(beta) = local.face_coefficients() {
            for a in 0..ndim {
                values[(1 + a) * n + g] = beta[a * extended.num_cells() + e];
            }
        }
    });
    collective.allreduce(&mut values);
    let cells: Vec<Cell> = values[..n].iter().map(|&v| cell_of_code(v)).collect();
    let beta = with_beta.then(|| &values[n..]);
    let grid = match local_grid(dims, &cells, local.spacing(), local.scale(), beta) {
        Ok(grid) => grid,
        Err(e) => return (Err(e), Vec::new()),
    };
    let mut gather = Vec::with_capacity(part.owned_unknowns.len());
    owned.for_each(|c| {
        if let Some(u) = grid.unknown_of_cell(global(c)) {
            gather.push(u as u32);
        }
    });
    (Multigrid::new(&grid, options), gather)
}

impl Preconditioner for DistributedMultigrid {
    fn dim(&self) -> usize {
        self.parts[0].owned_unknowns.len()
    }

    /// z ← M⁻¹ r on this rank's unknowns (collective); returns this rank's
    /// part of rᵀz.
    fn apply_dot(&self, r: &[f64], z: &mut [f64]) -> Result<f64> {
        Error::check_len("r", self.dim(), r.len())?;
        Error::check_len("z", self.dim(), z.len())?;
        match &self.cycle {
            Cycles::Double(cycle) => self.precondition(cycle, r, z),
            Cycles::Single(cycle) => self.precondition(cycle, r, z),
        }
    }
}
