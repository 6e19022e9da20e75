//! Gradients through x = A⁻¹b (CSR and grid operators) against central
//! finite differences with faer's sparse LU as the forward solver.

mod common;

use adjunct::implicit::{csr_solve_vjp, grid_solve_vjp, matrix_gradient, LinearSolver};
use adjunct::{CsrMatrix, Identity, Jacobi, KrylovOptions, LinearOperator};
use common::*;
use faer::linalg::solvers::Solve;

fn lu_solve(a: &CsrMatrix, b: &[f64]) -> Vec<f64> {
    a.as_faer()
        .sp_lu()
        .expect("nonsingular")
        .solve(faer::ColRef::from_slice(b))
        .iter()
        .copied()
        .collect()
}

fn with_values(a: &CsrMatrix, values: &[f64]) -> CsrMatrix {
    let n = a.dim();
    CsrMatrix::from_parts(n, n, a.row_ptr(), a.col_idx(), values).unwrap()
}

fn dot(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}

fn tight() -> KrylovOptions {
    KrylovOptions {
        rtol: 1e-13,
        ..KrylovOptions::default()
    }
}

/// Checks ⟨∂L/∂b, d_b⟩ and ⟨∂L/∂values, d_A⟩ for L = ⟨w, A⁻¹b⟩ against
/// central differences.
fn check(a: &CsrMatrix, b: &[f64], w: &[f64], grad_b: &[f64], grad_values: &[f64], label: &str) {
    let mut rng = Rng::new(55);
    let loss = |a: &CsrMatrix, b: &[f64]| dot(w, &lu_solve(a, b));
    let d_b = rng.vector(b.len());
    let h = 1e-6;
    let bp: Vec<f64> = b.iter().zip(&d_b).map(|(x, d)| x + h * d).collect();
    let bm: Vec<f64> = b.iter().zip(&d_b).map(|(x, d)| x - h * d).collect();
    let fd_b = (loss(a, &bp) - loss(a, &bm)) / (2.0 * h);
    let an_b = dot(grad_b, &d_b);
    assert!(
        (fd_b - an_b).abs() <= 1e-6 * fd_b.abs().max(1e-3),
        "{label}: d/db {an_b:e} vs FD {fd_b:e}"
    );
    let d_a = rng.vector(a.nnz());
    let vp: Vec<f64> = a
        .values()
        .iter()
        .zip(&d_a)
        .map(|(v, d)| v + h * d)
        .collect();
    let vm: Vec<f64> = a
        .values()
        .iter()
        .zip(&d_a)
        .map(|(v, d)| v - h * d)
        .collect();
    let fd_a = (loss(&with_values(a, &vp), b) - loss(&with_values(a, &vm), b)) / (2.0 * h);
    let an_a = dot(grad_values, &d_a);
    assert!(
        (fd_a - an_a).abs() <= 1e-6 * fd_a.abs().max(1e-3),
        "{label}: d/dA {an_a:e} vs FD {fd_a:e}"
    );
}

#[test]
fn csr_gradients_spd_and_nonsymmetric() {
    let a = random_spd(150, 6, 8);
    let b = Rng::new(1).vector(150);
    let w = Rng::new(2).vector(150);
    let x = lu_solve(&a, &b);
    let g = csr_solve_vjp(
        &a,
        &Jacobi::new(&a).unwrap(),
        &x,
        &w,
        LinearSolver::Cg,
        &tight(),
    )
    .unwrap();
    let values = matrix_gradient(&a, &g.b, &x).unwrap();
    check(&a, &b, &w, &g.b, &values, "SPD CSR, CG");

    // Make it nonsymmetric: scale the strictly upper entries.
    let (ptr, cols) = (a.row_ptr(), a.col_idx());
    let mut values = a.values().to_vec();
    for i in 0..150 {
        for k in ptr[i] as usize..ptr[i + 1] as usize {
            if cols[k] as usize > i {
                values[k] *= 0.3;
            }
        }
    }
    let ns = with_values(&a, &values);
    assert!(ns.check_symmetric().is_err());
    let x = lu_solve(&ns, &b);
    for solver in [LinearSolver::Gmres(30), LinearSolver::Bicgstab] {
        let g = csr_solve_vjp(&ns, &Identity { dim: 150 }, &x, &w, solver, &tight()).unwrap();
        let values = matrix_gradient(&ns, &g.b, &x).unwrap();
        check(
            &ns,
            &b,
            &w,
            &g.b,
            &values,
            &format!("nonsymmetric CSR {solver:?}"),
        );
    }
}

#[test]
fn grid_gradients() {
    let problem = adjunct::scene::smoke([12, 10, 8], 2).unwrap();
    let g = problem.operator().unwrap();
    let a = g.to_csr().unwrap();
    let w = Rng::new(3).vector(g.dim());
    let x = lu_solve(&a, &problem.rhs);
    let grad = grid_solve_vjp(&g, &Jacobi::new(&g).unwrap(), &x, &w, &tight()).unwrap();
    let values = matrix_gradient(&a, &grad.b, &x).unwrap();
    assert_eq!(values.len(), a.nnz());
    check(&a, &problem.rhs, &w, &grad.b, &values, "grid");
}

#[test]
fn transpose_is_the_transpose() {
    let a = random_spd(40, 5, 4);
    let values: Vec<f64> = a
        .values()
        .iter()
        .enumerate()
        .map(|(k, v)| v * (1.0 + 0.01 * k as f64))
        .collect();
    let ns = with_values(&a, &values);
    let t = ns.transpose();
    let (x, y) = (Rng::new(5).vector(40), Rng::new(6).vector(40));
    let (mut ax, mut aty) = (vec![0.0; 40], vec![0.0; 40]);
    ns.apply(&x, &mut ax).unwrap();
    t.apply(&y, &mut aty).unwrap();
    assert!((dot(&y, &ax) - dot(&x, &aty)).abs() < 1e-12 * dot(&y, &ax).abs().max(1.0));
    assert_eq!(t.transpose().values(), ns.values());
}
