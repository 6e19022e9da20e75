//! `adj_ot_*`: entropic optimal transport.
//!
//! Convention: P_ij = exp((f_i + g_j − C_ij)/ε) solves
//! min_P ⟨C, P⟩ + ε Σ P_ij (log P_ij − 1) s.t. P1 = a, Pᵀ1 = b,
//! with ε in the units of C (η = 1/ε in the Sinkhorn-Newton-Sparse paper).
//!
//! The derivative functions (`adj_ot_cost_gradient`, `adj_ot_implicit_vjp`,
//! `adj_ot_implicit_jvp`) take the solution as the arrays `adj_ot_solve`
//! wrote — C, ε, f, g — rather than an object it returned: an autodiff
//! host (a JAX `custom_vjp`, a ChainRules `rrule`) keeps exactly these as
//! its residuals, possibly long after the solve; the plan is recomputed
//! from them instead of being kept (n·m doubles); and there is no handle to
//! outlive or free.

use super::args::{finite_input, finite_output, option_in, out_ptr, slice, slice_mut};
use super::cg::{adj_cg_options, krylov_options};
use super::implicit::{adj_implicit_options, adj_solver};
use super::report::{adj_solve_report, write_report};
use super::status::{adj_status, boundary};
use super::versioned::{self, versioned, Output, Versioned};
use crate::error::{Error, Result};
use crate::implicit::OtPoint;
use crate::krylov::KrylovOptions;
use crate::ot::{self, CostMatrix, OtMethod, OtOptions};

/// The OT algorithm (`adj_ot_options.method`, stored as `uint32_t`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum adj_ot_method {
    /// Log-domain Sinkhorn only.
    ADJ_OT_SINKHORN = 0,
    /// Sinkhorn warm-up, then Newton steps with a sparsified Hessian solved
    /// by CG (Sinkhorn-Newton-Sparse, default).
    ADJ_OT_SINKHORN_NEWTON_SPARSE = 1,
}

/// Options of `adj_ot_solve`. Initialise with
/// `adj_ot_options_init(&options, sizeof options)`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct adj_ot_options {
    /// `sizeof(adj_ot_options)` as the caller's header declares it.
    pub struct_size: usize,
    /// Entropic regularisation ε > 0, in the units of the cost. Default 0.05.
    pub eps: f64,
    /// An `adj_ot_method` value. Default `ADJ_OT_SINKHORN_NEWTON_SPARSE`.
    pub method: u32,
    /// Stop when ‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁ ≤ tol. Default 1e-9.
    pub tol: f64,
    /// Sinkhorn iteration limit (method Sinkhorn). Default 100000.
    pub max_sinkhorn_iterations: usize,
    /// SNS: Sinkhorn iterations before Newton and after a failed Newton step
    /// (Sinkhorn finishes when its rate predicts convergence within 25 more). Default 10.
    pub warmup_iterations: usize,
    /// SNS: Newton iteration limit. Default 1000.
    pub max_newton_iterations: usize,
    /// SNS: entries of P kept per row of the sparsified Hessian at first. Default 32.
    pub hessian_entries_per_row: usize,
    /// SNS: the most entries per row the Hessian grows to when Newton stalls. Default 256.
    pub max_hessian_entries_per_row: usize,
    /// SNS: the tightest relative tolerance of a Newton system's CG (each uses
    /// min(0.1, marginal error), not below this). Default 1e-10.
    pub cg_rtol: f64,
    /// SNS: CG iteration limit per Newton step. Default 1000.
    pub cg_max_iterations: usize,
}

/// What `adj_ot_solve` computed. Initialise with
/// `adj_ot_result_init(&result, sizeof result)` before passing it.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct adj_ot_result {
    /// `sizeof(adj_ot_result)` as the caller's header declares it.
    pub struct_size: usize,
    /// ⟨C, P⟩.
    pub transport_cost: f64,
    /// ⟨C, P⟩ + ε Σ P_ij (log P_ij − 1).
    pub objective: f64,
    /// ‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁ at the returned potentials.
    pub marginal_error: f64,
    /// Sinkhorn iterations (warm-up, hand-overs to Sinkhorn and fallbacks included).
    pub sinkhorn_iterations: usize,
    /// Newton iterations.
    pub newton_iterations: usize,
    /// CG iterations over all Newton systems.
    pub cg_iterations: usize,
    /// Newton steps replaced by Sinkhorn iterations.
    pub fallbacks: usize,
    /// Entries per row of P in the last sparsified Hessian.
    pub hessian_entries_per_row: usize,
}

versioned!(
    adj_ot_result,
    adj_ot_result {
        struct_size: std::mem::size_of::<adj_ot_result>(),
        transport_cost: f64::NAN,
        objective: f64::NAN,
        marginal_error: f64::NAN,
        sinkhorn_iterations: 0,
        newton_iterations: 0,
        cg_iterations: 0,
        fallbacks: 0,
        hessian_entries_per_row: 0,
    }
);

/// Initialises `*options` (`struct_size` = `sizeof *options` in the
/// caller's header) with the defaults given on each field.
#[no_mangle]
pub unsafe extern "C" fn adj_ot_options_init(
    options: *mut adj_ot_options,
    struct_size: usize,
) -> adj_status {
    // SAFETY: `options` holds `struct_size` writable bytes by contract.
    boundary(|| unsafe { versioned::init(options, struct_size, "options") })
}

/// Initialises `*result` (`struct_size` = `sizeof *result` in the caller's
/// header) before it is passed to `adj_ot_solve`.
#[no_mangle]
pub unsafe extern "C" fn adj_ot_result_init(
    result: *mut adj_ot_result,
    struct_size: usize,
) -> adj_status {
    // SAFETY: `result` holds `struct_size` writable bytes by contract.
    boundary(|| unsafe { versioned::init(result, struct_size, "result") })
}

versioned!(adj_ot_options, {
    let d = OtOptions::default();
    adj_ot_options {
        struct_size: std::mem::size_of::<adj_ot_options>(),
        eps: d.eps,
        method: adj_ot_method::ADJ_OT_SINKHORN_NEWTON_SPARSE as u32,
        tol: d.tol,
        max_sinkhorn_iterations: d.max_sinkhorn_iterations,
        warmup_iterations: d.warmup_iterations,
        max_newton_iterations: d.max_newton_iterations,
        hessian_entries_per_row: d.hessian_entries_per_row,
        max_hessian_entries_per_row: d.max_hessian_entries_per_row,
        cg_rtol: d.cg_rtol,
        cg_max_iterations: d.cg_max_iterations,
    }
});

fn rust_options(o: &adj_ot_options) -> Result<OtOptions> {
    let method = match o.method {
        m if m == adj_ot_method::ADJ_OT_SINKHORN as u32 => OtMethod::Sinkhorn,
        m if m == adj_ot_method::ADJ_OT_SINKHORN_NEWTON_SPARSE as u32 => {
            OtMethod::SinkhornNewtonSparse
        }
        other => {
            return Err(Error::invalid(
                "method",
                format!("{other} is not ADJ_OT_SINKHORN (0) or ADJ_OT_SINKHORN_NEWTON_SPARSE (1)"),
            ))
        }
    };
    option_in("cg_rtol", o.cg_rtol, 0.0..=1.0, "finite and in [0, 1]")?;
    Ok(OtOptions {
        eps: o.eps,
        method,
        tol: o.tol,
        max_sinkhorn_iterations: o.max_sinkhorn_iterations,
        warmup_iterations: o.warmup_iterations,
        max_newton_iterations: o.max_newton_iterations,
        hessian_entries_per_row: o.hessian_entries_per_row,
        max_hessian_entries_per_row: o.max_hessian_entries_per_row,
        cg_rtol: o.cg_rtol,
        cg_max_iterations: o.cg_max_iterations,
    })
}

/// Fills `cost` (n·m doubles, row-major) with C_ij = ‖x_i − y_j‖₂² for
/// points x (n·d doubles, row-major) and y (m·d doubles).
#[no_mangle]
pub unsafe extern "C" fn adj_ot_cost_sqeuclidean(
    x: *const f64,
    n: usize,
    y: *const f64,
    m: usize,
    d: usize,
    cost: *mut f64,
) -> adj_status {
    // SAFETY: forwarded contract.
    unsafe {
        write_cost(x, n, y, m, d, cost, |x, y| {
            CostMatrix::squared_euclidean(x, y, d)
        })
    }
}

/// Fills `cost` (n·m doubles) with C_ij = Σ_k |x_ik − y_jk|^p, p ≥ 1
/// (p = 1: L1 distance).
#[no_mangle]
pub unsafe extern "C" fn adj_ot_cost_pnorm(
    x: *const f64,
    n: usize,
    y: *const f64,
    m: usize,
    d: usize,
    p: f64,
    cost: *mut f64,
) -> adj_status {
    // SAFETY: forwarded contract.
    unsafe { write_cost(x, n, y, m, d, cost, |x, y| CostMatrix::p_norm(x, y, d, p)) }
}

/// # Safety
/// Pointers as documented on the exported cost functions.
unsafe fn write_cost(
    x: *const f64,
    n: usize,
    y: *const f64,
    m: usize,
    d: usize,
    cost: *mut f64,
    build: impl FnOnce(&[f64], &[f64]) -> Result<CostMatrix>,
) -> adj_status {
    boundary(|| {
        let (xn, ym) = (n.checked_mul(d), m.checked_mul(d));
        let (Some(xn), Some(ym), Some(nm)) = (xn, ym, n.checked_mul(m)) else {
            return Err(Error::invalid("n", "n·d, m·d or n·m overflows"));
        };
        // SAFETY: the caller passes arrays of the documented sizes.
        let (x, y, out) = unsafe {
            (
                slice(x, xn, "x")?,
                slice(y, ym, "y")?,
                slice_mut(cost, nm, "cost")?,
            )
        };
        out.copy_from_slice(build(x, y)?.values());
        Ok(())
    })
}

/// Solves the entropic OT problem between histograms `a` (n, > 0) and `b`
/// (m, > 0, same total mass) for the row-major n×m `cost`:
///
/// min_P ⟨C, P⟩ + ε Σ_ij P_ij (log P_ij − 1)  s.t.  P1 = a, Pᵀ1 = b,
///
/// with ε = `options->eps` in the units of C (the Sinkhorn-Newton-Sparse
/// paper writes η = 1/ε). The solution is P_ij = exp((f_i + g_j − C_ij)/ε);
/// f and g are unique up to (f + c, g − c).
///
/// On success writes the potentials f (n) and g (m), the plan (n·m,
/// row-major; pass NULL to skip) and `result` (may be NULL). Fails with
/// `ADJ_ERR_NOT_CONVERGED` when the marginal error did not reach `tol`
/// within the iteration limits. `options` may be NULL (defaults). Runs on
/// the library's threads; no callbacks.
#[no_mangle]
pub unsafe extern "C" fn adj_ot_solve(
    a: *const f64,
    n: usize,
    b: *const f64,
    m: usize,
    cost: *const f64,
    options: *const adj_ot_options,
    f: *mut f64,
    g: *mut f64,
    plan: *mut f64,
    result: *mut adj_ot_result,
) -> adj_status {
    boundary(|| {
        let nm = n
            .checked_mul(m)
            .ok_or_else(|| Error::invalid("m", "n·m overflows"))?;
        // SAFETY: the caller passes arrays of the documented sizes.
        let (a, b, c) = unsafe {
            (
                slice(a, n, "a")?,
                slice(b, m, "b")?,
                slice(cost, nm, "cost")?,
            )
        };
        out_ptr(f, "f")?;
        out_ptr(g, "g")?;
        // SAFETY: NULL (defaults) or a valid options struct.
        let options = rust_options(&unsafe { versioned::read(options, "options") }?)?;
        // SAFETY: NULL or a valid result struct.
        let result = unsafe { Output::new(result, "result") }?;
        let cost = CostMatrix::from_dense(n, m, crate::alloc::copied(c, "cost")?)?;
        let solution = ot::solve(a, b, &cost, &options)?;
        finite_output("f", &solution.f)?;
        finite_output("g", &solution.g)?;
        // SAFETY: checked non-NULL; the caller passes n and m doubles.
        let (f, g) = unsafe { (slice_mut(f, n, "f")?, slice_mut(g, m, "g")?) };
        if !plan.is_null() {
            // SAFETY: non-NULL; the caller passes n·m doubles.
            let plan = unsafe { slice_mut(plan, nm, "plan")? };
            ot::write_plan(&cost, options.eps, &solution.f, &solution.g, plan)?;
        }
        f.copy_from_slice(&solution.f);
        g.copy_from_slice(&solution.g);
        let r = &solution.report;
        result.write(&adj_ot_result {
            struct_size: std::mem::size_of::<adj_ot_result>(),
            transport_cost: solution.transport_cost,
            objective: solution.objective,
            marginal_error: r.marginal_error,
            sinkhorn_iterations: r.sinkhorn_iterations,
            newton_iterations: r.newton_iterations,
            cg_iterations: r.cg_iterations,
            fallbacks: r.fallbacks,
            hessian_entries_per_row: r.hessian_entries_per_row,
        });
        Ok(())
    })
}

/// The converged solution (cost, potentials) that the OT gradients read.
struct SolvedOt<'a> {
    cost: CostMatrix,
    f: &'a [f64],
    g: &'a [f64],
    eps: f64,
}

impl SolvedOt<'_> {
    fn point(&self) -> OtPoint<'_> {
        OtPoint {
            cost: &self.cost,
            eps: self.eps,
            f: self.f,
            g: self.g,
        }
    }
}

/// # Safety
/// `cost` holds n·m doubles, `f` n and `g` m (or NULL, reported).
unsafe fn solved_ot<'a>(
    cost: *const f64,
    n: usize,
    m: usize,
    eps: f64,
    f: *const f64,
    g: *const f64,
) -> Result<SolvedOt<'a>> {
    let nm = n
        .checked_mul(m)
        .ok_or_else(|| Error::invalid("m", "n·m overflows"))?;
    // SAFETY: the caller passes arrays of the documented sizes.
    let (c, f, g) = unsafe {
        (
            slice(cost, nm, "cost")?,
            slice(f, n, "f")?,
            slice(g, m, "g")?,
        )
    };
    option_in("eps", eps, f64::MIN_POSITIVE..=f64::MAX, "finite and > 0")?;
    finite_input("f", f)?;
    finite_input("g", g)?;
    Ok(SolvedOt {
        cost: CostMatrix::from_dense(n, m, crate::alloc::copied(c, "cost")?)?,
        f,
        g,
        eps,
    })
}

/// Gradient of the regularised cost OT_ε(C, a, b) = ⟨C, P⟩ + ε Σ P(log P − 1)
/// at a converged solution (potentials `f`, `g` from `adj_ot_solve` with the
/// same `cost`, n×m row-major, and `eps`): writes ∂OT_ε/∂C = P to
/// `grad_cost` (n·m; NULL to skip), ∂OT_ε/∂a = f − mean(f) to `grad_a` (n)
/// and ∂OT_ε/∂b = g + mean(f) to `grad_b` (m). (a and b keep equal mass, so
/// the gradient wrt (a, b) is defined up to (c, −c); this is the choice
/// with Σ grad_a = 0.) Outputs are written only on success.
#[no_mangle]
pub unsafe extern "C" fn adj_ot_cost_gradient(
    cost: *const f64,
    n: usize,
    m: usize,
    eps: f64,
    f: *const f64,
    g: *const f64,
    grad_cost: *mut f64,
    grad_a: *mut f64,
    grad_b: *mut f64,
) -> adj_status {
    boundary(|| {
        // SAFETY: forwarded contract.
        let solved = unsafe { solved_ot(cost, n, m, eps, f, g) }?;
        // SAFETY: the caller passes n and m doubles.
        let (ga, gb) = unsafe {
            (
                slice_mut(grad_a, n, "grad_a")?,
                slice_mut(grad_b, m, "grad_b")?,
            )
        };
        let gradient = solved.point().cost_gradient()?;
        finite_output("grad_cost", &gradient.cost)?;
        finite_output("grad_a", &gradient.a)?;
        finite_output("grad_b", &gradient.b)?;
        if !grad_cost.is_null() {
            // SAFETY: non-NULL; the caller passes n·m doubles.
            unsafe { slice_mut(grad_cost, n * m, "grad_cost") }?.copy_from_slice(&gradient.cost);
        }
        ga.copy_from_slice(&gradient.a);
        gb.copy_from_slice(&gradient.b);
        Ok(())
    })
}

/// Deprecated spelling of `adj_ot_implicit_vjp` with CG options (kept for
/// 0.2 clients): the same product, its Schur system solved to `options`'
/// tolerances (NULL = defaults; `nonzero_initial_guess` is ignored) with
/// the residual history filled.
#[no_mangle]
pub unsafe extern "C" fn adj_ot_plan_vjp(
    cost: *const f64,
    n: usize,
    m: usize,
    eps: f64,
    f: *const f64,
    g: *const f64,
    plan_bar: *const f64,
    options: *const adj_cg_options,
    grad_cost: *mut f64,
    grad_a: *mut f64,
    grad_b: *mut f64,
    report: *mut adj_solve_report,
) -> adj_status {
    // SAFETY: forwarded contract.
    unsafe {
        plan_vjp(
            cost,
            n,
            m,
            eps,
            f,
            g,
            plan_bar,
            DerivativeOptions::Cg(options),
            grad_cost,
            grad_a,
            grad_b,
            report,
        )
    }
}

/// Vector-Jacobian product of the plan P at a converged solution (arguments
/// as `adj_ot_cost_gradient`): for P̄ (`plan_bar`, n·m) writes the gradients
/// of ⟨P̄, P⟩ wrt C (`grad_cost`, n·m; NULL to skip), a (`grad_a`, n,
/// centred) and b (`grad_b`, m). With Q = P̄ ⊙ P/ε and u = (u_f, u_g) the
/// solution of H u = ε (Q1, Qᵀ1), H = [[diag(P1), P], [Pᵀ, diag(Pᵀ1)]]
/// (null direction (1, −1) projected out):
/// grad_a = u_f, grad_b = u_g, grad_cost_ij = P_ij (u_f,i + u_g,j)/ε − Q_ij.
/// The system is solved to ‖H u − r‖₂ ≤ max(rtol·‖r‖₂, atol) (`options`,
/// the options of every implicit-differentiation entry point:
/// `options->solver` must be `ADJ_SOLVER_CG`, NULL options being the
/// defaults with CG; `ridge` 0, `warm_start` and `precond` NULL) by CG on
/// the Schur complement diag(Pᵀ1) − Pᵀ diag(P1)⁻¹ P, preconditioned by its diagonal,
/// and back-substitution; its residual is that of H u = r. Outputs only on
/// success; `report` (may be NULL) as for `adj_cg_solve`, with the
/// iterations of the Schur system. Since 0.3.0.
#[no_mangle]
pub unsafe extern "C" fn adj_ot_implicit_vjp(
    cost: *const f64,
    n: usize,
    m: usize,
    eps: f64,
    f: *const f64,
    g: *const f64,
    plan_bar: *const f64,
    options: *const adj_implicit_options,
    grad_cost: *mut f64,
    grad_a: *mut f64,
    grad_b: *mut f64,
    report: *mut adj_solve_report,
) -> adj_status {
    // SAFETY: forwarded contract.
    unsafe {
        plan_vjp(
            cost,
            n,
            m,
            eps,
            f,
            g,
            plan_bar,
            DerivativeOptions::Implicit(options),
            grad_cost,
            grad_a,
            grad_b,
            report,
        )
    }
}

/// The body of both plan VJPs.
///
/// # Safety
/// As documented on `adj_ot_plan_vjp`.
#[allow(clippy::too_many_arguments)]
unsafe fn plan_vjp(
    cost: *const f64,
    n: usize,
    m: usize,
    eps: f64,
    f: *const f64,
    g: *const f64,
    plan_bar: *const f64,
    options: DerivativeOptions,
    grad_cost: *mut f64,
    grad_a: *mut f64,
    grad_b: *mut f64,
    report: *mut adj_solve_report,
) -> adj_status {
    boundary(|| {
        // SAFETY: forwarded contract.
        let solved = unsafe { solved_ot(cost, n, m, eps, f, g) }?;
        // SAFETY: the caller passes the documented sizes.
        let (plan_bar, ga, gb) = unsafe {
            (
                slice(plan_bar, n * m, "plan_bar")?,
                slice_mut(grad_a, n, "grad_a")?,
                slice_mut(grad_b, m, "grad_b")?,
            )
        };
        finite_input("plan_bar", plan_bar)?;
        // SAFETY: NULL or a valid options struct.
        let (mut krylov, history) = unsafe { options.krylov() }?;
        // SAFETY: NULL or a valid report struct.
        let report = unsafe { Output::new(report, "report") }?;
        krylov.nonzero_initial_guess = false;
        let result = solved.point().plan_vjp(plan_bar, &krylov);
        write_report(result.as_ref().map(|v| &v.report), history, &report);
        let vjp = result?;
        finite_output("grad_cost", &vjp.cost)?;
        finite_output("grad_a", &vjp.a)?;
        finite_output("grad_b", &vjp.b)?;
        if !grad_cost.is_null() {
            // SAFETY: non-NULL; the caller passes n·m doubles.
            unsafe { slice_mut(grad_cost, n * m, "grad_cost") }?.copy_from_slice(&vjp.cost);
        }
        ga.copy_from_slice(&vjp.a);
        gb.copy_from_slice(&vjp.b);
        Ok(())
    })
}

/// Deprecated spelling of `adj_ot_implicit_jvp` with CG options (kept for
/// 0.2 clients), as `adj_ot_plan_vjp` is of `adj_ot_implicit_vjp`.
#[no_mangle]
pub unsafe extern "C" fn adj_ot_plan_jvp(
    cost: *const f64,
    n: usize,
    m: usize,
    eps: f64,
    f: *const f64,
    g: *const f64,
    cost_dot: *const f64,
    a_dot: *const f64,
    b_dot: *const f64,
    options: *const adj_cg_options,
    plan_dot: *mut f64,
    report: *mut adj_solve_report,
) -> adj_status {
    // SAFETY: forwarded contract.
    unsafe {
        plan_jvp(
            cost,
            n,
            m,
            eps,
            f,
            g,
            cost_dot,
            a_dot,
            b_dot,
            DerivativeOptions::Cg(options),
            plan_dot,
            report,
        )
    }
}

/// Jacobian-vector product of the plan P at a converged solution (arguments
/// as `adj_ot_cost_gradient`): for tangents Ċ (`cost_dot`, n·m), ȧ
/// (`a_dot`, n) and ḃ (`b_dot`, m) with Σȧ = Σḃ, writes
/// Ṗ_ij = P_ij (ḟ_i + ġ_j − Ċ_ij)/ε to `plan_dot` (n·m), where
/// H (ḟ, ġ) = ε (ȧ, ḃ) + ((P⊙Ċ)1, (P⊙Ċ)ᵀ1). Solver, `options` and
/// `report` as for `adj_ot_implicit_vjp`; unequal tangent masses are
/// `ADJ_ERR_INVALID_ARGUMENT`. Since 0.3.0.
#[no_mangle]
pub unsafe extern "C" fn adj_ot_implicit_jvp(
    cost: *const f64,
    n: usize,
    m: usize,
    eps: f64,
    f: *const f64,
    g: *const f64,
    cost_dot: *const f64,
    a_dot: *const f64,
    b_dot: *const f64,
    options: *const adj_implicit_options,
    plan_dot: *mut f64,
    report: *mut adj_solve_report,
) -> adj_status {
    // SAFETY: forwarded contract.
    unsafe {
        plan_jvp(
            cost,
            n,
            m,
            eps,
            f,
            g,
            cost_dot,
            a_dot,
            b_dot,
            DerivativeOptions::Implicit(options),
            plan_dot,
            report,
        )
    }
}

/// The body of both plan JVPs.
///
/// # Safety
/// As documented on `adj_ot_plan_jvp`.
#[allow(clippy::too_many_arguments)]
unsafe fn plan_jvp(
    cost: *const f64,
    n: usize,
    m: usize,
    eps: f64,
    f: *const f64,
    g: *const f64,
    cost_dot: *const f64,
    a_dot: *const f64,
    b_dot: *const f64,
    options: DerivativeOptions,
    plan_dot: *mut f64,
    report: *mut adj_solve_report,
) -> adj_status {
    boundary(|| {
        // SAFETY: forwarded contract.
        let solved = unsafe { solved_ot(cost, n, m, eps, f, g) }?;
        // SAFETY: the caller passes the documented sizes.
        let (cost_dot, a_dot, b_dot, out) = unsafe {
            (
                slice(cost_dot, n * m, "cost_dot")?,
                slice(a_dot, n, "a_dot")?,
                slice(b_dot, m, "b_dot")?,
                slice_mut(plan_dot, n * m, "plan_dot")?,
            )
        };
        finite_input("cost_dot", cost_dot)?;
        finite_input("a_dot", a_dot)?;
        finite_input("b_dot", b_dot)?;
        // SAFETY: NULL or a valid options struct.
        let (mut krylov, history) = unsafe { options.krylov() }?;
        // SAFETY: NULL or a valid report struct.
        let report = unsafe { Output::new(report, "report") }?;
        krylov.nonzero_initial_guess = false;
        let result = solved.point().plan_jvp(cost_dot, a_dot, b_dot, &krylov);
        write_report(result.as_ref().map(|(_, r)| r), history, &report);
        let value = result?.0;
        finite_output("plan_dot", &value)?;
        out.copy_from_slice(&value);
        Ok(())
    })
}

/// The options of an OT derivative's linear solve, as either entry point
/// spells them.
#[derive(Clone, Copy)]
enum DerivativeOptions {
    /// `adj_ot_plan_vjp` / `_jvp`: CG options with a residual history.
    Cg(*const adj_cg_options),
    /// `adj_ot_implicit_vjp` / `_jvp`: the implicit-differentiation options.
    Implicit(*const adj_implicit_options),
}

impl DerivativeOptions {
    /// The Krylov options of the Schur system and the history buffer.
    ///
    /// # Safety
    /// The pointer is NULL or valid (with its history buffer).
    unsafe fn krylov<'a>(self) -> Result<(KrylovOptions, Option<&'a mut [f64]>)> {
        match self {
            // SAFETY: forwarded contract.
            Self::Cg(options) => unsafe { krylov_options(options) },
            Self::Implicit(options) => {
                // SAFETY: NULL or a valid options struct; NULL is the
                // defaults with the one solver that applies.
                let o = if options.is_null() {
                    adj_implicit_options {
                        solver: adj_solver::ADJ_SOLVER_CG as u32,
                        ..adj_implicit_options::defaults()
                    }
                } else {
                    unsafe { versioned::read(options, "options") }?
                };
                if o.solver != adj_solver::ADJ_SOLVER_CG as u32 {
                    return Err(Error::invalid(
                        "solver",
                        format!(
                            "solver = {}: the OT derivative's system is symmetric positive definite and solved by ADJ_SOLVER_CG (0)",
                            o.solver
                        ),
                    ));
                }
                if o.ridge != 0.0 || !o.warm_start.is_null() || !o.precond.is_null() {
                    return Err(Error::invalid(
                        "options",
                        "ridge must be 0 and warm_start and precond NULL for an OT derivative",
                    ));
                }
                let krylov = KrylovOptions {
                    rtol: o.rtol,
                    atol: o.atol,
                    max_iterations: o.max_iterations,
                    ..KrylovOptions::default()
                };
                Ok((krylov, None))
            }
        }
    }
}
