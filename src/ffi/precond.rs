//! `adj_precond`: preconditioners for CG.

use super::args::{
    emit_handle, finite_input, finite_output, free_handle, handle, out_ptr, slice, slice_mut,
};
use super::callback::{adj_apply_fn, callback_map};
use super::operator::adj_operator;
use super::status::{adj_status, boundary, boundary_or};
use crate::error::Error;
use crate::krylov::{
    FnPreconditioner, Ic0, Identity, Jacobi, Multigrid, MultigridOptions, Preconditioner,
};
use std::ffi::c_void;

/// The kind of a preconditioner built by `adj_precond_new` (passed as
/// `uint32_t`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum adj_precond_kind {
    /// No preconditioning (M = I); same as passing NULL to the solver.
    ADJ_PRECOND_NONE = 0,
    /// Jacobi: M = diag(A).
    ADJ_PRECOND_JACOBI = 1,
    /// Incomplete Cholesky with zero fill on the pattern of A (grid
    /// operators use their CSR form). Setup is serial; application is two
    /// serial triangular solves.
    ADJ_PRECOND_IC0 = 2,
    /// Geometric multigrid V-cycle (grid Poisson operators only):
    /// damped-Jacobi sweeps (ω = 0.9) before and after each coarse
    /// correction, 2 on the finest level, 4 on the next and 8 on every
    /// coarser one, coarsening by 2 until at most 1000 unknowns, dense
    /// Cholesky there; run in single precision inside CG's double (same
    /// final residual, 0.77× the time at 128³); symmetric positive
    /// definite to float rounding. The coarse operators are the
    /// rediscretised stencil, or, for a grid whose face coefficients
    /// between fluid cells vary by more than a factor of 10, the Galerkin
    /// products R A P (smoothed with the ℓ1-scaled Jacobi diagonal
    /// max(aᵢᵢ, ½Σⱼ|aᵢⱼ|), so that the cycle stays positive definite),
    /// which stay robust at coefficient contrasts up to 1e6; a ghost-fluid
    /// level set alone keeps the rediscretised levels. Setup is a few grid
    /// applications; each application costs about 5 of them in 3D and 8
    /// in 2D.
    ADJ_PRECOND_MULTIGRID = 3,
}

/// A preconditioner (opaque). Immutable after construction (a callback
/// preconditioner is as thread-safe as its callback).
#[allow(non_camel_case_types)]
pub struct adj_precond {
    pub(crate) inner: Box<dyn Preconditioner>,
}

pub(crate) fn emit(out: *mut *mut adj_precond, inner: Box<dyn Preconditioner>) {
    // SAFETY: every caller checked `out` with `out_ptr` first.
    unsafe { emit_handle(out, adj_precond { inner }) }
}

/// Creates a preconditioner of kind `kind` (an `adj_precond_kind`) for the operator `op`
/// (which is only read during this call). Jacobi needs a CSR or grid
/// operator with a positive diagonal; IC(0) needs a CSR or grid operator
/// and fails with `ADJ_ERR_NOT_SPD` when no diagonal shift makes it exist;
/// multigrid needs a grid operator.
#[no_mangle]
pub unsafe extern "C" fn adj_precond_new(
    op: *const adj_operator,
    kind: u32,
    out: *mut *mut adj_precond,
) -> adj_status {
    boundary(|| {
        // SAFETY: NULL or a live handle.
        let op = unsafe { handle(op, "op") }?;
        out_ptr(out, "out")?;
        let linear = op.linear_operator();
        use adj_precond_kind::*;
        let inner: Box<dyn Preconditioner> = match kind {
            k if k == ADJ_PRECOND_NONE as u32 => Box::new(Identity { dim: linear.dim() }),
            k if k == ADJ_PRECOND_JACOBI as u32 => Box::new(Jacobi::new(&linear)?),
            k if k == ADJ_PRECOND_IC0 as u32 => Box::new(Ic0::new(&*op.to_csr()?)?),
            k if k == ADJ_PRECOND_MULTIGRID as u32 => {
                Box::new(Multigrid::new(op.grid()?, &MultigridOptions::default())?)
            }
            other => {
                return Err(Error::invalid(
                    "kind",
                    format!(
                        "{other} is not ADJ_PRECOND_NONE (0), JACOBI (1), IC0 (2) or MULTIGRID (3)"
                    ),
                ))
            }
        };
        emit(out, inner);
        Ok(())
    })
}

/// Creates a Jacobi preconditioner M = diag(d) from `n` positive diagonal
/// entries (for matrix-free operators).
#[no_mangle]
pub unsafe extern "C" fn adj_precond_new_jacobi(
    diagonal: *const f64,
    n: usize,
    out: *mut *mut adj_precond,
) -> adj_status {
    boundary(|| {
        out_ptr(out, "out")?;
        // SAFETY: the caller passes n doubles.
        let d = unsafe { slice(diagonal, n, "diagonal") }?;
        emit(out, Box::new(Jacobi::from_diagonal(d)?));
        Ok(())
    })
}

/// Creates a preconditioner of dimension `n` applied by the caller:
/// `apply(ctx, r, z, n)` must write z = M⁻¹ r for a symmetric positive
/// definite M. `ctx` is borrowed and must outlive the preconditioner.
#[no_mangle]
pub unsafe extern "C" fn adj_precond_new_callback(
    n: usize,
    apply: adj_apply_fn,
    ctx: *mut c_void,
    out: *mut *mut adj_precond,
) -> adj_status {
    boundary(|| {
        out_ptr(out, "out")?;
        let f = callback_map(n, apply, ctx, "preconditioner")?;
        emit(out, Box::new(FnPreconditioner::new(n, f)));
        Ok(())
    })
}

/// Applies the preconditioner: z = M⁻¹ r, for `r` and `z` of `n` doubles
/// (n = its dimension), e.g. to use it inside another Krylov package. `r`
/// must be finite; z is written only on success (a callback
/// preconditioner's failure gives `ADJ_ERR_CALLBACK`).
#[no_mangle]
pub unsafe extern "C" fn adj_precond_apply(
    precond: *const adj_precond,
    r: *const f64,
    z: *mut f64,
    n: usize,
) -> adj_status {
    boundary(|| {
        // SAFETY: NULL or a live handle.
        let precond = unsafe { handle(precond, "precond") }?;
        Error::check_len("n", precond.inner.dim(), n)?;
        // SAFETY: the caller passes n doubles in each.
        let (r, z) = unsafe { (slice(r, n, "r")?, slice_mut(z, n, "z")?) };
        finite_input("r", r)?;
        let mut out = crate::alloc::with_capacity(n, "z")?;
        out.resize(n, 0.0);
        precond.inner.apply_dot(r, &mut out)?;
        finite_output("z", &out)?;
        z.copy_from_slice(&out);
        Ok(())
    })
}

/// Releases a preconditioner. NULL is accepted.
#[no_mangle]
pub unsafe extern "C" fn adj_precond_free(precond: *mut adj_precond) {
    // SAFETY: the caller passes NULL or a live handle it no longer uses.
    boundary_or((), || unsafe { free_handle(precond) })
}
