//! Cost matrices C ∈ ℝ^{n×m} (row-major) for optimal transport.

use crate::error::{Error, Result};

/// A dense n×m cost matrix, row-major: `values[i·m + j] = C_ij`, all finite.
#[derive(Debug, Clone, PartialEq)]
pub struct CostMatrix {
    n: usize,
    m: usize,
    values: Vec<f64>,
}

impl CostMatrix {
    /// Wraps a user-given row-major n×m cost matrix (finite entries).
    pub fn from_dense(n: usize, m: usize, values: Vec<f64>) -> Result<Self> {
        if n == 0 || m == 0 {
            return Err(Error::invalid(
                "cost",
                format!("the cost matrix must be non-empty, got {n}×{m}"),
            ));
        }
        Error::check_len("cost", n * m, values.len())?;
        if let Some((k, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::invalid(
                "cost",
                format!("cost[{k}] (row {}, column {}) is {v}", k / m, k % m),
            ));
        }
        Ok(Self { n, m, values })
    }

    /// C_ij = ‖x_i − y_j‖₂² for point clouds x (n×d) and y (m×d), row-major.
    pub fn squared_euclidean(x: &[f64], y: &[f64], d: usize) -> Result<Self> {
        Self::pairwise(x, y, d, |diff| diff * diff)
    }

    /// C_ij = ‖x_i − y_j‖_p^p = Σ_k |x_ik − y_jk|^p, for p ≥ 1 (p = 1 is the
    /// L1 distance, p = 2 the squared Euclidean distance).
    pub fn p_norm(x: &[f64], y: &[f64], d: usize, p: f64) -> Result<Self> {
        if !(p.is_finite() && p >= 1.0) {
            return Err(Error::invalid(
                "p",
                format!("p = {p} must be finite and >= 1"),
            ));
        }
        Self::pairwise(x, y, d, |diff| diff.abs().powf(p))
    }

    fn pairwise(x: &[f64], y: &[f64], d: usize, term: impl Fn(f64) -> f64) -> Result<Self> {
        if d == 0 {
            return Err(Error::invalid("d", "the dimension must be at least 1"));
        }
        for (name, pts) in [("x", x), ("y", y)] {
            if pts.is_empty() || pts.len() % d != 0 {
                return Err(Error::invalid(
                    name,
                    format!("length {} is not a positive multiple of d = {d}", pts.len()),
                ));
            }
            if let Some((k, v)) = pts.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(Error::invalid(name, format!("{name}[{k}] is {v}")));
            }
        }
        let (n, m) = (x.len() / d, y.len() / d);
        let mut values = Vec::with_capacity(n * m);
        for xi in x.chunks_exact(d) {
            for yj in y.chunks_exact(d) {
                values.push(xi.iter().zip(yj).map(|(a, b)| term(a - b)).sum());
            }
        }
        Self::from_dense(n, m, values)
    }

    /// Number of rows n (source points).
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Number of columns m (target points).
    pub fn cols(&self) -> usize {
        self.m
    }

    /// The row-major entries.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// max_ij |C_ij|.
    pub fn max_abs(&self) -> f64 {
        self.values.iter().fold(0.0, |acc, v| acc.max(v.abs()))
    }
}
