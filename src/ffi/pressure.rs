//! `adj_pressure_solver`: the persistent per-frame pressure solve.

use super::args::{emit_handle, flag, free_handle, handle, out_ptr, slice, slice_mut};
use super::cg::{adj_cg_options, krylov_options};
use super::operator::{adj_grid_options, grid_from_c};
use super::report::{adj_solve_report, write_report};
use super::status::{adj_status, boundary, boundary_or};
use super::versioned::Output;
use crate::error::{Error, Result};
use crate::krylov::{KrylovOptions, PressureSolver};
use crate::operator::FieldValue;
use std::sync::Mutex;

/// A persistent pressure solver (opaque) for a simulator's projection,
/// created once for a grid size: each frame, `adj_pressure_solver_update`
/// gives it the frame's cells (and `adj_grid_options`: codes, spacing, face
/// coefficients, scale, level set) and rebuilds the multigrid hierarchy,
/// and `adj_pressure_solver_solve` (or `_solve_f32`) runs multigrid-PCG
/// from the last pressure. Calls on one solver from several threads are
/// serialised.
#[allow(non_camel_case_types)]
pub struct adj_pressure_solver {
    inner: Mutex<PressureSolver>,
}

impl adj_pressure_solver {
    fn lock(&self) -> std::sync::MutexGuard<'_, PressureSolver> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Creates a pressure solver for `nx × ny × nz` grids (`nz = 1` in 2D).
#[no_mangle]
pub unsafe extern "C" fn adj_pressure_solver_new(
    nx: usize,
    ny: usize,
    nz: usize,
    out: *mut *mut adj_pressure_solver,
) -> adj_status {
    boundary(|| {
        out_ptr(out, "out")?;
        let solver = PressureSolver::new([nx, ny, nz])?;
        // SAFETY: `out` checked above.
        unsafe {
            emit_handle(
                out,
                adj_pressure_solver {
                    inner: Mutex::new(solver),
                },
            )
        };
        Ok(())
    })
}

/// Releases a pressure solver. NULL is accepted.
#[no_mangle]
pub unsafe extern "C" fn adj_pressure_solver_free(solver: *mut adj_pressure_solver) {
    // SAFETY: the caller passes NULL or a live handle it no longer uses.
    boundary_or((), || unsafe { free_handle(solver) })
}

/// Sets up the next frame: `cells` (nx·ny·nz flags) and `options` (NULL =
/// defaults) as for `adj_operator_new_grid`; rebuilds the operator and the
/// V-cycle hierarchy, or keeps the hierarchy when the operator is the same
/// as the last frame's (same flags, spacing, scale and coefficients). On
/// failure the previous frame stays set up.
#[no_mangle]
pub unsafe extern "C" fn adj_pressure_solver_update(
    solver: *const adj_pressure_solver,
    cells: *const u8,
    options: *const adj_grid_options,
) -> adj_status {
    boundary(|| {
        // SAFETY: NULL or a live handle.
        let solver = unsafe { handle(solver, "solver") }?;
        let mut s = solver.lock();
        let [nx, ny, nz] = s.dims();
        // SAFETY: forwarded contract.
        let grid = unsafe { grid_from_c(nx, ny, nz, cells, options) }?;
        s.update(grid)
    })
}

/// Wall time of the last `adj_pressure_solver_update` (the hierarchy), in
/// seconds, written to `*seconds`.
#[no_mangle]
pub unsafe extern "C" fn adj_pressure_solver_setup_seconds(
    solver: *const adj_pressure_solver,
    seconds: *mut f64,
) -> adj_status {
    boundary(|| {
        // SAFETY: NULL or a live handle.
        let solver = unsafe { handle(solver, "solver") }?;
        out_ptr(seconds, "seconds")?;
        // SAFETY: checked non-NULL.
        unsafe { *seconds = solver.lock().setup_seconds() };
        Ok(())
    })
}

/// The decoded arguments of a per-cell pressure solve (serial or
/// distributed): the fields, the warm-start flag, the Krylov options with
/// the caller's residual-history buffer, and the report.
pub(crate) struct FieldSolveArgs<'a, F> {
    pub(crate) rhs: &'a [F],
    pub(crate) pressure: &'a mut [F],
    pub(crate) warm_start: bool,
    pub(crate) options: KrylovOptions,
    pub(crate) history: Option<&'a mut [f64]>,
    pub(crate) report: Output<adj_solve_report>,
}

/// Decodes the arguments of a solve entry point over `expected` cells.
///
/// # Safety
/// Pointers as documented on `adj_pressure_solver_solve`.
pub(crate) unsafe fn field_solve_args<'a, F>(
    expected: usize,
    rhs: *const F,
    pressure: *mut F,
    num_cells: usize,
    warm_start: i32,
    options: *const adj_cg_options,
    report: *mut adj_solve_report,
) -> Result<FieldSolveArgs<'a, F>> {
    Error::check_len("num_cells", expected, num_cells)?;
    // SAFETY: the caller passes num_cells values in each.
    let (rhs, pressure) = unsafe {
        (
            slice(rhs, num_cells, "rhs")?,
            slice_mut(pressure, num_cells, "pressure")?,
        )
    };
    let warm_start = flag(warm_start, "warm_start")?;
    // SAFETY: NULL (defaults) or a valid options struct.
    let (options, history) = unsafe { krylov_options(options) }?;
    // SAFETY: NULL or a valid report struct.
    let report = unsafe { Output::new(report, "report") }?;
    Ok(FieldSolveArgs {
        rhs,
        pressure,
        warm_start,
        options,
        history,
        report,
    })
}

/// The common body of the two solve entry points.
///
/// # Safety
/// Pointers as documented on `adj_pressure_solver_solve`.
#[allow(clippy::too_many_arguments)]
unsafe fn solve<F: FieldValue>(
    solver: *const adj_pressure_solver,
    rhs: *const F,
    pressure: *mut F,
    num_cells: usize,
    warm_start: i32,
    options: *const adj_cg_options,
    report: *mut adj_solve_report,
) -> adj_status {
    boundary(|| {
        // SAFETY: NULL or a live handle.
        let solver = unsafe { handle(solver, "solver") }?;
        let mut s = solver.lock();
        let expected = s.dims().iter().product();
        // SAFETY: forwarded contract.
        let args = unsafe {
            field_solve_args(
                expected, rhs, pressure, num_cells, warm_start, options, report,
            )
        }?;
        let result: Result<_> = s.solve(args.rhs, args.pressure, args.warm_start, &args.options);
        write_report(result.as_ref(), args.history, &args.report);
        result.map(|_| ())
    })
}

/// Solves the frame's pressure equation A p = b, b read from `rhs` (one
/// value per cell, e.g. −∇·u*; `num_cells` = nx·ny·nz, only fluid cells
/// are read), by multigrid-PCG with `options` (NULL = defaults;
/// `nonzero_initial_guess` is ignored), starting from the last solve's
/// pressure when `warm_start` is 1 (0: from p = 0). Writes p per cell to
/// `pressure` (0 at solid and air cells) only on success; `report` as for
/// `adj_cg_solve`. Closed domains and empty frames as for `adj_cg_solve`.
#[no_mangle]
pub unsafe extern "C" fn adj_pressure_solver_solve(
    solver: *const adj_pressure_solver,
    rhs: *const f64,
    pressure: *mut f64,
    num_cells: usize,
    warm_start: i32,
    options: *const adj_cg_options,
    report: *mut adj_solve_report,
) -> adj_status {
    // SAFETY: forwarded contract.
    unsafe {
        solve(
            solver, rhs, pressure, num_cells, warm_start, options, report,
        )
    }
}

/// As `adj_pressure_solver_solve` on float32 fields, as simulators store
/// them: the solve itself runs in double precision (and the warm start is
/// kept in double), `pressure` receives p rounded to float.
#[no_mangle]
pub unsafe extern "C" fn adj_pressure_solver_solve_f32(
    solver: *const adj_pressure_solver,
    rhs: *const f32,
    pressure: *mut f32,
    num_cells: usize,
    warm_start: i32,
    options: *const adj_cg_options,
    report: *mut adj_solve_report,
) -> adj_status {
    // SAFETY: forwarded contract.
    unsafe {
        solve(
            solver, rhs, pressure, num_cells, warm_start, options, report,
        )
    }
}
