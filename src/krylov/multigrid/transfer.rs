//! The grid transfers of the V-cycle, applied from their rule, never
//! assembled (except for Galerkin coarse operators).
//!
//! Prolongation P (coarse unknowns → fine unknowns) is cell-centred
//! multilinear: fine cell p has parent P = ⌊p/2⌋ and, per axis a, the
//! coarse neighbour q_a = P_a − 1 when p_a is even, P_a + 1 when odd; each
//! of the 2ᵈ combinations of parent and neighbour coordinates has the
//! weight Π_a (3/4 or 1/4). A combination outside the grid or on a solid
//! coarse cell takes the parent's value instead (a Neumann wall mirrors
//! it); one on an air cell contributes 0 (Dirichlet). Restriction is
//! R = Pᵀ/2ᵈ, applied by scattering each fine residual along its row of P,
//! so that R is exactly the scaled transpose and the V-cycle symmetric.

#[cfg(test)]
use crate::error::{Error, Result};
#[cfg(test)]
use crate::operator::LinearOperator;
use crate::operator::{GridPoisson, AIR, SOLID};
use crate::parallel::{for_blocks, DisjointSlice};
use crate::scalar::Real;
#[cfg(test)]
use faer::sparse::{SparseColMat, Triplet};
use std::ops::Range;

/// Fine cells per parallel block of the prolongation.
const BLOCK_CELLS: usize = 16 * 1024;

/// The transfers between `fine` and its coarsening `coarse`.
///
/// `shift[a]` ∈ {0, 1} is the parity of the fine grid's first cell along
/// axis a in a larger grid (a rank's box of a distributed grid, whose
/// coarse box starts at ⌊first/2⌋): fine cell p is cell p + shift of that
/// grid, with parent ⌊(p + shift)/2⌋ in `coarse`. 0 on a whole grid.
pub(crate) struct Transfer<'a> {
    pub(crate) fine: &'a GridPoisson,
    pub(crate) coarse: &'a GridPoisson,
    pub(crate) shift: [usize; 3],
}

/// The fine values a restriction reads.
enum FineValues<'a, T> {
    /// A vector over the fine unknowns.
    Vector(&'a [T]),
    /// The residual b − A x of the fine grid's operator, computed row by
    /// row as the restriction reads it (never stored), and taken as 0 off
    /// the cells `own` (per axis a range of the fine grid's coordinates: a
    /// rank's own box within its grid with the ghost layer).
    Residual {
        b: &'a [T],
        x: &'a [T],
        own: [Range<usize>; 3],
    },
}

/// The coarse grid rows a fine grid row interpolates from.
struct RowStencil {
    /// The coarse row of the parents.
    parent_row: usize,
    /// Per (y, z) combination: its coarse row (None outside the grid) and
    /// its weight; the first `count` are used (2 in 2D, 4 in 3D).
    combos: [(Option<usize>, f64); 4],
    count: usize,
}

/// Scratch rows of [`Transfer::resolved_row`]: one coarse row's values
/// and solid mask, and the parent row's values (see
/// [`Transfer::row_values`]).
struct RowScratch<T> {
    values: Vec<T>,
    solid: Vec<T>,
    parents: Vec<T>,
}

impl<T: Real> RowScratch<T> {
    fn new(width: usize) -> Self {
        Self {
            values: vec![T::default(); width],
            solid: vec![T::default(); width],
            parents: vec![T::default(); width],
        }
    }
}

/// The unknowns of grid row `row` (j + ny·k) when every cell of it is
/// fluid: then they are consecutive, one per x.
fn fluid_row(grid: &GridPoisson, row: usize) -> Option<Range<usize>> {
    let unknowns = grid.unknowns_of_rows(row..row + 1);
    (unknowns.len() == grid.dims()[0]).then_some(unknowns)
}

/// row[i] += (even or odd)[(i + shift)/2] as i + shift is even or odd:
/// the fine row's cells from the values of their parents' two children.
fn interleave_add<T: Real>(even: &[T], odd: &[T], shift: usize, row: &mut [T]) {
    let (row, p0) = match (shift, row.split_first_mut()) {
        (1, Some((first, rest))) => {
            *first += odd[0];
            (rest, 1)
        }
        _ => (row, 0),
    };
    let last_parent = p0 + row.len() / 2;
    let mut pairs = row.chunks_exact_mut(2);
    for ((pair, &e), &o) in (&mut pairs).zip(&even[p0..]).zip(&odd[p0..]) {
        pair[0] += e;
        pair[1] += o;
    }
    if let [last] = pairs.into_remainder() {
        *last += even[last_parent];
    }
}

/// The transpose of [`interleave_add`]: even[p] and odd[p] are the fine
/// row's cells 2p − shift and 2p + 1 − shift, 0 where outside the row.
fn deinterleave<T: Real>(row: &[T], shift: usize, even: &mut [T], odd: &mut [T]) {
    even.fill(T::default());
    odd.fill(T::default());
    let (row, p0) = match (shift, row.split_first()) {
        (1, Some((&first, rest))) => {
            odd[0] = first;
            (rest, 1)
        }
        _ => (row, 0),
    };
    let mut pairs = row.chunks_exact(2);
    for ((pair, e), o) in (&mut pairs).zip(&mut even[p0..]).zip(&mut odd[p0..]) {
        *e = pair[0];
        *o = pair[1];
    }
    if let [last] = pairs.remainder() {
        even[p0 + row.len() / 2] = *last;
    }
}

/// out[x] = at[x] + below[x + 1] + above[x − 1] from `sources` = [at,
/// below, above], a term outside the row left out: coarse cell x's share
/// of a fine row's restricted residual along x.
fn gather_along_x<T: Real>(sources: [&[T]; 3], out: &mut [T]) {
    let [at, below, above] = sources;
    let width = out.len();
    out.copy_from_slice(at);
    for (t, &lo) in out[..width - 1].iter_mut().zip(&below[1..]) {
        *t += lo;
    }
    for (t, &hi) in out[1..].iter_mut().zip(above) {
        *t += hi;
    }
}

impl Transfer<'_> {
    /// The coarse neighbour coordinate of fine coordinate p (n coarse cells
    /// along the axis): toward the side of p within its parent.
    #[inline(always)]
    fn neighbour(p: usize, n: usize) -> Option<usize> {
        let parent = p / 2;
        if p % 2 == 0 {
            parent.checked_sub(1)
        } else {
            Some(parent + 1).filter(|&q| q < n)
        }
    }

    fn row_stencil(&self, r: usize) -> RowStencil {
        let (fd, cd) = (self.fine.dims(), self.coarse.dims());
        let three_d = self.fine.ndim() == 3;
        let (j, k) = (r % fd[1] + self.shift[1], r / fd[1] + self.shift[2]);
        let (pj, pk) = (j / 2, k / 2);
        let coarse_row = |cj: usize, ck: usize| cj + cd[1] * ck;
        let qj = Self::neighbour(j, cd[1]);
        let qk = if three_d {
            Self::neighbour(k, cd[2])
        } else {
            None
        };
        let wz = if three_d { 0.75 } else { 1.0 };
        RowStencil {
            parent_row: coarse_row(pj, pk),
            combos: [
                (Some(coarse_row(pj, pk)), 0.75 * wz),
                (qj.map(|qj| coarse_row(qj, pk)), 0.25 * wz),
                (qk.map(|qk| coarse_row(pj, qk)), 0.75 * 0.25),
                (qj.zip(qk).map(|(qj, qk)| coarse_row(qj, qk)), 0.25 * 0.25),
            ],
            count: if three_d { 4 } else { 2 },
        }
    }

    /// The first coarse unknown of each combination's row when every one
    /// exists and is all fluid: P is then the plain tensor product there.
    fn fluid_rows(&self, stencil: &RowStencil) -> Option<[usize; 4]> {
        let mut starts = [0; 4];
        for (start, &(row, _)) in starts.iter_mut().zip(&stencil.combos[..stencil.count]) {
            *start = fluid_row(self.coarse, row?)?.start;
        }
        Some(starts)
    }

    /// Calls `f(coarse unknown, weight)` for the entries of P's row of the
    /// fine cell at x index `i` of the row of `stencil` (possibly repeated).
    #[inline(always)]
    fn for_each_cell_entry(&self, stencil: &RowStencil, i: usize, mut f: impl FnMut(usize, f64)) {
        let width = self.coarse.dims()[0];
        let codes = self.coarse.unknown_codes();
        let i = i + self.shift[0];
        let (pi, qi) = (i / 2, Self::neighbour(i, width));
        let parent = stencil.parent_row * width + pi;
        for &(row, w_yz) in &stencil.combos[..stencil.count] {
            for (x, w_x) in [(Some(pi), 0.75), (qi, 0.25)] {
                let target = match (row, x) {
                    (Some(row), Some(x)) => row * width + x,
                    _ => parent,
                };
                let mut code = codes[target];
                if code == SOLID {
                    code = codes[parent];
                }
                if code < AIR {
                    f(code as usize, w_yz * w_x);
                }
            }
        }
    }

    /// Calls `f(fine unknown, coarse unknown, weight)` for every entry of P
    /// in the fine grid rows `rows` (row r = j + ny·k), in unknown order.
    pub(super) fn for_each_entry(&self, rows: Range<usize>, mut f: impl FnMut(usize, usize, f64)) {
        let nx = self.fine.dims()[0];
        for r in rows {
            let stencil = self.row_stencil(r);
            let codes = &self.fine.unknown_codes()[r * nx..(r + 1) * nx];
            for (i, &u) in codes.iter().enumerate() {
                if u < AIR {
                    self.for_each_cell_entry(&stencil, i, |v, w| f(u as usize, v, w));
                }
            }
        }
    }

    /// x_fine ← x_fine + P x_coarse.
    pub(crate) fn prolong_add<T: Real>(&self, x_coarse: &[T], x_fine: &mut [T]) {
        let nx = self.fine.dims()[0];
        let num_rows = self.fine.dims()[1] * self.fine.dims()[2];
        let rows_per_block = (BLOCK_CELLS / nx).max(1);
        let out = DisjointSlice::new(x_fine);
        for_blocks(
            num_rows.div_ceil(rows_per_block),
            2 * self.fine.num_cells(),
            |b| {
                let rows = b * rows_per_block..((b + 1) * rows_per_block).min(num_rows);
                let range = self.fine.unknowns_of_rows(rows.clone());
                let offset = range.start;
                // SAFETY: the unknowns of disjoint row blocks are disjoint.
                let x = unsafe { out.range(range) };
                self.prolong_rows(rows, x_coarse, x, offset);
            },
        );
    }

    /// b_coarse ← R r_fine = Pᵀ r_fine / 2ᵈ.
    ///
    /// Fine cells whose parents lie in coarse planes (k in 3D, j in 2D)
    /// [2g, 2g + 2) write only to coarse planes [2g − 1, 2g + 3): the even
    /// chunks g run in parallel, then the odd ones, each chunk in order, so
    /// the sums do not depend on the thread count.
    pub(crate) fn restrict<T: Real>(&self, r_fine: &[T], b_coarse: &mut [T]) {
        self.restrict_values(&FineValues::Vector(r_fine), b_coarse);
    }

    /// b_coarse ← R (b − A x) on the fine grid, the residual taken as 0 off
    /// the cells `own` (see [`FineValues::Residual`]): the residual and the
    /// restriction in one pass.
    pub(crate) fn restrict_residual<T: Real>(
        &self,
        b: &[T],
        x: &[T],
        own: [Range<usize>; 3],
        b_coarse: &mut [T],
    ) {
        self.restrict_values(&FineValues::Residual { b, x, own }, b_coarse);
    }

    /// b_coarse ← R `fine` (see [`Transfer::restrict`]).
    fn restrict_values<T: Real>(&self, fine: &FineValues<'_, T>, b_coarse: &mut [T]) {
        let (fd, cd) = (self.fine.dims(), self.coarse.dims());
        let three_d = self.fine.ndim() == 3;
        // Grid rows per plane, and planes, of each grid.
        let (fine_plane, coarse_plane, coarse_planes, shift) = if three_d {
            (fd[1], cd[1], cd[2], self.shift[2])
        } else {
            (1, 1, cd[1], self.shift[1])
        };
        let fine_rows = fd[1] * fd[2];
        let coarse_rows = cd[1] * cd[2];
        b_coarse.fill(T::default());
        let out = DisjointSlice::new(b_coarse);
        let chunks = coarse_planes.div_ceil(2);
        for phase in 0..2 {
            for_blocks((chunks + 1 - phase) / 2, self.fine.num_cells(), |c| {
                let g = 2 * c + phase;
                // Fine planes 4g − shift .. 4g + 4 − shift have parents in
                // coarse planes [2g, 2g + 2).
                let rows = ((4 * g).saturating_sub(shift) * fine_plane).min(fine_rows)
                    ..((4 * (g + 1) - shift) * fine_plane).min(fine_rows);
                let written = ((2 * g).saturating_sub(1) * coarse_plane).min(coarse_rows)
                    ..((2 * g + 3) * coarse_plane).min(coarse_rows);
                let range = self.coarse.unknowns_of_rows(written);
                let offset = range.start;
                // SAFETY: chunks of one phase write disjoint plane ranges.
                let b = unsafe { out.range(range) };
                self.restrict_rows(rows, fine, b, offset);
            });
        }
    }

    /// The values of coarse grid row `row` for P: per x, the coarse value
    /// (0 on an air or solid cell) in `values` and 1 on a solid cell, else
    /// 0, in `solid` (a row all fluid is one copy).
    fn row_values<T: Real>(&self, row: usize, x_coarse: &[T], values: &mut [T], solid: &mut [T]) {
        if let Some(unknowns) = fluid_row(self.coarse, row) {
            values.copy_from_slice(&x_coarse[unknowns]);
            solid.fill(T::default());
            return;
        }
        let width = self.coarse.dims()[0];
        let codes = &self.coarse.unknown_codes()[row * width..(row + 1) * width];
        for ((v, s), &code) in values.iter_mut().zip(solid.iter_mut()).zip(codes) {
            *v = if code < AIR {
                x_coarse[code as usize]
            } else {
                T::default()
            };
            *s = T::from_f64(f64::from(u8::from(code == SOLID)));
        }
    }

    /// The coarse-row vectors of P for a fine row of `stencil` with some
    /// non-fluid coarse cell: per coarse x index p, `at[p]`, `below[p]` and
    /// `above[p]` are the (y, z) combinations of the coarse values at x = p,
    /// p − 1 and p + 1, each cell that is solid or outside the grid
    /// replaced by the parent (p on the parent row), an air cell 0.
    fn resolved_row<T: Real>(
        &self,
        stencil: &RowStencil,
        x_coarse: &[T],
        at: &mut [T],
        below: &mut [T],
        above: &mut [T],
        scratch: &mut RowScratch<T>,
    ) {
        let width = at.len();
        let RowScratch {
            values,
            solid,
            parents,
        } = scratch;
        self.row_values(stencil.parent_row, x_coarse, parents, solid);
        for t in [&mut *at, &mut *below, &mut *above] {
            t.fill(T::default());
        }
        for &(row, w) in &stencil.combos[..stencil.count] {
            let w = T::from_f64(w);
            let Some(row) = row else {
                // Outside the grid: every x gives way to the parent.
                for (((a, lo), hi), &q) in at
                    .iter_mut()
                    .zip(&mut *below)
                    .zip(&mut *above)
                    .zip(&*parents)
                {
                    *a += w * q;
                    *lo += w * q;
                    *hi += w * q;
                }
                continue;
            };
            self.row_values(row, x_coarse, values, solid);
            // Per x, the values at x, x − 1 and x + 1 as P sees them from
            // parent x: a solid cell gives way to the parent (one of the
            // two terms is exactly 0).
            let add = |out: &mut [T], values: &[T], solid: &[T], parents: &[T]| {
                for (((t, &v), &s), &q) in out.iter_mut().zip(values).zip(solid).zip(parents) {
                    *t += w * (v + s * q);
                }
            };
            add(at, values, solid, parents);
            below[0] += w * parents[0];
            add(&mut below[1..], values, solid, &parents[1..]);
            above[width - 1] += w * parents[width - 1];
            add(&mut above[..width - 1], &values[1..], &solid[1..], parents);
        }
    }

    /// x[u − offset] += (P x_coarse)_u for the unknowns u of fine `rows`.
    ///
    /// Per fine row, P is fine cell i ↦ ¾ a[i/2] + ¼ (i even ? below : above)[i/2]
    /// with a, below, above coarse-row vectors: the (y, z) combinations of
    /// the coarse values at x = p, p − 1, p + 1, each resolved as P does.
    fn prolong_rows<T: Real>(
        &self,
        rows: Range<usize>,
        x_coarse: &[T],
        x: &mut [T],
        offset: usize,
    ) {
        let (nx, width) = (self.fine.dims()[0], self.coarse.dims()[0]);
        let (three_quarters, quarter) = (T::from_f64(0.75), T::from_f64(0.25));
        let (mut at, mut below, mut above) = (
            vec![T::default(); width],
            vec![T::default(); width],
            vec![T::default(); width],
        );
        let mut scratch = RowScratch::new(width);
        let (mut even, mut odd) = (vec![T::default(); width], vec![T::default(); width]);
        for r in rows {
            let stencil = self.row_stencil(r);
            let combos = &stencil.combos[..stencil.count];
            if let Some(starts) = self.fluid_rows(&stencil) {
                // Every combination's row is fluid: only the ends redirect,
                // to the parent (the weights sum to 1).
                at.fill(T::default());
                for (&start, &(_, w)) in starts.iter().zip(combos) {
                    let w = T::from_f64(w);
                    for (t, &v) in at.iter_mut().zip(&x_coarse[start..start + width]) {
                        *t += w * v;
                    }
                }
                let parents = &x_coarse[starts[0]..starts[0] + width];
                below[0] = parents[0];
                below[1..].copy_from_slice(&at[..width - 1]);
                above[..width - 1].copy_from_slice(&at[1..]);
                above[width - 1] = parents[width - 1];
            } else {
                self.resolved_row(
                    &stencil,
                    x_coarse,
                    &mut at,
                    &mut below,
                    &mut above,
                    &mut scratch,
                );
            }
            // The values of each parent's even and odd fine children.
            for (p, ((e, o), &a)) in even.iter_mut().zip(&mut odd).zip(&at).enumerate() {
                *e = three_quarters * a + quarter * below[p];
                *o = three_quarters * a + quarter * above[p];
            }
            if let Some(unknowns) = fluid_row(self.fine, r) {
                let row = &mut x[unknowns.start - offset..unknowns.end - offset];
                interleave_add(&even, &odd, self.shift[0], row);
                continue;
            }
            let codes = &self.fine.unknown_codes()[r * nx..(r + 1) * nx];
            for (i, &u) in codes.iter().enumerate() {
                if u < AIR {
                    let i = i + self.shift[0];
                    let children = if i % 2 == 0 { &even } else { &odd };
                    x[u as usize - offset] += children[i / 2];
                }
            }
        }
    }

    /// b[v − offset] += (R fine)_v for the entries of P in fine `rows`:
    /// the transpose of [`Transfer::prolong_rows`], row by row.
    fn restrict_rows<T: Real>(
        &self,
        rows: Range<usize>,
        fine: &FineValues<'_, T>,
        b: &mut [T],
        offset: usize,
    ) {
        let [nx, ny, _] = self.fine.dims();
        let width = self.coarse.dims()[0];
        let scale = T::from_f64(1.0 / (1usize << self.fine.ndim()) as f64);
        let (three_quarters, quarter) = (scale * T::from_f64(0.75), scale * T::from_f64(0.25));
        let (mut at, mut below, mut above) = (
            vec![T::default(); width],
            vec![T::default(); width],
            vec![T::default(); width],
        );
        let mut along_x = vec![T::default(); width];
        let mut scratch = RowScratch::new(width);
        // The fine values of each coarse x index's even and odd children.
        let (mut even, mut odd) = (vec![T::default(); width], vec![T::default(); width]);
        let mut residual = Vec::new();
        for r in rows {
            let unknowns = self.fine.unknowns_of_rows(r..r + 1);
            let codes = &self.fine.unknown_codes()[r * nx..(r + 1) * nx];
            let values: &[T] = match fine {
                FineValues::Vector(v) => &v[unknowns.clone()],
                FineValues::Residual { b, x, own } => {
                    if !(own[1].contains(&(r % ny)) && own[2].contains(&(r / ny))) {
                        // A ghost row: its residual is 0 and adds nothing.
                        continue;
                    }
                    residual.resize(unknowns.len(), T::default());
                    self.fine.residual_row(r, b, x, &mut residual);
                    if own[0] != (0..nx) {
                        for (i, &u) in codes.iter().enumerate() {
                            if u < AIR && !own[0].contains(&i) {
                                residual[u as usize - unknowns.start] = T::default();
                            }
                        }
                    }
                    &residual
                }
            };
            let stencil = self.row_stencil(r);
            let combos = &stencil.combos[..stencil.count];
            // Coarse x index p collects the fine cells 2p (below) and 2p + 1
            // (above), 0 where not fluid or outside.
            if values.len() == nx {
                deinterleave(values, self.shift[0], &mut even, &mut odd);
            } else {
                even.fill(T::default());
                odd.fill(T::default());
                for (i, &u) in codes.iter().enumerate() {
                    if u < AIR {
                        let i = i + self.shift[0];
                        let children = if i % 2 == 0 { &mut even } else { &mut odd };
                        children[i / 2] = values[u as usize - unknowns.start];
                    }
                }
            }
            for ((((a, lo), hi), &r0), &r1) in at
                .iter_mut()
                .zip(&mut below)
                .zip(&mut above)
                .zip(&even)
                .zip(&odd)
            {
                *a = three_quarters * (r0 + r1);
                *lo = quarter * r0;
                *hi = quarter * r1;
            }
            if let Some(starts) = self.fluid_rows(&stencil) {
                // Coarse x gathers at[x] + below[x + 1] + above[x − 1]; the
                // ends' outward quarters go to their parents.
                gather_along_x([&at, &below, &above], &mut along_x);
                for (&start, &(_, w)) in starts.iter().zip(combos) {
                    let w = T::from_f64(w);
                    for (bv, &t) in b[start - offset..start - offset + width]
                        .iter_mut()
                        .zip(&along_x)
                    {
                        *bv += w * t;
                    }
                }
                b[starts[0] - offset] += below[0];
                b[starts[0] + width - 1 - offset] += above[width - 1];
            } else {
                self.restrict_resolved(
                    &stencil,
                    [&at, &below, &above],
                    b,
                    offset,
                    &mut along_x,
                    &mut scratch,
                );
            }
        }
    }

    /// b[v − offset] += the entries of R of a fine row of `stencil` with
    /// some non-fluid coarse cell, from its coarse-row vectors `sources` =
    /// [at, below, above] (see [`Transfer::resolved_row`], whose transpose
    /// this is): an entry whose coarse cell is solid or outside the grid
    /// goes to the parent, one on an air cell is dropped.
    fn restrict_resolved<T: Real>(
        &self,
        stencil: &RowStencil,
        sources: [&[T]; 3],
        b: &mut [T],
        offset: usize,
        along_x: &mut [T],
        scratch: &mut RowScratch<T>,
    ) {
        let [at, below, above] = sources;
        let width = at.len();
        let codes = self.coarse.unknown_codes();
        let one = T::from_f64(1.0);
        gather_along_x(sources, along_x);
        let RowScratch {
            solid,
            parents: to_parent,
            ..
        } = scratch;
        to_parent.fill(T::default());
        for &(row, w) in &stencil.combos[..stencil.count] {
            let w = T::from_f64(w);
            let Some(row) = row else {
                for (((t, &a), &lo), &hi) in to_parent.iter_mut().zip(at).zip(below).zip(above) {
                    *t += w * (a + lo + hi);
                }
                continue;
            };
            if let Some(unknowns) = fluid_row(self.coarse, row) {
                let out = &mut b[unknowns.start - offset..unknowns.end - offset];
                for (bv, &t) in out.iter_mut().zip(&*along_x) {
                    *bv += w * t;
                }
                // Only the ends' outward sources leave the row.
                to_parent[0] += w * below[0];
                to_parent[width - 1] += w * above[width - 1];
                continue;
            }
            let row_codes = &codes[row * width..(row + 1) * width];
            for ((s, &code), &t) in solid.iter_mut().zip(row_codes).zip(&*along_x) {
                if code < AIR {
                    b[code as usize - offset] += w * t;
                }
                *s = T::from_f64(f64::from(u8::from(code == SOLID)));
            }
            // Source p's entries whose cells (p, p − 1, p + 1) are solid or
            // outside the row give way to the parent.
            let solid_at = |x: Option<usize>| x.filter(|&x| x < width).map_or(one, |x| solid[x]);
            for (p, t) in to_parent.iter_mut().enumerate() {
                *t += w
                    * (solid[p] * at[p]
                        + solid_at(p.checked_sub(1)) * below[p]
                        + solid_at(Some(p + 1)) * above[p]);
            }
        }
        let parents = &codes[stencil.parent_row * width..(stencil.parent_row + 1) * width];
        for (&code, &t) in parents.iter().zip(&*to_parent) {
            if code < AIR {
                b[code as usize - offset] += t;
            }
        }
    }

    /// P assembled (fine unknowns × coarse unknowns), the entries of a
    /// fine unknown's row that name one coarse unknown summed: the
    /// reference of the tests of the transfers and the Galerkin product.
    #[cfg(test)]
    pub(super) fn assemble(&self) -> Result<SparseColMat<u32, f64>> {
        let mut entries = Vec::new();
        self.for_each_entry(0..self.fine.dims()[1] * self.fine.dims()[2], |u, v, w| {
            entries.push(Triplet::new(u as u32, v as u32, w));
        });
        SparseColMat::try_new_from_triplets(self.fine.dim(), self.coarse.dim(), &entries).map_err(
            |_| Error::OutOfMemory {
                what: "prolongation",
                elements: entries.len(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::Cell;
    use crate::random::SplitMix;

    /// Random cells: mostly fluid, with solid and air cells scattered so
    /// that the fast all-fluid rows and the cell-by-cell path both occur.
    fn grid(dims: [usize; 3], seed: u64) -> GridPoisson {
        let mut rng = SplitMix(seed);
        let cells: Vec<Cell> = (0..dims.iter().product())
            .map(|_| match rng.uniform() {
                u if u < 0.04 => Cell::Solid,
                u if u < 0.06 => Cell::Air,
                _ => Cell::Fluid,
            })
            .collect();
        GridPoisson::builder(dims, &cells).build().unwrap()
    }

    /// The applied P and R against the assembled P (cell by cell, no fast
    /// path): P x the same, and R = Pᵀ/2ᵈ, on odd and even sizes.
    #[test]
    fn applied_transfers_match_the_assembled_prolongation() {
        for (dims, seed) in [
            ([9, 8, 1], 1),
            ([33, 17, 1], 2),
            ([11, 10, 7], 3),
            ([16, 9, 12], 4),
        ] {
            let fine = grid(dims, seed);
            let coarse = super::super::coarsen(&fine).unwrap();
            let transfer = Transfer {
                fine: &fine,
                coarse: &coarse,
                shift: [0; 3],
            };
            let p = transfer.assemble().unwrap().to_row_major().unwrap();
            let (ptr, col, val) = (p.symbolic().row_ptr(), p.symbolic().col_idx(), p.val());
            let mut rng = SplitMix(seed + 10);
            let xc: Vec<f64> = (0..coarse.dim()).map(|_| rng.normal()).collect();
            let rf: Vec<f64> = (0..fine.dim()).map(|_| rng.normal()).collect();

            let mut applied = vec![0.5f64; fine.dim()];
            transfer.prolong_add(&xc, &mut applied);
            for (u, applied) in applied.iter().enumerate() {
                let assembled: f64 = (ptr[u] as usize..ptr[u + 1] as usize)
                    .map(|k| val[k] * xc[col[k] as usize])
                    .sum();
                assert!(
                    (applied - 0.5 - assembled).abs() < 1e-13,
                    "{dims:?} P row {u}"
                );
            }

            let mut restricted = vec![f64::NAN; coarse.dim()];
            transfer.restrict(&rf, &mut restricted);
            let scale = 1.0 / (1 << fine.ndim()) as f64;
            let mut transposed = vec![0.0; coarse.dim()];
            for (u, &ru) in rf.iter().enumerate() {
                for k in ptr[u] as usize..ptr[u + 1] as usize {
                    transposed[col[k] as usize] += scale * val[k] * ru;
                }
            }
            for (v, (a, b)) in restricted.iter().zip(&transposed).enumerate() {
                assert!((a - b).abs() < 1e-13, "{dims:?} R row {v}: {a} vs {b}");
            }
        }
    }

    /// Each row of P sums to 1 where no target is air: constants are
    /// interpolated exactly away from the free surface.
    #[test]
    fn prolongation_reproduces_constants_away_from_air() {
        let cells = vec![Cell::Fluid; 10 * 9 * 6];
        let mut cells_with_wall = cells.clone();
        cells_with_wall[4 + 10 * (4 + 9 * 3)] = Cell::Solid;
        for cells in [cells, cells_with_wall] {
            let fine = GridPoisson::builder([10, 9, 6], &cells).build().unwrap();
            let coarse = super::super::coarsen(&fine).unwrap();
            let mut x = vec![0.0f64; fine.dim()];
            Transfer {
                fine: &fine,
                coarse: &coarse,
                shift: [0; 3],
            }
            .prolong_add(&vec![1.0; coarse.dim()], &mut x);
            assert!(x.iter().all(|&v| (v - 1.0).abs() < 1e-14));
        }
    }

    /// The fused R (b − A x) equals the residual computed, zeroed off the
    /// owned cells and then restricted, to the bit (the same arithmetic in
    /// the same order), with and without face coefficients, in 2D and 3D,
    /// for the whole grid and for a box of it.
    #[test]
    fn fused_residual_restriction_matches_residual_then_restriction() {
        for (dims, seed) in [([13, 10, 1], 3), ([12, 9, 11], 4)] {
            let plain = grid(dims, seed);
            let n = plain.num_cells();
            let mut rng = SplitMix(seed + 10);
            let beta: Vec<f64> = (0..plain.ndim() * n).map(|_| 0.1 + rng.uniform()).collect();
            let cells: Vec<Cell> = (0..n).map(|c| plain.cell(c)).collect();
            let weighted = GridPoisson::builder(dims, &cells)
                .face_coefficients(&beta)
                .build()
                .unwrap();
            for fine in [&plain, &weighted] {
                let coarse = super::super::coarsen(fine).unwrap();
                let transfer = Transfer {
                    fine,
                    coarse: &coarse,
                    shift: [0; 3],
                };
                let b: Vec<f32> = (0..fine.dim()).map(|_| rng.normal() as f32).collect();
                let x: Vec<f32> = (0..fine.dim()).map(|_| rng.normal() as f32).collect();
                let inner = [1..dims[0] - 2, 2..dims[1] - 1, 0..dims[2].min(8)];
                for own in [dims.map(|d| 0..d), inner] {
                    let mut r = vec![0.0f32; fine.dim()];
                    fine.apply_then(&x, &mut r, &|first, ax: &mut [f32]| {
                        for (v, &bi) in ax.iter_mut().zip(&b[first..]) {
                            *v = bi - *v;
                        }
                    })
                    .unwrap();
                    for (u, v) in r.iter_mut().enumerate() {
                        let c = fine.cells_of_unknowns()[u] as usize;
                        let ijk = [
                            c % dims[0],
                            (c / dims[0]) % dims[1],
                            c / (dims[0] * dims[1]),
                        ];
                        if !(0..3).all(|a| own[a].contains(&ijk[a])) {
                            *v = 0.0;
                        }
                    }
                    let (mut expected, mut fused) =
                        (vec![0.0f32; coarse.dim()], vec![1.0f32; coarse.dim()]);
                    transfer.restrict(&r, &mut expected);
                    transfer.restrict_residual(&b, &x, own.clone(), &mut fused);
                    assert_eq!(fused, expected, "{dims:?}, own {own:?}");
                    assert!(expected.iter().any(|&v| v != 0.0));
                }
            }
        }
    }

    /// On a box of a grid that starts at odd coordinates, the shifted
    /// transfers are the whole grid's: P x and R r agree on the cells
    /// whose rows stay inside the box (the rest are a rank's ghosts).
    #[test]
    fn shifted_transfers_on_a_box_match_the_whole_grid() {
        for (dims, start, seed) in [([13, 11, 1], [3, 4, 0], 5), ([12, 9, 11], [5, 2, 3], 6)] {
            let fine = grid(dims, seed);
            let coarse = super::super::coarsen(&fine).unwrap();
            let sub = |g: &GridPoisson, lo: [usize; 3]| {
                let d = g.dims();
                let local = [d[0] - lo[0], d[1] - lo[1], d[2] - lo[2]];
                let cells: Vec<Cell> = (0..local.iter().product())
                    .map(|c| {
                        let (i, j, k) = (
                            c % local[0],
                            (c / local[0]) % local[1],
                            c / (local[0] * local[1]),
                        );
                        g.cell(i + lo[0] + d[0] * (j + lo[1] + d[1] * (k + lo[2])))
                    })
                    .collect();
                GridPoisson::builder(local, &cells).build().unwrap()
            };
            let coarse_start = start.map(|s| s / 2);
            let (fine_box, coarse_box) = (sub(&fine, start), sub(&coarse, coarse_start));
            let shifted = Transfer {
                fine: &fine_box,
                coarse: &coarse_box,
                shift: start.map(|s| s % 2),
            };
            let whole = Transfer {
                fine: &fine,
                coarse: &coarse,
                shift: [0; 3],
            };
            let three_d = dims[2] > 1;
            // Fine cells two past the box start in every axis used.
            let interior =
                |c: [usize; 3]| (0..if three_d { 3 } else { 2 }).all(|a| c[a] >= start[a] + 2);
            let fine_coords = |g: &GridPoisson, u: usize, lo: [usize; 3]| {
                let d = g.dims();
                let c = g.cells_of_unknowns()[u] as usize;
                [
                    c % d[0] + lo[0],
                    (c / d[0]) % d[1] + lo[1],
                    c / (d[0] * d[1]) + lo[2],
                ]
            };
            let global_unknown = |g: &GridPoisson, c: [usize; 3]| {
                let d = g.dims();
                g.unknown_of_cell(c[0] + d[0] * (c[1] + d[1] * c[2]))
                    .unwrap()
            };
            let mut rng = SplitMix(seed);
            let xc: Vec<f64> = (0..coarse.dim()).map(|_| rng.normal()).collect();
            let xc_box: Vec<f64> = (0..coarse_box.dim())
                .map(|u| xc[global_unknown(&coarse, fine_coords(&coarse_box, u, coarse_start))])
                .collect();
            let (mut px, mut px_box) = (vec![0.0; fine.dim()], vec![0.0; fine_box.dim()]);
            whole.prolong_add(&xc, &mut px);
            shifted.prolong_add(&xc_box, &mut px_box);
            let mut rf_box = vec![0.0; fine_box.dim()];
            let mut rf = vec![0.0; fine.dim()];
            let mut checked = 0;
            for (u, &value) in px_box.iter().enumerate() {
                let c = fine_coords(&fine_box, u, start);
                if interior(c) {
                    let g = global_unknown(&fine, c);
                    assert!((value - px[g]).abs() < 1e-14, "{dims:?} P at {c:?}");
                    let r = rng.normal();
                    (rf_box[u], rf[g]) = (r, r);
                    checked += 1;
                }
            }
            assert!(checked > 0);
            let (mut rc, mut rc_box) = (vec![0.0; coarse.dim()], vec![0.0; coarse_box.dim()]);
            whole.restrict(&rf, &mut rc);
            shifted.restrict(&rf_box, &mut rc_box);
            for (u, &value) in rc_box.iter().enumerate() {
                let c = fine_coords(&coarse_box, u, coarse_start);
                let g = global_unknown(&coarse, c);
                assert!(
                    (value - rc[g]).abs() < 1e-14,
                    "{dims:?} R at {c:?}: {value} vs {}",
                    rc[g]
                );
            }
        }
    }
}
