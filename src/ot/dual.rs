//! The entropic dual and the dense passes over the cost matrix that every
//! OT solver needs, all in the log domain.
//!
//! With potentials f ∈ ℝⁿ, g ∈ ℝᵐ the plan is P_ij = exp((f_i + g_j − C_ij)/ε)
//! and the (concave) dual objective is
//! L(f, g) = ⟨a, f⟩ + ⟨b, g⟩ − ε Σ_ij P_ij.

use super::CostMatrix;
use crate::parallel::map_blocks;

/// The row-parallel passes cut the rows into at most this many blocks; the
/// passes that reduce over columns keep one m-vector of partial sums per
/// block, so this bounds their scratch to `MAX_ROW_BLOCKS · m` per pass.
const MAX_ROW_BLOCKS: usize = 32;
/// Fewest rows per block.
const MIN_ROWS_PER_BLOCK: usize = 8;

/// The plan's marginals and mass at some (f, g).
#[derive(Debug, Clone)]
pub(crate) struct Marginals {
    /// P 1 (length n).
    pub rows: Vec<f64>,
    /// Pᵀ 1 (length m).
    pub cols: Vec<f64>,
    /// Σ_ij P_ij.
    pub mass: f64,
}

impl Marginals {
    /// ‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁.
    pub fn error(&self, a: &[f64], b: &[f64]) -> f64 {
        l1_distance(&self.rows, a) + l1_distance(&self.cols, b)
    }
}

pub(crate) fn l1_distance(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(x, y)| (x - y).abs()).sum()
}

/// The dense kernel of one problem: cost and ε.
pub(crate) struct Kernel<'a> {
    pub cost: &'a CostMatrix,
    pub eps: f64,
}

impl Kernel<'_> {
    fn n(&self) -> usize {
        self.cost.rows()
    }

    fn m(&self) -> usize {
        self.cost.cols()
    }

    fn row(&self, i: usize) -> &[f64] {
        let m = self.m();
        &self.cost.values()[i * m..(i + 1) * m]
    }

    /// Depends on n only, so reductions do not depend on the thread count.
    fn rows_per_block(&self) -> usize {
        self.n().div_ceil(MAX_ROW_BLOCKS).max(MIN_ROWS_PER_BLOCK)
    }

    fn row_blocks(&self) -> usize {
        self.n().div_ceil(self.rows_per_block())
    }

    fn block_rows(&self, block: usize) -> std::ops::Range<usize> {
        let rows = self.rows_per_block();
        block * rows..((block + 1) * rows).min(self.n())
    }

    /// LSE_j((g_j − C_ij)/ε) for every row i.
    pub fn row_log_sum_exp(&self, g: &[f64]) -> Vec<f64> {
        let eps = self.eps;
        let blocks = map_blocks(self.row_blocks(), self.n() * self.m(), |blk| {
            self.block_rows(blk)
                .map(|i| {
                    let c = self.row(i);
                    let max = g
                        .iter()
                        .zip(c)
                        .fold(f64::NEG_INFINITY, |acc, (g, c)| acc.max(g - c));
                    let sum: f64 = g
                        .iter()
                        .zip(c)
                        .map(|(g, c)| ((g - c - max) / eps).exp())
                        .sum();
                    max / eps + sum.ln()
                })
                .collect::<Vec<f64>>()
        });
        blocks.concat()
    }

    /// LSE_i((f_i − C_ij)/ε) for every column j (two passes over C: the
    /// column maxima, then the shifted sums).
    pub fn col_log_sum_exp(&self, f: &[f64]) -> Vec<f64> {
        let (m, eps) = (self.m(), self.eps);
        let work = self.n() * m;
        let max = self.reduce_cols(
            map_blocks(self.row_blocks(), work, |blk| {
                let mut acc = vec![f64::NEG_INFINITY; m];
                for i in self.block_rows(blk) {
                    for (acc, c) in acc.iter_mut().zip(self.row(i)) {
                        *acc = acc.max(f[i] - c);
                    }
                }
                acc
            }),
            f64::max,
        );
        let sum = self.reduce_cols(
            map_blocks(self.row_blocks(), work, |blk| {
                let mut acc = vec![0.0; m];
                for i in self.block_rows(blk) {
                    for ((acc, c), mx) in acc.iter_mut().zip(self.row(i)).zip(&max) {
                        *acc += ((f[i] - c - mx) / eps).exp();
                    }
                }
                acc
            }),
            |a, b| a + b,
        );
        max.iter()
            .zip(&sum)
            .map(|(mx, s)| mx / eps + s.ln())
            .collect()
    }

    /// Combines per-block column vectors in block order.
    fn reduce_cols(&self, blocks: Vec<Vec<f64>>, op: impl Fn(f64, f64) -> f64) -> Vec<f64> {
        let mut it = blocks.into_iter();
        let mut acc = it.next().expect("at least one row block");
        for block in it {
            for (a, b) in acc.iter_mut().zip(block) {
                *a = op(*a, b);
            }
        }
        acc
    }

    /// P1, Pᵀ1 and Σ P at (f, g), in one pass.
    pub fn marginals(&self, f: &[f64], g: &[f64]) -> Marginals {
        let (m, eps) = (self.m(), self.eps);
        let blocks = map_blocks(self.row_blocks(), self.n() * m, |blk| {
            let mut cols = vec![0.0; m];
            let rows: Vec<f64> = self
                .block_rows(blk)
                .map(|i| {
                    let mut s = 0.0;
                    for ((col, gj), c) in cols.iter_mut().zip(g).zip(self.row(i)) {
                        let p = ((f[i] + gj - c) / eps).exp();
                        *col += p;
                        s += p;
                    }
                    s
                })
                .collect();
            (rows, cols)
        });
        let rows: Vec<f64> = blocks.iter().flat_map(|(r, _)| r.iter().copied()).collect();
        let cols = self.reduce_cols(blocks.into_iter().map(|(_, c)| c).collect(), |a, b| a + b);
        let mass = rows.iter().sum();
        Marginals { rows, cols, mass }
    }

    /// L(f, g) = ⟨a, f⟩ + ⟨b, g⟩ − ε Σ P, given the plan's mass.
    pub fn dual_value(&self, a: &[f64], b: &[f64], f: &[f64], g: &[f64], mass: f64) -> f64 {
        dot(a, f) + dot(b, g) - self.eps * mass
    }

    /// ⟨C, P⟩ at (f, g).
    pub fn transport_cost(&self, f: &[f64], g: &[f64]) -> f64 {
        let eps = self.eps;
        map_blocks(self.row_blocks(), self.n() * self.m(), |blk| {
            self.block_rows(blk)
                .map(|i| {
                    g.iter()
                        .zip(self.row(i))
                        .map(|(gj, c)| c * ((f[i] + gj - c) / eps).exp())
                        .sum::<f64>()
                })
                .sum::<f64>()
        })
        .iter()
        .sum()
    }

    /// Writes P (row-major n×m) at (f, g).
    pub fn plan(&self, f: &[f64], g: &[f64], out: &mut [f64]) {
        let m = self.m();
        for (i, row) in out.chunks_exact_mut(m).enumerate() {
            for ((p, gj), c) in row.iter_mut().zip(g).zip(self.row(i)) {
                *p = ((f[i] + gj - c) / self.eps).exp();
            }
        }
    }

    /// For every row i, the `k` largest entries of row i of P at (f, g), as
    /// (column, value) sorted by column. One selection buffer per row block.
    pub fn largest_per_row(&self, f: &[f64], g: &[f64], k: usize) -> Vec<Vec<(usize, f64)>> {
        let blocks = map_blocks(self.row_blocks(), self.n() * self.m(), |blk| {
            let mut entries: Vec<(usize, f64)> = Vec::with_capacity(self.m());
            self.block_rows(blk)
                .map(|i| {
                    entries.clear();
                    entries.extend(
                        g.iter()
                            .zip(self.row(i))
                            .map(|(gj, c)| (f[i] + gj - c) / self.eps)
                            .enumerate(),
                    );
                    if k < entries.len() {
                        entries.select_nth_unstable_by(k, |x, y| y.1.total_cmp(&x.1));
                        entries.truncate(k);
                    }
                    entries.sort_by_key(|e| e.0);
                    entries.iter().map(|&(j, log_p)| (j, log_p.exp())).collect()
                })
                .collect::<Vec<Vec<(usize, f64)>>>()
        });
        blocks.concat()
    }
}

pub(crate) fn dot(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(x, y)| x * y).sum()
}

/// Removes from v = (v_f, v_g) (v_f of length n) its component along the
/// null direction (1, −1) of the dual Hessian.
pub(crate) fn project_out_null(v: &mut [f64], n: usize) {
    let (vf, vg) = v.split_at_mut(n);
    let c = (vf.iter().sum::<f64>() - vg.iter().sum::<f64>()) / (vf.len() + vg.len()) as f64;
    vf.iter_mut().for_each(|x| *x -= c);
    vg.iter_mut().for_each(|x| *x += c);
}
