//! Gradients of entropic OT against central finite differences of
//! converged solves, at several ε; VJP/JVP consistency.

mod common;

use adjunct::implicit::OtPoint;
use adjunct::ot::{self, CostMatrix, OtOptions};
use adjunct::KrylovOptions;
use common::Rng;

fn problem(n: usize, m: usize, seed: u64) -> (Vec<f64>, Vec<f64>, CostMatrix) {
    let mut rng = Rng::new(seed);
    let x: Vec<f64> = (0..2 * n).map(|_| rng.uniform()).collect();
    let y: Vec<f64> = (0..2 * m).map(|_| rng.uniform() + 0.2).collect();
    let normalise = |v: Vec<f64>| {
        let s: f64 = v.iter().sum();
        v.into_iter().map(|x| x / s).collect::<Vec<f64>>()
    };
    let a = normalise((0..n).map(|_| rng.range(0.5, 1.5)).collect());
    let b = normalise((0..m).map(|_| rng.range(0.5, 1.5)).collect());
    (a, b, CostMatrix::squared_euclidean(&x, &y, 2).unwrap())
}

struct Solved {
    plan: Vec<f64>,
    objective: f64,
    f: Vec<f64>,
    g: Vec<f64>,
}

fn solve(a: &[f64], b: &[f64], c: &CostMatrix, eps: f64) -> Solved {
    let options = OtOptions {
        eps,
        tol: 1e-14,
        ..OtOptions::default()
    };
    let s = ot::solve(a, b, c, &options).unwrap();
    let mut plan = vec![0.0; c.rows() * c.cols()];
    ot::write_plan(c, eps, &s.f, &s.g, &mut plan).unwrap();
    Solved {
        plan,
        objective: s.objective,
        f: s.f,
        g: s.g,
    }
}

fn dot(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}

fn shifted(v: &[f64], d: &[f64], h: f64) -> Vec<f64> {
    v.iter().zip(d).map(|(v, d)| v + h * d).collect()
}

#[test]
fn gradients_match_finite_differences() {
    let (n, m) = (12, 9);
    let (a, b, c) = problem(n, m, 3);
    let mut rng = Rng::new(4);
    let c_dot = rng.vector(n * m);
    let mut a_dot = rng.vector(n);
    let mut b_dot = rng.vector(m);
    // Mass-preserving tangents: Σȧ = Σḃ = 0.
    let (ma, mb) = (
        a_dot.iter().sum::<f64>() / n as f64,
        b_dot.iter().sum::<f64>() / m as f64,
    );
    a_dot.iter_mut().for_each(|v| *v -= ma);
    b_dot.iter_mut().for_each(|v| *v -= mb);
    let plan_bar = rng.vector(n * m);
    let krylov = KrylovOptions {
        rtol: 1e-13,
        ..KrylovOptions::default()
    };
    for eps in [0.5, 0.1, 0.03] {
        let s = solve(&a, &b, &c, eps);
        let point = OtPoint {
            cost: &c,
            eps,
            f: &s.f,
            g: &s.g,
        };
        let h = 1e-5;
        let perturbed = |sign: f64| {
            let cp = CostMatrix::from_dense(n, m, shifted(c.values(), &c_dot, sign * h)).unwrap();
            solve(
                &shifted(&a, &a_dot, sign * h),
                &shifted(&b, &b_dot, sign * h),
                &cp,
                eps,
            )
        };
        let (plus, minus) = (perturbed(1.0), perturbed(-1.0));
        // Regularised cost.
        let grad = point.cost_gradient().unwrap();
        let fd_cost = (plus.objective - minus.objective) / (2.0 * h);
        let an_cost = dot(&grad.cost, &c_dot) + dot(&grad.a, &a_dot) + dot(&grad.b, &b_dot);
        assert!(
            (fd_cost - an_cost).abs() <= 1e-6 * fd_cost.abs().max(1e-3),
            "eps={eps}: cost gradient {an_cost:e} vs FD {fd_cost:e}"
        );
        // Plan: <P̄, dP> by FD, VJP and JVP.
        let fd_plan = (dot(&plan_bar, &plus.plan) - dot(&plan_bar, &minus.plan)) / (2.0 * h);
        let vjp = point.plan_vjp(&plan_bar, &krylov).unwrap();
        let via_vjp = dot(&vjp.cost, &c_dot) + dot(&vjp.a, &a_dot) + dot(&vjp.b, &b_dot);
        let (plan_dot, _) = point.plan_jvp(&c_dot, &a_dot, &b_dot, &krylov).unwrap();
        let via_jvp = dot(&plan_bar, &plan_dot);
        assert!(
            (fd_plan - via_vjp).abs() <= 1e-6 * fd_plan.abs().max(1e-3),
            "eps={eps}: plan VJP {via_vjp:e} vs FD {fd_plan:e}"
        );
        assert!(
            (fd_plan - via_jvp).abs() <= 1e-6 * fd_plan.abs().max(1e-3),
            "eps={eps}: plan JVP {via_jvp:e} vs FD {fd_plan:e}"
        );
        assert!(
            (via_vjp - via_jvp).abs() <= 1e-10 * via_vjp.abs().max(1e-12),
            "eps={eps}: VJP/JVP {via_vjp:e} {via_jvp:e}"
        );
    }
}

#[test]
fn tangents_must_keep_mass() {
    let (a, b, c) = problem(5, 4, 1);
    let s = solve(&a, &b, &c, 0.2);
    let point = OtPoint {
        cost: &c,
        eps: 0.2,
        f: &s.f,
        g: &s.g,
    };
    let err = point
        .plan_jvp(
            &[0.0; 20],
            &[1.0, 0.0, 0.0, 0.0, 0.0],
            &[0.0; 4],
            &KrylovOptions::default(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("equal mass"), "{err}");
    assert!(point
        .plan_vjp(&[0.0; 3], &KrylovOptions::default())
        .unwrap_err()
        .to_string()
        .contains("`plan_bar`"));
}

/// Gradients wrt C of the regularised cost and of ⟨G, P⟩ against OTT-JAX
/// (jax.grad through its Sinkhorn with implicit differentiation;
/// tests/fixtures/ot_jax.py), to 1e-6 relative.
#[test]
fn cost_gradients_match_ott_jax() {
    let all = common::fixture("ot_jax.json");
    let numbers = common::json_numbers;
    let cases = all["cases"].as_array().expect("cases");
    assert!(cases.len() >= 9, "fixture has {} cases", cases.len());
    for case in cases {
        let name = format!("{} eps={}", case["name"], case["eps"]);
        let (n, m) = (
            case["n"].as_u64().unwrap() as usize,
            case["m"].as_u64().unwrap() as usize,
        );
        let eps = case["eps"].as_f64().unwrap();
        let cost = CostMatrix::from_dense(n, m, numbers(&case["C"])).unwrap();
        let s = solve(&numbers(&case["a"]), &numbers(&case["b"]), &cost, eps);
        let point = OtPoint {
            cost: &cost,
            eps,
            f: &s.f,
            g: &s.g,
        };
        let krylov = KrylovOptions {
            rtol: 1e-13,
            ..KrylovOptions::default()
        };
        let gradient = point.cost_gradient().unwrap();
        let error = common::rel_diff(&gradient.cost, &numbers(&case["grad_reg_cost"]));
        assert!(
            error <= 1e-6,
            "{name}: reg cost gradient differs by {error:e}"
        );
        let vjp = point.plan_vjp(&numbers(&case["G"]), &krylov).unwrap();
        let error = common::rel_diff(&vjp.cost, &numbers(&case["grad_plan_dot"]));
        assert!(
            error <= 1e-6,
            "{name}: <G, P> gradient differs by {error:e}"
        );
    }
}
