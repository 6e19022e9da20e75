//! The entropic dual and the dense passes over the cost matrix that every
//! OT solver needs, all in the log domain.
//!
//! With potentials f ∈ ℝⁿ, g ∈ ℝᵐ the plan is P_ij = exp((f_i + g_j − C_ij)/ε)
//! and the (concave) dual objective is
//! L(f, g) = ⟨a, f⟩ + ⟨b, g⟩ − ε Σ_ij P_ij.

use super::fast_exp::exp;
use super::hessian::SparsePlan;
use super::CostMatrix;
use crate::parallel::{for_blocks, for_each_chunk, map_blocks, DisjointSlice};
use crate::simd::vectorized_fn;

/// The row-parallel passes cut the rows into at most this many blocks; the
/// passes that reduce over columns keep one m-vector of partial sums per
/// block, so this bounds their scratch to `MAX_ROW_BLOCKS · m` per pass.
const MAX_ROW_BLOCKS: usize = 32;
/// Fewest rows per block.
const MIN_ROWS_PER_BLOCK: usize = 8;

/// Rows 0..n cut into at most [`MAX_ROW_BLOCKS`] blocks whose bounds
/// depend on n only, so reductions do not depend on the thread count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowBlocks {
    rows: usize,
    per_block: usize,
}

impl RowBlocks {
    pub fn new(rows: usize) -> Self {
        Self {
            rows,
            per_block: rows.div_ceil(MAX_ROW_BLOCKS).max(MIN_ROWS_PER_BLOCK),
        }
    }

    pub fn count(&self) -> usize {
        self.rows.div_ceil(self.per_block)
    }

    pub fn rows(&self, block: usize) -> std::ops::Range<usize> {
        block * self.per_block..((block + 1) * self.per_block).min(self.rows)
    }
}

/// Combines per-block column vectors in block order.
fn reduce_cols(blocks: Vec<Vec<f64>>, op: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    let mut it = blocks.into_iter();
    let mut acc = it.next().expect("at least one row block");
    for block in it {
        for (a, b) in acc.iter_mut().zip(block) {
            *a = op(*a, b);
        }
    }
    acc
}

/// Row and column sums of an n×m matrix in one pass over its rows (`work`
/// entries in all): `row(i, cols)` adds row i to `cols` and returns its
/// sum. Rows run in [`RowBlocks`], each with its own column sums, combined
/// in block order.
pub(crate) fn row_and_col_sums(
    n: usize,
    m: usize,
    work: usize,
    row: impl Fn(usize, &mut [f64]) -> f64 + Sync,
) -> (Vec<f64>, Vec<f64>) {
    let blocks = RowBlocks::new(n);
    let partial = map_blocks(blocks.count(), work, |b| {
        let mut cols = vec![0.0; m];
        let rows: Vec<f64> = blocks.rows(b).map(|i| row(i, &mut cols)).collect();
        (rows, cols)
    });
    let rows = partial
        .iter()
        .flat_map(|(r, _)| r.iter().copied())
        .collect();
    let cols = reduce_cols(partial.into_iter().map(|(_, c)| c).collect(), |a, b| a + b);
    (rows, cols)
}

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

    fn blocks(&self) -> RowBlocks {
        RowBlocks::new(self.n())
    }

    /// LSE_j((g_j − C_ij)/ε) for every row i.
    pub fn row_log_sum_exp(&self, g: &[f64]) -> Vec<f64> {
        let inv_eps = 1.0 / self.eps;
        let blocks = map_blocks(self.blocks().count(), self.n() * self.m(), |blk| {
            self.blocks()
                .rows(blk)
                .map(|i| row_log_sum_exp(g, self.row(i), inv_eps))
                .collect::<Vec<f64>>()
        });
        blocks.concat()
    }

    /// LSE_i((f_i − C_ij)/ε) for every column j (two passes over C: the
    /// column maxima, then the shifted sums).
    pub fn col_log_sum_exp(&self, f: &[f64]) -> Vec<f64> {
        let (m, inv_eps) = (self.m(), 1.0 / self.eps);
        let work = self.n() * m;
        let max = reduce_cols(
            map_blocks(self.blocks().count(), work, |blk| {
                let mut acc = vec![f64::NEG_INFINITY; m];
                for i in self.blocks().rows(blk) {
                    col_max_into(&mut acc, f[i], self.row(i));
                }
                acc
            }),
            f64::max,
        );
        let sum = reduce_cols(
            map_blocks(self.blocks().count(), work, |blk| {
                let mut acc = vec![0.0; m];
                for i in self.blocks().rows(blk) {
                    col_exp_sum_into(&mut acc, f[i], self.row(i), &max, inv_eps);
                }
                acc
            }),
            |a, b| a + b,
        );
        max.iter()
            .zip(&sum)
            .map(|(mx, s)| mx * inv_eps + s.ln())
            .collect()
    }

    /// P1, Pᵀ1 and Σ P at (f, g), in one pass.
    pub fn marginals(&self, f: &[f64], g: &[f64]) -> Marginals {
        let (m, inv_eps) = (self.m(), 1.0 / self.eps);
        let (rows, cols) = row_and_col_sums(self.n(), m, self.n() * m, |i, cols| {
            row_plan_sum_into(cols, f[i], g, self.row(i), inv_eps)
        });
        let mass = rows.iter().sum();
        Marginals { rows, cols, mass }
    }

    /// L(f, g) = ⟨a, f⟩ + ⟨b, g⟩ − ε Σ P, given the plan's mass.
    pub fn dual_value(&self, a: &[f64], b: &[f64], f: &[f64], g: &[f64], mass: f64) -> f64 {
        dot(a, f) + dot(b, g) - self.eps * mass
    }

    /// ⟨C, P⟩ at (f, g).
    pub fn transport_cost(&self, f: &[f64], g: &[f64]) -> f64 {
        let inv_eps = 1.0 / self.eps;
        map_blocks(self.blocks().count(), self.n() * self.m(), |blk| {
            self.blocks()
                .rows(blk)
                .map(|i| row_transport_cost(f[i], g, self.row(i), inv_eps))
                .sum::<f64>()
        })
        .iter()
        .sum()
    }

    /// Writes P (row-major n×m) at (f, g).
    pub fn plan(&self, f: &[f64], g: &[f64], out: &mut [f64]) {
        let (m, inv_eps) = (self.m(), 1.0 / self.eps);
        for_each_chunk(out, m, self.n() * m, |i, row| {
            row_plan(row, f[i], g, self.row(i), inv_eps)
        });
    }

    /// Refills `out` with the `k` (at most m) largest entries of every row
    /// of P at (f, g), in column order; ties at the k-th value are broken
    /// by column. Each row block writes its rows of `out` in place (its
    /// buffers are reused; two row-sized scratch buffers per block).
    pub fn largest_per_row(&self, f: &[f64], g: &[f64], k: usize, out: &mut SparsePlan) {
        let (n, m, inv_eps) = (self.n(), self.m(), 1.0 / self.eps);
        let k = k.clamp(1, m.max(1));
        out.m = m;
        out.k = k;
        out.cols.resize(n * k, 0);
        out.vals.resize(n * k, 0.0);
        let (cols, vals) = (
            DisjointSlice::new(&mut out.cols),
            DisjointSlice::new(&mut out.vals),
        );
        for_blocks(self.blocks().count(), n * m, |blk| {
            let rows = self.blocks().rows(blk);
            // SAFETY: row blocks are disjoint, and so are their k-entry rows.
            let (cols, vals) = unsafe {
                (
                    cols.range(rows.start * k..rows.end * k),
                    vals.range(rows.start * k..rows.end * k),
                )
            };
            let (mut logs, mut scratch) = (vec![0.0; m], vec![0.0; m]);
            let mut at = 0;
            for i in rows {
                let fi = f[i];
                for ((l, gj), c) in logs.iter_mut().zip(g).zip(self.row(i)) {
                    *l = (fi + gj - c) * inv_eps;
                }
                // The k-th largest log-value, then the entries above it and
                // as many equal to it as fit (exactly k), in column order.
                scratch.copy_from_slice(&logs);
                let (_, kth, _) = scratch.select_nth_unstable_by(k - 1, |x, y| y.total_cmp(x));
                let threshold = *kth;
                let above = logs.iter().filter(|&&l| l > threshold).count();
                let mut ties = k - above;
                for (j, &l) in logs.iter().enumerate() {
                    if l > threshold || (l == threshold && ties > 0) {
                        if l == threshold {
                            ties -= 1;
                        }
                        cols[at] = j as u32;
                        vals[at] = exp(l);
                        at += 1;
                    }
                }
            }
        });
    }
}

/// Interleaved partial results per row pass: the inner loops keep this many
/// independent accumulators, so they vectorise (a single running f64 sum is
/// a serial dependency the compiler may not reorder). The combination order
/// is fixed, so results do not depend on the thread count.
const LANES: usize = 8;

/// Combines the lanes in a fixed tree.
#[inline(always)]
fn combine(acc: [f64; LANES], op: impl Fn(f64, f64) -> f64) -> f64 {
    op(
        op(op(acc[0], acc[4]), op(acc[2], acc[6])),
        op(op(acc[1], acc[5]), op(acc[3], acc[7])),
    )
}

/// max_j term(g_j, c_j).
#[inline(always)]
fn lane_max(g: &[f64], c: &[f64], term: impl Fn(f64, f64) -> f64) -> f64 {
    let mut acc = [f64::NEG_INFINITY; LANES];
    let split = g.len() / LANES * LANES;
    for (gs, cs) in g[..split]
        .chunks_exact(LANES)
        .zip(c[..split].chunks_exact(LANES))
    {
        for l in 0..LANES {
            acc[l] = acc[l].max(term(gs[l], cs[l]));
        }
    }
    for (gj, cj) in g[split..].iter().zip(&c[split..]) {
        acc[0] = acc[0].max(term(*gj, *cj));
    }
    combine(acc, f64::max)
}

/// Σ_j term(g_j, c_j).
#[inline(always)]
pub(super) fn lane_sum(g: &[f64], c: &[f64], term: impl Fn(f64, f64) -> f64) -> f64 {
    let mut acc = [0.0; LANES];
    let split = g.len() / LANES * LANES;
    for (gs, cs) in g[..split]
        .chunks_exact(LANES)
        .zip(c[..split].chunks_exact(LANES))
    {
        for l in 0..LANES {
            acc[l] += term(gs[l], cs[l]);
        }
    }
    for (gj, cj) in g[split..].iter().zip(&c[split..]) {
        acc[0] += term(*gj, *cj);
    }
    combine(acc, |a, b| a + b)
}

/// Adds t_j = term(g_j, c_j) to `cols[j]` and returns Σ_j t_j.
#[inline(always)]
pub(super) fn lane_sum_into(
    cols: &mut [f64],
    g: &[f64],
    c: &[f64],
    term: impl Fn(f64, f64) -> f64,
) -> f64 {
    let mut acc = [0.0; LANES];
    let split = g.len() / LANES * LANES;
    for ((ks, gs), cs) in cols[..split]
        .chunks_exact_mut(LANES)
        .zip(g[..split].chunks_exact(LANES))
        .zip(c[..split].chunks_exact(LANES))
    {
        for l in 0..LANES {
            let t = term(gs[l], cs[l]);
            ks[l] += t;
            acc[l] += t;
        }
    }
    for ((k, gj), cj) in cols[split..].iter_mut().zip(&g[split..]).zip(&c[split..]) {
        let t = term(*gj, *cj);
        *k += t;
        acc[0] += t;
    }
    combine(acc, |a, b| a + b)
}

vectorized_fn! {
    /// LSE_j((g_j − c_j)/ε) for one row c of C, given 1/ε.
    fn row_log_sum_exp(g: &[f64], c: &[f64], inv_eps: f64) -> f64 {
        let max = lane_max(g, c, |g, c| g - c);
        let sum = lane_sum(g, c, |g, c| exp((g - c - max) * inv_eps));
        max * inv_eps + sum.ln()
    }
}

vectorized_fn! {
    /// acc_j ← max(acc_j, f_i − c_j) for row i of C.
    fn col_max_into(acc: &mut [f64], fi: f64, c: &[f64]) {
        for (acc, c) in acc.iter_mut().zip(c) {
            *acc = acc.max(fi - c);
        }
    }
}

vectorized_fn! {
    /// acc_j += exp((f_i − c_j − max_j)/ε) for row i of C.
    fn col_exp_sum_into(acc: &mut [f64], fi: f64, c: &[f64], max: &[f64], inv_eps: f64) {
        for ((acc, c), mx) in acc.iter_mut().zip(c).zip(max) {
            *acc += exp((fi - c - mx) * inv_eps);
        }
    }
}

vectorized_fn! {
    /// Adds row i of P, P_ij = exp((f_i + g_j − c_j)/ε), to `cols` and
    /// returns its sum.
    fn row_plan_sum_into(cols: &mut [f64], fi: f64, g: &[f64], c: &[f64], inv_eps: f64) -> f64 {
        lane_sum_into(cols, g, c, |g, c| exp((fi + g - c) * inv_eps))
    }
}

vectorized_fn! {
    /// Writes row i of P, P_ij = exp((f_i + g_j − c_j)/ε), to `out`.
    fn row_plan(out: &mut [f64], fi: f64, g: &[f64], c: &[f64], inv_eps: f64) {
        for ((p, g), c) in out.iter_mut().zip(g).zip(c) {
            *p = exp((fi + g - c) * inv_eps);
        }
    }
}

vectorized_fn! {
    /// Σ_j c_j P_ij for row i.
    fn row_transport_cost(fi: f64, g: &[f64], c: &[f64], inv_eps: f64) -> f64 {
        lane_sum(g, c, |g, c| c * exp((fi + g - c) * inv_eps))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::FORCED;
    use std::sync::atomic::Ordering;

    /// Every vector path gives the baseline's bits (odd sizes exercise the
    /// lane remainders).
    #[test]
    fn vector_paths_give_identical_bits() {
        let (n, m) = (37, 53);
        let wave = |k: usize, s: f64| (k as f64 * s).sin();
        let cost = CostMatrix::from_dense(n, m, (0..n * m).map(|k| wave(k, 0.37).abs()).collect())
            .unwrap();
        let kernel = Kernel {
            cost: &cost,
            eps: 0.03,
        };
        let f: Vec<f64> = (0..n).map(|i| 0.1 * wave(i, 1.3)).collect();
        let g: Vec<f64> = (0..m).map(|j| 0.1 * wave(j, 0.7)).collect();
        let passes = || {
            let marginals = kernel.marginals(&f, &g);
            let mut out = kernel.row_log_sum_exp(&g);
            out.extend(kernel.col_log_sum_exp(&f));
            out.extend(marginals.rows);
            out.extend(marginals.cols);
            out.push(kernel.transport_cost(&f, &g));
            let mut plan = vec![0.0; n * m];
            kernel.plan(&f, &g, &mut plan);
            out.extend(plan);
            out.iter().map(|v| v.to_bits()).collect::<Vec<u64>>()
        };
        let detected = passes();
        for forced in [1, 2] {
            FORCED.store(forced, Ordering::SeqCst);
            let other = passes();
            FORCED.store(0, Ordering::SeqCst);
            assert_eq!(other, detected, "forced level {forced}");
        }
    }
}
