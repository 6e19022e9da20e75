//! Learned multigrid (issue 20): the learned V-cycle is symmetric positive
//! definite, the training loss's gradient through the cycle matches central
//! finite differences, the shipped models solve held-out scenes to the
//! direct solution, and bad model files are refused naming what differs.

mod common;

use adjunct::krylov::{
    cg, CoarseOperators, KrylovOptions, LevelSchedule, Multigrid, MultigridOptions, Precision,
    Schedule,
};
use adjunct::learned::{
    ritz_dataset, ritz_dataset_weighted, schedule_loss_and_gradient, AnyModel, MultigridModel,
};
use adjunct::{scene, Cell, Error, GridPoisson, LinearOperator};
use common::{assert_symmetric_positive, direct_solve, rel_diff, root};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use std::collections::HashMap;

/// An overrelaxing, non-uniform schedule of the kind training produces.
fn learned_like() -> Schedule {
    Schedule {
        levels: vec![
            LevelSchedule {
                damping: vec![0.53, 1.21],
                correction: 1.33,
            },
            LevelSchedule {
                damping: vec![0.67, 1.32],
                correction: 0.96,
            },
            LevelSchedule {
                damping: vec![0.98, 0.98],
                correction: 0.78,
            },
        ],
    }
}

/// [`learned_like`] with 2 sweeps on the finest level and 4 below.
fn learned_like_uneven() -> Schedule {
    let mut schedule = learned_like();
    schedule.levels[1].damping = vec![0.07, 0.32, 0.72, 0.96];
    schedule
}

/// Grids with solids, air, and a 1e3 face-coefficient contrast.
fn grids() -> Vec<(&'static str, GridPoisson)> {
    let sphere_with_air = |dims: [usize; 3]| -> Vec<Cell> {
        let [nx, ny, nz] = dims;
        (0..nx * ny * nz)
            .map(|c| {
                let (i, j, k) = (c % nx, (c / nx) % ny, c / (nx * ny));
                let top = if nz > 1 { k + 2 >= nz } else { j + 2 >= ny };
                let (x, y, z) = (
                    i as f64 / nx as f64 - 0.5,
                    j as f64 / ny as f64 - 0.4,
                    if nz > 1 {
                        k as f64 / nz as f64 - 0.5
                    } else {
                        0.0
                    },
                );
                if top {
                    Cell::Air
                } else if x * x + y * y + z * z < 0.04 {
                    Cell::Solid
                } else {
                    Cell::Fluid
                }
            })
            .collect()
    };
    let mut out = Vec::new();
    for dims in [[40, 36, 1], [18, 17, 15]] {
        let cells = sphere_with_air(dims);
        out.push((
            if dims[2] == 1 {
                "2D sphere, air"
            } else {
                "3D sphere, air"
            },
            GridPoisson::builder(dims, &cells).build().unwrap(),
        ));
    }
    let dims = [32, 30, 1];
    let cells = sphere_with_air(dims);
    let n = dims[0] * dims[1];
    // Heavy fluid (β = 1) below row 12, light (β = 1e3) above.
    let beta: Vec<f64> = (0..2 * n)
        .map(|f| if (f % n) / dims[0] < 12 { 1.0 } else { 1e3 })
        .collect();
    out.push((
        "2D 1e3 contrast",
        GridPoisson::builder(dims, &cells)
            .face_coefficients(&beta)
            .build()
            .unwrap(),
    ));
    out
}

fn options(schedule: &Schedule, precision: Precision) -> MultigridOptions {
    MultigridOptions {
        schedule: Some(schedule.clone()),
        precision,
        coarsest_unknowns: 16,
        ..MultigridOptions::default()
    }
}

/// The hierarchies a schedule is trained and run on: the default one, and
/// the axis-Galerkin levels (`train_multigrid --coarse-operators`).
const HIERARCHIES: [CoarseOperators; 2] =
    [CoarseOperators::Automatic, CoarseOperators::AxisGalerkin];

#[test]
fn learned_cycle_is_symmetric_positive_definite() {
    for (name, g) in grids() {
        for coarse_operators in HIERARCHIES {
            for (precision, tolerance) in [(Precision::Double, 1e-12), (Precision::Single, 1e-5)] {
                let options = MultigridOptions {
                    coarse_operators,
                    ..options(&learned_like(), precision)
                };
                let mg = Multigrid::new(&g, &options).unwrap();
                assert!(mg.level_dims().len() >= 4, "{name}: {:?}", mg.level_dims());
                let label = format!("{name}, {coarse_operators:?}, {precision:?}");
                assert_symmetric_positive(&mg, tolerance, &label);
            }
        }
    }
}

#[test]
fn schedules_that_would_make_the_cycle_indefinite_are_refused() {
    let g = &grids()[0].1;
    for (damping, correction) in [(vec![1.3], 1.0), (vec![0.8, 0.0], 1.0), (vec![0.8], 2.5)] {
        let schedule = Schedule {
            levels: vec![LevelSchedule {
                damping,
                correction,
            }],
        };
        let err = Multigrid::new(g, &options(&schedule, Precision::Double)).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument { argument, .. } if *argument == "schedule"),
            "{err}"
        );
    }
}

#[test]
fn loss_gradient_matches_central_differences() {
    for ((name, g), coarse_operators) in grids().into_iter().zip(HIERARCHIES.iter().cycle()) {
        let base = MultigridOptions {
            coarsest_unknowns: 16,
            coarse_operators: *coarse_operators,
            ..MultigridOptions::default()
        };
        let name = format!("{name}, {coarse_operators:?}");
        let rhs = ritz_dataset(&g, 20, 3, 7).unwrap();
        let schedule = learned_like();
        let (loss, gradient) = schedule_loss_and_gradient(&g, &schedule, &base, &rhs).unwrap();
        assert!(loss > 0.0 && loss < 1.0, "{name}: loss {loss}");
        let values = schedule.values();
        assert_eq!(gradient.len(), values.len());
        for (p, &g_p) in gradient.iter().enumerate() {
            let h = 1e-5;
            let at = |v: f64| {
                let mut s = schedule.clone();
                let mut vals = values.clone();
                vals[p] = v;
                s.set_values(&vals);
                schedule_loss_and_gradient(&g, &s, &base, &rhs).unwrap().0
            };
            let fd = (at(values[p] + h) - at(values[p] - h)) / (2.0 * h);
            assert!(
                (fd - g_p).abs() <= 1e-6 + 1e-5 * fd.abs(),
                "{name}, parameter {p}: gradient {g_p:e}, central difference {fd:e}"
            );
        }
    }
}

#[test]
fn ritz_data_can_weight_the_spectrum_evenly() {
    let g = &grids()[0].1;
    let reference = ritz_dataset(g, 20, 3, 7).unwrap();
    assert_eq!(reference, ritz_dataset_weighted(g, 20, 3, 7, 9.0).unwrap());
    // The same coefficients with the lower half of the spectrum weighted 1
    // instead of 9: more of each right-hand side's energy is high.
    let even = ritz_dataset_weighted(g, 20, 3, 7, 1.0).unwrap();
    let rayleigh = |r: &[f64]| {
        let mut ar = vec![0.0; r.len()];
        g.apply(r, &mut ar).unwrap();
        r.iter().zip(&ar).map(|(a, b)| a * b).sum::<f64>()
    };
    for (low, flat) in reference.iter().zip(&even) {
        assert!(rayleigh(flat) > 1.5 * rayleigh(low));
    }
    for bad in [0.0, -1.0, f64::NAN] {
        let err = ritz_dataset_weighted(g, 20, 3, 7, bad).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument { argument, .. } if *argument == "lower_weight"),
            "{err}"
        );
    }
}

fn shipped(dim: usize) -> MultigridModel {
    shipped_file(&format!("multigrid_{dim}d"))
}

fn shipped_file(name: &str) -> MultigridModel {
    let path = root().join(format!("models/{name}.safetensors"));
    MultigridModel::load(&path).unwrap()
}

#[test]
fn shipped_models_solve_held_out_scenes_to_the_direct_solution() {
    // scene::obstacles is not the training scene (smoke), and the grids
    // are not the training grids. (Iterations against the classical cycle
    // are benchmark figures: `bench_cdm`.)
    let cases = [[96, 80, 1], [32, 30, 28]].into_iter().flat_map(|dims| {
        let dim = if dims[2] == 1 { 2 } else { 3 };
        [
            (dims, shipped(dim), CoarseOperators::Automatic),
            (
                dims,
                shipped_file(&format!("multigrid_axis_{dim}d")),
                CoarseOperators::AxisGalerkin,
            ),
        ]
    });
    for (dims, model, coarse_operators) in cases {
        assert!(model.training_command.contains("train_multigrid"));
        assert_eq!(model.coarse_operators, coarse_operators, "{dims:?}");
        let problem = scene::obstacles(dims, 2).unwrap();
        let a = problem.operator().unwrap();
        let b = problem.rhs.clone();
        let mg = model.multigrid(&a).unwrap();
        let mut x = vec![0.0; a.dim()];
        let options = KrylovOptions {
            rtol: 1e-8,
            ..KrylovOptions::default()
        };
        let report = cg(&a, &mg, &b, &mut x, &options).unwrap();
        assert!(report.reason.converged(), "{dims:?}: {report:?}");
        let exact = direct_solve(&a.to_csr().unwrap(), &b);
        let diff = rel_diff(&x, &exact);
        assert!(diff < 1e-6, "{dims:?}: relative difference {diff:e}");
    }
}

/// A multigrid model file with `metadata` edited and the given tensors.
fn file(edit: &[(&str, &str)], damping: (&[f64], Vec<usize>)) -> Vec<u8> {
    let model = shipped(2);
    let bytes = model.to_bytes().unwrap();
    let parsed = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta: HashMap<String, String> = header.metadata().clone().unwrap();
    for (k, v) in edit {
        meta.insert(k.to_string(), v.to_string());
    }
    let damping_bytes: Vec<u8> = damping.0.iter().flat_map(|v| v.to_le_bytes()).collect();
    let correction = parsed.tensor("correction").unwrap();
    let tensors = vec![
        (
            "damping".to_string(),
            TensorView::new(Dtype::F64, damping.1, &damping_bytes).unwrap(),
        ),
        ("correction".to_string(), correction),
    ];
    safetensors::serialize(tensors, Some(meta)).unwrap()
}

#[track_caller]
fn refused(bytes: &[u8], fragment: &str) {
    match MultigridModel::from_bytes(bytes) {
        Err(Error::Format { message }) => {
            assert!(message.contains(fragment), "{message:?} lacks {fragment:?}")
        }
        other => panic!("expected a format error naming {fragment}, got {other:?}"),
    }
}

#[test]
fn model_files_round_trip_and_bad_ones_are_refused() {
    let model = shipped(2);
    let bytes = model.to_bytes().unwrap();
    assert_eq!(MultigridModel::from_bytes(&bytes).unwrap(), model);
    // Levels with fewer sweeps are padded with zeros in the file.
    let uneven = MultigridModel {
        schedule: learned_like_uneven(),
        ..model.clone()
    };
    assert_eq!(
        MultigridModel::from_bytes(&uneven.to_bytes().unwrap()).unwrap(),
        uneven
    );
    assert!(matches!(
        AnyModel::from_bytes(&bytes).unwrap(),
        AnyModel::Multigrid(_)
    ));
    let levels = model.schedule.levels.len();
    let sweeps = model.schedule.levels[0].damping.len();
    let damping: Vec<f64> = model
        .schedule
        .levels
        .iter()
        .flat_map(|l| l.damping.clone())
        .collect();
    let good = (&damping[..], vec![levels, sweeps]);
    // The level count of the metadata disagrees with the tensors.
    let more = (levels + 1).to_string();
    refused(&file(&[("levels", &more)], good.clone()), "levels");
    refused(&file(&[("sweeps", "5")], good.clone()), "sweeps");
    refused(
        &file(&[("component", "prolongation")], good.clone()),
        "component",
    );
    refused(&file(&[("dim", "4")], good.clone()), "dim");
    refused(&file(&[("format", "adjunct-cdm")], good.clone()), "format");
    refused(
        &file(&[("coarse_operators", "algebraic")], good.clone()),
        "coarse_operators",
    );
    // The coarse operators are part of the model: kept through the file,
    // and the hierarchy they name is the one the schedule runs on.
    for coarse_operators in CoarseOperators::ALL {
        let name = coarse_operators.name();
        let named = MultigridModel::from_bytes(&file(&[("coarse_operators", name)], good.clone()));
        assert_eq!(named.unwrap().coarse_operators, coarse_operators, "{name}");
        let with = MultigridModel {
            coarse_operators,
            ..model.clone()
        };
        let back = MultigridModel::from_bytes(&with.to_bytes().unwrap()).unwrap();
        assert_eq!(back, with);
        let options = back
            .options_for(&grids()[0].1, &MultigridOptions::default())
            .unwrap();
        assert_eq!(options.coarse_operators, coarse_operators, "{name}");
    }
    // Beyond a 1e3 face-coefficient contrast, where the axis levels lose
    // their grip, a schedule trained on them runs on Galerkin levels.
    let axis = MultigridModel {
        coarse_operators: CoarseOperators::AxisGalerkin,
        ..model.clone()
    };
    let dims = [16, 16, 1];
    let cells = vec![Cell::Fluid; 256];
    for (contrast, expected) in [
        (1e3, CoarseOperators::AxisGalerkin),
        (1e4, CoarseOperators::Galerkin),
    ] {
        let beta: Vec<f64> = (0..512)
            .map(|f| if (f % 256) / 16 < 8 { 1.0 } else { contrast })
            .collect();
        let g = GridPoisson::builder(dims, &cells)
            .face_coefficients(&beta)
            .build()
            .unwrap();
        let options = axis.options_for(&g, &MultigridOptions::default()).unwrap();
        assert_eq!(options.coarse_operators, expected, "contrast {contrast:e}");
    }
    // Overrelaxation that would make the cycle indefinite.
    let wild = vec![1.9; damping.len()];
    refused(&file(&[], (&wild, vec![levels, sweeps])), "damping");
    // Truncated.
    refused(&bytes[..bytes.len() / 2], "");
    // A direction network is not a multigrid model, and the other way round.
    let cdm = std::fs::read(root().join("models/cdm_2d.safetensors")).unwrap();
    refused(&cdm, "format");
    assert!(matches!(
        AnyModel::from_bytes(&cdm).unwrap(),
        AnyModel::Directions(_)
    ));
    // The wrong dimension for the operator.
    let g3 = &grids()[1].1;
    match model.multigrid(g3) {
        Err(Error::Format { message }) => assert!(message.contains("dim"), "{message}"),
        other => panic!("expected a format error naming dim, got {other:?}"),
    }
}

#[test]
fn learned_multigrid_through_the_c_abi() {
    use adjunct::ffi::adj_status::*;
    use adjunct::ffi::*;
    use common::expect;
    use std::ptr::{null, null_mut};
    let dims = [48usize, 40, 1];
    let problem = scene::obstacles(dims, 2).unwrap();
    let cells: Vec<u8> = problem.cells.iter().map(|&c| c as u8).collect();
    let path = |name: &str| {
        std::ffi::CString::new(root().join("models").join(name).to_str().unwrap()).unwrap()
    };
    let (mut grid, mut grid3, mut model, mut model3, mut cdm, mut pc) = (
        null_mut(),
        null_mut(),
        null_mut(),
        null_mut(),
        null_mut(),
        null_mut(),
    );
    let a = problem.operator().unwrap();
    let exact = direct_solve(&a.to_csr().unwrap(), &problem.rhs);
    let n = a.dim();
    let cells3 = vec![Cell::Fluid as u8; 8 * 8 * 8];
    // SAFETY: valid arguments as documented; handles freed below.
    unsafe {
        let h = [problem.spacing; 3];
        assert_eq!(
            adj_operator_new_grid_poisson(48, 40, 1, cells.as_ptr(), h.as_ptr(), null(), &mut grid),
            ADJ_OK,
            "{}",
            common::last_error()
        );
        assert_eq!(
            adj_operator_new_grid_poisson(8, 8, 8, cells3.as_ptr(), null(), null(), &mut grid3),
            ADJ_OK
        );
        assert_eq!(
            adj_model_load(path("multigrid_2d.safetensors").as_ptr(), &mut model),
            ADJ_OK,
            "{}",
            common::last_error()
        );
        assert_eq!(
            adj_model_load(path("multigrid_3d.safetensors").as_ptr(), &mut model3),
            ADJ_OK
        );
        assert_eq!(
            adj_model_load(path("cdm_2d.safetensors").as_ptr(), &mut cdm),
            ADJ_OK
        );
        let mut dim = 0;
        assert_eq!(adj_model_ndim(model3, &mut dim), ADJ_OK);
        assert_eq!(dim, 3);
        // The deprecated spelling says the same.
        let mut old = 0;
        assert_eq!(adj_model_dim(model3, &mut old), ADJ_OK);
        assert_eq!(old, 3);
        expect(
            adj_model_ndim(model3, null_mut()),
            ADJ_ERR_NULL_ARGUMENT,
            &["ndim"],
        );
        // As CG's preconditioner.
        assert_eq!(adj_precond_new_model(grid, model, &mut pc), ADJ_OK);
        let mut x = vec![0.0; n];
        let mut report = common::init(adj_solve_report_init);
        assert_eq!(
            adj_cg_solve(
                grid,
                pc,
                problem.rhs.as_ptr(),
                x.as_mut_ptr(),
                n,
                null(),
                &mut report
            ),
            ADJ_OK,
            "{}",
            common::last_error()
        );
        assert!(rel_diff(&x, &exact) < 1e-6, "{}", rel_diff(&x, &exact));
        // Through adj_cdm_solve: PCG with the learned cycle, the same steps.
        let mut y = vec![0.0; n];
        let mut cdm_solve_report = common::init(adj_solve_report_init);
        assert_eq!(
            adj_cdm_solve(
                grid,
                model,
                null(),
                None,
                null_mut(),
                problem.rhs.as_ptr(),
                y.as_mut_ptr(),
                n,
                null(),
                &mut cdm_solve_report,
                null_mut(),
            ),
            ADJ_OK,
            "{}",
            common::last_error()
        );
        assert!(rel_diff(&y, &exact) < 1e-6);
        assert!(cdm_solve_report.iterations.abs_diff(report.iterations) <= 1);
        // A schedule trained on axis-Galerkin levels runs on them.
        let (mut axis, mut axis_pc) = (null_mut(), null_mut());
        assert_eq!(
            adj_model_load(path("multigrid_axis_2d.safetensors").as_ptr(), &mut axis),
            ADJ_OK,
            "{}",
            common::last_error()
        );
        assert_eq!(adj_precond_new_model(grid, axis, &mut axis_pc), ADJ_OK);
        let mut z = vec![0.0; n];
        assert_eq!(
            adj_cg_solve(
                grid,
                axis_pc,
                problem.rhs.as_ptr(),
                z.as_mut_ptr(),
                n,
                null(),
                null_mut()
            ),
            ADJ_OK,
            "{}",
            common::last_error()
        );
        assert!(rel_diff(&z, &exact) < 1e-6, "{}", rel_diff(&z, &exact));
        adj_precond_free(axis_pc);
        adj_model_free(axis);
        // Wrong dimension, wrong component, not a grid operator, NULLs.
        let mut bad = null_mut();
        expect(
            adj_precond_new_model(grid3, model, &mut bad),
            ADJ_ERR_FORMAT,
            &["dim"],
        );
        expect(
            adj_precond_new_model(grid, cdm, &mut bad),
            ADJ_ERR_FORMAT,
            &["component", "model"],
        );
        expect(
            adj_precond_new_model(grid, null(), &mut bad),
            ADJ_ERR_NULL_ARGUMENT,
            &["model"],
        );
        expect(
            adj_precond_new_model(grid, model, null_mut()),
            ADJ_ERR_NULL_ARGUMENT,
            &["out"],
        );
        assert!(bad.is_null());
        adj_precond_free(pc);
        adj_model_free(model);
        adj_model_free(model3);
        adj_model_free(cdm);
        adj_operator_free(grid);
        adj_operator_free(grid3);
    }
}
