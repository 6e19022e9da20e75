//! CG speed against faer's CG on the same matrix and against the machine's
//! memory bandwidth, measured in the same run.
//!
//! Run: `cargo run --release --example bench_cg [-- --quick]`
//!
//! For each problem (3D 7-point smoke scene at 128³, 2D 5-point at 1000²)
//! it solves A x = b to rtol 1e-8 from x = 0 with
//! - adjunct CG on the matrix-free grid operator (all threads),
//! - adjunct CG on the same matrix in CSR form (all threads),
//! - faer 0.24 `matrix_free::conjugate_gradient` on the CSR matrix
//!   (`Par::Seq`, faer's fastest setting on 2 cores),
//!
//! and reports the median time per iteration (faer: over fixed-length runs,
//! see `FAER_ITERATIONS`). The bandwidth ratio divides the bytes one stencil
//! CG iteration streams (see `stencil_cg_bytes`) by the time per iteration,
//! and compares it with STREAM-triad bandwidth measured in the same run
//! (best of 10, rayon over all threads): once with 3 × 256 MiB arrays (DRAM)
//! and once with arrays as large as the CG's working set, which on machines
//! with a large last-level cache is partly cache-resident.

#[path = "../benches/common/faer_cg.rs"]
mod faer_cg;

use adjunct::{cg, scene, GridPoisson, Identity, KrylovOptions, LinearOperator};
use faer::Par;
use rayon::prelude::*;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// STREAM triad a = b + s·c over 3 arrays of `n` doubles; returns the best
/// and median bandwidth in GB/s over `reps` runs (24 bytes per element).
fn triad_bandwidth(n: usize, reps: usize) -> (f64, f64) {
    let (mut a, b, c) = (vec![0.0f64; n], vec![1.0f64; n], vec![2.0f64; n]);
    let chunk = 1 << 16;
    let mut rates = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        a.par_chunks_mut(chunk)
            .zip(b.par_chunks(chunk))
            .zip(c.par_chunks(chunk))
            .for_each(|((a, b), c)| {
                for i in 0..a.len() {
                    a[i] = b[i] + 3.0 * c[i];
                }
            });
        rates.push(24.0 * n as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    assert!(a[n / 2] == 7.0);
    (rates.iter().cloned().fold(0.0, f64::max), median(rates))
}

/// Bytes streamed by one unpreconditioned CG iteration on the grid
/// operator, counted like STREAM (each array read or written once, no
/// write-allocate): apply q = A p with pᵀq reads p and the 4-byte cell map,
/// writes q (16 n + 4 N); x += αp, r −= αq with ‖r‖² reads x, p, r, q and
/// writes x, r (48 n); p = r + βp reads r, p and writes p (24 n).
fn stencil_cg_bytes(unknowns: usize, cells: usize) -> f64 {
    (88 * unknowns + 4 * cells) as f64
}

struct Timing {
    iterations: usize,
    per_iteration: f64,
}

fn time_adjunct(op: &dyn LinearOperator, b: &[f64], reps: usize) -> Timing {
    let options = KrylovOptions::default();
    let mut times = Vec::new();
    let mut iterations = 0;
    for _ in 0..reps {
        let mut x = vec![0.0; b.len()];
        let t = Instant::now();
        let report = cg(op, &Identity { dim: b.len() }, b, &mut x, &options).expect("CG converges");
        times.push(t.elapsed().as_secs_f64());
        iterations = report.iterations;
    }
    Timing {
        iterations,
        per_iteration: median(times) / iterations as f64,
    }
}

/// faer's CG is 5–8× slower per iteration, so it runs a fixed
/// `FAER_ITERATIONS` iterations per repetition (its cost per iteration is
/// constant); the relative residual it reaches there is compared with
/// adjunct's after the same number of iterations, as a check that both run
/// the same algorithm.
const FAER_ITERATIONS: usize = 200;

fn time_faer(a: &adjunct::CsrMatrix, b: &[f64], reps: usize) -> (Timing, f64) {
    let mut times = Vec::new();
    let mut x = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let (sol, its) = faer_cg::faer_cg(a, b, 1e-300, FAER_ITERATIONS, Par::Seq);
        times.push(t.elapsed().as_secs_f64() / its as f64);
        x = sol;
    }
    let timing = Timing {
        iterations: FAER_ITERATIONS,
        per_iteration: median(times),
    };
    (timing, relative_residual(a, &x, b))
}

fn relative_residual(a: &dyn LinearOperator, x: &[f64], b: &[f64]) -> f64 {
    let mut ax = vec![0.0; b.len()];
    a.apply(x, &mut ax).expect("apply");
    let r: f64 = ax.iter().zip(b).map(|(ax, b)| (b - ax).powi(2)).sum();
    (r / b.iter().map(|v| v * v).sum::<f64>()).sqrt()
}

/// adjunct's relative residual after `FAER_ITERATIONS` iterations.
fn adjunct_residual_after(op: &dyn LinearOperator, b: &[f64], iterations: usize) -> f64 {
    let options = KrylovOptions {
        rtol: 0.0,
        max_iterations: iterations,
        ..KrylovOptions::default()
    };
    let mut x = vec![0.0; b.len()];
    let _ = cg(op, &Identity { dim: b.len() }, b, &mut x, &options); // stops at the limit by design
    relative_residual(op, &x, b)
}

struct Row {
    name: String,
    stencil: Timing,
    csr: Timing,
    faer: Timing,
    /// Relative residuals of faer and adjunct after `FAER_ITERATIONS`.
    residuals_at_cap: (f64, f64),
    /// Model bandwidth of the stencil CG, GB/s.
    stencil_gbs: f64,
    /// Triad bandwidth (best, GB/s) with the same working set as the CG.
    triad_same_size: f64,
}

fn bench(name: &str, g: &GridPoisson, b: &[f64], reps: usize) -> Row {
    let csr = g.to_csr().unwrap();
    let stencil = time_adjunct(g, b, reps);
    let csr_timing = time_adjunct(&csr, b, reps);
    let (faer, faer_residual) = time_faer(&csr, b, 3);
    let ours = adjunct_residual_after(&csr, b, FAER_ITERATIONS);
    // x, r, p, q and the cell map.
    let working_set = 32 * g.dim() + 4 * g.num_cells();
    Row {
        name: name.to_string(),
        stencil_gbs: stencil_cg_bytes(g.dim(), g.num_cells()) / stencil.per_iteration / 1e9,
        triad_same_size: triad_bandwidth(working_set / 24, 10).0,
        stencil,
        csr: csr_timing,
        faer,
        residuals_at_cap: (faer_residual, ours),
    }
}

fn main() -> Result<(), adjunct::Error> {
    let quick = std::env::args().any(|a| a == "--quick");
    let reps = if quick { 1 } else { 3 };
    let (n3, n2) = if quick { (64, 400) } else { (128, 1000) };
    let threads = adjunct::num_threads();
    let (triad_best, triad_median) = triad_bandwidth(1 << 25, 10);
    println!("threads: {threads}; STREAM triad (3 x 256 MiB): best {triad_best:.1} GB/s, median {triad_median:.1} GB/s");

    let mut rows = Vec::new();
    for (name, dims) in [
        (format!("3D smoke {n3}^3"), [n3, n3, n3]),
        (format!("2D smoke {n2}^2"), [n2, n2, 1]),
    ] {
        let problem = scene::smoke(dims, 2)?;
        let g = problem.operator()?;
        eprintln!("{name}: {} unknowns ...", g.dim());
        rows.push(bench(&name, &g, &problem.rhs, reps));
    }

    println!();
    println!("| problem | solver | iterations to 1e-8 | ms / iteration | model GB/s |");
    println!("|---|---|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | adjunct CG, grid stencil | {} | {:.2} | {:.1} |",
            r.name,
            r.stencil.iterations,
            1e3 * r.stencil.per_iteration,
            r.stencil_gbs
        );
        println!(
            "| {} | adjunct CG, CSR | {} | {:.2} | |",
            r.name,
            r.csr.iterations,
            1e3 * r.csr.per_iteration
        );
        println!(
            "| {} | faer CG, CSR (Par::Seq) | ({} run) | {:.2} | |",
            r.name,
            r.faer.iterations,
            1e3 * r.faer.per_iteration
        );
    }
    println!();
    for r in &rows {
        println!(
            "{}: after {FAER_ITERATIONS} iterations relative residual faer {:.6e}, adjunct {:.6e}; triad with the CG's working set: {:.1} GB/s",
            r.name, r.residuals_at_cap.0, r.residuals_at_cap.1, r.triad_same_size
        );
    }
    for r in &rows {
        println!(
            "{}: faer / adjunct time per iteration: stencil {:.2}x, CSR {:.2}x; stencil CG bandwidth {:.0}% of DRAM triad, {:.0}% of same-size triad",
            r.name,
            r.faer.per_iteration / r.stencil.per_iteration,
            r.faer.per_iteration / r.csr.per_iteration,
            100.0 * r.stencil_gbs / triad_best,
            100.0 * r.stencil_gbs / r.triad_same_size
        );
    }
    Ok(())
}
