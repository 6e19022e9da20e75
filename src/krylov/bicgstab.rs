//! BiCGStab for general (nonsymmetric) systems.

use super::options::{conclude, true_residual, KrylovOptions};
use super::precond::{apply_inverse, require_linear, Preconditioner};
use crate::error::Result;
use crate::operator::LinearOperator;
use crate::report::{SolveReason, SolveReport};
use crate::vector;

/// Solves A x = b for a general square A with right-preconditioned
/// BiCGStab (van der Vorst), to ‖b − A x‖₂ ≤ max(rtol·‖b‖₂, atol). One
/// iteration is two products with A. Convergence is confirmed on the true
/// residual (restarting from it otherwise). Errors as for
/// [`cg`](super::cg), with [`SolveReason::DivergedBreakdown`] when
/// r̂ᵀr, r̂ᵀv or ‖t‖ vanish.
pub fn bicgstab<A, M>(
    op: &A,
    precond: &M,
    b: &[f64],
    x: &mut [f64],
    options: &KrylovOptions,
) -> Result<SolveReport>
where
    A: LinearOperator + ?Sized,
    M: Preconditioner + ?Sized,
{
    let n = op.dim();
    require_linear(precond, "BiCGStab")?;
    let setup = options.setup(n, precond.dim(), b, x)?;
    let mut report = options.new_report(setup.converged);
    let mut r = vec![0.0; n];
    let (mut r_hat, mut p, mut v, mut t) = (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let (mut p_hat, mut s_hat) = (vec![0.0; n], vec![0.0; n]);
    let outcome = (|| -> Result<SolveReason> {
        let mut r_norm = if options.nonzero_initial_guess {
            true_residual(op, b, x, &mut r)?
        } else {
            x.fill(0.0);
            vector::copy(b, &mut r);
            setup.b_norm
        };
        report.initial_residual_norm = r_norm;
        report.true_residual_norm = r_norm;
        loop {
            report.residual_norm = r_norm;
            if !r_norm.is_finite() {
                return Ok(SolveReason::DivergedNanOrInf);
            }
            if r_norm <= setup.threshold {
                return Ok(setup.converged);
            }
            vector::copy(&r, &mut r_hat);
            let (mut rho, mut alpha, mut omega) = (1.0, 1.0, 1.0);
            p.fill(0.0);
            v.fill(0.0);
            loop {
                if report.iterations >= options.max_iterations {
                    return Ok(SolveReason::DivergedMaxIterations);
                }
                let rho_next = vector::dot(&r_hat, &r);
                if !rho_next.is_finite() {
                    return Ok(SolveReason::DivergedNanOrInf);
                }
                if rho_next == 0.0 {
                    return Ok(SolveReason::DivergedBreakdown);
                }
                let beta = (rho_next / rho) * (alpha / omega);
                rho = rho_next;
                for ((pi, ri), vi) in p.iter_mut().zip(&r).zip(&v) {
                    *pi = ri + beta * (*pi - omega * vi);
                }
                apply_inverse(precond, &p, &mut p_hat)?;
                op.apply(&p_hat, &mut v)?;
                report.iterations += 1;
                let r_hat_v = vector::dot(&r_hat, &v);
                if r_hat_v == 0.0 || !r_hat_v.is_finite() {
                    return Ok(SolveReason::DivergedBreakdown);
                }
                alpha = rho / r_hat_v;
                vector::axpy(-alpha, &v, &mut r); // r now holds s = r − αv
                let s_norm = vector::norm2(&r);
                if s_norm <= setup.threshold {
                    report.residual_norm = s_norm;
                    if options.record_history {
                        report.residual_history.push(s_norm);
                    }
                    vector::axpy(alpha, &p_hat, x);
                    r_norm = true_residual(op, b, x, &mut r)?;
                    report.true_residual_norm = r_norm;
                    break;
                }
                apply_inverse(precond, &r, &mut s_hat)?;
                op.apply(&s_hat, &mut t)?;
                let tt = vector::dot(&t, &t);
                if tt == 0.0 || !tt.is_finite() {
                    return Ok(SolveReason::DivergedBreakdown);
                }
                omega = vector::dot(&t, &r) / tt;
                vector::axpy(alpha, &p_hat, x);
                vector::axpy(omega, &s_hat, x);
                vector::axpy(-omega, &t, &mut r);
                r_norm = vector::norm2(&r);
                report.residual_norm = r_norm;
                if options.record_history {
                    report.residual_history.push(r_norm);
                }
                if !r_norm.is_finite() {
                    return Ok(SolveReason::DivergedNanOrInf);
                }
                if r_norm <= setup.threshold {
                    r_norm = true_residual(op, b, x, &mut r)?;
                    report.true_residual_norm = r_norm;
                    break;
                }
                if omega == 0.0 {
                    return Ok(SolveReason::DivergedBreakdown);
                }
            }
        }
    })();
    conclude("BiCGStab", report, setup.b_norm, outcome, || {
        true_residual(op, b, x, &mut r)
    })
}
