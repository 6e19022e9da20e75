//! Halo exchanges of a rank's box: which of its values each neighbour
//! needs (its owned layer next to that neighbour) and where the
//! neighbour's values go (its ghost layer), packed into byte buffers for
//! one [`Communicator::exchange`](super::Communicator::exchange) call.
//!
//! Both sides of a message enumerate the same cells in the same order
//! (x fastest in global coordinates), so a message is just the values.

use super::comm::{Collective, HaloMessage};
use super::decomposition::{Decomposition, GridBox};
use std::sync::{Mutex, MutexGuard};

/// A value that travels in halo messages, as its native-endian bytes.
pub(crate) trait HaloValue: Copy + Default {
    const BYTES: usize;
    fn write(self, out: &mut [u8]);
    fn read(bytes: &[u8]) -> Self;
}

impl HaloValue for f64 {
    const BYTES: usize = 8;
    fn write(self, out: &mut [u8]) {
        out.copy_from_slice(&self.to_ne_bytes());
    }
    fn read(bytes: &[u8]) -> Self {
        f64::from_ne_bytes(bytes.try_into().expect("8 bytes"))
    }
}

impl HaloValue for f32 {
    const BYTES: usize = 4;
    fn write(self, out: &mut [u8]) {
        out.copy_from_slice(&self.to_ne_bytes());
    }
    fn read(bytes: &[u8]) -> Self {
        f32::from_ne_bytes(bytes.try_into().expect("4 bytes"))
    }
}

/// The values exchanged with one neighbour: indices into this rank's
/// vector of the values it sends and of those it receives.
#[derive(Debug, Clone)]
struct Route {
    offset: [i32; 3],
    send: Vec<u32>,
    recv: Vec<u32>,
}

/// The routes of one kind of exchange, and their reused byte buffers.
#[derive(Debug)]
pub(crate) struct Halo {
    routes: Vec<Route>,
    buffers: Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
}

/// The cells of `owned` (send) or of the ghost layer `extended` \ `owned`
/// (receive) on the side `offset` of the box.
fn side(owned: &GridBox, extended: &GridBox, offset: [i32; 3], ghost: bool) -> GridBox {
    let mut lo = owned.lo;
    let mut hi = owned.hi;
    for a in 0..3 {
        match (offset[a], ghost) {
            (-1, false) => hi[a] = lo[a] + 1,
            (1, false) => lo[a] = hi[a] - 1,
            (-1, true) => (lo[a], hi[a]) = (extended.lo[a], owned.lo[a]),
            (1, true) => (lo[a], hi[a]) = (owned.hi[a], extended.hi[a]),
            _ => {}
        }
    }
    GridBox { lo, hi }
}

impl Halo {
    /// The exchange with the face neighbours (`faces_only`) or with all
    /// neighbours of this rank's box, over the vector whose entry for the
    /// extended box's cell index c is `index(c)` (None: no entry, as for a
    /// cell that is not an unknown; both sides agree on which cells have
    /// one, since the ghost layer's cells are the owner's).
    pub(crate) fn new(
        decomposition: &Decomposition,
        faces_only: bool,
        index: impl Fn(usize) -> Option<u32>,
    ) -> Self {
        let (owned, extended) = (decomposition.owned(), decomposition.extended());
        let collect = |b: GridBox| {
            let mut out = Vec::new();
            b.for_each(|c| out.extend(index(extended.index(c))));
            out
        };
        let routes: Vec<Route> = decomposition
            .neighbours(faces_only)
            .into_iter()
            .map(|offset| Route {
                offset,
                send: collect(side(&owned, &extended, offset, false)),
                recv: collect(side(&owned, &extended, offset, true)),
            })
            .filter(|r| !(r.send.is_empty() && r.recv.is_empty()))
            .collect();
        let buffers = Mutex::new(vec![Default::default(); routes.len()]);
        Self { routes, buffers }
    }

    /// The entries this rank sends, over all routes (an entry next to
    /// several neighbours appears once per route).
    pub(crate) fn sent_entries(&self) -> impl Iterator<Item = u32> + '_ {
        self.routes.iter().flat_map(|r| r.send.iter().copied())
    }

    /// `true` when there is nothing to exchange (no neighbour shares
    /// values with this rank).
    pub(crate) fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Fills the ghost entries of `values` with the neighbours' owned ones.
    pub(crate) fn exchange<T: HaloValue>(&self, collective: &Collective, values: &mut [T]) {
        let buffers = self.send(collective, values, false);
        self.receive(&buffers, values);
    }

    /// As [`Halo::exchange`], with the sent entries read from `owned` and
    /// the received ones written to `ghosts` (a halo whose send and
    /// receive entries index those two vectors).
    pub(crate) fn exchange_into<T: HaloValue>(
        &self,
        collective: &Collective,
        owned: &[T],
        ghosts: &mut [T],
    ) {
        let buffers = self.send(collective, owned, false);
        self.receive(&buffers, ghosts);
    }

    /// `into`[receive entries] ← the received values of `buffers`.
    fn receive<T: HaloValue>(&self, buffers: &[(Vec<u8>, Vec<u8>)], into: &mut [T]) {
        for (route, (_, recv)) in self.routes.iter().zip(buffers) {
            for (&i, bytes) in route.recv.iter().zip(recv.chunks_exact(T::BYTES)) {
                into[i as usize] = T::read(bytes);
            }
        }
    }

    /// Adds this rank's ghost entries of `values` into their owners' entries
    /// (the transpose of [`Halo::exchange`]): ghost entries are left as they
    /// were, owned ones get the neighbours' contributions.
    pub(crate) fn accumulate<T: HaloValue + std::ops::AddAssign>(
        &self,
        collective: &Collective,
        values: &mut [T],
    ) {
        let buffers = self.send(collective, values, true);
        for (route, (_, recv)) in self.routes.iter().zip(buffers.iter()) {
            for (&i, bytes) in route.send.iter().zip(recv.chunks_exact(T::BYTES)) {
                values[i as usize] += T::read(bytes);
            }
        }
    }

    /// Packs the send entries of `values` (the receive entries when
    /// `transpose`), sizes the receive buffers and exchanges; returns the
    /// buffers, the received bytes in the second of each pair.
    fn send<T: HaloValue>(
        &self,
        collective: &Collective,
        values: &[T],
        transpose: bool,
    ) -> MutexGuard<'_, Vec<(Vec<u8>, Vec<u8>)>> {
        let mut buffers = self.buffers.lock().unwrap_or_else(|p| p.into_inner());
        for (route, (send, recv)) in self.routes.iter().zip(buffers.iter_mut()) {
            let (out, back) = if transpose {
                (&route.recv, &route.send)
            } else {
                (&route.send, &route.recv)
            };
            pack(values, out, send);
            recv.resize(back.len() * T::BYTES, 0);
        }
        self.call(collective, &mut buffers);
        buffers
    }

    fn call(&self, collective: &Collective, buffers: &mut [(Vec<u8>, Vec<u8>)]) {
        let mut messages: Vec<HaloMessage<'_>> = self
            .routes
            .iter()
            .zip(buffers.iter_mut())
            .map(|(route, (send, recv))| HaloMessage {
                offset: route.offset,
                send,
                recv,
            })
            .collect();
        collective.exchange(&mut messages);
    }
}

/// `out` ← the bytes of `values[indices]`.
fn pack<T: HaloValue>(values: &[T], indices: &[u32], out: &mut Vec<u8>) {
    out.resize(indices.len() * T::BYTES, 0);
    for (&i, bytes) in indices.iter().zip(out.chunks_exact_mut(T::BYTES)) {
        values[i as usize].write(bytes);
    }
}
