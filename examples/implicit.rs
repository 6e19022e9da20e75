//! Implicit differentiation of a root problem: ridge regression
//! x*(θ) = argmin ½‖X x − y‖² + ½θ‖x‖², whose optimality condition is
//! F(x, θ) = (XᵀX + θI) x − Xᵀy = 0. The gradient of L(θ) = ½‖x*(θ)‖²
//! comes from one adjoint solve with A = ∂F/∂x = XᵀX + θI (symmetric) and
//! B = ∂F/∂θ = x*, and is checked against a central difference.
//!
//! `cargo run --release --example implicit`

use adjunct::implicit::{self, ImplicitOptions, JacobianKind, LinearSolver, RootProblem};
use adjunct::{cg, FnOperator, Identity, KrylovOptions};

/// Rows × cols design matrix X (dense, row-major) and targets y.
struct Data {
    rows: usize,
    cols: usize,
    x: Vec<f64>,
    y: Vec<f64>,
}

impl Data {
    /// out ← (XᵀX + θI) v.
    fn normal_product(&self, theta: f64, v: &[f64], out: &mut [f64]) {
        let xv: Vec<f64> = (0..self.rows)
            .map(|r| {
                (0..self.cols)
                    .map(|c| self.x[r * self.cols + c] * v[c])
                    .sum()
            })
            .collect();
        for c in 0..self.cols {
            out[c] = theta * v[c]
                + (0..self.rows)
                    .map(|r| self.x[r * self.cols + c] * xv[r])
                    .sum::<f64>();
        }
    }

    /// x*(θ), by CG on the normal equations.
    fn solve(&self, theta: f64) -> adjunct::Result<Vec<f64>> {
        let op = FnOperator::new(self.cols, |v: &[f64], out: &mut [f64]| {
            self.normal_product(theta, v, out);
            Ok(())
        });
        let rhs: Vec<f64> = (0..self.cols)
            .map(|c| {
                (0..self.rows)
                    .map(|r| self.x[r * self.cols + c] * self.y[r])
                    .sum()
            })
            .collect();
        let mut x = vec![0.0; self.cols];
        let options = KrylovOptions {
            rtol: 1e-13,
            ..KrylovOptions::default()
        };
        cg(&op, &Identity { dim: self.cols }, &rhs, &mut x, &options)?;
        Ok(x)
    }
}

fn main() -> adjunct::Result<()> {
    // Deterministic pseudo-random data.
    let (rows, cols) = (80, 30);
    let noise = |k: usize| (12.9898 * k as f64).sin() * 43758.5453 % 1.0;
    let data = Data {
        rows,
        cols,
        x: (0..rows * cols).map(noise).collect(),
        y: (0..rows).map(|r| noise(rows * cols + r)).collect(),
    };
    let theta = 0.5;
    let x_star = data.solve(theta)?;

    let a = |v: &[f64], out: &mut [f64]| -> adjunct::Result<()> {
        data.normal_product(theta, v, out);
        Ok(())
    };
    // Bᵀu = x*ᵀu (B is the single column x*).
    let b_t = |u: &[f64], out: &mut [f64]| -> adjunct::Result<()> {
        out[0] = x_star.iter().zip(u).map(|(x, u)| x * u).sum();
        Ok(())
    };
    let problem = RootProblem {
        dim: cols,
        num_params: 1,
        kind: JacobianKind::Symmetric,
        a: &a,
        a_t: None,
        b: None,
        b_t: Some(&b_t),
    };
    let options = ImplicitOptions {
        solver: LinearSolver::Cg,
        ..ImplicitOptions::default()
    };
    // dL/dx* = x*, so the cotangent is x*.
    let (gradient, report) = implicit::vjp(&problem, &x_star, &options)?;

    let loss = |theta: f64| -> adjunct::Result<f64> {
        Ok(0.5 * data.solve(theta)?.iter().map(|v| v * v).sum::<f64>())
    };
    let h = 1e-5;
    let fd = (loss(theta + h)? - loss(theta - h)?) / (2.0 * h);
    println!(
        "dL/dθ at θ = {theta}: implicit {:.8e} ({} CG iterations), central difference {fd:.8e}, relative difference {:.1e}",
        gradient[0],
        report.iterations,
        (gradient[0] - fd).abs() / fd.abs()
    );
    Ok(())
}
