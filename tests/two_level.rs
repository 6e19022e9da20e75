//! The aggregation coarse space and the two-level direction generator:
//! C r against a dense Galerkin solve built here from cell coordinates,
//! D = A⁻¹ for the exact inverse as inner generator (one iteration), D
//! symmetric for Jacobi, fewer iterations than Jacobi-PCG, a preconditioner
//! of plain CG, singular grids and bad block sizes.

mod common;

use adjunct::krylov::{
    conjugate_direction, CoarseSpace, ConjugateDirectionOptions, FnPreconditioner, Preconditioner,
    TwoLevel,
};
use adjunct::scene::PressureProblem;
use adjunct::{cg, Cell, Error, GridPoisson, Jacobi, KrylovOptions, LinearOperator};
use common::{assert_symmetric_positive, direct_solve, random_cells, rel_diff, Rng};
use faer::linalg::solvers::Solve;

fn options(rtol: f64) -> ConjugateDirectionOptions {
    ConjugateDirectionOptions {
        krylov: KrylovOptions {
            rtol,
            max_iterations: 2000,
            ..KrylovOptions::default()
        },
        ..ConjugateDirectionOptions::default()
    }
}

/// P (n × n_c, dense) from the cells' coordinates: one column per box of
/// `block`ᵈ cells that holds fluid, columns in order of first appearance.
fn dense_prolongation(a: &GridPoisson, block: usize) -> faer::Mat<f64> {
    let [nx, ny, _] = a.dims();
    let mut boxes: Vec<[usize; 3]> = Vec::new();
    let mut entries = Vec::new();
    for c in 0..a.num_cells() {
        if let Some(u) = a.unknown_of_cell(c) {
            let b = [c % nx / block, c / nx % ny / block, c / (nx * ny) / block];
            let j = boxes.iter().position(|&x| x == b).unwrap_or_else(|| {
                boxes.push(b);
                boxes.len() - 1
            });
            entries.push((u, j));
        }
    }
    let mut p = faer::Mat::<f64>::zeros(a.dim(), boxes.len());
    for (u, j) in entries {
        p[(u, j)] = 1.0;
    }
    p
}

/// The dense matrix of A.
fn dense(a: &GridPoisson) -> faer::Mat<f64> {
    let csr = a.to_csr().unwrap();
    let (ptr, cols, vals) = (csr.row_ptr(), csr.col_idx(), csr.values());
    let mut m = faer::Mat::<f64>::zeros(a.dim(), a.dim());
    for i in 0..a.dim() {
        for k in ptr[i] as usize..ptr[i + 1] as usize {
            m[(i, cols[k] as usize)] = vals[k];
        }
    }
    m
}

#[test]
fn coarse_correction_matches_a_dense_galerkin_solve() {
    for (dims, block) in [([11, 9, 7], 3), ([13, 10, 1], 4), ([9, 8, 6], 2)] {
        let cells = random_cells(dims, 0.2, dims[0] as u64);
        let a = GridPoisson::builder(dims, &cells).build().unwrap();
        let coarse = CoarseSpace::new(&a, block).unwrap();
        let p = dense_prolongation(&a, block);
        assert_eq!(coarse.aggregates(), p.ncols(), "{dims:?}");
        let ac = p.transpose() * dense(&a) * &p;
        let r = Rng::new(3).vector(a.dim());
        let rc = p.transpose() * faer::ColRef::from_slice(&r);
        let reference: Vec<f64> = (&p * ac.partial_piv_lu().solve(&rc))
            .iter()
            .copied()
            .collect();
        let mut z = vec![0.0; a.dim()];
        coarse.correct(&r, &mut z).unwrap();
        assert!(rel_diff(&z, &reference) < 1e-10, "{dims:?} block {block}");
    }
}

#[test]
fn two_level_with_the_exact_inverse_converges_in_one_iteration() {
    let problem = adjunct::scene::obstacles([14, 12, 10], 2).unwrap();
    let a = problem.operator().unwrap();
    let csr = a.to_csr().unwrap();
    let exact = FnPreconditioner::nonlinear(a.dim(), |r: &[f64], d: &mut [f64]| {
        d.copy_from_slice(&direct_solve(&csr, r));
        Ok(())
    });
    // C + (I − CA) A⁻¹ (I − AC) = A⁻¹ because C A C = C.
    let two_level = TwoLevel::new(&a, CoarseSpace::new(&a, 4).unwrap(), exact).unwrap();
    // The fitted step of the exact inverse is 1.
    assert!(
        (two_level.scale() - 1.0).abs() < 1e-10,
        "{}",
        two_level.scale()
    );
    let mut x = vec![0.0; a.dim()];
    let report =
        conjugate_direction(&a, &two_level, &problem.rhs, &mut x, &options(1e-10)).unwrap();
    assert_eq!(report.solve.iterations, 1);
    assert!(rel_diff(&x, &direct_solve(&csr, &problem.rhs)) < 1e-10);
}

/// Runs `check` on the 24³ obstacles scene with its operator, Jacobi, and
/// the two-level correction around Jacobi (4³-cell aggregates).
fn with_two_level_jacobi(
    check: impl FnOnce(&PressureProblem, &GridPoisson, &Jacobi, &TwoLevel<'_, &Jacobi>),
) {
    let problem = adjunct::scene::obstacles([24, 24, 24], 2).unwrap();
    let a = problem.operator().unwrap();
    let jacobi = Jacobi::new(&a).unwrap();
    let two_level = TwoLevel::new(&a, CoarseSpace::new(&a, 4).unwrap(), &jacobi).unwrap();
    check(&problem, &a, &jacobi, &two_level);
}

#[test]
fn two_level_jacobi_is_symmetric_and_beats_jacobi_pcg() {
    with_two_level_jacobi(|problem, a, jacobi, two_level| {
        let mut rng = Rng::new(8);
        let (u, v) = (rng.vector(a.dim()), rng.vector(a.dim()));
        // The fitted scale absorbs the inner generator's: 10 × Jacobi gives the
        // same directions.
        let ten_jacobi = FnPreconditioner::nonlinear(a.dim(), |r: &[f64], d: &mut [f64]| {
            jacobi.apply_dot(r, d)?;
            d.iter_mut().for_each(|x| *x *= 10.0);
            Ok(())
        });
        let scaled = TwoLevel::new(a, CoarseSpace::new(a, 4).unwrap(), ten_jacobi).unwrap();
        assert!((10.0 * scaled.scale() / two_level.scale() - 1.0).abs() < 1e-12);
        let (mut d1, mut d10) = (vec![0.0; a.dim()], vec![0.0; a.dim()]);
        two_level.apply_dot(&u, &mut d1).unwrap();
        scaled.apply_dot(&u, &mut d10).unwrap();
        assert!(rel_diff(&d10, &d1) < 1e-12);
        let (mut du, mut dv) = (vec![0.0; a.dim()], vec![0.0; a.dim()]);
        two_level.apply_dot(&u, &mut du).unwrap();
        two_level.apply_dot(&v, &mut dv).unwrap();
        let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f64>();
        let (vdu, udv) = (dot(&v, &du), dot(&u, &dv));
        assert!((vdu - udv).abs() <= 1e-12 * vdu.abs(), "{vdu} vs {udv}");
        assert!(dot(&u, &du) > 0.0);

        let mut x = vec![0.0; a.dim()];
        let report =
            conjugate_direction(a, two_level, &problem.rhs, &mut x, &options(1e-8)).unwrap();
        let csr = a.to_csr().unwrap();
        assert!(rel_diff(&x, &direct_solve(&csr, &problem.rhs)) < 1e-6);
        let mut y = vec![0.0; a.dim()];
        let pcg = cg(a, jacobi, &problem.rhs, &mut y, &options(1e-8).krylov).unwrap();
        assert!(
            2 * report.solve.iterations < pcg.iterations,
            "two-level {} vs Jacobi-PCG {} iterations",
            report.solve.iterations,
            pcg.iterations
        );
    });
}

#[test]
fn two_level_jacobi_preconditions_plain_cg() {
    with_two_level_jacobi(|problem, a, _, two_level| {
        assert_symmetric_positive(two_level, 1e-12, "two-level Jacobi");
        let mut x = vec![0.0; a.dim()];
        let report = cg(a, two_level, &problem.rhs, &mut x, &options(1e-8).krylov).unwrap();
        let csr = a.to_csr().unwrap();
        assert!(rel_diff(&x, &direct_solve(&csr, &problem.rhs)) < 1e-6);
        // PCG with D and the conjugate-direction method with D (k = 2) take the
        // same steps in exact arithmetic.
        let mut y = vec![0.0; a.dim()];
        let cdm = conjugate_direction(a, two_level, &problem.rhs, &mut y, &options(1e-8)).unwrap();
        assert!(
            report.iterations.abs_diff(cdm.solve.iterations) <= 1,
            "CG {} vs conjugate directions {} iterations",
            report.iterations,
            cdm.solve.iterations
        );
    });
}

#[test]
fn singular_grids_and_bad_blocks() {
    // No air: the pure-Neumann operator and its Galerkin product are
    // singular; the coarse operator is shifted and C stays finite.
    let dims = [8, 8, 8];
    let cells = vec![Cell::Fluid; 512];
    let a = GridPoisson::builder(dims, &cells).build().unwrap();
    assert!(a.is_singular());
    let coarse = CoarseSpace::new(&a, 4).unwrap();
    assert_eq!(coarse.aggregates(), 8);
    let mut r = Rng::new(2).vector(a.dim());
    let mean = r.iter().sum::<f64>() / r.len() as f64;
    r.iter_mut().for_each(|v| *v -= mean);
    let mut z = vec![0.0; a.dim()];
    coarse.correct(&r, &mut z).unwrap();
    assert!(z.iter().all(|v| v.is_finite()));

    for block in [0, 1] {
        match CoarseSpace::new(&a, block) {
            Err(Error::InvalidArgument { argument, .. }) => assert_eq!(argument, "coarse_block"),
            other => panic!("block {block}: {other:?}"),
        }
    }
    let mut short = vec![0.0; 3];
    assert!(coarse.correct(&r, &mut short).is_err());
}

#[test]
fn coarse_spaces_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<CoarseSpace>();
    let problem = adjunct::scene::obstacles([16, 12, 10], 2).unwrap();
    let a = problem.operator().unwrap();
    let coarse = CoarseSpace::new(&a, 4).unwrap();
    let mut expected = vec![0.0; a.dim()];
    coarse.correct(&problem.rhs, &mut expected).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let mut z = vec![0.0; a.dim()];
                for _ in 0..20 {
                    coarse.correct(&problem.rhs, &mut z).unwrap();
                    assert_eq!(z, expected);
                }
            });
        }
    });
}
