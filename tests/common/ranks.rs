//! Ranks as threads of one process: a [`Communicator`] over shared memory,
//! for tests of distributed solves without MPI, with failures injected on
//! chosen calls.

use adjunct::distributed::{Communicator, GridBox, HaloMessage};
use adjunct::{Error, Result};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Barrier, Condvar, Mutex};

/// Messages in flight, by (from, to).
type Mailboxes = HashMap<(usize, usize), VecDeque<Vec<u8>>>;

/// What the ranks share.
struct World {
    size: usize,
    barrier: Barrier,
    slots: Mutex<Vec<Vec<f64>>>,
    mail: Mutex<Mailboxes>,
    arrived: Condvar,
}

/// A failure to inject: on `rank`, the `call`-th call (from 0) of the
/// kind fails after doing its communication.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Failure {
    None,
    Allreduce { rank: usize, call: usize },
    Exchange { rank: usize, call: usize },
}

/// One rank of a thread world.
pub struct ThreadRank {
    world: Arc<World>,
    rank: usize,
    /// The rank at each neighbour offset this rank can serve.
    neighbours: HashMap<[i32; 3], usize>,
    failure: Failure,
    calls: Mutex<[usize; 2]>,
}

impl ThreadRank {
    fn fails(&self, kind: usize) -> bool {
        let mut calls = self.calls.lock().unwrap();
        let call = calls[kind];
        calls[kind] += 1;
        match self.failure {
            Failure::Allreduce { rank, call: c } => kind == 0 && rank == self.rank && c == call,
            Failure::Exchange { rank, call: c } => kind == 1 && rank == self.rank && c == call,
            Failure::None => false,
        }
    }
}

impl Communicator for ThreadRank {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.world.size
    }

    fn allreduce_sum(&self, values: &mut [f64]) -> Result<()> {
        self.world.slots.lock().unwrap()[self.rank] = values.to_vec();
        self.world.barrier.wait();
        {
            let slots = self.world.slots.lock().unwrap();
            values.fill(0.0);
            for slot in slots.iter() {
                for (v, s) in values.iter_mut().zip(slot) {
                    *v += s;
                }
            }
        }
        self.world.barrier.wait();
        if self.fails(0) {
            return Err(Error::Callback {
                callback: "allreduce_sum",
                code: 7,
            });
        }
        Ok(())
    }

    fn exchange(&self, messages: &mut [HaloMessage<'_>]) -> Result<()> {
        let mut unserved = None;
        {
            let mut mail = self.world.mail.lock().unwrap();
            for m in messages.iter() {
                match self.neighbours.get(&m.offset) {
                    Some(&to) => mail
                        .entry((self.rank, to))
                        .or_default()
                        .push_back(m.send.to_vec()),
                    None => unserved = Some(m.offset),
                }
            }
        }
        self.world.arrived.notify_all();
        let mut wrong_length = None;
        for m in messages.iter_mut() {
            let Some(&from) = self.neighbours.get(&m.offset) else {
                continue;
            };
            let mut mail = self.world.mail.lock().unwrap();
            let bytes = loop {
                if let Some(bytes) = mail
                    .get_mut(&(from, self.rank))
                    .and_then(VecDeque::pop_front)
                {
                    break bytes;
                }
                mail = self.world.arrived.wait(mail).unwrap();
            };
            if bytes.len() == m.recv.len() {
                m.recv.copy_from_slice(&bytes);
            } else {
                wrong_length = Some((m.offset, bytes.len(), m.recv.len()));
            }
        }
        if let Some(offset) = unserved {
            return Err(Error::invalid(
                "exchange",
                format!("no neighbour at {offset:?}"),
            ));
        }
        if let Some((offset, got, want)) = wrong_length {
            return Err(Error::invalid(
                "exchange",
                format!("message from {offset:?} has {got} bytes, expected {want}"),
            ));
        }
        if self.fails(1) {
            return Err(Error::Callback {
                callback: "exchange",
                code: 9,
            });
        }
        Ok(())
    }
}

/// The boxes of a Cartesian decomposition of `dims` cut at `cuts` per
/// axis (each list from 0 to n), rank r at position x fastest.
pub fn boxes(cuts: &[Vec<usize>; 3]) -> Vec<GridBox> {
    let mut out = Vec::new();
    for k in 0..cuts[2].len() - 1 {
        for j in 0..cuts[1].len() - 1 {
            for i in 0..cuts[0].len() - 1 {
                out.push(GridBox {
                    lo: [cuts[0][i], cuts[1][j], cuts[2][k]],
                    hi: [cuts[0][i + 1], cuts[1][j + 1], cuts[2][k + 1]],
                });
            }
        }
    }
    out
}

/// Runs `f(rank, comm)` on one thread per rank of the decomposition
/// `cuts` and returns the results in rank order. The communicator of each
/// rank serves the neighbours of the decomposition (`serve_all`), or only
/// its face neighbours.
pub fn run_ranks<T: Send>(
    cuts: &[Vec<usize>; 3],
    failure: Failure,
    serve_all: bool,
    f: impl Fn(usize, Box<dyn Communicator>) -> T + Sync,
) -> Vec<T> {
    let counts = [0, 1, 2].map(|a| cuts[a].len() - 1);
    let size = counts.iter().product();
    let world = Arc::new(World {
        size,
        barrier: Barrier::new(size),
        slots: Mutex::new(vec![Vec::new(); size]),
        mail: Mutex::new(HashMap::new()),
        arrived: Condvar::new(),
    });
    let position = |r: usize| {
        [
            r % counts[0],
            (r / counts[0]) % counts[1],
            r / (counts[0] * counts[1]),
        ]
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..size)
            .map(|rank| {
                let p = position(rank);
                let mut neighbours = HashMap::new();
                for dz in -1..=1i32 {
                    for dy in -1..=1i32 {
                        for dx in -1..=1i32 {
                            let o = [dx, dy, dz];
                            let nonzero = o.iter().filter(|&&v| v != 0).count();
                            if nonzero == 0 || (!serve_all && nonzero > 1) {
                                continue;
                            }
                            let q: Vec<i64> = (0..3).map(|a| p[a] as i64 + o[a] as i64).collect();
                            if (0..3).all(|a| q[a] >= 0 && (q[a] as usize) < counts[a]) {
                                let r = q[0] as usize
                                    + counts[0] * (q[1] as usize + counts[1] * q[2] as usize);
                                neighbours.insert(o, r);
                            }
                        }
                    }
                }
                let comm = ThreadRank {
                    world: Arc::clone(&world),
                    rank,
                    neighbours,
                    failure,
                    calls: Mutex::new([0, 0]),
                };
                let f = &f;
                scope.spawn(move || f(rank, Box::new(comm)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}
