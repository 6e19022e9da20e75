//! Entropic optimal transport: log-domain Sinkhorn and
//! Sinkhorn-Newton-Sparse.
//!
//! For histograms a ∈ ℝⁿ, b ∈ ℝᵐ (positive, equal mass), a cost C ∈ ℝ^{n×m}
//! and a regularisation ε > 0 (in the units of C; η = 1/ε in the SNS paper),
//! solves
//!
//! min_P ⟨C, P⟩ + ε Σ_ij P_ij (log P_ij − 1)  s.t.  P1 = a, Pᵀ1 = b
//!
//! through the dual potentials (f, g): P_ij = exp((f_i + g_j − C_ij)/ε).
//! The potentials are unique up to (f + c, g − c).
//!
//! ```
//! use adjunct::ot::{solve, CostMatrix, OtOptions};
//!
//! // Two points to two points on a line, uniform weights.
//! let cost = CostMatrix::squared_euclidean(&[0.0, 1.0], &[0.1, 0.9], 1)?;
//! let (a, b) = ([0.5, 0.5], [0.5, 0.5]);
//! let solution = solve(&a, &b, &cost, &OtOptions { eps: 0.01, ..OtOptions::default() })?;
//! // Nearly all mass goes to the nearer point: ⟨C, P⟩ ≈ 0.01.
//! assert!((solution.transport_cost - 0.01).abs() < 1e-3);
//! assert!(solution.report.marginal_error <= 1e-9);
//! # Ok::<(), adjunct::Error>(())
//! ```

mod cost;
mod dual;
mod fast_exp;
mod hessian;
mod newton;
mod rows;
mod sinkhorn;

pub use cost::CostMatrix;
pub(crate) use hessian::{DensePlan, OtHessian};

use crate::error::{Error, Result};
use crate::krylov::SolveReason;
use dual::Kernel;

/// Relative tolerance on Σa = Σb.
const MASS_RTOL: f64 = 1e-10;

/// The algorithm of [`solve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtMethod {
    /// Log-domain Sinkhorn only.
    Sinkhorn,
    /// Sinkhorn warm-up, then Newton steps with a sparsified Hessian (SNS).
    SinkhornNewtonSparse,
}

/// Options of [`solve`].
#[derive(Debug, Clone, PartialEq)]
pub struct OtOptions {
    /// Entropic regularisation ε > 0, in the units of the cost.
    pub eps: f64,
    /// Algorithm; default Sinkhorn-Newton-Sparse.
    pub method: OtMethod,
    /// Stop when ‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁ ≤ tol. Default 1e-9.
    pub tol: f64,
    /// Sinkhorn iteration limit (method Sinkhorn). Default 100 000.
    pub max_sinkhorn_iterations: usize,
    /// SNS: Sinkhorn iterations before the first Newton step, and after a
    /// failed Newton step. When the warm-up's last rate predicts
    /// convergence within 25 more iterations, Sinkhorn finishes instead.
    /// Default 10.
    pub warmup_iterations: usize,
    /// SNS: Newton iteration limit. Default 1000.
    pub max_newton_iterations: usize,
    /// SNS: entries of P kept per row in the sparsified Hessian at first
    /// (density λ = this / m; the diagonal blocks are kept exact). Default 32.
    pub hessian_entries_per_row: usize,
    /// SNS: the most entries per row the Hessian may grow to when sparse
    /// Newton steps stall (bounds its memory to O(this · (n + m))). At this
    /// cap, when Sinkhorn's observed rate would cut the marginal error more
    /// than a Newton step for the same work, Sinkhorn finishes. Default 256.
    pub max_hessian_entries_per_row: usize,
    /// SNS: the tightest relative tolerance of a Newton system's CG; each
    /// solve uses min(0.1, marginal error), but not below this. Default 1e-10.
    pub cg_rtol: f64,
    /// SNS: CG iteration limit per Newton step. Default 1000.
    pub cg_max_iterations: usize,
}

impl Default for OtOptions {
    fn default() -> Self {
        Self {
            eps: 0.05,
            method: OtMethod::SinkhornNewtonSparse,
            tol: 1e-9,
            max_sinkhorn_iterations: 100_000,
            warmup_iterations: 10,
            max_newton_iterations: 1000,
            hessian_entries_per_row: 32,
            max_hessian_entries_per_row: 256,
            cg_rtol: 1e-10,
            cg_max_iterations: 1000,
        }
    }
}

/// What an OT solve did.
#[derive(Debug, Clone, PartialEq)]
pub struct OtReport {
    /// Sinkhorn iterations (warm-up, hand-overs to Sinkhorn, fallbacks, or the whole solve).
    pub sinkhorn_iterations: usize,
    /// Newton iterations (SNS).
    pub newton_iterations: usize,
    /// CG iterations over all Newton systems.
    pub cg_iterations: usize,
    /// Newton steps replaced by Sinkhorn iterations because the CG solve
    /// failed or the line search could not make progress.
    pub fallbacks: usize,
    /// SNS: entries of P per row in the last sparsified Hessian (it starts
    /// at `hessian_entries_per_row` and doubles when Newton stalls).
    pub hessian_entries_per_row: usize,
    /// ‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁ at the returned potentials.
    pub marginal_error: f64,
    /// `ConvergedAtol` (marginal error ≤ tol) on success.
    pub reason: SolveReason,
}

/// A converged entropic OT solution.
#[derive(Debug, Clone, PartialEq)]
pub struct OtSolution {
    /// Potential f (length n).
    pub f: Vec<f64>,
    /// Potential g (length m).
    pub g: Vec<f64>,
    /// ⟨C, P⟩.
    pub transport_cost: f64,
    /// ⟨C, P⟩ + ε Σ P_ij (log P_ij − 1).
    pub objective: f64,
    /// Iteration counts and the final marginal error.
    pub report: OtReport,
}

fn validate(a: &[f64], b: &[f64], cost: &CostMatrix, options: &OtOptions) -> Result<()> {
    Error::check_len("a", cost.rows(), a.len())?;
    Error::check_len("b", cost.cols(), b.len())?;
    for (name, h) in [("a", a), ("b", b)] {
        if let Some((i, v)) = h
            .iter()
            .enumerate()
            .find(|(_, v)| !(v.is_finite() && **v > 0.0))
        {
            return Err(Error::invalid(
                name,
                format!("{name}[{i}] = {v}: histograms must be finite and strictly positive (drop zero-mass points)"),
            ));
        }
    }
    let (sa, sb) = (a.iter().sum::<f64>(), b.iter().sum::<f64>());
    if (sa - sb).abs() > MASS_RTOL * sa.max(sb) {
        return Err(Error::invalid(
            "b",
            format!("the histograms must have equal mass: sum(a) = {sa}, sum(b) = {sb}"),
        ));
    }
    if !(options.eps.is_finite() && options.eps > 0.0) {
        return Err(Error::invalid(
            "eps",
            format!("eps = {} must be finite and > 0", options.eps),
        ));
    }
    if !(options.tol.is_finite() && options.tol > 0.0) {
        return Err(Error::invalid(
            "tol",
            format!("tol = {} must be finite and > 0", options.tol),
        ));
    }
    if options.hessian_entries_per_row == 0 {
        return Err(Error::invalid(
            "hessian_entries_per_row",
            "must be at least 1",
        ));
    }
    Ok(())
}

/// Solves the entropic OT problem between `a` and `b` for `cost`.
///
/// Returns the solution when the marginal error reached `options.tol`, else
/// [`Error::NotConverged`] (iteration limit, or NaN).
pub fn solve(a: &[f64], b: &[f64], cost: &CostMatrix, options: &OtOptions) -> Result<OtSolution> {
    validate(a, b, cost, options)?;
    let kernel = Kernel {
        cost,
        eps: options.eps,
    };
    let (mut f, mut g) = (vec![0.0; a.len()], vec![0.0; b.len()]);
    let mut report = OtReport {
        sinkhorn_iterations: 0,
        newton_iterations: 0,
        cg_iterations: 0,
        fallbacks: 0,
        hessian_entries_per_row: 0,
        marginal_error: f64::NAN,
        reason: SolveReason::ConvergedAtol,
    };
    match options.method {
        OtMethod::Sinkhorn => {
            // Sinkhorn stops on its row error (the columns are exact after
            // each iteration up to rounding); the potentials returned must
            // meet tol on both marginals, as rechecked below, so iterate on
            // with a tighter stopping error while that recheck misses.
            let mut stop_at = options.tol;
            loop {
                let run = sinkhorn::sinkhorn(
                    &kernel,
                    a,
                    b,
                    &mut f,
                    &mut g,
                    stop_at,
                    options.max_sinkhorn_iterations - report.sinkhorn_iterations,
                );
                report.sinkhorn_iterations += run.iterations;
                let error = kernel.marginals(&f, &g).error(a, b);
                if error <= options.tol
                    || error.is_nan()
                    || run.iterations == 0
                    || report.sinkhorn_iterations >= options.max_sinkhorn_iterations
                    || stop_at < 1e-6 * options.tol
                {
                    break;
                }
                stop_at *= 0.5;
            }
        }
        OtMethod::SinkhornNewtonSparse => {
            let warmup = sinkhorn::sinkhorn(
                &kernel,
                a,
                b,
                &mut f,
                &mut g,
                options.tol,
                options.warmup_iterations,
            );
            let run = newton::sinkhorn_newton(&kernel, a, b, &mut f, &mut g, warmup.rate, options);
            report.sinkhorn_iterations = warmup.iterations + run.sinkhorn_iterations;
            report.newton_iterations = run.newton_iterations;
            report.cg_iterations = run.cg_iterations;
            report.fallbacks = run.fallbacks;
            report.hessian_entries_per_row = run.max_entries_per_row;
        }
    }
    let marginals = kernel.marginals(&f, &g);
    report.marginal_error = marginals.error(a, b);
    if report.marginal_error.is_nan() || report.marginal_error > options.tol {
        report.reason = if report.marginal_error.is_finite() {
            SolveReason::DivergedMaxIterations
        } else {
            SolveReason::DivergedNanOrInf
        };
        return Err(Error::NotConverged {
            message: format!(
                "entropic OT ({:?}, eps = {:e}) stopped at marginal error {:.3e} > tol {:.3e} after {} Sinkhorn and {} Newton iterations ({} fallbacks)",
                options.method,
                options.eps,
                report.marginal_error,
                options.tol,
                report.sinkhorn_iterations,
                report.newton_iterations,
                report.fallbacks
            ),
        });
    }
    let transport_cost = kernel.transport_cost(&f, &g);
    let objective = crate::vector::dot(&f, &marginals.rows)
        + crate::vector::dot(&g, &marginals.cols)
        - options.eps * marginals.mass;
    Ok(OtSolution {
        f,
        g,
        transport_cost,
        objective,
        report,
    })
}

/// Writes the plan P_ij = exp((f_i + g_j − C_ij)/ε) row-major into `plan`
/// (length n·m).
pub fn write_plan(
    cost: &CostMatrix,
    eps: f64,
    f: &[f64],
    g: &[f64],
    plan: &mut [f64],
) -> Result<()> {
    Error::check_len("f", cost.rows(), f.len())?;
    Error::check_len("g", cost.cols(), g.len())?;
    Error::check_len("plan", cost.rows() * cost.cols(), plan.len())?;
    Kernel { cost, eps }.plan(f, g, plan);
    Ok(())
}
