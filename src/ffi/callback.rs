//! The one way a C callback enters the library: its context travels as a
//! [`Context`], and its return code becomes a result by [`returned`] (0 is
//! success, anything else an [`Error::Callback`] naming the callback as
//! the header spells it). Vector maps, root-problem products, reductions
//! and halo exchanges all go through these two.

use crate::error::{Error, Result};
use std::ffi::{c_int, c_void};

/// A global sum over all ranks supplied by the caller (e.g. with
/// `MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, comm)`):
/// replaces the `n` doubles of `buf` by their sums over all ranks. Receives
/// the caller's `ctx` first; returns 0 on success (nonzero aborts the solve
/// with `ADJ_ERR_CALLBACK` on this rank). Invoked only on the calling thread.
#[allow(non_camel_case_types)]
pub type adj_allreduce_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, buf: *mut f64, n: usize) -> c_int>;

/// Calls the caller's allreduce on `buf` (nothing when it is NULL).
pub(crate) fn allreduce_sum(
    allreduce: adj_allreduce_fn,
    ctx: *mut c_void,
    buf: &mut [f64],
) -> crate::Result<()> {
    let Some(f) = allreduce else { return Ok(()) };
    // SAFETY: the caller of the solver promised a valid callback; buf is valid.
    returned(
        unsafe { f(ctx, buf.as_mut_ptr(), buf.len()) },
        "allreduce_sum",
    )
}

/// A caller-owned context pointer passed back to a callback. The library
/// never dereferences it.
#[derive(Clone, Copy)]
pub(crate) struct Context(pub(crate) *mut c_void);

/// The result of a callback that returned `code`.
pub(crate) fn returned(code: c_int, callback: &'static str) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(Error::Callback { callback, code })
    }
}

/// A C vector map as a closure y = f(x): `call(ctx, x, y)` invokes the C
/// function with the caller's context.
pub(crate) fn vector_map(
    ctx: Context,
    callback: &'static str,
    call: impl Fn(*mut c_void, &[f64], &mut [f64]) -> c_int,
) -> impl Fn(&[f64], &mut [f64]) -> Result<()> {
    move |x: &[f64], y: &mut [f64]| returned(call(ctx.0, x, y), callback)
}

/// A vector map `y = f(x)` given by the caller: a matrix-free operator
/// (y = A x) or a preconditioner (y = M⁻¹ x). Receives the caller's `ctx`
/// first; `x` and `y` hold `n` doubles and do not overlap. Returns 0 on
/// success; any other value aborts the solve with `ADJ_ERR_CALLBACK`.
/// Invoked only on the thread that called the solver.
#[allow(non_camel_case_types)]
pub type adj_apply_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, x: *const f64, y: *mut f64, n: usize) -> c_int>;

/// Checks a C callback of dimension `n` and wraps it as a closure;
/// `callback` names it in errors.
pub(crate) fn callback_map(
    n: usize,
    apply: adj_apply_fn,
    ctx: *mut c_void,
    callback: &'static str,
) -> Result<VectorMap> {
    let apply = apply.ok_or(Error::NullArgument { argument: "apply" })?;
    if n == 0 {
        return Err(Error::invalid("n", "the dimension must be at least 1"));
    }
    Ok(Box::new(vector_map(
        Context(ctx),
        callback,
        move |ctx, x, y| {
            // SAFETY: the caller of the constructor promised a valid callback;
            // x and y are valid slices of the operator's dimension.
            unsafe { apply(ctx, x.as_ptr(), y.as_mut_ptr(), x.len()) }
        },
    )))
}

/// A boxed vector map y = f(x), as built from a C callback.
pub(crate) type VectorMap = Box<dyn Fn(&[f64], &mut [f64]) -> Result<()>>;
