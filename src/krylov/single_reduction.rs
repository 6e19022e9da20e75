//! Conjugate gradient with one global reduction per iteration
//! (Chronopoulos–Gear), for distributed solves: each rank holds its part of
//! the vectors, applies its part of A (doing its own halo exchange) and of
//! M⁻¹, and the library sums the inner products of one iteration over all
//! ranks with a single `allreduce_sum` call. The library never links MPI.
//!
//! Every stopping decision uses the reduced (global) values only, so all
//! ranks take the same number of iterations and return the same report. A
//! local failure (an operator or preconditioner callback error, bad input)
//! is not returned at once: it is flagged in the next reduction so that
//! every rank stops there, the failing rank with its error and the others
//! with a callback error naming another rank. A callback that communicates
//! must finish its communication before it reports an error.

use super::options::{conclude, consistent_rhs, true_residual, KrylovOptions};
use super::precond::{apply_inverse, require_linear, Preconditioner};
use crate::error::{Error, Result};
use crate::operator::LinearOperator;
use crate::report::{SolveReason, SolveReport};
use crate::vector;
use std::borrow::Cow;

/// Sums `buf` elementwise over all ranks, in place (MPI_Allreduce with
/// MPI_SUM); the identity in a serial solve.
pub type AllreduceSum<'a> = &'a dyn Fn(&mut [f64]) -> Result<()>;

/// Slots of the reduction buffer.
const RU: usize = 0;
const WU: usize = 1;
const RR: usize = 2;
const BB: usize = 3;

/// Solves A x = b to ‖b − A x‖₂ ≤ max(rtol·‖b‖₂, atol) (norms over all
/// ranks) by preconditioned CG in the single-reduction form of Chronopoulos
/// and Gear: per iteration one application of A and of M⁻¹ and one call of
/// `allreduce` (None: serial) on 3 doubles (rᵀu, wᵀu, rᵀr) plus a failure
/// flag. `op`, `precond`, `b` and `x` are this rank's parts. Convergence of
/// the recursive residual is confirmed on the true residual (one more
/// reduction). Results as for [`cg`](super::cg).
pub fn cg_single_reduction<A, M>(
    op: &A,
    precond: &M,
    b: &[f64],
    x: &mut [f64],
    options: &KrylovOptions,
    allreduce: Option<AllreduceSum<'_>>,
) -> Result<SolveReport>
where
    A: LinearOperator + ?Sized,
    M: Preconditioner + ?Sized,
{
    // The same refusal on every rank: each passes the same kind of
    // preconditioner.
    require_linear(precond, "CG")?;
    let n = op.dim();
    let mut run = Run {
        op,
        precond,
        reducer: Reducer::new(allreduce),
        r: vec![0.0; n],
        u: vec![0.0; n],
        w: vec![0.0; n],
    };
    let (converged, mut report, consistent) = start_local(
        op,
        options,
        precond.dim(),
        b,
        x,
        &mut run.r,
        &mut run.reducer,
    );
    let b = &*consistent;
    let mut buf = [0.0; 4];
    run.directions(&mut buf, None);
    buf[BB] = if run.reducer.failed() {
        0.0
    } else {
        vector::dot(b, b)
    };
    let outcome = run.reducer.reduce(&mut buf);
    let b_norm = buf[BB].sqrt();
    let threshold = (options.rtol * b_norm).max(options.atol);
    let outcome = outcome.and_then(|()| {
        report.initial_residual_norm = buf[RR].sqrt();
        run.iterate(x, b, options, threshold, converged, buf, &mut report)
    });
    op.remove_null_space(x);
    // Every rank reaches the same reason, so the recomputation of the true
    // residual after a non-converged solve is collective too.
    conclude("CG (single reduction)", report, b_norm, outcome, || {
        run.true_residual(x, b)
    })
}

/// The local start of a distributed solve: checks this rank's inputs, and
/// that b is consistent with this rank's operator when it is singular (a
/// failure is recorded in `reducer` and shared at the first reduction, so
/// every rank stops there), removes b's null-space component (returned
/// with its norm in the report) and x₀'s, and sets r = b − A x₀, or x = 0
/// and r = b. Returns the reason reported on convergence, an empty report
/// and the b to solve for.
pub(crate) fn start_local<'b, A: LinearOperator + ?Sized>(
    op: &A,
    options: &KrylovOptions,
    direction_dim: usize,
    b: &'b [f64],
    x: &mut [f64],
    r: &mut [f64],
    reducer: &mut Reducer<'_>,
) -> (SolveReason, SolveReport, Cow<'b, [f64]>) {
    let setup = options.setup(op.dim(), direction_dim, b, x);
    let converged = setup
        .as_ref()
        .map_or(SolveReason::ConvergedRtol, |s| s.converged);
    let mut report = options.new_report(converged);
    let Ok(_) = setup.map_err(|e| reducer.fail(e)) else {
        return (converged, report, Cow::Borrowed(b));
    };
    reducer.local(|| op.check_cg_solvable(b));
    let (b, removed) = consistent_rhs(op, b);
    report.null_space_component = removed;
    if options.nonzero_initial_guess {
        op.remove_null_space(x);
        reducer.local(|| true_residual(op, &b, x, r).map(|_| ()));
    } else {
        x.fill(0.0);
        vector::copy(&b, r);
    }
    (converged, report, b)
}

/// Global sums with a failure flag appended, so that a local error stops
/// every rank at the same reduction.
pub(crate) struct Reducer<'a> {
    allreduce: Option<AllreduceSum<'a>>,
    /// The first local failure, reported at the next reduction.
    local_error: Option<Error>,
    /// The values and the flag of the current reduction (reused).
    buf: Vec<f64>,
}

impl<'a> Reducer<'a> {
    pub(crate) fn new(allreduce: Option<AllreduceSum<'a>>) -> Self {
        Self {
            allreduce,
            local_error: None,
            buf: Vec::new(),
        }
    }

    /// Records a local failure (the first one is kept).
    pub(crate) fn fail(&mut self, error: Error) {
        self.local_error.get_or_insert(error);
    }

    /// `true` after a local failure not yet reported.
    pub(crate) fn failed(&self) -> bool {
        self.local_error.is_some()
    }

    /// Runs a local step unless an earlier one failed; keeps its error.
    pub(crate) fn local(&mut self, step: impl FnOnce() -> Result<()>) {
        if !self.failed() {
            if let Err(e) = step() {
                self.fail(e);
            }
        }
    }

    /// Sums `values` over all ranks (with a failure flag); an error when any
    /// rank failed: this rank's own error, or a callback error naming
    /// another rank.
    pub(crate) fn reduce(&mut self, values: &mut [f64]) -> Result<()> {
        let flag = if self.failed() { 1.0 } else { 0.0 };
        self.buf.clear();
        self.buf.extend_from_slice(values);
        self.buf.push(flag);
        if let Some(allreduce) = self.allreduce {
            allreduce(&mut self.buf)?;
        }
        values.copy_from_slice(&self.buf[..values.len()]);
        match self.local_error.take() {
            Some(e) => Err(e),
            None if self.buf[values.len()] > 0.0 => Err(Error::Callback {
                callback: "operator, preconditioner or direction generator on another rank",
                code: -1,
            }),
            None => Ok(()),
        }
    }
}

struct Run<'a, A: ?Sized, M: ?Sized> {
    op: &'a A,
    precond: &'a M,
    reducer: Reducer<'a>,
    r: Vec<f64>,
    /// M⁻¹ r.
    u: Vec<f64>,
    /// A u.
    w: Vec<f64>,
}

impl<A: LinearOperator + ?Sized, M: Preconditioner + ?Sized> Run<'_, A, M> {
    /// u ← M⁻¹ r, w ← A u, and the local rᵀu, wᵀu, rᵀr into `buf`, the
    /// first two fused into the preconditioner and operator passes; `rr`
    /// is rᵀr when the caller has it (from the update's pass).
    fn directions(&mut self, buf: &mut [f64; 4], rr: Option<f64>) {
        let (op, precond) = (self.op, self.precond);
        let (r, u, w) = (&self.r, &mut self.u, &mut self.w);
        let mut dots = [0.0; 3];
        self.reducer.local(|| {
            dots[RU] = if op.has_null_space() {
                apply_inverse(precond, r, u)?;
                op.remove_null_space(u);
                vector::dot(r, u)
            } else {
                precond.apply_dot(r, u)?
            };
            dots[WU] = op.apply_dot(u, w)?;
            dots[RR] = rr.unwrap_or_else(|| vector::dot(r, r));
            Ok(())
        });
        *buf = [0.0; 4];
        if !self.reducer.failed() {
            buf[..3].copy_from_slice(&dots);
        }
    }

    /// The true residual norm of x over all ranks (r is left as b − A x).
    fn true_residual(&mut self, x: &[f64], b: &[f64]) -> Result<f64> {
        let (op, r) = (self.op, &mut self.r);
        self.reducer.local(|| op.apply(x, r));
        let mut buf = [0.0];
        if !self.reducer.failed() {
            buf[0] = vector::residual_from_product(b, &mut self.r);
        }
        self.reducer.reduce(&mut buf)?;
        Ok(buf[0].sqrt())
    }

    #[allow(clippy::too_many_arguments)]
    fn iterate(
        &mut self,
        x: &mut [f64],
        b: &[f64],
        options: &KrylovOptions,
        threshold: f64,
        converged: SolveReason,
        mut buf: [f64; 4],
        report: &mut SolveReport,
    ) -> Result<SolveReason> {
        let n = x.len();
        let (mut p, mut s) = (vec![0.0; n], vec![0.0; n]);
        let mut restart = true;
        let (mut gamma, mut alpha) = (0.0, 0.0);
        loop {
            let r_norm = buf[RR].sqrt();
            report.residual_norm = r_norm;
            if !(buf[RU].is_finite() && buf[WU].is_finite() && r_norm.is_finite()) {
                return Ok(SolveReason::DivergedNanOrInf);
            }
            if r_norm <= threshold {
                let true_norm = self.true_residual(x, b)?;
                report.true_residual_norm = true_norm;
                if true_norm <= threshold {
                    return Ok(converged);
                }
                // The recursive residual drifted: restart from the true one.
                self.directions(&mut buf, None);
                self.reducer.reduce(&mut buf)?;
                restart = true;
                continue;
            }
            if report.iterations >= options.max_iterations {
                return Ok(SolveReason::DivergedMaxIterations);
            }
            let gamma_new = buf[RU];
            if gamma_new <= 0.0 {
                return Ok(SolveReason::DivergedIndefinitePreconditioner);
            }
            let (beta, denominator) = if restart {
                (0.0, buf[WU])
            } else {
                let beta = gamma_new / gamma;
                (beta, buf[WU] - beta * gamma_new / alpha)
            };
            if denominator <= 0.0 {
                return Ok(SolveReason::DivergedIndefiniteOperator);
            }
            alpha = gamma_new / denominator;
            gamma = gamma_new;
            restart = false;
            let rr = vector::single_reduction_update(
                alpha,
                beta,
                &self.u,
                &self.w,
                &mut p,
                &mut s,
                x,
                &mut self.r,
            );
            report.iterations += 1;
            self.directions(&mut buf, Some(rr));
            self.reducer.reduce(&mut buf)?;
            if options.record_history {
                report.residual_history.push(buf[RR].sqrt());
            }
        }
    }
}
