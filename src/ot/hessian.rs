//! The Hessian of the entropic dual and its linear solves, shared by the
//! Newton steps of SNS (with a sparsified plan) and by implicit
//! differentiation (with the exact plan).
//!
//! For a plan P (n×m), or a sparsified copy P̃ of it, and the exact
//! marginals r = P1, c = Pᵀ1,
//!
//! M = [[diag(r), P], [Pᵀ, diag(c)]]
//!
//! is −ε times the Hessian of the dual in (f, g). It is symmetric positive
//! semidefinite; with the exact plan its null direction is (1, −1), with a
//! sparsified one it is definite (diagonally dominant).
//!
//! M z = y is solved through the Schur complement on the g block:
//!
//! S z_g = y_g − Pᵀ D_r⁻¹ y_f,  S = D_c − Pᵀ D_r⁻¹ P,  then
//! z_f = D_r⁻¹ (y_f − P z_g),
//!
//! with D_r = diag(r), D_c = diag(c), by CG preconditioned with diag(S).
//! The back-substitution satisfies the f block exactly, so the residual of
//! M z = y is that of the Schur system. Scaled by its diagonal, M is
//! [[I, K], [Kᵀ, I]] with eigenvalues 1 ± σ(K), while the scaled S has
//! 1 − σ(K)²: about half the CG iterations, each reading every row of P
//! once (Saad, Iterative Methods for Sparse Linear Systems, §8.4).

use super::rows::{lane_sum, lane_sum_into, row_and_col_sums, RowBlocks};
use crate::error::{Error, Result};
use crate::krylov::{cg, Jacobi, KrylovOptions, SolveReason, SolveReport};
use crate::operator::LinearOperator;
use crate::parallel::{for_blocks, DisjointSlice};
use crate::simd::vectorized_fn;
use crate::vector;

/// Row access to an n×m plan, dense or sparsified.
pub(crate) trait PlanRows: Sync {
    /// (n, m).
    fn shape(&self) -> (usize, usize);
    /// Stored entries (the work of one pass over the plan).
    fn stored(&self) -> usize;
    /// Σ_j P_ij v_j.
    fn row_dot(&self, i: usize, v: &[f64]) -> f64;
    /// y_j += w·P_ij for every stored j.
    fn row_axpy(&self, i: usize, w: f64, y: &mut [f64]);
    /// y_j += w·P_ij² for every stored j.
    fn row_square_axpy(&self, i: usize, w: f64, y: &mut [f64]);
}

impl<P: PlanRows> PlanRows for &P {
    fn shape(&self) -> (usize, usize) {
        (**self).shape()
    }
    fn stored(&self) -> usize {
        (**self).stored()
    }
    fn row_dot(&self, i: usize, v: &[f64]) -> f64 {
        (**self).row_dot(i, v)
    }
    fn row_axpy(&self, i: usize, w: f64, y: &mut [f64]) {
        (**self).row_axpy(i, w, y)
    }
    fn row_square_axpy(&self, i: usize, w: f64, y: &mut [f64]) {
        (**self).row_square_axpy(i, w, y)
    }
}

/// A dense plan, row-major.
pub(crate) struct DensePlan<'a> {
    pub values: &'a [f64],
    pub m: usize,
}

impl DensePlan<'_> {
    fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.m..(i + 1) * self.m]
    }

    /// (P1, Pᵀ1), in one pass.
    pub fn marginals(&self) -> (Vec<f64>, Vec<f64>) {
        let (n, m) = self.shape();
        row_and_col_sums(n, m, n * m, |i, cols| row_sum_into(cols, self.row(i)))
    }
}

impl PlanRows for DensePlan<'_> {
    fn shape(&self) -> (usize, usize) {
        (self.values.len() / self.m, self.m)
    }
    fn stored(&self) -> usize {
        self.values.len()
    }
    fn row_dot(&self, i: usize, v: &[f64]) -> f64 {
        dense_dot(self.row(i), v)
    }
    fn row_axpy(&self, i: usize, w: f64, y: &mut [f64]) {
        dense_axpy(w, self.row(i), y);
    }
    fn row_square_axpy(&self, i: usize, w: f64, y: &mut [f64]) {
        y.iter_mut()
            .zip(self.row(i))
            .for_each(|(y, p)| *y += w * p * p);
    }
}

vectorized_fn! {
    /// Adds `row` to `cols` and returns its sum.
    fn row_sum_into(cols: &mut [f64], row: &[f64]) -> f64 {
        lane_sum_into(cols, row, row, |p, _| p)
    }
}

vectorized_fn! {
    /// xᵀy.
    fn dense_dot(x: &[f64], y: &[f64]) -> f64 {
        lane_sum(x, y, |a, b| a * b)
    }
}

vectorized_fn! {
    /// y ← y + w·x.
    fn dense_axpy(w: f64, x: &[f64], y: &mut [f64]) {
        y.iter_mut().zip(x).for_each(|(y, x)| *y += w * x);
    }
}

/// A sparsified plan with the same number `k` of entries in every row
/// (ELLPACK layout): row i holds columns `cols[i·k..(i+1)·k]`, ascending.
#[derive(Debug, Default)]
pub(crate) struct SparsePlan {
    pub m: usize,
    pub k: usize,
    pub cols: Vec<u32>,
    pub vals: Vec<f64>,
}

impl SparsePlan {
    fn range(&self, i: usize) -> std::ops::Range<usize> {
        i * self.k..(i + 1) * self.k
    }

    fn entries(&self, i: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        let range = self.range(i);
        self.cols[range.clone()]
            .iter()
            .zip(&self.vals[range])
            .map(|(&j, &p)| (j as usize, p))
    }
}

impl PlanRows for SparsePlan {
    fn shape(&self) -> (usize, usize) {
        (self.vals.len() / self.k.max(1), self.m)
    }
    fn stored(&self) -> usize {
        self.vals.len()
    }
    fn row_dot(&self, i: usize, v: &[f64]) -> f64 {
        self.entries(i).map(|(j, p)| p * v[j]).sum()
    }
    fn row_axpy(&self, i: usize, w: f64, y: &mut [f64]) {
        self.entries(i).for_each(|(j, p)| y[j] += w * p);
    }
    fn row_square_axpy(&self, i: usize, w: f64, y: &mut [f64]) {
        self.entries(i).for_each(|(j, p)| y[j] += w * p * p);
    }
}

/// M for a plan and the exact marginals, each diagonal entry shifted by
/// `relative_shift` times the largest one.
pub(crate) struct OtHessian<P> {
    plan: P,
    /// D_r (shifted), length n.
    row_diag: Vec<f64>,
    /// D_c (shifted), length m.
    col_diag: Vec<f64>,
    shift: f64,
    blocks: RowBlocks,
}

impl<P: PlanRows> OtHessian<P> {
    pub fn new(plan: P, rows: &[f64], cols: &[f64], relative_shift: f64) -> Self {
        let (n, m) = plan.shape();
        debug_assert_eq!((rows.len(), cols.len()), (n, m));
        let shift = relative_shift * rows.iter().chain(cols).fold(0.0f64, |a, &b| a.max(b));
        Self {
            row_diag: rows.iter().map(|r| r + shift).collect(),
            col_diag: cols.iter().map(|c| c + shift).collect(),
            plan,
            shift,
            blocks: RowBlocks::new(n),
        }
    }

    /// Σ_i weight(i)·row_i(P) (with `square`, of the squared entries),
    /// over row blocks combined in a fixed order.
    fn weighted_row_sum(&self, weight: impl Fn(usize) -> f64 + Sync, square: bool) -> Vec<f64> {
        let (n, m) = self.plan.shape();
        let (_, sums) = row_and_col_sums(n, m, self.plan.stored(), |i, acc| {
            if square {
                self.plan.row_square_axpy(i, weight(i), acc);
            } else {
                self.plan.row_axpy(i, weight(i), acc);
            }
            0.0
        });
        sums
    }

    /// Solves M z = y to ‖M z − y‖₂ ≤ max(rtol·‖y‖₂, atol) (`options`),
    /// with y and z orthogonal to (1, −1). The report is the Schur
    /// system's, whose residuals are those of M z = y, with its initial
    /// residual, relative residual and reason stated for M z = y.
    pub fn solve(&self, y: &[f64], options: &KrylovOptions) -> Result<(Vec<f64>, SolveReport)> {
        // Checked here: the Schur system's options are derived from them.
        options.check_tolerances()?;
        let n = self.row_diag.len();
        let mut y = y.to_vec();
        project_out_null(&mut y, n);
        let (y_f, y_g) = y.split_at(n);
        // y_g − Pᵀ D_r⁻¹ y_f.
        let correction = self.weighted_row_sum(|i| y_f[i] / self.row_diag[i], false);
        let schur_rhs: Vec<f64> = y_g.iter().zip(&correction).map(|(a, b)| a - b).collect();
        // diag(S) ≥ shift in exact arithmetic; the floor guards rounding.
        let squares = self.weighted_row_sum(|i| 1.0 / self.row_diag[i], true);
        let schur_diag: Vec<f64> = self
            .col_diag
            .iter()
            .zip(&squares)
            .map(|(c, s)| (c - s).max(self.shift).max(f64::MIN_POSITIVE))
            .collect();
        let jacobi = Jacobi::from_diagonal(&schur_diag)?;
        let y_norm = vector::norm2(&y);
        let threshold = (options.rtol * y_norm).max(options.atol);
        let schur_options = KrylovOptions {
            rtol: 0.0,
            atol: threshold,
            nonzero_initial_guess: false,
            ..options.clone()
        };
        let mut z = vec![0.0; y.len()];
        let (z_f, z_g) = z.split_at_mut(n);
        let full_system = |mut report: SolveReport| {
            report.initial_residual_norm = y_norm;
            report.relative_residual = if y_norm > 0.0 {
                report.true_residual_norm / y_norm
            } else {
                0.0
            };
            if report.reason.converged() {
                report.reason = if options.rtol * y_norm >= options.atol {
                    SolveReason::ConvergedRtol
                } else {
                    SolveReason::ConvergedAtol
                };
            }
            report
        };
        let report = match cg(&Schur(self), &jacobi, &schur_rhs, z_g, &schur_options) {
            Ok(report) => full_system(report),
            Err(Error::SolveFailed {
                solver,
                report,
                cause,
            }) => {
                return Err(Error::SolveFailed {
                    solver,
                    report: Box::new(full_system(*report)),
                    cause,
                })
            }
            Err(e) => return Err(e),
        };
        // z_f = D_r⁻¹ (y_f − P z_g), row by row, in place.
        let z_g = &*z_g;
        let out = DisjointSlice::new(z_f);
        for_blocks(self.blocks.count(), self.plan.stored(), |b| {
            let rows = self.blocks.rows(b);
            // SAFETY: row blocks are disjoint.
            let z = unsafe { out.range(rows.clone()) };
            for (z, i) in z.iter_mut().zip(rows) {
                *z = (y_f[i] - self.plan.row_dot(i, z_g)) / self.row_diag[i];
            }
        });
        project_out_null(&mut z, n);
        Ok((z, report))
    }
}

/// S = D_c − Pᵀ D_r⁻¹ P, applied in one pass over the rows of P.
struct Schur<'a, P>(&'a OtHessian<P>);

impl<P: PlanRows> LinearOperator for Schur<'_, P> {
    fn dim(&self) -> usize {
        self.0.col_diag.len()
    }

    fn apply(&self, v: &[f64], y: &mut [f64]) -> Result<()> {
        let h = self.0;
        let product = h.weighted_row_sum(|i| h.plan.row_dot(i, v) / h.row_diag[i], false);
        for ((y, (c, v)), p) in y.iter_mut().zip(h.col_diag.iter().zip(v)).zip(&product) {
            *y = c * v - p;
        }
        Ok(())
    }
}

/// Removes from v = (v_f, v_g) (v_f of length n) its component along the
/// null direction (1, −1) of the dual Hessian.
fn project_out_null(v: &mut [f64], n: usize) {
    let (vf, vg) = v.split_at_mut(n);
    let c = (vf.iter().sum::<f64>() - vg.iter().sum::<f64>()) / (vf.len() + vg.len()) as f64;
    vf.iter_mut().for_each(|x| *x -= c);
    vg.iter_mut().for_each(|x| *x += c);
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::linalg::solvers::Solve;
    use faer::Mat;

    /// A plan-like matrix with positive entries, deterministic.
    fn plan(n: usize, m: usize) -> Vec<f64> {
        (0..n * m)
            .map(|k| 0.01 + ((k as f64 * 0.618).sin() * 0.5 + 0.5).powi(6))
            .collect()
    }

    /// M as a dense matrix, from the plan entries (dense or kept).
    fn dense_m(
        entries: &[(usize, usize, f64)],
        rows: &[f64],
        cols: &[f64],
        shift: f64,
    ) -> Mat<f64> {
        let (n, m) = (rows.len(), cols.len());
        let mut mat = Mat::zeros(n + m, n + m);
        for (i, r) in rows.iter().enumerate() {
            mat[(i, i)] = r + shift;
        }
        for (j, c) in cols.iter().enumerate() {
            mat[(n + j, n + j)] = c + shift;
        }
        for &(i, j, p) in entries {
            mat[(i, n + j)] = p;
            mat[(n + j, i)] = p;
        }
        mat
    }

    fn rhs(len: usize) -> Vec<f64> {
        (0..len).map(|k| (k as f64 * 1.3).cos()).collect()
    }

    #[test]
    fn dense_solve_matches_a_direct_solve_off_the_null_direction() {
        let (n, m) = (7, 11);
        let values = plan(n, m);
        let rows: Vec<f64> = values.chunks(m).map(|r| r.iter().sum()).collect();
        let cols: Vec<f64> = (0..m)
            .map(|j| (0..n).map(|i| values[i * m + j]).sum())
            .collect();
        let hessian = OtHessian::new(DensePlan { values: &values, m }, &rows, &cols, 0.0);
        let y = rhs(n + m);
        let options = KrylovOptions {
            rtol: 1e-13,
            ..KrylovOptions::default()
        };
        let (z, report) = hessian.solve(&y, &options).unwrap();
        assert_eq!(report.reason, SolveReason::ConvergedRtol);
        // M + w wᵀ with w = (1, −1)/√(n+m) is definite and has the same
        // solution off w.
        let entries: Vec<_> = (0..n * m).map(|k| (k / m, k % m, values[k])).collect();
        let mut mat = dense_m(&entries, &rows, &cols, 0.0);
        let w = |k: usize| if k < n { 1.0 } else { -1.0 } / ((n + m) as f64).sqrt();
        for a in 0..n + m {
            for b in 0..n + m {
                mat[(a, b)] += w(a) * w(b);
            }
        }
        let mut y_projected = y.clone();
        project_out_null(&mut y_projected, n);
        let direct = mat
            .partial_piv_lu()
            .solve(faer::ColRef::from_slice(&y_projected));
        let error = (0..n + m)
            .map(|k| (z[k] - direct[k]).abs())
            .fold(0.0, f64::max);
        let scale = (0..n + m).map(|k| direct[k].abs()).fold(0.0, f64::max);
        assert!(error <= 1e-10 * scale, "error {error:e}, scale {scale:e}");
    }

    #[test]
    fn sparse_solve_matches_a_direct_solve() {
        let (n, m, k) = (9, 8, 3);
        let values = plan(n, m);
        let rows: Vec<f64> = values.chunks(m).map(|r| r.iter().sum()).collect();
        let cols: Vec<f64> = (0..m)
            .map(|j| (0..n).map(|i| values[i * m + j]).sum())
            .collect();
        // Keep columns i, i+2, i+5 (mod m) of row i, ascending.
        let mut sparse = SparsePlan {
            m,
            k,
            ..SparsePlan::default()
        };
        let mut entries = Vec::new();
        for i in 0..n {
            let mut kept: Vec<usize> = [0, 2, 5].iter().map(|d| (i + d) % m).collect();
            kept.sort_unstable();
            for j in kept {
                sparse.cols.push(j as u32);
                sparse.vals.push(values[i * m + j]);
                entries.push((i, j, values[i * m + j]));
            }
        }
        let shift = 1e-3;
        let hessian = OtHessian::new(sparse, &rows, &cols, shift);
        let max = rows.iter().chain(&cols).fold(0.0f64, |a, &b| a.max(b));
        let mat = dense_m(&entries, &rows, &cols, shift * max);
        let mut y = rhs(n + m);
        project_out_null(&mut y, n);
        let options = KrylovOptions {
            rtol: 1e-13,
            ..KrylovOptions::default()
        };
        let (z, _) = hessian.solve(&y, &options).unwrap();
        // solve() returns the projected solution, as the Newton step uses.
        let direct = mat.partial_piv_lu().solve(faer::ColRef::from_slice(&y));
        let mut direct_vec: Vec<f64> = (0..n + m).map(|k| direct[k]).collect();
        project_out_null(&mut direct_vec, n);
        let error = z
            .iter()
            .zip(&direct_vec)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        let scale = direct_vec.iter().fold(0.0f64, |a, b| a.max(b.abs()));
        assert!(error <= 1e-10 * scale, "error {error:e}, scale {scale:e}");
    }
}
