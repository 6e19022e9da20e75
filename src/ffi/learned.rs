//! `adj_model_*`, `adj_precond_new_model` and `adj_cdm_solve`: trained
//! models (direction networks, multigrid schedules) and the
//! conjugate-direction solver.

use super::args::{
    emit_handle, finite_output, flag, free_handle, handle, option_in, out_ptr, slice, slice_mut,
};
use super::callback::{adj_allreduce_fn, adj_apply_fn, callback_map};
use super::comm::{adj_comm, reduction};
use super::operator::adj_operator;
use super::precond::{adj_precond, emit};
use super::report::{adj_solve_report, ran, write_report};
use super::status::{adj_status, boundary, boundary_or};
use super::versioned::{self, versioned, Output};
use crate::error::Error;
use crate::krylov::{ConjugateDirectionOptions, FnPreconditioner, KrylovOptions};
use crate::learned::{
    AnyModel, CoarseCorrection, ConjugateDirectionSolver, Directions, Evaluation,
};
use std::ffi::{c_char, c_void, CStr};

/// A trained model (opaque), loaded from a safetensors file: a direction
/// network, either the DCDM form (D(r) = N(r), a ReLU network) or the
/// symmetric form (D(r) = Lᵀ L r with L a linear network: a learned SPD
/// preconditioner, with which `adj_cdm_solve` is PCG); or a learned
/// multigrid schedule (per level the damping of each Jacobi sweep and the
/// coarse-correction scale of the V-cycle: `adj_precond_new_model`, or
/// `adj_cdm_solve`, which is then PCG with that V-cycle).
/// Immutable: one model may be used by several solves and threads at once
/// (applications of one model serialise on its buffers).
#[allow(non_camel_case_types)]
pub struct adj_model {
    pub(crate) model: AnyModel,
}

/// A direction generator supplied by the caller:
/// `direction(ctx, r, d, n)` writes a search direction d for the
/// normalised residual r (both n doubles), e.g. from the host's own network
/// on its GPU. Returns 0 on success (nonzero aborts with `ADJ_ERR_CALLBACK`).
/// Invoked only on the calling thread.
#[allow(non_camel_case_types)]
pub type adj_direction_fn = adj_apply_fn;

/// Loads a model saved by the library (safetensors with adjunct metadata:
/// `format` tells a direction network from a multigrid schedule).
/// `ADJ_ERR_IO` when the file cannot be read, `ADJ_ERR_FORMAT` when it is
/// truncated, corrupted or not an adjunct model (the message names the
/// tensor or field, e.g. `component`, `levels`).
#[no_mangle]
pub unsafe extern "C" fn adj_model_load(
    path: *const c_char,
    out: *mut *mut adj_model,
) -> adj_status {
    boundary(|| {
        out_ptr(out, "out")?;
        if path.is_null() {
            return Err(Error::NullArgument { argument: "path" });
        }
        // SAFETY: non-NULL, NUL-terminated by contract.
        let path = unsafe { CStr::from_ptr(path) }
            .to_str()
            .map_err(|_| Error::invalid("path", "not valid UTF-8"))?;
        let model = AnyModel::load(std::path::Path::new(path))?;
        // SAFETY: checked non-NULL.
        unsafe { emit_handle(out, adj_model { model }) };
        Ok(())
    })
}

/// Writes the number of grid axes the model serves (2 or 3) to `*ndim`
/// (not a number of unknowns, which `adj_operator_dim` gives).
#[no_mangle]
pub unsafe extern "C" fn adj_model_ndim(model: *const adj_model, ndim: *mut usize) -> adj_status {
    // SAFETY: forwarded contract.
    unsafe { write_ndim(model, ndim, "ndim") }
}

/// Writes the model's number of grid axes to `*out` (named `name`).
///
/// # Safety
/// `model` NULL or a live handle; `out` NULL or writable.
unsafe fn write_ndim(model: *const adj_model, out: *mut usize, name: &'static str) -> adj_status {
    boundary(|| {
        // SAFETY: NULL or a live handle.
        let model = unsafe { handle(model, "model") }?;
        out_ptr(out, name)?;
        // SAFETY: checked non-NULL.
        unsafe { *out = model.model.dim() };
        Ok(())
    })
}

/// Deprecated spelling of `adj_model_ndim` (kept for 0.2 clients: the name
/// reads like `adj_operator_dim`, a number of unknowns). Writes 2 or 3 to
/// `*dim`.
#[no_mangle]
pub unsafe extern "C" fn adj_model_dim(model: *const adj_model, dim: *mut usize) -> adj_status {
    // SAFETY: forwarded contract.
    unsafe { write_ndim(model, dim, "dim") }
}

/// Releases a model. NULL is accepted.
#[no_mangle]
pub unsafe extern "C" fn adj_model_free(model: *mut adj_model) {
    // SAFETY: the caller passes NULL or a live handle it no longer uses.
    boundary_or((), || unsafe { free_handle(model) })
}

/// Options of `adj_cdm_solve`. Initialise with
/// `adj_cdm_options_init(&options, sizeof options)`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct adj_cdm_options {
    /// `sizeof(adj_cdm_options)` as the caller's header declares it.
    pub struct_size: usize,
    /// Stop when ‖b − A x‖₂ ≤ max(rtol·‖b‖₂, atol). Default 1e-8.
    pub rtol: f64,
    /// Absolute tolerance, in the units of b. Default 0.
    pub atol: f64,
    /// Iteration limit. Default 10000.
    pub max_iterations: usize,
    /// Nonzero: start from the x passed in; 0 (default): from x = 0.
    pub nonzero_initial_guess: i32,
    /// k: each direction is A-orthogonalised against the last k. Default 2.
    pub orthogonalize: usize,
    /// Recompute r = b − A x every this many iterations (0 = never). Default 50.
    pub true_residual_period: usize,
    /// A direction with |cos∠(p, r)| below this after orthogonalisation is
    /// replaced by r (the iteration would stall). 0 = never. Default 0.01.
    pub stall_cosine: f64,
    /// Deprecated spelling of `comm` (kept for 0.2 clients): a sum over
    /// ranks and its context. Set `comm` instead; setting both is
    /// `ADJ_ERR_INVALID_ARGUMENT` naming `comm`. Default NULL.
    pub allreduce: adj_allreduce_fn,
    /// Passed to `allreduce`.
    pub allreduce_ctx: *mut c_void,
    /// Two-level coarse-space correction around the direction generator G:
    /// D(r) = C r + (I − C A) s G((I − A C) r), C = P (Pᵀ A P)⁻¹ Pᵀ over
    /// aggregates of coarse_block^d cells, s fitted once (G is called once
    /// more for it). Needs a grid operator. At least 2: applied with that
    /// block; 0: none; -1 (default): what the model file says (the shipped
    /// models: 8), none for `precond` and `direction`.
    pub coarse_block: i32,
    /// 1: evaluate `model` layer by layer, exactly the network as trained;
    /// 0 (default): with its finest level contracted into single kernels
    /// where the network allows it (the symmetric form with one block per
    /// level, as the shipped `cdm_2d`/`cdm_3d` models: about 3× fewer
    /// operations in 3D, the same directions away from the grid's edge,
    /// different ones within a few cells of it). Unused without `model`.
    pub layer_by_layer: i32,
    /// Distributed solves: the communicator (only its `allreduce_sum` is
    /// called, twice per iteration; `op`, `precond` and `direction` are
    /// this rank's and do their own halo exchanges). Each rank passes its
    /// part of the problem and all ranks take the same steps. NULL
    /// (default): serial. Since 0.3.0.
    pub comm: *const adj_comm,
}

/// What `adj_cdm_solve` reports beyond the `adj_solve_report` of every
/// solver. Initialise with `adj_cdm_report_init(&r, sizeof r)`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct adj_cdm_report {
    /// `sizeof(adj_cdm_report)` as the caller's header declares it.
    pub struct_size: usize,
    /// Wall time spent generating directions, in seconds.
    pub direction_seconds: f64,
    /// Steps that used the residual because the direction stalled.
    pub fallback_steps: usize,
}

versioned!(
    adj_cdm_report,
    adj_cdm_report {
        struct_size: std::mem::size_of::<adj_cdm_report>(),
        direction_seconds: f64::NAN,
        fallback_steps: 0,
    }
);

/// Initialises `*options` (`struct_size` = `sizeof *options` in the
/// caller's header) with the defaults given on each field.
#[no_mangle]
pub unsafe extern "C" fn adj_cdm_options_init(
    options: *mut adj_cdm_options,
    struct_size: usize,
) -> adj_status {
    // SAFETY: `options` holds `struct_size` writable bytes by contract.
    boundary(|| unsafe { versioned::init(options, struct_size, "options") })
}

/// Initialises `*cdm_report` (`struct_size` = `sizeof *cdm_report` in the
/// caller's header) before it is passed to `adj_cdm_solve`.
#[no_mangle]
pub unsafe extern "C" fn adj_cdm_report_init(
    cdm_report: *mut adj_cdm_report,
    struct_size: usize,
) -> adj_status {
    // SAFETY: `cdm_report` holds `struct_size` writable bytes by contract.
    boundary(|| unsafe { versioned::init(cdm_report, struct_size, "cdm_report") })
}

versioned!(
    adj_cdm_options,
    first_size = std::mem::offset_of!(adj_cdm_options, comm),
    {
        let d = ConjugateDirectionOptions::default();
        adj_cdm_options {
            struct_size: std::mem::size_of::<adj_cdm_options>(),
            rtol: d.krylov.rtol,
            atol: d.krylov.atol,
            max_iterations: d.krylov.max_iterations,
            nonzero_initial_guess: 0,
            orthogonalize: d.orthogonalize,
            true_residual_period: d.true_residual_period,
            stall_cosine: d.stall_cosine,
            allreduce: None,
            allreduce_ctx: std::ptr::null_mut(),
            coarse_block: -1,
            layer_by_layer: 0,
            comm: std::ptr::null(),
        }
    }
);

/// Creates the learned multigrid V-cycle of `model` (a multigrid schedule
/// from `adj_model_load`) for the grid operator `op` (only read during
/// this call): the V-cycle of `ADJ_PRECOND_MULTIGRID` with the model's
/// damping per sweep and coarse-correction scale on each level (the last
/// entry serving every coarser level), on the coarse operators the model
/// was trained on (its `coarse_operators` metadata), symmetric positive
/// definite by construction. `ADJ_ERR_FORMAT` when `model` is a direction
/// network (its `component` is not `smoother-schedule`) or was trained for
/// the other grid dimension (`dim`); `ADJ_ERR_INVALID_ARGUMENT` naming `op`
/// when it is not a grid operator. `model` may be freed afterwards.
#[no_mangle]
pub unsafe extern "C" fn adj_precond_new_model(
    op: *const adj_operator,
    model: *const adj_model,
    out: *mut *mut adj_precond,
) -> adj_status {
    boundary(|| {
        // SAFETY: NULL or live handles.
        let (op, model) = unsafe { (handle(op, "op")?, handle(model, "model")?) };
        out_ptr(out, "out")?;
        let AnyModel::Multigrid(m) = &model.model else {
            return Err(Error::Format {
                message: format!(
                    "model: metadata `component` is `{}`, a preconditioner needs `smoother-schedule` (pass direction networks to adj_cdm_solve)",
                    model.model.component()
                ),
            });
        };
        emit(out, Box::new(m.multigrid(op.grid()?)?));
        Ok(())
    })
}

/// Solves A x = b (A symmetric positive definite) by the conjugate-direction
/// method: each iteration takes a direction D(r/‖r‖), A-orthogonalises it
/// against the last k and takes the exact line-search step. The direction
/// generator is exactly one of: `model` (a trained network, or a learned
/// multigrid schedule, whose V-cycle is then D; `op` must be a grid
/// operator of the model's dimension), `precond` (D = M⁻¹: a flexible
/// PCG), or `direction` with `direction_ctx`; `options->coarse_block` wraps
/// it in the two-level correction (by default when the model file asks for
/// it, as the shipped ones do), with the coarse space built from `op` on
/// every call. `b` and `x` hold n doubles.
/// With `options->comm` set, each rank passes its part of the problem and
/// all ranks take the same steps.
/// On success x holds the solution; on failure x is unchanged. `report`
/// and `cdm_report` (each may be NULL) are written when the iteration ran,
/// also when it failed (`direction_seconds` is then NaN).
#[no_mangle]
pub unsafe extern "C" fn adj_cdm_solve(
    op: *const adj_operator,
    model: *const adj_model,
    precond: *const adj_precond,
    direction: adj_direction_fn,
    direction_ctx: *mut c_void,
    b: *const f64,
    x: *mut f64,
    n: usize,
    options: *const adj_cdm_options,
    report: *mut adj_solve_report,
    cdm_report: *mut adj_cdm_report,
) -> adj_status {
    boundary(|| {
        // SAFETY: NULL or a live handle.
        let op = unsafe { handle(op, "op") }?;
        let linear = op.linear_operator();
        Error::check_len("n", linear.dim(), n)?;
        // SAFETY: the caller passes n doubles in b and x.
        let (b, x) = unsafe { (slice(b, n, "b")?, slice_mut(x, n, "x")?) };
        // SAFETY: NULL (defaults) or a valid struct.
        let o = unsafe { versioned::read(options, "options") }?;
        // SAFETY: NULL or valid report structs.
        let (report, cdm_report) = unsafe {
            (
                Output::new(report, "report")?,
                Output::new(cdm_report, "cdm_report")?,
            )
        };
        option_in(
            "stall_cosine",
            o.stall_cosine,
            0.0..=1.0,
            "finite and in [0, 1]",
        )?;
        let options = ConjugateDirectionOptions {
            krylov: KrylovOptions {
                rtol: o.rtol,
                atol: o.atol,
                max_iterations: o.max_iterations,
                nonzero_initial_guess: o.nonzero_initial_guess != 0,
                ..KrylovOptions::default()
            },
            orthogonalize: o.orthogonalize,
            true_residual_period: o.true_residual_period,
            stall_cosine: o.stall_cosine,
        };
        // SAFETY: NULL or live handles.
        let (model, precond) = unsafe { (model.as_ref(), precond.as_ref()) };
        let given = [model.is_some(), precond.is_some(), direction.is_some()];
        if given.iter().filter(|&&g| g).count() != 1 {
            return Err(Error::invalid(
                "direction",
                "pass exactly one of model, precond and direction",
            ));
        }
        // 1 is rejected, naming coarse_block, by CoarseSpace::new.
        let coarse = match o.coarse_block {
            -1 => CoarseCorrection::AsModelSays,
            0 => CoarseCorrection::Off,
            b if b > 0 => CoarseCorrection::Blocks(b as usize),
            other => {
                return Err(Error::invalid(
                    "coarse_block",
                    format!(
                        "coarse_block = {other} must be -1 (as the model file says), 0 (none) or at least 2"
                    ),
                ))
            }
        };
        let evaluation = if flag(o.layer_by_layer, "layer_by_layer")? {
            Evaluation::LayerByLayer
        } else {
            Evaluation::Fastest
        };
        let callback;
        let directions = if let Some(m) = model {
            Directions::Model(&m.model)
        } else if let Some(p) = precond {
            Directions::Map(&*p.inner)
        } else {
            callback = FnPreconditioner::nonlinear(
                n,
                callback_map(n, direction, direction_ctx, "direction")?,
            );
            Directions::Map(&callback)
        };
        // SAFETY: NULL or a valid communicator.
        let sum = unsafe { reduction(o.comm, o.allreduce, o.allreduce_ctx) }?;
        let mut solver = ConjugateDirectionSolver::new(directions)
            .coarse_correction(coarse)
            .evaluation(evaluation)
            .options(options);
        if let Some(sum) = &sum {
            solver = solver.allreduce(sum);
        }
        let mut work = x.to_vec();
        let result = solver.solve(linear, b, &mut work);
        if ran(result.as_ref().map(|r| &r.solve)).is_some() {
            write_report(result.as_ref().map(|r| &r.solve), None, &report);
            cdm_report.write(&adj_cdm_report {
                struct_size: std::mem::size_of::<adj_cdm_report>(),
                direction_seconds: result.as_ref().map_or(f64::NAN, |r| r.direction_seconds),
                fallback_steps: result.as_ref().map_or(0, |r| r.fallback_steps),
            });
        }
        result?;
        finite_output("x", &work)?;
        x.copy_from_slice(&work);
        Ok(())
    })
}
