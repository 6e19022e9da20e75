//! The geometric multigrid preconditioner: symmetric and positive on random
//! vectors for hard domains, MGPCG solutions against a faer direct solve
//! (with rediscretised and with lumped Galerkin coarse levels), and
//! iteration counts that stay nearly flat as the grid grows.

mod common;

use adjunct::krylov::{CoarseOperators, Multigrid, MultigridOptions, Precision, Schedule};
use adjunct::{cg, scene, Cell, GridPoisson, KrylovOptions, LinearOperator, Preconditioner};
use common::{assert_symmetric_positive, direct_solve, init, init_uninit, rel_diff, Rng};

/// Walls of solid cells cut the domain into thin channels (2 cells wide),
/// open to the air only at the top.
fn channels(dims: [usize; 3]) -> Vec<Cell> {
    let [nx, ny, nz] = dims;
    let up = if nz > 1 { 2 } else { 1 };
    (0..nx * ny * nz)
        .map(|c| {
            let p = [c % nx, (c / nx) % ny, c / (nx * ny)];
            if p[up] + 1 == dims[up] {
                Cell::Air
            } else if p[0] % 3 == 2 && p[up] > 0 {
                Cell::Solid
            } else {
                Cell::Fluid
            }
        })
        .collect()
}

/// A closed box with only `k` air cells in one corner of the top layer.
fn few_air(dims: [usize; 3], k: usize) -> Vec<Cell> {
    let mut cells = vec![Cell::Fluid; dims[0] * dims[1] * dims[2]];
    let top = if dims[2] > 1 {
        dims[0] * dims[1] * (dims[2] - 1)
    } else {
        dims[0] * (dims[1] - 1)
    };
    for c in cells.iter_mut().skip(top).take(k) {
        *c = Cell::Air;
    }
    cells
}

/// Options that force several levels on the small test domains.
fn deep() -> MultigridOptions {
    MultigridOptions {
        coarsest_unknowns: 40,
        ..MultigridOptions::default()
    }
}

fn domains() -> Vec<(String, GridPoisson)> {
    let mut out = Vec::new();
    for dims in [[33, 29, 1], [17, 14, 12]] {
        // The first seed whose random solids enclose no fluid region.
        let random = (0..100)
            .map(|seed| common::random_cells(dims, 0.2, seed))
            .find(|cells| {
                !GridPoisson::builder(dims, cells)
                    .build()
                    .unwrap()
                    .is_singular()
            })
            .expect("a seed without enclosed regions");
        for (name, cells) in [
            ("random solids", random),
            ("thin channels", channels(dims)),
            ("two air cells", few_air(dims, 2)),
        ] {
            let g = GridPoisson::builder(dims, &cells)
                .spacing([0.1, 0.1, 0.1])
                .build()
                .unwrap();
            assert!(!g.is_singular(), "{name}: every region must touch air");
            out.push((format!("{name} {dims:?}"), g));
        }
    }
    // Per-face coefficients (density ratio 1000 across a horizontal interface).
    let dims = [24, 20, 1];
    let cells = common::random_cells(dims, 0.0, 8);
    let beta: Vec<f64> = (0..2 * dims[0] * dims[1])
        .map(|k| {
            if (k % (dims[0] * dims[1])) / dims[0] < 10 {
                1.0
            } else {
                1e-3
            }
        })
        .collect();
    let g = GridPoisson::builder(dims, &cells)
        .face_coefficients(&beta)
        .build()
        .unwrap();
    out.push(("face coefficients 1e3 contrast".into(), g));
    out
}

#[test]
fn preconditioner_is_symmetric_and_positive() {
    // Symmetric to rounding: of f64, or of f32 in a single-precision cycle.
    for (precision, tolerance) in [(Precision::Double, 1e-12), (Precision::Single, 1e-5)] {
        preconditioner_is_symmetric_and_positive_in(precision, tolerance);
    }
}

/// The coarse operators every domain is tried with.
const COARSE_OPERATORS: [CoarseOperators; 3] = [
    CoarseOperators::Automatic,
    CoarseOperators::LumpedGalerkin,
    CoarseOperators::AxisGalerkin,
];

fn preconditioner_is_symmetric_and_positive_in(precision: Precision, tolerance: f64) {
    for (name, g) in domains() {
        for coarse_operators in COARSE_OPERATORS {
            let options = MultigridOptions {
                precision,
                coarse_operators,
                ..deep()
            };
            let mg = Multigrid::new(&g, &options).unwrap();
            assert!(mg.level_dims().len() >= 3, "{name}: {:?}", mg.level_dims());
            let label = format!("{name}, {precision:?}, {coarse_operators:?}");
            assert_symmetric_positive(&mg, tolerance, &label);
        }
    }
}

#[test]
fn mgpcg_matches_a_direct_solve() {
    for ((name, g), coarse_operators) in domains()
        .into_iter()
        .flat_map(|d| COARSE_OPERATORS.map(|c| (d.clone(), c)))
    {
        let name = format!("{name}, {coarse_operators:?}");
        let options = MultigridOptions {
            coarse_operators,
            ..deep()
        };
        let mg = Multigrid::new(&g, &options).unwrap();
        assert!(mg.level_dims().len() >= 3, "{name}: {:?}", mg.level_dims());
        let b = Rng::new(3).vector(g.dim());
        let mut x = vec![0.0; g.dim()];
        let options = KrylovOptions {
            rtol: 1e-11,
            max_iterations: 200,
            ..KrylovOptions::default()
        };
        let report = cg(&g, &mg, &b, &mut x, &options).unwrap_or_else(|e| panic!("{name}: {e}"));
        let reference = direct_solve(&g.to_csr().unwrap(), &b);
        let error = rel_diff(&x, &reference);
        assert!(
            error < 1e-8,
            "{name}: error {error:e} after {} its",
            report.iterations
        );
        eprintln!("{name}: {} MGPCG iterations to 1e-11", report.iterations);
    }
}

/// MGPCG iterations to the default tolerance on held-out
/// `scene::obstacles` with 2 air layers, Chebyshev smoothing (ν = 4) and
/// `coarse_operators`.
fn obstacle_iterations(dims: [usize; 3], coarse_operators: CoarseOperators) -> usize {
    let problem = scene::obstacles(dims, 2).unwrap();
    let a = problem.operator().unwrap();
    let options = MultigridOptions {
        coarse_operators,
        schedule: Some(Schedule::chebyshev(4, 0.3)),
        ..MultigridOptions::default()
    };
    let mg = Multigrid::new(&a, &options).unwrap();
    let mut x = vec![0.0; a.dim()];
    let report = cg(&a, &mg, &problem.rhs, &mut x, &KrylovOptions::default()).unwrap();
    report.iterations
}

/// At obstacles and air the lumped Galerkin levels know the cut cells the
/// rediscretised ones coarsen away: 6–7 iterations instead of 7–8
/// (measured).
#[test]
fn lumped_galerkin_levels_save_iterations_at_obstacles_and_air() {
    for dims in [[96, 96, 1], [40, 40, 40]] {
        let lumped = obstacle_iterations(dims, CoarseOperators::LumpedGalerkin);
        let rediscretised = obstacle_iterations(dims, CoarseOperators::Rediscretized);
        assert!(
            lumped < rediscretised,
            "{dims:?}: lumped {lumped}, rediscretised {rediscretised}"
        );
    }
}

/// So do the axis-Galerkin levels, with 2 iterations to spare: 6 instead
/// of 8 (measured).
#[test]
fn axis_galerkin_levels_save_two_iterations_at_obstacles_and_air() {
    for dims in [[256, 256, 1], [64, 64, 64]] {
        let axis = obstacle_iterations(dims, CoarseOperators::AxisGalerkin);
        let rediscretised = obstacle_iterations(dims, CoarseOperators::Rediscretized);
        assert!(
            axis + 2 <= rediscretised,
            "{dims:?}: axis-Galerkin {axis}, rediscretised {rediscretised}"
        );
    }
}

#[test]
fn iteration_counts_stay_nearly_flat_as_the_grid_grows() {
    let mut counts = Vec::new();
    for n in [16, 32, 64] {
        let problem = scene::smoke([n, n, n], 2).unwrap();
        let a = problem.operator().unwrap();
        let mg = Multigrid::new(&a, &MultigridOptions::default()).unwrap();
        let mut x = vec![0.0; a.dim()];
        let options = KrylovOptions::default();
        let report = cg(&a, &mg, &problem.rhs, &mut x, &options).unwrap();
        assert!(report.relative_residual <= 1e-8);
        counts.push((n, report.iterations, mg.level_dims().len()));
    }
    let (first, last) = (counts[0].1, counts[2].1);
    assert!(
        last <= first + 6,
        "MGPCG iterations grow too fast: {counts:?} (n, iterations, levels)"
    );
    eprintln!("MGPCG iterations (n, iterations, levels): {counts:?}");
}

#[test]
fn bad_options_are_rejected() {
    let problem = scene::smoke([8, 8, 8], 2).unwrap();
    let a = problem.operator().unwrap();
    for (options, argument) in [
        (
            MultigridOptions {
                damping: 1.5,
                ..MultigridOptions::default()
            },
            "damping",
        ),
        (
            MultigridOptions {
                smoothing_sweeps: 0,
                ..MultigridOptions::default()
            },
            "smoothing_sweeps",
        ),
        (
            MultigridOptions {
                coarsest_unknowns: 100_000,
                ..MultigridOptions::default()
            },
            "coarsest_unknowns",
        ),
        (
            MultigridOptions {
                sweep_doublings: 7,
                ..MultigridOptions::default()
            },
            "sweep_doublings",
        ),
        (
            MultigridOptions {
                smoothing_sweeps: 300,
                sweep_doublings: 2,
                ..MultigridOptions::default()
            },
            "smoothing_sweeps",
        ),
    ] {
        let e = Multigrid::new(&a, &options).unwrap_err().to_string();
        assert!(e.contains(argument), "{e}");
    }
    let mg = Multigrid::new(&a, &MultigridOptions::default()).unwrap();
    let mut z = vec![0.0; 3];
    assert!(mg.apply_dot(&[1.0; 3], &mut z).is_err());
}

#[test]
fn multigrid_through_the_c_abi() {
    use adjunct::ffi::*;
    use std::ptr::{null, null_mut};
    let problem = scene::smoke([20, 18, 16], 2).unwrap();
    let codes: Vec<u8> = problem.cells.iter().map(|&c| c as u8).collect();
    let spacing = [problem.spacing; 3];
    let (mut op, mut pc) = (null_mut(), null_mut());
    // SAFETY: arrays of the documented sizes; handles freed below.
    unsafe {
        let s = adj_operator_new_grid_poisson(
            20,
            18,
            16,
            codes.as_ptr(),
            spacing.as_ptr(),
            null(),
            &mut op,
        );
        assert_eq!(s, adj_status::ADJ_OK);
        assert_eq!(
            adj_precond_new(op, adj_precond_kind::ADJ_PRECOND_MULTIGRID as u32, &mut pc),
            adj_status::ADJ_OK
        );
        let n = problem.rhs.len();
        let mut x = vec![0.0; n];
        let mut options = init(adj_cg_options_init);
        options.rtol = 1e-10;
        let mut report = init_uninit(adj_solve_report_init);
        let s = adj_cg_solve(
            op,
            pc,
            problem.rhs.as_ptr(),
            x.as_mut_ptr(),
            n,
            &options,
            report.as_mut_ptr(),
        );
        assert_eq!(s, adj_status::ADJ_OK);
        assert!(report.assume_init().iterations < 30);
        let a = problem.operator().unwrap().to_csr().unwrap();
        assert!(rel_diff(&x, &direct_solve(&a, &problem.rhs)) < 1e-8);
        adj_precond_free(pc);

        // A CSR operator has no grid to coarsen.
        let (ptr, cols, vals) = ([0i32, 1, 2], [0i32, 1], [2.0, 2.0]);
        let mut csr = null_mut();
        let s =
            adj_operator_new_csr_i32(2, 2, ptr.as_ptr(), cols.as_ptr(), vals.as_ptr(), &mut csr);
        assert_eq!(s, adj_status::ADJ_OK);
        let mut pc = null_mut();
        assert_eq!(
            adj_precond_new(csr, adj_precond_kind::ADJ_PRECOND_MULTIGRID as u32, &mut pc),
            adj_status::ADJ_ERR_INVALID_ARGUMENT
        );
        let message = std::ffi::CStr::from_ptr(adj_last_error_message()).to_string_lossy();
        assert!(message.contains("grid"), "{message}");
        assert!(pc.is_null());
        adj_operator_free(csr);
        adj_operator_free(op);
    }
}

/// A hierarchy updated in place for another frame's operator (other cells,
/// another size, fewer levels) applies exactly as one built afresh, in both
/// precisions.
#[test]
fn an_updated_hierarchy_matches_a_fresh_one() {
    let frames = [
        GridPoisson::builder([24, 20, 18], &few_air([24, 20, 18], 3))
            .build()
            .unwrap(),
        GridPoisson::builder([24, 20, 18], &channels([24, 20, 18]))
            .build()
            .unwrap(),
        GridPoisson::builder([30, 9, 1], &few_air([30, 9, 1], 2))
            .build()
            .unwrap(),
    ];
    for precision in [Precision::Double, Precision::Single] {
        let options = MultigridOptions {
            precision,
            ..deep()
        };
        let mut updated = Multigrid::new(&frames[0], &options).unwrap();
        for grid in &frames[1..] {
            updated.update(grid).unwrap();
            let fresh = Multigrid::new(grid, &options).unwrap();
            assert_eq!(updated.level_dims(), fresh.level_dims());
            let r = Rng::new(5).vector(grid.dim());
            let (mut z_updated, mut z_fresh) = (vec![0.0; grid.dim()], vec![0.0; grid.dim()]);
            updated.apply_dot(&r, &mut z_updated).unwrap();
            fresh.apply_dot(&r, &mut z_fresh).unwrap();
            assert_eq!(z_updated, z_fresh, "{precision:?} {:?}", grid.dims());
        }
    }
}
