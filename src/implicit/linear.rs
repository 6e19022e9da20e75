//! Gradients through linear solves x = A⁻¹ b.
//!
//! For a loss L(x) with x̄ = ∂L/∂x: λ = A⁻ᵀ x̄, ∂L/∂b = λ and
//! ∂L/∂A_ij = −λ_i x_j, taken on the sparsity pattern of A.

use super::root::LinearSolver;
use crate::error::{Error, Result};
use crate::krylov::{bicgstab, cg, gmres, KrylovOptions, Preconditioner, SolveReport};
use crate::operator::{CsrMatrix, GridPoisson, LinearOperator};

/// The gradient of a loss wrt b through x = A⁻¹ b; the gradient wrt the
/// entries of A follows from it by [`matrix_gradient`].
#[derive(Debug, Clone)]
pub struct LinearSolveGradient {
    /// ∂L/∂b = λ = A⁻ᵀ x̄.
    pub b: Vec<f64>,
    /// The report of the adjoint solve.
    pub report: SolveReport,
}

fn check_inputs(n: usize, x: &[f64], other: &[f64]) -> Result<()> {
    Error::check_len("x", n, x.len())?;
    Error::check_len("x_bar", n, other.len())
}

fn adjoint_solve(
    op: &dyn LinearOperator,
    precond: &dyn Preconditioner,
    x_bar: &[f64],
    solver: LinearSolver,
    options: &KrylovOptions,
) -> Result<(Vec<f64>, SolveReport)> {
    let mut lambda = vec![0.0; x_bar.len()];
    let report = match solver {
        LinearSolver::Cg => cg(op, precond, x_bar, &mut lambda, options)?,
        LinearSolver::Gmres(restart) => gmres(op, precond, x_bar, &mut lambda, options, restart)?,
        LinearSolver::Bicgstab => bicgstab(op, precond, x_bar, &mut lambda, options)?,
        other => {
            return Err(Error::invalid(
                "solver",
                format!(
                "{other:?} is not available for linear-solve gradients (use Cg, Gmres or Bicgstab)"
            ),
            ))
        }
    };
    Ok((lambda, report))
}

/// ∂L/∂A_k = −λ_i x_j for each stored entry k = (i, j) of `a`, in CSR order,
/// from λ = ∂L/∂b ([`LinearSolveGradient::b`]) and the forward solution x
/// (for a grid operator pass [`GridPoisson::to_csr`]).
pub fn matrix_gradient(a: &CsrMatrix, lambda: &[f64], x: &[f64]) -> Result<Vec<f64>> {
    check_inputs(a.dim(), x, lambda)?;
    let (ptr, cols) = (a.row_ptr(), a.col_idx());
    let mut out = Vec::with_capacity(a.nnz());
    for i in 0..a.dim() {
        for &j in &cols[ptr[i] as usize..ptr[i + 1] as usize] {
            out.push(-lambda[i] * x[j as usize]);
        }
    }
    Ok(out)
}

/// Gradients through x = A⁻¹ b for a CSR matrix, given the forward solution
/// x and x̄ = ∂L/∂x. The adjoint system Aᵀλ = x̄ is solved with `solver`
/// (`Cg` for SPD A; `Gmres`/`Bicgstab` otherwise, on the transposed
/// matrix) and the forward preconditioner (exact for symmetric ones such as
/// Jacobi and IC(0)). An unconverged adjoint solve is an error.
pub fn csr_solve_vjp(
    a: &CsrMatrix,
    precond: &dyn Preconditioner,
    x: &[f64],
    x_bar: &[f64],
    solver: LinearSolver,
    options: &KrylovOptions,
) -> Result<LinearSolveGradient> {
    check_inputs(a.dim(), x, x_bar)?;
    let (lambda, report) = if a.check_symmetric().is_ok() {
        adjoint_solve(a, precond, x_bar, solver, options)?
    } else {
        adjoint_solve(&a.transpose(), precond, x_bar, solver, options)?
    };
    Ok(LinearSolveGradient { b: lambda, report })
}

/// Gradients through x = A⁻¹ b for a grid Poisson operator (symmetric, so
/// the adjoint solve is CG with the forward preconditioner); the gradient
/// wrt its entries is `matrix_gradient(&a.to_csr(), &gradient.b, x)`.
pub fn grid_solve_vjp(
    a: &GridPoisson,
    precond: &dyn Preconditioner,
    x: &[f64],
    x_bar: &[f64],
    options: &KrylovOptions,
) -> Result<LinearSolveGradient> {
    check_inputs(a.dim(), x, x_bar)?;
    let (lambda, report) = adjoint_solve(a, precond, x_bar, LinearSolver::Cg, options)?;
    Ok(LinearSolveGradient { b: lambda, report })
}
