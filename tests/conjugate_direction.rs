//! The conjugate-direction method with classical direction generators:
//! the exact inverse converges in one iteration, Jacobi reproduces
//! Jacobi-PCG, and generator failures are reported.

mod common;

use adjunct::krylov::{conjugate_direction, ConjugateDirectionOptions, FnPreconditioner};
use adjunct::{cg, Error, Jacobi, KrylovOptions, LinearOperator, Preconditioner, SolveReason};
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
    let exact = FnPreconditioner::nonlinear(a.dim(), |r: &[f64], d: &mut [f64]| {
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
            &jacobi,
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
    let failing = FnPreconditioner::nonlinear(50, |_: &[f64], _: &mut [f64]| {
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
    let zero = FnPreconditioner::nonlinear(50, |_: &[f64], d: &mut [f64]| {
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
    let wrong_size = FnPreconditioner::nonlinear(49, |_: &[f64], _: &mut [f64]| Ok(()));
    assert!(conjugate_direction(&a, &wrong_size, &b, &mut x, &options(1e-8)).is_err());
}

/// One r ↦ d abstraction: a map marked nonlinear (or a direction network)
/// gives the conjugate-direction method its directions, and CG refuses it
/// naming `precond` instead of running a preconditioned CG whose theory
/// does not hold.
#[test]
fn cg_refuses_a_nonlinear_map_that_the_conjugate_direction_method_takes() {
    let problem = adjunct::scene::obstacles([40, 36, 1], 3).unwrap();
    let a = problem.operator().unwrap();
    let jacobi = Jacobi::new(&a).unwrap();
    let nonlinear = FnPreconditioner::nonlinear(a.dim(), |r: &[f64], d: &mut [f64]| {
        jacobi.apply_dot(r, d).map(|_| ())
    });
    let model = adjunct::learned::Model::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/cdm_2d.safetensors"
    )))
    .unwrap();
    let network = adjunct::learned::NetworkDirection::new(&a, &model.network).unwrap();
    let maps: [&dyn Preconditioner; 2] = [&nonlinear, &network];
    for map in maps {
        let mut x = vec![0.0; a.dim()];
        match cg(&a, map, &problem.rhs, &mut x, &options(1e-8).krylov) {
            Err(Error::InvalidArgument { argument, message }) => {
                assert_eq!(argument, "precond");
                assert!(message.contains("conjugate-direction"), "{message}");
            }
            other => panic!("CG took a nonlinear preconditioner: {other:?}"),
        }
        let report = conjugate_direction(&a, map, &problem.rhs, &mut x, &options(1e-8)).unwrap();
        assert!(report.solve.reason.converged());
        assert!(rel_diff(&x, &direct_solve(&a.to_csr().unwrap(), &problem.rhs)) < 1e-6);
    }
}

/// The solver builder is the policy `adj_cdm_solve` used to hold: with the
/// two-level correction it takes exactly the steps of the assembled
/// `TwoLevel` around the same map, the correction a model file asks for is
/// the default, and settings that need a grid name what needs it.
#[test]
fn the_solver_builder_takes_the_steps_of_the_assembled_generator() {
    use adjunct::krylov::{CoarseSpace, TwoLevel};
    use adjunct::learned::{
        AnyModel, CoarseCorrection, ConjugateDirectionSolver, Directions, NetworkDirection,
    };
    let problem = adjunct::scene::obstacles([48, 40, 1], 5).unwrap();
    let a = problem.operator().unwrap();
    let jacobi = Jacobi::new(&a).unwrap();
    let two_level = TwoLevel::new(&a, CoarseSpace::new(&a, 4).unwrap(), &jacobi).unwrap();
    let mut expected = vec![0.0; a.dim()];
    let assembled =
        conjugate_direction(&a, &two_level, &problem.rhs, &mut expected, &options(1e-9)).unwrap();
    let mut x = vec![0.0; a.dim()];
    let built = ConjugateDirectionSolver::new(Directions::Map(&jacobi))
        .coarse_correction(CoarseCorrection::Blocks(4))
        .options(options(1e-9))
        .solve(&a, &problem.rhs, &mut x)
        .unwrap();
    assert_eq!(built.solve.iterations, assembled.solve.iterations);
    assert_eq!(x, expected);

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/cdm_2d.safetensors");
    let model = AnyModel::load(std::path::Path::new(path)).unwrap();
    let AnyModel::Directions(network) = &model else {
        panic!("cdm_2d is a direction network")
    };
    assert!(
        network.coarse_block >= 2,
        "the shipped model asks for the correction"
    );
    let by_file = NetworkDirection::for_model(&a, network).unwrap();
    let mut expected = vec![0.0; a.dim()];
    let assembled =
        conjugate_direction(&a, &by_file, &problem.rhs, &mut expected, &options(1e-8)).unwrap();
    let mut x = vec![0.0; a.dim()];
    let built = ConjugateDirectionSolver::new(Directions::Model(&model))
        .options(options(1e-8))
        .solve(&a, &problem.rhs, &mut x)
        .unwrap();
    assert_eq!(built.solve.iterations, assembled.solve.iterations);
    assert_eq!(x, expected);

    let csr = a.to_csr().unwrap();
    let refusals = [
        (Directions::Model(&model), CoarseCorrection::Off, "op"),
        (
            Directions::Map(&jacobi),
            CoarseCorrection::Blocks(4),
            "coarse_block",
        ),
    ];
    for (directions, coarse, named) in refusals {
        let err = ConjugateDirectionSolver::new(directions)
            .coarse_correction(coarse)
            .solve(&csr, &problem.rhs, &mut x)
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument { argument, .. } if argument == named),
            "{err:?}"
        );
    }
}
