//! Preconditioners M ≈ A for CG: each applies z = M⁻¹ r.

use crate::error::{Error, Result};
use crate::operator::LinearOperator;
use crate::vector;

/// A map r ↦ z = M⁻¹ r: the preconditioner of a Krylov solver, or the
/// direction source of the conjugate-direction method (PETSc's KSP/PC
/// split: any solver with any preconditioner).
///
/// A linear one ([`Preconditioner::is_linear`], the default) must be
/// symmetric positive definite; every solver takes it. A nonlinear one (a
/// learned direction network) serves only
/// [`conjugate_direction`](super::conjugate_direction), which
/// A-orthogonalises whatever it is given; CG, GMRES and BiCGStab refuse it.
pub trait Preconditioner {
    /// The dimension n.
    fn dim(&self) -> usize;

    /// z ← M⁻¹ r; returns rᵀz.
    fn apply_dot(&self, r: &[f64], z: &mut [f64]) -> Result<f64>;

    /// z ← M⁻¹ r, for solvers that do not need rᵀz. Implementations whose
    /// `apply_dot` computes the product first override it to skip the dot.
    fn apply(&self, r: &[f64], z: &mut [f64]) -> Result<()> {
        self.apply_dot(r, z).map(|_| ())
    }

    /// `true` when M = I, so that solvers can skip z entirely.
    fn is_identity(&self) -> bool {
        false
    }

    /// `true` (the default) when r ↦ M⁻¹ r is linear, and then symmetric
    /// positive definite by this trait's contract.
    fn is_linear(&self) -> bool {
        true
    }
}

impl<T: Preconditioner + ?Sized> Preconditioner for &T {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn apply_dot(&self, r: &[f64], z: &mut [f64]) -> Result<f64> {
        (**self).apply_dot(r, z)
    }
    fn apply(&self, r: &[f64], z: &mut [f64]) -> Result<()> {
        (**self).apply(r, z)
    }
    fn is_identity(&self) -> bool {
        (**self).is_identity()
    }
    fn is_linear(&self) -> bool {
        (**self).is_linear()
    }
}

/// Refuses a nonlinear `precond` for a solver whose theory needs M⁻¹
/// linear and symmetric positive definite.
pub(crate) fn require_linear<M: Preconditioner + ?Sized>(precond: &M, solver: &str) -> Result<()> {
    if precond.is_linear() {
        Ok(())
    } else {
        Err(Error::invalid(
            "precond",
            format!(
                "{solver} needs a linear symmetric positive definite preconditioner, and this one (a learned direction network) is nonlinear; use the conjugate-direction method (conjugate_direction, adj_cdm_solve)"
            ),
        ))
    }
}

/// z ← M⁻¹ r (a copy of r when M = I), for solvers that do not need rᵀz.
pub(crate) fn apply_inverse<M: Preconditioner + ?Sized>(
    precond: &M,
    r: &[f64],
    z: &mut [f64],
) -> Result<()> {
    if precond.is_identity() {
        vector::copy(r, z);
        Ok(())
    } else {
        precond.apply(r, z)
    }
}

/// No preconditioning: M = I.
#[derive(Debug, Clone, Copy)]
pub struct Identity {
    /// The dimension n.
    pub dim: usize,
}

impl Preconditioner for Identity {
    fn dim(&self) -> usize {
        self.dim
    }
    fn apply_dot(&self, r: &[f64], z: &mut [f64]) -> Result<f64> {
        vector::copy(r, z);
        Ok(vector::dot(r, z))
    }
    fn is_identity(&self) -> bool {
        true
    }
}

/// Jacobi (diagonal) preconditioner: M = diag(A).
#[derive(Debug, Clone)]
pub struct Jacobi {
    inv_diag: Vec<f64>,
}

impl Jacobi {
    /// Builds M = diag(A) from an operator that knows its diagonal.
    pub fn new(op: &impl LinearOperator) -> Result<Self> {
        let diag = op.diagonal().ok_or_else(|| {
            Error::invalid(
                "op",
                "the operator does not know its diagonal (a matrix-free callback operator); use Jacobi::from_diagonal",
            )
        })?;
        Self::from_diagonal(&diag)
    }

    /// Builds M = diag(d); every entry must be finite and > 0 (no entries:
    /// the preconditioner of an operator without unknowns).
    pub fn from_diagonal(diag: &[f64]) -> Result<Self> {
        // One rule per cause: a value that is not a number (or whose
        // inverse is not) is an invalid argument, a finite one ≤ 0 makes M
        // indefinite.
        if let Some((i, d)) = diag.iter().enumerate().find(|(_, d)| !d.is_finite()) {
            return Err(Error::invalid(
                "diagonal",
                format!("diagonal entry {i} is {d}: entries must be finite"),
            ));
        }
        if let Some((i, d)) = diag.iter().enumerate().find(|(_, d)| **d <= 0.0) {
            return Err(Error::NotSpd {
                message: format!(
                    "Jacobi needs a positive diagonal, but diagonal entry {i} is {d:e}"
                ),
            });
        }
        if let Some((i, d)) = diag
            .iter()
            .enumerate()
            .find(|(_, d)| !(1.0 / **d).is_finite())
        {
            return Err(Error::invalid(
                "diagonal",
                format!("diagonal entry {i} is {d:e}, so small that its inverse overflows"),
            ));
        }
        Ok(Self {
            inv_diag: diag.iter().map(|d| 1.0 / d).collect(),
        })
    }
}

impl Preconditioner for Jacobi {
    fn dim(&self) -> usize {
        self.inv_diag.len()
    }
    fn apply_dot(&self, r: &[f64], z: &mut [f64]) -> Result<f64> {
        Ok(vector::scale_dot(&self.inv_diag, r, z))
    }
}

/// A preconditioner given by a closure `apply(r, z)` writing z = M⁻¹ r
/// (for example a C callback). Linear: M must be symmetric positive
/// definite; CG detects rᵀz ≤ 0 but cannot check symmetry. For a
/// nonlinear map (directions for the conjugate-direction method), use
/// [`FnPreconditioner::nonlinear`].
pub struct FnPreconditioner<F> {
    dim: usize,
    apply: F,
    linear: bool,
}

impl<F> FnPreconditioner<F>
where
    F: Fn(&[f64], &mut [f64]) -> Result<()>,
{
    /// Wraps `apply` as an n×n linear preconditioner.
    pub fn new(dim: usize, apply: F) -> Self {
        Self {
            dim,
            apply,
            linear: true,
        }
    }

    /// Wraps `apply` as a map of vectors of length `dim` that need not be
    /// linear: directions for the conjugate-direction method only.
    pub fn nonlinear(dim: usize, apply: F) -> Self {
        Self {
            dim,
            apply,
            linear: false,
        }
    }
}

impl<F> Preconditioner for FnPreconditioner<F>
where
    F: Fn(&[f64], &mut [f64]) -> Result<()>,
{
    fn dim(&self) -> usize {
        self.dim
    }
    fn apply_dot(&self, r: &[f64], z: &mut [f64]) -> Result<f64> {
        (self.apply)(r, z)?;
        Ok(vector::dot(r, z))
    }
    fn apply(&self, r: &[f64], z: &mut [f64]) -> Result<()> {
        (self.apply)(r, z)
    }
    fn is_linear(&self) -> bool {
        self.linear
    }
}
