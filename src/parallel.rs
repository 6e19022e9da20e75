//! The library's thread pool and the deterministic parallel loops every
//! kernel uses.
//!
//! Work is cut into blocks whose boundaries depend only on the problem
//! size, never on the thread count, and partial sums are combined in a fixed
//! binary tree. A solve therefore gives bitwise the same result with 1 or 64
//! threads.
//!
//! Solvers run their iteration loop on the calling thread and only hand the
//! bulk kernels to the pool, so user callbacks are always invoked on the
//! thread that called the solver.

use crate::error::{Error, Result};
use once_cell::sync::Lazy;
use rayon::{ThreadPool, ThreadPoolBuilder};
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::{Arc, RwLock};

/// Below this many elements of work a kernel runs serially: handing it to
/// the pool would cost more than it saves.
const PARALLEL_MIN_WORK: usize = 32 * 1024;

static POOL: Lazy<RwLock<Arc<ThreadPool>>> = Lazy::new(|| {
    RwLock::new(Arc::new(
        build_pool(0).expect("cannot start the thread pool"),
    ))
});

fn build_pool(num_threads: usize) -> Result<ThreadPool> {
    ThreadPoolBuilder::new()
        .num_threads(num_threads)
        .thread_name(|i| format!("adjunct-{i}"))
        .build()
        .map_err(|e| {
            Error::invalid(
                "num_threads",
                format!("cannot start {num_threads} threads: {e}"),
            )
        })
}

/// Sets the number of worker threads used by all kernels (0 = one per core).
pub fn set_num_threads(num_threads: usize) -> Result<()> {
    let pool = build_pool(num_threads)?;
    *POOL.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pool);
    Ok(())
}

/// Number of worker threads the kernels currently use.
pub fn num_threads() -> usize {
    pool().current_num_threads()
}

fn pool() -> Arc<ThreadPool> {
    POOL.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Returns Σ_b `f(b)` over blocks `0..num_blocks`, summed in a fixed binary
/// tree. Runs on the pool when `work` (elements touched) is large enough.
pub(crate) fn sum_blocks<F>(num_blocks: usize, work: usize, f: F) -> f64
where
    F: Fn(usize) -> f64 + Sync,
{
    if num_blocks == 0 {
        return 0.0;
    }
    if work < PARALLEL_MIN_WORK || num_blocks == 1 {
        return tree_sum(0..num_blocks, &f, false);
    }
    let pool = pool();
    if pool.current_num_threads() == 1 {
        return tree_sum(0..num_blocks, &f, false);
    }
    pool.install(|| tree_sum(0..num_blocks, &f, true))
}

fn tree_sum<F: Fn(usize) -> f64 + Sync>(blocks: Range<usize>, f: &F, parallel: bool) -> f64 {
    if blocks.len() == 1 {
        return f(blocks.start);
    }
    let mid = blocks.start + blocks.len() / 2;
    let (lo, hi) = (blocks.start..mid, mid..blocks.end);
    if parallel {
        let (a, b) = rayon::join(|| tree_sum(lo, f, true), || tree_sum(hi, f, true));
        a + b
    } else {
        tree_sum(lo, f, false) + tree_sum(hi, f, false)
    }
}

/// Runs `f(b)` for every block `0..num_blocks`, on the pool when `work` is
/// large enough.
pub(crate) fn for_blocks<F>(num_blocks: usize, work: usize, f: F)
where
    F: Fn(usize) + Sync,
{
    sum_blocks(num_blocks, work, |b| {
        f(b);
        0.0
    });
}

/// A mutable slice shared by tasks that each write a disjoint index range.
pub(crate) struct DisjointSlice<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: the pointer comes from a `&mut [T]` held for `'a`; tasks only
// obtain sub-slices through `range`, whose contract forbids overlap.
unsafe impl<T: Send> Send for DisjointSlice<'_, T> {}
unsafe impl<T: Send> Sync for DisjointSlice<'_, T> {}

impl<'a, T> DisjointSlice<'a, T> {
    pub(crate) fn new(slice: &'a mut [T]) -> Self {
        Self {
            ptr: slice.as_mut_ptr(),
            len: slice.len(),
            _borrow: PhantomData,
        }
    }

    /// The sub-slice `range`.
    ///
    /// # Safety
    /// No two live sub-slices obtained from `self` may overlap.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn range(&self, range: Range<usize>) -> &'a mut [T] {
        assert!(range.start <= range.end && range.end <= self.len);
        // SAFETY: in bounds (checked above); disjointness is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len()) }
    }
}

/// Returns `[f(0), …, f(num_blocks − 1)]`, computed on the pool when `work`
/// is large enough. The order of the results never depends on the threads.
pub(crate) fn map_blocks<T, F>(num_blocks: usize, work: usize, f: F) -> Vec<T>
where
    T: Send,
    F: Fn(usize) -> T + Sync,
{
    use rayon::prelude::*;
    if work < PARALLEL_MIN_WORK || num_blocks <= 1 {
        return (0..num_blocks).map(f).collect();
    }
    let pool = pool();
    if pool.current_num_threads() == 1 {
        return (0..num_blocks).map(f).collect();
    }
    pool.install(|| (0..num_blocks).into_par_iter().map(&f).collect())
}

/// Runs `f(k, chunk)` for the consecutive `chunk_len`-element chunks of
/// `data`, on the pool when `work` is large enough. Each chunk is written
/// by exactly one call, so results do not depend on the thread count.
pub(crate) fn for_each_chunk<T, F>(data: &mut [T], chunk_len: usize, work: usize, f: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Sync,
{
    use rayon::prelude::*;
    if chunk_len == 0 {
        return;
    }
    let pool = pool();
    if work < PARALLEL_MIN_WORK || pool.current_num_threads() == 1 {
        data.chunks_mut(chunk_len)
            .enumerate()
            .for_each(|(k, c)| f(k, c));
        return;
    }
    pool.install(|| {
        data.par_chunks_mut(chunk_len)
            .enumerate()
            .for_each(|(k, c)| f(k, c))
    });
}
