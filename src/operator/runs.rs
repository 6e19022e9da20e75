//! The plan of the grid stencil kernel for uniform face weights: each grid
//! row's fluid cells split into runs (maximal stretches of consecutive
//! fluid cells along x, whose unknowns are consecutive), and each run's y
//! and z faces split into facings (stretches across which the neighbouring
//! row is all air or all fluid; solid stretches couple nothing and are
//! left out). A run is then a 1D stencil plus one shifted vector update
//! per facing, vectorisable however obstacles and air cut the rows.

use super::codes::{AIR, SOLID};
use crate::alloc;
use crate::error::Result;
use crate::scalar::Real;

/// A maximal stretch of fluid cells of one grid row.
#[derive(Debug, Clone, Copy)]
pub(super) struct Run {
    /// The unknown of its first cell; the others follow.
    pub(super) first: u32,
    pub(super) len: u32,
    /// Whether the cell before (after) it along x is air; a solid cell or
    /// the grid's end there couples nothing.
    pub(super) air_before: bool,
    pub(super) air_after: bool,
    /// Its facings are `facings[facings.0..facings.1]` of the plan.
    facings: (u32, u32),
}

/// Which neighbouring row a facing looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// y − 1, y + 1, z − 1, z + 1.
    YLower,
    YUpper,
    ZLower,
    ZUpper,
}

impl Side {
    const ALL: [Side; 4] = [Side::YLower, Side::YUpper, Side::ZLower, Side::ZUpper];

    /// The axis normal to the faces (1 = y, 2 = z).
    pub(super) fn axis(self) -> usize {
        match self {
            Side::YLower | Side::YUpper => 1,
            Side::ZLower | Side::ZUpper => 2,
        }
    }

    /// Whether the neighbouring row precedes the run's row.
    pub(super) fn is_lower(self) -> bool {
        matches!(self, Side::YLower | Side::ZLower)
    }
}

/// A stretch of a run whose neighbours across one side are all fluid (with
/// consecutive unknowns) or all air.
#[derive(Debug, Clone, Copy)]
pub(super) struct Facing {
    pub(super) side: Side,
    /// Offset of its first cell within the run, and its length.
    pub(super) offset: u32,
    pub(super) len: u32,
    /// The unknown across the face from its first cell, or [`AIR`].
    pub(super) across: u32,
}

/// The runs and facings of every grid row.
#[derive(Debug, Clone)]
pub(super) struct RunPlan {
    /// The runs of row r are `runs[row_runs[r]..row_runs[r + 1]]`.
    row_runs: Vec<u32>,
    runs: Vec<Run>,
    facings: Vec<Facing>,
}

/// The kind of a cell code: [`SOLID`], [`AIR`], or 0 for any fluid cell.
fn kind(code: u32) -> u32 {
    match code {
        SOLID | AIR => code,
        _ => 0,
    }
}

/// The end of the maximal stretch of cells of one kind that starts at
/// `a`. A slice that is all fluid (the common case) is recognised from its
/// start by one branch-free test (no early exit, so it vectorises).
fn stretch_end(codes: &[u32], a: usize) -> usize {
    if a == 0 && codes.iter().fold(true, |all, &u| all & (u < AIR)) {
        return codes.len();
    }
    let k = kind(codes[a]);
    codes[a..]
        .iter()
        .position(|&u| kind(u) != k)
        .map_or(codes.len(), |len| a + len)
}

impl RunPlan {
    /// The plan of a grid of `dims` cells with per-cell codes `unknown`
    /// (a fluid cell's unknown, else [`AIR`] or [`SOLID`]).
    pub(super) fn new(dims: [usize; 3], unknown: &[u32]) -> Result<Self> {
        let [nx, ny, nz] = dims;
        let num_rows = ny * nz;
        let mut plan = Self {
            row_runs: alloc::with_capacity(num_rows + 1, "stencil row runs")?,
            runs: Vec::new(),
            facings: Vec::new(),
        };
        for r in 0..num_rows {
            plan.row_runs.push(plan.runs.len() as u32);
            let (j, k) = (r % ny, r / ny);
            let cells = &unknown[r * nx..(r + 1) * nx];
            // The neighbouring rows' codes, None outside the grid.
            let row_at = |j: Option<usize>, k: Option<usize>| {
                let (j, k) = (j.filter(|&j| j < ny)?, k.filter(|&k| k < nz)?);
                let s = (j + ny * k) * nx;
                Some(&unknown[s..s + nx])
            };
            let neighbours = [
                row_at(j.checked_sub(1), Some(k)),
                row_at(Some(j + 1), Some(k)),
                row_at(Some(j), k.checked_sub(1)),
                row_at(Some(j), Some(k + 1)),
            ];
            let mut a = 0;
            while a < nx {
                if cells[a] >= AIR {
                    a += 1;
                    continue;
                }
                let b = stretch_end(cells, a);
                let start = plan.facings.len() as u32;
                for (side, row) in Side::ALL.into_iter().zip(neighbours) {
                    if let Some(row) = row {
                        plan.add_facings(side, &row[a..b])?;
                    }
                }
                let run = Run {
                    first: cells[a],
                    len: (b - a) as u32,
                    air_before: a > 0 && cells[a - 1] == AIR,
                    air_after: b < nx && cells[b] == AIR,
                    facings: (start, plan.facings.len() as u32),
                };
                alloc::push(&mut plan.runs, run, "stencil runs")?;
                a = b;
            }
        }
        plan.row_runs.push(plan.runs.len() as u32);
        Ok(plan)
    }

    /// Splits the neighbouring cells `across` of a run into facings.
    fn add_facings(&mut self, side: Side, across: &[u32]) -> Result<()> {
        let mut a = 0;
        while a < across.len() {
            let b = stretch_end(across, a);
            if across[a] != SOLID {
                let facing = Facing {
                    side,
                    offset: a as u32,
                    len: (b - a) as u32,
                    across: across[a],
                };
                alloc::push(&mut self.facings, facing, "stencil facings")?;
            }
            a = b;
        }
        Ok(())
    }

    /// Every run, in cell order (so their unknowns follow each other).
    pub(super) fn all(&self) -> &[Run] {
        &self.runs
    }

    /// The runs of grid row `r`, in cell order.
    pub(super) fn row(&self, r: usize) -> &[Run] {
        &self.runs[self.row_runs[r] as usize..self.row_runs[r + 1] as usize]
    }

    /// The facings of `run`.
    pub(super) fn facings(&self, run: &Run) -> &[Facing] {
        &self.facings[run.facings.0 as usize..run.facings.1 as usize]
    }

    /// y ← A p on the unknowns of `run` (y holds exactly them), with face
    /// weights `w` = s/h_a² per axis.
    #[inline]
    pub(super) fn apply_run<T: Real>(&self, run: &Run, w: [T; 3], p: &[T], y: &mut [T]) {
        let (first, len) = (run.first as usize, run.len as usize);
        let pr = &p[first..first + len];
        let wx = w[0];
        let end = |air: bool| if air { wx } else { T::default() };
        if len == 1 {
            y[0] = (end(run.air_before) + end(run.air_after)) * pr[0];
        } else {
            y[0] = (wx + end(run.air_before)) * pr[0] - wx * pr[1];
            y[len - 1] = (wx + end(run.air_after)) * pr[len - 1] - wx * pr[len - 2];
            let d = wx + wx;
            for i in 1..len - 1 {
                y[i] = d * pr[i] - wx * (pr[i - 1] + pr[i + 1]);
            }
        }
        for f in self.facings(run) {
            let wf = w[f.side.axis()];
            let range = f.offset as usize..(f.offset + f.len) as usize;
            let (ys, ps) = (&mut y[range.clone()], &pr[range]);
            if f.across == AIR {
                for (yi, &pi) in ys.iter_mut().zip(ps) {
                    *yi += wf * pi;
                }
            } else {
                let q = &p[f.across as usize..f.across as usize + ps.len()];
                for ((yi, &pi), &qi) in ys.iter_mut().zip(ps).zip(q) {
                    *yi += wf * (pi - qi);
                }
            }
        }
    }

    /// Appends the diagonal of A on the unknowns of `run` to `diagonal`.
    pub(super) fn push_diagonal(&self, run: &Run, w: [f64; 3], diagonal: &mut Vec<f64>) {
        let (len, start) = (run.len as usize, diagonal.len());
        diagonal.extend((0..len).map(|i| {
            let before = i > 0 || run.air_before;
            let after = i + 1 < len || run.air_after;
            w[0] * (before as u8 + after as u8) as f64
        }));
        for f in self.facings(run) {
            let at = start + f.offset as usize;
            for d in &mut diagonal[at..at + f.len as usize] {
                *d += w[f.side.axis()];
            }
        }
    }
}
