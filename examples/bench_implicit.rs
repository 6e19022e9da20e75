//! Cost of implicit differentiation relative to the forward solve.
//!
//! 1. Entropic OT, n = m = 1000 point clouds in [0, 1]² (squared Euclidean
//!    costs scaled to [0, 1]), ε = 0.01, Sinkhorn-Newton-Sparse to marginal
//!    error ‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁ ≤ 1e-9: the gradient of the regularised
//!    cost and one VJP of the plan (gradient of ⟨G, P⟩ wrt C, a, b) against
//!    the forward solve. When `python3` with `jax` and `ott-jax` is
//!    available, `benches/peers/ot_jax_bench.py` times OTT-JAX (jit-compiled,
//!    compile time excluded) on the same problem in the same run: forward +
//!    `jax.grad` of reg_ot_cost and of ⟨G, P⟩ wrt C, with its default
//!    implicit differentiation, and the gradients are compared.
//! 2. Grid Poisson 128³ smoke scene: the gradient wrt b of a loss through
//!    x = A⁻¹b (one adjoint CG solve with the forward Jacobi preconditioner)
//!    against the forward CG solve, both to relative residual 1e-8.
//!
//! Times are medians of `--repeats R` runs (default 5).
//! Run: `cargo run --release --example bench_implicit [-- --repeats R --grid N]`

use adjunct::implicit::{grid_solve_vjp, matrix_gradient, OtPoint};
use adjunct::ot::{self, CostMatrix, OtOptions};
use adjunct::{cg, scene, Jacobi, KrylovOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

mod common;
#[path = "../src/random.rs"]
#[allow(dead_code)]
mod random;

use common::write_f64;
use random::SplitMix as Rng;

const N: usize = 1000;
const EPS: f64 = 0.01;
const TOL: f64 = 1e-9;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median wall time of `repeats` runs of `f`, and its last result.
fn timed<T>(repeats: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut times = Vec::with_capacity(repeats);
    let mut last = None;
    for _ in 0..repeats {
        let t = Instant::now();
        last = Some(f());
        times.push(t.elapsed().as_secs_f64());
    }
    (median(times), last.expect("repeats >= 1"))
}

fn read_f64(path: &Path) -> Vec<f64> {
    std::fs::read(path)
        .expect("read peer output")
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

fn rel_diff(x: &[f64], y: &[f64]) -> f64 {
    let num: f64 = x.iter().zip(y).map(|(a, b)| (a - b).powi(2)).sum();
    let den: f64 = y.iter().map(|b| b * b).sum();
    (num / den).sqrt()
}

struct Ratios(Vec<String>);

fn main() {
    let number = |name: &str, default: usize| {
        common::flag(name).map_or(default, |v| v.parse().expect("a positive integer"))
    };
    let repeats = number("--repeats", 5).max(1);
    let grid = number("--grid", 128);
    println!(
        "adjunct {} on {} threads, medians of {repeats} runs",
        env!("CARGO_PKG_VERSION"),
        adjunct::num_threads()
    );
    let mut ratios = Ratios(Vec::new());
    transport(repeats, &mut ratios);
    pressure(repeats, grid, &mut ratios);
    println!("\nratios");
    for r in ratios.0 {
        println!("  {r}");
    }
}

fn transport(repeats: usize, ratios: &mut Ratios) {
    let mut rng = Rng(2024);
    let x: Vec<f64> = (0..2 * N).map(|_| rng.uniform()).collect();
    let y: Vec<f64> = (0..2 * N).map(|_| rng.uniform()).collect();
    let raw = CostMatrix::squared_euclidean(&x, &y, 2).expect("valid points");
    let max = raw.max_abs();
    let cost = CostMatrix::from_dense(N, N, raw.values().iter().map(|c| c / max).collect())
        .expect("finite");
    let a = vec![1.0 / N as f64; N];
    let b = vec![1.0 / N as f64; N];
    let g_matrix: Vec<f64> = (0..N * N).map(|_| 2.0 * rng.uniform() - 1.0).collect();
    let options = OtOptions {
        eps: EPS,
        tol: TOL,
        ..OtOptions::default()
    };
    println!("\nOT n = m = {N}, eps = {EPS}, marginal error <= {TOL:e}");
    let (t_forward, solution) = timed(repeats, || {
        ot::solve(&a, &b, &cost, &options).expect("SNS converges")
    });
    let r = &solution.report;
    println!(
        "  forward SNS        {:9.1} ms  ({} Sinkhorn + {} Newton, {} CG iterations)",
        1e3 * t_forward,
        r.sinkhorn_iterations,
        r.newton_iterations,
        r.cg_iterations
    );
    let point = OtPoint {
        cost: &cost,
        eps: EPS,
        f: &solution.f,
        g: &solution.g,
    };
    let (t_cost_grad, cost_grad) = timed(repeats, || point.cost_gradient().expect("gradient"));
    println!(
        "  grad of OT_eps     {:9.1} ms  (the plan; no linear solve)",
        1e3 * t_cost_grad
    );
    let krylov = KrylovOptions {
        rtol: 1e-8,
        ..KrylovOptions::default()
    };
    let (t_vjp, vjp) = timed(repeats, || {
        point.plan_vjp(&g_matrix, &krylov).expect("adjoint solve")
    });
    println!(
        "  plan VJP           {:9.1} ms  ({} CG iterations to rtol 1e-8)",
        1e3 * t_vjp,
        vjp.report.iterations
    );
    ratios.0.push(format!(
        "OT plan VJP / forward SNS: {:.2} (target <= 1.5)",
        t_vjp / t_forward
    ));

    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench_implicit");
    std::fs::create_dir_all(&dir).expect("create target/bench_implicit");
    write_f64(&dir.join("cost.f64"), cost.values());
    write_f64(&dir.join("g.f64"), &g_matrix);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/peers/ot_jax_bench.py");
    let peer = Command::new("python3")
        .arg(&script)
        .arg(&dir)
        .arg(N.to_string())
        .arg(EPS.to_string())
        .arg(TOL.to_string())
        .arg(repeats.to_string())
        .output();
    match peer {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            print!("{text}");
            let seconds = text
                .lines()
                .find_map(|l| l.strip_prefix("ott_forward_and_gradients_seconds "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .expect("timing line from the peer script");
            let ours = t_forward + t_cost_grad + t_vjp;
            let diff = |ours: &[f64], file: &str| rel_diff(ours, &read_f64(&dir.join(file)));
            println!(
                "  adjunct forward + both gradients {:.1} ms; relative 2-norm difference of the gradients wrt C:",
                1e3 * ours
            );
            println!(
                "    vs OTT-JAX with its implicit solve at rtol 1e-10: reg cost {:.1e}, <G,P> {:.1e}",
                diff(&cost_grad.cost, "ott_grad_reg.f64"),
                diff(&vjp.cost, "ott_grad_dot.f64")
            );
            println!(
                "    vs OTT-JAX defaults (implicit solve at 1e-6):     reg cost {:.1e}, <G,P> {:.1e}",
                diff(&cost_grad.cost, "ott_default_grad_reg.f64"),
                diff(&vjp.cost, "ott_default_grad_dot.f64")
            );
            ratios.0.push(format!(
                "OTT-JAX / adjunct, forward + gradients: {:.1}x (target >= 5)",
                seconds / ours
            ));
        }
        Ok(out) => println!(
            "  OTT-JAX peer skipped: {} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        Err(e) => println!("  OTT-JAX peer skipped: cannot run python3 ({e})"),
    }
}

fn pressure(repeats: usize, n: usize, ratios: &mut Ratios) {
    let problem = scene::smoke([n, n, n], 4).expect("scene");
    let a = problem.operator().expect("operator");
    let jacobi = Jacobi::new(&a).expect("positive diagonal");
    let options = KrylovOptions::default();
    println!(
        "\nGrid Poisson {n}^3 smoke scene, {} unknowns, Jacobi PCG to rtol {:e}",
        problem.rhs.len(),
        options.rtol
    );
    let mut x = vec![0.0; problem.rhs.len()];
    let (t_forward, report) = timed(repeats, || {
        cg(&a, &jacobi, &problem.rhs, &mut x, &options).expect("CG converges")
    });
    println!(
        "  forward CG         {:9.1} ms  ({} iterations)",
        1e3 * t_forward,
        report.iterations
    );
    // Loss L = ½‖x − x_target‖² with x_target = 0: x̄ = x.
    let x_bar = x.clone();
    let (t_grad, gradient) = timed(repeats, || {
        grid_solve_vjp(&a, &jacobi, &x, &x_bar, &options).expect("adjoint CG converges")
    });
    println!(
        "  gradient wrt b     {:9.1} ms  ({} iterations)",
        1e3 * t_grad,
        gradient.report.iterations
    );
    let csr = a.to_csr().unwrap();
    let (t_values, values) = timed(repeats, || {
        matrix_gradient(&csr, &gradient.b, &x).expect("same sizes")
    });
    println!(
        "  then wrt A         {:9.1} ms  ({} stored entries, CSR export not timed)",
        1e3 * t_values,
        values.len()
    );
    ratios.0.push(format!(
        "grid {n}^3 gradient wrt b / forward CG: {:.2} in time (target <= 1), {:.2} per iteration",
        t_grad / t_forward,
        (t_grad / gradient.report.iterations as f64) / (t_forward / report.iterations as f64)
    ));
}
