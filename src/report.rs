//! What an iterative solve reports.

/// Why an iterative solve stopped, following PETSc's `KSPConvergedReason`
/// numbering: positive values converged, negative values diverged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum SolveReason {
    /// ‖r‖ ≤ rtol·‖b‖ (and rtol·‖b‖ ≥ atol).
    ConvergedRtol = 2,
    /// ‖r‖ ≤ atol (and atol > rtol·‖b‖).
    ConvergedAtol = 3,
    /// The iteration limit was reached first.
    DivergedMaxIterations = -3,
    /// A Krylov method broke down (GMRES, BiCGStab: a vanishing inner product).
    DivergedBreakdown = -5,
    /// The preconditioner is not positive definite (rᵀM⁻¹r ≤ 0).
    DivergedIndefinitePreconditioner = -8,
    /// A NaN or infinity appeared in the iteration.
    DivergedNanOrInf = -9,
    /// The operator is not positive definite (pᵀAp ≤ 0).
    DivergedIndefiniteOperator = -10,
    /// A user callback (operator or preconditioner) returned nonzero.
    DivergedCallback = -100,
}

impl SolveReason {
    /// `true` for the converged reasons.
    pub fn converged(self) -> bool {
        (self as i32) > 0
    }

    /// A short human-readable description.
    pub fn description(self) -> &'static str {
        match self {
            SolveReason::ConvergedRtol => "converged (relative tolerance)",
            SolveReason::ConvergedAtol => "converged (absolute tolerance)",
            SolveReason::DivergedMaxIterations => "reached the maximum number of iterations",
            SolveReason::DivergedBreakdown => {
                "the Krylov method broke down (a vanishing inner product)"
            }
            SolveReason::DivergedIndefinitePreconditioner => {
                "the preconditioner is not positive definite (r^T M^-1 r <= 0)"
            }
            SolveReason::DivergedNanOrInf => "a NaN or infinity appeared",
            SolveReason::DivergedIndefiniteOperator => {
                "the operator is not positive definite (p^T A p <= 0)"
            }
            SolveReason::DivergedCallback => "a callback failed",
        }
    }
}

/// The outcome of an iterative solve.
#[derive(Debug, Clone, PartialEq)]
pub struct SolveReport {
    /// Iterations performed (matrix-vector products, not counting the true
    /// residual ones).
    pub iterations: usize,
    /// ‖r‖ of the recursively updated residual at the last iteration. The
    /// report's norms are those of the stopping test
    /// ([`KrylovOptions::norm`](super::KrylovOptions::norm), the 2-norm by
    /// default).
    pub residual_norm: f64,
    /// ‖b − A x‖₂ recomputed from the returned x (NaN when a callback failed).
    pub true_residual_norm: f64,
    /// `true_residual_norm / ‖b‖₂` (0 when b = 0).
    pub relative_residual: f64,
    /// ‖b − A x₀‖₂ for the initial guess x₀.
    pub initial_residual_norm: f64,
    /// Why the solve stopped.
    pub reason: SolveReason,
    /// ‖b's component in the operator's null space‖₂, removed before the
    /// solve (a singular grid: fluid regions enclosed by walls; 0 for a
    /// nonsingular operator). The solution returned is the one with no
    /// null-space component (zero mean on every such region).
    pub null_space_component: f64,
    /// ‖r‖₂ after each iteration (one entry per iteration) when
    /// requested in the options, else empty.
    pub residual_history: Vec<f64>,
}
