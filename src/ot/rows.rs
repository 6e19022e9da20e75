//! The row blocks and lane reductions of the dense passes over an n×m
//! matrix (the cost, the plan): fixed blocks and a fixed combination
//! order, so results do not depend on the thread count.

use crate::parallel::map_blocks;

/// The row-parallel passes cut the rows into at most this many blocks; the
/// passes that reduce over columns keep one m-vector of partial sums per
/// block, so this bounds their scratch to `MAX_ROW_BLOCKS · m` per pass.
const MAX_ROW_BLOCKS: usize = 32;
/// Fewest rows per block.
const MIN_ROWS_PER_BLOCK: usize = 8;

/// Rows 0..n cut into at most [`MAX_ROW_BLOCKS`] blocks whose bounds
/// depend on n only, so reductions do not depend on the thread count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowBlocks {
    rows: usize,
    per_block: usize,
}

impl RowBlocks {
    pub(crate) fn new(rows: usize) -> Self {
        Self {
            rows,
            per_block: rows.div_ceil(MAX_ROW_BLOCKS).max(MIN_ROWS_PER_BLOCK),
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.rows.div_ceil(self.per_block)
    }

    pub(crate) fn rows(&self, block: usize) -> std::ops::Range<usize> {
        block * self.per_block..((block + 1) * self.per_block).min(self.rows)
    }
}

/// Combines per-block column vectors in block order.
pub(super) fn reduce_cols(blocks: Vec<Vec<f64>>, op: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    let mut it = blocks.into_iter();
    let mut acc = it.next().expect("at least one row block");
    for block in it {
        for (a, b) in acc.iter_mut().zip(block) {
            *a = op(*a, b);
        }
    }
    acc
}

/// Row and column sums of an n×m matrix in one pass over its rows (`work`
/// entries in all): `row(i, cols)` adds row i to `cols` and returns its
/// sum. Rows run in [`RowBlocks`], each with its own column sums, combined
/// in block order.
pub(crate) fn row_and_col_sums(
    n: usize,
    m: usize,
    work: usize,
    row: impl Fn(usize, &mut [f64]) -> f64 + Sync,
) -> (Vec<f64>, Vec<f64>) {
    let blocks = RowBlocks::new(n);
    let partial = map_blocks(blocks.count(), work, |b| {
        let mut cols = vec![0.0; m];
        let rows: Vec<f64> = blocks.rows(b).map(|i| row(i, &mut cols)).collect();
        (rows, cols)
    });
    let rows = partial
        .iter()
        .flat_map(|(r, _)| r.iter().copied())
        .collect();
    let cols = reduce_cols(partial.into_iter().map(|(_, c)| c).collect(), |a, b| a + b);
    (rows, cols)
}

/// Interleaved partial results per row pass: the inner loops keep this many
/// independent accumulators, so they vectorise (a single running f64 sum is
/// a serial dependency the compiler may not reorder). The combination order
/// is fixed, so results do not depend on the thread count.
const LANES: usize = 8;

/// Combines the lanes in a fixed tree.
#[inline(always)]
fn combine(acc: [f64; LANES], op: impl Fn(f64, f64) -> f64) -> f64 {
    op(
        op(op(acc[0], acc[4]), op(acc[2], acc[6])),
        op(op(acc[1], acc[5]), op(acc[3], acc[7])),
    )
}

/// max_j term(g_j, c_j).
#[inline(always)]
pub(super) fn lane_max(g: &[f64], c: &[f64], term: impl Fn(f64, f64) -> f64) -> f64 {
    let mut acc = [f64::NEG_INFINITY; LANES];
    let split = g.len() / LANES * LANES;
    for (gs, cs) in g[..split]
        .chunks_exact(LANES)
        .zip(c[..split].chunks_exact(LANES))
    {
        for l in 0..LANES {
            acc[l] = acc[l].max(term(gs[l], cs[l]));
        }
    }
    for (gj, cj) in g[split..].iter().zip(&c[split..]) {
        acc[0] = acc[0].max(term(*gj, *cj));
    }
    combine(acc, f64::max)
}

/// Σ_j term(g_j, c_j).
#[inline(always)]
pub(super) fn lane_sum(g: &[f64], c: &[f64], term: impl Fn(f64, f64) -> f64) -> f64 {
    let mut acc = [0.0; LANES];
    let split = g.len() / LANES * LANES;
    for (gs, cs) in g[..split]
        .chunks_exact(LANES)
        .zip(c[..split].chunks_exact(LANES))
    {
        for l in 0..LANES {
            acc[l] += term(gs[l], cs[l]);
        }
    }
    for (gj, cj) in g[split..].iter().zip(&c[split..]) {
        acc[0] += term(*gj, *cj);
    }
    combine(acc, |a, b| a + b)
}

/// Adds t_j = term(g_j, c_j) to `cols[j]` and returns Σ_j t_j.
#[inline(always)]
pub(super) fn lane_sum_into(
    cols: &mut [f64],
    g: &[f64],
    c: &[f64],
    term: impl Fn(f64, f64) -> f64,
) -> f64 {
    let mut acc = [0.0; LANES];
    let split = g.len() / LANES * LANES;
    for ((ks, gs), cs) in cols[..split]
        .chunks_exact_mut(LANES)
        .zip(g[..split].chunks_exact(LANES))
        .zip(c[..split].chunks_exact(LANES))
    {
        for l in 0..LANES {
            let t = term(gs[l], cs[l]);
            ks[l] += t;
            acc[l] += t;
        }
    }
    for ((k, gj), cj) in cols[split..].iter_mut().zip(&g[split..]).zip(&c[split..]) {
        let t = term(*gj, *cj);
        *k += t;
        acc[0] += t;
    }
    combine(acc, |a, b| a + b)
}
