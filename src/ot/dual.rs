//! The entropic dual and the dense passes over the cost matrix that every
//! OT solver needs, all in the log domain.
//!
//! With potentials f ∈ ℝⁿ, g ∈ ℝᵐ the plan is P_ij = exp((f_i + g_j − C_ij)/ε)
//! and the (concave) dual objective is
//! L(f, g) = ⟨a, f⟩ + ⟨b, g⟩ − ε Σ_ij P_ij.

use super::fast_exp::exp;
use super::hessian::SparsePlan;
use super::rows::{lane_max, lane_sum, lane_sum_into, reduce_cols, row_and_col_sums, RowBlocks};
use super::CostMatrix;
use crate::parallel::{for_blocks, for_each_chunk, map_blocks, DisjointSlice};
use crate::simd::vectorized_fn;
use crate::vector::dot;

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
