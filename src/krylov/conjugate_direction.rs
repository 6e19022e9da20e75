//! The conjugate-direction method of the Deep Conjugate Direction Method
//! (Kaneda et al., ICML 2023) with any direction generator: a trained
//! network, a classical preconditioner (the loop is then a flexible PCG), or
//! a caller's callback.
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
use super::report::{SolveReason, SolveReport};
use super::vector;
use crate::error::Result;
use crate::operator::LinearOperator;
use std::collections::VecDeque;
use std::time::Instant;

/// Proposes a search direction d = D(r) for a (normalised) residual r.
pub trait DirectionGenerator {
    /// The dimension n.
    fn dim(&self) -> usize;

    /// d ← D(r).
    fn direction(&self, r: &[f64], d: &mut [f64]) -> Result<()>;
}

/// A preconditioner as direction generator: D(r) = M⁻¹ r.
pub struct PreconditionerDirection<'a, M: ?Sized>(pub &'a M);

impl<M: Preconditioner + ?Sized> DirectionGenerator for PreconditionerDirection<'_, M> {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn direction(&self, r: &[f64], d: &mut [f64]) -> Result<()> {
        apply_inverse(self.0, r, d)
    }
}

/// A closure as direction generator.
pub struct FnDirection<F> {
    dim: usize,
    f: F,
}

impl<F: Fn(&[f64], &mut [f64]) -> Result<()>> FnDirection<F> {
    /// D(r) = f(r) on vectors of length `dim`.
    pub fn new(dim: usize, f: F) -> Self {
        Self { dim, f }
    }
}

impl<F: Fn(&[f64], &mut [f64]) -> Result<()>> DirectionGenerator for FnDirection<F> {
    fn dim(&self) -> usize {
        self.dim
    }
    fn direction(&self, r: &[f64], d: &mut [f64]) -> Result<()> {
        (self.f)(r, d)
    }
}

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
/// ([`Error::SolveFailed`] with the report); a direction that is zero or
/// not a descent direction after orthogonalisation (pᵀAp ≤ 0) stops the
/// solve as an indefinite operator / breakdown.
pub fn conjugate_direction<A, D>(
    op: &A,
    generator: &D,
    b: &[f64],
    x: &mut [f64],
    options: &ConjugateDirectionOptions,
) -> Result<ConjugateDirectionReport>
where
    A: LinearOperator + ?Sized,
    D: DirectionGenerator + ?Sized,
{
    let n = op.dim();
    let krylov = &options.krylov;
    let setup = krylov.setup(n, generator.dim(), b, x)?;
    op.check_cg_solvable(b, setup.threshold)?;
    let mut report = krylov.new_report(setup.converged);
    let mut r = vec![0.0; n];
    let r0 = if krylov.nonzero_initial_guess {
        true_residual(op, b, x, &mut r)?
    } else {
        x.fill(0.0);
        vector::copy(b, &mut r);
        setup.b_norm
    };
    report.initial_residual_norm = r0;
    report.true_residual_norm = r0;
    let mut seconds = 0.0;
    let mut fallbacks = 0;
    let outcome = iterate(
        op,
        generator,
        b,
        x,
        &mut r,
        r0,
        setup.threshold,
        setup.converged,
        options,
        &mut report,
        (&mut seconds, &mut fallbacks),
    );
    let solve = conclude("conjugate direction", report, setup.b_norm, outcome, || {
        true_residual(op, b, x, &mut r)
    })?;
    Ok(ConjugateDirectionReport {
        solve,
        direction_seconds: seconds,
        fallback_steps: fallbacks,
    })
}

#[allow(clippy::too_many_arguments)]
/// A p, then p and A p A-orthogonalised against the kept directions (with
/// the same coefficients, so A p needs one product).
fn orthogonalized<A: LinearOperator + ?Sized>(
    op: &A,
    kept: &VecDeque<(Vec<f64>, Vec<f64>, f64)>,
    p: &mut [f64],
    ap: &mut [f64],
) -> Result<()> {
    op.apply(p, ap)?;
    for (pj, apj, pj_apj) in kept {
        let c = vector::dot(p, apj) / pj_apj;
        vector::axpy(-c, pj, p);
        vector::axpy(-c, apj, ap);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn iterate<A, D>(
    op: &A,
    generator: &D,
    b: &[f64],
    x: &mut [f64],
    r: &mut [f64],
    mut r_norm: f64,
    threshold: f64,
    converged: SolveReason,
    options: &ConjugateDirectionOptions,
    report: &mut SolveReport,
    (seconds, fallbacks): (&mut f64, &mut usize),
) -> Result<SolveReason>
where
    A: LinearOperator + ?Sized,
    D: DirectionGenerator + ?Sized,
{
    let n = x.len();
    let (mut scaled, mut p, mut ap) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    // The last k directions with A p and pᵀAp.
    let mut kept: VecDeque<(Vec<f64>, Vec<f64>, f64)> = VecDeque::new();
    loop {
        report.residual_norm = r_norm;
        if !r_norm.is_finite() {
            return Ok(SolveReason::DivergedNanOrInf);
        }
        if r_norm <= threshold {
            r_norm = true_residual(op, b, x, r)?;
            report.true_residual_norm = r_norm;
            if r_norm <= threshold {
                return Ok(converged);
            }
            kept.clear();
            continue;
        }
        if report.iterations >= options.krylov.max_iterations {
            return Ok(SolveReason::DivergedMaxIterations);
        }
        let inv = 1.0 / r_norm;
        scaled
            .iter_mut()
            .zip(r.iter())
            .for_each(|(s, ri)| *s = ri * inv);
        let start = Instant::now();
        generator.direction(&scaled, &mut p)?;
        *seconds += start.elapsed().as_secs_f64();
        orthogonalized(op, &kept, &mut p, &mut ap)?;
        let cosine = vector::dot(&p, r) / (vector::norm2(&p) * r_norm);
        if options.stall_cosine > 0.0
            && (cosine.abs() < options.stall_cosine || !cosine.is_finite())
        {
            *fallbacks += 1;
            p.copy_from_slice(&scaled);
            orthogonalized(op, &kept, &mut p, &mut ap)?;
        }
        let p_ap = vector::dot(&p, &ap);
        if !p_ap.is_finite() {
            return Ok(SolveReason::DivergedNanOrInf);
        }
        if p_ap <= 0.0 {
            return Ok(if vector::dot(&p, &p) == 0.0 {
                SolveReason::DivergedBreakdown
            } else {
                SolveReason::DivergedIndefiniteOperator
            });
        }
        let alpha = vector::dot(&p, r) / p_ap;
        vector::axpy(alpha, &p, x);
        report.iterations += 1;
        let period = options.true_residual_period;
        r_norm = if period > 0 && report.iterations % period == 0 {
            true_residual(op, b, x, r)?
        } else {
            vector::axpy(-alpha, &ap, r);
            vector::norm2(r)
        };
        if options.krylov.record_history {
            report.residual_history.push(r_norm);
        }
        if options.orthogonalize > 0 {
            // Reuse the oldest buffers once k directions are kept.
            let (mut pj, mut apj) = if kept.len() == options.orthogonalize {
                kept.pop_front()
                    .map(|(p, ap, _)| (p, ap))
                    .expect("k > 0 kept")
            } else {
                (vec![0.0; n], vec![0.0; n])
            };
            pj.copy_from_slice(&p);
            apj.copy_from_slice(&ap);
            kept.push_back((pj, apj, p_ap));
        }
    }
}
