//! Linear operators y = A x on ℝⁿ: sparse CSR matrices, grid Poisson
//! stencils and matrix-free closures.

mod csr;
mod function;
mod grid;

pub use csr::{CsrIndex, CsrMatrix};
pub use function::FnOperator;
pub use grid::{Cell, GridPoisson, GridPoissonBuilder};

use crate::error::Result;
use crate::krylov::vector;

/// A square linear operator A on ℝⁿ.
///
/// Solvers call these methods on the thread that called the solver;
/// implementations may parallelise internally.
pub trait LinearOperator {
    /// The dimension n (A is n×n).
    fn dim(&self) -> usize;

    /// y ← A x, with `x.len() == y.len() == self.dim()`.
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<()>;

    /// y ← A x and returns xᵀy. Implementations fuse the product with the
    /// dot product where they can (one pass over the data instead of two).
    fn apply_dot(&self, x: &[f64], y: &mut [f64]) -> Result<f64> {
        self.apply(x, y)?;
        Ok(vector::dot(x, y))
    }

    /// The diagonal of A, when the operator knows it.
    fn diagonal(&self) -> Option<Vec<f64>> {
        None
    }

    /// Checks what the operator knows about whether CG can solve A x = b to
    /// ‖b − A x‖ ≤ `threshold`: a CSR matrix checks that it is symmetric, a
    /// grid operator with a floating all-Neumann region checks that b is
    /// consistent (its component in the null space is below `threshold`).
    fn check_cg_solvable(&self, b: &[f64], threshold: f64) -> Result<()> {
        let _ = (b, threshold);
        Ok(())
    }
}

impl<T: LinearOperator + ?Sized> LinearOperator for &T {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<()> {
        (**self).apply(x, y)
    }
    fn apply_dot(&self, x: &[f64], y: &mut [f64]) -> Result<f64> {
        (**self).apply_dot(x, y)
    }
    fn diagonal(&self) -> Option<Vec<f64>> {
        (**self).diagonal()
    }
    fn check_cg_solvable(&self, b: &[f64], threshold: f64) -> Result<()> {
        (**self).check_cg_solvable(b, threshold)
    }
}
