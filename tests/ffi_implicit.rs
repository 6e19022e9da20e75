//! `adj_implicit_*`, `adj_linear_solve_vjp` and the OT gradients through the
//! C ABI: results against faer direct solves and the Rust API, every bad
//! input reported with its argument, outputs untouched on failure.

mod common;

use adjunct::ffi::*;
use adjunct::implicit::OtPoint;
use adjunct::krylov::KrylovOptions;
use adjunct::ot::{self, CostMatrix, OtOptions};
use common::{c_grid_operator, expect, init, last_error, rel_diff, Rng};
use faer::linalg::solvers::Solve;
use faer::Mat;
use std::ffi::{c_int, c_void};
use std::ptr::{null, null_mut};

/// F(x, θ) = M x − N θ: A = M (n×n, nonsymmetric), B = −N (n×p), so
/// x*(θ) = M⁻¹ N θ and ∂x*/∂θ = M⁻¹ N.
struct Linear {
    m: Mat<f64>,
    n: Mat<f64>,
    /// Nonzero: every product returns this code.
    fail_with: c_int,
}

impl Linear {
    fn new(n: usize, p: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let m = Mat::from_fn(n, n, |i, j| {
            rng.range(-1.0, 1.0) / n as f64 + if i == j { 2.0 } else { 0.0 }
        });
        let nn = Mat::from_fn(n, p, |_, _| rng.range(-1.0, 1.0));
        Self {
            m,
            n: nn,
            fail_with: 0,
        }
    }

    fn jacobian(&self) -> Mat<f64> {
        self.m.partial_piv_lu().solve(&self.n)
    }
}

/// y = scale · op(M) v for the product named by `which`.
unsafe fn product(
    ctx: *mut c_void,
    v: *const f64,
    v_len: usize,
    y: *mut f64,
    y_len: usize,
    which: u8,
) -> c_int {
    // SAFETY: ctx is the &Linear passed in the problem; v, y valid.
    let (lin, v, y) = unsafe {
        (
            &*(ctx as *const Linear),
            std::slice::from_raw_parts(v, v_len),
            std::slice::from_raw_parts_mut(y, y_len),
        )
    };
    if lin.fail_with != 0 {
        return lin.fail_with;
    }
    let (mat, transpose, scale) = match which {
        b'a' => (&lin.m, false, 1.0),
        b'A' => (&lin.m, true, 1.0),
        b'b' => (&lin.n, false, -1.0),
        _ => (&lin.n, true, -1.0),
    };
    for (i, yi) in y.iter_mut().enumerate() {
        *yi = scale
            * v.iter()
                .enumerate()
                .map(|(j, vj)| if transpose { mat[(j, i)] } else { mat[(i, j)] } * vj)
                .sum::<f64>();
    }
    0
}

unsafe extern "C" fn a(c: *mut c_void, v: *const f64, vl: usize, y: *mut f64, yl: usize) -> c_int {
    // SAFETY: forwarded.
    unsafe { product(c, v, vl, y, yl, b'a') }
}
unsafe extern "C" fn a_t(
    c: *mut c_void,
    v: *const f64,
    vl: usize,
    y: *mut f64,
    yl: usize,
) -> c_int {
    // SAFETY: forwarded.
    unsafe { product(c, v, vl, y, yl, b'A') }
}
unsafe extern "C" fn b(c: *mut c_void, v: *const f64, vl: usize, y: *mut f64, yl: usize) -> c_int {
    // SAFETY: forwarded.
    unsafe { product(c, v, vl, y, yl, b'b') }
}
unsafe extern "C" fn b_t(
    c: *mut c_void,
    v: *const f64,
    vl: usize,
    y: *mut f64,
    yl: usize,
) -> c_int {
    // SAFETY: forwarded.
    unsafe { product(c, v, vl, y, yl, b'B') }
}

fn c_problem(lin: &Linear) -> adj_root_problem {
    adj_root_problem {
        struct_size: std::mem::size_of::<adj_root_problem>(),
        n: lin.m.nrows(),
        p: lin.n.ncols(),
        kind: (adj_jacobian_kind::ADJ_JACOBIAN_GENERAL as u32),
        ctx: lin as *const Linear as *mut c_void,
        a: Some(a),
        a_t: Some(a_t),
        b: Some(b),
        b_t: Some(b_t),
    }
}

fn zeroed_report() -> adj_solve_report {
    let mut r = init(adj_solve_report_init);
    r.reason = adj_solve_reason::ADJ_DIVERGED_BREAKDOWN;
    r
}

#[test]
fn root_vjp_and_jvp_match_the_dense_jacobian_for_every_solver() {
    let (n, p) = (24, 5);
    let lin = Linear::new(n, p, 3);
    let jac = lin.jacobian();
    let mut rng = Rng::new(9);
    let (v_bar, theta_dot) = (rng.vector(n), rng.vector(p));
    let expected_vjp: Vec<f64> = (0..p)
        .map(|k| (0..n).map(|i| jac[(i, k)] * v_bar[i]).sum())
        .collect();
    let expected_jvp: Vec<f64> = (0..n)
        .map(|i| (0..p).map(|k| jac[(i, k)] * theta_dot[k]).sum())
        .collect();
    let problem = c_problem(&lin);
    for solver in [
        (adj_solver::ADJ_SOLVER_GMRES as u32),
        (adj_solver::ADJ_SOLVER_BICGSTAB as u32),
        (adj_solver::ADJ_SOLVER_NORMAL_CG as u32),
        (adj_solver::ADJ_SOLVER_DENSE_LU as u32),
    ] {
        let mut options = init(adj_implicit_options_init);
        options.solver = solver;
        options.rtol = 1e-13;
        let (mut out_p, mut out_n, mut report) = (vec![0.0; p], vec![0.0; n], zeroed_report());
        // SAFETY: arrays of the documented sizes; ctx outlives the calls.
        unsafe {
            let s = adj_implicit_vjp(
                &problem,
                v_bar.as_ptr(),
                n,
                &options,
                out_p.as_mut_ptr(),
                p,
                &mut report,
            );
            assert_eq!(s, adj_status::ADJ_OK, "{}", last_error());
            assert!(report.relative_residual <= 1e-12, "solver {solver}");
            let s = adj_implicit_jvp(
                &problem,
                theta_dot.as_ptr(),
                p,
                &options,
                out_n.as_mut_ptr(),
                n,
                null_mut(),
            );
            assert_eq!(s, adj_status::ADJ_OK, "{}", last_error());
        }
        assert!(rel_diff(&out_p, &expected_vjp) < 1e-10, "solver {solver}");
        assert!(rel_diff(&out_n, &expected_jvp) < 1e-10, "solver {solver}");
    }
}

#[test]
fn symmetric_and_fixed_point_kinds_change_the_system() {
    // Symmetric: M := SPD, only `a` given; CG. Fixed point: T(x) = (I − M) x + N θ,
    // so F = T − x = −M x + N θ has the same solution map M⁻¹N.
    let (n, p) = (16, 3);
    let mut lin = Linear::new(n, p, 5);
    let sym = Mat::from_fn(n, n, |i, j| lin.m[(i, j)] + lin.m[(j, i)]);
    lin.m = sym;
    let jac = lin.jacobian();
    let theta_dot = Rng::new(2).vector(p);
    let expected: Vec<f64> = (0..n)
        .map(|i| (0..p).map(|k| jac[(i, k)] * theta_dot[k]).sum())
        .collect();
    let mut problem = c_problem(&lin);
    problem.kind = adj_jacobian_kind::ADJ_JACOBIAN_SYMMETRIC as u32;
    problem.a_t = None;
    let mut options = init(adj_implicit_options_init);
    options.solver = adj_solver::ADJ_SOLVER_CG as u32;
    options.rtol = 1e-13;
    let mut out = vec![0.0; n];
    // SAFETY: documented sizes.
    let s = unsafe {
        adj_implicit_jvp(
            &problem,
            theta_dot.as_ptr(),
            p,
            &options,
            out.as_mut_ptr(),
            n,
            null_mut(),
        )
    };
    assert_eq!(s, adj_status::ADJ_OK, "{}", last_error());
    assert!(rel_diff(&out, &expected) < 1e-10);

    let identity_minus_m = Mat::from_fn(n, n, |i, j| {
        if i == j {
            1.0
        } else {
            0.0
        }
    } - lin.m[(i, j)]);
    let fixed = Linear {
        m: identity_minus_m,
        n: Mat::from_fn(n, p, |i, k| -lin.n[(i, k)]),
        fail_with: 0,
    };
    let mut problem = c_problem(&fixed);
    problem.kind = adj_jacobian_kind::ADJ_JACOBIAN_FIXED_POINT as u32;
    options.solver = adj_solver::ADJ_SOLVER_GMRES as u32;
    let mut out = vec![0.0; n];
    // SAFETY: documented sizes.
    let s = unsafe {
        adj_implicit_jvp(
            &problem,
            theta_dot.as_ptr(),
            p,
            &options,
            out.as_mut_ptr(),
            n,
            null_mut(),
        )
    };
    assert_eq!(s, adj_status::ADJ_OK, "{}", last_error());
    assert!(rel_diff(&out, &expected) < 1e-10);
}

#[test]
fn root_errors_name_the_argument_and_leave_outputs_alone() {
    let (n, p) = (8, 2);
    let mut lin = Linear::new(n, p, 1);
    let v = Rng::new(6).vector(n);
    let mut out = vec![7.0; p];
    let options = init(adj_implicit_options_init);
    let call = |problem: *const adj_root_problem,
                options: *const adj_implicit_options,
                n_arg: usize,
                out: &mut [f64],
                report: *mut adj_solve_report| {
        // SAFETY: arrays of at least the sizes passed.
        unsafe {
            adj_implicit_vjp(
                problem,
                v.as_ptr(),
                n_arg,
                options,
                out.as_mut_ptr(),
                out.len(),
                report,
            )
        }
    };
    use adj_status::*;
    expect(
        call(null(), &options, n, &mut out, null_mut()),
        ADJ_ERR_NULL_ARGUMENT,
        &["problem"],
    );
    let mut problem = c_problem(&lin);
    expect(
        call(&problem, &options, n + 1, &mut out, null_mut()),
        ADJ_ERR_DIMENSION_MISMATCH,
        &["n"],
    );
    problem.a = None;
    expect(
        call(&problem, &options, n, &mut out, null_mut()),
        ADJ_ERR_NULL_ARGUMENT,
        &["`a`"],
    );
    problem = c_problem(&lin);
    problem.b_t = None;
    expect(
        call(&problem, &options, n, &mut out, null_mut()),
        ADJ_ERR_INVALID_ARGUMENT,
        &["b_t"],
    );
    problem = c_problem(&lin);
    problem.a_t = None;
    expect(
        call(&problem, &options, n, &mut out, null_mut()),
        ADJ_ERR_INVALID_ARGUMENT,
        &["a_t"],
    );
    problem = c_problem(&lin);
    problem.kind = 7;
    expect(
        call(&problem, &options, n, &mut out, null_mut()),
        ADJ_ERR_INVALID_ARGUMENT,
        &["kind"],
    );
    problem = c_problem(&lin);
    let mut bad = options;
    bad.solver = 9;
    expect(
        call(&problem, &bad, n, &mut out, null_mut()),
        ADJ_ERR_INVALID_ARGUMENT,
        &["solver"],
    );
    bad = options;
    bad.ridge = -1.0;
    expect(
        call(&problem, &bad, n, &mut out, null_mut()),
        ADJ_ERR_INVALID_ARGUMENT,
        &["ridge"],
    );
    assert_eq!(out, vec![7.0; p]);

    // A product error is propagated with its code and the report says so.
    lin.fail_with = 42;
    let problem = c_problem(&lin);
    let mut report = zeroed_report();
    expect(
        call(&problem, &options, n, &mut out, &mut report),
        ADJ_ERR_CALLBACK,
        &["42"],
    );
    assert_eq!(out, vec![7.0; p]);
    lin.fail_with = 0;

    // A singular A (rank n − 1) cannot reach the tolerance: reported, never
    // a gradient.
    for row in 0..n {
        lin.m[(row, n - 1)] = lin.m[(row, 0)];
    }
    let problem = c_problem(&lin);
    for solver in [
        (adj_solver::ADJ_SOLVER_GMRES as u32),
        (adj_solver::ADJ_SOLVER_DENSE_LU as u32),
    ] {
        let mut o = options;
        o.solver = solver;
        o.max_iterations = 200;
        let mut report = zeroed_report();
        let s = call(&problem, &o, n, &mut out, &mut report);
        assert_eq!(
            s,
            ADJ_ERR_NOT_CONVERGED,
            "solver {solver}: {}",
            last_error()
        );
        assert!(
            (report.reason as i32) < 0,
            "solver {solver}: {:?}",
            report.reason
        );
        assert_eq!(out, vec![7.0; p]);
    }
}

/// The operator's CSR export as a dense faer matrix.
fn dense_of(op: *const adj_operator, n: usize) -> (Mat<f64>, Vec<(usize, usize)>) {
    let mut nnz = 0;
    // SAFETY: live handle; arrays of the reported sizes.
    unsafe {
        assert_eq!(adj_operator_csr_nnz(op, &mut nnz), adj_status::ADJ_OK);
        let (mut ptr, mut col, mut val) = (vec![0i64; n + 1], vec![0i64; nnz], vec![0.0; nnz]);
        assert_eq!(
            adj_operator_to_csr_i64(op, ptr.as_mut_ptr(), col.as_mut_ptr(), val.as_mut_ptr()),
            adj_status::ADJ_OK
        );
        let mut dense = Mat::zeros(n, n);
        let mut entries = Vec::new();
        for i in 0..n {
            for k in ptr[i] as usize..ptr[i + 1] as usize {
                dense[(i, col[k] as usize)] = val[k];
                entries.push((i, col[k] as usize));
            }
        }
        (dense, entries)
    }
}

#[test]
fn linear_solve_vjp_matches_a_direct_adjoint_solve() {
    let op = c_grid_operator(12, 10);
    let mut n = 0;
    // SAFETY: live handle.
    assert_eq!(unsafe { adj_operator_dim(op, &mut n) }, adj_status::ADJ_OK);
    let (dense, entries) = dense_of(op, n);
    let mut rng = Rng::new(4);
    let (rhs, x_bar) = (rng.vector(n), rng.vector(n));
    let lu = dense.partial_piv_lu();
    let x = lu.solve(faer::ColRef::from_slice(&rhs));
    let x: Vec<f64> = x.iter().copied().collect();
    let lambda = dense
        .transpose()
        .partial_piv_lu()
        .solve(faer::ColRef::from_slice(&x_bar));
    let lambda: Vec<f64> = lambda.iter().copied().collect();
    let expected_values: Vec<f64> = entries.iter().map(|&(i, j)| -lambda[i] * x[j]).collect();

    let mut precond = null_mut();
    // SAFETY: live handle.
    assert_eq!(
        unsafe { adj_precond_new(op, adj_precond_kind::ADJ_PRECOND_IC0 as u32, &mut precond) },
        adj_status::ADJ_OK
    );
    let mut options = init(adj_implicit_options_init);
    options.solver = adj_solver::ADJ_SOLVER_CG as u32;
    options.rtol = 1e-13;
    options.precond = precond;
    let nnz = entries.len();
    let (mut grad_b, mut grad_values, mut report) = (vec![0.0; n], vec![0.0; nnz], zeroed_report());
    // SAFETY: arrays of the documented sizes.
    let s = unsafe {
        adj_linear_solve_vjp(
            op,
            x.as_ptr(),
            x_bar.as_ptr(),
            n,
            &options,
            grad_b.as_mut_ptr(),
            grad_values.as_mut_ptr(),
            nnz,
            &mut report,
        )
    };
    assert_eq!(s, adj_status::ADJ_OK, "{}", last_error());
    assert_eq!(report.reason, adj_solve_reason::ADJ_CONVERGED_RTOL);
    assert!(rel_diff(&grad_b, &lambda) < 1e-10);
    assert!(rel_diff(&grad_values, &expected_values) < 1e-10);

    use adj_status::*;
    let call = |options: &adj_implicit_options, nnz: usize, grad_values: *mut f64| {
        let mut grad_b = vec![5.0; n];
        // SAFETY: arrays of the documented sizes (grad_values checked by the caller).
        let s = unsafe {
            adj_linear_solve_vjp(
                op,
                x.as_ptr(),
                x_bar.as_ptr(),
                n,
                options,
                grad_b.as_mut_ptr(),
                grad_values,
                nnz,
                null_mut(),
            )
        };
        if s != ADJ_OK {
            assert_eq!(grad_b, vec![5.0; n], "outputs written on failure");
        }
        s
    };
    let mut spare = vec![0.0; nnz + 1];
    expect(
        call(&options, nnz + 1, spare.as_mut_ptr()),
        ADJ_ERR_DIMENSION_MISMATCH,
        &["nnz"],
    );
    let mut bad = options;
    bad.solver = adj_solver::ADJ_SOLVER_GMRES as u32;
    expect(
        call(&bad, nnz, null_mut()),
        ADJ_ERR_INVALID_ARGUMENT,
        &["ADJ_SOLVER_CG"],
    );
    bad = options;
    bad.ridge = 0.5;
    expect(
        call(&bad, nnz, null_mut()),
        ADJ_ERR_INVALID_ARGUMENT,
        &["ridge"],
    );
    bad = options;
    bad.max_iterations = 1;
    bad.precond = null();
    expect(call(&bad, nnz, null_mut()), ADJ_ERR_NOT_CONVERGED, &[""]);
    // SAFETY: handles made above, not used afterwards.
    unsafe {
        adj_precond_free(precond);
        adj_operator_free(op);
    }
}

#[test]
fn linear_solve_vjp_on_a_nonsymmetric_csr_matrix() {
    // Upwind-like tridiagonal: 3 on the diagonal, −1.5 below, −0.5 above.
    let n = 40usize;
    let (mut ptr, mut col, mut val) = (vec![0i32], vec![], vec![]);
    for i in 0..n {
        for (j, v) in [(i.wrapping_sub(1), -1.5), (i, 3.0), (i + 1, -0.5)] {
            if j < n {
                col.push(j as i32);
                val.push(v);
            }
        }
        ptr.push(col.len() as i32);
    }
    let mut op = null_mut();
    // SAFETY: a valid CSR description.
    let s = unsafe {
        adj_operator_new_csr_i32(n, n, ptr.as_ptr(), col.as_ptr(), val.as_ptr(), &mut op)
    };
    assert_eq!(s, adj_status::ADJ_OK, "{}", last_error());
    let (dense, _) = dense_of(op, n);
    let x = Rng::new(1).vector(n);
    let x_bar = Rng::new(2).vector(n);
    let lambda = dense
        .transpose()
        .partial_piv_lu()
        .solve(faer::ColRef::from_slice(&x_bar));
    let lambda: Vec<f64> = lambda.iter().copied().collect();
    for solver in [
        (adj_solver::ADJ_SOLVER_GMRES as u32),
        (adj_solver::ADJ_SOLVER_BICGSTAB as u32),
    ] {
        let mut options = init(adj_implicit_options_init);
        options.solver = solver;
        options.rtol = 1e-13;
        let mut grad_b = vec![0.0; n];
        // SAFETY: documented sizes.
        let s = unsafe {
            adj_linear_solve_vjp(
                op,
                x.as_ptr(),
                x_bar.as_ptr(),
                n,
                &options,
                grad_b.as_mut_ptr(),
                null_mut(),
                0,
                null_mut(),
            )
        };
        assert_eq!(s, adj_status::ADJ_OK, "{}", last_error());
        assert!(rel_diff(&grad_b, &lambda) < 1e-10, "solver {solver}");
    }
    // SAFETY: made above.
    unsafe { adj_operator_free(op) };
}

struct OtCase {
    cost: Vec<f64>,
    f: Vec<f64>,
    g: Vec<f64>,
    eps: f64,
    n: usize,
    m: usize,
}

fn ot_case(eps: f64) -> OtCase {
    let (n, m) = (7, 9);
    let mut rng = Rng::new(17);
    let x = rng.vector(2 * n);
    let y = rng.vector(2 * m);
    let a: Vec<f64> = (0..n).map(|i| (1.0 + i as f64) / 28.0).collect();
    let b = vec![1.0 / m as f64; m];
    let cost = CostMatrix::squared_euclidean(&x, &y, 2).unwrap();
    let options = OtOptions {
        eps,
        tol: 1e-13,
        ..OtOptions::default()
    };
    let solution = ot::solve(&a, &b, &cost, &options).unwrap();
    OtCase {
        cost: cost.values().to_vec(),
        f: solution.f,
        g: solution.g,
        eps,
        n,
        m,
    }
}

#[test]
fn ot_gradients_through_the_abi_match_rust() {
    let case = ot_case(0.1);
    let (n, m) = (case.n, case.m);
    let cost = CostMatrix::from_dense(n, m, case.cost.clone()).unwrap();
    let point = OtPoint {
        cost: &cost,
        eps: case.eps,
        f: &case.f,
        g: &case.g,
    };
    let krylov = KrylovOptions {
        rtol: 1e-12,
        ..KrylovOptions::default()
    };
    let mut cg_options = init(adj_cg_options_init);
    cg_options.rtol = 1e-12;
    let mut implicit = init(adj_implicit_options_init);
    implicit.solver = adj_solver::ADJ_SOLVER_CG as u32;
    implicit.rtol = 1e-12;
    let plan_bar = Rng::new(8).vector(n * m);
    let (gc, ga, gb) = (&mut vec![0.0; n * m], &mut vec![0.0; n], &mut vec![0.0; m]);
    // SAFETY: arrays of the documented sizes.
    unsafe {
        let s = adj_ot_cost_gradient(
            case.cost.as_ptr(),
            n,
            m,
            case.eps,
            case.f.as_ptr(),
            case.g.as_ptr(),
            gc.as_mut_ptr(),
            ga.as_mut_ptr(),
            gb.as_mut_ptr(),
        );
        assert_eq!(s, adj_status::ADJ_OK, "{}", last_error());
        let expected = point.cost_gradient().unwrap();
        assert_eq!(
            (&*gc, &*ga, &*gb),
            (&expected.cost, &expected.a, &expected.b)
        );

        let mut report = zeroed_report();
        let s = adj_ot_plan_vjp(
            case.cost.as_ptr(),
            n,
            m,
            case.eps,
            case.f.as_ptr(),
            case.g.as_ptr(),
            plan_bar.as_ptr(),
            &cg_options,
            gc.as_mut_ptr(),
            ga.as_mut_ptr(),
            gb.as_mut_ptr(),
            &mut report,
        );
        assert_eq!(s, adj_status::ADJ_OK, "{}", last_error());
        assert_eq!(report.reason, adj_solve_reason::ADJ_CONVERGED_RTOL);
        let expected = point.plan_vjp(&plan_bar, &krylov).unwrap();
        assert_eq!(
            (&*gc, &*ga, &*gb),
            (&expected.cost, &expected.a, &expected.b)
        );
        // The same product through the implicit-differentiation options.
        let (s, gradients, iterations) = ot_implicit_vjp(&case, &plan_bar, &implicit);
        assert_eq!(s, adj_status::ADJ_OK, "{}", last_error());
        assert_eq!(gradients, [gc.clone(), ga.clone(), gb.clone()]);
        assert_eq!(iterations, report.iterations);

        // ⟨P̄, Ṗ⟩ from the JVP equals ⟨∇, (Ċ, ȧ, ḃ)⟩ from the VJP.
        let mut rng = Rng::new(21);
        let c_dot = rng.vector(n * m);
        let mut a_dot = rng.vector(n);
        let b_dot = rng.vector(m);
        let shift = (b_dot.iter().sum::<f64>() - a_dot.iter().sum::<f64>()) / n as f64;
        a_dot.iter_mut().for_each(|v| *v += shift);
        let mut plan_dot = vec![0.0; n * m];
        let s = adj_ot_plan_jvp(
            case.cost.as_ptr(),
            n,
            m,
            case.eps,
            case.f.as_ptr(),
            case.g.as_ptr(),
            c_dot.as_ptr(),
            a_dot.as_ptr(),
            b_dot.as_ptr(),
            &cg_options,
            plan_dot.as_mut_ptr(),
            null_mut(),
        );
        assert_eq!(s, adj_status::ADJ_OK, "{}", last_error());
        let (s, value) = ot_implicit_jvp(&case, [&c_dot, &a_dot, &b_dot], &implicit);
        assert_eq!(s, adj_status::ADJ_OK, "{}", last_error());
        assert_eq!(value, plan_dot);
        let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f64>();
        let lhs = dot(&plan_bar, &plan_dot);
        let rhs = dot(gc, &c_dot) + dot(ga, &a_dot) + dot(gb, &b_dot);
        assert!(
            (lhs - rhs).abs() <= 1e-10 * lhs.abs().max(1.0),
            "{lhs} vs {rhs}"
        );
    }
}

#[test]
fn ot_gradient_errors_name_the_argument() {
    let case = ot_case(0.2);
    let (n, m) = (case.n, case.m);
    let (mut ga, mut gb) = (vec![3.0; n], vec![3.0; m]);
    use adj_status::*;
    // SAFETY: arrays of the documented sizes, or NULL where tested.
    unsafe {
        let gradient = |eps: f64, f: *const f64, ga: *mut f64, gb: *mut f64| {
            adj_ot_cost_gradient(
                case.cost.as_ptr(),
                n,
                m,
                eps,
                f,
                case.g.as_ptr(),
                null_mut(),
                ga,
                gb,
            )
        };
        expect(
            gradient(0.0, case.f.as_ptr(), ga.as_mut_ptr(), gb.as_mut_ptr()),
            ADJ_ERR_INVALID_ARGUMENT,
            &["eps"],
        );
        expect(
            gradient(f64::NAN, case.f.as_ptr(), ga.as_mut_ptr(), gb.as_mut_ptr()),
            ADJ_ERR_INVALID_ARGUMENT,
            &["eps"],
        );
        expect(
            gradient(0.2, null(), ga.as_mut_ptr(), gb.as_mut_ptr()),
            ADJ_ERR_NULL_ARGUMENT,
            &["`f`"],
        );
        expect(
            gradient(0.2, case.f.as_ptr(), ga.as_mut_ptr(), null_mut()),
            ADJ_ERR_NULL_ARGUMENT,
            &["grad_b"],
        );
        assert_eq!((ga.clone(), gb.clone()), (vec![3.0; n], vec![3.0; m]));

        let a_dot = vec![1.0; n];
        let b_dot = vec![0.0; m];
        let c_dot = vec![0.0; n * m];
        let mut plan_dot = vec![4.0; n * m];
        expect(
            adj_ot_plan_jvp(
                case.cost.as_ptr(),
                n,
                m,
                0.2,
                case.f.as_ptr(),
                case.g.as_ptr(),
                c_dot.as_ptr(),
                a_dot.as_ptr(),
                b_dot.as_ptr(),
                null(),
                plan_dot.as_mut_ptr(),
                null_mut(),
            ),
            ADJ_ERR_INVALID_ARGUMENT,
            &["equal mass"],
        );
        assert_eq!(plan_dot, vec![4.0; n * m]);

        let mut options = init(adj_cg_options_init);
        options.max_iterations = 1;
        options.rtol = 1e-14;
        let plan_bar = Rng::new(3).vector(n * m);
        let mut report = zeroed_report();
        expect(
            adj_ot_plan_vjp(
                case.cost.as_ptr(),
                n,
                m,
                0.2,
                case.f.as_ptr(),
                case.g.as_ptr(),
                plan_bar.as_ptr(),
                &options,
                null_mut(),
                ga.as_mut_ptr(),
                gb.as_mut_ptr(),
                &mut report,
            ),
            ADJ_ERR_NOT_CONVERGED,
            &[""],
        );
        assert_eq!(report.reason, adj_solve_reason::ADJ_DIVERGED_MAX_ITERATIONS);
        assert_eq!(report.iterations, 1);
        assert_eq!((ga, gb), (vec![3.0; n], vec![3.0; m]));
    }
}

/// `adj_ot_implicit_vjp` on `case` for P̄ = `plan_bar`: status, the three
/// gradients (C, a, b) and the Schur system's iterations.
fn ot_implicit_vjp(
    case: &OtCase,
    plan_bar: &[f64],
    options: *const adj_implicit_options,
) -> (adj_status, [Vec<f64>; 3], usize) {
    let (n, m) = (case.n, case.m);
    let (mut gc, mut ga, mut gb) = (vec![0.0; n * m], vec![0.0; n], vec![0.0; m]);
    let mut report = zeroed_report();
    // SAFETY: arrays of the documented sizes.
    let s = unsafe {
        adj_ot_implicit_vjp(
            case.cost.as_ptr(),
            n,
            m,
            case.eps,
            case.f.as_ptr(),
            case.g.as_ptr(),
            plan_bar.as_ptr(),
            options,
            gc.as_mut_ptr(),
            ga.as_mut_ptr(),
            gb.as_mut_ptr(),
            &mut report,
        )
    };
    (s, [gc, ga, gb], report.iterations)
}

/// `adj_ot_implicit_jvp` on `case` along (Ċ, ȧ, ḃ): status and Ṗ.
fn ot_implicit_jvp(
    case: &OtCase,
    [c_dot, a_dot, b_dot]: [&[f64]; 3],
    options: *const adj_implicit_options,
) -> (adj_status, Vec<f64>) {
    let mut plan_dot = vec![0.0; case.n * case.m];
    // SAFETY: arrays of the documented sizes.
    let s = unsafe {
        adj_ot_implicit_jvp(
            case.cost.as_ptr(),
            case.n,
            case.m,
            case.eps,
            case.f.as_ptr(),
            case.g.as_ptr(),
            c_dot.as_ptr(),
            a_dot.as_ptr(),
            b_dot.as_ptr(),
            options,
            plan_dot.as_mut_ptr(),
            null_mut(),
        )
    };
    (s, plan_dot)
}

/// The OT derivatives with the options of every implicit-differentiation
/// entry point (compared with their deprecated spellings in
/// `ot_gradients_through_the_abi_match_rust`): NULL options choose CG, and a
/// solver, ridge or warm start the system cannot use is refused naming it.
#[test]
fn ot_derivatives_take_the_implicit_options() {
    let case = ot_case(0.1);
    let (n, m) = (case.n, case.m);
    let mut implicit = init(adj_implicit_options_init);
    implicit.solver = adj_solver::ADJ_SOLVER_CG as u32;
    implicit.rtol = 1e-12;
    let plan_bar = Rng::new(9).vector(n * m);
    let c_dot = Rng::new(10).vector(n * m);
    let (a_dot, b_dot) = (vec![0.0; n], vec![0.0; m]);
    let tangents: [&[f64]; 3] = [&c_dot, &a_dot, &b_dot];
    // NULL: the defaults (rtol 1e-10) with CG.
    let (s, gradients, _) = ot_implicit_vjp(&case, &plan_bar, null());
    assert_eq!(s, adj_status::ADJ_OK, "{}", last_error());
    assert!(gradients[0].iter().all(|v| v.is_finite()));

    let warm = vec![0.0; n + m];
    type Spoil = fn(&mut adj_implicit_options, *const f64);
    let refusals: [(Spoil, &str); 3] = [
        (
            |o, _| o.solver = adj_solver::ADJ_SOLVER_GMRES as u32,
            "`solver`",
        ),
        (|o, _| o.ridge = 1e-3, "ridge"),
        (|o, w| o.warm_start = w, "warm_start"),
    ];
    for (spoil, named) in refusals {
        let mut bad = implicit;
        spoil(&mut bad, warm.as_ptr());
        let (s, _, _) = ot_implicit_vjp(&case, &plan_bar, &bad);
        expect(s, adj_status::ADJ_ERR_INVALID_ARGUMENT, &[named]);
        let (s, _) = ot_implicit_jvp(&case, tangents, &bad);
        expect(s, adj_status::ADJ_ERR_INVALID_ARGUMENT, &[named]);
    }
}
