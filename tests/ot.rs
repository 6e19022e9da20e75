//! Entropic OT against POT fixtures (tests/fixtures/ot_pot.py), Sinkhorn
//! against Sinkhorn-Newton-Sparse, and the ε → 0 limit.

mod common;

use adjunct::ot::{self, CostMatrix, OtMethod, OtOptions, OtSolution};
use common::{json_numbers as numbers, Rng};

struct Fixture {
    name: String,
    n: usize,
    m: usize,
    eps: f64,
    a: Vec<f64>,
    b: Vec<f64>,
    cost: CostMatrix,
    plan: Vec<f64>,
    f: Vec<f64>,
    g: Vec<f64>,
    transport_cost: f64,
    emd2: f64,
}

fn fixtures() -> Vec<Fixture> {
    let all = common::fixture("ot_pot.json");
    all.as_array()
        .expect("list of fixtures")
        .iter()
        .map(|p| {
            let (n, m) = (
                p["n"].as_u64().unwrap() as usize,
                p["m"].as_u64().unwrap() as usize,
            );
            Fixture {
                name: p["name"].as_str().unwrap().to_string(),
                n,
                m,
                eps: p["eps"].as_f64().unwrap(),
                a: numbers(&p["a"]),
                b: numbers(&p["b"]),
                cost: CostMatrix::from_dense(n, m, numbers(&p["C"])).unwrap(),
                plan: numbers(&p["plan"]),
                f: numbers(&p["f"]),
                g: numbers(&p["g"]),
                transport_cost: p["transport_cost"].as_f64().unwrap(),
                emd2: p["emd2"].as_f64().unwrap(),
            }
        })
        .collect()
}

fn options(method: OtMethod, eps: f64, tol: f64) -> OtOptions {
    OtOptions {
        eps,
        method,
        tol,
        ..OtOptions::default()
    }
}

fn plan(cost: &CostMatrix, eps: f64, s: &OtSolution) -> Vec<f64> {
    let mut p = vec![0.0; cost.rows() * cost.cols()];
    ot::write_plan(cost, eps, &s.f, &s.g, &mut p).unwrap();
    p
}

/// ‖P₁ − P₂‖₁ between the plans of two solutions.
fn plan_l1_distance(cost: &CostMatrix, eps: f64, s1: &OtSolution, s2: &OtSolution) -> f64 {
    let (p1, p2) = (plan(cost, eps, s1), plan(cost, eps, s2));
    p1.iter().zip(&p2).map(|(x, y)| (x - y).abs()).sum()
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |a, b| a.max(b.abs()))
}

/// max |(x − c) − y| / max(|y|_∞, scale) with c the mean offset (potentials
/// are defined up to a constant).
fn potential_error(x: &[f64], y: &[f64], offset: f64, scale: f64) -> f64 {
    let d: Vec<f64> = x.iter().zip(y).map(|(x, y)| x - offset - y).collect();
    max_abs(&d) / max_abs(y).max(scale)
}

#[test]
fn matches_pot_plans_potentials_and_costs() {
    for fx in fixtures() {
        for method in [OtMethod::Sinkhorn, OtMethod::SinkhornNewtonSparse] {
            let label = format!("{} eps={} {method:?}", fx.name, fx.eps);
            let s = ot::solve(&fx.a, &fx.b, &fx.cost, &options(method, fx.eps, 1e-13))
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            let p = plan(&fx.cost, fx.eps, &s);
            let diff: Vec<f64> = p.iter().zip(&fx.plan).map(|(x, y)| x - y).collect();
            let plan_err = max_abs(&diff) / max_abs(&fx.plan);
            assert!(plan_err < 1e-8, "{label}: plan relative error {plan_err:e}");
            let offset = s.f.iter().zip(&fx.f).map(|(x, y)| x - y).sum::<f64>() / fx.n as f64;
            let ef = potential_error(&s.f, &fx.f, offset, fx.eps);
            let eg = potential_error(&s.g, &fx.g, -offset, fx.eps);
            assert!(
                ef < 1e-8 && eg < 1e-8,
                "{label}: potential errors {ef:e} {eg:e}"
            );
            let ec = (s.transport_cost - fx.transport_cost).abs() / fx.transport_cost;
            assert!(ec < 1e-8, "{label}: transport cost relative error {ec:e}");
            assert!(s.report.marginal_error <= 1e-13);
            // objective = <C,P> + eps Σ P (log P − 1), recomputed from the plan.
            let entropy: f64 = p
                .iter()
                .map(|&x| if x > 0.0 { x * (x.ln() - 1.0) } else { 0.0 })
                .sum();
            let objective = s.transport_cost + fx.eps * entropy;
            assert!(
                (s.objective - objective).abs() < 1e-10 * objective.abs().max(1.0),
                "{label}: objective"
            );
        }
    }
}

fn random_problem(n: usize, m: usize, seed: u64) -> (Vec<f64>, Vec<f64>, CostMatrix) {
    let mut rng = Rng::new(seed);
    let x: Vec<f64> = (0..2 * n).map(|_| rng.uniform()).collect();
    let y: Vec<f64> = (0..2 * m).map(|_| rng.uniform()).collect();
    let mut a: Vec<f64> = (0..n).map(|_| rng.range(0.5, 1.5)).collect();
    let mut b: Vec<f64> = (0..m).map(|_| rng.range(0.5, 1.5)).collect();
    let (sa, sb) = (a.iter().sum::<f64>(), b.iter().sum::<f64>());
    a.iter_mut().for_each(|v| *v /= sa);
    b.iter_mut().for_each(|v| *v /= sb);
    let c = CostMatrix::squared_euclidean(&x, &y, 2).unwrap();
    let scale = c.max_abs();
    let c = CostMatrix::from_dense(n, m, c.values().iter().map(|v| v / scale).collect()).unwrap();
    (a, b, c)
}

#[test]
fn sinkhorn_and_sns_agree_including_tiny_eps() {
    for (n, m, eps, seed) in [(30, 40, 0.05, 1), (50, 50, 0.01, 2), (40, 25, 2e-3, 3)] {
        let (a, b, c) = random_problem(n, m, seed);
        if eps < 1.0 / 700.0 {
            // exp(−C/ε) underflows to 0 for most entries: plain exp-domain
            // Sinkhorn would divide by zero here.
            assert!(
                c.values()
                    .iter()
                    .filter(|v| (-*v / eps).exp() == 0.0)
                    .count()
                    > n * m / 4
            );
        }
        let tol = 1e-10;
        let sk = ot::solve(&a, &b, &c, &options(OtMethod::Sinkhorn, eps, tol)).unwrap();
        let sns = ot::solve(
            &a,
            &b,
            &c,
            &options(OtMethod::SinkhornNewtonSparse, eps, tol),
        )
        .unwrap();
        let l1 = plan_l1_distance(&c, eps, &sk, &sns);
        assert!(l1 < 1e-7, "n={n} eps={eps}: plans differ by {l1:e} in l1");
        assert!(
            (sk.transport_cost - sns.transport_cost).abs() < 1e-8,
            "costs"
        );
        assert!(sns.report.newton_iterations > 0);
        assert!(
            sns.report.sinkhorn_iterations < sk.report.sinkhorn_iterations,
            "eps={eps}: SNS used {} Sinkhorn iterations, Sinkhorn alone {}",
            sns.report.sinkhorn_iterations,
            sk.report.sinkhorn_iterations
        );
    }
}

/// SNS hands over to Sinkhorn where Sinkhorn is the faster finish: after a
/// warm-up that predicts fast convergence (large ε: Sinkhorn alone takes 23
/// iterations here), and when Newton steps with a Hessian capped far too
/// sparse converge only linearly.
#[test]
fn sns_finishes_with_sinkhorn_where_sinkhorn_is_faster() {
    let (a, b, c) = random_problem(60, 50, 5);
    let tol = 1e-10;
    let agree = |eps: f64, sns: &OtSolution| {
        let sk = ot::solve(&a, &b, &c, &options(OtMethod::Sinkhorn, eps, tol)).unwrap();
        let l1 = plan_l1_distance(&c, eps, &sk, sns);
        assert!(l1 < 1e-8, "eps={eps}: plans differ by {l1:e} in l1");
        sk.report.sinkhorn_iterations
    };
    let eps = 0.1;
    let sns = ot::solve(
        &a,
        &b,
        &c,
        &options(OtMethod::SinkhornNewtonSparse, eps, tol),
    )
    .unwrap();
    let sinkhorn_alone = agree(eps, &sns);
    assert_eq!(sns.report.newton_iterations, 0, "{:?}", sns.report);
    assert!(sns.report.sinkhorn_iterations <= sinkhorn_alone + 1);

    let eps = 0.05;
    let capped = OtOptions {
        hessian_entries_per_row: 1,
        max_hessian_entries_per_row: 1,
        ..options(OtMethod::SinkhornNewtonSparse, eps, tol)
    };
    let sns = ot::solve(&a, &b, &c, &capped).unwrap();
    agree(eps, &sns);
    assert!(
        sns.report.newton_iterations <= 20,
        "stalled Newton kept going: {:?}",
        sns.report
    );
}

#[test]
fn stable_at_eps_1e4_times_max_cost() {
    // exp(−C/ε) underflows for every C > 0.07 here; the log domain keeps
    // the plan's mass exact and finite.
    let (a, b, c) = random_problem(60, 45, 17);
    let eps = 1e-4 * c.max_abs();
    let s = ot::solve(
        &a,
        &b,
        &c,
        &options(OtMethod::SinkhornNewtonSparse, eps, 1e-9),
    )
    .unwrap();
    let p = plan(&c, eps, &s);
    assert!(p.iter().all(|v| v.is_finite() && *v >= 0.0));
    let rows: Vec<f64> = p.chunks(45).map(|r| r.iter().sum()).collect();
    let err: f64 = rows.iter().zip(&a).map(|(r, a)| (r - a).abs()).sum::<f64>()
        + (0..45)
            .map(|j| ((0..60).map(|i| p[i * 45 + j]).sum::<f64>() - b[j]).abs())
            .sum::<f64>();
    assert!(err <= 1e-9 * 1.001, "recomputed marginal error {err:e}");
    assert!(
        (p.iter().sum::<f64>() - 1.0).abs() < 1e-9,
        "no loss of mass"
    );
    assert!(s.objective.is_finite() && s.transport_cost.is_finite());
}

#[test]
fn cost_converges_to_exact_ot_as_eps_decreases() {
    let fx = fixtures()
        .into_iter()
        .find(|f| f.name == "rect_20x30_l1")
        .unwrap();
    let mut gaps = Vec::new();
    for eps in [0.1, 0.03, 0.01, 3e-3, 1e-3] {
        let s = ot::solve(
            &fx.a,
            &fx.b,
            &fx.cost,
            &options(OtMethod::SinkhornNewtonSparse, eps, 1e-10),
        )
        .unwrap();
        let gap = s.transport_cost - fx.emd2;
        // 0 ≤ <C,P_eps> − OT ≤ eps·log(n·m) (entropic bias bound).
        assert!(
            gap > -1e-9 && gap <= eps * ((fx.n * fx.m) as f64).ln(),
            "eps={eps}: gap {gap:e}"
        );
        gaps.push(gap);
    }
    assert!(
        gaps.windows(2).all(|w| w[1] < w[0]),
        "gaps must shrink: {gaps:?}"
    );
    assert!(
        gaps[4] < 1e-3 * fx.emd2.max(1e-3),
        "gap at eps = 1e-3: {:e}",
        gaps[4]
    );
}

#[test]
fn cost_builders() {
    let x = [0.0, 0.0, 1.0, 2.0];
    let y = [3.0, 4.0, -1.0, 0.5, 2.0, 2.0];
    let sq = CostMatrix::squared_euclidean(&x, &y, 2).unwrap();
    assert_eq!((sq.rows(), sq.cols()), (2, 3));
    assert_eq!(sq.values(), &[25.0, 1.25, 8.0, 8.0, 6.25, 1.0]);
    let l1 = CostMatrix::p_norm(&x, &y, 2, 1.0).unwrap();
    assert_eq!(l1.values(), &[7.0, 1.5, 4.0, 4.0, 3.5, 1.0]);
    let p3 = CostMatrix::p_norm(&x, &y, 2, 3.0).unwrap();
    assert!((p3.values()[0] - (27.0 + 64.0)).abs() < 1e-12);
    assert!(CostMatrix::p_norm(&x, &y, 2, 0.5)
        .unwrap_err()
        .to_string()
        .contains("`p`"));
    assert!(CostMatrix::squared_euclidean(&x, &y[..5], 2)
        .unwrap_err()
        .to_string()
        .contains("`y`"));
    assert!(CostMatrix::from_dense(1, 2, vec![0.0, f64::NAN])
        .unwrap_err()
        .to_string()
        .contains("`cost`"));
}

#[test]
fn invalid_problems_are_rejected() {
    let (a, b, c) = random_problem(5, 4, 9);
    let err = |a: &[f64], b: &[f64], o: OtOptions| ot::solve(a, b, &c, &o).unwrap_err().to_string();
    let o = OtOptions::default();
    let mut b2 = b.clone();
    b2[0] *= 2.0;
    assert!(err(&a, &b2, o.clone()).contains("equal mass"));
    let mut a0 = a.clone();
    a0[1] = 0.0;
    assert!(err(&a0, &b, o.clone()).contains("`a`"));
    assert!(err(&a[..4], &b, o.clone()).contains("`a`"));
    assert!(err(
        &a,
        &b,
        OtOptions {
            eps: 0.0,
            ..o.clone()
        }
    )
    .contains("`eps`"));
    let fail = ot::solve(
        &a,
        &b,
        &c,
        &OtOptions {
            method: OtMethod::Sinkhorn,
            eps: 1e-3,
            max_sinkhorn_iterations: 2,
            ..o
        },
    )
    .unwrap_err();
    assert!(
        matches!(fail, adjunct::Error::NotConverged { .. }),
        "{fail}"
    );
}
