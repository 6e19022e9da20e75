//! Sinkhorn against Sinkhorn-Newton-Sparse on the problem families of Tang
//! et al. (ICLR 2024), costs scaled to [0, 1], ε = 1/1200, stopping at
//! marginal error ‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁ ≤ 1e-9.
//!
//! Run: `cargo run --release --example bench_ot [-- --sinkhorn-seconds S]`
//!
//! Sinkhorn runs until it converges or for at most S seconds (default 120);
//! when it does not converge, the speed-up printed is a lower bound. The
//! problems are written to `target/bench_ot/` and, when `python3` with POT
//! is available, `benches/peers/ot_pot_bench.py` runs POT's
//! `ot.sinkhorn(method="sinkhorn_log")` on them in the same run.

use adjunct::ot::{self, CostMatrix, OtMethod, OtOptions};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

mod common;
#[path = "../src/random.rs"]
#[allow(dead_code)]
mod random;

use common::write_f64;
use random::SplitMix as Rng;

const EPS: f64 = 1.0 / 1200.0;
const TOL: f64 = 1e-9;

struct Problem {
    name: String,
    a: Vec<f64>,
    b: Vec<f64>,
    cost: CostMatrix,
}

fn normalised(v: Vec<f64>) -> Vec<f64> {
    let s: f64 = v.iter().sum();
    v.into_iter().map(|x| x / s).collect()
}

fn scaled(cost: CostMatrix) -> CostMatrix {
    let max = cost.max_abs();
    CostMatrix::from_dense(
        cost.rows(),
        cost.cols(),
        cost.values().iter().map(|c| c / max).collect(),
    )
    .expect("finite")
}

fn random_assignment(n: usize, rng: &mut Rng) -> Problem {
    let c: Vec<f64> = (0..n * n).map(|_| rng.uniform()).collect();
    Problem {
        name: format!("random assignment n={n}"),
        a: vec![1.0 / n as f64; n],
        b: vec![1.0 / n as f64; n],
        cost: CostMatrix::from_dense(n, n, c).expect("finite"),
    }
}

/// A mixture of 3 Gaussians on the k×k grid of [0,1]², plus a 1e-3
/// uniform floor (every bin keeps mass), normalised.
fn gaussian_mixture(k: usize, rng: &mut Rng) -> Vec<f64> {
    let centres: Vec<[f64; 3]> = (0..3)
        .map(|_| {
            [
                0.2 + 0.6 * rng.uniform(),
                0.2 + 0.6 * rng.uniform(),
                0.05 + 0.1 * rng.uniform(),
            ]
        })
        .collect();
    let density = (0..k * k).map(|c| {
        let (x, y) = (
            ((c % k) as f64 + 0.5) / k as f64,
            ((c / k) as f64 + 0.5) / k as f64,
        );
        1e-3 + centres
            .iter()
            .map(|[cx, cy, s]| (-((x - cx).powi(2) + (y - cy).powi(2)) / (2.0 * s * s)).exp())
            .sum::<f64>()
    });
    normalised(density.collect())
}

fn grid_points(k: usize) -> Vec<f64> {
    (0..k * k)
        .flat_map(|c| {
            [
                ((c % k) as f64 + 0.5) / k as f64,
                ((c / k) as f64 + 0.5) / k as f64,
            ]
        })
        .collect()
}

fn densities(k: usize, p: f64, rng: &mut Rng) -> Problem {
    let pts = grid_points(k);
    Problem {
        name: format!("W{} densities {k}x{k}", p as u32),
        a: gaussian_mixture(k, rng),
        b: gaussian_mixture(k, rng),
        cost: scaled(CostMatrix::p_norm(&pts, &pts, 2, p).expect("valid points")),
    }
}

fn point_clouds(n: usize, rng: &mut Rng) -> Problem {
    let x: Vec<f64> = (0..2 * n).map(|_| rng.uniform()).collect();
    let y: Vec<f64> = (0..2 * n).map(|_| 0.25 + rng.uniform()).collect();
    Problem {
        name: format!("point clouds n={n} sqeuclidean"),
        a: vec![1.0 / n as f64; n],
        b: vec![1.0 / n as f64; n],
        cost: scaled(CostMatrix::squared_euclidean(&x, &y, 2).expect("valid points")),
    }
}

struct Outcome {
    converged: bool,
    seconds: f64,
    iterations: String,
}

fn run(problem: &Problem, options: &OtOptions) -> Outcome {
    let t = Instant::now();
    let result = ot::solve(&problem.a, &problem.b, &problem.cost, options);
    let seconds = t.elapsed().as_secs_f64();
    match result {
        Ok(s) => Outcome {
            converged: true,
            seconds,
            iterations: match options.method {
                OtMethod::Sinkhorn => format!("{}", s.report.sinkhorn_iterations),
                OtMethod::SinkhornNewtonSparse => format!(
                    "{} + {} Newton ({} CG, {} fallbacks, {} entries/row)",
                    s.report.sinkhorn_iterations,
                    s.report.newton_iterations,
                    s.report.cg_iterations,
                    s.report.fallbacks,
                    s.report.hessian_entries_per_row
                ),
            },
        },
        Err(e) => Outcome {
            converged: false,
            seconds,
            iterations: format!("not converged: {e}"),
        },
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let budget: f64 = args
        .iter()
        .position(|a| a == "--sinkhorn-seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(120.0);
    let mut rng = Rng(2024);
    let problems = [
        random_assignment(500, &mut rng),
        densities(32, 2.0, &mut rng),
        densities(32, 1.0, &mut rng),
        densities(48, 2.0, &mut rng),
        point_clouds(2000, &mut rng),
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench_ot");
    std::fs::create_dir_all(&dir).expect("target/bench_ot");
    let mut manifest = Vec::new();
    println!(
        "eps = 1/1200, tol = {TOL:e} (l1 marginal error), {} threads",
        adjunct::num_threads()
    );
    println!("| problem | n x m | Sinkhorn iterations | Sinkhorn s | SNS iterations | SNS s | speed-up |");
    println!("|---|---|---|---:|---|---:|---:|");
    for (k, p) in problems.iter().enumerate() {
        let (n, m) = (p.cost.rows(), p.cost.cols());
        let stem = format!("problem{k}");
        write_f64(&dir.join(format!("{stem}.a")), &p.a);
        write_f64(&dir.join(format!("{stem}.b")), &p.b);
        write_f64(&dir.join(format!("{stem}.C")), p.cost.values());
        manifest.push(format!(
            "{{\"name\": \"{}\", \"stem\": \"{stem}\", \"n\": {n}, \"m\": {m}}}",
            p.name
        ));
        let sns = run(
            p,
            &OtOptions {
                eps: EPS,
                tol: TOL,
                ..OtOptions::default()
            },
        );
        // Calibrate the Sinkhorn iteration cap to the time budget.
        let probe = Instant::now();
        let _ = ot::solve(
            &p.a,
            &p.b,
            &p.cost,
            &OtOptions {
                eps: EPS,
                tol: TOL,
                method: OtMethod::Sinkhorn,
                max_sinkhorn_iterations: 10,
                ..OtOptions::default()
            },
        );
        let per_iteration = probe.elapsed().as_secs_f64() / 10.0;
        let cap = ((budget / per_iteration) as usize).max(10);
        let sk = run(
            p,
            &OtOptions {
                eps: EPS,
                tol: TOL,
                method: OtMethod::Sinkhorn,
                max_sinkhorn_iterations: cap,
                ..OtOptions::default()
            },
        );
        let ratio = sk.seconds / sns.seconds;
        println!(
            "| {} | {n} x {m} | {} | {:.2} | {} | {:.3} | {}{ratio:.0}x |",
            p.name,
            if sk.converged {
                sk.iterations.clone()
            } else {
                format!("> {cap} (not converged)")
            },
            sk.seconds,
            sns.iterations,
            sns.seconds,
            if sk.converged { "" } else { ">= " }
        );
        assert!(sns.converged, "SNS must reach the tolerance on {}", p.name);
    }
    std::fs::write(
        dir.join("manifest.json"),
        format!("[{}]\n", manifest.join(",\n")),
    )
    .expect("manifest");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/ot_pot_bench.py");
    match Command::new("python3")
        .arg(&script)
        .arg(&dir)
        .arg(EPS.to_string())
        .arg(TOL.to_string())
        .arg(budget.to_string())
        .status()
    {
        Ok(status) if status.success() => {}
        Ok(_) | Err(_) => println!(
            "POT comparison skipped: `python3 {}` failed (pip install pot)",
            script.display()
        ),
    }
}
