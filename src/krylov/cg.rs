//! Preconditioned conjugate gradient.

use super::options::{conclude, consistent_rhs, true_residual, KrylovOptions, ResidualNorm};
use super::precond::{require_linear, Preconditioner};
use crate::error::Result;
use crate::operator::LinearOperator;
use crate::report::{SolveReason, SolveReport};
use crate::vector;

/// Solves A x = b for symmetric positive definite A with the
/// preconditioned conjugate gradient method, to
/// ‖b − A x‖ ≤ max(rtol·‖b‖, atol) in the norm of `options.norm` (the
/// 2-norm, or the ∞-norm max|rᵢ| simulators stop on).
///
/// Convergence is decided on the recursively updated residual and then
/// confirmed on the true residual b − A x; when they disagree, CG restarts
/// from the true residual (counting on towards `max_iterations`).
///
/// Returns the report when the solve converged. Every other outcome is an
/// error: invalid input (dimensions, NaN/Inf in b or x₀, a nonsymmetric
/// CSR matrix, a right-hand side inconsistent with a singular grid operator)
/// before iterating, or [`Error::SolveFailed`](crate::Error::SolveFailed) with the report and reason
/// (iteration limit, pᵀAp ≤ 0, rᵀM⁻¹r ≤ 0, NaN/Inf, callback failure). In
/// Rust, x holds the last iterate in every case.
pub fn cg<A, M>(
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
    cg_reusing(op, precond, b, x, options, &mut CgVectors::default())
}

/// The work vectors of CG (r, z, p, q), kept by a caller that solves
/// repeatedly so that each solve reuses their memory.
#[derive(Debug, Default)]
pub(crate) struct CgVectors {
    r: Vec<f64>,
    z: Vec<f64>,
    p: Vec<f64>,
    q: Vec<f64>,
}

/// `v` resized to `n`, keeping its memory and (stale) values: CG writes
/// each work vector before reading it.
fn reused(v: &mut Vec<f64>, n: usize) -> Vec<f64> {
    let mut v = std::mem::take(v);
    v.resize(n, 0.0);
    v
}

/// [`cg`] with the work vectors of `vectors`, returned to it afterwards.
pub(crate) fn cg_reusing<A, M>(
    op: &A,
    precond: &M,
    b: &[f64],
    x: &mut [f64],
    options: &KrylovOptions,
    vectors: &mut CgVectors,
) -> Result<SolveReport>
where
    A: LinearOperator + ?Sized,
    M: Preconditioner + ?Sized,
{
    let n = op.dim();
    require_linear(precond, "CG")?;
    let setup = options.setup_in_norm(n, precond.dim(), b, x)?;
    op.check_cg_solvable(b)?;
    // A singular operator: solve for the consistent part of b, keep every
    // preconditioned residual and x free of the null space.
    let (b, null_space_component) = consistent_rhs(op, b);
    let b = &*b;
    let converged = setup.converged;
    let (b_norm, threshold) = (setup.b_norm, setup.threshold);

    let mut run = Run {
        op,
        precond,
        b,
        b_norm,
        threshold,
        norm: options.norm,
        max_iterations: options.max_iterations,
        r: reused(&mut vectors.r, n),
        z: reused(&mut vectors.z, if precond.is_identity() { 0 } else { n }),
        p: reused(&mut vectors.p, n),
        q: reused(&mut vectors.q, n),
        report: SolveReport {
            null_space_component,
            ..options.new_report(converged)
        },
        record_history: options.record_history,
    };
    let outcome = if options.nonzero_initial_guess {
        op.remove_null_space(x);
        run.true_residual(x)
    } else {
        x.fill(0.0);
        vector::copy(b, &mut run.r);
        run.report.true_residual_norm = b_norm;
        Ok(vector::norm2(b))
    }
    .and_then(|r0| {
        run.report.initial_residual_norm = r0;
        run.iterate(x, r0, converged)
    });
    run.finish(x, outcome, vectors)
}

/// The state of one CG solve.
struct Run<'a, A: ?Sized, M: ?Sized> {
    op: &'a A,
    precond: &'a M,
    b: &'a [f64],
    b_norm: f64,
    threshold: f64,
    /// The norm of the stopping test and of the report.
    norm: ResidualNorm,
    max_iterations: usize,
    r: Vec<f64>,
    /// M⁻¹ r; empty when M = I (r is used instead).
    z: Vec<f64>,
    p: Vec<f64>,
    q: Vec<f64>,
    report: SolveReport,
    record_history: bool,
}

/// How the iteration ended: a reason, or a callback error.
type Outcome = Result<SolveReason>;

impl<A: LinearOperator + ?Sized, M: Preconditioner + ?Sized> Run<'_, A, M> {
    /// r ← b − A x; returns ‖r‖₂ and records ‖r‖ in the stopping norm as
    /// the true residual.
    fn true_residual(&mut self, x: &[f64]) -> Result<f64> {
        let norm2 = true_residual(self.op, self.b, x, &mut self.r)?;
        self.report.true_residual_norm = self.stopping_norm(norm2);
        Ok(norm2)
    }

    /// ‖r‖ in the stopping norm, given ‖r‖₂.
    fn stopping_norm(&self, r_norm2: f64) -> f64 {
        match self.norm {
            ResidualNorm::Two => r_norm2,
            ResidualNorm::Max => vector::max_abs(&self.r),
        }
    }

    /// z ← M⁻¹ r; returns rᵀz, or the reason to stop.
    fn precondition(&mut self, r_norm: f64) -> Result<Result<f64, SolveReason>> {
        let rz = if self.precond.is_identity() {
            r_norm * r_norm
        } else if self.op.has_null_space() {
            // M⁻¹ of a singular A (e.g. a V-cycle whose coarsest factor is
            // shifted) can amplify the null space: remove it from z.
            self.precond.apply_dot(&self.r, &mut self.z)?;
            self.op.remove_null_space(&mut self.z);
            vector::dot(&self.r, &self.z)
        } else {
            self.precond.apply_dot(&self.r, &mut self.z)?
        };
        Ok(if !rz.is_finite() {
            Err(SolveReason::DivergedNanOrInf)
        } else if rz <= 0.0 {
            Err(SolveReason::DivergedIndefinitePreconditioner)
        } else {
            Ok(rz)
        })
    }

    /// The preconditioned residual z = M⁻¹ r (r itself when M = I) and the
    /// search direction p, borrowed together.
    fn z_and_p(&mut self) -> (&[f64], &mut [f64]) {
        let z = if self.precond.is_identity() {
            &self.r
        } else {
            &self.z
        };
        (z, &mut self.p)
    }

    /// Runs CG from the residual in `self.r` (of 2-norm `r_norm`),
    /// restarting from the true residual whenever the recursive one
    /// converged alone.
    fn iterate(&mut self, x: &mut [f64], mut r_norm: f64, converged: SolveReason) -> Outcome {
        loop {
            let stop = self.stopping_norm(r_norm);
            self.report.residual_norm = stop;
            if stop <= self.threshold {
                return Ok(converged);
            }
            let mut rz = match self.precondition(r_norm)? {
                Ok(rz) => rz,
                Err(reason) => return Ok(reason),
            };
            let (z, p) = self.z_and_p();
            vector::copy(z, p);
            loop {
                if self.report.iterations >= self.max_iterations {
                    return Ok(SolveReason::DivergedMaxIterations);
                }
                let pq = self.op.apply_dot(&self.p, &mut self.q)?;
                if !pq.is_finite() {
                    return Ok(SolveReason::DivergedNanOrInf);
                }
                if pq <= 0.0 {
                    return Ok(SolveReason::DivergedIndefiniteOperator);
                }
                let alpha = rz / pq;
                let rr = vector::cg_update(alpha, &self.p, &self.q, x, &mut self.r);
                r_norm = rr.sqrt();
                let stop = self.stopping_norm(r_norm);
                self.report.iterations += 1;
                self.report.residual_norm = stop;
                if self.record_history {
                    self.report.residual_history.push(stop);
                }
                if !r_norm.is_finite() {
                    return Ok(SolveReason::DivergedNanOrInf);
                }
                if stop <= self.threshold {
                    r_norm = self.true_residual(x)?;
                    break;
                }
                let rz_next = match self.precondition(r_norm)? {
                    Ok(rz) => rz,
                    Err(reason) => return Ok(reason),
                };
                let beta = rz_next / rz;
                rz = rz_next;
                let (z, p) = self.z_and_p();
                vector::update_direction(z, beta, p);
            }
        }
    }

    fn finish(
        self,
        x: &mut [f64],
        outcome: Outcome,
        vectors: &mut CgVectors,
    ) -> Result<SolveReport> {
        self.op.remove_null_space(x);
        let Run {
            op,
            b,
            mut r,
            z,
            p,
            q,
            report,
            b_norm,
            norm,
            ..
        } = self;
        let result = conclude("CG", report, b_norm, outcome, || {
            true_residual(op, b, x, &mut r)?;
            Ok(norm.of(&r))
        });
        *vectors = CgVectors { r, z, p, q };
        result
    }
}
