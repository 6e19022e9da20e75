//! The shipped models (models/*.safetensors) as direction generators of the
//! conjugate-direction solver on held-out scenes, and the C ABI of models
//! and `adj_cdm_solve`.

mod common;

use adjunct::ffi::*;
use adjunct::krylov::{
    conjugate_direction, CoarseSpace, ConjugateDirectionOptions, ConjugateDirectionReport,
    Preconditioner, TwoLevel,
};
use adjunct::learned::{Evaluation, Model, NetworkDirection};
use adjunct::{cg, scene, Cell, GridPoisson, Identity, Jacobi, KrylovOptions, LinearOperator};
use common::{direct_solve, init, init_uninit, rel_diff, root, Rng};
use std::ptr::{null, null_mut};

fn shipped(name: &str) -> Model {
    let path = root().join("models").join(name);
    let size = std::fs::metadata(&path).expect("shipped model").len();
    assert!(size <= 2 << 20, "{name} is {size} bytes (limit 2 MB)");
    Model::load(&path).unwrap()
}

/// The held-out scene (boxes and a sphere, unlike the training scene's
/// centred sphere) as a grid operator and right-hand side.
fn held_out(dims: [usize; 3]) -> (GridPoisson, Vec<f64>) {
    let problem = scene::obstacles(dims, 2).unwrap();
    (problem.operator().unwrap(), problem.rhs)
}

/// ‖r − (qᵀr / qᵀAq) A q‖² for the unit residual r: the training loss of
/// one direction q.
fn step_loss(a: &GridPoisson, r: &[f64], q: &[f64]) -> f64 {
    let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f64>();
    let mut w = vec![0.0; q.len()];
    a.apply(q, &mut w).unwrap();
    let alpha = dot(q, r) / dot(q, &w);
    r.iter().zip(&w).map(|(r, w)| (r - alpha * w).powi(2)).sum()
}

/// Solves a held-out scene with the model's directions (two-level as the
/// model file asks, with the stall safeguard) to 1e-6; checks the
/// network's first direction alone beats a Jacobi one and the solution
/// matches a direct solve. Returns the report and the
/// iterations plain CG needs on the same problem.
fn solve_with_model(
    model: &Model,
    dims: [usize; 3],
    max_iterations: usize,
) -> (ConjugateDirectionReport, usize) {
    let (a, b) = held_out(dims);
    // The network alone (no coarse space) against a Jacobi step.
    let network = NetworkDirection::new(&a, &model.network).unwrap();
    let norm = b.iter().map(|v| v * v).sum::<f64>().sqrt();
    let r: Vec<f64> = b.iter().map(|v| v / norm).collect();
    let mut q = vec![0.0; a.dim()];
    network.apply_dot(&r, &mut q).unwrap();
    let diag = a.diagonal().unwrap();
    let jacobi: Vec<f64> = r.iter().zip(&diag).map(|(r, d)| r / d).collect();
    let (learned, classical) = (step_loss(&a, &r, &q), step_loss(&a, &r, &jacobi));
    assert!(
        learned < classical,
        "{dims:?}: first-step loss {learned:.3} vs Jacobi {classical:.3}"
    );
    let krylov = KrylovOptions {
        rtol: 1e-6,
        max_iterations,
        ..KrylovOptions::default()
    };
    let mut x = vec![0.0; a.dim()];
    let options = ConjugateDirectionOptions {
        krylov: krylov.clone(),
        ..ConjugateDirectionOptions::default()
    };
    let generator = NetworkDirection::for_model(&a, model).unwrap();
    let report = conjugate_direction(&a, &generator, &b, &mut x, &options)
        .unwrap_or_else(|e| panic!("{dims:?}: {e}"));
    assert!(report.solve.relative_residual <= 1e-6);
    let reference = direct_solve(&a.to_csr().unwrap(), &b);
    assert!(rel_diff(&x, &reference) < 1e-3, "{dims:?}");
    let mut x = vec![0.0; a.dim()];
    let plain = cg(&a, &Identity { dim: a.dim() }, &b, &mut x, &krylov).unwrap();
    eprintln!(
        "{dims:?}: first-step loss {learned:.3} (Jacobi {classical:.3}); {} iterations ({} fallback steps; CG {}), {:.3} s in the network",
        report.solve.iterations, report.fallback_steps, plain.iterations, report.direction_seconds
    );
    (report, plain.iterations)
}

/// Conjugate-direction iterations to 1e-6 from x = 0 with `generator`.
fn iterations(a: &GridPoisson, b: &[f64], generator: &dyn Preconditioner) -> usize {
    let options = ConjugateDirectionOptions {
        krylov: KrylovOptions {
            rtol: 1e-6,
            max_iterations: 2000,
            ..KrylovOptions::default()
        },
        ..ConjugateDirectionOptions::default()
    };
    let mut x = vec![0.0; a.dim()];
    conjugate_direction(a, generator, b, &mut x, &options)
        .unwrap()
        .solve
        .iterations
}

#[test]
fn shipped_symmetric_models_beat_cg_on_held_out_scenes() {
    for (name, dim, dims) in [
        ("cdm_2d.safetensors", 2, [96, 96, 1]),
        ("cdm_3d.safetensors", 3, [32, 32, 32]),
    ] {
        let model = shipped(name);
        let arch = model.network.architecture();
        assert!(arch.symmetric && arch.dim == dim, "{name}: {arch:?}");
        assert_eq!(model.coarse_block, 8, "{name}: shipped as two-level");
        let (report, cg_iterations) = solve_with_model(&model, dims, 2000);
        // A symmetric positive semidefinite D never stalls the iteration.
        assert_eq!(report.fallback_steps, 0, "{name}");
        let two_level = report.solve.iterations;
        assert!(
            (two_level as f64) < 0.2 * cg_iterations as f64,
            "{name}: {two_level} iterations, CG {cg_iterations}"
        );
        // The coarse space and the network each do part of the work: the
        // two-level solve beats the network alone and the coarse space
        // around Jacobi.
        let (a, b) = held_out(dims);
        let plain = iterations(&a, &b, &NetworkDirection::new(&a, &model.network).unwrap());
        let jacobi = Jacobi::new(&a).unwrap();
        let coarse = CoarseSpace::new(&a, model.coarse_block).unwrap();
        let two_level_jacobi = TwoLevel::new(&a, coarse, &jacobi).unwrap();
        let yardstick = iterations(&a, &b, &two_level_jacobi);
        eprintln!("{name}: network alone {plain}, two-level Jacobi {yardstick} iterations");
        assert!(
            two_level < plain && two_level < yardstick,
            "{name}: two-level {two_level}, network alone {plain}, two-level Jacobi {yardstick}"
        );
        // The default evaluation contracts the finest level, which changes
        // the directions only near the grid's edge: about the iterations
        // of the network evaluated layer by layer, exactly as trained.
        let layers = iterations(
            &a,
            &b,
            &NetworkDirection::with_evaluation(
                &a,
                &model.network,
                model.coarse_block,
                Evaluation::LayerByLayer,
            )
            .unwrap(),
        );
        eprintln!("{name}: two-level {two_level} contracted, {layers} layer by layer");
        assert!(
            two_level as f64 <= 1.25 * layers as f64 && layers < yardstick,
            "{name}: contracted {two_level}, layer by layer {layers}"
        );
    }
}

#[test]
fn two_level_directions_do_not_depend_on_the_network_scale() {
    // The fitted step s absorbs the network's arbitrary scale: scaling the
    // last convolution's weights by 10 (L → 10 L, Lᵀ L → 100 Lᵀ L) leaves
    // the directions unchanged up to rounding.
    let model = shipped("cdm_3d.safetensors");
    let (a, b) = held_out([20, 18, 16]);
    let mut scaled = model.network.clone();
    let last = scaled.params().len() - model.network.architecture().channels;
    scaled.params_mut()[last..]
        .iter_mut()
        .for_each(|w| *w *= 10.0);
    let mut d = [vec![0.0; a.dim()], vec![0.0; a.dim()]];
    for (net, d) in [&model.network, &scaled].into_iter().zip(&mut d) {
        NetworkDirection::two_level(&a, net, 4)
            .unwrap()
            .apply_dot(&b, d)
            .unwrap();
    }
    assert!(rel_diff(&d[1], &d[0]) < 1e-5, "{}", rel_diff(&d[1], &d[0]));
    // Without the correction the scale shows.
    let mut plain = vec![0.0; a.dim()];
    NetworkDirection::new(&a, &scaled)
        .unwrap()
        .apply_dot(&b, &mut plain)
        .unwrap();
    let mut unscaled = vec![0.0; a.dim()];
    NetworkDirection::new(&a, &model.network)
        .unwrap()
        .apply_dot(&b, &mut unscaled)
        .unwrap();
    assert!(rel_diff(&plain, &unscaled) > 10.0);
}

#[test]
fn shipped_dcdm_models_solve_held_out_scenes() {
    for (name, dim, dims) in [
        ("cdm_2d_dcdm.safetensors", 2, [64, 64, 1]),
        ("cdm_3d_dcdm.safetensors", 3, [24, 24, 24]),
    ] {
        let model = shipped(name);
        let arch = model.network.architecture();
        assert!(!arch.symmetric && arch.dim == dim, "{name}: {arch:?}");
        // Alone, these networks stall (2774 and 782 iterations, CG 318 and
        // 168); inside the two-level correction they beat CG.
        let (report, cg_iterations) = solve_with_model(&model, dims, 6000);
        assert!(
            report.solve.iterations < cg_iterations,
            "{name}: {} iterations, CG {cg_iterations}",
            report.solve.iterations
        );
    }
}

unsafe extern "C" fn copy_direction(
    _: *mut std::ffi::c_void,
    r: *const f64,
    d: *mut f64,
    n: usize,
) -> std::ffi::c_int {
    // SAFETY: n doubles each, as documented.
    unsafe { std::ptr::copy_nonoverlapping(r, d, n) };
    0
}

#[test]
fn models_and_cdm_through_the_c_abi() {
    let last_error = || {
        // SAFETY: valid NUL-terminated string.
        unsafe { std::ffi::CStr::from_ptr(adj_last_error_message()) }
            .to_string_lossy()
            .into_owned()
    };
    let dims = [24usize, 20, 1];
    let cells: Vec<u8> = scene::obstacles(dims, 2)
        .unwrap()
        .cells
        .iter()
        .map(|&c| c as u8)
        .collect();
    let (mut grid, mut model, mut model3, mut pc) =
        (null_mut(), null_mut(), null_mut(), null_mut());
    let path2 =
        std::ffi::CString::new(root().join("models/cdm_2d.safetensors").to_str().unwrap()).unwrap();
    let path3 =
        std::ffi::CString::new(root().join("models/cdm_3d.safetensors").to_str().unwrap()).unwrap();
    use adj_status::*;
    // SAFETY: valid arguments as documented; handles freed below.
    unsafe {
        assert_eq!(
            adj_operator_new_grid_poisson(24, 20, 1, cells.as_ptr(), null(), null(), &mut grid),
            ADJ_OK
        );
        assert_eq!(
            adj_model_load(path2.as_ptr(), &mut model),
            ADJ_OK,
            "{}",
            last_error()
        );
        assert_eq!(adj_model_load(path3.as_ptr(), &mut model3), ADJ_OK);
        let mut dim = 0;
        assert_eq!(adj_model_dim(model3, &mut dim), ADJ_OK);
        assert_eq!(dim, 3);
        assert_eq!(
            adj_precond_new(grid, adj_precond_kind::ADJ_PRECOND_JACOBI as u32, &mut pc),
            ADJ_OK
        );
        let mut n = 0;
        adj_operator_dim(grid, &mut n);
        let b = Rng::new(2).vector(n);
        let mut options = init(adj_cdm_options_init);
        options.rtol = 1e-8;
        let solve = |model: *const adj_model,
                     pc: *const adj_precond,
                     f: adj_direction_fn,
                     x: &mut Vec<f64>,
                     report: *mut adj_solve_report| {
            adj_cdm_solve(
                grid,
                model,
                pc,
                f,
                null_mut(),
                b.as_ptr(),
                x.as_mut_ptr(),
                n,
                &options,
                report,
                null_mut(),
            )
        };
        for (m, p, f) in [
            (model as *const adj_model, null(), None),
            (null(), pc as *const adj_precond, None),
            (
                null(),
                null(),
                Some(copy_direction as unsafe extern "C" fn(_, _, _, _) -> _),
            ),
        ] {
            let mut x = vec![0.0; n];
            let mut report = init_uninit(adj_solve_report_init);
            assert_eq!(
                solve(m, p, f, &mut x, report.as_mut_ptr()),
                ADJ_OK,
                "{}",
                last_error()
            );
            let report = report.assume_init();
            assert_eq!(report.reason, adj_solve_reason::ADJ_CONVERGED_RTOL);
            // Unit spacing, as the grid created above.
            let cells = scene::obstacles(dims, 2).unwrap().cells;
            let a = GridPoisson::builder(dims, &cells)
                .build()
                .unwrap()
                .to_csr()
                .unwrap();
            assert!(rel_diff(&x, &direct_solve(&a, &b)) < 1e-5);
        }
        // Bad input: no generator, two generators, a 3D model on a 2D grid.
        let mut x = vec![7.0; n];
        assert_eq!(
            solve(null(), null(), None, &mut x, null_mut()),
            ADJ_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("exactly one"));
        assert_eq!(
            solve(model, pc, None, &mut x, null_mut()),
            ADJ_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            solve(model3, null(), None, &mut x, null_mut()),
            ADJ_ERR_INVALID_ARGUMENT
        );
        assert!(last_error().contains("3D model"), "{}", last_error());
        assert_eq!(x, vec![7.0; n]);
        // Files: missing, not a model, NULL path.
        let missing = std::ffi::CString::new("/nonexistent/m.safetensors").unwrap();
        let mut m = null_mut();
        assert_eq!(adj_model_load(missing.as_ptr(), &mut m), ADJ_ERR_IO);
        let garbage = common::tempdir("learned").join("garbage.safetensors");
        std::fs::write(&garbage, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}").unwrap();
        let garbage = std::ffi::CString::new(garbage.to_str().unwrap()).unwrap();
        assert_eq!(adj_model_load(garbage.as_ptr(), &mut m), ADJ_ERR_FORMAT);
        assert_eq!(adj_model_load(null(), &mut m), ADJ_ERR_NULL_ARGUMENT);
        assert!(m.is_null());
        adj_precond_free(pc);
        adj_model_free(model);
        adj_model_free(model3);
        adj_model_free(null_mut());
        adj_operator_free(grid);
    }
}

#[test]
fn two_level_option_through_the_c_abi() {
    // The scene of the Julia package's test: 32², air in the top two rows,
    // a solid box at x 9..14, y 7..12 (0-based).
    let cells: Vec<u8> = (0..32 * 32)
        .map(|c| {
            let (x, y) = (c % 32, c / 32);
            if y >= 30 {
                Cell::Air as u8
            } else if (9..14).contains(&x) && (7..12).contains(&y) {
                Cell::Solid as u8
            } else {
                Cell::Fluid as u8
            }
        })
        .collect();
    let path =
        std::ffi::CString::new(root().join("models/cdm_2d.safetensors").to_str().unwrap()).unwrap();
    let (mut grid, mut model, mut pc, mut csr) = (null_mut(), null_mut(), null_mut(), null_mut());
    use adj_status::*;
    // SAFETY: valid arguments as documented; handles freed below.
    unsafe {
        let spacing = [1.0 / 32.0; 2];
        assert_eq!(
            adj_operator_new_grid_poisson(
                32,
                32,
                1,
                cells.as_ptr(),
                spacing.as_ptr(),
                null(),
                &mut grid
            ),
            ADJ_OK
        );
        assert_eq!(adj_model_load(path.as_ptr(), &mut model), ADJ_OK);
        assert_eq!(
            adj_precond_new(grid, adj_precond_kind::ADJ_PRECOND_JACOBI as u32, &mut pc),
            ADJ_OK
        );
        let mut n = 0;
        adj_operator_dim(grid, &mut n);
        let (row_ptr, col_idx, values) = (vec![0i32, 1], vec![0i32], vec![2.0]);
        assert_eq!(
            adj_operator_new_csr_i32(
                1,
                1,
                row_ptr.as_ptr(),
                col_idx.as_ptr(),
                values.as_ptr(),
                &mut csr
            ),
            ADJ_OK
        );
        let solve_evaluated = |op: *const adj_operator,
                               model: *const adj_model,
                               pc: *const adj_precond,
                               f: adj_direction_fn,
                               b: &[f64],
                               coarse_block: i32,
                               layer_by_layer: i32|
         -> (adj_status, usize) {
            let mut options = init(adj_cdm_options_init);
            options.rtol = 1e-6;
            options.coarse_block = coarse_block;
            options.layer_by_layer = layer_by_layer;
            let mut x = vec![0.0; b.len()];
            let mut report = init_uninit(adj_solve_report_init);
            let status = adj_cdm_solve(
                op,
                model,
                pc,
                f,
                null_mut(),
                b.as_ptr(),
                x.as_mut_ptr(),
                b.len(),
                &options,
                report.as_mut_ptr(),
                null_mut(),
            );
            (status, report.assume_init().iterations)
        };
        let solve = |op, model, pc, f, b: &[f64], coarse_block| {
            solve_evaluated(op, model, pc, f, b, coarse_block, 0)
        };
        let identity = Some(copy_direction as unsafe extern "C" fn(_, _, _, _) -> _);
        // Entries of either sign, and positive ones as Julia's `rand` gives.
        for (seed, positive) in [(1, false), (2, false), (3, true), (4, true)] {
            let mut b = Rng::new(seed).vector(n);
            if positive {
                b.iter_mut().for_each(|v| *v = v.abs());
            }
            let (status, default) = solve(grid, model, null(), None, &b, -1);
            assert_eq!(status, ADJ_OK);
            let (_, eight) = solve(grid, model, null(), None, &b, 8);
            assert_eq!(default, eight, "the model file says 8");
            let (_, alone) = solve(grid, model, null(), None, &b, 0);
            let (_, jacobi) = solve(grid, null(), pc, None, &b, -1);
            let (_, jacobi8) = solve(grid, null(), pc, None, &b, 8);
            let (_, callback) = solve(grid, null(), null(), identity, &b, 0);
            let (_, callback8) = solve(grid, null(), null(), identity, &b, 8);
            let (status, layers) = solve_evaluated(grid, model, null(), None, &b, -1, 1);
            assert_eq!(status, ADJ_OK);
            eprintln!(
                "seed {seed}: model {default} (alone {alone}, layer by layer {layers}), Jacobi {jacobi} (two-level {jacobi8}), identity {callback} (two-level {callback8})"
            );
            assert!(alone > default && jacobi8 < jacobi && callback8 < callback);
            assert!(default as f64 <= 1.25 * layers as f64 && layers < jacobi8);
        }
        let b_ones = vec![1.0; n];
        let (status, _) = solve_evaluated(grid, model, null(), None, &b_ones, -1, 2);
        assert_eq!(status, ADJ_ERR_INVALID_ARGUMENT);
        let message = std::ffi::CStr::from_ptr(adj_last_error_message()).to_string_lossy();
        assert!(message.contains("layer_by_layer"), "{message}");
        let b = vec![1.0; n];
        for bad in [1, -2] {
            let (status, _) = solve(grid, null(), pc, None, &b, bad);
            assert_eq!(status, ADJ_ERR_INVALID_ARGUMENT);
            let message = std::ffi::CStr::from_ptr(adj_last_error_message()).to_string_lossy();
            assert!(message.contains("coarse_block"), "{message}");
        }
        let (status, _) = solve(csr, null(), null(), identity, &[1.0], 4);
        assert_eq!(status, ADJ_ERR_INVALID_ARGUMENT);
        let message = std::ffi::CStr::from_ptr(adj_last_error_message()).to_string_lossy();
        assert!(
            message.contains("coarse_block") && message.contains("grid"),
            "{message}"
        );
        assert_eq!(solve(csr, null(), null(), identity, &[1.0], -1).0, ADJ_OK);
        adj_operator_free(csr);
        adj_precond_free(pc);
        adj_model_free(model);
        adj_operator_free(grid);
    }
}
