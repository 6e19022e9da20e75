//! Quickstart: the pressure projection of a 96³ smoke simulation (a box with
//! a spherical obstacle and an air layer on top), solved by CG with no
//! preconditioner, Jacobi, IC(0) and geometric multigrid.
//!
//! Run: `cargo run --release --example quickstart`

use adjunct::krylov::{Multigrid, MultigridOptions};
use adjunct::{cg, scene, Ic0, Identity, Jacobi, KrylovOptions, LinearOperator, Preconditioner};
use std::time::Instant;

fn main() -> Result<(), adjunct::Error> {
    let n = 96;
    let problem = scene::smoke([n, n, n], 2)?;
    let a = problem.operator()?;
    let b = &problem.rhs;
    println!(
        "smoke scene {n}x{n}x{n}: {} unknowns, {} threads, rtol 1e-8",
        a.dim(),
        adjunct::num_threads()
    );
    println!(
        "{:<10} {:>10} {:>10} {:>10} {:>14}",
        "precond", "setup s", "solve s", "iters", "true rel res"
    );

    let options = KrylovOptions::default();
    let run = |name: &str, setup: &dyn Fn() -> Result<Box<dyn Preconditioner>, adjunct::Error>| {
        let t0 = Instant::now();
        let m = setup()?;
        let t1 = Instant::now();
        let mut x = vec![0.0; a.dim()];
        let report = cg(&a, &*m, b, &mut x, &options)?;
        let t2 = Instant::now();
        // Independent check of the reported residual.
        let mut ax = vec![0.0; a.dim()];
        a.apply(&x, &mut ax)?;
        let res: f64 = ax
            .iter()
            .zip(b)
            .map(|(ax, b)| (b - ax).powi(2))
            .sum::<f64>()
            .sqrt();
        let bnorm: f64 = b.iter().map(|v| v * v).sum::<f64>().sqrt();
        println!(
            "{name:<10} {:>10.3} {:>10.3} {:>10} {:>14.3e}",
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            report.iterations,
            res / bnorm
        );
        Ok::<(), adjunct::Error>(())
    };
    run("none", &|| Ok(Box::new(Identity { dim: a.dim() })))?;
    run("jacobi", &|| Ok(Box::new(Jacobi::new(&a)?)))?;
    run("ic0", &|| Ok(Box::new(Ic0::new(&a.to_csr()?)?)))?;
    run("multigrid", &|| {
        Ok(Box::new(Multigrid::new(&a, &MultigridOptions::default())?))
    })?;
    Ok(())
}
