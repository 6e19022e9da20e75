//! Coarse operators that are Galerkin products axis by axis:
//! [`CoarseOperators::AxisGalerkin`].
//!
//! Each level's operator is kept as a sum of parts along the axes,
//! A = Σ_a A_a, each written as an energy
//!
//! xᵀ A_a x = Σ_i w¹_{a,i} (x_i − x_{i+e_a})² + w²_{a,i} (x_i − x_{i+2e_a})² + ℓ_{a,i} x_i²
//!
//! (i + k·e_a the unknown k cells from i along a). On the finest grid w¹
//! is the weight s·β/h_a² of the face between two fluid cells, w² = 0 and
//! ℓ the weight of i's faces along a to air. The next level's parts are
//!
//! A_{c,a} = P_aᵀ A_a P_a / 2ᵈ,
//!
//! where P_a is the V-cycle's prolongation with its interpolation along a
//! only: fine cell p takes ¾ of its parent and ¼ of the parent's
//! neighbour along a toward p (that neighbour replaced by the parent when
//! it is outside the grid or solid, and contributing 0 when it is air, as
//! the V-cycle's P does), and the parent's own coordinates across a. A
//! pair 1 or 2 cells apart along a maps to coarse cells at most 2 apart
//! along a, so every level again has this form: at most 4d + 1 entries
//! per row (13 in 3D), and the recursion continues on the parts. The
//! operator is a sum of positive semidefinite terms: symmetric positive
//! semidefinite, with constants in its null space when no part leaks. In
//! uniform fluid each coarse part is the one-dimensional Galerkin stencil
//! (−1, −4, 10, −4, −1)/(8H²) along its axis (H the coarse spacing).
//!
//! At obstacles and air each part knows which fine faces are open and
//! where the Dirichlet cells are along its axis (what the rediscretised
//! levels coarsen away), at the cost of one pass over the fine unknowns
//! per level.
//!
//! [`CoarseOperators::AxisGalerkin`]: super::CoarseOperators::AxisGalerkin

use crate::alloc;
use crate::error::Result;
use crate::operator::{cell_coords, Cell, CsrMatrix, GridPoisson, LinearOperator, AIR};
use crate::parallel::{for_blocks, DisjointSlice};
use crate::scalar::Real;
use std::collections::HashMap;
use std::ops::Range;

/// Coarse lines per parallel block of the coarsening.
const LINES_PER_BLOCK: usize = 64;

/// The weights of one unknown's part along one axis: its pairs with the
/// unknowns 1 and 2 cells above it along the axis, and its leak.
#[derive(Clone, Copy, Default, Debug, PartialEq)]
struct AxisWeights {
    pairs: [f64; 2],
    leak: f64,
}

/// A level's operator as its parts along the axes: `parts[a][u]` is
/// unknown u's part along axis a.
pub(super) struct AxisParts {
    ndim: usize,
    parts: [Vec<AxisWeights>; 3],
}

/// The operator a coarsening reads: the grid's own (the finest level) or
/// a coarse level's parts.
#[derive(Clone, Copy)]
enum FineOperator<'a> {
    Grid,
    Parts(&'a AxisParts),
}

/// The cell index of coordinates `p` on a grid of `dims`.
fn cell_of(p: [usize; 3], dims: [usize; 3]) -> usize {
    p[0] + dims[0] * (p[1] + dims[1] * p[2])
}

/// Up to 4 weighted coarse cells of one line (a row of P_a, or a
/// difference of two rows): (coordinate along the line, weight).
#[derive(Default)]
struct Entries {
    items: [(usize, f64); 4],
    len: usize,
}

impl Entries {
    fn add(&mut self, along: usize, weight: f64) {
        match self.items[..self.len].iter_mut().find(|e| e.0 == along) {
            Some(e) => e.1 += weight,
            None => {
                self.items[self.len] = (along, weight);
                self.len += 1;
            }
        }
    }

    fn as_slice(&self) -> &[(usize, f64)] {
        &self.items[..self.len]
    }
}

impl AxisParts {
    /// The parts of the first coarse level, P_aᵀ A_a P_a / 2ᵈ per axis,
    /// from the grid operator `fine` and its coarse grid `coarse`.
    pub(super) fn of_grid(fine: &GridPoisson, coarse: &GridPoisson) -> Result<Self> {
        Self::coarsen(fine, FineOperator::Grid, coarse)
    }

    /// The parts of the next level from these, the parts of the operator
    /// on `fine`, whose coarse grid is `coarse`.
    pub(super) fn coarsened(&self, fine: &GridPoisson, coarse: &GridPoisson) -> Result<Self> {
        Self::coarsen(fine, FineOperator::Parts(self), coarse)
    }

    fn coarsen(
        fine: &GridPoisson,
        operator: FineOperator<'_>,
        coarse: &GridPoisson,
    ) -> Result<Self> {
        let ndim = fine.ndim();
        let mut parts: [Vec<AxisWeights>; 3] = Default::default();
        for (axis, part) in parts.iter_mut().enumerate().take(ndim) {
            *part = alloc::filled(coarse.dim(), AxisWeights::default(), "axis weights")?;
            let out = DisjointSlice::new(part);
            let cd = coarse.dims();
            let lines = coarse.num_cells() / cd[axis];
            for_blocks(
                lines.div_ceil(LINES_PER_BLOCK),
                16 * fine.num_cells(),
                |b| {
                    let mut line = vec![AxisWeights::default(); cd[axis]];
                    let mut kinds = vec![Cell::Solid; cd[axis]];
                    for l in b * LINES_PER_BLOCK..((b + 1) * LINES_PER_BLOCK).min(lines) {
                        let start = line_start(l, axis, cd);
                        for (along, kind) in kinds.iter_mut().enumerate() {
                            let mut p = start;
                            p[axis] = along;
                            *kind = coarse.cell(cell_of(p, cd));
                        }
                        coarsen_line(fine, operator, axis, start, &kinds, &mut line);
                        for (along, w) in line.iter().enumerate() {
                            let mut p = start;
                            p[axis] = along;
                            if let Some(u) = coarse.unknown_of_cell(cell_of(p, cd)) {
                                // SAFETY: each coarse unknown lies on one line
                                // along `axis`, and each line is one task's.
                                let slot = unsafe { out.range(u..u + 1) };
                                slot[0] = *w;
                            }
                        }
                    }
                },
            );
        }
        Ok(Self { ndim, parts })
    }

    /// The operator Σ_a A_a on the unknowns of `grid` (whose parts these
    /// are), as a stencil.
    pub(super) fn stencil(&self, grid: &GridPoisson) -> Result<AxisStencil> {
        // The stencil keeps its weights in f32, and its diagonal is summed
        // from the rounded weights, so that it is again a sum of the
        // energies w (x_i − x_j)² and ℓ x_i² (constants in its null space
        // where it does not leak).
        let (rows, diagonal) = self.rows(grid, |w| w as f32)?;
        AxisStencil::new(grid, &rows, &diagonal)
    }

    /// Per unknown of `grid` (whose parts these are) its row, the pair
    /// weights of its 4d neighbour slots each `round`ed (slot 4a + 2(k − 1)
    /// the unknown k cells above along axis a, the next slot the one k
    /// cells below, 0 where there is none), and its diagonal: the sum of
    /// the rounded weights and its leaks.
    fn rows<W>(
        &self,
        grid: &GridPoisson,
        round: impl Fn(f64) -> W + Sync,
    ) -> Result<(Vec<W>, Vec<f64>)>
    where
        W: Copy + Default + Send + Into<f64>,
    {
        let n = grid.dim();
        let slots = 4 * self.ndim;
        let mut rows = alloc::filled(slots * n, W::default(), "axis-Galerkin rows")?;
        let mut diagonal = alloc::filled(n, 0.0, "axis-Galerkin diagonal")?;
        let dims = grid.dims();
        let stride = [1, dims[0], dims[0] * dims[1]];
        let cells = grid.cells_of_unknowns();
        let (rows_out, diagonal_out) = (
            DisjointSlice::new(&mut rows),
            DisjointSlice::new(&mut diagonal),
        );
        for_blocks(n.div_ceil(BLOCK_UNKNOWNS), slots * n, |b| {
            let unknowns = b * BLOCK_UNKNOWNS..((b + 1) * BLOCK_UNKNOWNS).min(n);
            // SAFETY: the blocks are disjoint ranges of unknowns.
            let (rows, diagonal) = unsafe {
                (
                    rows_out.range(slots * unknowns.start..slots * unknowns.end),
                    diagonal_out.range(unknowns.clone()),
                )
            };
            for ((u, row), d) in unknowns.zip(rows.chunks_exact_mut(slots)).zip(diagonal) {
                let c = cells[u] as usize;
                let p = cell_coords(c, dims);
                for (a, part) in self.parts.iter().enumerate().take(self.ndim) {
                    *d += part[u].leak;
                    for k in 1..=2 {
                        let slot = 4 * a + 2 * (k - 1);
                        if p[a] + k < dims[a] && grid.unknown_of_cell(c + k * stride[a]).is_some() {
                            row[slot] = round(part[u].pairs[k - 1]);
                        }
                        if let Some(v) = (p[a] >= k)
                            .then(|| grid.unknown_of_cell(c - k * stride[a]))
                            .flatten()
                        {
                            row[slot + 1] = round(part[v].pairs[k - 1]);
                        }
                    }
                }
                *d += row.iter().map(|&w| w.into()).sum::<f64>();
            }
        });
        Ok((rows, diagonal))
    }

    /// The operator Σ_a A_a on the unknowns of `grid` (whose parts these
    /// are) as a sparse matrix: rows in unknown order, columns sorted.
    pub(super) fn to_csr(&self, grid: &GridPoisson) -> Result<CsrMatrix> {
        let (rows, diagonal) = self.rows(grid, |w| w)?;
        let dims = grid.dims();
        let stride = [1, dims[0], dims[0] * dims[1]];
        let n = grid.dim();
        let slots = 4 * self.ndim;
        let per_row = slots + 1;
        let mut row_ptr = alloc::with_capacity(n + 1, "axis-Galerkin row pointers")?;
        let mut col_idx = alloc::with_capacity(per_row * n, "axis-Galerkin column indices")?;
        let mut values = alloc::with_capacity(per_row * n, "axis-Galerkin values")?;
        row_ptr.push(0u32);
        for (i, &c) in grid.cells_of_unknowns().iter().enumerate() {
            let (c, p) = (c as usize, cell_coords(c as usize, dims));
            let row = &rows[slots * i..][..slots];
            // Unknowns are in cell order: the cells 2 and 1 below along
            // z, y, x, the row's own, then those 1 and 2 above along x, y, z.
            for a in (0..self.ndim).rev() {
                for k in [2, 1] {
                    if let Some(j) = (p[a] >= k)
                        .then(|| grid.unknown_of_cell(c - k * stride[a]))
                        .flatten()
                    {
                        col_idx.push(j as u32);
                        values.push(-row[4 * a + 2 * (k - 1) + 1]);
                    }
                }
            }
            col_idx.push(i as u32);
            values.push(diagonal[i]);
            for a in 0..self.ndim {
                for k in [1, 2] {
                    if let Some(j) = (p[a] + k < dims[a])
                        .then(|| grid.unknown_of_cell(c + k * stride[a]))
                        .flatten()
                    {
                        col_idx.push(j as u32);
                        values.push(-row[4 * a + 2 * (k - 1)]);
                    }
                }
            }
            row_ptr.push(col_idx.len() as u32);
        }
        Ok(CsrMatrix::from_valid_parts(n, row_ptr, col_idx, values))
    }
}

/// Unknowns per parallel block of a stencil apply.
const BLOCK_UNKNOWNS: usize = 8 * 1024;

/// The cells of padding around the grid of an [`AxisStencil`]'s map, so
/// that every offset of the stencil stays in it.
const PAD: usize = 2;

/// A level's axis-Galerkin operator applied as a stencil:
/// y_i = d_i x_i − Σ_m w_{i,m} x_{j(i,m)} over the unknowns j(i, m) 1 and
/// 2 cells away along each axis.
///
/// Each unknown has a row class: the index of its weights (w_{i,m}, 0
/// where there is no unknown) and diagonal in a table of the level's
/// distinct rows, of which uniform fluid has one. The unknowns are cut
/// into pieces whose rows find their neighbours at the same unknown
/// offsets, found once through a copy of the grid padded by [`PAD`]
/// cells, so the apply reads shifted slices of x.
pub(crate) struct AxisStencil {
    /// Per unknown: its row class.
    classes: Vec<u32>,
    /// The number of neighbour slots, 4d.
    slots: usize,
    /// Per class, per slot m: w_m.
    weights: Vec<f32>,
    /// Per class: the diagonal.
    diagonals: Vec<f64>,
    /// The unknowns in order, in pieces applied alike.
    pieces: Vec<Piece>,
    /// Consecutive pieces of about [`BLOCK_UNKNOWNS`] unknowns each.
    blocks: Vec<Range<usize>>,
}

/// Consecutive unknowns first..first + len of an [`AxisStencil`] whose
/// slot m is, for every unknown u of the piece, the unknown u + deltas[m]
/// (u itself, with weight 0, where the slot has no unknown); all of row
/// class `class` when it is given.
#[derive(Clone, Copy, PartialEq)]
struct Piece {
    first: usize,
    len: usize,
    deltas: [isize; 12],
    class: Option<usize>,
}

impl AxisStencil {
    /// The stencil of the rows (slots as [`AxisParts::rows`]) and diagonal
    /// of the unknowns of `grid`.
    fn new(grid: &GridPoisson, rows: &[f32], diagonal: &[f64]) -> Result<Self> {
        let dims = grid.dims();
        let ndim = grid.ndim();
        let mut padded = [1; 3];
        for a in 0..ndim {
            padded[a] = dims[a] + 2 * PAD;
        }
        let padded_stride = [1, padded[0], padded[0] * padded[1]];
        let padded_cell = |p: [usize; 3]| {
            (0..ndim)
                .map(|a| (p[a] + PAD) * padded_stride[a])
                .sum::<usize>()
        };
        let num_padded = padded[0] * padded[1] * padded[2];
        if u32::try_from(num_padded).is_err() {
            return Err(crate::error::Error::invalid(
                "op",
                format!("the padded coarse grid {padded:?} has more than 2^32 cells"),
            ));
        }
        let mut map = alloc::filled(num_padded, 0u32, "axis-Galerkin map")?;
        let n = grid.dim();
        let mut cells = alloc::with_capacity(n, "axis-Galerkin cells")?;
        for &c in grid.cells_of_unknowns() {
            let cell = padded_cell(cell_coords(c as usize, dims));
            cells.push(cell as u32);
        }
        for (u, &cell) in cells.iter().enumerate() {
            map[cell as usize] = u as u32;
        }
        let slots = 4 * ndim;
        let mut offsets = Vec::with_capacity(slots);
        for &stride in &padded_stride[..ndim] {
            for k in [1, 2] {
                offsets.push((k * stride) as isize);
                offsets.push(-((k * stride) as isize));
            }
        }
        // The distinct rows, by their bits (a row is often its
        // predecessor's class).
        let mut class_of: HashMap<[u32; 14], u32> = HashMap::new();
        let mut classes = alloc::with_capacity(n, "axis-Galerkin row classes")?;
        let (mut weights, mut diagonals) = (Vec::new(), Vec::new());
        let mut last: Option<([u32; 14], u32)> = None;
        for (row, &d) in rows.chunks_exact(slots).zip(diagonal) {
            let mut key = [0u32; 14];
            for (k, w) in key.iter_mut().zip(row) {
                *k = w.to_bits();
            }
            key[12] = d.to_bits() as u32;
            key[13] = (d.to_bits() >> 32) as u32;
            let class = match last {
                Some((previous, class)) if previous == key => class,
                _ => {
                    let next = diagonals.len() as u32;
                    *class_of.entry(key).or_insert_with(|| {
                        weights.extend_from_slice(row);
                        diagonals.push(d);
                        next
                    })
                }
            };
            last = Some((key, class));
            classes.push(class);
        }
        let pieces = pieces(&map, &cells, &classes, &offsets, slots, &weights);
        let mut blocks = Vec::new();
        let mut start = 0;
        let mut count = 0;
        for (k, piece) in pieces.iter().enumerate() {
            count += piece.len;
            if count >= BLOCK_UNKNOWNS {
                blocks.push(start..k + 1);
                (start, count) = (k + 1, 0);
            }
        }
        if start < pieces.len() {
            blocks.push(start..pieces.len());
        }
        Ok(Self {
            classes,
            slots,
            weights,
            diagonals,
            pieces,
            blocks,
        })
    }

    /// The diagonal D̃ of the ℓ1-scaled Jacobi smoother,
    /// d̃_i = max(d_i, ½ Σ_j |a_ij|), as [`CsrMatrix::l1_smoothing_diagonal`]
    /// (pair weights may be negative near air, where the off-diagonal row
    /// sum can exceed the diagonal).
    pub(crate) fn l1_smoothing_diagonal(&self) -> Vec<f64> {
        let slots = self.slots;
        let per_class: Vec<f64> = self
            .diagonals
            .iter()
            .zip(self.weights.chunks_exact(slots))
            .map(|(&d, w)| {
                let l1 = d.abs() + w.iter().map(|v| f64::from(v.abs())).sum::<f64>();
                if d > 0.0 {
                    d.max(0.5 * l1)
                } else {
                    d
                }
            })
            .collect();
        self.classes
            .iter()
            .map(|&c| per_class[c as usize])
            .collect()
    }

    /// y ← A x, then `finish(first, y_block)` on each block of unknowns
    /// first..first + y_block.len().
    pub(crate) fn apply_then<T: Real, F>(&self, x: &[T], y: &mut [T], finish: &F)
    where
        F: Fn(usize, &mut [T]) + Sync,
    {
        let n = self.classes.len();
        let out = DisjointSlice::new(y);
        for_blocks(self.blocks.len(), (self.slots + 2) * n, |b| {
            let pieces = &self.pieces[self.blocks[b].clone()];
            let (Some(head), Some(tail)) = (pieces.first(), pieces.last()) else {
                return;
            };
            let first = head.first;
            // SAFETY: the blocks are disjoint ranges of unknowns.
            let y = unsafe { out.range(first..tail.first + tail.len) };
            for piece in pieces {
                let y = &mut y[piece.first - first..][..piece.len];
                match piece.class {
                    Some(class) => self.apply_uniform(class, &piece.deltas, piece, x, y),
                    None => self.apply_shifted(&piece.deltas, piece, x, y),
                }
            }
            finish(first, y);
        });
    }

    /// The weights and diagonal of row class `class`.
    fn row(&self, class: usize) -> (&[f32], f64) {
        let weights = &self.weights[self.slots * class..self.slots * (class + 1)];
        (weights, self.diagonals[class])
    }

    /// The rows of `piece`, all of row class `class`, whose slot m is the
    /// unknown `deltas[m]` after the row's: shifted slices of x.
    fn apply_uniform<T: Real>(
        &self,
        class: usize,
        deltas: &[isize; 12],
        piece: &Piece,
        x: &[T],
        y: &mut [T],
    ) {
        let (weights, diagonal) = self.row(class);
        let diagonal = T::from_f64(diagonal);
        for (out, &v) in y.iter_mut().zip(&x[piece.first..]) {
            *out = diagonal * v;
        }
        for (&w, &delta) in weights.iter().zip(deltas) {
            let w = T::from_f64(f64::from(w));
            let shifted = &x[(piece.first as isize + delta) as usize..][..piece.len];
            for (out, &v) in y.iter_mut().zip(shifted) {
                *out -= w * v;
            }
        }
    }

    /// The rows of `piece`, each of its own class, whose slot m is the
    /// unknown `deltas[m]` after the row's.
    fn apply_shifted<T: Real>(&self, deltas: &[isize; 12], piece: &Piece, x: &[T], y: &mut [T]) {
        for (u, out) in (piece.first..piece.first + piece.len).zip(y.iter_mut()) {
            let (weights, diagonal) = self.row(self.classes[u] as usize);
            let mut sum = diagonal * x[u].to_f64();
            for (&w, &delta) in weights.iter().zip(deltas) {
                sum -= f64::from(w) * x[(u as isize + delta) as usize].to_f64();
            }
            *out = T::from_f64(sum);
        }
    }
}

/// The unknowns 0..n of a stencil in pieces: maximal runs of consecutive
/// unknowns whose neighbours lie at the same offsets, of one row class
/// (applied as slices) or of several.
fn pieces(
    map: &[u32],
    cells: &[u32],
    classes: &[u32],
    offsets: &[isize],
    slots: usize,
    weights: &[f32],
) -> Vec<Piece> {
    let mut pieces: Vec<Piece> = Vec::new();
    for (u, &class) in classes.iter().enumerate() {
        let class = class as usize;
        let row = &weights[slots * class..slots * (class + 1)];
        let mut deltas = [0; 12];
        for ((d, &offset), &w) in deltas.iter_mut().zip(offsets).zip(row) {
            if w != 0.0 {
                *d = map[(cells[u] as isize + offset) as usize] as isize - u as isize;
            }
        }
        let class = Some(class);
        match pieces.last_mut() {
            // A run of one class stays one (its rows are applied as
            // slices); a single row or a run of mixed classes takes in
            // rows of any class.
            Some(last)
                if last.deltas == deltas
                    && (last.class == class || last.len == 1 || last.class.is_none()) =>
            {
                last.len += 1;
                if last.class != class {
                    last.class = None;
                }
            }
            _ => pieces.push(Piece {
                first: u,
                len: 1,
                deltas,
                class,
            }),
        }
    }
    pieces
}

/// The two axes across `axis`, in order (in 2D the second is the unused
/// z axis, of extent 1).
fn across(axis: usize) -> [usize; 2] {
    match axis {
        0 => [1, 2],
        1 => [0, 2],
        _ => [0, 1],
    }
}

/// The first cell (coordinate 0 along `axis`) of coarse line `l`, the
/// lines along `axis` numbered in cell order of their first cells.
fn line_start(l: usize, axis: usize, cd: [usize; 3]) -> [usize; 3] {
    let across = across(axis);
    let mut p = [0; 3];
    p[across[0]] = l % cd[across[0]];
    p[across[1]] = l / cd[across[0]];
    p
}

/// The parts along `axis` of the coarse line from `start`, whose cells'
/// kinds are `kinds`, into `line` (one entry per coarse cell along it):
/// the sum over the fine lines whose cells have their parents on it of
/// P_aᵀ A_a P_a / 2ᵈ.
fn coarsen_line(
    fine: &GridPoisson,
    operator: FineOperator<'_>,
    axis: usize,
    start: [usize; 3],
    kinds: &[Cell],
    line: &mut [AxisWeights],
) {
    line.fill(AxisWeights::default());
    let fd = fine.dims();
    let scale = 1.0 / (1usize << fine.ndim()) as f64;
    let stride = [1, fd[0], fd[0] * fd[1]][axis];
    let across = across(axis);
    let codes = fine.unknown_codes();
    let children = |b: usize| 2 * start[b]..(2 * start[b] + 2).min(fd[b]);
    for t1 in children(across[0]) {
        for t2 in children(across[1]) {
            let mut p = [0; 3];
            p[across[0]] = t1;
            p[across[1]] = t2;
            let first = cell_of(p, fd);
            for f in 0..fd[axis] {
                let c = first + f * stride;
                if codes[c] >= AIR {
                    continue;
                }
                let part = fine_part(fine, operator, axis, (c, f), codes[c] as usize);
                let parent = f / 2;
                if part.leak == 0.0
                    && parent >= 1
                    && parent + 2 < kinds.len()
                    && kinds[parent - 1..parent + 3]
                        .iter()
                        .all(|&k| k == Cell::Fluid)
                {
                    // Every row of P_a involved interpolates between fluid
                    // cells: the general path's result, without its leak
                    // terms, which are 0. With J = f/2, the differences of
                    // the rows for the pairs 1 and 2 apart are, for f = 2J,
                    //   g₁ = ¼(e_{J−1} − e_{J+1}),  g₂ = ¼e_{J−1} + ½e_J − ¾e_{J+1},
                    // and for f = 2J + 1
                    //   g₁ = ½(e_J − e_{J+1}),      g₂ = ¾e_J − ½e_{J+1} − ¼e_{J+2},
                    // each adding the pairs −w g_i g_j.
                    let [w1, w2] = part.pairs.map(|w| scale * w);
                    if f % 2 == 0 {
                        line[parent - 1].pairs[0] -= w2 / 8.0;
                        line[parent - 1].pairs[1] += w1 / 16.0 + 3.0 * w2 / 16.0;
                        line[parent].pairs[0] += 3.0 * w2 / 8.0;
                    } else {
                        line[parent].pairs[0] += w1 / 4.0 + 3.0 * w2 / 8.0;
                        line[parent].pairs[1] += 3.0 * w2 / 16.0;
                        line[parent + 1].pairs[0] -= w2 / 8.0;
                    }
                    continue;
                }
                let row = prolongation_row(kinds, f, 1.0);
                if part.leak != 0.0 {
                    accumulate(line, scale, &row, part.leak);
                }
                for (k, &w) in part.pairs.iter().enumerate() {
                    if w == 0.0 {
                        continue;
                    }
                    debug_assert!(codes[c + (k + 1) * stride] < AIR);
                    let mut difference = prolongation_row(kinds, f + k + 1, -1.0);
                    for &(along, weight) in row.as_slice() {
                        difference.add(along, weight);
                    }
                    accumulate(line, scale, &difference, w);
                }
            }
        }
    }
}

/// Adds `scale`·w·g gᵀ to the parts of `line`: −w g_i g_j to the pair
/// (i, j), w g_i Σg to i's leak (with the scale).
fn accumulate(line: &mut [AxisWeights], scale: f64, g: &Entries, w: f64) {
    let g = g.as_slice();
    let total: f64 = g.iter().map(|e| e.1).sum();
    for (n, &(i, gi)) in g.iter().enumerate() {
        line[i].leak += scale * w * gi * total;
        for &(j, gj) in &g[n + 1..] {
            let (lower, distance) = if i < j { (i, j - i) } else { (j, i - j) };
            debug_assert!((1..=2).contains(&distance));
            line[lower].pairs[distance - 1] -= scale * w * gi * gj;
        }
    }
}

/// The part along `axis` of unknown `u` (cell `c`, at coordinate `along`
/// along the axis) of the fine operator.
/// On the grid: the face weight to the fluid cell above as its first
/// pair, the weights of its faces to air along the axis as its leak.
fn fine_part(
    fine: &GridPoisson,
    operator: FineOperator<'_>,
    axis: usize,
    (c, along): (usize, usize),
    u: usize,
) -> AxisWeights {
    match operator {
        FineOperator::Parts(parts) => parts.parts[axis][u],
        FineOperator::Grid => {
            let dims = fine.dims();
            let stride = [1, dims[0], dims[0] * dims[1]][axis];
            let mut w = AxisWeights::default();
            if along + 1 < dims[axis] {
                let face = fine.face_weight(axis, c);
                match fine.cell(c + stride) {
                    Cell::Fluid => w.pairs[0] = face,
                    Cell::Air => w.leak += face,
                    Cell::Solid => {}
                }
            }
            if along > 0 && fine.cell(c - stride) == Cell::Air {
                w.leak += fine.face_weight(axis, c - stride);
            }
            w
        }
    }
}

/// `sign` times the row of P_a of the fine cell at coordinate `f` along
/// the line, on a coarse line whose cells' kinds are `kinds`: ¾ on the
/// parent f/2 and ¼ on its neighbour toward f, the neighbour replaced by
/// the parent outside the line or when solid, and dropped (with the parent
/// when air) on air.
fn prolongation_row(kinds: &[Cell], f: usize, sign: f64) -> Entries {
    let parent = f / 2;
    let neighbour = if f % 2 == 0 {
        parent.checked_sub(1)
    } else {
        Some(parent + 1).filter(|&q| q < kinds.len())
    };
    let mut row = Entries::default();
    for (at, weight) in [(Some(parent), 0.75), (neighbour, 0.25)] {
        let mut target = at.unwrap_or(parent);
        if kinds[target] == Cell::Solid {
            target = parent;
        }
        if kinds[target] == Cell::Fluid {
            row.add(target, sign * weight);
        }
    }
    row
}

#[cfg(test)]
mod tests {
    use super::super::coarsen;
    use super::*;
    use crate::random::SplitMix;
    use faer::sparse::{SparseColMat, Triplet};

    /// A grid with solids, air and face coefficients.
    /// (`clutter` scales the shares of solid and air cells: 1 gives 5%
    /// scattered air and a third solid.)
    fn grid(dims: [usize; 3], seed: u64, clutter: f64) -> GridPoisson {
        let mut rng = SplitMix(seed);
        let n = dims[0] * dims[1] * dims[2];
        let up = if dims[2] > 1 { 2 } else { 1 };
        // Solid blocks of 4ᵈ cells (coarse solid cells on both levels) and
        // scattered solid and air cells.
        let solid_blocks: Vec<bool> = (0..n).map(|_| rng.uniform() < 0.2 * clutter).collect();
        let cells: Vec<Cell> = (0..n)
            .map(|c| {
                let p = cell_coords(c, dims);
                let block = p.map(|v| v / 4);
                let v = rng.uniform();
                if p[up] + 1 == dims[up] || v < 0.05 * clutter {
                    Cell::Air
                } else if v < 0.15 * clutter
                    || solid_blocks[block[0] + dims[0] * (block[1] + dims[1] * block[2])]
                {
                    Cell::Solid
                } else {
                    Cell::Fluid
                }
            })
            .collect();
        let ndim = if dims[2] > 1 { 3 } else { 2 };
        let beta: Vec<f64> = (0..ndim * n).map(|_| 0.2 + rng.uniform()).collect();
        GridPoisson::builder(dims, &cells)
            .spacing([0.5, 0.7, 0.9])
            .scale(1.3)
            .face_coefficients(&beta)
            .build()
            .unwrap()
    }

    type Sparse = SparseColMat<u32, f64>;

    fn sparse(n: usize, m: usize, triplets: &[Triplet<u32, u32, f64>]) -> Sparse {
        SparseColMat::try_new_from_triplets(n, m, triplets).unwrap()
    }

    /// A_a of the grid, assembled face by face.
    fn assembled_part(op: &GridPoisson, axis: usize) -> Sparse {
        let dims = op.dims();
        let stride = [1, dims[0], dims[0] * dims[1]];
        let mut t = Vec::new();
        for c in 0..op.num_cells() {
            let p = cell_coords(c, dims);
            if p[axis] + 1 >= dims[axis] {
                continue;
            }
            let q = c + stride[axis];
            let w = op.face_weight(axis, c);
            match (op.unknown_of_cell(c), op.unknown_of_cell(q)) {
                (Some(i), Some(j)) => {
                    let (i, j) = (i as u32, j as u32);
                    t.extend([
                        Triplet::new(i, i, w),
                        Triplet::new(j, j, w),
                        Triplet::new(i, j, -w),
                        Triplet::new(j, i, -w),
                    ]);
                }
                (Some(i), None) if op.cell(q) == Cell::Air => {
                    t.push(Triplet::new(i as u32, i as u32, w))
                }
                (None, Some(j)) if op.cell(c) == Cell::Air => {
                    t.push(Triplet::new(j as u32, j as u32, w))
                }
                _ => {}
            }
        }
        sparse(op.dim(), op.dim(), &t)
    }

    /// P_a from its rule, entry by entry.
    fn prolongation(fine: &GridPoisson, coarse: &GridPoisson, axis: usize) -> Sparse {
        let (fd, cd) = (fine.dims(), coarse.dims());
        let mut t = Vec::new();
        for (u, &c) in fine.cells_of_unknowns().iter().enumerate() {
            let p = cell_coords(c as usize, fd);
            let parent = p.map(|v| v / 2);
            let toward: i64 = if p[axis] % 2 == 0 { -1 } else { 1 };
            for (offset, w) in [(0i64, 0.75), (toward, 0.25)] {
                let mut q = parent.map(|v| v as i64);
                q[axis] += offset;
                let inside = (0..3).all(|b| q[b] >= 0 && q[b] < cd[b] as i64);
                let index = |q: [i64; 3]| {
                    let q = q.map(|v| v as usize);
                    q[0] + cd[0] * (q[1] + cd[1] * q[2])
                };
                let mut target = if inside {
                    index(q)
                } else {
                    index(parent.map(|v| v as i64))
                };
                if coarse.cell(target) == Cell::Solid {
                    target = index(parent.map(|v| v as i64));
                }
                if let Some(v) = coarse.unknown_of_cell(target) {
                    t.push(Triplet::new(u as u32, v as u32, w));
                }
            }
        }
        sparse(fine.dim(), coarse.dim(), &t)
    }

    /// Entry (i, j) of a sparse matrix, duplicates summed.
    fn entry(a: &Sparse, i: usize, j: usize) -> f64 {
        let col = a.col_range(j);
        a.row_idx()[col.clone()]
            .iter()
            .zip(&a.val()[col])
            .filter(|(&r, _)| r as usize == i)
            .map(|(_, v)| v)
            .sum()
    }

    /// The columns of a matrix, from its products with the unit vectors.
    fn columns(a: &CsrMatrix) -> Vec<Vec<f64>> {
        let n = a.dim();
        (0..n)
            .map(|j| {
                let mut e = vec![0.0; n];
                e[j] = 1.0;
                let mut column = vec![0.0; n];
                a.apply(&e, &mut column).unwrap();
                column
            })
            .collect()
    }

    /// Two chained levels equal Σ_a P_aᵀ A_a P_a / 2ᵈ computed by faer's
    /// sparse products from the face-by-face fine parts.
    #[test]
    fn parts_match_the_axis_galerkin_products_over_two_levels() {
        // Cluttered grids, and open ones, whose coarse levels have rows of
        // uniform fluid.
        for (dims, seed, clutter) in [
            ([13, 11, 1], 3, 1.0),
            ([9, 8, 7], 5, 1.0),
            ([10, 9, 11], 8, 1.0),
            ([30, 26, 1], 4, 0.1),
            ([20, 18, 17], 6, 0.1),
        ] {
            let fine = grid(dims, seed, clutter);
            let mid = coarsen(&fine).unwrap();
            let low = coarsen(&mid).unwrap();
            let ndim = fine.ndim();
            let scale = 1.0 / (1 << ndim) as f64;
            let mut parts: Option<AxisParts> = None;
            let mut reference: Vec<Sparse> = (0..ndim).map(|a| assembled_part(&fine, a)).collect();
            for (f, c) in [(&fine, &mid), (&mid, &low)] {
                parts = Some(match &parts {
                    None => AxisParts::of_grid(f, c).unwrap(),
                    Some(parts) => parts.coarsened(f, c).unwrap(),
                });
                let parts = parts.as_ref().unwrap();
                reference = reference
                    .iter()
                    .enumerate()
                    .map(|(a, part)| {
                        let p = prolongation(f, c, a);
                        let pt = p.transpose().to_col_major().unwrap();
                        let product = &pt * &(part * &p);
                        &product * faer::Scale(scale)
                    })
                    .collect();
                let got = columns(&parts.to_csr(c).unwrap());
                let expected = |i: usize, j: usize| -> f64 {
                    reference.iter().map(|part| entry(part, i, j)).sum()
                };
                let size = (0..c.dim()).fold(0.0f64, |m, i| m.max(expected(i, i).abs()));
                for (j, column) in got.iter().enumerate() {
                    for (i, &g) in column.iter().enumerate() {
                        let e = expected(i, j);
                        assert!(
                            (g - e).abs() <= 1e-13 * size,
                            "{dims:?} level {:?} ({i}, {j}): {g} vs {e}",
                            c.dims()
                        );
                    }
                }
            }
        }
    }

    /// The stencil's apply (pieces of one row class and of mixed ones)
    /// equals the assembled matrix's, in f64 and f32, on two levels of a
    /// grid with large fluid regions, solid blocks and air.
    #[test]
    fn stencil_apply_matches_the_assembled_operator() {
        for dims in [[70, 66, 1], [36, 34, 30]] {
            let up = if dims[2] > 1 { 2 } else { 1 };
            let cells: Vec<Cell> = (0..dims.iter().product::<usize>())
                .map(|c| {
                    let p = cell_coords(c, dims);
                    if p[up] + 2 >= dims[up] {
                        Cell::Air
                    } else if (5..13).contains(&p[0]) && (7..19).contains(&p[1]) || p[0] == 30 {
                        Cell::Solid
                    } else {
                        Cell::Fluid
                    }
                })
                .collect();
            let fine = GridPoisson::builder(dims, &cells).build().unwrap();
            let mid = coarsen(&fine).unwrap();
            let low = coarsen(&mid).unwrap();
            let first = AxisParts::of_grid(&fine, &mid).unwrap();
            let second = first.coarsened(&mid, &low).unwrap();
            for (parts, grid) in [(&first, &mid), (&second, &low)] {
                let stencil = parts.stencil(grid).unwrap();
                let kinds = |uniform: bool| {
                    stencil
                        .pieces
                        .iter()
                        .any(|p| p.class.is_some() == uniform && p.len > 1)
                };
                assert!(
                    kinds(true) && kinds(false),
                    "{dims:?}: both kinds of shifted pieces"
                );
                let csr = parts.to_csr(grid).unwrap();
                let mut rng = SplitMix(7);
                let x: Vec<f64> = (0..grid.dim()).map(|_| rng.uniform() - 0.5).collect();
                let mut expected = vec![0.0; grid.dim()];
                csr.apply(&x, &mut expected).unwrap();
                let scale = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                let mut y = vec![0.0; grid.dim()];
                stencil.apply_then(&x, &mut y, &|_, _: &mut [f64]| {});
                let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                let mut y32 = vec![0.0f32; grid.dim()];
                stencil.apply_then(&x32, &mut y32, &|_, _: &mut [f32]| {});
                for (i, ((&e, &g), &g32)) in expected.iter().zip(&y).zip(&y32).enumerate() {
                    // The stencil keeps its weights in f32.
                    assert!(
                        (g - e).abs() <= 1e-6 * scale,
                        "{dims:?} row {i}: {g} vs {e}"
                    );
                    assert!(
                        (f64::from(g32) - e).abs() <= 1e-5 * scale,
                        "{dims:?} row {i}"
                    );
                }
            }
        }
    }

    /// In uniform fluid the first coarse level's row is the 1D Galerkin
    /// stencil (−1, −4, 10, −4, −1)/(8H²) along each axis.
    #[test]
    fn uniform_rows_are_the_one_dimensional_galerkin_stencil() {
        let dims = [16, 16, 16];
        let cells = vec![Cell::Fluid; 16 * 16 * 16];
        let h = 0.25;
        let fine = GridPoisson::builder(dims, &cells)
            .spacing([h; 3])
            .build()
            .unwrap();
        let coarse = coarsen(&fine).unwrap();
        let parts = AxisParts::of_grid(&fine, &coarse).unwrap();
        let big_h2 = (2.0 * h) * (2.0 * h);
        let centre = 4 + 8 * (4 + 8 * 4);
        for a in 0..3 {
            let w = parts.parts[a][centre];
            assert!((w.pairs[0] - 4.0 / (8.0 * big_h2)).abs() < 1e-12, "{w:?}");
            assert!((w.pairs[1] - 1.0 / (8.0 * big_h2)).abs() < 1e-12, "{w:?}");
            assert_eq!(w.leak, 0.0);
        }
    }
}
