//! The Galerkin product A_c = R A P = Pᵀ A P / 2ᵈ of one level, computed
//! from the grids instead of by a general sparse product.
//!
//! P is taken row by row from its rule ([`Transfer`]; at most 2ᵈ entries
//! per fine unknown). A fine cell's prolongation reaches coarse cells whose
//! centres are within 1.5 fine cells of it, so for a fine operator that
//! reaches at most 2 cells (a stencil, or a Galerkin level), A_c reaches at
//! most 2 coarse cells along each axis: each coarse row is a dense window
//! of 5ᵈ offsets. The rows of one coarse plane (z in 3D, y in 2D) gather
//! (1/2ᵈ) P_pI (A P)_pJ from the fine unknowns p of the four fine planes
//! whose prolongation reaches them ((A P)_p itself gathered in a window
//! around p's parent cell); planes run in parallel and each row is summed
//! in a fixed order, so the result does not depend on the threads.

use super::lattice::{sub, Lattice};
use super::transfer::Transfer;
use crate::alloc;
use crate::error::{Error, Result};
use crate::operator::{cell_coords, CsrMatrix, GridPoisson, LinearOperator, AIR};
use crate::parallel::{map_blocks, num_threads};
use std::ops::Range;

/// P by fine row: the (coarse unknown, weight) entries of fine unknown u
/// are `entries[start[u]..start[u + 1]]`, one per coarse unknown.
struct Prolongation {
    start: Vec<usize>,
    entries: Vec<(u32, f64)>,
}

impl Prolongation {
    /// P's rows from its rule, blocks of fine grid rows in parallel.
    fn new(transfer: &Transfer<'_>) -> Result<Self> {
        let fine = transfer.fine;
        let (n, nx) = (fine.dim(), fine.dims()[0]);
        let num_rows = fine.dims()[1] * fine.dims()[2];
        let rows_per_block = (BLOCK_CELLS / nx).max(1);
        let blocks = map_blocks(num_rows.div_ceil(rows_per_block), n << fine.ndim(), |b| {
            let rows = b * rows_per_block..((b + 1) * rows_per_block).min(num_rows);
            let unknowns = fine.unknowns_of_rows(rows.clone());
            let mut lengths = alloc::filled(unknowns.len(), 0usize, "prolongation rows")?;
            let mut entries: Vec<(u32, f64)> =
                alloc::with_capacity(unknowns.len() << fine.ndim(), "prolongation entries")?;
            let mut row_start = 0;
            transfer.for_each_entry(rows, |u, v, w| {
                let local = u - unknowns.start;
                if lengths[local] == 0 {
                    row_start = entries.len();
                }
                match entries[row_start..].iter_mut().find(|e| e.0 as usize == v) {
                    Some(entry) => entry.1 += w,
                    None => {
                        entries.push((v as u32, w));
                        lengths[local] += 1;
                    }
                }
            });
            Ok::<_, Error>((lengths, entries))
        });
        let mut start = alloc::with_capacity(n + 1, "prolongation rows")?;
        let mut entries = alloc::with_capacity(n << fine.ndim(), "prolongation entries")?;
        start.push(0);
        for block in blocks {
            let (lengths, block_entries) = block?;
            for len in lengths {
                start.push(start[start.len() - 1] + len);
            }
            entries.extend_from_slice(&block_entries);
        }
        Ok(Self { start, entries })
    }

    fn row(&self, u: usize) -> &[(u32, f64)] {
        &self.entries[self.start[u]..self.start[u + 1]]
    }
}

/// Fine cells per block of grid rows in the parallel build of P.
const BLOCK_CELLS: usize = 1 << 14;

/// The grid rows (row r = j + ny·k) of plane `plane` of `grid`: the z-plane
/// in 3D, the grid row itself in 2D.
fn plane_rows(grid: &GridPoisson, plane: usize) -> Range<usize> {
    let per_plane = if grid.ndim() == 3 { grid.dims()[1] } else { 1 };
    plane * per_plane..(plane + 1) * per_plane
}

/// Rows of the product: per row its length, then all columns and values
/// in row order.
#[derive(Default)]
struct Rows {
    lengths: Vec<u32>,
    cols: Vec<u32>,
    vals: Vec<f64>,
}

/// A row of A P: its values by window slot (offset of the coarse unknown
/// from the fine unknown's parent cell) and the slots in use.
struct WindowRow {
    values: Vec<f64>,
    used: Vec<bool>,
    slots: Vec<usize>,
}

impl WindowRow {
    fn new(len: usize) -> Result<Self> {
        Ok(Self {
            values: alloc::filled(len, 0.0, "Galerkin window")?,
            used: alloc::filled(len, false, "Galerkin window")?,
            slots: alloc::with_capacity(len, "Galerkin window")?,
        })
    }

    fn add(&mut self, slot: usize, value: f64) {
        if !self.used[slot] {
            self.used[slot] = true;
            self.slots.push(slot);
        }
        self.values[slot] += value;
    }

    fn clear(&mut self) {
        for &s in &self.slots {
            self.values[s] = 0.0;
            self.used[s] = false;
        }
        self.slots.clear();
    }
}

/// The data of one product.
struct Product<'a> {
    a: &'a CsrMatrix,
    fine: &'a GridPoisson,
    coarse: &'a GridPoisson,
    prolongation: Prolongation,
    lattice: Lattice<'a>,
    /// [`Lattice::linear`] of each coarse unknown's cell.
    linear: Vec<i64>,
    /// Per coarse unknown: whether its row is the reference row
    /// ([`uniform_rows`]).
    uniform: Vec<bool>,
    /// The window of the first uniform row, if any.
    reference: Option<Vec<f64>>,
    offsets: Vec<[i64; 3]>,
    scale: f64,
}

impl Product<'_> {
    /// Adds the rows of coarse plane `k` to `out`, accumulating them in
    /// `slots` (one window per row) with `ap` as scratch; uniform rows are
    /// the reference row.
    fn plane(
        &self,
        k: usize,
        slots: &mut Vec<f64>,
        ap: &mut WindowRow,
        out: &mut Rows,
    ) -> Result<()> {
        let rows = self.coarse.unknowns_of_rows(plane_rows(self.coarse, k));
        alloc::refill(slots, rows.len() * self.offsets.len(), 0.0, "Galerkin rows")?;
        self.accumulate(k, rows.clone(), |c| !self.uniform[c], slots, ap);
        self.emit(rows, slots, out)
    }

    /// Adds (1/2ᵈ) P_pc (A P)_p to the window of each coarse unknown c in
    /// `rows` (all of coarse plane `k`, or some of them) for which
    /// `wanted(c)`, from the fine unknowns p of the fine planes that reach
    /// plane k; `slots` holds the windows of `rows`.
    fn accumulate(
        &self,
        k: usize,
        rows: Range<usize>,
        wanted: impl Fn(usize) -> bool,
        slots: &mut [f64],
        ap: &mut WindowRow,
    ) {
        let window = self.offsets.len();
        let (ptr, cols, vals) = (self.a.row_ptr(), self.a.col_idx(), self.a.values());
        let (fd, codes) = (self.fine.dims(), self.fine.unknown_codes());
        let d = self.fine.ndim();
        let mut targets = Vec::with_capacity(1 << d);
        let centre = self.lattice.centre() as i64;
        for fine_plane in (2 * k).saturating_sub(1)..=(2 * k + 2).min(fd[d - 1] - 1) {
            for r in plane_rows(self.fine, fine_plane) {
                for (i, &u) in codes[r * fd[0]..(r + 1) * fd[0]].iter().enumerate() {
                    if u >= AIR {
                        continue;
                    }
                    let u = u as usize;
                    targets.clear();
                    targets.extend(self.prolongation.row(u).iter().filter(|e| {
                        let c = e.0 as usize;
                        rows.contains(&c) && wanted(c)
                    }));
                    if targets.is_empty() {
                        continue;
                    }
                    let parent = [i / 2, (r % fd[1]) / 2, (r / fd[1]) / 2].map(|v| v as i64);
                    let origin = self.lattice.linear(parent) - centre;
                    // (A P)_u, by offset from the parent.
                    for e in ptr[u] as usize..ptr[u + 1] as usize {
                        for &(j, w) in self.prolongation.row(cols[e] as usize) {
                            let j = j as usize;
                            debug_assert!(self
                                .lattice
                                .slot(sub(self.lattice.coords(j), parent))
                                .is_some());
                            ap.add((self.linear[j] - origin) as usize, vals[e] * w);
                        }
                    }
                    for &(c, w) in &targets {
                        let c = c as usize;
                        // Slot s of the row of u is slot s − shift of the row of c.
                        let shift = self.linear[c] - origin - centre;
                        let row = &mut slots[(c - rows.start) * window..][..window];
                        let weight = self.scale * w;
                        for &s in &ap.slots {
                            row[(s as i64 - shift) as usize] += weight * ap.values[s];
                        }
                    }
                    ap.clear();
                }
            }
        }
    }

    /// Appends the nonzero entries of the windows `slots` of the coarse
    /// unknowns `rows` to `out`, columns in increasing order (the slots
    /// run z, y, x outermost first, as the cell order does).
    fn emit(&self, rows: Range<usize>, slots: &[f64], out: &mut Rows) -> Result<()> {
        for (r, row) in rows.zip(slots.chunks_exact(self.offsets.len())) {
            let row = match &self.reference {
                Some(reference) if self.uniform[r] => reference,
                _ => row,
            };
            let at = self.lattice.coords(r);
            let before = out.cols.len();
            for (offset, &v) in self.offsets.iter().zip(row) {
                if v == 0.0 {
                    continue;
                }
                let cell = [at[0] + offset[0], at[1] + offset[1], at[2] + offset[2]];
                // P maps to unknowns only, so every coupling names one.
                let col = self.lattice.unknown_at(cell).ok_or_else(|| {
                    Error::invalid("op", "a Galerkin coupling names a cell without an unknown")
                })?;
                alloc::push(&mut out.cols, col as u32, "Galerkin column indices")?;
                alloc::push(&mut out.vals, v, "Galerkin values")?;
            }
            alloc::push(
                &mut out.lengths,
                (out.cols.len() - before) as u32,
                "Galerkin row lengths",
            )?;
        }
        Ok(())
    }
}

/// How far a uniform row's neighbourhood extends, in coarse cells. Row I
/// reads the rows of A of the fine children p of cells I − 1 … I + 1, and
/// the prolongation of their columns q (within 2 fine cells of p), which
/// reads each q's parent and its neighbour on q's side: coarse cells up to
/// 2 from I, whether A is a stencil or a Galerkin level. A radius of 1 is
/// not enough (tested).
const UNIFORM_RADIUS: usize = 2;

/// Per coarse unknown: whether its row of R A P is a translate of every
/// other such row, so that one computed row serves them all. That holds
/// where every coarse cell within [`UNIFORM_RADIUS`] along each axis is in
/// the grid and fluid and its fine children are unknowns whose rows of
/// `a` are the same, by cell offset and value, as a reference row (one of
/// the longest): then the fine rows, the prolongation and the cells the product
/// reads are the same up to a shift by whole coarse cells.
fn uniform_rows(
    a: &CsrMatrix,
    transfer: &Transfer<'_>,
    lattice: &Lattice<'_>,
) -> Result<Vec<bool>> {
    let (fine, coarse) = (transfer.fine, transfer.coarse);
    let (fd, cd, d) = (fine.dims(), coarse.dims(), fine.ndim());
    let fine_cells = fine.cells_of_unknowns();
    let (ptr, cols, vals) = (a.row_ptr(), a.col_idx(), a.values());
    let row = |p: usize| ptr[p] as usize..ptr[p + 1] as usize;
    // The reference: a longest row, the first from the middle unknown on
    // (the bulk of a domain is more likely there than at its first cells).
    let most = (0..a.dim()).map(|p| row(p).len()).max().unwrap_or(0);
    let longest = (a.dim() / 2..a.dim())
        .chain(0..a.dim() / 2)
        .find(|&p| row(p).len() == most);
    let standard = |p: usize| {
        let Some(reference) = longest else {
            return false;
        };
        let (mine, theirs) = (row(p), row(reference));
        mine.len() == theirs.len()
            && mine.zip(theirs).all(|(k, l)| {
                let delta = |q: usize, at: usize| fine_cells[q] as isize - fine_cells[at] as isize;
                vals[k] == vals[l]
                    && delta(cols[k] as usize, p) == delta(cols[l] as usize, reference)
            })
    };
    // clean[C]: coarse cell C is fluid and its children are standard rows.
    let num_coarse = cd[0] * cd[1] * cd[2];
    let mut clean = alloc::filled(num_coarse, false, "uniform coarse cells")?;
    let fine_codes = fine.unknown_codes();
    for (c, flag) in clean.iter_mut().enumerate() {
        if coarse.unknown_codes()[c] >= AIR {
            continue;
        }
        let at = cell_coords(c, cd);
        *flag = (0..1usize << d).all(|b| {
            let child: [usize; 3] = std::array::from_fn(|a| 2 * at[a] + (b >> a & 1));
            if (0..d).any(|a| child[a] >= fd[a]) {
                return false;
            }
            let code = fine_codes[child[0] + fd[0] * (child[1] + fd[1] * child[2])];
            code < AIR && standard(code as usize)
        });
    }
    // Erode by the radius along each axis (cells past the grid are not clean).
    let strides = [1, cd[0], cd[0] * cd[1]];
    for a in 0..d {
        let before = alloc::copied(&clean, "uniform coarse cells")?;
        for (c, flag) in clean.iter_mut().enumerate() {
            let x = (c / strides[a]) % cd[a];
            *flag = x >= UNIFORM_RADIUS
                && x + UNIFORM_RADIUS < cd[a]
                && (0..=2 * UNIFORM_RADIUS)
                    .all(|t| before[c + t * strides[a] - UNIFORM_RADIUS * strides[a]]);
        }
    }
    let mut uniform = alloc::filled(coarse.dim(), false, "uniform coarse rows")?;
    for (u, flag) in uniform.iter_mut().enumerate() {
        *flag = clean[lattice.cell(lattice.coords(u))];
    }
    Ok(uniform)
}

/// R A P for the operator `a` of `transfer.fine` (rows and columns its
/// unknowns, reaching at most 2 cells), as the module describes.
pub(crate) fn product(a: &CsrMatrix, transfer: &Transfer<'_>) -> Result<CsrMatrix> {
    let (fine, coarse) = (transfer.fine, transfer.coarse);
    let d = fine.ndim();
    let lattice = Lattice::new(coarse)?;
    let offsets = (0..lattice.window_len())
        .map(|s| lattice.offset(s))
        .collect();
    let mut linear = alloc::with_capacity(coarse.dim(), "coarse cell positions")?;
    linear.extend((0..coarse.dim()).map(|u| lattice.linear(lattice.coords(u))));
    let uniform = uniform_rows(a, transfer, &lattice)?;
    let mut product = Product {
        linear,
        uniform,
        reference: None,
        a,
        fine,
        coarse,
        prolongation: Prolongation::new(transfer)?,
        lattice,
        offsets,
        scale: 1.0 / (1 << d) as f64,
    };
    if let Some(first) = product.uniform.iter().position(|&u| u) {
        let mut window = alloc::filled(product.offsets.len(), 0.0, "Galerkin window")?;
        let plane = product.lattice.coords(first)[d - 1] as usize;
        let mut ap = WindowRow::new(product.offsets.len())?;
        product.accumulate(plane, first..first + 1, |_| true, &mut window, &mut ap);
        product.reference = Some(window);
    }
    // Consecutive planes per task, so that each task reuses its buffers.
    let planes = coarse.dims()[d - 1];
    let per_block = planes.div_ceil(4 * num_threads()).max(1);
    let blocks = map_blocks(planes.div_ceil(per_block), a.nnz() << d, |b| {
        let mut out = Rows::default();
        let (mut slots, mut ap) = (Vec::new(), WindowRow::new(product.offsets.len())?);
        for k in b * per_block..((b + 1) * per_block).min(planes) {
            product.plane(k, &mut slots, &mut ap, &mut out)?;
        }
        Ok::<_, Error>(out)
    });
    let n = coarse.dim();
    let nnz = blocks
        .iter()
        .map(|b| b.as_ref().map_or(0, |b| b.cols.len()))
        .sum();
    let mut row_ptr = alloc::with_capacity(n + 1, "Galerkin row pointers")?;
    let mut col_idx = alloc::with_capacity(nnz, "Galerkin column indices")?;
    let mut values = alloc::with_capacity(nnz, "Galerkin values")?;
    row_ptr.push(0u32);
    for block in blocks {
        let block = block?;
        for len in block.lengths {
            row_ptr.push(row_ptr[row_ptr.len() - 1] + len);
        }
        col_idx.extend_from_slice(&block.cols);
        values.extend_from_slice(&block.vals);
    }
    debug_assert_eq!(row_ptr.len(), n + 1);
    Ok(CsrMatrix::from_valid_parts(n, row_ptr, col_idx, values))
}

#[cfg(test)]
mod tests {
    use super::super::coarsen;
    use super::*;
    use crate::operator::Cell;
    use crate::random::SplitMix;
    use faer::sparse::linalg::matmul::sparse_sparse_matmul;
    use faer::Par;

    /// Pᵀ A P / 2ᵈ by faer's general sparse products, dense.
    fn reference(a: &CsrMatrix, transfer: &Transfer<'_>) -> Vec<Vec<f64>> {
        let p = transfer.assemble().unwrap();
        let scale = 1.0 / (1 << transfer.fine.ndim()) as f64;
        // A is symmetric: Aᵀ P = A P.
        let ap = sparse_sparse_matmul(a.as_faer().transpose(), p.as_ref(), 1.0, Par::Seq).unwrap();
        let pt = p.to_row_major().unwrap();
        let product =
            sparse_sparse_matmul(pt.as_ref().transpose(), ap.as_ref(), scale, Par::Seq).unwrap();
        let n = transfer.coarse.dim();
        // Row j of the result is column j of the symmetric product.
        let mut dense = vec![vec![0.0; n]; n];
        for (j, row) in dense.iter_mut().enumerate() {
            let rows = product.symbolic().row_idx_of_col_raw(j);
            for (&i, &v) in rows.iter().zip(product.val_of_col(j)) {
                row[i as usize] += v;
            }
        }
        dense
    }

    fn dense(a: &CsrMatrix) -> Vec<Vec<f64>> {
        let n = a.dim();
        let mut out = vec![vec![0.0; n]; n];
        let (ptr, cols, vals) = (a.row_ptr(), a.col_idx(), a.values());
        for (i, row) in out.iter_mut().enumerate() {
            let range = ptr[i] as usize..ptr[i + 1] as usize;
            // Columns strictly increasing.
            assert!(cols[range.clone()].windows(2).all(|w| w[0] < w[1]));
            for k in range {
                row[cols[k] as usize] += vals[k];
            }
        }
        out
    }

    /// Random solid and air cells, and face coefficients from 1e-2 to 1.
    fn grid(dims: [usize; 3], seed: u64, coefficients: bool) -> GridPoisson {
        let mut rng = SplitMix(seed);
        let n: usize = dims.iter().product();
        let cells: Vec<Cell> = (0..n)
            .map(|_| match rng.uniform() {
                u if u < 0.1 => Cell::Solid,
                u if u < 0.14 => Cell::Air,
                _ => Cell::Fluid,
            })
            .collect();
        let ndim = if dims[2] > 1 { 3 } else { 2 };
        let beta: Vec<f64> = (0..ndim * n)
            .map(|_| 10f64.powf(-2.0 * rng.uniform()))
            .collect();
        let builder = GridPoisson::builder(dims, &cells).spacing([0.5, 0.25, 1.0]);
        if coefficients {
            builder.face_coefficients(&beta).build().unwrap()
        } else {
            builder.build().unwrap()
        }
    }

    /// Fluid under 2 air layers with a solid block in one corner and a
    /// light blob (β = 1e-2) in another: mostly uniform fluid, so that
    /// coarse rows away from them are uniform.
    fn mostly_fluid(dims: [usize; 3]) -> GridPoisson {
        let n: usize = dims.iter().product();
        let up = if dims[2] > 1 { 2 } else { 1 };
        let cells: Vec<Cell> = (0..n)
            .map(|c| {
                let p = cell_coords(c, dims);
                if p[up] + 2 >= dims[up] {
                    Cell::Air
                } else if (0..=up).all(|a| p[a] + 6 >= dims[a] && p[a] + 2 < dims[a]) {
                    Cell::Solid
                } else {
                    Cell::Fluid
                }
            })
            .collect();
        let ndim = if dims[2] > 1 { 3 } else { 2 };
        let beta: Vec<f64> = (0..ndim * n)
            .map(|k| {
                if k % n % dims[0] < 3 && k % n < n / 4 {
                    1e-2
                } else {
                    1.0
                }
            })
            .collect();
        GridPoisson::builder(dims, &cells)
            .face_coefficients(&beta)
            .build()
            .unwrap()
    }

    #[test]
    fn the_product_matches_faers_sparse_product_on_two_levels() {
        let grids = [
            (grid([23, 18, 1], 7, false), false),
            (grid([21, 24, 1], 7, true), false),
            (grid([11, 9, 13], 7, false), false),
            (grid([12, 11, 9], 7, true), false),
            (mostly_fluid([48, 45, 1]), true),
            (mostly_fluid([27, 26, 25]), true),
        ];
        for (fine, mostly_uniform) in grids {
            let dims = fine.dims();
            let coefficients = fine.face_coefficients().is_some();
            let mid = coarsen(&fine).unwrap();
            let coarse = coarsen(&mid).unwrap();
            // The second level's fine operator is the first product, which
            // reaches 2 cells.
            let mut a = fine.to_csr().unwrap();
            for (f, c) in [(&fine, &mid), (&mid, &coarse)] {
                let transfer = Transfer {
                    fine: f,
                    coarse: c,
                    shift: [0; 3],
                };
                let lattice = Lattice::new(c).unwrap();
                let uniform = uniform_rows(&a, &transfer, &lattice).unwrap();
                let count = uniform.iter().filter(|&&u| u).count();
                // The shortcut is exercised where the grid has room for it.
                if mostly_uniform && f.dims() == dims {
                    assert!(count > 0, "{dims:?}: no uniform row of {}", c.dim());
                }
                let got = product(&a, &transfer).unwrap();
                let (got_dense, want) = (dense(&got), reference(&a, &transfer));
                let largest = want.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
                for (i, (g, w)) in got_dense.iter().zip(&want).enumerate() {
                    for (j, (g, w)) in g.iter().zip(w).enumerate() {
                        assert!(
                            (g - w).abs() <= 1e-13 * largest,
                            "{dims:?} {coefficients}: ({i}, {j}) {g} vs {w}"
                        );
                    }
                }
                a = got;
            }
        }
    }
}
