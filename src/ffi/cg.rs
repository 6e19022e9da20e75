//! `adj_cg_solve`: preconditioned conjugate gradient.

use super::args::{finite_output, handle, slice, slice_mut};
use super::callback::adj_allreduce_fn;
use super::comm::{adj_comm, reduction};
use super::operator::adj_operator;
use super::precond::adj_precond;
use super::report::{adj_solve_report, write_report};
use super::status::{adj_status, boundary};
use super::versioned::{self, versioned, Output};
use crate::error::Error;
use crate::krylov::{
    cg, cg_single_reduction, Identity, KrylovOptions, Preconditioner, ResidualNorm,
};
use std::ffi::c_void;

/// Options of `adj_cg_solve`. Initialise with
/// `adj_cg_options_init(&options, sizeof options)`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct adj_cg_options {
    /// `sizeof(adj_cg_options)` as the caller's header declares it (set by
    /// `adj_cg_options_init`; see the README's ABI policy).
    pub struct_size: usize,
    /// Stop when ‖b − A x‖₂ ≤ max(rtol·‖b‖₂, atol). Default 1e-8.
    pub rtol: f64,
    /// Absolute tolerance, in the units of b. Default 0.
    pub atol: f64,
    /// Iteration limit. Default 10000.
    pub max_iterations: usize,
    /// Nonzero: start from the x passed in; 0 (default): start from x = 0.
    pub nonzero_initial_guess: i32,
    /// Optional caller-owned buffer (NULL = none) receiving ‖r‖ after each
    /// iteration, up to `residual_history_capacity` entries.
    pub residual_history: *mut f64,
    /// Capacity of `residual_history` in doubles.
    pub residual_history_capacity: usize,
    /// The norm of the stopping test and of the report's norms: an
    /// `adj_norm` value. `ADJ_NORM_2` (default), or `ADJ_NORM_MAX` to stop
    /// on max|rᵢ| ≤ max(rtol·max|bᵢ|, atol) as fluid simulators do
    /// (`adj_cg_solve` only; other solvers reject it). Since 0.3.0.
    pub norm: u32,
    /// Distributed solves (`adj_cg_solve` only; other functions reject
    /// it): the communicator, of which only `allreduce_sum` is called, once
    /// per iteration (plus once at the start and once to confirm
    /// convergence), by CG in the single-reduction form. `op` and
    /// `precond` are this rank's (its rows of A, doing their own halo
    /// exchange; a local preconditioner) and `b`, `x` its entries. NULL
    /// (default): serial. Since 0.3.0.
    pub comm: *const adj_comm,
}

/// The norm of a stopping test (`adj_cg_options.norm`, stored as `uint32_t`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum adj_norm {
    /// ‖r‖₂.
    ADJ_NORM_2 = 0,
    /// ‖r‖∞ = max|rᵢ|.
    ADJ_NORM_MAX = 1,
}

versioned!(
    adj_cg_options,
    first_size = std::mem::offset_of!(adj_cg_options, norm),
    {
        let d = KrylovOptions::default();
        adj_cg_options {
            struct_size: std::mem::size_of::<adj_cg_options>(),
            rtol: d.rtol,
            atol: d.atol,
            max_iterations: d.max_iterations,
            nonzero_initial_guess: 0,
            residual_history: std::ptr::null_mut(),
            residual_history_capacity: 0,
            norm: adj_norm::ADJ_NORM_2 as u32,
            comm: std::ptr::null(),
        }
    }
);

/// Initialises `*options` (`struct_size` = `sizeof *options` in the
/// caller's header) with the defaults: rtol 1e-8, atol 0, 10000
/// iterations, zero initial guess, no history.
#[no_mangle]
pub unsafe extern "C" fn adj_cg_options_init(
    options: *mut adj_cg_options,
    struct_size: usize,
) -> adj_status {
    // SAFETY: `options` holds `struct_size` writable bytes by contract.
    boundary(|| unsafe { versioned::init(options, struct_size, "options") })
}

/// Solves A x = b by preconditioned conjugate gradient, for symmetric
/// positive definite A (`op`) and M (`precond`, NULL = none), to
/// ‖b − A x‖₂ ≤ max(rtol·‖b‖₂, atol). `b` and `x` hold `n` doubles,
/// n = the operator's dimension. `options` may be NULL (defaults); `options`
/// and `report` are initialised by their `_init` functions.
///
/// On success (`ADJ_OK`), x holds the solution. On any failure x is left
/// unchanged. `report` (may be NULL) and the residual history are written on
/// success and also when the iteration itself failed (`ADJ_ERR_NOT_CONVERGED`,
/// `ADJ_ERR_NOT_SPD` from pᵀAp ≤ 0 or rᵀM⁻¹r ≤ 0, `ADJ_ERR_CALLBACK`), so
/// the caller can see how far it got. A CSR matrix that is not symmetric
/// gives `ADJ_ERR_NOT_SPD`. A singular grid operator (fluid regions
/// enclosed by walls, e.g. a closed box) is solved on its range: b's
/// component in the null space (the constant on each such region) is
/// removed, reported as `report->null_space_component`, and x has zero
/// mean on each region; a b whose component exceeds 1e-6·‖b‖₂ (more than
/// rounding) has no solution and gives `ADJ_ERR_INVALID_ARGUMENT` naming
/// `b`. Callbacks run on the calling thread.
///
/// With `options->comm` set the solve is distributed: each rank passes its
/// part of the problem, the stopping test uses global norms, every rank
/// takes the same number of iterations and gets the same report, and a
/// callback error on one rank is reported on every rank
/// (`ADJ_ERR_CALLBACK`) at the next reduction, without deadlock, provided
/// the failing callback finished its own communication.
#[no_mangle]
pub unsafe extern "C" fn adj_cg_solve(
    op: *const adj_operator,
    precond: *const adj_precond,
    b: *const f64,
    x: *mut f64,
    n: usize,
    options: *const adj_cg_options,
    report: *mut adj_solve_report,
) -> adj_status {
    // SAFETY: forwarded contract.
    unsafe { run_solver(op, precond, b, x, n, options, report, None) }
}

/// The common part of the CG entry points: checks and converts the
/// arguments, runs CG on a copy of x (distributed with `options->comm` or
/// the deprecated reduction of `adj_cg_solve_distributed`), writes the
/// report (also after a failed iteration) and, on success only, x.
///
/// # Safety
/// Pointers as documented on `adj_cg_solve`.
#[allow(clippy::too_many_arguments)]
unsafe fn run_solver(
    op: *const adj_operator,
    precond: *const adj_precond,
    b: *const f64,
    x: *mut f64,
    n: usize,
    options: *const adj_cg_options,
    report: *mut adj_solve_report,
    deprecated_reduction: Option<(adj_allreduce_fn, *mut c_void)>,
) -> adj_status {
    boundary(|| {
        // SAFETY: NULL or a live handle.
        let op = unsafe { handle(op, "op") }?.linear_operator();
        Error::check_len("n", op.dim(), n)?;
        // SAFETY: the caller passes n doubles in b and x.
        let (b, x) = unsafe { (slice(b, n, "b")?, slice_mut(x, n, "x")?) };
        // SAFETY: NULL (defaults) or a valid options struct with a valid history buffer.
        let (options, history, comm) = unsafe { read_cg_options(options) }?;
        let (allreduce, ctx) = deprecated_reduction.unwrap_or((None, std::ptr::null_mut()));
        // SAFETY: NULL or a valid communicator.
        let sum = unsafe { reduction(comm, allreduce, ctx) }?;
        // SAFETY: NULL or a valid report struct.
        let report = unsafe { Output::new(report, "report") }?;
        let identity = Identity { dim: n };
        // SAFETY: NULL (no preconditioner) or a live handle.
        let precond: &dyn Preconditioner = match unsafe { precond.as_ref() } {
            Some(p) => &*p.inner,
            None => &identity,
        };
        let mut work = x.to_vec();
        let result = match (&sum, deprecated_reduction) {
            (Some(sum), _) => cg_single_reduction(op, precond, b, &mut work, &options, Some(sum)),
            (None, Some(_)) => cg_single_reduction(op, precond, b, &mut work, &options, None),
            (None, None) => cg(op, precond, b, &mut work, &options),
        };
        write_report(result.as_ref(), history, &report);
        result?;
        finite_output("x", &work)?;
        x.copy_from_slice(&work);
        Ok(())
    })
}

/// Deprecated spelling of `adj_cg_solve` with `options->comm` (kept for
/// 0.2 clients): the same distributed single-reduction CG, with the sum
/// over ranks given as `allreduce(allreduce_ctx, buf, k)` instead of a
/// communicator; NULL `allreduce` runs it serially. Setting
/// `options->comm` as well is `ADJ_ERR_INVALID_ARGUMENT` naming `comm`.
#[no_mangle]
pub unsafe extern "C" fn adj_cg_solve_distributed(
    op: *const adj_operator,
    precond: *const adj_precond,
    b: *const f64,
    x: *mut f64,
    n: usize,
    options: *const adj_cg_options,
    allreduce: adj_allreduce_fn,
    allreduce_ctx: *mut c_void,
    report: *mut adj_solve_report,
) -> adj_status {
    // SAFETY: forwarded contract.
    unsafe {
        run_solver(
            op,
            precond,
            b,
            x,
            n,
            options,
            report,
            Some((allreduce, allreduce_ctx)),
        )
    }
}

/// The Krylov options described by `options` (NULL = defaults) and the
/// caller's residual-history buffer, if any, for a function that is not
/// distributed by `options->comm` (refused naming `comm`).
///
/// # Safety
/// `options` is NULL or valid, and its history buffer holds its capacity.
pub(crate) unsafe fn krylov_options<'a>(
    options: *const adj_cg_options,
) -> crate::Result<(KrylovOptions, Option<&'a mut [f64]>)> {
    // SAFETY: forwarded contract.
    let (options, history, comm) = unsafe { read_cg_options(options) }?;
    if !comm.is_null() {
        return Err(Error::invalid(
            "comm",
            "options->comm distributes adj_cg_solve only; this function runs on one rank or takes its communicator elsewhere: pass NULL",
        ));
    }
    Ok((options, history))
}

/// [`krylov_options`] and `options->comm`.
///
/// # Safety
/// As for [`krylov_options`].
unsafe fn read_cg_options<'a>(
    options: *const adj_cg_options,
) -> crate::Result<(KrylovOptions, Option<&'a mut [f64]>, *const adj_comm)> {
    // SAFETY: NULL (defaults) or a valid options struct.
    let c = unsafe { versioned::read(options, "options") }?;
    let history = if c.residual_history.is_null() {
        None
    } else {
        // SAFETY: non-NULL; the caller passes the stated capacity.
        Some(unsafe {
            slice_mut(
                c.residual_history,
                c.residual_history_capacity,
                "residual_history",
            )
        }?)
    };
    let norm = match c.norm {
        k if k == adj_norm::ADJ_NORM_2 as u32 => ResidualNorm::Two,
        k if k == adj_norm::ADJ_NORM_MAX as u32 => ResidualNorm::Max,
        other => {
            return Err(Error::invalid(
                "norm",
                format!("norm = {other} is not ADJ_NORM_2 (0) or ADJ_NORM_MAX (1)"),
            ))
        }
    };
    let options = KrylovOptions {
        norm,
        rtol: c.rtol,
        atol: c.atol,
        max_iterations: c.max_iterations,
        nonzero_initial_guess: c.nonzero_initial_guess != 0,
        record_history: history.is_some(),
    };
    Ok((options, history, c.comm))
}
