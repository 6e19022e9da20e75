//! Copies between a rank's own unknowns and the vector of its local grid
//! (own cells and ghost layer), by runs of consecutive unknowns: memory
//! copies, split over the pool, instead of one indexed access per value.

use crate::parallel::{for_blocks, map_blocks, DisjointSlice};

/// Values per parallel block of a copy.
const BLOCK: usize = 32 * 1024;

/// The owned unknowns as runs (local start, owned start, length), and the
/// blocks of runs the copies split over.
#[derive(Debug, Clone)]
pub(crate) struct OwnedRuns {
    runs: Vec<(usize, usize, usize)>,
    blocks: Vec<std::ops::Range<usize>>,
    owned: usize,
}

impl OwnedRuns {
    /// The runs of `owned_unknowns` (increasing local unknowns).
    pub(crate) fn new(owned_unknowns: &[u32]) -> Self {
        let mut runs: Vec<(usize, usize, usize)> = Vec::new();
        // A run ends at a gap or at BLOCK values, so that a copy of long
        // runs still splits over the pool and each piece stays in cache.
        for (o, &e) in owned_unknowns.iter().enumerate() {
            match runs.last_mut() {
                Some((start, _, len)) if *start + *len == e as usize && *len < BLOCK => *len += 1,
                _ => runs.push((e as usize, o, 1)),
            }
        }
        let mut blocks = Vec::new();
        let (mut first, mut size) = (0, 0);
        for (k, run) in runs.iter().enumerate() {
            size += run.2;
            if size >= BLOCK {
                blocks.push(first..k + 1);
                (first, size) = (k + 1, 0);
            }
        }
        if first < runs.len() {
            blocks.push(first..runs.len());
        }
        Self {
            runs,
            blocks,
            owned: owned_unknowns.len(),
        }
    }

    /// local[owned positions] ← f(owned), run by run.
    pub(crate) fn scatter<A: Sync, B: Send>(
        &self,
        owned: &[A],
        local: &mut [B],
        f: impl Fn(&[A], &mut [B]) + Sync,
    ) {
        let out = DisjointSlice::new(local);
        for_blocks(self.blocks.len(), self.owned, |b| {
            for &(start, o, len) in &self.runs[self.blocks[b].clone()] {
                // SAFETY: runs cover disjoint local ranges.
                f(&owned[o..o + len], unsafe { out.range(start..start + len) });
            }
        });
    }

    /// owned ← f(local[owned positions]) run by run; returns the sum of
    /// f's results in run order (the same for any thread count).
    pub(crate) fn gather<A: Sync, B: Send>(
        &self,
        local: &[A],
        owned: &mut [B],
        f: impl Fn(&[A], &mut [B], usize) -> f64 + Sync,
    ) -> f64 {
        let out = DisjointSlice::new(owned);
        map_blocks(self.blocks.len(), self.owned, |b| {
            let mut sum = 0.0;
            for &(start, o, len) in &self.runs[self.blocks[b].clone()] {
                // SAFETY: runs cover disjoint owned ranges.
                sum += f(
                    &local[start..start + len],
                    unsafe { out.range(o..o + len) },
                    o,
                );
            }
            sum
        })
        .into_iter()
        .sum()
    }
}
