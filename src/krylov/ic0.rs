//! Incomplete Cholesky factorisation with zero fill, IC(0).

use super::precond::Preconditioner;
use crate::error::{Error, Result};
use crate::operator::{CsrMatrix, LinearOperator};

/// Diagonal shifts tried, in turn, when the unshifted factorisation breaks
/// down: IC(0) of A + α·diag(A) (Manteuffel's shifted incomplete Cholesky).
const SHIFTS: [f64; 8] = [0.0, 1e-3, 4e-3, 1.6e-2, 6.4e-2, 0.256, 1.0, 4.0];

/// IC(0): M = L Lᵀ with L lower triangular on the pattern of the lower
/// triangle of A, and (L Lᵀ)_ij = A_ij wherever A_ij is stored (i ≥ j).
///
/// Only the lower triangle of A is read; A must be symmetric. Applying M⁻¹
/// is two sparse triangular solves, which run on one thread.
#[derive(Debug, Clone)]
pub struct Ic0 {
    /// Strictly lower part of L, CSR.
    row_ptr: Vec<usize>,
    col_idx: Vec<u32>,
    values: Vec<f64>,
    /// 1 / L_ii.
    inv_diag: Vec<f64>,
    shift: f64,
}

impl Ic0 {
    /// Factors the lower triangle of `a`. When a pivot is not positive, the
    /// factorisation is retried on A + α·diag(A) for growing α; fails with
    /// [`Error::NotSpd`] when a diagonal entry is not positive or no shift
    /// up to α = 4 works.
    pub fn new(a: &CsrMatrix) -> Result<Self> {
        let n = a.dim();
        let (ptr, cols, vals) = (a.row_ptr(), a.col_idx(), a.values());
        let mut row_ptr = Vec::with_capacity(n + 1);
        let mut col_idx = Vec::new();
        let mut lower = Vec::new();
        let mut diag = vec![0.0; n];
        row_ptr.push(0);
        for i in 0..n {
            for k in ptr[i] as usize..ptr[i + 1] as usize {
                let j = cols[k] as usize;
                if j < i {
                    col_idx.push(cols[k]);
                    lower.push(vals[k]);
                } else if j == i {
                    diag[i] = vals[k];
                }
            }
            row_ptr.push(col_idx.len());
        }
        if let Some((i, d)) = diag.iter().enumerate().find(|(_, d)| **d <= 0.0) {
            return Err(Error::NotSpd {
                message: format!("IC(0) needs a positive diagonal, but A[{i},{i}] = {d:e}"),
            });
        }
        let mut last_failure = 0;
        for shift in SHIFTS {
            let mut factor = Self {
                row_ptr: row_ptr.clone(),
                col_idx: col_idx.clone(),
                values: lower.clone(),
                inv_diag: vec![0.0; n],
                shift,
            };
            match factor.factor_in_place(&diag) {
                Ok(()) => return Ok(factor),
                Err(row) => last_failure = row,
            }
        }
        Err(Error::NotSpd {
            message: format!(
                "IC(0) broke down at row {last_failure} even with the diagonal shifted by {}·diag(A)",
                SHIFTS[SHIFTS.len() - 1]
            ),
        })
    }

    /// The shift α of the factorised A + α·diag(A) (0 when none was needed).
    pub fn shift(&self) -> f64 {
        self.shift
    }

    /// Row-oriented IC(0) on the copied lower triangle; `Err(row)` on a
    /// non-positive pivot.
    fn factor_in_place(&mut self, diag: &[f64]) -> Result<(), usize> {
        let n = diag.len();
        let mut l_diag = vec![0.0; n];
        for i in 0..n {
            let row_i = self.row_ptr[i]..self.row_ptr[i + 1];
            for kk in row_i.clone() {
                let k = self.col_idx[kk] as usize;
                // L_ik = (A_ik − Σ_{j<k} L_ij L_kj) / L_kk, over the shared pattern.
                let mut s = self.values[kk];
                let (mut a, mut b) = (self.row_ptr[i], self.row_ptr[k]);
                while a < kk && b < self.row_ptr[k + 1] {
                    let (ja, jb) = (self.col_idx[a], self.col_idx[b]);
                    if ja == jb {
                        s -= self.values[a] * self.values[b];
                        a += 1;
                        b += 1;
                    } else if ja < jb {
                        a += 1;
                    } else {
                        b += 1;
                    }
                }
                self.values[kk] = s / l_diag[k];
            }
            let sq: f64 = self.values[row_i].iter().map(|v| v * v).sum();
            let pivot = diag[i] * (1.0 + self.shift) - sq;
            if !(pivot > 0.0 && pivot.is_finite()) {
                return Err(i);
            }
            l_diag[i] = pivot.sqrt();
            self.inv_diag[i] = 1.0 / l_diag[i];
        }
        Ok(())
    }
}

impl Preconditioner for Ic0 {
    fn dim(&self) -> usize {
        self.inv_diag.len()
    }

    fn apply_dot(&self, r: &[f64], z: &mut [f64]) -> Result<f64> {
        let n = self.dim();
        Error::check_len("r", n, r.len())?;
        Error::check_len("z", n, z.len())?;
        // Forward: L y = r (y stored in z).
        for i in 0..n {
            let mut s = r[i];
            for k in self.row_ptr[i]..self.row_ptr[i + 1] {
                s -= self.values[k] * z[self.col_idx[k] as usize];
            }
            z[i] = s * self.inv_diag[i];
        }
        // Backward: Lᵀ z = y, column-oriented over the rows of L, fused with rᵀz.
        let mut dot = 0.0;
        for i in (0..n).rev() {
            let zi = z[i] * self.inv_diag[i];
            z[i] = zi;
            dot += r[i] * zi;
            for k in self.row_ptr[i]..self.row_ptr[i + 1] {
                z[self.col_idx[k] as usize] -= self.values[k] * zi;
            }
        }
        Ok(dot)
    }
}
