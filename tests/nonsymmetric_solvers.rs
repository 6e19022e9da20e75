//! GMRES and BiCGStab against faer's sparse LU on nonsymmetric systems.

mod common;

use adjunct::{
    bicgstab, gmres, CsrMatrix, Error, FnPreconditioner, Identity, Jacobi, KrylovOptions,
    LinearOperator, Preconditioner, SolveReason,
};
use common::*;
use faer::linalg::solvers::Solve;

/// Upwind convection-diffusion −Δu + c·∇u on a k×k grid (Dirichlet), a
/// classic nonsymmetric test matrix.
fn convection_diffusion(k: usize, c: [f64; 2]) -> CsrMatrix {
    let h = 1.0 / (k + 1) as f64;
    let rows: Vec<Vec<(usize, f64)>> = (0..k * k)
        .map(|idx| {
            let (i, j) = (idx % k, idx / k);
            let mut row = Vec::new();
            let diag = 4.0 / (h * h) + (c[0].abs() + c[1].abs()) / h;
            // upwind: coefficient on the upstream neighbour
            let west = -1.0 / (h * h) - c[0].max(0.0) / h;
            let east = -1.0 / (h * h) + c[0].min(0.0) / h;
            let south = -1.0 / (h * h) - c[1].max(0.0) / h;
            let north = -1.0 / (h * h) + c[1].min(0.0) / h;
            if j > 0 {
                row.push((idx - k, south));
            }
            if i > 0 {
                row.push((idx - 1, west));
            }
            row.push((idx, diag));
            if i + 1 < k {
                row.push((idx + 1, east));
            }
            if j + 1 < k {
                row.push((idx + k, north));
            }
            row
        })
        .collect();
    csr_from_rows(&rows)
}

/// A random sparse nonsymmetric matrix with a dominant diagonal.
fn random_nonsymmetric(n: usize, per_row: usize, seed: u64) -> CsrMatrix {
    let mut rng = Rng::new(seed);
    let rows: Vec<Vec<(usize, f64)>> = (0..n)
        .map(|i| {
            let mut row: Vec<(usize, f64)> = Vec::new();
            for _ in 0..per_row {
                let j = (rng.next_u64() % n as u64) as usize;
                if j != i && !row.iter().any(|e| e.0 == j) {
                    row.push((j, rng.range(-1.0, 1.0)));
                }
            }
            let sum: f64 = row.iter().map(|e| e.1.abs()).sum();
            row.push((i, sum * rng.range(0.6, 1.4) + 0.1));
            row.sort_by_key(|e| e.0);
            row
        })
        .collect();
    csr_from_rows(&rows)
}

fn lu_solve(a: &CsrMatrix, b: &[f64]) -> Vec<f64> {
    let lu = a.as_faer().sp_lu().expect("nonsingular");
    lu.solve(faer::ColRef::from_slice(b))
        .iter()
        .copied()
        .collect()
}

fn options() -> KrylovOptions {
    KrylovOptions {
        rtol: 1e-11,
        record_history: true,
        ..KrylovOptions::default()
    }
}

fn check(a: &CsrMatrix, b: &[f64], x: &[f64], reference: &[f64], label: &str) {
    let err = rel_diff(x, reference);
    assert!(
        err < 1e-8,
        "{label}: relative error {err:e} against faer's sparse LU"
    );
    let res = residual_norm(a, x, b);
    let b_norm = b.iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!(res <= 1e-11 * b_norm * 1.0001, "{label}: residual {res:e}");
}

#[test]
fn gmres_and_bicgstab_match_sparse_lu() {
    let problems = [
        (
            "convection-diffusion 30x30",
            convection_diffusion(30, [40.0, -25.0]),
        ),
        ("random nonsymmetric n=800", random_nonsymmetric(800, 6, 5)),
    ];
    for (name, a) in &problems {
        let n = a.dim();
        let b = Rng::new(9).vector(n);
        let reference = lu_solve(a, &b);
        let jacobi = Jacobi::new(a).unwrap();
        let preconditioners: [(&str, &dyn Preconditioner); 2] =
            [("none", &Identity { dim: n }), ("jacobi", &jacobi)];
        for (pc_name, pc) in preconditioners {
            for restart in [5, 30] {
                let mut x = vec![0.0; n];
                let report = gmres(a, pc, &b, &mut x, &options(), restart)
                    .unwrap_or_else(|e| panic!("{name} {pc_name}: {e}"));
                check(
                    a,
                    &b,
                    &x,
                    &reference,
                    &format!("{name} GMRES({restart}) {pc_name}"),
                );
                assert_eq!(report.residual_history.len(), report.iterations);
                assert!(report.reason.converged());
            }
            let mut x = vec![0.0; n];
            let report = bicgstab(a, pc, &b, &mut x, &options())
                .unwrap_or_else(|e| panic!("{name} {pc_name}: {e}"));
            check(a, &b, &x, &reference, &format!("{name} BiCGStab {pc_name}"));
            assert_eq!(report.residual_history.len(), report.iterations);
        }
    }
}

#[test]
fn warm_start_and_callback_preconditioner() {
    let a = convection_diffusion(20, [10.0, 10.0]);
    let n = a.dim();
    let b = Rng::new(3).vector(n);
    let reference = lu_solve(&a, &b);
    let jacobi = Jacobi::new(&a).unwrap();
    let pc = FnPreconditioner::new(n, |r: &[f64], z: &mut [f64]| {
        jacobi.apply_dot(r, z).map(|_| ())
    });
    let mut x: Vec<f64> = reference.iter().map(|v| v * (1.0 + 1e-7)).collect();
    let warm = KrylovOptions {
        nonzero_initial_guess: true,
        ..options()
    };
    let report = gmres(&a, &pc, &b, &mut x, &warm, 20).unwrap();
    check(&a, &b, &x, &reference, "warm GMRES");
    assert!(report.initial_residual_norm < 1e-5 * b.iter().map(|v| v * v).sum::<f64>().sqrt());
    let report = bicgstab(&a, &pc, &b, &mut x, &warm).unwrap();
    assert!(report.iterations <= 3);
}

#[test]
fn failures_are_errors_with_reports() {
    let a = convection_diffusion(25, [30.0, 5.0]);
    let n = a.dim();
    let b = Rng::new(4).vector(n);
    let few = KrylovOptions {
        max_iterations: 7,
        ..options()
    };
    for result in [
        gmres(&a, &Identity { dim: n }, &b, &mut vec![0.0; n], &few, 30),
        bicgstab(&a, &Identity { dim: n }, &b, &mut vec![0.0; n], &few),
    ] {
        match result.unwrap_err() {
            Error::SolveFailed { report, .. } => {
                assert_eq!(report.reason, SolveReason::DivergedMaxIterations);
                assert_eq!(report.iterations, 7);
                assert!(report.true_residual_norm > 0.0);
            }
            other => panic!("expected SolveFailed, got {other}"),
        }
    }
    // A singular (zero) operator breaks both methods down.
    let zero = adjunct::FnOperator::new(4, |_: &[f64], y: &mut [f64]| {
        y.fill(0.0);
        Ok(())
    });
    let b = [1.0, 2.0, 3.0, 4.0];
    for result in [
        gmres(
            &zero,
            &Identity { dim: 4 },
            &b,
            &mut [0.0; 4],
            &options(),
            4,
        ),
        bicgstab(&zero, &Identity { dim: 4 }, &b, &mut [0.0; 4], &options()),
    ] {
        match result.unwrap_err() {
            Error::SolveFailed { report, .. } => {
                assert_eq!(report.reason, SolveReason::DivergedBreakdown)
            }
            other => panic!("expected a breakdown, got {other}"),
        }
    }
    assert!(gmres(
        &a,
        &Identity { dim: n },
        &vec![0.0; n],
        &mut vec![0.0; n],
        &options(),
        0
    )
    .unwrap_err()
    .to_string()
    .contains("`restart`"));
}
