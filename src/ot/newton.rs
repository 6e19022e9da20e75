//! Sinkhorn-Newton-Sparse (Tang et al., ICLR 2024): Newton steps on the
//! concave dual with a sparsified Hessian, solved by the crate's CG.

use super::dual::{Kernel, Marginals};
use super::hessian::{OtHessian, SparsePlan};
use super::sinkhorn::{predicted_iterations, sinkhorn};
use super::OtOptions;
use crate::error::Error;
use crate::krylov::KrylovOptions;
use crate::vector::dot;

/// Largest relative CG tolerance of a Newton system (far from the optimum).
const FORCING: f64 = 0.1;
/// Armijo sufficient-increase constant of the line search.
const ARMIJO: f64 = 1e-4;
/// Step halvings before a Newton step is declared failed.
const MAX_HALVINGS: usize = 30;
/// A Newton step that reduces the marginal error by less than this factor
/// doubles the entries kept per row of P.
const SLOW_PROGRESS: f64 = 0.25;
/// Sinkhorn rather than Newton finishes the solve only when its observed
/// linear rate predicts at most this many more iterations (it slows down as
/// it goes, so the rate is trusted only over a short finish).
const SINKHORN_FINISH: f64 = 25.0;
/// Diagonal shift of the sparsified M̃ = [[diag(P1), P̃], [P̃ᵀ, diag(Pᵀ1)]]
/// (−M̃/ε approximates the dual Hessian), relative to its largest diagonal
/// entry (keeps it definite when nothing was dropped).
const RELATIVE_SHIFT: f64 = 1e-12;

/// Counters of a Newton phase.
#[derive(Debug, Default)]
pub(crate) struct NewtonRun {
    pub newton_iterations: usize,
    pub cg_iterations: usize,
    pub sinkhorn_iterations: usize,
    pub fallbacks: usize,
    pub error: f64,
    /// Entries kept per row of P in the last Hessian.
    pub max_entries_per_row: usize,
}

/// Work of one Newton step in Sinkhorn iterations (two exp passes over C):
/// about two passes (selecting P̃, one line-search trial), plus one read of
/// the n·k entries of P̃ per CG iteration, counted as a pass over as many
/// entries of C.
fn newton_step_cost(cg_iterations: usize, k: usize, m: usize) -> f64 {
    (2.0 + cg_iterations as f64 * k as f64 / m as f64) / 2.0
}

/// Newton iterations from (f, g) until the marginal error is ≤ `tol`.
/// The Hessian starts with `options.hessian_entries_per_row` entries of P
/// per row and doubles them (up to `options.max_hessian_entries_per_row`)
/// after a step that cut the marginal error by less than 4×.
/// A step whose CG solve fails, or that the line search cannot make
/// increase the dual (nor halve the marginal error), is replaced by
/// `options.warmup_iterations` Sinkhorn iterations (counted as a fallback).
///
/// Sinkhorn takes over once per solve ([`sinkhorn_finish`]) when its last
/// observed rate per iteration (`sinkhorn_rate`: the warm-up's, updated by
/// fallbacks) predicts a short finish: at the start, and at the cap, where
/// a sparsified Newton step converges only linearly, when that rate would
/// also have cut the error more for the step's work ([`newton_step_cost`]).
pub(crate) fn sinkhorn_newton(
    kernel: &Kernel<'_>,
    a: &[f64],
    b: &[f64],
    f: &mut [f64],
    g: &mut [f64],
    mut sinkhorn_rate: f64,
    options: &OtOptions,
) -> NewtonRun {
    let mut run = NewtonRun::default();
    let mut marginals = kernel.marginals(f, g);
    run.error = marginals.error(a, b);
    let mut entries_per_row = options.hessian_entries_per_row.min(g.len());
    // The sparsified plan's buffers, refilled at every step.
    let mut kept = SparsePlan::default();
    let short_finish =
        |error: f64, rate: f64| predicted_iterations(error, rate, options.tol) <= SINKHORN_FINISH;
    let mut sinkhorn_tried = short_finish(run.error, sinkhorn_rate);
    if sinkhorn_tried {
        marginals = sinkhorn_finish(kernel, (a, b), (f, g), &mut run, sinkhorn_rate, options);
    }
    while run.error > options.tol && run.newton_iterations < options.max_newton_iterations {
        run.newton_iterations += 1;
        let previous_error = run.error;
        let mut step_cost = None;
        match newton_step(
            kernel,
            a,
            b,
            f,
            g,
            &marginals,
            run.error,
            (entries_per_row, &mut kept),
            options,
        ) {
            Ok((next, cg_iterations)) => {
                run.cg_iterations += cg_iterations;
                marginals = next;
                step_cost = Some(newton_step_cost(cg_iterations, entries_per_row, g.len()));
            }
            Err(cg_iterations) => {
                run.cg_iterations += cg_iterations;
                run.fallbacks += 1;
                let s = sinkhorn(
                    kernel,
                    a,
                    b,
                    f,
                    g,
                    options.tol,
                    options.warmup_iterations.max(1),
                );
                run.sinkhorn_iterations += s.iterations;
                if s.rate.is_finite() {
                    sinkhorn_rate = s.rate;
                }
                marginals = kernel.marginals(f, g);
            }
        }
        run.error = marginals.error(a, b);
        if run.error.is_nan() {
            break;
        }
        if run.error > SLOW_PROGRESS * previous_error {
            // Slow progress: the dropped entries of P limit the step.
            let cap = options.max_hessian_entries_per_row.min(g.len());
            let reduction = run.error / previous_error;
            if let (false, true, Some(cost)) = (sinkhorn_tried, entries_per_row >= cap, step_cost) {
                if short_finish(run.error, sinkhorn_rate) && sinkhorn_rate.powf(cost) < reduction {
                    sinkhorn_tried = true;
                    marginals =
                        sinkhorn_finish(kernel, (a, b), (f, g), &mut run, sinkhorn_rate, options);
                    continue;
                }
            }
            entries_per_row = (2 * entries_per_row).min(cap);
        }
    }
    run.max_entries_per_row = entries_per_row;
    run
}

/// Runs Sinkhorn for twice the iterations `rate` predicts from `run.error`
/// (at least one, at most `options.max_sinkhorn_iterations`), stopping at
/// `options.tol`, and returns the new marginals (`run` updated); Newton
/// goes on if that falls short (e.g. at the rounding floor).
fn sinkhorn_finish(
    kernel: &Kernel<'_>,
    (a, b): (&[f64], &[f64]),
    (f, g): (&mut [f64], &mut [f64]),
    run: &mut NewtonRun,
    rate: f64,
    options: &OtOptions,
) -> Marginals {
    let predicted = predicted_iterations(run.error, rate, options.tol);
    let budget = ((2.0 * predicted).ceil().max(1.0) as usize).min(options.max_sinkhorn_iterations);
    run.sinkhorn_iterations += sinkhorn(kernel, a, b, f, g, options.tol, budget).iterations;
    let marginals = kernel.marginals(f, g);
    run.error = marginals.error(a, b);
    marginals
}

/// One damped Newton step with the `k` largest entries of every row of P
/// in the Hessian (`kept` holds them, its buffers reused); on success
/// updates (f, g) and returns the new marginals and the CG iterations, on
/// failure leaves (f, g) unchanged.
#[allow(clippy::too_many_arguments)]
fn newton_step(
    kernel: &Kernel<'_>,
    a: &[f64],
    b: &[f64],
    f: &mut [f64],
    g: &mut [f64],
    marginals: &Marginals,
    error: f64,
    (k, kept): (usize, &mut SparsePlan),
    options: &OtOptions,
) -> Result<(Marginals, usize), usize> {
    let n = f.len();
    let eps = kernel.eps;
    let gradient: Vec<f64> = a
        .iter()
        .zip(&marginals.rows)
        .chain(b.iter().zip(&marginals.cols))
        .map(|(t, s)| t - s)
        .collect();
    kernel.largest_per_row(f, g, k, kept);
    let hessian = OtHessian::new(&*kept, &marginals.rows, &marginals.cols, RELATIVE_SHIFT);
    let rhs: Vec<f64> = gradient.iter().map(|v| eps * v).collect();
    // Inexact Newton: solve only as accurately as the current marginal
    // error warrants (forcing term), which keeps superlinear convergence.
    let cg_options = KrylovOptions {
        rtol: FORCING.min(error).max(options.cg_rtol),
        max_iterations: options.cg_max_iterations,
        ..KrylovOptions::default()
    };
    let (step, cg_iterations) = match hessian.solve(&rhs, &cg_options) {
        Ok((step, report)) => (step, report.iterations),
        Err(Error::SolveFailed { report, .. }) => return Err(report.iterations),
        Err(_) => return Err(0),
    };
    let slope = dot(&gradient, &step);
    if slope.is_nan() || slope <= 0.0 {
        return Err(cg_iterations);
    }
    let value = kernel.dual_value(a, b, f, g, marginals.mass);
    let (mut f_try, mut g_try) = (f.to_vec(), g.to_vec());
    let mut t = 1.0;
    for _ in 0..MAX_HALVINGS {
        for ((x, x0), d) in f_try.iter_mut().zip(f.iter()).zip(&step[..n]) {
            *x = x0 + t * d;
        }
        for ((x, x0), d) in g_try.iter_mut().zip(g.iter()).zip(&step[n..]) {
            *x = x0 + t * d;
        }
        let trial = kernel.marginals(&f_try, &g_try);
        let trial_value = kernel.dual_value(a, b, &f_try, &g_try, trial.mass);
        // Near the optimum the dual changes below rounding; a halved
        // marginal error is then accepted as progress too.
        if trial_value >= value + ARMIJO * t * slope || trial.error(a, b) < 0.5 * error {
            f.copy_from_slice(&f_try);
            g.copy_from_slice(&g_try);
            return Ok((trial, cg_iterations));
        }
        t *= 0.5;
    }
    Err(cg_iterations)
}
