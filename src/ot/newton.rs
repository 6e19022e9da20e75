//! Sinkhorn-Newton-Sparse (Tang et al., ICLR 2024): Newton steps on the
//! concave dual with a sparsified Hessian, solved by the crate's CG.

use super::dual::{dot, project_out_null, Kernel, Marginals};
use super::sinkhorn::sinkhorn;
use super::OtOptions;
use crate::error::{Error, Result};
use crate::krylov::{cg, Jacobi, KrylovOptions};
use crate::operator::CsrMatrix;

/// Largest relative CG tolerance of a Newton system (far from the optimum).
const FORCING: f64 = 0.1;
/// Armijo sufficient-increase constant of the line search.
const ARMIJO: f64 = 1e-4;
/// Step halvings before a Newton step is declared failed.
const MAX_HALVINGS: usize = 30;
/// A Newton step that reduces the marginal error by less than this factor
/// doubles the entries kept per row of P.
const SLOW_PROGRESS: f64 = 0.25;
/// Diagonal shift of the sparsified Hessian, relative to its largest
/// diagonal entry (keeps it definite when nothing was dropped).
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

/// The sparsified M̃ = [[diag(P1), P̃], [P̃ᵀ, diag(Pᵀ1)]] (−M/ε is the dual
/// Hessian), keeping the `k` largest entries of each row of P, as CSR on
/// the n+m unknowns (f, g).
fn sparsified_hessian(
    kernel: &Kernel<'_>,
    f: &[f64],
    g: &[f64],
    marginals: &Marginals,
    k: usize,
) -> Result<CsrMatrix> {
    let (n, m) = (f.len(), g.len());
    let kept = kernel.largest_per_row(f, g, k);
    let shift = RELATIVE_SHIFT
        * marginals
            .rows
            .iter()
            .chain(&marginals.cols)
            .fold(0.0f64, |a, &b| a.max(b));
    // P̃ᵀ by a counting sort on the columns: entries of column j in row order.
    let mut col_start = vec![0usize; m + 1];
    for &(j, _) in kept.iter().flatten() {
        col_start[j + 1] += 1;
    }
    for j in 0..m {
        col_start[j + 1] += col_start[j];
    }
    let kept_total = col_start[m];
    let mut transposed = vec![(0usize, 0.0f64); kept_total];
    let mut next = col_start.clone();
    for (i, row) in kept.iter().enumerate() {
        for &(j, p) in row {
            transposed[next[j]] = (i, p);
            next[j] += 1;
        }
    }
    let nnz = n + m + 2 * kept_total;
    if nnz > u32::MAX as usize || n + m > u32::MAX as usize {
        return Err(Error::invalid(
            "hessian_entries_per_row",
            format!("the sparsified Hessian would hold {nnz} entries (limit 2^32-1)"),
        ));
    }
    let (mut row_ptr, mut cols, mut vals) = (
        Vec::with_capacity(n + m + 1),
        Vec::with_capacity(nnz),
        Vec::with_capacity(nnz),
    );
    row_ptr.push(0u32);
    for (i, row) in kept.iter().enumerate() {
        cols.push(i as u32);
        vals.push(marginals.rows[i] + shift);
        for &(j, p) in row {
            cols.push((n + j) as u32);
            vals.push(p);
        }
        row_ptr.push(cols.len() as u32);
    }
    for j in 0..m {
        for &(i, p) in &transposed[col_start[j]..col_start[j + 1]] {
            cols.push(i as u32);
            vals.push(p);
        }
        cols.push((n + j) as u32);
        vals.push(marginals.cols[j] + shift);
        row_ptr.push(cols.len() as u32);
    }
    // Valid by construction (row i < n: column i, then n + j ascending;
    // row n + j: the kept rows i ascending, then n + j) and symmetric: P̃ and
    // P̃ᵀ are the same kept entries.
    Ok(CsrMatrix::from_valid_parts(n + m, row_ptr, cols, vals).known_symmetric())
}

/// Newton iterations from (f, g) until the marginal error is ≤ `tol`.
/// The Hessian starts with `options.hessian_entries_per_row` entries of P
/// per row and doubles them (up to `options.max_hessian_entries_per_row`)
/// after a step that cut the marginal error by less than 4×.
/// A step whose CG solve fails, or that the line search cannot make
/// increase the dual (nor halve the marginal error), is replaced by
/// `options.warmup_iterations` Sinkhorn iterations (counted as a fallback).
pub(crate) fn sinkhorn_newton(
    kernel: &Kernel<'_>,
    a: &[f64],
    b: &[f64],
    f: &mut [f64],
    g: &mut [f64],
    options: &OtOptions,
) -> NewtonRun {
    let mut run = NewtonRun::default();
    let mut marginals = kernel.marginals(f, g);
    run.error = marginals.error(a, b);
    let mut entries_per_row = options.hessian_entries_per_row.min(g.len());
    while run.error > options.tol && run.newton_iterations < options.max_newton_iterations {
        run.newton_iterations += 1;
        let previous_error = run.error;
        match newton_step(
            kernel,
            a,
            b,
            f,
            g,
            &marginals,
            run.error,
            entries_per_row,
            options,
        ) {
            Ok((next, cg_iterations)) => {
                run.cg_iterations += cg_iterations;
                marginals = next;
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
                marginals = kernel.marginals(f, g);
            }
        }
        run.error = marginals.error(a, b);
        if run.error.is_nan() {
            break;
        }
        if run.error > SLOW_PROGRESS * previous_error {
            // Slow progress: the dropped entries of P limit the step.
            entries_per_row = (2 * entries_per_row)
                .min(options.max_hessian_entries_per_row)
                .min(g.len());
        }
    }
    run.max_entries_per_row = entries_per_row;
    run
}

/// One damped Newton step; on success updates (f, g) and returns the new
/// marginals and the CG iterations, on failure leaves (f, g) unchanged.
#[allow(clippy::too_many_arguments)]
fn newton_step(
    kernel: &Kernel<'_>,
    a: &[f64],
    b: &[f64],
    f: &mut [f64],
    g: &mut [f64],
    marginals: &Marginals,
    error: f64,
    entries_per_row: usize,
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
    let hessian =
        sparsified_hessian(kernel, f, g, marginals, entries_per_row).map_err(|_| 0usize)?;
    let mut rhs: Vec<f64> = gradient.iter().map(|v| eps * v).collect();
    project_out_null(&mut rhs, n);
    let mut step = vec![0.0; rhs.len()];
    // Inexact Newton: solve only as accurately as the current marginal
    // error warrants (forcing term), which keeps superlinear convergence.
    let cg_options = KrylovOptions {
        rtol: FORCING.min(error).max(options.cg_rtol),
        max_iterations: options.cg_max_iterations,
        ..KrylovOptions::default()
    };
    let jacobi = Jacobi::new(&hessian).map_err(|_| 0usize)?;
    let cg_iterations = match cg(&hessian, &jacobi, &rhs, &mut step, &cg_options) {
        Ok(report) => report.iterations,
        Err(Error::SolveFailed { report, .. }) => return Err(report.iterations),
        Err(_) => return Err(0),
    };
    project_out_null(&mut step, n);
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
