//! Restarted GMRES for general (nonsymmetric) systems.

use super::options::{conclude, true_residual, KrylovOptions};
use super::precond::{apply_inverse, require_linear, Preconditioner};
use crate::error::{Error, Result};
use crate::operator::LinearOperator;
use crate::report::{SolveReason, SolveReport};
use crate::vector;

/// Solves A x = b for a general square A with restarted GMRES(`restart`),
/// right-preconditioned (A M⁻¹ u = b, x = M⁻¹ u, so the residual minimised
/// is the true one), to ‖b − A x‖₂ ≤ max(rtol·‖b‖₂, atol).
///
/// Arnoldi with modified Gram-Schmidt and Givens rotations; every restart
/// cycle starts from the recomputed true residual, which also confirms
/// convergence. Errors as for [`cg`](super::cg), with
/// [`SolveReason::DivergedBreakdown`] when A M⁻¹ maps a Krylov vector to 0.
pub fn gmres<A, M>(
    op: &A,
    precond: &M,
    b: &[f64],
    x: &mut [f64],
    options: &KrylovOptions,
    restart: usize,
) -> Result<SolveReport>
where
    A: LinearOperator + ?Sized,
    M: Preconditioner + ?Sized,
{
    let n = op.dim();
    require_linear(precond, "GMRES")?;
    let setup = options.setup(n, precond.dim(), b, x)?;
    if restart == 0 {
        return Err(Error::invalid(
            "restart",
            "the restart length must be at least 1",
        ));
    }
    let m = restart.min(n);
    let mut report = options.new_report(setup.converged);
    if !options.nonzero_initial_guess {
        x.fill(0.0);
    }
    let mut basis: Vec<Vec<f64>> = (0..=m).map(|_| vec![0.0; n]).collect();
    let mut w = vec![0.0; n];
    let mut z = vec![0.0; n];
    // Hessenberg matrix, column-major with leading dimension m + 1.
    let ld = m + 1;
    let mut h = vec![0.0; ld * m];
    let (mut cs, mut sn, mut g) = (vec![0.0; m], vec![0.0; m], vec![0.0; m + 1]);
    let outcome = (|| -> Result<SolveReason> {
        let mut first_cycle = true;
        loop {
            let beta = true_residual(op, b, x, &mut basis[0])?;
            report.true_residual_norm = beta;
            report.residual_norm = beta;
            if first_cycle {
                report.initial_residual_norm = beta;
                first_cycle = false;
            }
            if !beta.is_finite() {
                return Ok(SolveReason::DivergedNanOrInf);
            }
            if beta <= setup.threshold {
                return Ok(setup.converged);
            }
            if report.iterations >= options.max_iterations {
                return Ok(SolveReason::DivergedMaxIterations);
            }
            basis[0].iter_mut().for_each(|v| *v /= beta);
            g.fill(0.0);
            g[0] = beta;
            let mut k = 0;
            for j in 0..m {
                if report.iterations >= options.max_iterations {
                    break;
                }
                // w = A M⁻¹ v_j
                apply_inverse(precond, &basis[j], &mut z)?;
                op.apply(&z, &mut w)?;
                report.iterations += 1;
                for (i, v) in basis.iter().enumerate().take(j + 1) {
                    let hij = vector::dot(&w, v);
                    h[i + ld * j] = hij;
                    vector::axpy(-hij, v, &mut w);
                }
                let w_norm = vector::norm2(&w);
                h[j + 1 + ld * j] = w_norm;
                for i in 0..j {
                    let (a, c) = (h[i + ld * j], h[i + 1 + ld * j]);
                    h[i + ld * j] = cs[i] * a + sn[i] * c;
                    h[i + 1 + ld * j] = -sn[i] * a + cs[i] * c;
                }
                let (a, c) = (h[j + ld * j], h[j + 1 + ld * j]);
                let r = a.hypot(c);
                if !r.is_finite() {
                    return Ok(SolveReason::DivergedNanOrInf);
                }
                if r == 0.0 {
                    return Ok(SolveReason::DivergedBreakdown);
                }
                cs[j] = a / r;
                sn[j] = c / r;
                h[j + ld * j] = r;
                h[j + 1 + ld * j] = 0.0;
                g[j + 1] = -sn[j] * g[j];
                g[j] *= cs[j];
                let estimate = g[j + 1].abs();
                report.residual_norm = estimate;
                if options.record_history {
                    report.residual_history.push(estimate);
                }
                k = j + 1;
                if estimate <= setup.threshold || w_norm == 0.0 {
                    break;
                }
                for (v, wi) in basis[j + 1].iter_mut().zip(&w) {
                    *v = wi / w_norm;
                }
            }
            // Solve the k×k triangular system H y = g in place (g is reset
            // at the next cycle), then x += M⁻¹ V y.
            for i in (0..k).rev() {
                let s: f64 = ((i + 1)..k).map(|l| h[i + ld * l] * g[l]).sum();
                g[i] = (g[i] - s) / h[i + ld * i];
            }
            w.fill(0.0);
            for (v, yi) in basis.iter().zip(&g[..k]) {
                vector::axpy(*yi, v, &mut w);
            }
            apply_inverse(precond, &w, &mut z)?;
            vector::axpy(1.0, &z, x);
        }
    })();
    conclude("GMRES", report, setup.b_norm, outcome, || {
        true_residual(op, b, x, &mut w)
    })
}
