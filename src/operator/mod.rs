//! Linear operators y = A x on ℝⁿ: sparse CSR matrices, grid Poisson
//! stencils and matrix-free closures.
//!
//! ```
//! use adjunct::{CsrMatrix, FnOperator, LinearOperator};
//!
//! // The 1D Laplacian [2 −1; −1 2] as CSR and as a closure.
//! let csr = CsrMatrix::from_parts(2, 2, &[0u32, 2, 4], &[0u32, 1, 0, 1], &[2.0, -1.0, -1.0, 2.0])?;
//! let closure = FnOperator::new(2, |x: &[f64], y: &mut [f64]| {
//!     y[0] = 2.0 * x[0] - x[1];
//!     y[1] = 2.0 * x[1] - x[0];
//!     Ok(())
//! });
//! let (mut y1, mut y2) = ([0.0; 2], [0.0; 2]);
//! csr.apply(&[1.0, 3.0], &mut y1)?;
//! closure.apply(&[1.0, 3.0], &mut y2)?;
//! assert_eq!(y1, [-1.0, 5.0]);
//! assert_eq!(y1, y2);
//! # Ok::<(), adjunct::Error>(())
//! ```

mod codes;
mod csr;
mod function;
mod grid;
mod runs;

pub use crate::scalar::FieldValue;
pub(crate) use codes::{AIR, SOLID};
pub use csr::{CsrIndex, CsrMatrix};
pub use function::FnOperator;
pub(crate) use grid::{cell_coords, into_residual};
pub use grid::{Cell, GridPoisson, GridPoissonBuilder};

use crate::error::Result;
use crate::vector;

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

    /// The operator as a grid Poisson stencil, when it is one (for solvers
    /// and corrections that need the grid: multigrid, learned directions).
    fn as_grid(&self) -> Option<&GridPoisson> {
        None
    }

    /// Checks what the operator knows about whether CG can solve A x = b:
    /// a CSR matrix checks that it is symmetric, a singular grid operator
    /// that b is consistent up to rounding (its null-space component at
    /// most [`INCONSISTENCY_RTOL`]·‖b‖₂; the solvers then remove that
    /// component, see [`LinearOperator::remove_null_space`]).
    fn check_cg_solvable(&self, b: &[f64]) -> Result<()> {
        let _ = b;
        Ok(())
    }

    /// `true` when the operator is singular with a null space it knows
    /// (a grid with fluid regions enclosed by walls).
    fn has_null_space(&self) -> bool {
        false
    }

    /// Removes from `v` its component in the known null space, as PETSc's
    /// `MatNullSpaceRemove`: for a grid, the constant on each fluid region k
    /// enclosed by walls, v ← v − Σ_k (1_kᵀv / |k|) 1_k. Returns the norm
    /// of the removed component (0, v unchanged, without a null space).
    fn remove_null_space(&self, v: &mut [f64]) -> f64 {
        let _ = v;
        0.0
    }
}

/// The largest null-space component of a right-hand side, relative to
/// ‖b‖₂, that the solvers of a singular operator accept as rounding (a
/// float32 divergence field has 1e-10-ish) and remove; a larger one means
/// that b is inconsistent (A x = b has no solution) and is an
/// `InvalidArgument` naming `b`.
pub const INCONSISTENCY_RTOL: f64 = 1e-6;

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
    fn as_grid(&self) -> Option<&GridPoisson> {
        (**self).as_grid()
    }
    fn check_cg_solvable(&self, b: &[f64]) -> Result<()> {
        (**self).check_cg_solvable(b)
    }
    fn has_null_space(&self) -> bool {
        (**self).has_null_space()
    }
    fn remove_null_space(&self, v: &mut [f64]) -> f64 {
        (**self).remove_null_space(v)
    }
}
