//! The C ABI exercised from Rust: every status code triggered by bad input,
//! the message naming the argument, outputs untouched on failure, and
//! successful solves through the handles.

mod common;

use adjunct::ffi::*;
use common::*;
use std::ffi::{c_int, c_void, CStr};
use std::ptr::{null, null_mut};

/// 1D Laplacian with Dirichlet ends as CSR arrays (SPD).
fn laplacian_1d(n: usize) -> (Vec<i32>, Vec<i32>, Vec<f64>) {
    let (mut ptr, mut cols, mut vals) = (vec![0], vec![], vec![]);
    for i in 0..n {
        for j in [i.wrapping_sub(1), i, i + 1] {
            if j < n {
                cols.push(j as i32);
                vals.push(if j == i { 2.0 } else { -1.0 });
            }
        }
        ptr.push(cols.len() as i32);
    }
    (ptr, cols, vals)
}

fn csr_i32(n: usize, ptr: &[i32], cols: &[i32], vals: &[f64]) -> (adj_status, *mut adj_operator) {
    let mut op = null_mut();
    // SAFETY: arrays of the documented sizes.
    let s = unsafe {
        adj_operator_new_csr_i32(n, n, ptr.as_ptr(), cols.as_ptr(), vals.as_ptr(), &mut op)
    };
    (s, op)
}

#[test]
fn csr_construction_errors_name_the_argument() {
    use adj_status::*;
    let (ptr, cols, vals) = laplacian_1d(4);
    let mut op = null_mut();
    unsafe {
        expect(
            adj_operator_new_csr_i32(4, 4, ptr.as_ptr(), cols.as_ptr(), vals.as_ptr(), null_mut()),
            ADJ_ERR_NULL_ARGUMENT,
            &["`out`"],
        );
        expect(
            adj_operator_new_csr_i32(4, 4, null(), cols.as_ptr(), vals.as_ptr(), &mut op),
            ADJ_ERR_NULL_ARGUMENT,
            &["`row_ptr`"],
        );
        expect(
            adj_operator_new_csr_i32(4, 4, ptr.as_ptr(), null(), vals.as_ptr(), &mut op),
            ADJ_ERR_NULL_ARGUMENT,
            &["`col_idx`"],
        );
        expect(
            adj_operator_new_csr_i32(4, 4, ptr.as_ptr(), cols.as_ptr(), null(), &mut op),
            ADJ_ERR_NULL_ARGUMENT,
            &["`values`"],
        );
        expect(
            adj_operator_new_csr_i32(0, 0, ptr.as_ptr(), cols.as_ptr(), vals.as_ptr(), &mut op),
            ADJ_ERR_INVALID_ARGUMENT,
            &["`n_rows`"],
        );
        expect(
            adj_operator_new_csr_i32(4, 5, ptr.as_ptr(), cols.as_ptr(), vals.as_ptr(), &mut op),
            ADJ_ERR_INVALID_ARGUMENT,
            &["`n_cols`", "square"],
        );
    }
    assert!(op.is_null(), "no handle written on failure");

    let mut unsorted = cols.clone();
    unsorted.swap(2, 3); // row 1: columns 0,1,2 -> 0,2,1... positions 2,3,4 hold row 1
    let (s, op) = csr_i32(4, &ptr, &unsorted, &vals);
    expect(
        s,
        ADJ_ERR_INVALID_ARGUMENT,
        &["`col_idx`", "strictly increasing"],
    );
    assert!(op.is_null());
    let mut out_of_range = cols.clone();
    out_of_range[9] = 4;
    expect(
        csr_i32(4, &ptr, &out_of_range, &vals).0,
        ADJ_ERR_INVALID_ARGUMENT,
        &["`col_idx`", "out of range"],
    );
    out_of_range[9] = -1;
    expect(
        csr_i32(4, &ptr, &out_of_range, &vals).0,
        ADJ_ERR_INVALID_ARGUMENT,
        &["`col_idx`", "-1"],
    );
    let mut bad_ptr = ptr.clone();
    bad_ptr[2] = 1;
    expect(
        csr_i32(4, &bad_ptr, &cols, &vals).0,
        ADJ_ERR_INVALID_ARGUMENT,
        &["`row_ptr`", "non-decreasing"],
    );
    bad_ptr = ptr.clone();
    bad_ptr[0] = 1;
    expect(
        csr_i32(4, &bad_ptr, &cols, &vals).0,
        ADJ_ERR_INVALID_ARGUMENT,
        &["`row_ptr`", "must be 0"],
    );
    let mut nan = vals.clone();
    nan[3] = f64::NAN;
    expect(
        csr_i32(4, &ptr, &cols, &nan).0,
        ADJ_ERR_INVALID_ARGUMENT,
        &["`values`", "NaN"],
    );
}

#[test]
fn grid_and_precond_construction_errors() {
    use adj_status::*;
    let mut op = null_mut();
    let mut cells = [(adj_cell::ADJ_CELL_FLUID as u8); 12];
    cells[11] = adj_cell::ADJ_CELL_AIR as u8;
    unsafe {
        cells[5] = 7;
        expect(
            adj_operator_new_grid_poisson(4, 3, 1, cells.as_ptr(), null(), null(), &mut op),
            ADJ_ERR_INVALID_ARGUMENT,
            &["`cells`", "cells[5] = 7"],
        );
        cells[5] = adj_cell::ADJ_CELL_SOLID as u8;
        expect(
            adj_operator_new_grid_poisson(4, 3, 1, null(), null(), null(), &mut op),
            ADJ_ERR_NULL_ARGUMENT,
            &["`cells`"],
        );
        expect(
            adj_operator_new_grid_poisson(0, 3, 1, cells.as_ptr(), null(), null(), &mut op),
            ADJ_ERR_INVALID_ARGUMENT,
            &["`nx`"],
        );
        let h = [1.0, f64::NAN];
        expect(
            adj_operator_new_grid_poisson(4, 3, 1, cells.as_ptr(), h.as_ptr(), null(), &mut op),
            ADJ_ERR_INVALID_ARGUMENT,
            &["`spacing`"],
        );
        expect(
            adj_operator_new_callback(5, None, null_mut(), &mut op),
            ADJ_ERR_NULL_ARGUMENT,
            &["`apply`"],
        );
        expect(
            adj_operator_new_callback(0, Some(failing_apply), null_mut(), &mut op),
            ADJ_ERR_INVALID_ARGUMENT,
            &["`n`"],
        );
        assert!(op.is_null());

        assert_eq!(
            adj_operator_new_grid_poisson(4, 3, 1, cells.as_ptr(), null(), null(), &mut op),
            ADJ_OK
        );
        let mut pc = null_mut();
        expect(
            adj_precond_new(op, 9, &mut pc),
            ADJ_ERR_INVALID_ARGUMENT,
            &["`kind`"],
        );
        expect(
            adj_precond_new(null(), adj_precond_kind::ADJ_PRECOND_JACOBI as u32, &mut pc),
            ADJ_ERR_NULL_ARGUMENT,
            &["`op`"],
        );
        let diag = [1.0, 0.0, 2.0];
        expect(
            adj_precond_new_jacobi(diag.as_ptr(), 3, &mut pc),
            ADJ_ERR_NOT_SPD,
            &["diagonal entry 1"],
        );
        let mut cb = null_mut();
        assert_eq!(
            adj_operator_new_callback(3, Some(failing_apply), null_mut(), &mut cb),
            ADJ_OK
        );
        expect(
            adj_precond_new(cb, adj_precond_kind::ADJ_PRECOND_IC0 as u32, &mut pc),
            ADJ_ERR_INVALID_ARGUMENT,
            &["`op`", "callback"],
        );
        expect(
            adj_precond_new(cb, adj_precond_kind::ADJ_PRECOND_JACOBI as u32, &mut pc),
            ADJ_ERR_INVALID_ARGUMENT,
            &["`op`", "diagonal"],
        );
        assert!(pc.is_null());
        // An indefinite symmetric matrix: IC(0) finds a negative diagonal.
        let (ptr, cols, vals) = (vec![0, 1, 2], vec![0, 1], vec![1.0, -1.0]);
        let (s, indefinite) = csr_i32(2, &ptr, &cols, &vals);
        assert_eq!(s, ADJ_OK);
        expect(
            adj_precond_new(
                indefinite,
                adj_precond_kind::ADJ_PRECOND_IC0 as u32,
                &mut pc,
            ),
            ADJ_ERR_NOT_SPD,
            &["IC(0)"],
        );
        adj_operator_free(indefinite);
        adj_operator_free(cb);
        adj_operator_free(op);
        adj_operator_free(null_mut());
        adj_precond_free(null_mut());
    }
}

unsafe extern "C" fn failing_apply(_: *mut c_void, _: *const f64, _: *mut f64, _: usize) -> c_int {
    7
}

/// y = A x for the 1D Laplacian, failing (returning 3) at call number `*ctx`.
unsafe extern "C" fn laplacian_apply(
    ctx: *mut c_void,
    x: *const f64,
    y: *mut f64,
    n: usize,
) -> c_int {
    // SAFETY: the test passes a pointer to a usize countdown and valid vectors.
    unsafe {
        let countdown = &mut *(ctx as *mut usize);
        if *countdown == 0 {
            return 3;
        }
        *countdown -= 1;
        let (x, y) = (
            std::slice::from_raw_parts(x, n),
            std::slice::from_raw_parts_mut(y, n),
        );
        for i in 0..n {
            y[i] = 2.0 * x[i]
                - if i > 0 { x[i - 1] } else { 0.0 }
                - if i + 1 < n { x[i + 1] } else { 0.0 };
        }
    }
    0
}

unsafe extern "C" fn nan_precond(_: *mut c_void, _: *const f64, z: *mut f64, n: usize) -> c_int {
    // SAFETY: valid output vector of length n.
    unsafe { std::slice::from_raw_parts_mut(z, n) }.fill(f64::NAN);
    0
}

#[test]
fn solve_failures_report_and_leave_x_unchanged() {
    use adj_status::*;
    let n = 50;
    let (ptr, cols, vals) = laplacian_1d(n);
    let (s, op) = csr_i32(n, &ptr, &cols, &vals);
    assert_eq!(s, ADJ_OK);
    let b = Rng::new(1).vector(n);
    let sentinel = vec![42.0; n];
    let mut x = sentinel.clone();
    let mut report = init_uninit(adj_solve_report_init);
    unsafe {
        // NULL / dimension / NaN.
        expect(
            adj_cg_solve(
                null(),
                null(),
                b.as_ptr(),
                x.as_mut_ptr(),
                n,
                null(),
                null_mut(),
            ),
            ADJ_ERR_NULL_ARGUMENT,
            &["`op`"],
        );
        expect(
            adj_cg_solve(op, null(), null(), x.as_mut_ptr(), n, null(), null_mut()),
            ADJ_ERR_NULL_ARGUMENT,
            &["`b`"],
        );
        expect(
            adj_cg_solve(op, null(), b.as_ptr(), null_mut(), n, null(), null_mut()),
            ADJ_ERR_NULL_ARGUMENT,
            &["`x`"],
        );
        expect(
            adj_cg_solve(
                op,
                null(),
                b.as_ptr(),
                x.as_mut_ptr(),
                n - 1,
                null(),
                null_mut(),
            ),
            ADJ_ERR_DIMENSION_MISMATCH,
            &["`n`", "expected length 50, found 49"],
        );
        let mut b_nan = b.clone();
        b_nan[7] = f64::NAN;
        expect(
            adj_cg_solve(
                op,
                null(),
                b_nan.as_ptr(),
                x.as_mut_ptr(),
                n,
                null(),
                null_mut(),
            ),
            ADJ_ERR_INVALID_ARGUMENT,
            &["`b`", "b[7] is NaN"],
        );
        let mut bad_options = init(adj_cg_options_init);
        bad_options.rtol = -1.0;
        expect(
            adj_cg_solve(
                op,
                null(),
                b.as_ptr(),
                x.as_mut_ptr(),
                n,
                &bad_options,
                null_mut(),
            ),
            ADJ_ERR_INVALID_ARGUMENT,
            &["`rtol`"],
        );
        let mut small = null_mut();
        let (p2, c2, v2) = laplacian_1d(3);
        assert_eq!(
            adj_operator_new_csr_i32(3, 3, p2.as_ptr(), c2.as_ptr(), v2.as_ptr(), &mut small),
            ADJ_OK
        );
        let mut pc_small = null_mut();
        assert_eq!(
            adj_precond_new(
                small,
                adj_precond_kind::ADJ_PRECOND_JACOBI as u32,
                &mut pc_small
            ),
            ADJ_OK
        );
        expect(
            adj_cg_solve(
                op,
                pc_small,
                b.as_ptr(),
                x.as_mut_ptr(),
                n,
                null(),
                null_mut(),
            ),
            ADJ_ERR_DIMENSION_MISMATCH,
            &["`precond`"],
        );
        adj_precond_free(pc_small);
        adj_operator_free(small);

        // Iteration limit: report and history written, x untouched.
        let mut history = vec![0.0; 100];
        let mut options = init(adj_cg_options_init);
        options.max_iterations = 5;
        options.residual_history = history.as_mut_ptr();
        options.residual_history_capacity = history.len();
        expect(
            adj_cg_solve(
                op,
                null(),
                b.as_ptr(),
                x.as_mut_ptr(),
                n,
                &options,
                report.as_mut_ptr(),
            ),
            ADJ_ERR_NOT_CONVERGED,
            &[
                "CG stopped after 5 iterations",
                "maximum number of iterations",
            ],
        );
        let r = report.assume_init();
        assert_eq!(
            (r.iterations, r.reason, r.residual_history_length),
            (5, adj_solve_reason::ADJ_DIVERGED_MAX_ITERATIONS, 5)
        );
        assert!(
            r.true_residual_norm > 0.0 && history[..5].iter().all(|v| v.is_finite() && *v > 0.0)
        );
        assert_eq!(x, sentinel, "x unchanged after a failed solve");

        // Indefinite symmetric matrix: pᵀAp ≤ 0 detected.
        let neg: Vec<f64> = vals.iter().map(|v| -v).collect();
        let (s, negative) = csr_i32(n, &ptr, &cols, &neg);
        assert_eq!(s, ADJ_OK);
        expect(
            adj_cg_solve(
                negative,
                null(),
                b.as_ptr(),
                x.as_mut_ptr(),
                n,
                null(),
                report.as_mut_ptr(),
            ),
            ADJ_ERR_NOT_SPD,
            &["not positive definite"],
        );
        assert_eq!(
            report.assume_init().reason,
            adj_solve_reason::ADJ_DIVERGED_INDEFINITE_OPERATOR
        );
        assert_eq!(x, sentinel);
        adj_operator_free(negative);

        // Nonsymmetric matrix.
        let mut skew = vals.clone();
        skew[1] = -0.5;
        let (s, nonsym) = csr_i32(n, &ptr, &cols, &skew);
        assert_eq!(s, ADJ_OK);
        expect(
            adj_cg_solve(
                nonsym,
                null(),
                b.as_ptr(),
                x.as_mut_ptr(),
                n,
                null(),
                null_mut(),
            ),
            ADJ_ERR_NOT_SPD,
            &["not symmetric", "A[0,1]"],
        );
        adj_operator_free(nonsym);

        // Operator callback failing at its 4th call.
        let countdown: *mut usize = Box::into_raw(Box::new(3));
        let mut cb = null_mut();
        assert_eq!(
            adj_operator_new_callback(n, Some(laplacian_apply), countdown.cast(), &mut cb),
            ADJ_OK
        );
        expect(
            adj_cg_solve(
                cb,
                null(),
                b.as_ptr(),
                x.as_mut_ptr(),
                n,
                null(),
                report.as_mut_ptr(),
            ),
            ADJ_ERR_CALLBACK,
            &["operator apply callback returned 3"],
        );
        let r = report.assume_init();
        assert_eq!(
            (r.reason, r.iterations),
            (adj_solve_reason::ADJ_DIVERGED_CALLBACK, 3)
        );
        assert_eq!(x, sentinel);

        // Preconditioner callback failing, and one producing NaN.
        let mut pc = null_mut();
        assert_eq!(
            adj_precond_new_callback(n, Some(failing_apply), null_mut(), &mut pc),
            ADJ_OK
        );
        expect(
            adj_cg_solve(op, pc, b.as_ptr(), x.as_mut_ptr(), n, null(), null_mut()),
            ADJ_ERR_CALLBACK,
            &["preconditioner callback returned 7"],
        );
        adj_precond_free(pc);
        assert_eq!(
            adj_precond_new_callback(n, Some(nan_precond), null_mut(), &mut pc),
            ADJ_OK
        );
        expect(
            adj_cg_solve(
                op,
                pc,
                b.as_ptr(),
                x.as_mut_ptr(),
                n,
                null(),
                report.as_mut_ptr(),
            ),
            ADJ_ERR_NOT_CONVERGED,
            &["NaN"],
        );
        assert_eq!(
            report.assume_init().reason,
            adj_solve_reason::ADJ_DIVERGED_NAN_OR_INF
        );
        adj_precond_free(pc);
        assert_eq!(x, sentinel);

        // The same callback operator succeeds with enough calls left.
        *countdown = 10_000;
        let mut pc = null_mut();
        assert_eq!(
            adj_precond_new(op, adj_precond_kind::ADJ_PRECOND_JACOBI as u32, &mut pc),
            ADJ_OK
        );
        assert_eq!(
            adj_cg_solve(
                cb,
                pc,
                b.as_ptr(),
                x.as_mut_ptr(),
                n,
                null(),
                report.as_mut_ptr()
            ),
            ADJ_OK,
            "{}",
            last_error()
        );
        let r = report.assume_init();
        assert_eq!(r.reason, adj_solve_reason::ADJ_CONVERGED_RTOL);
        let a = common::csr_from_rows(
            &(0..n)
                .map(|i| {
                    (ptr[i] as usize..ptr[i + 1] as usize)
                        .map(|k| (cols[k] as usize, vals[k]))
                        .collect()
                })
                .collect::<Vec<_>>(),
        );
        assert!(rel_diff(&x, &direct_solve(&a, &b)) < 1e-6);
        adj_precond_free(pc);
        adj_operator_free(cb);
        drop(Box::from_raw(countdown));
        adj_operator_free(op);
    }
}

#[test]
fn successful_solves_through_the_abi() {
    use adj_status::*;
    let a = random_spd(200, 6, 3);
    let b = Rng::new(4).vector(200);
    let reference = direct_solve(&a, &b);
    let ptr64: Vec<i64> = a.row_ptr().iter().map(|&v| v as i64).collect();
    let col64: Vec<i64> = a.col_idx().iter().map(|&v| v as i64).collect();
    unsafe {
        let mut op = null_mut();
        assert_eq!(
            adj_operator_new_csr_i64(
                200,
                200,
                ptr64.as_ptr(),
                col64.as_ptr(),
                a.values().as_ptr(),
                &mut op
            ),
            ADJ_OK
        );
        let mut dim = 0;
        assert_eq!(adj_operator_dim(op, &mut dim), ADJ_OK);
        assert_eq!(dim, 200);
        for kind in [
            (adj_precond_kind::ADJ_PRECOND_NONE as u32),
            (adj_precond_kind::ADJ_PRECOND_JACOBI as u32),
            (adj_precond_kind::ADJ_PRECOND_IC0 as u32),
        ] {
            let mut pc = null_mut();
            assert_eq!(adj_precond_new(op, kind, &mut pc), ADJ_OK);
            let mut x = vec![0.0; 200];
            let mut history = vec![0.0; 1000];
            let mut options = init(adj_cg_options_init);
            options.rtol = 1e-12;
            options.residual_history = history.as_mut_ptr();
            options.residual_history_capacity = 1000;
            let mut report = init_uninit(adj_solve_report_init);
            assert_eq!(
                adj_cg_solve(
                    op,
                    pc,
                    b.as_ptr(),
                    x.as_mut_ptr(),
                    200,
                    &options,
                    report.as_mut_ptr()
                ),
                ADJ_OK
            );
            let r = report.assume_init();
            assert_eq!(r.residual_history_length, r.iterations);
            assert!(rel_diff(&x, &reference) < 1e-9, "kind {kind}");
            adj_precond_free(pc);
        }
        // Grid operator: CSR export, gather/scatter, apply.
        let problem = adjunct::scene::smoke([10, 9, 8], 2).unwrap();
        let flags: Vec<u8> = problem.cells.iter().map(|&c| c as u8).collect();
        let h = [problem.spacing; 3];
        let mut grid = null_mut();
        assert_eq!(
            adj_operator_new_grid_poisson(10, 9, 8, flags.as_ptr(), h.as_ptr(), null(), &mut grid),
            ADJ_OK
        );
        let (mut n, mut nnz, mut ncells) = (0, 0, 0);
        assert_eq!(adj_operator_dim(grid, &mut n), ADJ_OK);
        assert_eq!(adj_operator_csr_nnz(grid, &mut nnz), ADJ_OK);
        assert_eq!(adj_grid_num_cells(grid, &mut ncells), ADJ_OK);
        assert_eq!(ncells, 720);
        let (mut rp, mut ci, mut va) = (vec![0i64; n + 1], vec![0i64; nnz], vec![0.0; nnz]);
        assert_eq!(
            adj_operator_to_csr_i64(grid, rp.as_mut_ptr(), ci.as_mut_ptr(), va.as_mut_ptr()),
            ADJ_OK
        );
        let exported = adjunct::CsrMatrix::from_parts(n, n, &rp, &ci, &va).unwrap();
        let mut x = vec![0.0; n];
        assert_eq!(
            adj_cg_solve(
                grid,
                null(),
                problem.rhs.as_ptr(),
                x.as_mut_ptr(),
                n,
                null(),
                null_mut()
            ),
            ADJ_OK
        );
        assert!(rel_diff(&x, &direct_solve(&exported, &problem.rhs)) < 1e-6);
        let mut field = vec![1.0; ncells];
        assert_eq!(
            adj_grid_scatter(grid, x.as_ptr(), n, field.as_mut_ptr(), ncells),
            ADJ_OK
        );
        let mut back = vec![0.0; n];
        assert_eq!(
            adj_grid_gather(grid, field.as_ptr(), ncells, back.as_mut_ptr(), n),
            ADJ_OK
        );
        assert_eq!(back, x);
        expect(
            adj_grid_gather(op, field.as_ptr(), ncells, back.as_mut_ptr(), n),
            ADJ_ERR_INVALID_ARGUMENT,
            &["grid"],
        );
        let mut y = vec![0.0; n];
        assert_eq!(
            adj_operator_apply(grid, x.as_ptr(), y.as_mut_ptr(), n),
            ADJ_OK
        );
        assert!(rel_diff(&y, &problem.rhs) < 1e-7);
        adj_operator_free(grid);
        adj_operator_free(op);
    }
}

#[test]
fn version_and_threads() {
    // SAFETY: static NUL-terminated string.
    let v = unsafe { CStr::from_ptr(adj_version()) }.to_str().unwrap();
    assert_eq!(v, env!("CARGO_PKG_VERSION"));
    assert_eq!(adj_set_num_threads(2), adj_status::ADJ_OK);
    assert_eq!(adj_get_num_threads(), 2);
    assert_eq!(adj_set_num_threads(0), adj_status::ADJ_OK);
    assert!(adj_get_num_threads() >= 1);
}

/// `adj_precond_apply` on its own: z = M⁻¹ r against the Jacobi formula
/// and a direct solve for IC(0) of a tridiagonal matrix (exact there),
/// and its bad arguments.
#[test]
fn preconditioner_applied_on_its_own() {
    let n = 6;
    let (ptr, cols, vals) = laplacian_1d(n);
    let (status, op) = csr_i32(n, &ptr, &cols, &vals);
    assert_eq!(status, adj_status::ADJ_OK);
    let r: Vec<f64> = (0..n).map(|i| (i as f64 - 2.5).powi(2)).collect();
    let (mut jacobi, mut ic0) = (null_mut(), null_mut());
    let mut z = vec![0.0; n];
    // SAFETY: live handles, buffers of n doubles.
    unsafe {
        assert_eq!(
            adj_precond_new(op, adj_precond_kind::ADJ_PRECOND_JACOBI as u32, &mut jacobi),
            adj_status::ADJ_OK
        );
        assert_eq!(
            adj_precond_new(op, adj_precond_kind::ADJ_PRECOND_IC0 as u32, &mut ic0),
            adj_status::ADJ_OK
        );
        assert_eq!(
            adj_precond_apply(jacobi, r.as_ptr(), z.as_mut_ptr(), n),
            adj_status::ADJ_OK
        );
        for (i, (&zi, &ri)) in z.iter().zip(&r).enumerate() {
            assert!((zi - ri / 2.0).abs() < 1e-15, "Jacobi z[{i}]");
        }
        // IC(0) of a tridiagonal matrix is its exact Cholesky factor.
        assert_eq!(
            adj_precond_apply(ic0, r.as_ptr(), z.as_mut_ptr(), n),
            adj_status::ADJ_OK
        );
        let a = adjunct::CsrMatrix::from_parts(n, n, &ptr, &cols, &vals).unwrap();
        let exact = direct_solve(&a, &r);
        assert!(
            rel_diff(&z, &exact) < 1e-12,
            "IC(0) against the direct solve"
        );
        // Bad arguments; z is left as it was.
        let before = z.clone();
        expect(
            adj_precond_apply(jacobi, r.as_ptr(), z.as_mut_ptr(), n - 1),
            adj_status::ADJ_ERR_DIMENSION_MISMATCH,
            &["n"],
        );
        let mut bad = r.clone();
        bad[3] = f64::NAN;
        expect(
            adj_precond_apply(jacobi, bad.as_ptr(), z.as_mut_ptr(), n),
            adj_status::ADJ_ERR_INVALID_ARGUMENT,
            &["r[3]"],
        );
        expect(
            adj_precond_apply(null(), r.as_ptr(), z.as_mut_ptr(), n),
            adj_status::ADJ_ERR_NULL_ARGUMENT,
            &["precond"],
        );
        expect(
            adj_precond_apply(jacobi, r.as_ptr(), null_mut(), n),
            adj_status::ADJ_ERR_NULL_ARGUMENT,
            &["z"],
        );
        assert_eq!(z, before);
        adj_precond_free(jacobi);
        adj_precond_free(ic0);
        adj_operator_free(op);
    }
}
