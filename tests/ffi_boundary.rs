//! A hostile caller at the C boundary: model files whose metadata asks for
//! absurd sizes, sizes that overflow, finite values that overflow later,
//! NaN and out-of-range numbers in every numeric input, singular systems
//! that must not give a gradient, one status per cause in every entry
//! point, and option and report structs of other sizes. Every case goes
//! through the exported functions.

mod common;

use adjunct::ffi::*;
use common::{expect, init, init_uninit, last_error, Rng};
use std::collections::HashMap;
use std::ffi::{c_int, c_void, CString};
use std::ptr::{null, null_mut};

use adj_status::*;

// ------------------------------------------------------------ model files

/// A model file with the given metadata and f32 tensors (name, shape).
fn model_file(name: &str, meta: &[(&str, &str)], tensors: &[(&str, Vec<usize>)]) -> CString {
    let data: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, shape)| vec![0u8; 4 * shape.iter().product::<usize>()])
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .zip(&data)
        .map(|((n, shape), d)| {
            (
                n.to_string(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), d)
                    .unwrap(),
            )
        })
        .collect();
    let meta: HashMap<String, String> = meta
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let bytes = safetensors::serialize(views, Some(meta)).unwrap();
    let path = common::tempdir("hostile_models").join(name);
    std::fs::write(&path, bytes).unwrap();
    CString::new(path.to_str().unwrap()).unwrap()
}

fn architecture_meta<'a>(
    levels: &'a str,
    blocks: &'a str,
    channels: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("format", "adjunct-cdm"),
        ("version", "1"),
        ("dim", "2"),
        ("channels", channels),
        ("levels", levels),
        ("blocks", blocks),
        ("symmetric", "true"),
    ]
}

/// The two tensors of a 2D network without residual blocks.
fn two_tensors(channels: usize) -> Vec<(&'static str, Vec<usize>)> {
    vec![
        ("conv0.weight", vec![channels, 1, 3, 3]),
        ("conv1.weight", vec![1, channels, 1, 1]),
    ]
}

fn load(path: &CString) -> (adj_status, *mut adj_model) {
    let mut model = null_mut();
    // SAFETY: a NUL-terminated path and a valid out pointer.
    let status = unsafe { adj_model_load(path.as_ptr(), &mut model) };
    (status, model)
}

#[test]
fn model_metadata_with_absurd_sizes_is_rejected_before_allocating() {
    // Each used to abort the process, allocate tens of gigabytes or grow a
    // vector without bound; now the bounds are checked before anything is
    // built, and the file's tensor list must match.
    for (levels, blocks, channels, name) in [
        ("8", "1000000", "256", "huge_all"),
        ("1", "1000000", "8", "huge_blocks"),
        ("1", "4294967297", "8", "blocks_2_32_plus_1"),
        ("1", "9223372036854775808", "8", "blocks_2_63"),
        ("9", "1", "8", "too_many_levels"),
    ] {
        let path = model_file(
            &format!("{name}.safetensors"),
            &architecture_meta(levels, blocks, channels),
            &two_tensors(8),
        );
        let started = std::time::Instant::now();
        let (status, model) = load(&path);
        expect(status, ADJ_ERR_FORMAT, &["architecture"]);
        assert!(model.is_null());
        assert!(
            started.elapsed().as_secs_f64() < 1.0,
            "{name} took {:?}",
            started.elapsed()
        );
    }
    // Within bounds, but the tensors are not there: a format error naming
    // the count, found before any parameter is allocated.
    let path = model_file(
        "missing_tensors.safetensors",
        &architecture_meta("8", "64", "256"),
        &two_tensors(8),
    );
    let (status, _) = load(&path);
    expect(status, ADJ_ERR_FORMAT, &["2 tensors", "1026"]);
    // A well-formed file of that minimal architecture loads.
    let path = model_file(
        "minimal.safetensors",
        &architecture_meta("1", "0", "8"),
        &two_tensors(8),
    );
    let (status, model) = load(&path);
    assert_eq!(status, ADJ_OK, "{}", last_error());
    // SAFETY: a live handle.
    unsafe { adj_model_free(model) };
}

// ------------------------------------------------------------ operators

fn grid(
    nx: usize,
    ny: usize,
    nz: usize,
    cells: &[u8],
    spacing: Option<&[f64]>,
    beta: Option<&[f64]>,
) -> (adj_status, *mut adj_operator) {
    let mut op = null_mut();
    // SAFETY: arrays of the documented sizes.
    let status = unsafe {
        adj_operator_new_grid_poisson(
            nx,
            ny,
            nz,
            cells.as_ptr(),
            spacing.map_or(null(), |s| s.as_ptr()),
            beta.map_or(null(), |b| b.as_ptr()),
            &mut op,
        )
    };
    (status, op)
}

/// An nx×ny grid of fluid with an air top row.
fn smoke_cells(nx: usize, ny: usize) -> Vec<u8> {
    (0..nx * ny)
        .map(|c| {
            if c / nx == ny - 1 {
                adj_cell::ADJ_CELL_AIR as u8
            } else {
                adj_cell::ADJ_CELL_FLUID as u8
            }
        })
        .collect()
}

#[test]
fn finite_inputs_that_would_overflow_the_stencil_are_rejected() {
    let cells = smoke_cells(6, 5);
    let beta = vec![1e308; 2 * 30];
    let (status, op) = grid(6, 5, 1, &cells, None, Some(&beta));
    expect(
        status,
        ADJ_ERR_INVALID_ARGUMENT,
        &["`face_coefficients`", "overflows"],
    );
    assert!(op.is_null());
    let (status, _) = grid(6, 5, 1, &cells, Some(&[1e-200, 1.0]), None);
    expect(
        status,
        ADJ_ERR_INVALID_ARGUMENT,
        &["`spacing`", "overflows"],
    );
    let (status, _) = grid(6, 5, 1, &cells, Some(&[1e-154, 1.0]), Some(&vec![1e4; 60]));
    expect(status, ADJ_ERR_INVALID_ARGUMENT, &["`face_coefficients`"]);

    // Large but representable weights: every entry point that used to
    // panic on the CSR export now works.
    let (status, op) = grid(6, 5, 1, &cells, None, Some(&vec![1e300; 60]));
    assert_eq!(status, ADJ_OK, "{}", last_error());
    let mut nnz = 0;
    // SAFETY: live handles and arrays of the reported sizes.
    unsafe {
        assert_eq!(
            adj_operator_csr_nnz(op, &mut nnz),
            ADJ_OK,
            "{}",
            last_error()
        );
        let mut n = 0;
        adj_operator_dim(op, &mut n);
        let (mut ptr, mut cols, mut vals) = (vec![0i64; n + 1], vec![0i64; nnz], vec![0.0; nnz]);
        // Each output length is checked before anything is written.
        for (lengths, named) in [
            ([n, nnz, nnz], "row_ptr_len"),
            ([n + 1, nnz + 1, nnz], "col_idx_len"),
            ([n + 1, nnz, nnz - 1], "values_len"),
        ] {
            let status = adj_operator_write_csr_i64(
                op,
                ptr.as_mut_ptr(),
                lengths[0],
                cols.as_mut_ptr(),
                lengths[1],
                vals.as_mut_ptr(),
                lengths[2],
            );
            expect(status, ADJ_ERR_DIMENSION_MISMATCH, &[named]);
            assert!(ptr.iter().all(|&p| p == 0) && vals.iter().all(|&v| v == 0.0));
        }
        assert_eq!(
            adj_operator_write_csr_i64(
                op,
                ptr.as_mut_ptr(),
                n + 1,
                cols.as_mut_ptr(),
                nnz,
                vals.as_mut_ptr(),
                nnz
            ),
            ADJ_OK
        );
        assert!(vals.iter().all(|v| v.is_finite()));
        // The deprecated spelling writes the same arrays.
        let (mut ptr_0, mut cols_0, mut vals_0) =
            (vec![0i64; n + 1], vec![0i64; nnz], vec![0.0; nnz]);
        assert_eq!(
            adj_operator_to_csr_i64(
                op,
                ptr_0.as_mut_ptr(),
                cols_0.as_mut_ptr(),
                vals_0.as_mut_ptr()
            ),
            ADJ_OK
        );
        assert_eq!((ptr_0, cols_0, vals_0), (ptr, cols, vals));
        for kind in [
            adj_precond_kind::ADJ_PRECOND_IC0,
            adj_precond_kind::ADJ_PRECOND_MULTIGRID,
        ] {
            let mut pc = null_mut();
            assert_eq!(
                adj_precond_new(op, kind as u32, &mut pc),
                ADJ_OK,
                "{}",
                last_error()
            );
            adj_precond_free(pc);
        }
        adj_operator_free(op);
    }
}

#[test]
fn csr_sizes_are_checked_before_any_array_is_read() {
    // row_ptr has one entry: reading row_ptr[n_rows] would be out of bounds.
    let row_ptr = [0i64];
    for n_rows in [usize::MAX, 1 << 40, u32::MAX as usize] {
        let mut op = null_mut();
        // SAFETY: the library must not read past row_ptr[0] for these sizes.
        let status = unsafe {
            adj_operator_new_csr_i64(n_rows, n_rows, row_ptr.as_ptr(), null(), null(), &mut op)
        };
        expect(status, ADJ_ERR_INVALID_ARGUMENT, &["`n_rows`"]);
        assert!(op.is_null());
    }
    let mut op = null_mut();
    // SAFETY: as above.
    let status =
        unsafe { adj_operator_new_csr_i32(3, 4, [0i32].as_ptr(), null(), null(), &mut op) };
    expect(status, ADJ_ERR_INVALID_ARGUMENT, &["`n_cols`"]);
}

/// The child half of [`allocations_sized_by_the_caller_fail_with_a_status`]:
/// under a 3.5 GB address-space limit, a CSR matrix of 2^29 empty rows and
/// a grid of 2^31 cells need more than that.
#[test]
#[ignore = "run in a child process by allocations_sized_by_the_caller_fail_with_a_status"]
fn out_of_memory_child() {
    let limit = libc::rlimit {
        rlim_cur: 3_500_000_000,
        rlim_max: 3_500_000_000,
    };
    // SAFETY: plain system call on this process.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) }, 0);
    let rows = 1usize << 29;
    let row_ptr = vec![0i32; rows + 1]; // 2 GB, zero pages
    let mut op = null_mut();
    // SAFETY: row_ptr holds rows + 1 entries; no entries follow.
    let status = unsafe {
        adj_operator_new_csr_i32(
            rows,
            rows,
            row_ptr.as_ptr(),
            [0i32].as_ptr(),
            [0.0].as_ptr(),
            &mut op,
        )
    };
    expect(status, ADJ_ERR_OUT_OF_MEMORY, &["out of memory"]);
    drop(row_ptr);
    let cells = vec![0u8; 1 << 31]; // 2 GB of fluid flags
    let (status, _) = grid(1 << 11, 1 << 10, 1 << 10, &cells, None, None);
    expect(status, ADJ_ERR_OUT_OF_MEMORY, &["out of memory"]);
    println!("CHILD OK");
}

#[test]
fn allocations_sized_by_the_caller_fail_with_a_status() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "out_of_memory_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("CHILD OK"), "{text}");
    // The library's panics never reach the caller's stderr, and nothing
    // else was printed by it either.
    assert!(!text.contains("panicked at src/"), "{text}");
}

// ------------------------------------------------------------ implicit differentiation

/// y = 0 (A = 0).
unsafe extern "C" fn zero(_: *mut c_void, _: *const f64, _: usize, y: *mut f64, n: usize) -> c_int {
    // SAFETY: y holds n doubles.
    unsafe { std::slice::from_raw_parts_mut(y, n) }.fill(0.0);
    0
}

/// y = v (B = I).
unsafe extern "C" fn identity(
    _: *mut c_void,
    v: *const f64,
    n: usize,
    y: *mut f64,
    _: usize,
) -> c_int {
    // SAFETY: v and y hold n doubles.
    unsafe { std::ptr::copy_nonoverlapping(v, y, n) };
    0
}

/// y = 2 v (A = 2I).
unsafe extern "C" fn twice(
    _: *mut c_void,
    v: *const f64,
    n: usize,
    y: *mut f64,
    _: usize,
) -> c_int {
    // SAFETY: v and y hold n doubles.
    let (v, y) = unsafe {
        (
            std::slice::from_raw_parts(v, n),
            std::slice::from_raw_parts_mut(y, n),
        )
    };
    for (y, v) in y.iter_mut().zip(v) {
        *y = 2.0 * v;
    }
    0
}

/// Writes NaN (a broken product).
unsafe extern "C" fn nan(_: *mut c_void, _: *const f64, _: usize, y: *mut f64, n: usize) -> c_int {
    // SAFETY: y holds n doubles.
    unsafe { std::slice::from_raw_parts_mut(y, n) }.fill(f64::NAN);
    0
}

fn problem(a: adj_jacobian_fn, b_t: adj_jacobian_fn) -> adj_root_problem {
    let mut p = init(adj_root_problem_init);
    p.n = 3;
    p.p = 3;
    p.a = a;
    p.a_t = a;
    p.b = Some(identity);
    p.b_t = b_t;
    p
}

fn vjp(
    p: &adj_root_problem,
    cotangent: &[f64],
    options: &adj_implicit_options,
) -> (adj_status, Vec<f64>, adj_solve_report) {
    let mut out = vec![7.0; 3];
    let mut report = init(adj_solve_report_init);
    // SAFETY: arrays of n = p = 3 doubles.
    let status = unsafe {
        adj_implicit_vjp(
            p,
            cotangent.as_ptr(),
            3,
            options,
            out.as_mut_ptr(),
            3,
            &mut report,
        )
    };
    (status, out, report)
}

#[test]
fn a_singular_system_never_gives_a_gradient() {
    // A = 0, B = I: no gradient exists; CG on the normal equations used to
    // converge at once on Aᵀ(−v̄) = 0 and return 0 as the gradient.
    let p = problem(Some(zero), Some(identity));
    for solver in [
        adj_solver::ADJ_SOLVER_NORMAL_CG,
        adj_solver::ADJ_SOLVER_GMRES,
        adj_solver::ADJ_SOLVER_BICGSTAB,
        adj_solver::ADJ_SOLVER_DENSE_LU,
    ] {
        let mut options = init(adj_implicit_options_init);
        options.solver = solver as u32;
        let (status, out, report) = vjp(&p, &[1.0, 2.0, 3.0], &options);
        assert_eq!(
            status,
            ADJ_ERR_NOT_CONVERGED,
            "{solver:?}: {}",
            last_error()
        );
        assert_eq!(out, vec![7.0; 3], "{solver:?}: output untouched");
        if solver == adj_solver::ADJ_SOLVER_NORMAL_CG {
            assert_eq!(report.reason, adj_solve_reason::ADJ_DIVERGED_BREAKDOWN);
            assert!((report.relative_residual - 1.0).abs() < 1e-12);
        }
    }
    // A nonsingular system through the normal equations still converges,
    // judged on the true residual: u = −v̄/2 and the gradient Bᵀu.
    let p = problem(Some(twice), Some(identity));
    let mut options = init(adj_implicit_options_init);
    options.solver = adj_solver::ADJ_SOLVER_NORMAL_CG as u32;
    let (status, out, report) = vjp(&p, &[1.0, 2.0, 3.0], &options);
    assert_eq!(status, ADJ_OK, "{}", last_error());
    assert!(report.relative_residual <= 1e-10);
    for (o, e) in out.iter().zip([-0.5, -1.0, -1.5]) {
        assert!((o - e).abs() < 1e-9, "{out:?}");
    }
}

#[test]
fn implicit_inputs_are_checked_and_named() {
    let p = problem(Some(twice), Some(identity));
    let options = init(adj_implicit_options_init);
    let (status, out, _) = vjp(&p, &[1.0, f64::NAN, 3.0], &options);
    expect(
        status,
        ADJ_ERR_INVALID_ARGUMENT,
        &["`cotangent`", "cotangent[1] is NaN"],
    );
    assert_eq!(out, vec![7.0; 3]);
    // A tangent through the JVP.
    let mut out = vec![7.0; 3];
    // SAFETY: arrays of 3 doubles.
    let status = unsafe {
        adj_implicit_jvp(
            &p,
            [f64::INFINITY, 0.0, 0.0].as_ptr(),
            3,
            &options,
            out.as_mut_ptr(),
            3,
            null_mut(),
        )
    };
    expect(status, ADJ_ERR_INVALID_ARGUMENT, &["`tangent`"]);
    // A warm start.
    let start = [0.0, f64::NAN, 0.0];
    let mut o = options;
    o.warm_start = start.as_ptr();
    let (status, _, _) = vjp(&p, &[1.0, 2.0, 3.0], &o);
    expect(status, ADJ_ERR_INVALID_ARGUMENT, &["`warm_start`"]);
    // Tolerances, for the VJP and the JVP alike.
    for (rtol, atol, name) in [
        (f64::NAN, 0.0, "`rtol`"),
        (-1.0, 0.0, "`rtol`"),
        (1e-10, -1.0, "`atol`"),
        (1e-10, f64::INFINITY, "`atol`"),
    ] {
        let mut o = options;
        o.rtol = rtol;
        o.atol = atol;
        let (status, _, _) = vjp(&p, &[1.0, 2.0, 3.0], &o);
        expect(status, ADJ_ERR_INVALID_ARGUMENT, &[name]);
        // SAFETY: arrays of 3 doubles.
        let status = unsafe {
            adj_implicit_jvp(
                &p,
                [1.0; 3].as_ptr(),
                3,
                &o,
                out.as_mut_ptr(),
                3,
                null_mut(),
            )
        };
        expect(status, ADJ_ERR_INVALID_ARGUMENT, &[name]);
    }
    // A product that writes NaN for a finite input is named.
    let broken = problem(Some(twice), Some(nan));
    let (status, out, _) = vjp(&broken, &[1.0, 2.0, 3.0], &options);
    expect(status, ADJ_ERR_INVALID_ARGUMENT, &["`b_t`", "NaN"]);
    assert_eq!(out, vec![7.0; 3]);
}

#[test]
fn linear_solve_gradient_checks_its_vectors() {
    let cells = smoke_cells(5, 4);
    let (_, op) = grid(5, 4, 1, &cells, None, None);
    let n = 15;
    let mut options = init(adj_implicit_options_init);
    options.solver = adj_solver::ADJ_SOLVER_CG as u32;
    let mut grad_b = vec![7.0; n];
    let mut x = vec![1.0; n];
    let x_bar = vec![1.0; n];
    x[4] = f64::NAN;
    // SAFETY: arrays of n doubles; grad_values skipped.
    unsafe {
        let status = adj_linear_solve_vjp(
            op,
            x.as_ptr(),
            x_bar.as_ptr(),
            n,
            &options,
            grad_b.as_mut_ptr(),
            null_mut(),
            0,
            null_mut(),
        );
        expect(status, ADJ_ERR_INVALID_ARGUMENT, &["`x`", "x[4] is NaN"]);
        x[4] = 1.0;
        let mut bad_bar = x_bar.clone();
        bad_bar[0] = f64::NEG_INFINITY;
        let status = adj_linear_solve_vjp(
            op,
            x.as_ptr(),
            bad_bar.as_ptr(),
            n,
            &options,
            grad_b.as_mut_ptr(),
            null_mut(),
            0,
            null_mut(),
        );
        expect(status, ADJ_ERR_INVALID_ARGUMENT, &["`x_bar`"]);
        assert_eq!(grad_b, vec![7.0; n]);
        adj_operator_free(op);
    }
}

// ------------------------------------------------------------ optimal transport

struct Ot {
    n: usize,
    m: usize,
    a: Vec<f64>,
    b: Vec<f64>,
    cost: Vec<f64>,
}

/// A random n×m problem with costs from points in the unit square (p = 1:
/// L1, p = 2: squared Euclidean), normalised to [0, 1].
fn ot_problem(n: usize, m: usize, p: f64, seed: u64) -> Ot {
    let mut rng = Rng::new(seed);
    let x: Vec<f64> = (0..2 * n).map(|_| rng.uniform()).collect();
    let y: Vec<f64> = (0..2 * m).map(|_| rng.uniform()).collect();
    let mut cost = vec![0.0; n * m];
    // SAFETY: arrays of the documented sizes.
    let status = unsafe {
        if p == 2.0 {
            adj_ot_cost_sqeuclidean(x.as_ptr(), n, y.as_ptr(), m, 2, cost.as_mut_ptr())
        } else {
            adj_ot_cost_pnorm(x.as_ptr(), n, y.as_ptr(), m, 2, p, cost.as_mut_ptr())
        }
    };
    assert_eq!(status, ADJ_OK);
    let max = cost.iter().cloned().fold(0.0, f64::max);
    cost.iter_mut().for_each(|c| *c /= max);
    let a: Vec<f64> = (0..n).map(|_| rng.range(0.5, 1.5)).collect();
    let b: Vec<f64> = (0..m).map(|_| rng.range(0.5, 1.5)).collect();
    let (sa, sb) = (a.iter().sum::<f64>(), b.iter().sum::<f64>());
    Ot {
        n,
        m,
        a: a.iter().map(|v| v / sa).collect(),
        b: b.iter().map(|v| v / sb).collect(),
        cost,
    }
}

fn ot_solve(ot: &Ot, options: &adj_ot_options) -> (adj_status, Vec<f64>, Vec<f64>, adj_ot_result) {
    let (mut f, mut g) = (vec![0.0; ot.n], vec![0.0; ot.m]);
    let mut result = init(adj_ot_result_init);
    // SAFETY: arrays of the documented sizes.
    let status = unsafe {
        adj_ot_solve(
            ot.a.as_ptr(),
            ot.n,
            ot.b.as_ptr(),
            ot.m,
            ot.cost.as_ptr(),
            options,
            f.as_mut_ptr(),
            g.as_mut_ptr(),
            null_mut(),
            &mut result,
        )
    };
    (status, f, g, result)
}

#[test]
fn sinkhorn_returns_potentials_that_meet_the_tolerance() {
    // Each used to stop when its row error met tol and then fail the final
    // recheck of both marginals by a hair ("1.000e-12 > tol 1.000e-12"),
    // far below the iteration limit. A problem may still need more than
    // the limit (then it says so); it must never fail before it.
    let mut options = init(adj_ot_options_init);
    options.method = adj_ot_method::ADJ_OT_SINKHORN as u32;
    options.max_sinkhorn_iterations = 20_000;
    let (mut spurious, mut converged) = (Vec::new(), 0);
    for (p, eps, tol, seeds) in [
        (1.0, 0.01, 1e-10, 0..10),
        (2.0, 1.0 / 1200.0, 1e-12, 0..20),
        (1.0, 1.0 / 1200.0, 1e-12, 0..20),
    ] {
        options.eps = eps;
        options.tol = tol;
        for seed in seeds {
            let ot = ot_problem(37, 53, p, seed);
            let (status, _, _, result) = ot_solve(&ot, &options);
            if status == ADJ_OK {
                assert!(result.marginal_error <= tol);
                converged += 1;
            } else if !last_error().contains("after 20000 Sinkhorn") {
                spurious.push(format!(
                    "p = {p}, eps = {eps}, seed {seed}: {}",
                    last_error()
                ));
            }
        }
    }
    assert!(spurious.is_empty(), "{spurious:#?}");
    assert!(converged >= 40, "only {converged} of 50 converged");
}

#[test]
fn ot_inputs_are_checked_and_named() {
    let ot = ot_problem(6, 5, 2.0, 1);
    let mut options = init(adj_ot_options_init);
    options.eps = 0.1;
    for bad in [f64::NAN, -1.0, 2.0] {
        options.cg_rtol = bad;
        let (status, ..) = ot_solve(&ot, &options);
        expect(status, ADJ_ERR_INVALID_ARGUMENT, &["`cg_rtol`"]);
    }
    options.cg_rtol = 1e-10;
    let (status, f, g, _) = ot_solve(&ot, &options);
    assert_eq!(status, ADJ_OK, "{}", last_error());
    let (n, m, eps) = (ot.n, ot.m, options.eps);
    let (mut gc, mut ga, mut gb) = (vec![7.0; n * m], vec![7.0; n], vec![7.0; m]);
    // SAFETY: arrays of the documented sizes.
    unsafe {
        // Potentials.
        let mut bad_f = f.clone();
        bad_f[2] = f64::NAN;
        let status = adj_ot_cost_gradient(
            ot.cost.as_ptr(),
            n,
            m,
            eps,
            bad_f.as_ptr(),
            g.as_ptr(),
            gc.as_mut_ptr(),
            ga.as_mut_ptr(),
            gb.as_mut_ptr(),
        );
        expect(status, ADJ_ERR_INVALID_ARGUMENT, &["`f`", "f[2] is NaN"]);
        let mut bad_g = g.clone();
        bad_g[0] = f64::INFINITY;
        let status = adj_ot_cost_gradient(
            ot.cost.as_ptr(),
            n,
            m,
            eps,
            f.as_ptr(),
            bad_g.as_ptr(),
            gc.as_mut_ptr(),
            ga.as_mut_ptr(),
            gb.as_mut_ptr(),
        );
        expect(status, ADJ_ERR_INVALID_ARGUMENT, &["`g`"]);
        // Finite potentials so large that the plan overflows: no NaN or
        // infinity comes back as ADJ_OK.
        let huge: Vec<f64> = f.iter().map(|v| v + 1e3).collect();
        let status = adj_ot_cost_gradient(
            ot.cost.as_ptr(),
            n,
            m,
            eps,
            huge.as_ptr(),
            g.as_ptr(),
            gc.as_mut_ptr(),
            ga.as_mut_ptr(),
            gb.as_mut_ptr(),
        );
        assert_ne!(status, ADJ_OK, "overflowing plan returned OK");
        assert_eq!(gc, vec![7.0; n * m]);
        // The VJP's and JVP's own inputs and tolerances.
        let mut plan_bar = vec![1.0; n * m];
        plan_bar[3] = f64::NAN;
        let status = adj_ot_plan_vjp(
            ot.cost.as_ptr(),
            n,
            m,
            eps,
            f.as_ptr(),
            g.as_ptr(),
            plan_bar.as_ptr(),
            null(),
            null_mut(),
            ga.as_mut_ptr(),
            gb.as_mut_ptr(),
            null_mut(),
        );
        expect(status, ADJ_ERR_INVALID_ARGUMENT, &["`plan_bar`"]);
        plan_bar[3] = 1.0;
        let mut cg = init(adj_cg_options_init);
        for (rtol, atol, name) in [
            (f64::INFINITY, 0.0, "`rtol`"),
            (-1.0, 0.0, "`rtol`"),
            (1e-10, f64::NAN, "`atol`"),
        ] {
            cg.rtol = rtol;
            cg.atol = atol;
            let status = adj_ot_plan_vjp(
                ot.cost.as_ptr(),
                n,
                m,
                eps,
                f.as_ptr(),
                g.as_ptr(),
                plan_bar.as_ptr(),
                &cg,
                null_mut(),
                ga.as_mut_ptr(),
                gb.as_mut_ptr(),
                null_mut(),
            );
            expect(status, ADJ_ERR_INVALID_ARGUMENT, &[name]);
            let mut plan_dot = vec![0.0; n * m];
            let status = adj_ot_plan_jvp(
                ot.cost.as_ptr(),
                n,
                m,
                eps,
                f.as_ptr(),
                g.as_ptr(),
                plan_bar.as_ptr(),
                vec![0.0; n].as_ptr(),
                vec![0.0; m].as_ptr(),
                &cg,
                plan_dot.as_mut_ptr(),
                null_mut(),
            );
            expect(status, ADJ_ERR_INVALID_ARGUMENT, &[name]);
        }
        let mut plan_dot = vec![7.0; n * m];
        let mut cost_dot = vec![0.5; n * m];
        cost_dot[1] = f64::NAN;
        let status = adj_ot_plan_jvp(
            ot.cost.as_ptr(),
            n,
            m,
            eps,
            f.as_ptr(),
            g.as_ptr(),
            cost_dot.as_ptr(),
            vec![0.0; n].as_ptr(),
            vec![0.0; m].as_ptr(),
            null(),
            plan_dot.as_mut_ptr(),
            null_mut(),
        );
        expect(status, ADJ_ERR_INVALID_ARGUMENT, &["`cost_dot`"]);
        cost_dot[1] = 0.5;
        let mut a_dot = vec![0.0; n];
        a_dot[0] = f64::NAN;
        let status = adj_ot_plan_jvp(
            ot.cost.as_ptr(),
            n,
            m,
            eps,
            f.as_ptr(),
            g.as_ptr(),
            cost_dot.as_ptr(),
            a_dot.as_ptr(),
            vec![0.0; m].as_ptr(),
            null(),
            plan_dot.as_mut_ptr(),
            null_mut(),
        );
        expect(status, ADJ_ERR_INVALID_ARGUMENT, &["`a_dot`"]);
        assert_eq!(plan_dot, vec![7.0; n * m]);
    }
}

#[test]
fn both_ot_gradients_use_one_gauge() {
    // The plan VJP's grad_a is centred like the cost gradient's, and the
    // pair (grad_a, grad_b) gives the same directional derivative along any
    // equal-mass tangent as before the shift: checked against the JVP.
    let ot = ot_problem(7, 9, 2.0, 3);
    let mut options = init(adj_ot_options_init);
    options.eps = 0.05;
    options.tol = 1e-12;
    let (status, f, g, _) = ot_solve(&ot, &options);
    assert_eq!(status, ADJ_OK, "{}", last_error());
    let (n, m, eps) = (ot.n, ot.m, options.eps);
    let mut rng = Rng::new(5);
    let plan_bar = rng.vector(n * m);
    let (mut gc, mut ga, mut gb) = (vec![0.0; n * m], vec![0.0; n], vec![0.0; m]);
    let mut cg = init(adj_cg_options_init);
    cg.rtol = 1e-13;
    // SAFETY: arrays of the documented sizes.
    unsafe {
        assert_eq!(
            adj_ot_plan_vjp(
                ot.cost.as_ptr(),
                n,
                m,
                eps,
                f.as_ptr(),
                g.as_ptr(),
                plan_bar.as_ptr(),
                &cg,
                gc.as_mut_ptr(),
                ga.as_mut_ptr(),
                gb.as_mut_ptr(),
                null_mut()
            ),
            ADJ_OK
        );
    }
    assert!(
        ga.iter().sum::<f64>().abs() < 1e-12,
        "Σ grad_a = {}",
        ga.iter().sum::<f64>()
    );
    let (mut ca, mut cb) = (vec![0.0; n], vec![0.0; m]);
    // SAFETY: as above.
    unsafe {
        assert_eq!(
            adj_ot_cost_gradient(
                ot.cost.as_ptr(),
                n,
                m,
                eps,
                f.as_ptr(),
                g.as_ptr(),
                null_mut(),
                ca.as_mut_ptr(),
                cb.as_mut_ptr()
            ),
            ADJ_OK
        );
    }
    assert!(ca.iter().sum::<f64>().abs() < 1e-12);
    // ⟨P̄, Ṗ⟩ = ⟨grad_a, ȧ⟩ + ⟨grad_b, ḃ⟩ for Σȧ = Σḃ.
    let mut a_dot = rng.vector(n);
    let mut b_dot = rng.vector(m);
    let shift = (a_dot.iter().sum::<f64>() - b_dot.iter().sum::<f64>()) / m as f64;
    b_dot.iter_mut().for_each(|v| *v += shift);
    a_dot[0] += 0.0;
    let mut plan_dot = vec![0.0; n * m];
    // SAFETY: as above.
    unsafe {
        assert_eq!(
            adj_ot_plan_jvp(
                ot.cost.as_ptr(),
                n,
                m,
                eps,
                f.as_ptr(),
                g.as_ptr(),
                vec![0.0; n * m].as_ptr(),
                a_dot.as_ptr(),
                b_dot.as_ptr(),
                &cg,
                plan_dot.as_mut_ptr(),
                null_mut()
            ),
            ADJ_OK,
            "{}",
            last_error()
        );
    }
    let lhs: f64 = plan_bar.iter().zip(&plan_dot).map(|(p, d)| p * d).sum();
    let rhs: f64 = ga.iter().zip(&a_dot).map(|(g, d)| g * d).sum::<f64>()
        + gb.iter().zip(&b_dot).map(|(g, d)| g * d).sum::<f64>();
    assert!(
        (lhs - rhs).abs() <= 1e-8 * lhs.abs().max(1.0),
        "{lhs} vs {rhs}"
    );
}

// ------------------------------------------------------------ one status per cause

#[test]
fn one_status_per_cause_in_every_entry_point() {
    // A closed box (no air): singular, and b = 1 everywhere is inconsistent.
    let cells = vec![adj_cell::ADJ_CELL_FLUID as u8; 16];
    let (status, op) = grid(4, 4, 1, &cells, None, None);
    assert_eq!(status, ADJ_OK);
    let b = [1.0; 16];
    let mut x = vec![0.0; 16];
    // SAFETY: arrays of 16 doubles.
    unsafe {
        let serial = adj_cg_solve(
            op,
            null(),
            b.as_ptr(),
            x.as_mut_ptr(),
            16,
            null(),
            null_mut(),
        );
        expect(serial, ADJ_ERR_INVALID_ARGUMENT, &["`b`", "inconsistent"]);
        let distributed = adj_cg_solve_distributed(
            op,
            null(),
            b.as_ptr(),
            x.as_mut_ptr(),
            16,
            null(),
            None,
            null_mut(),
            null_mut(),
        );
        expect(
            distributed,
            ADJ_ERR_INVALID_ARGUMENT,
            &["`b`", "inconsistent"],
        );
        let cdm = adj_cdm_solve(
            op,
            null(),
            null(),
            Some(copy),
            null_mut(),
            b.as_ptr(),
            x.as_mut_ptr(),
            16,
            null(),
            null_mut(),
            null_mut(),
        );
        expect(cdm, ADJ_ERR_INVALID_ARGUMENT, &["`b`", "inconsistent"]);
        adj_operator_free(op);
    }
    // A NaN Jacobi diagonal is an invalid argument; a non-positive one makes
    // M indefinite.
    let mut pc = null_mut();
    // SAFETY: arrays of 3 doubles.
    unsafe {
        expect(
            adj_precond_new_jacobi([1.0, f64::NAN, 1.0].as_ptr(), 3, &mut pc),
            ADJ_ERR_INVALID_ARGUMENT,
            &["`diagonal`"],
        );
        expect(
            adj_precond_new_jacobi([1.0, -1.0, 1.0].as_ptr(), 3, &mut pc),
            ADJ_ERR_NOT_SPD,
            &["diagonal entry 1"],
        );
    }
    // The conjugate-direction method on a grid with an isolated fluid cell
    // (all four neighbours solid: a zero row) and b = 0 is the trivial
    // solve x = 0, as for CG.
    let (nx, ny) = (6, 5);
    let mut cells = smoke_cells(nx, ny);
    for (i, j) in [(0, 1), (2, 1), (1, 0), (1, 2)] {
        cells[i + nx * j] = adj_cell::ADJ_CELL_SOLID as u8;
    }
    let (status, op) = grid(nx, ny, 1, &cells, None, None);
    assert_eq!(status, ADJ_OK);
    let mut n = 0;
    let model_path = CString::new(
        common::root()
            .join("models/cdm_2d.safetensors")
            .to_str()
            .unwrap(),
    )
    .unwrap();
    let (status, model) = load(&model_path);
    assert_eq!(status, ADJ_OK, "{}", last_error());
    // SAFETY: live handles, arrays of n doubles.
    unsafe {
        adj_operator_dim(op, &mut n);
        let b = vec![0.0; n];
        for (m, direction) in [
            (model as *const adj_model, None),
            (null(), Some(copy as unsafe extern "C" fn(_, _, _, _) -> _)),
        ] {
            let mut x = vec![7.0; n];
            let mut report = init(adj_solve_report_init);
            let status = adj_cdm_solve(
                op,
                m,
                null(),
                direction,
                null_mut(),
                b.as_ptr(),
                x.as_mut_ptr(),
                n,
                null(),
                &mut report,
                null_mut(),
            );
            assert_eq!(status, ADJ_OK, "{}", last_error());
            assert_eq!(x, vec![0.0; n]);
            assert_eq!(report.iterations, 0);
            let status = adj_cg_solve(
                op,
                null(),
                b.as_ptr(),
                x.as_mut_ptr(),
                n,
                null(),
                null_mut(),
            );
            assert_eq!(status, ADJ_OK, "{}", last_error());
        }
        adj_model_free(model);
        adj_operator_free(op);
    }
}

/// d = r.
unsafe extern "C" fn copy(_: *mut c_void, r: *const f64, d: *mut f64, n: usize) -> c_int {
    // SAFETY: r and d hold n doubles.
    unsafe { std::ptr::copy_nonoverlapping(r, d, n) };
    0
}

#[test]
fn conjugate_direction_options_are_checked() {
    let cells = smoke_cells(5, 4);
    let (_, op) = grid(5, 4, 1, &cells, None, None);
    let b = [1.0; 15];
    let mut x = vec![0.0; 15];
    for bad in [f64::NAN, -1.0, 1.5] {
        let mut options = init(adj_cdm_options_init);
        options.stall_cosine = bad;
        // SAFETY: arrays of 15 doubles.
        let status = unsafe {
            adj_cdm_solve(
                op,
                null(),
                null(),
                Some(copy),
                null_mut(),
                b.as_ptr(),
                x.as_mut_ptr(),
                15,
                &options,
                null_mut(),
                null_mut(),
            )
        };
        expect(status, ADJ_ERR_INVALID_ARGUMENT, &["`stall_cosine`"]);
    }
    // SAFETY: a live handle.
    unsafe { adj_operator_free(op) };
}

// ------------------------------------------------------------ versioned structs

#[test]
fn option_and_report_structs_carry_their_size() {
    let cells = smoke_cells(5, 4);
    let (_, op) = grid(5, 4, 1, &cells, None, None);
    let b = [1.0; 15];
    let solve = |options: *const adj_cg_options, report: *mut adj_solve_report| {
        let mut x = vec![0.0; 15];
        // SAFETY: arrays of 15 doubles; the structs as given.
        let status =
            unsafe { adj_cg_solve(op, null(), b.as_ptr(), x.as_mut_ptr(), 15, options, report) };
        (status, x)
    };
    let size = std::mem::size_of::<adj_cg_options>();
    let options = init(adj_cg_options_init);
    assert_eq!(options.struct_size, size);
    assert_eq!(options.rtol, 1e-8);
    let mut report = init(adj_solve_report_init);
    let (status, _) = solve(&options, &mut report);
    assert_eq!(status, ADJ_OK, "{}", last_error());
    assert!(report.iterations > 0);

    // An uninitialised (zero) or too small size is rejected, naming it.
    let first_report = std::mem::offset_of!(adj_solve_report, null_space_component);
    let first_options = std::mem::offset_of!(adj_cg_options, norm);
    for (bad, bad_report) in [(0, 0), (8, 8), (first_options - 8, first_report - 8)] {
        let mut o = options;
        o.struct_size = bad;
        let (status, _) = solve(&o, null_mut());
        expect(
            status,
            ADJ_ERR_INVALID_ARGUMENT,
            &["`options`", "struct_size", "adj_cg_options_init"],
        );
        let mut r = init(adj_solve_report_init);
        r.struct_size = bad_report;
        let (status, _) = solve(null(), &mut r);
        expect(
            status,
            ADJ_ERR_INVALID_ARGUMENT,
            &["`report`", "struct_size"],
        );
    }
    // A caller of 0.2.0, whose report ends before `null_space_component`
    // (appended in 0.3.0), gets the fields it has and nothing beyond them.
    let mut old = init(adj_solve_report_init);
    old.struct_size = first_report;
    old.null_space_component = 42.0;
    let (status, _) = solve(null(), &mut old);
    assert_eq!(status, ADJ_OK, "{}", last_error());
    assert!(old.iterations > 0);
    assert_eq!(
        old.null_space_component, 42.0,
        "a field the caller does not have was written"
    );
    let mut old_init = init(adj_solve_report_init);
    old_init.null_space_component = 42.0;
    // SAFETY: the struct has room for the size passed.
    assert_eq!(
        unsafe { adj_solve_report_init(&mut old_init, first_report) },
        ADJ_OK
    );
    assert_eq!(old_init.struct_size, first_report);
    assert_eq!(
        old_init.null_space_component, 42.0,
        "init wrote past the caller's size"
    );
    // A newer caller's larger struct: accepted when the fields this
    // library does not know are zero, rejected when one is set.
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Newer {
        known: adj_cg_options,
        future: [u64; 3],
    }
    let mut newer = Newer {
        known: options,
        future: [0; 3],
    };
    // SAFETY: Newer has room for its size.
    let status = unsafe { adj_cg_options_init(&mut newer.known, std::mem::size_of::<Newer>()) };
    assert_eq!(status, ADJ_OK);
    assert_eq!(newer.known.struct_size, std::mem::size_of::<Newer>());
    assert_eq!(
        newer.future, [0; 3],
        "init zeroes the fields it does not know"
    );
    newer.known.rtol = 1e-12;
    let (status, _) = solve(&newer.known, null_mut());
    assert_eq!(status, ADJ_OK, "{}", last_error());
    newer.future[1] = 1;
    let (status, _) = solve(&newer.known, null_mut());
    expect(
        status,
        ADJ_ERR_INVALID_ARGUMENT,
        &["`options`", "does not have"],
    );
    // A report of a newer caller gets the fields this library has.
    #[repr(C)]
    struct NewerReport {
        known: adj_solve_report,
        future: u64,
    }
    let mut newer_report = NewerReport {
        known: init(adj_solve_report_init),
        future: 99,
    };
    newer_report.known.struct_size = std::mem::size_of::<NewerReport>();
    let (status, _) = solve(null(), &mut newer_report.known);
    assert_eq!(status, ADJ_OK);
    assert!(newer_report.known.iterations > 0);
    assert_eq!(
        newer_report.future, 99,
        "bytes beyond the library's struct are not written"
    );
    // Garbage sizes are rejected without being read.
    let mut o = options;
    o.struct_size = usize::MAX;
    let (status, _) = solve(&o, null_mut());
    expect(status, ADJ_ERR_INVALID_ARGUMENT, &["struct_size"]);
    // SAFETY: NULL is reported.
    let status = unsafe { adj_cg_options_init(null_mut(), size) };
    expect(status, ADJ_ERR_NULL_ARGUMENT, &["`options`"]);
    // Every struct's init writes its own size.
    assert_eq!(
        init(adj_implicit_options_init).struct_size,
        std::mem::size_of::<adj_implicit_options>()
    );
    assert_eq!(
        init(adj_root_problem_init).struct_size,
        std::mem::size_of::<adj_root_problem>()
    );
    assert_eq!(
        init(adj_cdm_options_init).struct_size,
        std::mem::size_of::<adj_cdm_options>()
    );
    assert_eq!(
        init(adj_cdm_report_init).struct_size,
        std::mem::size_of::<adj_cdm_report>()
    );
    assert_eq!(
        init(adj_ot_options_init).struct_size,
        std::mem::size_of::<adj_ot_options>()
    );
    assert_eq!(
        init(adj_ot_result_init).struct_size,
        std::mem::size_of::<adj_ot_result>()
    );
    let _ = init_uninit(adj_solve_report_init);
    // The layouts, for bindings that declare the structs themselves.
    let sizeof = |name: &str| {
        let name = CString::new(name).unwrap();
        // SAFETY: a NUL-terminated string.
        unsafe { adj_sizeof(name.as_ptr()) }
    };
    assert_eq!(sizeof("adj_cg_options"), size);
    assert_eq!(
        sizeof("adj_solve_report"),
        std::mem::size_of::<adj_solve_report>()
    );
    assert_eq!(
        sizeof("adj_ot_result"),
        std::mem::size_of::<adj_ot_result>()
    );
    assert_eq!(sizeof("adj_operator"), 0, "opaque handles have no layout");
    assert_eq!(sizeof("no such struct"), 0);
    // SAFETY: NULL is accepted.
    assert_eq!(unsafe { adj_sizeof(null()) }, 0);
    // SAFETY: a live handle.
    unsafe { adj_operator_free(op) };
}
