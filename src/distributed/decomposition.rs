//! The decomposition of a grid into one box of cells per rank: gathered
//! from every rank's own box at setup, checked to be a Cartesian
//! decomposition (each axis cut at the same places for all ranks, every
//! cell owned once), and coarsened with the grid by the V-cycle.

use super::comm::Collective;
use crate::error::{Error, Result};

/// A box of cells [lo, hi) per axis, in the coordinates of the whole grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridBox {
    /// The first cell of the box per axis.
    pub lo: [usize; 3],
    /// One past the last cell per axis.
    pub hi: [usize; 3],
}

impl GridBox {
    /// The box's size per axis.
    pub fn dims(&self) -> [usize; 3] {
        [0, 1, 2].map(|a| self.hi[a] - self.lo[a])
    }

    /// The number of cells.
    pub fn num_cells(&self) -> usize {
        self.dims().iter().product()
    }

    /// The index in the box (x fastest) of the cell at global coordinates `c`.
    #[inline]
    pub(crate) fn index(&self, c: [usize; 3]) -> usize {
        let d = self.dims();
        (c[0] - self.lo[0]) + d[0] * ((c[1] - self.lo[1]) + d[1] * (c[2] - self.lo[2]))
    }

    /// The global coordinates of the cell at index `i` of the box.
    #[inline]
    pub(crate) fn coords(&self, i: usize) -> [usize; 3] {
        let d = self.dims();
        [
            self.lo[0] + i % d[0],
            self.lo[1] + (i / d[0]) % d[1],
            self.lo[2] + i / (d[0] * d[1]),
        ]
    }

    /// Calls `f(c)` for every cell of the box, x fastest.
    pub(crate) fn for_each(&self, mut f: impl FnMut([usize; 3])) {
        for k in self.lo[2]..self.hi[2] {
            for j in self.lo[1]..self.hi[1] {
                for i in self.lo[0]..self.hi[0] {
                    f([i, j, k]);
                }
            }
        }
    }
}

/// Values per rank in the setup reduction: rank present, global dims,
/// box lo and hi, spacing and scale, and a failed-input flag.
const SLOT: usize = 1 + 3 + 3 + 3 + 3 + 1 + 1;

/// A Cartesian decomposition of a grid, known to every rank.
#[derive(Debug, Clone)]
pub(crate) struct Decomposition {
    /// The whole grid's size.
    pub(crate) dims: [usize; 3],
    /// Per axis the cut points 0 = c₀ < c₁ < … < c_m = n.
    cuts: [Vec<usize>; 3],
    /// This rank's position in the rank grid.
    position: [usize; 3],
}

impl Decomposition {
    /// Gathers every rank's grid size, box, spacing and scale, and checks
    /// them (collective). `local` is this rank's check of its own other
    /// arguments: when any rank's failed, every rank fails (that rank with
    /// its own error).
    pub(crate) fn gather(
        collective: &Collective,
        dims: [usize; 3],
        owned: GridBox,
        spacing: [f64; 3],
        scale: f64,
        local: Result<()>,
    ) -> Result<Self> {
        let (rank, size) = (collective.rank(), collective.size());
        if size == 0 {
            return Err(Error::invalid("comm", "the communicator has 0 ranks"));
        }
        let mut values = vec![0.0; SLOT * size + 1];
        let local_failed = local.is_err();
        if rank < size {
            let slot = &mut values[SLOT * rank..SLOT * (rank + 1)];
            slot[0] = 1.0;
            for a in 0..3 {
                slot[1 + a] = dims[a] as f64;
                slot[4 + a] = owned.lo[a] as f64;
                slot[7 + a] = owned.hi[a] as f64;
                slot[10 + a] = spacing[a];
            }
            slot[13] = scale;
            slot[14] = f64::from(u8::from(local_failed));
        } else {
            values[SLOT * size] = 1.0;
        }
        collective.allreduce(&mut values);
        collective.agree()?;
        local?;
        if rank >= size {
            return Err(Error::invalid(
                "comm",
                format!("rank = {rank} must be below size = {size}"),
            ));
        }
        if values[SLOT * size] != 0.0 {
            return Err(Error::invalid(
                "comm",
                format!("a rank reported a rank index not below size = {size}"),
            ));
        }
        let slots: Vec<&[f64]> = values[..SLOT * size].chunks_exact(SLOT).collect();
        for (r, slot) in slots.iter().enumerate() {
            if slot[0] != 1.0 {
                return Err(Error::invalid(
                    "comm",
                    format!(
                        "{} ranks reported rank index {r}: every index in 0..{size} must be used once",
                        slot[0]
                    ),
                ));
            }
            if slot[14] != 0.0 {
                return Err(Error::invalid(
                    "comm",
                    format!("rank {r} rejected its own arguments (its error message says which)"),
                ));
            }
        }
        let field = |r: usize, at: usize| slots[r][at];
        for r in 0..size {
            for a in 0..3 {
                if field(r, 1 + a) != dims[a] as f64 {
                    return Err(Error::invalid(
                        "dims",
                        format!(
                            "rank {r} has grid size {:?}, rank {rank} has {dims:?}: every rank must pass the same grid",
                            [0, 1, 2].map(|b| field(r, 1 + b) as usize)
                        ),
                    ));
                }
                if field(r, 10 + a) != spacing[a] || field(r, 13) != scale {
                    return Err(Error::invalid(
                        "spacing",
                        format!("rank {r} has another grid spacing or scale than rank {rank}"),
                    ));
                }
            }
        }
        if dims
            .iter()
            .try_fold(1usize, |a, &n| a.checked_mul(n))
            .is_none()
        {
            return Err(Error::invalid(
                "dims",
                format!("the grid {dims:?} has more cells than fit in a usize"),
            ));
        }
        let boxes: Vec<GridBox> = (0..size)
            .map(|r| GridBox {
                lo: [0, 1, 2].map(|a| field(r, 4 + a) as usize),
                hi: [0, 1, 2].map(|a| field(r, 7 + a) as usize),
            })
            .collect();
        for (r, b) in boxes.iter().enumerate() {
            for a in 0..3 {
                if !(b.lo[a] < b.hi[a] && b.hi[a] <= dims[a]) {
                    return Err(Error::invalid(
                        "box",
                        format!(
                            "rank {r}'s box lo = {:?}, hi = {:?} must be non-empty and inside the grid {dims:?}",
                            b.lo, b.hi
                        ),
                    ));
                }
            }
        }
        let mut cuts: [Vec<usize>; 3] = Default::default();
        for a in 0..3 {
            let mut intervals: Vec<(usize, usize)> =
                boxes.iter().map(|b| (b.lo[a], b.hi[a])).collect();
            intervals.sort_unstable();
            intervals.dedup();
            let mut end = 0;
            cuts[a].push(0);
            for &(lo, hi) in &intervals {
                if lo != end {
                    return Err(Error::invalid(
                        "box",
                        format!(
                            "the boxes do not form a Cartesian decomposition: along axis {a} the box ranges [{lo}, {hi}) and the ranges before it {} (every rank's range along an axis must be one of the same non-overlapping pieces of [0, {}))",
                            if lo < end { format!("overlap at {lo}") } else { format!("leave a gap [{end}, {lo})") },
                            dims[a]
                        ),
                    ));
                }
                end = hi;
                cuts[a].push(hi);
            }
            if end != dims[a] {
                return Err(Error::invalid(
                    "box",
                    format!(
                        "the boxes leave cells {end}.. of axis {a} (size {}) uncovered",
                        dims[a]
                    ),
                ));
            }
        }
        let position_of =
            |b: &GridBox| [0, 1, 2].map(|a| cuts[a].binary_search(&b.lo[a]).expect("a cut"));
        let counts = [0, 1, 2].map(|a| cuts[a].len() - 1);
        let mut owner = vec![usize::MAX; counts.iter().product()];
        for (r, b) in boxes.iter().enumerate() {
            let p = position_of(b);
            let slot = &mut owner[p[0] + counts[0] * (p[1] + counts[1] * p[2])];
            if *slot != usize::MAX {
                return Err(Error::invalid(
                    "box",
                    format!(
                        "ranks {} and {r} have the same box lo = {:?}, hi = {:?}",
                        *slot, b.lo, b.hi
                    ),
                ));
            }
            *slot = r;
        }
        if let Some(missing) = owner.iter().position(|&r| r == usize::MAX) {
            let p = [
                missing % counts[0],
                (missing / counts[0]) % counts[1],
                missing / (counts[0] * counts[1]),
            ];
            return Err(Error::invalid(
                "box",
                format!(
                    "no rank owns the cells [{:?}, {:?}): the boxes leave a gap",
                    [0, 1, 2].map(|a| cuts[a][p[a]]),
                    [0, 1, 2].map(|a| cuts[a][p[a] + 1])
                ),
            ));
        }
        Ok(Self {
            dims,
            position: position_of(&boxes[rank]),
            cuts,
        })
    }

    /// The number of axes: 2 when the grid has one layer along z.
    pub(crate) fn ndim(&self) -> usize {
        if self.dims[2] > 1 {
            3
        } else {
            2
        }
    }

    /// This rank's box.
    pub(crate) fn owned(&self) -> GridBox {
        GridBox {
            lo: [0, 1, 2].map(|a| self.cuts[a][self.position[a]]),
            hi: [0, 1, 2].map(|a| self.cuts[a][self.position[a] + 1]),
        }
    }

    /// This rank's box and one layer of neighbours' cells around it (its
    /// ghost layer), clipped to the grid.
    pub(crate) fn extended(&self) -> GridBox {
        let owned = self.owned();
        GridBox {
            lo: owned.lo.map(|l| l.saturating_sub(1)),
            hi: [0, 1, 2].map(|a| (owned.hi[a] + 1).min(self.dims[a])),
        }
    }

    /// Calls `f(c, g, a)` for each face between a cell c of this rank's box
    /// and a cell g = c ± e_a of its ghost layer, one side of the box after
    /// the other.
    pub(crate) fn for_each_ghost_face(&self, mut f: impl FnMut([usize; 3], [usize; 3], usize)) {
        let (owned, extended) = (self.owned(), self.extended());
        for a in 0..self.ndim() {
            for up in [false, true] {
                let mut layer = owned;
                if up {
                    if owned.hi[a] == extended.hi[a] {
                        continue;
                    }
                    layer.lo[a] = owned.hi[a] - 1;
                } else {
                    if owned.lo[a] == extended.lo[a] {
                        continue;
                    }
                    layer.hi[a] = owned.lo[a] + 1;
                }
                layer.for_each(|c| {
                    let mut g = c;
                    g[a] = if up { c[a] + 1 } else { c[a] - 1 };
                    f(c, g, a);
                });
            }
        }
    }

    /// The offsets of this rank's neighbours in the rank grid (faces only,
    /// or faces, edges and corners).
    pub(crate) fn neighbours(&self, faces_only: bool) -> Vec<[i32; 3]> {
        let mut offsets = Vec::new();
        for dz in -1..=1i32 {
            for dy in -1..=1i32 {
                for dx in -1..=1i32 {
                    let o = [dx, dy, dz];
                    let nonzero = o.iter().filter(|&&v| v != 0).count();
                    if nonzero == 0 || (faces_only && nonzero > 1) {
                        continue;
                    }
                    let exists = (0..3).all(|a| {
                        let p = self.position[a] as i64 + i64::from(o[a]);
                        p >= 0 && (p as usize) < self.cuts[a].len() - 1
                    });
                    if exists {
                        offsets.push(o);
                    }
                }
            }
        }
        offsets
    }

    /// The decomposition of the coarse grid (each coarse cell c owned by
    /// the owner of fine cell 2c, so cuts become ⌈c/2⌉), or None when a
    /// box would be empty.
    pub(crate) fn coarsened(&self) -> Option<Self> {
        let ndim = self.ndim();
        let mut cuts = self.cuts.clone();
        for cut in cuts.iter_mut().take(ndim) {
            for c in cut.iter_mut() {
                *c = c.div_ceil(2);
            }
            if cut.windows(2).any(|w| w[0] == w[1]) {
                return None;
            }
        }
        let mut dims = self.dims;
        for n in dims.iter_mut().take(ndim) {
            *n = n.div_ceil(2);
        }
        Some(Self {
            dims,
            cuts,
            position: self.position,
        })
    }
}
