//! `adj_comm`: the caller's message layer (MPI) as this rank, the number
//! of ranks and two collective callbacks, a sum over ranks and a halo
//! exchange. The one way a C caller says that a solve is distributed.

use super::callback::{adj_allreduce_fn, allreduce_sum, returned};
use super::status::{adj_status, boundary};
use super::versioned::{self, versioned};
use crate::distributed::{Communicator, HaloMessage};
use crate::error::{Error, Result};
use std::ffi::{c_int, c_void};

/// One message of a halo exchange (see `adj_exchange_fn`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug)]
pub struct adj_halo_message {
    /// The neighbour's offset (dx, dy, dz), each −1, 0 or 1 (never all 0),
    /// in the grid of rank boxes: the rank whose box is next to this one
    /// in that direction (`MPI_Cart_rank` of this rank's coordinates +
    /// offset).
    pub offset: [i32; 3],
    /// The bytes to send to that neighbour.
    pub send: *const c_void,
    pub send_bytes: usize,
    /// Where to receive that neighbour's message for this rank, which has
    /// exactly `recv_bytes` bytes.
    pub recv: *mut c_void,
    pub recv_bytes: usize,
}

/// A halo exchange: for each of the `count` messages, send `send_bytes`
/// bytes from `send` to the neighbour at `offset` and receive
/// `recv_bytes` bytes from it into `recv` (e.g. `MPI_Irecv` and
/// `MPI_Isend` of `MPI_BYTE` per message on one tag, then `MPI_Waitall`).
/// The neighbour lists this rank at the opposite offset in the same
/// exchange; between two ranks there is one message each way per call,
/// and calls never overlap, so one tag serves all. The buffers are valid
/// during the call only. Returns 0 on success; on failure it must still
/// have completed its sends and receives (or never started any on any
/// rank), so that no rank waits forever: every rank then stops with
/// `ADJ_ERR_CALLBACK` at the next reduction. Called on the thread that
/// called the library.
#[allow(non_camel_case_types)]
pub type adj_exchange_fn = Option<
    unsafe extern "C" fn(ctx: *mut c_void, messages: *mut adj_halo_message, count: usize) -> c_int,
>;

/// The communicator of a distributed solve, the one way to make a solve
/// distributed: this rank, the number of ranks, and the two collective
/// callbacks, which receive `ctx` first. Initialise with
/// `adj_comm_init(&comm, sizeof comm)`. The library calls both on every
/// rank in the same order. Taken by `adj_distributed_pressure_solver_new`
/// (which uses both) and by `adj_cg_solve` and `adj_cdm_solve` through
/// `options->comm` (which use only `allreduce_sum`: their operator does
/// its own halo exchange, and `exchange` may be NULL). With `size` = 1
/// both may be NULL.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct adj_comm {
    /// `sizeof(adj_comm)` as the caller's header declares it.
    pub struct_size: usize,
    /// Passed to both callbacks (e.g. a pointer to the `MPI_Comm`).
    pub ctx: *mut c_void,
    /// This rank's index in 0..size (`MPI_Comm_rank`). Default 0.
    pub rank: usize,
    /// The number of ranks (`MPI_Comm_size`). Default 1.
    pub size: usize,
    /// Sums doubles over all ranks in place (see `adj_allreduce_fn`).
    pub allreduce_sum: adj_allreduce_fn,
    /// Moves the messages of one halo exchange.
    pub exchange: adj_exchange_fn,
}

versioned!(
    adj_comm,
    adj_comm {
        struct_size: std::mem::size_of::<adj_comm>(),
        ctx: std::ptr::null_mut(),
        rank: 0,
        size: 1,
        allreduce_sum: None,
        exchange: None,
    }
);

/// Initialises `*comm` (`struct_size` = `sizeof *comm`): rank 0 of 1, no
/// callbacks.
#[no_mangle]
pub unsafe extern "C" fn adj_comm_init(comm: *mut adj_comm, struct_size: usize) -> adj_status {
    // SAFETY: `comm` holds `struct_size` writable bytes by contract.
    boundary(|| unsafe { versioned::init(comm, struct_size, "comm") })
}

/// The communicator from the caller's struct, checked: a rank below the
/// size, and a sum over ranks when there are several.
///
/// # Safety
/// `comm` is NULL or a valid `adj_comm`.
pub(crate) unsafe fn read_comm(comm: *const adj_comm) -> Result<adj_comm> {
    if comm.is_null() {
        return Err(Error::NullArgument { argument: "comm" });
    }
    // SAFETY: non-NULL and valid by contract.
    let c = unsafe { versioned::read(comm, "comm") }?;
    if c.size == 0 || c.rank >= c.size {
        return Err(Error::invalid(
            "comm",
            format!(
                "comm->rank = {} must be below comm->size = {}",
                c.rank, c.size
            ),
        ));
    }
    if c.size > 1 && c.allreduce_sum.is_none() {
        return Err(Error::NullArgument {
            argument: "comm->allreduce_sum",
        });
    }
    Ok(c)
}

/// A C caller's communicator.
pub(crate) struct CComm(pub(crate) adj_comm);

impl Communicator for CComm {
    fn rank(&self) -> usize {
        self.0.rank
    }

    fn size(&self) -> usize {
        self.0.size
    }

    fn allreduce_sum(&self, values: &mut [f64]) -> Result<()> {
        allreduce_sum(self.0.allreduce_sum, self.0.ctx, values)
    }

    fn exchange(&self, messages: &mut [HaloMessage<'_>]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let Some(exchange) = self.0.exchange else {
            return Err(Error::NullArgument {
                argument: "comm->exchange",
            });
        };
        let mut c_messages: Vec<adj_halo_message> = messages
            .iter_mut()
            .map(|m| adj_halo_message {
                offset: m.offset,
                send: m.send.as_ptr().cast(),
                send_bytes: m.send.len(),
                recv: m.recv.as_mut_ptr().cast(),
                recv_bytes: m.recv.len(),
            })
            .collect();
        // SAFETY: the caller promised a valid callback; the buffers live
        // through the call.
        returned(
            unsafe { exchange(self.0.ctx, c_messages.as_mut_ptr(), c_messages.len()) },
            "exchange",
        )
    }
}

/// The sum over ranks of a distributed Krylov solve whose operator does
/// its own halo exchanges: that of `comm` (checked), or the deprecated bare
/// callback `allreduce` with its `ctx`; `None` for a serial solve.
///
/// # Safety
/// `comm` is NULL or a valid `adj_comm`; the callbacks are valid.
pub(crate) unsafe fn reduction(
    comm: *const adj_comm,
    allreduce: adj_allreduce_fn,
    ctx: *mut c_void,
) -> Result<Option<impl Fn(&mut [f64]) -> Result<()>>> {
    let (allreduce, ctx) = match (comm.is_null(), allreduce) {
        (true, None) => return Ok(None),
        (true, Some(_)) => (allreduce, ctx),
        (false, None) => {
            // SAFETY: non-NULL and valid by contract.
            let c = unsafe { read_comm(comm) }?;
            (c.allreduce_sum, c.ctx)
        }
        (false, Some(_)) => {
            return Err(Error::invalid(
                "comm",
                "set comm or the deprecated allreduce, not both",
            ))
        }
    };
    Ok(Some(move |buf: &mut [f64]| {
        allreduce_sum(allreduce, ctx, buf)
    }))
}
