//! The communicator of a distributed solve: the caller's message layer
//! (MPI, usually) reached through two collective operations, a sum over
//! all ranks and a neighbour exchange of byte buffers. The library packs
//! and unpacks the buffers; the communicator only moves them.

use crate::error::{Error, Result};
use std::sync::Mutex;

/// One message of a neighbour exchange: this rank sends `send` to the rank
/// at `offset` in the rank grid and receives that rank's message for it
/// into `recv`, whose length is exactly what that rank sends.
#[derive(Debug)]
pub struct HaloMessage<'a> {
    /// The neighbour's offset (dx, dy, dz) ∈ {−1, 0, 1}³ from this rank,
    /// never (0, 0, 0).
    pub offset: [i32; 3],
    /// The bytes to send (the neighbour's `recv` has this length).
    pub send: &'a [u8],
    /// The bytes to receive (the neighbour's `send` has this length).
    pub recv: &'a mut [u8],
}

/// A communicator for distributed solves.
///
/// Every operation is collective: all ranks call it, in the same order.
/// An implementation that fails must still have completed its part of
/// the communication (posted and finished its sends and receives, joined
/// the reduction) before it returns the error: the library then carries
/// on in step with the other ranks and all of them stop with an error at
/// the next reduction, so that no rank waits forever.
pub trait Communicator {
    /// This rank's index, in `0..size()`.
    fn rank(&self) -> usize;

    /// The number of ranks.
    fn size(&self) -> usize;

    /// Sums `values` elementwise over all ranks, in place (MPI_Allreduce
    /// with MPI_SUM on MPI_DOUBLE).
    fn allreduce_sum(&self, values: &mut [f64]) -> Result<()>;

    /// Moves every message of one exchange: for each, sends `send` to the
    /// neighbour at `offset` and receives its message into `recv`. The
    /// neighbour lists this rank at the opposite offset. Messages between
    /// two ranks of one exchange are one in each direction, so one tag
    /// serves them all (MPI_Irecv and MPI_Isend for each, then
    /// MPI_Waitall).
    fn exchange(&self, messages: &mut [HaloMessage<'_>]) -> Result<()>;
}

/// The communicator of a one-rank run: sums are the identity and there
/// are no neighbours.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleRank;

impl Communicator for SingleRank {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn allreduce_sum(&self, _: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn exchange(&self, messages: &mut [HaloMessage<'_>]) -> Result<()> {
        match messages.first() {
            None => Ok(()),
            Some(m) => Err(Error::invalid(
                "comm",
                format!("a single rank has no neighbour at offset {:?}", m.offset),
            )),
        }
    }
}

/// Counts of communication, per solve or per setup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommStats {
    /// Calls of [`Communicator::allreduce_sum`].
    pub allreduces: u64,
    /// Doubles summed by them.
    pub allreduce_values: u64,
    /// Calls of [`Communicator::exchange`].
    pub exchanges: u64,
    /// Messages sent by them.
    pub messages: u64,
    /// Bytes sent by them.
    pub bytes: u64,
}

impl std::ops::Sub for CommStats {
    type Output = CommStats;
    fn sub(self, earlier: CommStats) -> CommStats {
        CommStats {
            allreduces: self.allreduces - earlier.allreduces,
            allreduce_values: self.allreduce_values - earlier.allreduce_values,
            exchanges: self.exchanges - earlier.exchanges,
            messages: self.messages - earlier.messages,
            bytes: self.bytes - earlier.bytes,
        }
    }
}

/// A communicator as the distributed kernels use it: a failure is kept
/// (the first one) instead of returned, so that the failing rank keeps
/// making the same calls as the others until a reduction tells everyone;
/// and every call is counted.
pub(crate) struct Collective {
    comm: Box<dyn Communicator>,
    failure: Mutex<Option<Error>>,
    stats: Mutex<CommStats>,
}

impl std::fmt::Debug for Collective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collective")
            .field("rank", &self.comm.rank())
            .field("size", &self.comm.size())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Collective {
    pub(crate) fn new(comm: Box<dyn Communicator>) -> Self {
        Self {
            comm,
            failure: Mutex::new(None),
            stats: Mutex::new(CommStats::default()),
        }
    }

    pub(crate) fn rank(&self) -> usize {
        self.comm.rank()
    }

    pub(crate) fn size(&self) -> usize {
        self.comm.size()
    }

    /// The counts so far.
    pub(crate) fn stats(&self) -> CommStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, f: impl FnOnce(&mut CommStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Keeps the first failure.
    pub(crate) fn fail(&self, error: Error) {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(error);
    }

    /// `true` once a call on this rank failed.
    pub(crate) fn failed(&self) -> bool {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// The kept failure, cleared.
    pub(crate) fn take_failure(&self) -> Option<Error> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Sums `values` over all ranks; a failure is kept (the values are
    /// then what the communicator left).
    pub(crate) fn allreduce(&self, values: &mut [f64]) {
        self.count(|s| {
            s.allreduces += 1;
            s.allreduce_values += values.len() as u64;
        });
        if let Err(e) = self.comm.allreduce_sum(values) {
            self.fail(e);
        }
    }

    /// One exchange; a failure is kept.
    pub(crate) fn exchange(&self, messages: &mut [HaloMessage<'_>]) {
        self.count(|s| {
            s.exchanges += 1;
            s.messages += messages.len() as u64;
            s.bytes += messages.iter().map(|m| m.send.len() as u64).sum::<u64>();
        });
        if let Err(e) = self.comm.exchange(messages) {
            self.fail(e);
        }
    }

    /// Ends a collective step with this rank's own result: an error on
    /// every rank when it failed on any (see [`Collective::agree`]).
    pub(crate) fn agree_on<T>(&self, local: Result<T>) -> Result<T> {
        if let Err(e) = &local {
            self.fail(e.clone());
        }
        self.agree()?;
        local
    }

    /// Ends a collective step: one reduction of the failure flags. When
    /// some rank had failed before it, every rank returns an error: this
    /// rank's own failure, or a callback error naming another rank's. A
    /// failure of this very reduction is known to this rank only, so it is
    /// kept and goes into the next reduction instead (the caller of the
    /// last one checks [`Collective::failed`]).
    pub(crate) fn agree(&self) -> Result<()> {
        let mut flag = [if self.failed() { 1.0 } else { 0.0 }];
        self.allreduce(&mut flag);
        if flag[0] == 0.0 {
            return Ok(());
        }
        Err(self.take_failure().unwrap_or(Error::Callback {
            callback: "allreduce_sum or exchange on another rank",
            code: -1,
        }))
    }
}
