//! `adj_implicit_*`: implicit differentiation of root problems given by
//! callbacks, and gradients through linear solves.

use super::args::{finite_input, finite_output, handle, slice, slice_mut};
use super::callback::{vector_map, Context};
use super::precond::adj_precond;
use super::report::{adj_solve_report, write_report};
use super::status::{adj_status, boundary};
use super::versioned::{self, versioned, Output};
use crate::error::{Error, Result};
use crate::implicit::{
    self, csr_solve_vjp, grid_solve_vjp, matrix_gradient, ImplicitOptions, JacobianKind,
    LinearSolver, RootProblem,
};
use crate::krylov::{Identity, KrylovOptions, Preconditioner};
use std::ffi::{c_int, c_void};

/// The linear solver of a VJP or JVP (`adj_implicit_options.solver`,
/// stored as `uint32_t`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum adj_solver {
    /// Conjugate gradient (A symmetric positive definite).
    ADJ_SOLVER_CG = 0,
    /// Restarted GMRES (`gmres_restart`).
    ADJ_SOLVER_GMRES = 1,
    /// BiCGStab.
    ADJ_SOLVER_BICGSTAB = 2,
    /// CG on the normal equations (any nonsingular A; needs products with
    /// A and Aᵀ).
    ADJ_SOLVER_NORMAL_CG = 3,
    /// Dense LU (faer) of A built from n products, for n ≤ 4096.
    ADJ_SOLVER_DENSE_LU = 4,
}

/// What the products of an `adj_root_problem` describe
/// (`adj_root_problem.kind`, stored as `uint32_t`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum adj_jacobian_kind {
    /// `a`/`a_t` give A = ∂F/∂x and Aᵀ.
    ADJ_JACOBIAN_GENERAL = 0,
    /// F is a gradient and A a symmetric Hessian; only `a` is used (also
    /// for Aᵀ).
    ADJ_JACOBIAN_SYMMETRIC = 1,
    /// F(x, θ) = T(x, θ) − x; `a`/`a_t` give ∂T/∂x and its transpose,
    /// `b`/`b_t` give ∂T/∂θ; A = ∂T/∂x − I.
    ADJ_JACOBIAN_FIXED_POINT = 2,
}

/// A Jacobian product y = M v supplied by the caller: `v` holds `v_len`
/// doubles and `y` receives `y_len` doubles (they do not overlap). Receives
/// the root problem's `ctx` first. Returns 0 on success; any other value
/// aborts with `ADJ_ERR_CALLBACK`. Invoked only on the calling thread.
#[allow(non_camel_case_types)]
pub type adj_jacobian_fn = Option<
    unsafe extern "C" fn(
        ctx: *mut c_void,
        v: *const f64,
        v_len: usize,
        y: *mut f64,
        y_len: usize,
    ) -> c_int,
>;

/// The Jacobians of F(x, θ) = 0 at a solution x* ∈ ℝⁿ, θ ∈ ℝᵖ, as
/// products: A = ∂F/∂x (n×n), B = ∂F/∂θ (n×p). Unused products may be NULL.
/// Initialise with `adj_root_problem_init(&problem, sizeof problem)`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct adj_root_problem {
    /// `sizeof(adj_root_problem)` as the caller's header declares it (set
    /// by `adj_root_problem_init`).
    pub struct_size: usize,
    /// n: the number of unknowns (≥ 1).
    pub n: usize,
    /// p: the number of parameters (≥ 1).
    pub p: usize,
    /// An `adj_jacobian_kind` value. Default `ADJ_JACOBIAN_GENERAL`.
    pub kind: u32,
    /// Passed first to every product; borrowed, never dereferenced.
    pub ctx: *mut c_void,
    /// v (n) ↦ A v (n); required.
    pub a: adj_jacobian_fn,
    /// u (n) ↦ Aᵀ u (n); required for VJPs unless `kind` is symmetric.
    pub a_t: adj_jacobian_fn,
    /// θ̇ (p) ↦ B θ̇ (n); required for JVPs.
    pub b: adj_jacobian_fn,
    /// u (n) ↦ Bᵀ u (p); required for VJPs.
    pub b_t: adj_jacobian_fn,
}

/// Options of the linear solve inside a VJP or JVP, independent of the
/// forward solve. Initialise with
/// `adj_implicit_options_init(&options, sizeof options)`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct adj_implicit_options {
    /// `sizeof(adj_implicit_options)` as the caller's header declares it.
    pub struct_size: usize,
    /// An `adj_solver` value. Default `ADJ_SOLVER_GMRES`.
    pub solver: u32,
    /// Restart length of GMRES. Default 30.
    pub gmres_restart: usize,
    /// Stop at ‖rhs − M z‖₂ ≤ max(rtol·‖rhs‖₂, atol). Default 1e-10.
    pub rtol: f64,
    /// Absolute tolerance. Default 0.
    pub atol: f64,
    /// Iteration limit. Default 10000.
    pub max_iterations: usize,
    /// Ridge ρ ≥ 0: solve with A + ρI (Aᵀ + ρI). Default 0.
    pub ridge: f64,
    /// Initial guess for the solution (n doubles), or NULL (zero).
    pub warm_start: *const f64,
    /// Preconditioner of the system (borrowed), or NULL (none).
    pub precond: *const adj_precond,
}

versioned!(
    adj_root_problem,
    adj_root_problem {
        struct_size: std::mem::size_of::<adj_root_problem>(),
        n: 0,
        p: 0,
        kind: adj_jacobian_kind::ADJ_JACOBIAN_GENERAL as u32,
        ctx: std::ptr::null_mut(),
        a: None,
        a_t: None,
        b: None,
        b_t: None,
    }
);

versioned!(adj_implicit_options, {
    let d = ImplicitOptions::default();
    adj_implicit_options {
        struct_size: std::mem::size_of::<adj_implicit_options>(),
        solver: adj_solver::ADJ_SOLVER_GMRES as u32,
        gmres_restart: 30,
        rtol: d.krylov.rtol,
        atol: d.krylov.atol,
        max_iterations: d.krylov.max_iterations,
        ridge: d.ridge,
        warm_start: std::ptr::null(),
        precond: std::ptr::null(),
    }
});

/// Initialises `*options` (`struct_size` = `sizeof *options` in the
/// caller's header) with the defaults: GMRES(30), rtol 1e-10, atol 0,
/// 10000 iterations, no ridge, no warm start, no preconditioner.
#[no_mangle]
pub unsafe extern "C" fn adj_implicit_options_init(
    options: *mut adj_implicit_options,
    struct_size: usize,
) -> adj_status {
    // SAFETY: `options` holds `struct_size` writable bytes by contract.
    boundary(|| unsafe { versioned::init(options, struct_size, "options") })
}

/// Initialises `*problem` (`struct_size` = `sizeof *problem` in the
/// caller's header): n = p = 0, `ADJ_JACOBIAN_GENERAL`, no products; the
/// caller then sets them.
#[no_mangle]
pub unsafe extern "C" fn adj_root_problem_init(
    problem: *mut adj_root_problem,
    struct_size: usize,
) -> adj_status {
    // SAFETY: `problem` holds `struct_size` writable bytes by contract.
    boundary(|| unsafe { versioned::init(problem, struct_size, "problem") })
}

fn linear_solver(o: &adj_implicit_options) -> Result<LinearSolver> {
    use adj_solver::*;
    Ok(match o.solver {
        s if s == ADJ_SOLVER_CG as u32 => LinearSolver::Cg,
        s if s == ADJ_SOLVER_GMRES as u32 => LinearSolver::Gmres(o.gmres_restart),
        s if s == ADJ_SOLVER_BICGSTAB as u32 => LinearSolver::Bicgstab,
        s if s == ADJ_SOLVER_NORMAL_CG as u32 => LinearSolver::NormalCg,
        s if s == ADJ_SOLVER_DENSE_LU as u32 => LinearSolver::DenseLu,
        other => {
            return Err(Error::invalid(
                "solver",
                format!("{other} is not one of ADJ_SOLVER_CG (0), GMRES (1), BICGSTAB (2), NORMAL_CG (3), DENSE_LU (4)"),
            ))
        }
    })
}

/// The Rust options described by `options` (NULL = defaults), for systems of
/// dimension n.
///
/// # Safety
/// `options` is NULL or valid; its warm start holds n doubles and its
/// preconditioner is NULL or live.
unsafe fn rust_options<'a>(
    options: *const adj_implicit_options,
    n: usize,
) -> Result<ImplicitOptions<'a>> {
    // SAFETY: NULL (defaults) or a valid options struct.
    let o = unsafe { versioned::read(options, "options") }?;
    let warm_start = if o.warm_start.is_null() {
        None
    } else {
        // SAFETY: non-NULL; the caller passes n doubles.
        let start = unsafe { slice(o.warm_start, n, "warm_start") }?;
        finite_input("warm_start", start)?;
        Some(start)
    };

    // SAFETY: NULL or a live handle.
    let precond = unsafe { o.precond.as_ref() }.map(|p| &*p.inner);
    if let Some(p) = precond {
        Error::check_len("precond", n, p.dim())?;
    }
    Ok(ImplicitOptions {
        solver: linear_solver(&o)?,
        krylov: KrylovOptions {
            rtol: o.rtol,
            atol: o.atol,
            max_iterations: o.max_iterations,
            ..KrylovOptions::default()
        },
        ridge: o.ridge,
        warm_start,
        precond,
    })
}

/// The closure calling product `f` of a root problem; `name` names it in
/// errors.
fn product(
    f: unsafe extern "C" fn(*mut c_void, *const f64, usize, *mut f64, usize) -> c_int,
    ctx: Context,
    name: &'static str,
) -> impl Fn(&[f64], &mut [f64]) -> Result<()> {
    let call = vector_map(ctx, name, move |ctx, v, y| {
        // SAFETY: the caller promised valid products; v and y are valid
        // slices of the lengths passed.
        unsafe { f(ctx, v.as_ptr(), v.len(), y.as_mut_ptr(), y.len()) }
    });
    move |v: &[f64], y: &mut [f64]| {
        call(v, y)?;
        // A non-finite output from a finite input is the product's fault
        // (a NaN input comes from a failing solve, which reports it).
        use crate::vector::first_non_finite;
        match first_non_finite(y).filter(|_| first_non_finite(v).is_none()) {
            None => Ok(()),
            Some((i, value)) => Err(Error::invalid(
                name,
                format!("the product returned 0 but wrote y[{i}] = {value} for a finite v"),
            )),
        }
    }
}

/// Runs `body` with the Rust view of a C root problem.
fn with_problem<T>(
    c: &adj_root_problem,
    body: impl FnOnce(&RootProblem<'_>) -> Result<T>,
) -> Result<T> {
    use adj_jacobian_kind::*;
    let kind = match c.kind {
        k if k == ADJ_JACOBIAN_GENERAL as u32 => JacobianKind::General,
        k if k == ADJ_JACOBIAN_SYMMETRIC as u32 => JacobianKind::Symmetric,
        k if k == ADJ_JACOBIAN_FIXED_POINT as u32 => JacobianKind::FixedPoint,
        other => {
            return Err(Error::invalid(
                "kind",
                format!(
                    "{other} is not ADJ_JACOBIAN_GENERAL (0), SYMMETRIC (1) or FIXED_POINT (2)"
                ),
            ))
        }
    };
    if c.n == 0 || c.p == 0 {
        return Err(Error::invalid(
            "problem",
            format!("n = {} and p = {} must both be at least 1", c.n, c.p),
        ));
    }
    let ctx = Context(c.ctx);
    let a = product(c.a.ok_or(Error::NullArgument { argument: "a" })?, ctx, "a");
    let a_t = c.a_t.map(|f| product(f, ctx, "a_t"));
    let b = c.b.map(|f| product(f, ctx, "b"));
    let b_t = c.b_t.map(|f| product(f, ctx, "b_t"));
    let problem = RootProblem {
        dim: c.n,
        num_params: c.p,
        kind,
        a: &a,
        a_t: a_t.as_ref().map(|f| f as _),
        b: b.as_ref().map(|f| f as _),
        b_t: b_t.as_ref().map(|f| f as _),
    };
    body(&problem)
}

/// Vector-Jacobian product of the solution x*(θ) of F(x, θ) = 0: for a
/// cotangent v̄ (`cotangent`, n doubles) writes (∂x*/∂θ)ᵀ v̄ = Bᵀu to `out`
/// (p doubles), where (Aᵀ + ρI) u = −v̄ is solved as set in `options` (NULL
/// = defaults). Needs the products `a` (or `a_t`) and `b_t`.
///
/// `out` is written only on success. `report` (may be NULL) is written when
/// the linear solve ran, also when it failed: an unconverged solve is
/// `ADJ_ERR_NOT_CONVERGED` (a singular A shows as a breakdown or the
/// iteration limit), never a silently wrong gradient. A product returning
/// nonzero gives `ADJ_ERR_CALLBACK`.
#[no_mangle]
pub unsafe extern "C" fn adj_implicit_vjp(
    problem: *const adj_root_problem,
    cotangent: *const f64,
    n: usize,
    options: *const adj_implicit_options,
    out: *mut f64,
    p: usize,
    report: *mut adj_solve_report,
) -> adj_status {
    // SAFETY: forwarded contract.
    unsafe {
        root_product(
            problem,
            cotangent,
            out,
            n,
            p,
            options,
            report,
            Direction::Vjp,
        )
    }
}

/// Jacobian-vector product of the solution x*(θ) of F(x, θ) = 0: for a
/// tangent θ̇ (`tangent`, p doubles) writes ẋ = (∂x*/∂θ) θ̇ to `out` (n
/// doubles), solving (A + ρI) ẋ = −B θ̇. Needs the products `a` and `b`.
/// Statuses and `report` as for `adj_implicit_vjp`.
#[no_mangle]
pub unsafe extern "C" fn adj_implicit_jvp(
    problem: *const adj_root_problem,
    tangent: *const f64,
    p: usize,
    options: *const adj_implicit_options,
    out: *mut f64,
    n: usize,
    report: *mut adj_solve_report,
) -> adj_status {
    // SAFETY: forwarded contract.
    unsafe { root_product(problem, tangent, out, n, p, options, report, Direction::Jvp) }
}

/// Which product of the implicit Jacobian ∂x*/∂θ (n×p).
#[derive(Clone, Copy)]
enum Direction {
    /// (∂x*/∂θ)ᵀ v̄: input n, output p.
    Vjp,
    /// (∂x*/∂θ) θ̇: input p, output n.
    Jvp,
}

/// The common body of `adj_implicit_vjp` and `adj_implicit_jvp`.
///
/// # Safety
/// Pointers as documented on those functions.
#[allow(clippy::too_many_arguments)]
unsafe fn root_product(
    problem: *const adj_root_problem,
    input: *const f64,
    out: *mut f64,
    n: usize,
    p: usize,
    options: *const adj_implicit_options,
    report: *mut adj_solve_report,
    direction: Direction,
) -> adj_status {
    boundary(|| {
        if problem.is_null() {
            return Err(Error::NullArgument {
                argument: "problem",
            });
        }
        // SAFETY: a valid struct.
        let c = unsafe { versioned::read(problem, "problem") }?;
        // SAFETY: NULL or a valid report struct.
        let report = unsafe { Output::new(report, "report") }?;
        Error::check_len("n", c.n, n)?;
        Error::check_len("p", c.p, p)?;
        let (input_name, input_len, out_len) = match direction {
            Direction::Vjp => ("cotangent", n, p),
            Direction::Jvp => ("tangent", p, n),
        };
        // SAFETY: the caller passes arrays of these lengths.
        let (input, out) = unsafe {
            (
                slice(input, input_len, input_name)?,
                slice_mut(out, out_len, "out")?,
            )
        };
        finite_input(input_name, input)?;
        // SAFETY: forwarded contract.
        let options = unsafe { rust_options(options, n) }?;
        let result = with_problem(&c, |problem| match direction {
            Direction::Vjp => implicit::vjp(problem, input, &options),
            Direction::Jvp => implicit::jvp(problem, input, &options),
        });
        write_report(result.as_ref().map(|(_, r)| r), None, &report);
        let value = result?.0;
        finite_output("out", &value)?;
        out.copy_from_slice(&value);
        Ok(())
    })
}

/// Gradients of a loss L through x = A⁻¹ b for a CSR or grid operator `op`
/// (n unknowns, nnz stored entries; for a grid those of its CSR export):
/// given the forward solution `x` and x̄ = ∂L/∂x (`x_bar`), solves
/// Aᵀλ = x̄ and writes ∂L/∂b = λ to `grad_b` (n) and ∂L/∂A_k = −λ_i x_j for
/// each stored entry k = (i, j), in CSR order, to `grad_values` (nnz; NULL
/// to skip). `options->precond` is the forward preconditioner (reused; NULL
/// = none); the solver is CG (required for grid operators), GMRES or
/// BiCGStab (on Aᵀ when a CSR matrix is not symmetric); `ridge` must be 0
/// and `warm_start` NULL. Outputs are written only on success; `report` as
/// for `adj_implicit_vjp`.
#[no_mangle]
pub unsafe extern "C" fn adj_linear_solve_vjp(
    op: *const super::operator::adj_operator,
    x: *const f64,
    x_bar: *const f64,
    n: usize,
    options: *const adj_implicit_options,
    grad_b: *mut f64,
    grad_values: *mut f64,
    nnz: usize,
    report: *mut adj_solve_report,
) -> adj_status {
    use super::operator::OperatorKind;
    boundary(|| {
        // SAFETY: NULL or a live handle.
        let op = unsafe { handle(op, "op") }?;
        Error::check_len("n", op.linear_operator().dim(), n)?;
        // SAFETY: the caller passes n doubles in x, x_bar and grad_b.
        let (x, x_bar, grad_b) = unsafe {
            (
                slice(x, n, "x")?,
                slice(x_bar, n, "x_bar")?,
                slice_mut(grad_b, n, "grad_b")?,
            )
        };
        finite_input("x", x)?;
        finite_input("x_bar", x_bar)?;
        // SAFETY: forwarded contract.
        let options = unsafe { rust_options(options, n) }?;
        // SAFETY: NULL or a valid report struct.
        let report = unsafe { Output::new(report, "report") }?;
        if options.ridge != 0.0 || options.warm_start.is_some() {
            return Err(Error::invalid(
                "options",
                "ridge must be 0 and warm_start NULL for a linear-solve gradient",
            ));
        }
        // The entries (and their count) are checked before the solve.
        let (matrix, grad_values) = if grad_values.is_null() {
            (None, None)
        } else {
            let csr = op.to_csr()?;
            Error::check_len("nnz", csr.nnz(), nnz)?;
            // SAFETY: non-NULL; the caller passes nnz doubles.
            let out = unsafe { slice_mut(grad_values, nnz, "grad_values") }?;
            (Some(csr), Some(out))
        };
        let identity = Identity { dim: n };
        let precond: &dyn Preconditioner = options.precond.unwrap_or(&identity);
        let result = match &op.kind {
            OperatorKind::Csr(a) => {
                csr_solve_vjp(a, precond, x, x_bar, options.solver, &options.krylov)
            }
            OperatorKind::Grid(g) if options.solver == LinearSolver::Cg => {
                grid_solve_vjp(g, precond, x, x_bar, &options.krylov)
            }
            OperatorKind::Grid(_) => Err(Error::invalid(
                "solver",
                "a grid Poisson operator is symmetric positive definite: use ADJ_SOLVER_CG",
            )),
            OperatorKind::Callback(_) => Err(Error::invalid(
                "op",
                "a callback operator has no stored entries: use adj_implicit_vjp with its products",
            )),
        };
        write_report(result.as_ref().map(|g| &g.report), None, &report);
        let gradient = result?;
        finite_output("grad_b", &gradient.b)?;
        let values = match &matrix {
            Some(csr) => Some(matrix_gradient(csr, &gradient.b, x)?),
            None => None,
        };
        if let (Some(values), Some(out)) = (values, grad_values) {
            finite_output("grad_values", &values)?;
            out.copy_from_slice(&values);
        }
        grad_b.copy_from_slice(&gradient.b);
        Ok(())
    })
}
