//! The conjugate-direction method of the Deep Conjugate Direction Method
//! (Kaneda et al., ICML 2023) with directions from any
//! [`Preconditioner`], linear or not: a trained network, a classical
//! preconditioner (the loop is then a flexible PCG), or a caller's callback.
//!
//! r = b − A x; each iteration q = D(r/‖r‖), q is A-orthogonalised against
//! the last k directions, p = q, α = pᵀr / pᵀAp, x += α p, r −= α A p (with
//! the true residual recomputed every `true_residual_period` iterations),
//! until ‖r‖ ≤ max(rtol·‖b‖, atol).
//!
//! Safeguard: a generated direction that, after orthogonalisation, is
//! nearly orthogonal to the residual (|cos∠(p, r)| < `stall_cosine`) would
//! make almost no progress, and the next one would be almost the same: the
//! iteration stalls. Such a step uses the residual itself instead (a CG
//! step), counted in [`ConjugateDirectionReport::fallback_steps`].

use super::options::{conclude, true_residual, KrylovOptions};
use super::precond::{apply_inverse, Preconditioner};
use super::single_reduction::{start_local, AllreduceSum, Reducer};
use crate::error::Result;
use crate::operator::LinearOperator;
use crate::report::{SolveReason, SolveReport};
use crate::vector;
use std::collections::VecDeque;
use std::time::Instant;

/// Options of [`conjugate_direction`].
#[derive(Debug, Clone, PartialEq)]
pub struct ConjugateDirectionOptions {
    /// Tolerances, iteration limit, initial guess and history.
    pub krylov: KrylovOptions,
    /// k: directions kept for A-orthogonalisation. Default 2.
    pub orthogonalize: usize,
    /// Recompute r = b − A x every this many iterations (0 = never; the
    /// true residual still confirms convergence). Default 50.
    pub true_residual_period: usize,
    /// Replace a direction p with |cos∠(p, r)| below this by r (0 = never).
    /// Default 0.01.
    pub stall_cosine: f64,
}

impl Default for ConjugateDirectionOptions {
    fn default() -> Self {
        Self {
            krylov: KrylovOptions::default(),
            orthogonalize: 2,
            true_residual_period: 50,
            stall_cosine: 0.01,
        }
    }
}

/// The report of a conjugate-direction solve.
#[derive(Debug, Clone)]
pub struct ConjugateDirectionReport {
    /// As for CG.
    pub solve: SolveReport,
    /// Wall time spent in the direction generator, in seconds.
    pub direction_seconds: f64,
    /// Steps that used the residual because the generated direction stalled.
    pub fallback_steps: usize,
}

/// Solves A x = b (A symmetric positive definite) by the conjugate-direction
/// method with directions from `generator`, to ‖b − A x‖₂ ≤ max(rtol·‖b‖₂,
/// atol). Every outcome other than convergence is an error
/// ([`Error::SolveFailed`](crate::Error::SolveFailed) with the report); a
/// direction that is zero or not a descent direction after
/// orthogonalisation (pᵀAp ≤ 0) stops the solve as a breakdown /
/// indefinite operator.
pub fn conjugate_direction<A, D>(
    op: &A,
    generator: &D,
    b: &[f64],
    x: &mut [f64],
    options: &ConjugateDirectionOptions,
) -> Result<ConjugateDirectionReport>
where
    A: LinearOperator + ?Sized,
    D: Preconditioner + ?Sized,
{
    conjugate_direction_reduced(op, generator, b, x, options, None)
}

/// [`conjugate_direction`] on this rank's part of a distributed problem:
/// `op`, `generator`, `b` and `x` are local, and `allreduce` sums over all
/// ranks (see [`cg_single_reduction`](super::cg_single_reduction)). Two
/// reductions per iteration (the orthogonalisation coefficients with ‖r‖²;
/// then pᵀAp, pᵀr, ‖p‖², rᵀAp and ‖Ap‖², the last two estimating the next
/// ‖r‖ that scales the generator's input), two more for a fallback step,
/// one for each true-residual recomputation; every decision
/// uses reduced values, so all ranks take the same steps, and a local
/// failure is reported on every rank at the next reduction. Public as
/// [`ConjugateDirectionSolver::allreduce`](crate::learned::ConjugateDirectionSolver::allreduce).
pub(crate) fn conjugate_direction_reduced<A, D>(
    op: &A,
    generator: &D,
    b: &[f64],
    x: &mut [f64],
    options: &ConjugateDirectionOptions,
    allreduce: Option<AllreduceSum<'_>>,
) -> Result<ConjugateDirectionReport>
where
    A: LinearOperator + ?Sized,
    D: Preconditioner + ?Sized,
{
    let n = op.dim();
    let krylov = &options.krylov;
    let mut run = Run {
        op,
        generator,
        options,
        reducer: Reducer::new(allreduce),
        r: vec![0.0; n],
        kept: VecDeque::new(),
        sums: Vec::new(),
        seconds: 0.0,
        fallbacks: 0,
    };
    let (converged, mut report, consistent) = start_local(
        op,
        krylov,
        generator.dim(),
        b,
        x,
        &mut run.r,
        &mut run.reducer,
    );
    let b = &*consistent;
    let mut sums = [vector::dot(b, b), vector::dot(&run.r, &run.r)];
    let started = run.reducer.reduce(&mut sums);
    let b_norm = sums[0].sqrt();
    let threshold = (krylov.rtol * b_norm).max(krylov.atol);
    let outcome = started.and_then(|()| {
        report.initial_residual_norm = sums[1].sqrt();
        report.true_residual_norm = report.initial_residual_norm;
        run.iterate(x, b, threshold, converged, sums[1].sqrt(), &mut report)
    });
    op.remove_null_space(x);
    let solve = conclude("conjugate direction", report, b_norm, outcome, || {
        run.true_residual(x, b)
    })?;
    Ok(ConjugateDirectionReport {
        solve,
        direction_seconds: run.seconds,
        fallback_steps: run.fallbacks,
    })
}

/// A kept direction p, A p and the global pᵀAp.
type Kept = (Vec<f64>, Vec<f64>, f64);

struct Run<'a, A: ?Sized, D: ?Sized> {
    op: &'a A,
    generator: &'a D,
    options: &'a ConjugateDirectionOptions,
    reducer: Reducer<'a>,
    r: Vec<f64>,
    kept: VecDeque<Kept>,
    /// The local sums of one orthogonalisation (reused).
    sums: Vec<f64>,
    seconds: f64,
    fallbacks: usize,
}

impl<A: LinearOperator + ?Sized, D: Preconditioner + ?Sized> Run<'_, A, D> {
    /// ‖b − A x‖ over all ranks (r is left as b − A x).
    fn true_residual(&mut self, x: &[f64], b: &[f64]) -> Result<f64> {
        let (op, r) = (self.op, &mut self.r);
        self.reducer
            .local(|| true_residual(op, b, x, r).map(|_| ()));
        let mut sum = [vector::dot(&self.r, &self.r)];
        self.reducer.reduce(&mut sum)?;
        Ok(sum[0].sqrt())
    }

    /// A p, then p and A p A-orthogonalised against the kept directions
    /// (classical Gram–Schmidt: all coefficients from one reduction, which
    /// also carries `extra`).
    fn orthogonalize(&mut self, p: &mut [f64], ap: &mut [f64], extra: &mut [f64]) -> Result<()> {
        let op = self.op;
        self.reducer.local(|| op.apply(p, ap));
        let sums = &mut self.sums;
        sums.clear();
        sums.extend(self.kept.iter().map(|(_, apj, _)| vector::dot(p, apj)));
        sums.extend_from_slice(extra);
        self.reducer.reduce(sums)?;
        let k = self.kept.len();
        extra.copy_from_slice(&sums[k..]);
        for ((pj, apj, pj_apj), c) in self.kept.iter().zip(&sums[..k]) {
            let c = c / pj_apj;
            vector::axpy(-c, pj, p);
            vector::axpy(-c, apj, ap);
        }
        Ok(())
    }

    /// pᵀAp, pᵀr, ‖p‖, rᵀAp and ‖Ap‖² over all ranks (the last two give
    /// ‖r − αAp‖² without another reduction).
    fn step_sums(&mut self, p: &[f64], ap: &[f64]) -> Result<[f64; 5]> {
        let r = &self.r;
        let mut sums = [
            vector::dot(p, ap),
            vector::dot(p, r),
            vector::dot(p, p),
            vector::dot(r, ap),
            vector::dot(ap, ap),
        ];
        self.reducer.reduce(&mut sums)?;
        sums[2] = sums[2].sqrt();
        Ok(sums)
    }

    fn iterate(
        &mut self,
        x: &mut [f64],
        b: &[f64],
        threshold: f64,
        converged: SolveReason,
        r_norm: f64,
        report: &mut SolveReport,
    ) -> Result<SolveReason> {
        let n = x.len();
        let options = self.options;
        let (mut scaled, mut p, mut ap) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        // The generator sees r scaled by an estimate of ‖r‖ (exact after a
        // true-residual computation); the exact norm arrives with the
        // orthogonalisation coefficients, in the same reduction.
        let mut estimate = r_norm;
        loop {
            let inv = 1.0 / estimate.max(f64::MIN_POSITIVE);
            scaled
                .iter_mut()
                .zip(self.r.iter())
                .for_each(|(s, ri)| *s = ri * inv);
            let start = Instant::now();
            let generator = self.generator;
            let op = self.op;
            self.reducer.local(|| {
                apply_inverse(generator, &scaled, &mut p)?;
                op.remove_null_space(&mut p);
                Ok(())
            });
            self.seconds += start.elapsed().as_secs_f64();
            let mut rr = [vector::dot(&self.r, &self.r)];
            self.orthogonalize(&mut p, &mut ap, &mut rr)?;
            let r_norm = rr[0].sqrt();
            report.residual_norm = r_norm;
            if !r_norm.is_finite() {
                return Ok(SolveReason::DivergedNanOrInf);
            }
            if r_norm <= threshold {
                let true_norm = self.true_residual(x, b)?;
                report.true_residual_norm = true_norm;
                if true_norm <= threshold {
                    return Ok(converged);
                }
                self.kept.clear();
                estimate = true_norm;
                continue;
            }
            if report.iterations >= options.krylov.max_iterations {
                return Ok(SolveReason::DivergedMaxIterations);
            }
            let [mut p_ap, mut p_r, mut p_norm, mut r_ap, mut ap_ap] = self.step_sums(&p, &ap)?;
            let cosine = p_r / (p_norm * r_norm);
            if options.stall_cosine > 0.0
                && (cosine.abs() < options.stall_cosine || !cosine.is_finite())
            {
                self.fallbacks += 1;
                p.copy_from_slice(&scaled);
                self.orthogonalize(&mut p, &mut ap, &mut [])?;
                [p_ap, p_r, p_norm, r_ap, ap_ap] = self.step_sums(&p, &ap)?;
            }
            if !p_ap.is_finite() {
                return Ok(SolveReason::DivergedNanOrInf);
            }
            if p_ap <= 0.0 {
                return Ok(if p_norm == 0.0 {
                    SolveReason::DivergedBreakdown
                } else {
                    SolveReason::DivergedIndefiniteOperator
                });
            }
            let alpha = p_r / p_ap;
            vector::axpy(alpha, &p, x);
            report.iterations += 1;
            let period = options.true_residual_period;
            estimate = if period > 0 && report.iterations % period == 0 {
                self.true_residual(x, b)?
            } else {
                // ‖r − αAp‖ from the reduced sums: only the generator's input
                // scale (the exact norm follows in the next reduction).
                vector::axpy(-alpha, &ap, &mut self.r);
                (r_norm * r_norm - 2.0 * alpha * r_ap + alpha * alpha * ap_ap)
                    .max(0.0)
                    .sqrt()
            };
            if options.krylov.record_history {
                report.residual_history.push(estimate);
            }
            if options.orthogonalize > 0 {
                // Reuse the oldest buffers once k directions are kept.
                let (mut pj, mut apj) = if self.kept.len() == options.orthogonalize {
                    self.kept
                        .pop_front()
                        .map(|(p, ap, _)| (p, ap))
                        .expect("k > 0 kept")
                } else {
                    (vec![0.0; n], vec![0.0; n])
                };
                pj.copy_from_slice(&p);
                apj.copy_from_slice(&ap);
                self.kept.push_back((pj, apj, p_ap));
            }
        }
    }
}
