//! A level's unknowns on its grid, for the Galerkin product and its
//! lumping: each unknown's cell coordinates, the unknown at a cell, and the
//! window of offsets −2 … 2 per axis within which a Galerkin row's
//! couplings lie.

use crate::alloc;
use crate::error::Result;
use crate::operator::{cell_coords, GridPoisson, LinearOperator, AIR};

/// The largest offset along an axis between two coupled unknowns of a
/// Galerkin level.
pub(super) const REACH: i64 = 2;

/// Offsets per axis in the window: −REACH … REACH.
const SPAN: usize = 2 * REACH as usize + 1;

/// The unknowns of one level and their cells.
pub(super) struct Lattice<'a> {
    dims: [usize; 3],
    ndim: usize,
    codes: &'a [u32],
    coords: Vec<[i64; 3]>,
}

impl<'a> Lattice<'a> {
    pub(super) fn new(grid: &'a GridPoisson) -> Result<Self> {
        let dims = grid.dims();
        let codes = grid.unknown_codes();
        let mut coords = alloc::with_capacity(grid.dim(), "unknown coordinates")?;
        coords.extend(
            grid.cells_of_unknowns()
                .iter()
                .map(|&c| cell_coords(c as usize, dims).map(|v| v as i64)),
        );
        Ok(Self {
            dims,
            ndim: grid.ndim(),
            codes,
            coords,
        })
    }

    /// The cell coordinates of unknown `u`.
    pub(super) fn coords(&self, u: usize) -> [i64; 3] {
        self.coords[u]
    }

    /// The unknown at cell `p`, if `p` is in the grid and fluid.
    pub(super) fn unknown_at(&self, p: [i64; 3]) -> Option<usize> {
        if (0..3).any(|a| p[a] < 0 || p[a] >= self.dims[a] as i64) {
            return None;
        }
        self.unknown_of_cell(self.cell(p))
    }

    /// Whether every cell within the reach of `p` along each axis is in
    /// the grid (so [`Lattice::code_at`] needs no bounds).
    pub(super) fn interior(&self, p: [i64; 3]) -> bool {
        (0..self.ndim).all(|a| p[a] >= REACH && p[a] + REACH < self.dims[a] as i64)
    }

    /// The difference of cell indices of two cells `offset` apart.
    pub(super) fn cell_delta(&self, offset: [i64; 3]) -> isize {
        let [nx, ny, _] = self.dims.map(|v| v as i64);
        (offset[0] + nx * (offset[1] + ny * offset[2])) as isize
    }

    /// The cell index of `p` (in the grid).
    pub(super) fn cell(&self, p: [i64; 3]) -> usize {
        let [i, j, k] = p.map(|v| v as usize);
        i + self.dims[0] * (j + self.dims[1] * k)
    }

    /// The unknown of cell `cell`, if it is fluid.
    pub(super) fn unknown_of_cell(&self, cell: usize) -> Option<usize> {
        let code = self.codes[cell];
        (code < AIR).then_some(code as usize)
    }

    /// The window slot of offset 0: slot(o) = centre + linear(o) for every
    /// offset o within the reach.
    pub(super) fn centre(&self) -> usize {
        self.window_len() / 2
    }

    /// linear(p) = p_x + 5 p_y + 25 p_z: for p and q within the reach of
    /// each other along every axis, slot(q − p) = centre + linear(q) −
    /// linear(p).
    pub(super) fn linear(&self, p: [i64; 3]) -> i64 {
        let span = SPAN as i64;
        p[0] + span * (p[1] + span * p[2])
    }

    /// The number of slots of the window: 5ᵈ.
    pub(super) fn window_len(&self) -> usize {
        SPAN.pow(self.ndim as u32)
    }

    /// The window slot of `offset`, z outermost and x innermost (so slots
    /// in increasing order name cells in increasing order), or `None` past
    /// the reach.
    pub(super) fn slot(&self, offset: [i64; 3]) -> Option<usize> {
        let mut slot = 0;
        for &o in offset[..self.ndim].iter().rev() {
            if o.abs() > REACH {
                return None;
            }
            slot = slot * SPAN + (o + REACH) as usize;
        }
        Some(slot)
    }

    /// The offset of window slot `slot`.
    pub(super) fn offset(&self, mut slot: usize) -> [i64; 3] {
        let mut offset = [0; 3];
        for o in &mut offset[..self.ndim] {
            *o = (slot % SPAN) as i64 - REACH;
            slot /= SPAN;
        }
        offset
    }
}

/// `a` + `b`, componentwise.
pub(super) fn add(a: [i64; 3], b: [i64; 3]) -> [i64; 3] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

/// `a` − `b`, componentwise.
pub(super) fn sub(a: [i64; 3], b: [i64; 3]) -> [i64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
