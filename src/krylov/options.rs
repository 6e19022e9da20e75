//! Options, input checks and the conclusion shared by the Krylov solvers.

use crate::error::{Error, Result};
use crate::operator::LinearOperator;
use crate::report::{SolveReason, SolveReport};
use crate::vector;

/// Options of the Krylov solvers ([`cg`](super::cg), [`gmres`](super::gmres),
/// [`bicgstab`](super::bicgstab)).
#[derive(Debug, Clone, PartialEq)]
pub struct KrylovOptions {
    /// Relative tolerance: stop when ‖b − A x‖₂ ≤ max(rtol·‖b‖₂, atol). Default 1e-8.
    pub rtol: f64,
    /// Absolute tolerance, in the units of b. Default 0.
    pub atol: f64,
    /// Iteration limit (matrix-vector products for CG and GMRES, pairs of
    /// them for BiCGStab). Default 10 000.
    pub max_iterations: usize,
    /// Start from the x passed in (`true`) or from x = 0 (`false`, default;
    /// x is then overwritten without being read).
    pub nonzero_initial_guess: bool,
    /// Record ‖r‖₂ after every iteration in [`SolveReport::residual_history`].
    pub record_history: bool,
    /// The norm ‖·‖ of the stopping test ‖b − A x‖ ≤ max(rtol·‖b‖, atol)
    /// and of the report's norms. Default [`ResidualNorm::Two`];
    /// [`ResidualNorm::Max`] for [`cg`](super::cg) only (the other solvers
    /// reject it).
    pub norm: ResidualNorm,
}

/// The norm of a stopping test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResidualNorm {
    /// ‖r‖₂.
    #[default]
    Two,
    /// ‖r‖∞ = maxᵢ |rᵢ|: the test fluid simulators use (with `atol` the
    /// largest divergence they accept in any cell).
    Max,
}

impl ResidualNorm {
    /// ‖v‖ in this norm.
    pub(crate) fn of(self, v: &[f64]) -> f64 {
        match self {
            ResidualNorm::Two => vector::norm2(v),
            ResidualNorm::Max => vector::max_abs(v),
        }
    }
}

impl Default for KrylovOptions {
    fn default() -> Self {
        Self {
            rtol: 1e-8,
            atol: 0.0,
            max_iterations: 10_000,
            nonzero_initial_guess: false,
            record_history: false,
            norm: ResidualNorm::Two,
        }
    }
}

/// What every Krylov solve computes before iterating.
pub(crate) struct Setup {
    /// ‖b‖₂.
    pub b_norm: f64,
    /// max(rtol·‖b‖₂, atol).
    pub threshold: f64,
    /// The reason reported on convergence (which tolerance is the binding one).
    pub converged: SolveReason,
}

impl KrylovOptions {
    /// Checks the options and the sizes and values of b and x₀ for an n×n
    /// operator and a preconditioner of dimension `precond_dim`, for a
    /// solver that stops on the 2-norm.
    pub(crate) fn setup(
        &self,
        n: usize,
        precond_dim: usize,
        b: &[f64],
        x: &[f64],
    ) -> Result<Setup> {
        if self.norm != ResidualNorm::Two {
            return Err(Error::invalid(
                "norm",
                format!(
                    "the {:?} norm stopping test is supported by CG (adj_cg_solve) only",
                    self.norm
                ),
            ));
        }
        self.setup_in_norm(n, precond_dim, b, x)
    }

    /// [`KrylovOptions::setup`] for a solver that stops in `self.norm`:
    /// ‖b‖ and the threshold in that norm.
    pub(crate) fn setup_in_norm(
        &self,
        n: usize,
        precond_dim: usize,
        b: &[f64],
        x: &[f64],
    ) -> Result<Setup> {
        Error::check_len("b", n, b.len())?;
        Error::check_len("x", n, x.len())?;
        Error::check_len("precond", n, precond_dim)?;
        self.check_tolerances()?;
        if let Some((i, v)) = vector::first_non_finite(b) {
            return Err(Error::invalid("b", format!("b[{i}] is {v}")));
        }
        if self.nonzero_initial_guess {
            if let Some((i, v)) = vector::first_non_finite(x) {
                return Err(Error::invalid("x", format!("initial guess x[{i}] is {v}")));
            }
        }
        let b_norm = self.norm.of(b);
        Ok(Setup {
            b_norm,
            threshold: (self.rtol * b_norm).max(self.atol),
            converged: if self.rtol * b_norm >= self.atol {
                SolveReason::ConvergedRtol
            } else {
                SolveReason::ConvergedAtol
            },
        })
    }

    /// Checks that `rtol` and `atol` are finite and ≥ 0; every solve does
    /// this first, and so must code that derives other options from them.
    pub(crate) fn check_tolerances(&self) -> Result<()> {
        for (name, v) in [("rtol", self.rtol), ("atol", self.atol)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::invalid(
                    name,
                    format!("{name} = {v} must be finite and >= 0"),
                ));
            }
        }
        Ok(())
    }

    /// An empty report, with room for the history when it is recorded.
    pub(crate) fn new_report(&self, converged: SolveReason) -> SolveReport {
        SolveReport {
            iterations: 0,
            residual_norm: 0.0,
            true_residual_norm: f64::NAN,
            relative_residual: f64::NAN,
            initial_residual_norm: 0.0,
            reason: converged,
            null_space_component: 0.0,
            residual_history: if self.record_history {
                Vec::with_capacity(self.max_iterations.min(1 << 16))
            } else {
                Vec::new()
            },
        }
    }
}

/// b with its component in the operator's null space removed (b itself
/// when the operator has none; see [`LinearOperator::remove_null_space`]),
/// and the norm of what was removed.
pub(crate) fn consistent_rhs<'b, A: LinearOperator + ?Sized>(
    op: &A,
    b: &'b [f64],
) -> (std::borrow::Cow<'b, [f64]>, f64) {
    if !op.has_null_space() {
        return (std::borrow::Cow::Borrowed(b), 0.0);
    }
    let mut v = b.to_vec();
    let removed = op.remove_null_space(&mut v);
    (std::borrow::Cow::Owned(v), removed)
}

/// r ← b − A x; returns ‖r‖₂.
pub(crate) fn true_residual<A: LinearOperator + ?Sized>(
    op: &A,
    b: &[f64],
    x: &[f64],
    r: &mut [f64],
) -> Result<f64> {
    op.apply(x, r)?;
    Ok(vector::residual_from_product(b, r).sqrt())
}

/// Turns how an iteration ended into the solver's result. A converged
/// report must already hold the true residual of the final x; otherwise it
/// is recomputed with `recompute` (not after a callback failure). Returns the
/// report on convergence, else [`Error::SolveFailed`].
pub(crate) fn conclude(
    solver: &'static str,
    mut report: SolveReport,
    b_norm: f64,
    outcome: Result<SolveReason>,
    recompute: impl FnOnce() -> Result<f64>,
) -> Result<SolveReport> {
    let (reason, cause) = match outcome {
        Ok(reason) => (reason, None),
        Err(e @ Error::Callback { .. }) => (SolveReason::DivergedCallback, Some(Box::new(e))),
        Err(e) => return Err(e),
    };
    report.reason = reason;
    if !reason.converged() {
        report.true_residual_norm = match reason {
            SolveReason::DivergedCallback => f64::NAN,
            _ => recompute().unwrap_or(f64::NAN),
        };
    }
    report.relative_residual = if b_norm > 0.0 {
        report.true_residual_norm / b_norm
    } else {
        0.0
    };
    if reason.converged() {
        Ok(report)
    } else {
        Err(Error::SolveFailed {
            solver,
            report: Box::new(report),
            cause,
        })
    }
}
