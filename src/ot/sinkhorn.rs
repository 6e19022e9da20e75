//! Log-domain Sinkhorn iterations.

use super::dual::Kernel;

/// How a run of Sinkhorn iterations ended.
pub(crate) struct SinkhornRun {
    pub iterations: usize,
    /// ‖P1 − a‖₁ after the last iteration (columns are exact after each).
    pub row_error: f64,
    /// row_error over its value one iteration earlier (∞ before two
    /// iterations): Sinkhorn's linear rate.
    pub rate: f64,
}

/// Sinkhorn iterations still needed to bring the marginal error from
/// `error` to `tol` at the linear `rate` per iteration (∞ when the rate is
/// not below 1, or NaN).
pub(crate) fn predicted_iterations(error: f64, rate: f64, tol: f64) -> f64 {
    if error <= tol {
        0.0
    } else if rate < 1.0 {
        (tol / error).ln() / rate.ln()
    } else {
        f64::INFINITY
    }
}

/// Alternating exact maximisation of the dual over f and g, from (f, g):
///
/// f_i ← ε log a_i − ε LSE_j((g_j − C_ij)/ε),
/// g_j ← ε log b_j − ε LSE_i((f_i − C_ij)/ε),
///
/// until ‖P1 − a‖₁ ≤ `tol` (Pᵀ1 = b holds after every g update) or
/// `max_iterations` iterations. Every exponential is of a non-positive
/// shifted argument, so no ε underflows or overflows.
pub(crate) fn sinkhorn(
    kernel: &Kernel<'_>,
    a: &[f64],
    b: &[f64],
    f: &mut [f64],
    g: &mut [f64],
    tol: f64,
    max_iterations: usize,
) -> SinkhornRun {
    let eps = kernel.eps;
    let mut row_lse = kernel.row_log_sum_exp(g);
    let mut run = SinkhornRun {
        iterations: 0,
        row_error: f64::INFINITY,
        rate: f64::INFINITY,
    };
    while run.iterations < max_iterations {
        for ((fi, ai), lse) in f.iter_mut().zip(a).zip(&row_lse) {
            *fi = eps * (ai.ln() - lse);
        }
        let col_lse = kernel.col_log_sum_exp(f);
        for ((gj, bj), lse) in g.iter_mut().zip(b).zip(&col_lse) {
            *gj = eps * (bj.ln() - lse);
        }
        run.iterations += 1;
        row_lse = kernel.row_log_sum_exp(g);
        // Row sums of P: exp(f_i/ε + LSE_j((g_j − C_ij)/ε)).
        let previous = run.row_error;
        run.row_error = f
            .iter()
            .zip(&row_lse)
            .zip(a)
            .map(|((fi, lse), ai)| ((fi / eps + lse).exp() - ai).abs())
            .sum();
        run.rate = run.row_error / previous;
        if run.row_error.is_nan() || run.row_error <= tol {
            break; // converged, or NaN (reported by the caller)
        }
    }
    run
}
