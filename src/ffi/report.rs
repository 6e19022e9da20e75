//! The report every solver writes through the C ABI: `adj_solve_report`,
//! its `adj_solve_reason`, and how a Rust [`SolveReport`] (with its residual
//! history) becomes one, also after a failed iteration.

use super::status::{adj_status, boundary};
use super::versioned::{self, versioned, Output};
use crate::error::Error;
use crate::krylov::{SolveReason, SolveReport};

/// Why a solve stopped (`adj_solve_report.reason`), numbered as PETSc's
/// `KSPConvergedReason`: positive converged, negative diverged.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum adj_solve_reason {
    /// Converged: ‖r‖ ≤ rtol·‖b‖.
    ADJ_CONVERGED_RTOL = 2,
    /// Converged: ‖r‖ ≤ atol.
    ADJ_CONVERGED_ATOL = 3,
    /// Diverged: the iteration limit was reached.
    ADJ_DIVERGED_MAX_ITERATIONS = -3,
    /// Diverged: the Krylov method broke down (nonsymmetric solvers).
    ADJ_DIVERGED_BREAKDOWN = -5,
    /// Diverged: the preconditioner is not positive definite (rᵀM⁻¹r ≤ 0).
    ADJ_DIVERGED_INDEFINITE_PRECONDITIONER = -8,
    /// Diverged: NaN or infinity in the iteration.
    ADJ_DIVERGED_NAN_OR_INF = -9,
    /// Diverged: the operator is not positive definite (pᵀAp ≤ 0).
    ADJ_DIVERGED_INDEFINITE_OPERATOR = -10,
    /// Diverged: a callback returned nonzero.
    ADJ_DIVERGED_CALLBACK = -100,
}

impl From<SolveReason> for adj_solve_reason {
    fn from(reason: SolveReason) -> Self {
        match reason {
            SolveReason::ConvergedRtol => Self::ADJ_CONVERGED_RTOL,
            SolveReason::ConvergedAtol => Self::ADJ_CONVERGED_ATOL,
            SolveReason::DivergedMaxIterations => Self::ADJ_DIVERGED_MAX_ITERATIONS,
            SolveReason::DivergedBreakdown => Self::ADJ_DIVERGED_BREAKDOWN,
            SolveReason::DivergedIndefinitePreconditioner => {
                Self::ADJ_DIVERGED_INDEFINITE_PRECONDITIONER
            }
            SolveReason::DivergedNanOrInf => Self::ADJ_DIVERGED_NAN_OR_INF,
            SolveReason::DivergedIndefiniteOperator => Self::ADJ_DIVERGED_INDEFINITE_OPERATOR,
            SolveReason::DivergedCallback => Self::ADJ_DIVERGED_CALLBACK,
        }
    }
}

/// The outcome of a solve. Initialise with
/// `adj_solve_report_init(&report, sizeof report)` before passing it.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct adj_solve_report {
    /// `sizeof(adj_solve_report)` as the caller's header declares it.
    pub struct_size: usize,
    /// Iterations performed.
    pub iterations: usize,
    /// ‖r‖ of the recursively updated residual at the end. Every norm of
    /// the report is that of the stopping test (`adj_cg_options.norm`; the
    /// 2-norm by default).
    pub residual_norm: f64,
    /// ‖b − A x‖ recomputed from the final x (NaN after a callback failure).
    pub true_residual_norm: f64,
    /// true_residual_norm / ‖b‖ (0 when b = 0).
    pub relative_residual: f64,
    /// ‖b − A x₀‖.
    pub initial_residual_norm: f64,
    /// Why the solve stopped.
    pub reason: adj_solve_reason,
    /// Entries written to `adj_cg_options.residual_history`.
    pub residual_history_length: usize,
    /// ‖b's component in the null space of a singular grid operator‖₂
    /// (fluid regions enclosed by walls), removed before the solve; 0 for
    /// a nonsingular operator. Since 0.3.0.
    pub null_space_component: f64,
}

versioned!(
    adj_solve_report,
    first_size = std::mem::offset_of!(adj_solve_report, null_space_component),
    adj_solve_report {
        struct_size: std::mem::size_of::<adj_solve_report>(),
        iterations: 0,
        residual_norm: f64::NAN,
        true_residual_norm: f64::NAN,
        relative_residual: f64::NAN,
        initial_residual_norm: f64::NAN,
        reason: adj_solve_reason::ADJ_DIVERGED_MAX_ITERATIONS,
        residual_history_length: 0,
        null_space_component: 0.0,
    }
);

/// Initialises `*report` (`struct_size` = `sizeof *report` in the caller's
/// header) before it is passed to a solver, which fills it in.
#[no_mangle]
pub unsafe extern "C" fn adj_solve_report_init(
    report: *mut adj_solve_report,
    struct_size: usize,
) -> adj_status {
    // SAFETY: `report` holds `struct_size` writable bytes by contract.
    boundary(|| unsafe { versioned::init(report, struct_size, "report") })
}

/// Writes the report of a finished solve (and its residual history) when
/// the solve ran: on success and when the iteration itself failed.
///
pub(crate) fn write_report(
    result: std::result::Result<&SolveReport, &Error>,
    history: Option<&mut [f64]>,
    report: &Output<adj_solve_report>,
) {
    let Some(solve_report) = ran(result) else {
        return;
    };
    let written = history.map_or(0, |h| copy_history(solve_report, h));
    report.write(&c_report(solve_report, written));
}

/// The report of a solve that ran (converged or failed while iterating).
pub(crate) fn ran<'a>(
    result: std::result::Result<&'a SolveReport, &'a Error>,
) -> Option<&'a SolveReport> {
    match result {
        Ok(r) => Some(r),
        Err(Error::SolveFailed { report, .. }) => Some(report),
        Err(_) => None,
    }
}

fn copy_history(report: &SolveReport, buffer: &mut [f64]) -> usize {
    let k = report.residual_history.len().min(buffer.len());
    buffer[..k].copy_from_slice(&report.residual_history[..k]);
    k
}

fn c_report(r: &SolveReport, history_length: usize) -> adj_solve_report {
    adj_solve_report {
        struct_size: std::mem::size_of::<adj_solve_report>(),
        iterations: r.iterations,
        residual_norm: r.residual_norm,
        true_residual_norm: r.true_residual_norm,
        relative_residual: r.relative_residual,
        initial_residual_norm: r.initial_residual_norm,
        reason: r.reason.into(),
        residual_history_length: history_length,
        null_space_component: r.null_space_component,
    }
}
