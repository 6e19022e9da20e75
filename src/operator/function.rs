//! Matrix-free operators given by a closure.

use super::LinearOperator;
use crate::error::Result;

/// A matrix-free operator y = A x computed by a closure, for example a C
/// callback or an operator applied on a GPU by the host application.
///
/// The closure must be linear, symmetric and positive definite for CG; the
/// solver detects pᵀAp ≤ 0 but cannot check symmetry.
pub struct FnOperator<F> {
    dim: usize,
    apply: F,
    diagonal: Option<Vec<f64>>,
}

impl<F> FnOperator<F>
where
    F: Fn(&[f64], &mut [f64]) -> Result<()>,
{
    /// Wraps `apply(x, y)` (which must write y = A x) as an n×n operator.
    pub fn new(dim: usize, apply: F) -> Self {
        Self {
            dim,
            apply,
            diagonal: None,
        }
    }

    /// Attaches the diagonal of A, so that a Jacobi preconditioner can be built.
    pub fn with_diagonal(mut self, diagonal: Vec<f64>) -> Result<Self> {
        crate::error::Error::check_len("diagonal", self.dim, diagonal.len())?;
        self.diagonal = Some(diagonal);
        Ok(self)
    }
}

impl<F> LinearOperator for FnOperator<F>
where
    F: Fn(&[f64], &mut [f64]) -> Result<()>,
{
    fn dim(&self) -> usize {
        self.dim
    }

    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<()> {
        (self.apply)(x, y)
    }

    fn diagonal(&self) -> Option<Vec<f64>> {
        self.diagonal.clone()
    }
}
