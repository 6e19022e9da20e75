//! The conjugate-direction method with classical direction generators:
//! the exact inverse converges in one iteration, Jacobi reproduces
//! Jacobi-PCG, and generator failures are reported.

mod common;

use adjunct::krylov::{
    conjugate_direction, ConjugateDirectionOptions, FnDirection, PreconditionerDirection,
};
use adjunct::{cg, Error, Jacobi, KrylovOptions, LinearOperator, SolveReason};
use common::{direct_solve, random_spd, rel_diff, Rng};

fn options(rtol: f64) -> ConjugateDirectionOptions {
    ConjugateDirectionOptions {
        krylov: KrylovOptions {
            rtol,
            ..KrylovOptions::default()
        },
        ..ConjugateDirectionOptions::default()
    }
}

#[test]
fn exact_inverse_converges_in_one_iteration() {
    let problem = adjunct::scene::smoke([12, 10, 9], 2).unwrap();
    let a = problem.operator().unwrap();
    let csr = a.to_csr().unwrap();
    let exact = FnDirection::new(a.dim(), |r: &[f64], d: &mut [f64]| {
        d.copy_from_slice(&direct_solve(&csr, r));
        Ok(())
    });
    let mut x = vec![0.0; a.dim()];
    let report = conjugate_direction(&a, &exact, &problem.rhs, &mut x, &options(1e-10)).unwrap();
    assert_eq!(report.solve.iterations, 1);
    assert!(report.direction_seconds > 0.0);
    assert!(rel_diff(&x, &direct_solve(&csr, &problem.rhs)) < 1e-10);
}

#[test]
fn jacobi_directions_reproduce_jacobi_pcg() {
    let a = random_spd(400, 7, 3);
    let b = Rng::new(2).vector(400);
    let jacobi = Jacobi::new(&a).unwrap();
    let mut x = vec![0.0; 400];
    let pcg = cg(&a, &jacobi, &b, &mut x, &options(1e-10).krylov).unwrap();
    for k in [1, 2, 5] {
        let mut y = vec![0.0; 400];
        let cdm = conjugate_direction(
            &a,
            &PreconditionerDirection(&jacobi),
            &b,
            &mut y,
            &ConjugateDirectionOptions {
                orthogonalize: k,
                ..options(1e-10)
            },
        )
        .unwrap();
        assert!(
            cdm.solve.iterations.abs_diff(pcg.iterations) <= 2,
            "k = {k}: {} vs PCG {}",
            cdm.solve.iterations,
            pcg.iterations
        );
        assert!(rel_diff(&y, &x) < 1e-8, "k = {k}");
    }
}

#[test]
fn generator_failures_and_bad_directions_are_reported() {
    let a = random_spd(50, 5, 1);
    let b = Rng::new(1).vector(50);
    let failing = FnDirection::new(50, |_: &[f64], _: &mut [f64]| {
        Err(Error::Callback {
            callback: "direction",
            code: 3,
        })
    });
    let mut x = vec![0.0; 50];
    match conjugate_direction(&a, &failing, &b, &mut x, &options(1e-8)) {
        Err(Error::SolveFailed { report, .. }) => {
            assert_eq!(report.reason, SolveReason::DivergedCallback)
        }
        other => panic!("{other:?}"),
    }
    let zero = FnDirection::new(50, |_: &[f64], d: &mut [f64]| {
        d.fill(0.0);
        Ok(())
    });
    let unguarded = ConjugateDirectionOptions {
        stall_cosine: 0.0,
        ..options(1e-8)
    };
    match conjugate_direction(&a, &zero, &b, &mut x, &unguarded) {
        Err(Error::SolveFailed { report, .. }) => {
            assert_eq!(report.reason, SolveReason::DivergedBreakdown)
        }
        other => panic!("{other:?}"),
    }
    // With the safeguard every step falls back to the residual: plain CG.
    let guarded = conjugate_direction(&a, &zero, &b, &mut x, &options(1e-8)).unwrap();
    assert_eq!(guarded.fallback_steps, guarded.solve.iterations);
    assert!(rel_diff(&x, &direct_solve(&a, &b)) < 1e-6);
    let wrong_size = FnDirection::new(49, |_: &[f64], _: &mut [f64]| Ok(()));
    assert!(conjugate_direction(&a, &wrong_size, &b, &mut x, &options(1e-8)).is_err());
}
