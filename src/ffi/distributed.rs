//! `adj_distributed_pressure_solver`: multigrid-PCG on a grid split into
//! one box per MPI rank, the caller's MPI reached through an `adj_comm`.

use super::args::{emit_handle, free_handle, handle, out_ptr, slice};
use super::cg::adj_cg_options;
use super::comm::{adj_comm, read_comm, CComm};
use super::operator::{adj_grid_options, grid_args};
use super::pressure::{field_solve_args, FieldSolveArgs};
use super::report::{adj_solve_report, write_report};
use super::status::{adj_status, boundary, boundary_or};
use super::versioned::{self, versioned, Output};
use crate::distributed::{
    distributed_mgpcg, CommStats, DistributedGridPoisson, DistributedMultigrid, GridBox,
};
use crate::error::{Error, Result};
use crate::krylov::MultigridOptions;
use crate::operator::{Cell, FieldValue, LinearOperator};
use std::sync::Mutex;

/// This rank's communication during one call. Initialise with
/// `adj_comm_stats_init(&stats, sizeof stats)`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct adj_comm_stats {
    /// `sizeof(adj_comm_stats)` as the caller's header declares it.
    pub struct_size: usize,
    /// Calls of `allreduce_sum`, and the doubles they summed.
    pub allreduces: u64,
    pub allreduce_values: u64,
    /// Calls of `exchange`, the messages they sent and their bytes.
    pub exchanges: u64,
    pub messages: u64,
    pub bytes: u64,
}

versioned!(
    adj_comm_stats,
    adj_comm_stats {
        struct_size: std::mem::size_of::<adj_comm_stats>(),
        allreduces: 0,
        allreduce_values: 0,
        exchanges: 0,
        messages: 0,
        bytes: 0,
    }
);

/// Initialises `*stats` (`struct_size` = `sizeof *stats`).
#[no_mangle]
pub unsafe extern "C" fn adj_comm_stats_init(
    stats: *mut adj_comm_stats,
    struct_size: usize,
) -> adj_status {
    // SAFETY: `stats` holds `struct_size` writable bytes by contract.
    boundary(|| unsafe { versioned::init(stats, struct_size, "stats") })
}

fn c_stats(s: CommStats) -> adj_comm_stats {
    adj_comm_stats {
        struct_size: std::mem::size_of::<adj_comm_stats>(),
        allreduces: s.allreduces,
        allreduce_values: s.allreduce_values,
        exchanges: s.exchanges,
        messages: s.messages,
        bytes: s.bytes,
    }
}

/// This rank's part of a distributed pressure solve (opaque): the grid
/// operator on its box with ghost layers, the distributed V-cycle, and the
/// last pressure (for warm starts). Every function on it except `_free`
/// is collective (all ranks call it, in the same order) and must be
/// called on the thread that created it.
#[allow(non_camel_case_types)]
pub struct adj_distributed_pressure_solver {
    inner: Mutex<Frame>,
}

/// The set-up frame of a distributed pressure solver.
struct Frame {
    grid: DistributedGridPoisson,
    multigrid: DistributedMultigrid,
    /// The last solve's pressure per box cell (0 before the first).
    pressure: Vec<f64>,
}

impl adj_distributed_pressure_solver {
    fn lock(&self) -> std::sync::MutexGuard<'_, Frame> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// This rank's box [lo, hi) from the caller's arrays.
///
/// # Safety
/// `lo` and `hi` are NULL or hold 3 values.
unsafe fn read_box(lo: *const usize, hi: *const usize) -> Result<GridBox> {
    // SAFETY: forwarded contract.
    let (lo, hi) = unsafe { (slice(lo, 3, "lo")?, slice(hi, 3, "hi")?) };
    Ok(GridBox {
        lo: [lo[0], lo[1], lo[2]],
        hi: [hi[0], hi[1], hi[2]],
    })
}

/// Creates this rank's part of a distributed pressure solver (collective)
/// for the grid of `nx × ny × nz` cells (`nz = 1` in 2D) split into one
/// box per rank: this rank owns the cells `lo[a] ≤ c < hi[a]` along each axis
/// a, and `cells` holds their flags, x fastest, as for
/// `adj_operator_new_grid` over the box (`options`: codes, spacing and
/// scale, the same on every rank, and NULL or the face coefficients of
/// the box's cells, ndim per cell axis by axis; a level set is not
/// supported). The boxes must form a Cartesian decomposition (each axis
/// cut at the same places for every rank: slabs, pencils or blocks of any
/// sizes, as `MPI_Dims_create` and `MPI_Cart_create` give); each rank's
/// neighbour at offset (dx, dy, dz) is the box next to it.
///
/// Builds the V-cycle of `adj_pressure_solver` (same coarsening,
/// transfers, smoother, float32 vectors) distributed over the ranks,
/// gathered onto every rank once its boxes cannot be halved further:
/// the solve takes the serial solve's iterations for any decomposition.
/// Bad input on any rank (boxes that overlap, leave gaps or leave the
/// grid, different grid sizes or spacings, bad flags) gives an error on
/// every rank; a box without fluid cells is valid. `comm` must be valid
/// on every rank; it is copied.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn adj_distributed_pressure_solver_new(
    comm: *const adj_comm,
    nx: usize,
    ny: usize,
    nz: usize,
    lo: *const usize,
    hi: *const usize,
    cells: *const u8,
    options: *const adj_grid_options,
    out: *mut *mut adj_distributed_pressure_solver,
) -> adj_status {
    boundary(|| {
        // SAFETY: forwarded contract.
        let comm = unsafe { read_comm(comm) }?;
        if comm.size > 1 && comm.exchange.is_none() {
            return Err(Error::NullArgument {
                argument: "comm->exchange",
            });
        }
        // This rank's arguments; a failure still meets the other ranks.
        let ndim = if nz > 1 { 3 } else { 2 };
        let local = (|| {
            out_ptr(out, "out")?;
            // SAFETY: forwarded contract.
            let owned = unsafe { read_box(lo, hi) }?;
            for a in 0..3 {
                if owned.lo[a] >= owned.hi[a] {
                    return Err(Error::invalid(
                        "lo",
                        format!(
                            "the box lo = {:?}, hi = {:?} is empty along axis {a}",
                            owned.lo, owned.hi
                        ),
                    ));
                }
            }
            let grid = [nx, ny, nz];
            if let Some(a) = (0..3).find(|&a| owned.hi[a] > grid[a]) {
                return Err(Error::invalid(
                    "hi",
                    format!(
                        "hi[{a}] = {} is outside the grid of {grid:?} cells",
                        owned.hi[a]
                    ),
                ));
            }
            // Inside the grid, whose cells the builder bounds; checked here
            // before `cells` is read.
            let num_cells = owned
                .dims()
                .iter()
                .try_fold(1usize, |a, &n| a.checked_mul(n))
                .filter(|&n| n < u32::MAX as usize - 1)
                .ok_or_else(|| Error::invalid("hi", "the box has more than 2^32-2 cells"))?;
            // SAFETY: forwarded contract, for the box's cells.
            let args = unsafe { grid_args(num_cells, ndim, cells, options) }?;
            if args.air_level_set.is_some() {
                return Err(Error::invalid(
                    "options",
                    "air_level_set is not supported by the distributed solver (pass face coefficients)",
                ));
            }
            Ok((owned, args))
        })();
        let placeholder = GridBox {
            lo: [0; 3],
            hi: [1; 3],
        };
        let (owned, cells, spacing, scale, beta, local_error) = match local {
            Ok((owned, args)) => (
                owned,
                args.cells,
                args.spacing,
                args.scale,
                args.face_coefficients,
                None,
            ),
            Err(e) => (placeholder, vec![Cell::Solid], [1.0; 3], 1.0, None, Some(e)),
        };
        let mut builder =
            DistributedGridPoisson::builder(Box::new(CComm(comm)), [nx, ny, nz], owned, &cells)
                .spacing(spacing)
                .scale(scale);
        if let Some(beta) = beta {
            builder = builder.face_coefficients(beta);
        }
        if let Some(e) = local_error {
            builder = builder.local_error(e);
        }
        let grid = builder.build()?;
        let multigrid = DistributedMultigrid::new(&grid, &MultigridOptions::default())?;
        let pressure = vec![0.0; grid.owned_box().num_cells()];
        // SAFETY: `out` checked (every rank got here only with its own
        // arguments valid).
        unsafe {
            emit_handle(
                out,
                adj_distributed_pressure_solver {
                    inner: Mutex::new(Frame {
                        grid,
                        multigrid,
                        pressure,
                    }),
                },
            )
        };
        Ok(())
    })
}

/// Releases a distributed pressure solver (not collective). NULL is
/// accepted.
#[no_mangle]
pub unsafe extern "C" fn adj_distributed_pressure_solver_free(
    solver: *mut adj_distributed_pressure_solver,
) {
    // SAFETY: the caller passes NULL or a live handle it no longer uses.
    boundary_or((), || unsafe { free_handle(solver) })
}

/// Sets up the next frame (collective): this rank's new `cells` (flags of
/// its box) and `options` (NULL = defaults: codes and face coefficients as
/// for `adj_distributed_pressure_solver_new`; its spacing and scale are
/// ignored, they stay those of creation); rebuilds the operator and the
/// V-cycle. A failure on any rank gives an
/// error on every rank, and every rank keeps its previous frame.
#[no_mangle]
pub unsafe extern "C" fn adj_distributed_pressure_solver_update(
    solver: *const adj_distributed_pressure_solver,
    cells: *const u8,
    options: *const adj_grid_options,
) -> adj_status {
    boundary(|| {
        // SAFETY: NULL or a live handle.
        let s = unsafe { handle(solver, "solver") }?;
        let mut frame = s.lock();
        let grid = &frame.grid;
        let ndim = if grid.dims()[2] > 1 { 3 } else { 2 };
        let local = (|| {
            // SAFETY: forwarded contract, for the box's cells.
            let args = unsafe { grid_args(grid.owned_box().num_cells(), ndim, cells, options) }?;
            if args.air_level_set.is_some() {
                return Err(Error::invalid(
                    "options",
                    "air_level_set is not supported by the distributed solver (pass face coefficients)",
                ));
            }
            Ok(args)
        })();
        let args = match local {
            Ok(args) => args,
            Err(e) => return Err(grid.fail_everywhere(e)),
        };
        let grid = grid.with_cells(&args.cells, args.face_coefficients)?;
        let multigrid = DistributedMultigrid::new(&grid, &MultigridOptions::default())?;
        frame.grid = grid;
        frame.multigrid = multigrid;
        Ok(())
    })
}

/// The common body of the two solve entry points.
///
/// # Safety
/// Pointers as documented on `adj_distributed_pressure_solver_solve`.
#[allow(clippy::too_many_arguments)]
unsafe fn solve<F: FieldValue>(
    solver: *const adj_distributed_pressure_solver,
    rhs: *const F,
    pressure: *mut F,
    num_cells: usize,
    warm_start: i32,
    options: *const adj_cg_options,
    report: *mut adj_solve_report,
    stats: *mut adj_comm_stats,
) -> adj_status {
    boundary(|| {
        // SAFETY: NULL or a live handle.
        let s = unsafe { handle(solver, "solver") }?;
        let mut frame = s.lock();
        let Frame {
            grid,
            multigrid,
            pressure: last,
        } = &mut *frame;
        // This rank's arguments; a failure still meets the other ranks.
        let local = (|| {
            // SAFETY: forwarded contract.
            let mut args = unsafe {
                field_solve_args(
                    grid.owned_box().num_cells(),
                    rhs,
                    pressure,
                    num_cells,
                    warm_start,
                    options,
                    report,
                )
            }?;
            args.options.nonzero_initial_guess = args.warm_start;
            // SAFETY: NULL or a valid struct.
            let stats = unsafe { Output::new(stats, "stats") }?;
            let mut b = vec![0.0; grid.dim()];
            grid.gather(args.rhs, &mut b)?;
            Ok((args, stats, b))
        })();
        let (args, stats, b) = match local {
            Ok(local) => local,
            Err(e) => return Err(grid.fail_everywhere(e)),
        };
        let FieldSolveArgs {
            pressure,
            options: krylov,
            history,
            report,
            ..
        } = args;
        let mut x = vec![0.0; grid.dim()];
        if krylov.nonzero_initial_guess {
            grid.gather(last, &mut x)?;
        }
        let result = distributed_mgpcg(grid, multigrid, &b, &mut x, &krylov);
        write_report(result.as_ref().map(|r| &r.solve), history, &report);
        if let Ok(r) = &result {
            stats.write(&c_stats(r.comm));
            grid.scatter(&x, last)?;
            grid.scatter(&x, pressure)?;
        }
        result.map(|_| ())
    })
}

/// Solves this rank's part of A p = b (collective): b read from `rhs`, one
/// value per cell of this rank's box (`num_cells` = its cell count, only
/// fluid cells are read), by CG with the distributed V-cycle in the
/// single-reduction form (per iteration one `allreduce_sum` for CG and one
/// for the gathered coarse level, plus one when the grid has regions
/// enclosed by walls; the halo exchanges of one product and one V-cycle),
/// to ‖b − A p‖₂ ≤ max(rtol·‖b‖₂, atol) over the whole grid, from the
/// last solve's pressure when `warm_start` is 1 (0: from p = 0; the same
/// on every rank), `options` as for `adj_cg_solve` (NULL = defaults;
/// `nonzero_initial_guess` is ignored). Writes p per box
/// cell to `pressure` (0 at solid and air cells) only on success; `report`
/// (NULL or initialised) is the same on every rank, `stats` (NULL or
/// initialised) counts this rank's communication during the solve. A
/// failure on any rank (bad arguments, a callback) gives an error on
/// every rank.
#[no_mangle]
pub unsafe extern "C" fn adj_distributed_pressure_solver_solve(
    solver: *const adj_distributed_pressure_solver,
    rhs: *const f64,
    pressure: *mut f64,
    num_cells: usize,
    warm_start: i32,
    options: *const adj_cg_options,
    report: *mut adj_solve_report,
    stats: *mut adj_comm_stats,
) -> adj_status {
    // SAFETY: forwarded contract.
    unsafe {
        solve(
            solver, rhs, pressure, num_cells, warm_start, options, report, stats,
        )
    }
}

/// As `adj_distributed_pressure_solver_solve` on float32 fields: the solve
/// runs in double precision, `pressure` receives p rounded to float.
#[no_mangle]
pub unsafe extern "C" fn adj_distributed_pressure_solver_solve_f32(
    solver: *const adj_distributed_pressure_solver,
    rhs: *const f32,
    pressure: *mut f32,
    num_cells: usize,
    warm_start: i32,
    options: *const adj_cg_options,
    report: *mut adj_solve_report,
    stats: *mut adj_comm_stats,
) -> adj_status {
    // SAFETY: forwarded contract.
    unsafe {
        solve(
            solver, rhs, pressure, num_cells, warm_start, options, report, stats,
        )
    }
}
