//! The shipped models (models/*.safetensors) as direction generators of the
//! conjugate-direction solver on held-out scenes, and the C ABI of models
//! and `adj_cdm_solve`.

mod common;

use adjunct::ffi::*;
use adjunct::krylov::{conjugate_direction, ConjugateDirectionOptions};
use adjunct::learned::{Model, NetworkDirection};
use adjunct::{Cell, GridPoisson, KrylovOptions, LinearOperator};
use common::{direct_solve, rel_diff, root, Rng};
use std::ptr::{null, null_mut};

fn shipped(name: &str) -> Model {
    let path = root().join("models").join(name);
    let size = std::fs::metadata(&path).expect("shipped model").len();
    assert!(size <= 2 << 20, "{name} is {size} bytes (limit 2 MB)");
    Model::load(&path).unwrap()
}

/// A held-out scene: walls, air in the top two layers, and box obstacles
/// at places the training scene (a centred sphere) does not have.
fn boxes(dims: [usize; 3]) -> Vec<Cell> {
    let [nx, ny, nz] = dims;
    let up = if nz > 1 { 2 } else { 1 };
    (0..nx * ny * nz)
        .map(|c| {
            let p = [c % nx, (c / nx) % ny, c / (nx * ny)];
            let f = |a: usize| p[a] as f64 / dims[a] as f64;
            let in_box = |lo: [f64; 3], hi: [f64; 3]| {
                (0..3).all(|a| a > up || (f(a) >= lo[a] && f(a) < hi[a]))
            };
            if p[up] + 2 >= dims[up] {
                Cell::Air
            } else if in_box([0.15, 0.2, 0.2], [0.35, 0.45, 0.5])
                || in_box([0.6, 0.5, 0.5], [0.85, 0.65, 0.8])
            {
                Cell::Solid
            } else {
                Cell::Fluid
            }
        })
        .collect()
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

/// Solves a held-out scene with the model's directions (and the stall
/// safeguard) to 1e-6; checks the first direction beats a Jacobi one.
fn solve_with_model(model: &Model, dims: [usize; 3], max_iterations: usize) -> usize {
    let cells = boxes(dims);
    let h = 1.0 / dims[0] as f64;
    let a = GridPoisson::builder(dims, &cells)
        .spacing([h; 3])
        .build()
        .unwrap();
    let b = Rng::new(9).vector(a.dim());
    let generator = NetworkDirection::new(&a, &model.network).unwrap();
    let norm = b.iter().map(|v| v * v).sum::<f64>().sqrt();
    let r: Vec<f64> = b.iter().map(|v| v / norm).collect();
    let mut q = vec![0.0; a.dim()];
    use adjunct::krylov::DirectionGenerator;
    generator.direction(&r, &mut q).unwrap();
    let diag = a.diagonal().unwrap();
    let jacobi: Vec<f64> = r.iter().zip(&diag).map(|(r, d)| r / d).collect();
    let (learned, classical) = (step_loss(&a, &r, &q), step_loss(&a, &r, &jacobi));
    assert!(
        learned < classical,
        "{dims:?}: first-step loss {learned:.3} vs Jacobi {classical:.3}"
    );
    let mut x = vec![0.0; a.dim()];
    let options = ConjugateDirectionOptions {
        krylov: KrylovOptions {
            rtol: 1e-6,
            max_iterations,
            ..KrylovOptions::default()
        },
        ..ConjugateDirectionOptions::default()
    };
    let report = conjugate_direction(&a, &generator, &b, &mut x, &options)
        .unwrap_or_else(|e| panic!("{dims:?}: {e}"));
    assert!(report.solve.relative_residual <= 1e-6);
    let reference = direct_solve(&a.to_csr(), &b);
    assert!(rel_diff(&x, &reference) < 1e-3, "{dims:?}");
    eprintln!(
        "{dims:?}: first-step loss {learned:.3} (Jacobi {classical:.3}); {} iterations ({} fallback steps), {:.3} s in the network",
        report.solve.iterations, report.fallback_steps, report.direction_seconds
    );
    report.solve.iterations
}

#[test]
fn shipped_2d_model_solves_held_out_scenes() {
    let model = shipped("cdm_2d.safetensors");
    assert_eq!(model.network.architecture().dim, 2);
    solve_with_model(&model, [64, 64, 1], 4000);
}

#[test]
fn shipped_3d_model_solves_held_out_scenes() {
    let model = shipped("cdm_3d.safetensors");
    assert_eq!(model.network.architecture().dim, 3);
    solve_with_model(&model, [24, 24, 24], 4000);
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
    let cells: Vec<u8> = boxes(dims).iter().map(|&c| c as u8).collect();
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
        assert_eq!(adj_precond_new(grid, ADJ_PRECOND_JACOBI, &mut pc), ADJ_OK);
        let mut n = 0;
        adj_operator_dim(grid, &mut n);
        let b = Rng::new(2).vector(n);
        let mut options = adj_cdm_options_default();
        options.rtol = 1e-8;
        let solve = |model: *const adj_model,
                     pc: *const adj_precond,
                     f: adj_direction_fn,
                     x: &mut Vec<f64>,
                     report: *mut adj_cdm_report| {
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
            let mut report = std::mem::MaybeUninit::<adj_cdm_report>::zeroed();
            assert_eq!(
                solve(m, p, f, &mut x, report.as_mut_ptr()),
                ADJ_OK,
                "{}",
                last_error()
            );
            let report = report.assume_init();
            assert_eq!(report.solve.reason, adj_solve_reason::ADJ_CONVERGED_RTOL);
            let a = {
                let problem = GridPoisson::builder(dims, &boxes(dims)).build().unwrap();
                problem.to_csr()
            };
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
