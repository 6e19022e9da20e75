//! CG solutions checked against faer's sparse Cholesky.

mod common;

use adjunct::{
    cg, scene, FnOperator, FnPreconditioner, GridPoisson, Ic0, Identity, Jacobi, KrylovOptions,
    LinearOperator, Preconditioner, SolveReason,
};
use common::*;

fn tight() -> KrylovOptions {
    KrylovOptions {
        rtol: 1e-12,
        record_history: true,
        ..KrylovOptions::default()
    }
}

/// Solves with `m` and checks the solution against the direct solve, the
/// reported true residual against a recomputation, and the history length.
fn check_against_direct(
    a: &adjunct::CsrMatrix,
    op: &dyn LinearOperator,
    m: &dyn Preconditioner,
    b: &[f64],
    label: &str,
) -> usize {
    let reference = direct_solve(a, b);
    let mut x = vec![0.0; b.len()];
    let report = cg(op, m, b, &mut x, &tight()).unwrap_or_else(|e| panic!("{label}: {e}"));
    let err = rel_diff(&x, &reference);
    assert!(
        err < 1e-8,
        "{label}: relative error {err:e} vs direct solve"
    );
    let res = residual_norm(a, &x, b);
    let b_norm = b.iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!(
        (report.true_residual_norm - res).abs() <= 1e-6 * res.max(1e-300) + 1e-15 * b_norm,
        "{label}: reported true residual {:e}, recomputed {res:e}",
        report.true_residual_norm
    );
    assert!(
        res <= 1e-12 * b_norm,
        "{label}: residual {res:e} above the tolerance"
    );
    assert_eq!(
        report.residual_history.len(),
        report.iterations,
        "{label}: one history entry per iteration"
    );
    assert!(report.reason.converged());
    report.iterations
}

#[test]
fn random_spd_matrices_match_direct_solve() {
    for (seed, n, per_row) in [(1, 50, 4), (2, 400, 8), (3, 1500, 12)] {
        let a = random_spd(n, per_row, seed);
        let b = Rng::new(seed + 100).vector(n);
        let label = format!("n={n} seed={seed}");
        check_against_direct(&a, &a, &Identity { dim: n }, &b, &format!("{label} none"));
        check_against_direct(
            &a,
            &a,
            &Jacobi::new(&a).unwrap(),
            &b,
            &format!("{label} jacobi"),
        );
        check_against_direct(&a, &a, &Ic0::new(&a).unwrap(), &b, &format!("{label} ic0"));
    }
}

#[test]
fn grid_problems_match_direct_solve() {
    // 2D with face coefficients and anisotropic spacing, 3D smoke scene, 3D random solids.
    let mut rng = Rng::new(7);
    let dims2 = [37, 23, 1];
    let cells2 = random_cells(dims2, 0.1, 11);
    let beta: Vec<f64> = (0..2 * 37 * 23).map(|_| rng.range(0.1, 10.0)).collect();
    let g2 = GridPoisson::builder(dims2, &cells2)
        .spacing([0.5, 0.25, 1.0])
        .face_coefficients(&beta)
        .build()
        .unwrap();
    let smoke = scene::smoke([20, 18, 16], 2).unwrap();
    let g3 = smoke.operator().unwrap();
    let cells3 = random_cells([14, 11, 9], 0.25, 5);
    let g3r = GridPoisson::builder([14, 11, 9], &cells3).build().unwrap();
    for (label, g, b) in [
        ("2d", &g2, rng.vector(g2.dim())),
        ("3d smoke", &g3, smoke.rhs.clone()),
        ("3d random", &g3r, rng.vector(g3r.dim())),
    ] {
        assert!(
            !g.is_singular(),
            "{label}: every fluid region of these scenes touches air"
        );
        let a = g.to_csr().unwrap();
        check_against_direct(
            &a,
            g,
            &Identity { dim: g.dim() },
            &b,
            &format!("{label} none"),
        );
        check_against_direct(
            &a,
            g,
            &Jacobi::new(g).unwrap(),
            &b,
            &format!("{label} jacobi"),
        );
        let ic_iters =
            check_against_direct(&a, g, &Ic0::new(&a).unwrap(), &b, &format!("{label} ic0"));
        let plain_iters = cg(
            g,
            &Identity { dim: g.dim() },
            &b,
            &mut vec![0.0; g.dim()],
            &tight(),
        )
        .unwrap()
        .iterations;
        assert!(
            ic_iters < plain_iters,
            "{label}: IC(0) should cut iterations ({ic_iters} vs {plain_iters})"
        );
    }
}

#[test]
fn callback_operator_and_preconditioner_match_csr() {
    let a = random_spd(300, 6, 21);
    let b = Rng::new(22).vector(300);
    let op = FnOperator::new(300, |x: &[f64], y: &mut [f64]| a.apply(x, y));
    let jacobi = Jacobi::new(&a).unwrap();
    let m = FnPreconditioner::new(300, |r: &[f64], z: &mut [f64]| {
        jacobi.apply_dot(r, z).map(|_| ())
    });
    check_against_direct(&a, &op, &m, &b, "callbacks");
}

#[test]
fn nonzero_initial_guess_is_used() {
    let a = random_spd(500, 8, 31);
    let b = Rng::new(32).vector(500);
    let reference = direct_solve(&a, &b);
    let mut x: Vec<f64> = reference.iter().map(|v| v * (1.0 + 1e-6)).collect();
    let options = KrylovOptions {
        nonzero_initial_guess: true,
        ..tight()
    };
    let warm = cg(&a, &Identity { dim: 500 }, &b, &mut x, &options).unwrap();
    assert!(rel_diff(&x, &reference) < 1e-8);
    let cold = cg(
        &a,
        &Identity { dim: 500 },
        &b,
        &mut vec![0.0; 500],
        &tight(),
    )
    .unwrap();
    assert!(
        warm.iterations < cold.iterations,
        "warm {} vs cold {}",
        warm.iterations,
        cold.iterations
    );
    assert!(warm.initial_residual_norm < 1e-4 * cold.initial_residual_norm);
}

#[test]
fn atol_and_zero_rhs() {
    let a = random_spd(100, 4, 41);
    let mut x = vec![1.0; 100];
    let report = cg(
        &a,
        &Identity { dim: 100 },
        &[0.0; 100],
        &mut x,
        &KrylovOptions::default(),
    )
    .unwrap();
    assert_eq!(report.iterations, 0);
    assert!(x.iter().all(|&v| v == 0.0), "b = 0 gives x = 0");
    let b = Rng::new(42).vector(100);
    let options = KrylovOptions {
        rtol: 0.0,
        atol: 1e-6,
        ..KrylovOptions::default()
    };
    let report = cg(&a, &Identity { dim: 100 }, &b, &mut x, &options).unwrap();
    assert_eq!(report.reason, SolveReason::ConvergedAtol);
    assert!(residual_norm(&a, &x, &b) <= 1e-6);
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let problem = scene::smoke([48, 40, 36], 2).unwrap();
    let g = problem.operator().unwrap();
    let solve = |threads| {
        adjunct::set_num_threads(threads).unwrap();
        let mut x = vec![0.0; g.dim()];
        let report = cg(
            &g,
            &Jacobi::new(&g).unwrap(),
            &problem.rhs,
            &mut x,
            &KrylovOptions::default(),
        )
        .unwrap();
        (x, report.iterations)
    };
    let (x1, it1) = solve(1);
    let (x3, it3) = solve(3);
    adjunct::set_num_threads(0).unwrap();
    assert_eq!(it1, it3);
    assert!(x1 == x3, "solutions differ between 1 and 3 threads");
}

/// The single-reduction (Chronopoulos–Gear) CG in serial: same solution as
/// a direct solve, iteration count within a few of the classic CG.
#[test]
fn single_reduction_cg_matches_classic_cg() {
    use adjunct::krylov::cg_single_reduction;
    let a = common::random_spd(300, 7, 21);
    let b = common::Rng::new(5).vector(300);
    let options = KrylovOptions {
        rtol: 1e-10,
        ..KrylovOptions::default()
    };
    let jacobi = Jacobi::new(&a).unwrap();
    let mut x = vec![0.0; 300];
    let classic = cg(&a, &jacobi, &b, &mut x, &options).unwrap();
    let mut y = vec![0.0; 300];
    let single = cg_single_reduction(&a, &jacobi, &b, &mut y, &options, None).unwrap();
    assert!(single.relative_residual <= 1e-10);
    assert!(common::rel_diff(&y, &common::direct_solve(&a, &b)) < 1e-7);
    assert!(
        single.iterations.abs_diff(classic.iterations) <= 3,
        "{} vs {}",
        single.iterations,
        classic.iterations
    );
    // A reduction callback sees one call per iteration plus two.
    let calls = std::cell::Cell::new(0usize);
    let count = |_: &mut [f64]| {
        calls.set(calls.get() + 1);
        Ok(())
    };
    let report = cg_single_reduction(&a, &jacobi, &b, &mut y, &options, Some(&count)).unwrap();
    assert_eq!(calls.get(), report.iterations + 2);
}
