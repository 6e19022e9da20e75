//! Entropic optimal transport between two point clouds with
//! Sinkhorn-Newton-Sparse, and the gradient of the regularised cost with
//! respect to the cost matrix, checked against a finite difference.
//!
//! `cargo run --release --example transport`

use adjunct::implicit::OtPoint;
use adjunct::ot::{self, CostMatrix, OtMethod, OtOptions};

fn main() -> adjunct::Result<()> {
    // 300 source and 200 target points on a line, uniform weights.
    let (n, m) = (300, 200);
    let x: Vec<f64> = (0..n).map(|i| (i as f64 / n as f64).powi(2)).collect();
    let y: Vec<f64> = (0..m).map(|j| 0.2 + 0.6 * j as f64 / m as f64).collect();
    let a = vec![1.0 / n as f64; n];
    let b = vec![1.0 / m as f64; m];
    let cost = CostMatrix::squared_euclidean(&x, &y, 1)?;
    let options = OtOptions {
        eps: 1e-3,
        method: OtMethod::SinkhornNewtonSparse,
        ..OtOptions::default()
    };
    let solution = ot::solve(&a, &b, &cost, &options)?;
    let r = &solution.report;
    println!(
        "OT_ε = {:.6e} (⟨C, P⟩ = {:.6e}); {} Sinkhorn + {} Newton iterations ({} CG), marginal error {:.1e}",
        solution.objective,
        solution.transport_cost,
        r.sinkhorn_iterations,
        r.newton_iterations,
        r.cg_iterations,
        r.marginal_error
    );

    // ∂OT_ε/∂C = P: compare one entry with a central difference of the
    // objective (each side a full solve).
    let point = OtPoint {
        cost: &cost,
        eps: options.eps,
        f: &solution.f,
        g: &solution.g,
    };
    let gradient = point.cost_gradient()?;
    let (i, j) = (150, 120);
    let h = 1e-6;
    let objective_at = |delta: f64| -> adjunct::Result<f64> {
        let mut values = cost.values().to_vec();
        values[i * m + j] += delta;
        let perturbed = CostMatrix::from_dense(n, m, values)?;
        Ok(ot::solve(&a, &b, &perturbed, &options)?.objective)
    };
    let fd = (objective_at(h)? - objective_at(-h)?) / (2.0 * h);
    let analytic = gradient.cost[i * m + j];
    println!(
        "∂OT_ε/∂C[{i}][{j}]: {analytic:.6e} (plan entry), central difference {fd:.6e}, relative difference {:.1e}",
        (analytic - fd).abs() / fd.abs()
    );
    Ok(())
}
