//! Implicit differentiation of root problems: VJPs and JVPs against central
//! finite differences of the solution map, and against each other.

mod common;

use adjunct::implicit::{jvp, vjp, ImplicitOptions, JacobianKind, LinearSolver, RootProblem};
use adjunct::Result;
use common::Rng;
use faer::linalg::solvers::Solve;
use faer::Mat;

fn dense(n: usize, m: usize, rng: &mut Rng, scale: f64) -> Mat<f64> {
    Mat::from_fn(n, m, |_, _| scale * rng.range(-1.0, 1.0))
}

fn mul(a: &Mat<f64>, v: &[f64], out: &mut [f64]) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = (0..v.len()).map(|j| a[(i, j)] * v[j]).sum();
    }
}

fn mul_t(a: &Mat<f64>, u: &[f64], out: &mut [f64]) {
    for (j, o) in out.iter_mut().enumerate() {
        *o = (0..u.len()).map(|i| a[(i, j)] * u[i]).sum();
    }
}

/// Linear solves converged far enough for ⟨v̄, Jθ̇⟩ = ⟨Jᵀv̄, θ̇⟩ to 1e-10.
fn tight(solver: LinearSolver) -> ImplicitOptions<'static> {
    let mut options = ImplicitOptions {
        solver,
        ..ImplicitOptions::default()
    };
    options.krylov.rtol = 1e-13;
    options
}

fn dot(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}

/// Central finite difference of θ ↦ ⟨w, x*(θ)⟩ along direction d.
fn fd_directional(
    solve: &dyn Fn(&[f64]) -> Vec<f64>,
    theta: &[f64],
    d: &[f64],
    w: &[f64],
    h: f64,
) -> f64 {
    let plus: Vec<f64> = theta.iter().zip(d).map(|(t, d)| t + h * d).collect();
    let minus: Vec<f64> = theta.iter().zip(d).map(|(t, d)| t - h * d).collect();
    (dot(w, &solve(&plus)) - dot(w, &solve(&minus))) / (2.0 * h)
}

/// Checks vjp and jvp against finite differences and each other.
fn check(
    problem: &RootProblem<'_>,
    solve: &dyn Fn(&[f64]) -> Vec<f64>,
    theta: &[f64],
    options: &ImplicitOptions<'_>,
    label: &str,
) {
    let mut rng = Rng::new(77);
    let v_bar = rng.vector(problem.dim);
    let theta_dot = rng.vector(problem.num_params);
    let (g, _) = vjp(problem, &v_bar, options).unwrap_or_else(|e| panic!("{label}: vjp: {e}"));
    let (x_dot, _) =
        jvp(problem, &theta_dot, options).unwrap_or_else(|e| panic!("{label}: jvp: {e}"));
    let fd = fd_directional(solve, theta, &theta_dot, &v_bar, 1e-5);
    let via_vjp = dot(&g, &theta_dot);
    let via_jvp = dot(&v_bar, &x_dot);
    assert!(
        (via_vjp - fd).abs() <= 1e-6 * fd.abs().max(1e-3),
        "{label}: VJP {via_vjp:e} vs finite differences {fd:e}"
    );
    assert!(
        (via_jvp - fd).abs() <= 1e-6 * fd.abs().max(1e-3),
        "{label}: JVP {via_jvp:e} vs finite differences {fd:e}"
    );
    assert!(
        (via_vjp - via_jvp).abs() <= 1e-10 * via_vjp.abs().max(1e-12),
        "{label}: <v, J t> = {via_jvp:e} vs <J^T v, t> = {via_vjp:e}"
    );
}

#[test]
fn quadratic_root_problem() {
    // F(x, θ) = Q x + C θ − d, Q SPD: x* = Q⁻¹(d − Cθ).
    let (n, p) = (40, 7);
    let mut rng = Rng::new(1);
    let r = dense(n, n, &mut rng, 1.0);
    let q = &r * r.transpose() + Mat::<f64>::identity(n, n) * 2.0;
    let c = dense(n, p, &mut rng, 1.0);
    let d = rng.vector(n);
    let theta = rng.vector(p);
    let solve = |t: &[f64]| -> Vec<f64> {
        let mut ct = vec![0.0; n];
        mul(&c, t, &mut ct);
        let rhs: Vec<f64> = d.iter().zip(&ct).map(|(d, c)| d - c).collect();
        q.partial_piv_lu()
            .solve(faer::ColRef::from_slice(&rhs))
            .iter()
            .copied()
            .collect()
    };
    let a = |v: &[f64], y: &mut [f64]| -> Result<()> {
        mul(&q, v, y);
        Ok(())
    };
    let b = |t: &[f64], y: &mut [f64]| -> Result<()> {
        mul(&c, t, y);
        Ok(())
    };
    let b_t = |u: &[f64], y: &mut [f64]| -> Result<()> {
        mul_t(&c, u, y);
        Ok(())
    };
    let problem = RootProblem {
        dim: n,
        num_params: p,
        kind: JacobianKind::Symmetric,
        a: &a,
        a_t: None,
        b: Some(&b),
        b_t: Some(&b_t),
    };
    for solver in [
        LinearSolver::Cg,
        LinearSolver::Gmres(10),
        LinearSolver::Bicgstab,
        LinearSolver::NormalCg,
        LinearSolver::DenseLu,
    ] {
        let options = tight(solver);
        check(
            &problem,
            &solve,
            &theta,
            &options,
            &format!("quadratic {solver:?}"),
        );
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

#[test]
fn regularised_logistic_regression_optimum() {
    // x*(θ) = argmin Σ_i log(1 + exp(−y_i aᵢᵀx)) + ½ Σ_j θ_j x_j²,
    // F = ∇ = −Σ y_i σ(−y_i aᵢᵀx) aᵢ + θ ⊙ x; A = Σ σ(1−σ) aᵢaᵢᵀ + diag(θ); B = diag(x).
    let (m, n) = (60, 8);
    let mut rng = Rng::new(2);
    let data = dense(m, n, &mut rng, 1.0);
    let labels: Vec<f64> = (0..m)
        .map(|_| if rng.uniform() < 0.5 { -1.0 } else { 1.0 })
        .collect();
    let theta: Vec<f64> = (0..n).map(|_| rng.range(0.5, 2.0)).collect();
    let hessian = |x: &[f64], t: &[f64]| -> Mat<f64> {
        let mut h = Mat::<f64>::zeros(n, n);
        for i in 0..m {
            let z: f64 = (0..n).map(|j| data[(i, j)] * x[j]).sum();
            let w = sigmoid(z) * (1.0 - sigmoid(z));
            for a in 0..n {
                for b in 0..n {
                    h[(a, b)] += w * data[(i, a)] * data[(i, b)];
                }
            }
        }
        for j in 0..n {
            h[(j, j)] += t[j];
        }
        h
    };
    let gradient = |x: &[f64], t: &[f64]| -> Vec<f64> {
        let mut g: Vec<f64> = (0..n).map(|j| t[j] * x[j]).collect();
        for i in 0..m {
            let z: f64 = (0..n).map(|j| data[(i, j)] * x[j]).sum();
            let s = sigmoid(-labels[i] * z);
            for j in 0..n {
                g[j] -= labels[i] * s * data[(i, j)];
            }
        }
        g
    };
    let solve = |t: &[f64]| -> Vec<f64> {
        let mut x = vec![0.0; n];
        for _ in 0..50 {
            let g = gradient(&x, t);
            let step = hessian(&x, t)
                .partial_piv_lu()
                .solve(faer::ColRef::from_slice(&g));
            for (xi, si) in x.iter_mut().zip(step.iter()) {
                *xi -= si;
            }
            if g.iter().map(|v| v.abs()).fold(0.0, f64::max) < 1e-15 {
                break;
            }
        }
        x
    };
    let x_star = solve(&theta);
    let h = hessian(&x_star, &theta);
    let a = |v: &[f64], y: &mut [f64]| -> Result<()> {
        mul(&h, v, y);
        Ok(())
    };
    let b = |t: &[f64], y: &mut [f64]| -> Result<()> {
        for j in 0..n {
            y[j] = x_star[j] * t[j];
        }
        Ok(())
    };
    let problem = RootProblem {
        dim: n,
        num_params: n,
        kind: JacobianKind::Symmetric,
        a: &a,
        a_t: None,
        b: Some(&b),
        b_t: Some(&b),
    };
    for solver in [LinearSolver::Cg, LinearSolver::DenseLu] {
        let options = tight(solver);
        check(
            &problem,
            &solve,
            &theta,
            &options,
            &format!("logistic {solver:?}"),
        );
    }
}

#[test]
fn fixed_point_and_nonsymmetric_problems() {
    // x = T(x, θ) = ½ tanh(W x + θ) with ‖W‖ < 1 (a contraction).
    let n = 30;
    let mut rng = Rng::new(3);
    let w = dense(n, n, &mut rng, 0.15);
    let theta = rng.vector(n);
    let solve = |t: &[f64]| -> Vec<f64> {
        let mut x = vec![0.0; n];
        let mut wx = vec![0.0; n];
        for _ in 0..500 {
            mul(&w, &x, &mut wx);
            x = wx
                .iter()
                .zip(t)
                .map(|(a, b)| 0.5 * (a + b).tanh())
                .collect();
        }
        x
    };
    let x_star = solve(&theta);
    let mut z = vec![0.0; n];
    mul(&w, &x_star, &mut z);
    let slope: Vec<f64> = z
        .iter()
        .zip(&theta)
        .map(|(a, b)| 0.5 * (1.0 - (a + b).tanh().powi(2)))
        .collect();
    // ∂T/∂x = diag(slope) W, ∂T/∂θ = diag(slope).
    let jt = |v: &[f64], y: &mut [f64]| -> Result<()> {
        mul(&w, v, y);
        y.iter_mut().zip(&slope).for_each(|(y, s)| *y *= s);
        Ok(())
    };
    let jt_t = |u: &[f64], y: &mut [f64]| -> Result<()> {
        let su: Vec<f64> = u.iter().zip(&slope).map(|(u, s)| u * s).collect();
        mul_t(&w, &su, y);
        Ok(())
    };
    let dtheta = |t: &[f64], y: &mut [f64]| -> Result<()> {
        y.iter_mut()
            .zip(t)
            .zip(&slope)
            .for_each(|((y, t), s)| *y = s * t);
        Ok(())
    };
    let problem = RootProblem {
        dim: n,
        num_params: n,
        kind: JacobianKind::FixedPoint,
        a: &jt,
        a_t: Some(&jt_t),
        b: Some(&dtheta),
        b_t: Some(&dtheta),
    };
    for solver in [
        LinearSolver::Gmres(30),
        LinearSolver::Bicgstab,
        LinearSolver::NormalCg,
        LinearSolver::DenseLu,
    ] {
        let options = tight(solver);
        check(
            &problem,
            &solve,
            &theta,
            &options,
            &format!("fixed point {solver:?}"),
        );
    }

    // Nonsymmetric root: F(x, θ) = M x + 0.1 x³ − θ; A = M + diag(0.3 x²), B = −I.
    let m_mat = dense(n, n, &mut rng, 0.3) + Mat::<f64>::identity(n, n) * 3.0;
    let solve_cubic = |t: &[f64]| -> Vec<f64> {
        let mut x = vec![0.0; n];
        let mut mx = vec![0.0; n];
        for _ in 0..60 {
            mul(&m_mat, &x, &mut mx);
            let f: Vec<f64> = (0..n).map(|i| mx[i] + 0.1 * x[i].powi(3) - t[i]).collect();
            let jac = Mat::from_fn(n, n, |i, j| {
                m_mat[(i, j)] + if i == j { 0.3 * x[i] * x[i] } else { 0.0 }
            });
            let step = jac.partial_piv_lu().solve(faer::ColRef::from_slice(&f));
            x.iter_mut().zip(step.iter()).for_each(|(x, s)| *x -= s);
        }
        x
    };
    let x_c = solve_cubic(&theta);
    let a = |v: &[f64], y: &mut [f64]| -> Result<()> {
        mul(&m_mat, v, y);
        y.iter_mut()
            .zip(v)
            .zip(&x_c)
            .for_each(|((y, v), x)| *y += 0.3 * x * x * v);
        Ok(())
    };
    let a_t = |u: &[f64], y: &mut [f64]| -> Result<()> {
        mul_t(&m_mat, u, y);
        y.iter_mut()
            .zip(u)
            .zip(&x_c)
            .for_each(|((y, u), x)| *y += 0.3 * x * x * u);
        Ok(())
    };
    let minus_identity = |t: &[f64], y: &mut [f64]| -> Result<()> {
        y.iter_mut().zip(t).for_each(|(y, t)| *y = -t);
        Ok(())
    };
    let cubic = RootProblem {
        dim: n,
        num_params: n,
        kind: JacobianKind::General,
        a: &a,
        a_t: Some(&a_t),
        b: Some(&minus_identity),
        b_t: Some(&minus_identity),
    };
    for solver in [LinearSolver::Gmres(8), LinearSolver::Bicgstab] {
        let options = tight(solver);
        check(
            &cubic,
            &solve_cubic,
            &theta,
            &options,
            &format!("cubic {solver:?}"),
        );
    }
}

#[test]
fn failures_are_errors() {
    let a = |v: &[f64], y: &mut [f64]| -> Result<()> {
        y.copy_from_slice(v);
        Ok(())
    };
    let problem = RootProblem {
        dim: 3,
        num_params: 2,
        kind: JacobianKind::General,
        a: &a,
        a_t: None,
        b: None,
        b_t: None,
    };
    let options = ImplicitOptions::default();
    assert!(vjp(&problem, &[1.0, 2.0, 3.0], &options)
        .unwrap_err()
        .to_string()
        .contains("`b_t`"));
    assert!(jvp(&problem, &[1.0, 2.0], &options)
        .unwrap_err()
        .to_string()
        .contains("`b`"));
    let b_t = |_: &[f64], y: &mut [f64]| -> Result<()> {
        y.fill(0.0);
        Ok(())
    };
    let with_bt = RootProblem {
        b_t: Some(&b_t),
        ..problem
    };
    assert!(vjp(&with_bt, &[1.0, 2.0, 3.0], &options)
        .unwrap_err()
        .to_string()
        .contains("`a_t`"));
    assert!(vjp(&with_bt, &[1.0, 2.0], &options)
        .unwrap_err()
        .to_string()
        .contains("`cotangent`"));
    let unconverged = ImplicitOptions {
        krylov: adjunct::KrylovOptions {
            max_iterations: 0,
            ..adjunct::KrylovOptions::default()
        },
        ..ImplicitOptions::default()
    };
    let sym = RootProblem {
        kind: JacobianKind::Symmetric,
        ..with_bt
    };
    assert!(matches!(
        vjp(&sym, &[1.0, 2.0, 3.0], &unconverged),
        Err(adjunct::Error::SolveFailed { .. })
    ));
}
