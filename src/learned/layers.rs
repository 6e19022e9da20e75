//! The network's layers on multi-channel f32 fields over a 2D/3D grid:
//! 3^d and 1×1 convolutions with zero padding at the grid boundary, 2×
//! average pooling and nearest-neighbour upsampling, each with its
//! backward pass; underneath, one correlation over any box of taps up to
//! 7³ (also used by the contracted evaluation of `learned::contracted`). A field with C channels is stored channel-major:
//! `field[c · cells + cell]`, cells in grid order (x fastest).

use crate::parallel::{for_blocks, for_each_chunk, DisjointSlice};

/// A grid: `[nx, ny, nz]` and its dimension. A grid built from dims is 2D
/// when nz = 1; coarsening keeps the dimension, so a 3D grid stays 3D (with
/// 3^3 kernels) even once a level has a single layer in z.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    /// Cells per axis.
    pub dims: [usize; 3],
    ndim: usize,
}

impl Grid {
    /// The grid of `dims` (`nz = 1` for 2D).
    pub fn new(dims: [usize; 3]) -> Self {
        let ndim = if dims[2] > 1 { 3 } else { 2 };
        Self { dims, ndim }
    }

    /// 2 or 3.
    pub fn ndim(&self) -> usize {
        self.ndim
    }

    /// nx·ny·nz.
    pub fn cells(&self) -> usize {
        self.dims.iter().product()
    }

    /// The grid after 2× coarsening (each axis rounded up; z stays 1 in 2D).
    pub fn coarse(&self) -> Grid {
        let mut dims = self.dims;
        for d in dims.iter_mut().take(self.ndim) {
            *d = d.div_ceil(2);
        }
        Grid {
            dims,
            ndim: self.ndim,
        }
    }
}

/// A convolution's shape: `cin` → `cout` channels, kernel `k` (1 or 3)
/// per axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel size per axis, 1 or 3.
    pub k: usize,
}

impl ConvShape {
    /// Kernel taps k^d.
    pub fn taps(&self, ndim: usize) -> usize {
        self.k.pow(ndim as u32)
    }

    /// Weights cout·cin·taps.
    pub fn weights(&self, ndim: usize) -> usize {
        self.cout * self.cin * self.taps(ndim)
    }

    /// The (dx, dy, dz) offset of each tap, z outermost, x innermost.
    fn offsets(&self, ndim: usize) -> Taps {
        let r = (self.k / 2) as isize;
        Taps::boxed(ndim, [[-r, r]; 3])
    }
}

/// The tap offsets of a kernel: every (dx, dy, dz) of a box, z outermost,
/// x innermost, in a fixed array (no allocation per call).
pub(crate) struct Taps {
    offsets: [[isize; 3]; Taps::MAX],
    len: usize,
}

impl Taps {
    /// The most taps: a 7³ box.
    pub(crate) const MAX: usize = 343;

    /// The taps of the box `ranges[axis] = [lo, hi]` (inclusive; z is 0 in
    /// 2D). Panics beyond [`Taps::MAX`] taps (an internal error).
    pub(crate) fn boxed(ndim: usize, ranges: [[isize; 2]; 3]) -> Self {
        let [[xl, xh], [yl, yh], [zl, zh]] = ranges;
        let (zl, zh) = if ndim == 3 { (zl, zh) } else { (0, 0) };
        let mut out = Taps {
            offsets: [[0; 3]; Taps::MAX],
            len: 0,
        };
        for dz in zl..=zh {
            for dy in yl..=yh {
                for dx in xl..=xh {
                    out.offsets[out.len] = [dx, dy, dz];
                    out.len += 1;
                }
            }
        }
        out
    }
}

impl std::ops::Deref for Taps {
    type Target = [[isize; 3]];
    fn deref(&self) -> &[[isize; 3]] {
        &self.offsets[..self.len]
    }
}

/// The first cell of row (y + dy, z + dz), or None outside the grid.
fn source_row(grid: Grid, y: usize, z: usize, [dy, dz]: [isize; 2]) -> Option<usize> {
    let [nx, ny, nz] = grid.dims;
    let (sy, sz) = (y as isize + dy, z as isize + dz);
    (sy >= 0 && sy < ny as isize && sz >= 0 && sz < nz as isize)
        .then(|| nx * (sy as usize + ny * sz as usize))
}

/// In output row (y, z), the segment pairing x with source x + off[0] in
/// row (y + off[1], z + off[2]): (first x, source cell index, length), or
/// None when the segment lies outside the grid.
fn row_segment(grid: Grid, y: usize, z: usize, off: [isize; 3]) -> Option<(usize, usize, usize)> {
    let nx = grid.dims[0];
    let row = source_row(grid, y, z, [off[1], off[2]])?;
    let lo = (-off[0]).max(0) as usize;
    let hi = (nx as isize - off[0].max(0)).max(0) as usize;
    (hi > lo).then(|| (lo, row + (lo as isize + off[0]) as usize, hi - lo))
}

/// Output channels computed together: their accumulators stay in registers
/// while every source channel and tap adds to them, so each source vector
/// is read once per group.
const GROUP: usize = 8;
/// Output rows per parallel task.
const ROWS_PER_TASK: usize = 8;

thread_local! {
    /// Per worker: one output row for every channel, reused across calls
    /// (no allocation once grown).
    static ROW_OUT: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Per calling thread: the zero-padded source field and the weights in
    /// the layout of [`kernel_weights`].
    static CALL_BUFFERS: std::cell::RefCell<(Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// A correlation's weights w(o, j, t) for output channel o, source
/// channel j and tap t.
#[derive(Clone, Copy)]
pub(crate) enum Weights<'a> {
    /// Laid out [outs][sources][taps].
    OutputsFirst(&'a [f32]),
    /// Laid out [sources][outs][taps]: a convolution's weights read as
    /// those of its transpose.
    SourcesFirst(&'a [f32]),
}

/// The weights rearranged for [`correlate_row`]: each whole group of
/// [`GROUP`] output channels as [sources][taps][GROUP] (the group's weights
/// of one tap side by side), each remaining channel as [sources][taps].
fn kernel_weights(w: Weights<'_>, outs: usize, sources: usize, taps: usize, into: &mut Vec<f32>) {
    let per_output = sources * taps;
    into.resize(outs * per_output, 0.0);
    let grouped = outs - outs % GROUP;
    for o in 0..outs {
        for j in 0..sources {
            for t in 0..taps {
                let value = match w {
                    Weights::OutputsFirst(w) => w[(o * sources + j) * taps + t],
                    Weights::SourcesFirst(w) => w[(j * outs + o) * taps + t],
                };
                let k = j * taps + t;
                let at = if o < grouped {
                    (o - o % GROUP) * per_output + k * GROUP + o % GROUP
                } else {
                    o * per_output + k
                };
                into[at] = value;
            }
        }
    }
}

/// What a correlation's sums start from.
#[derive(Clone, Copy)]
pub(crate) enum Start<'a> {
    /// bias[o], or 0 when absent.
    Bias(Option<&'a [f32]>),
    /// The output's current values (the correlation is added to it).
    Output,
}

/// A field's channels copied with zeros around them: `pad[a]` cells before
/// and after the grid on each axis, rows `stride` long (the computed width
/// plus the x padding).
struct Padding {
    pad: [usize; 3],
    stride: usize,
    rows_per_layer: usize,
    channel_stride: usize,
}

impl Padding {
    fn new(grid: Grid, pad: [usize; 3], width: usize) -> Self {
        let stride = width + 2 * pad[0];
        let rows_per_layer = grid.dims[1] + 2 * pad[1];
        let layers = grid.dims[2] + 2 * pad[2];
        Self {
            pad,
            stride,
            rows_per_layer,
            channel_stride: stride * rows_per_layer * layers,
        }
    }

    /// Copies `sources` channels of `field` into `padded` (resized), in
    /// parallel by padded layer.
    fn fill(&self, grid: Grid, sources: usize, field: &[f32], padded: &mut Vec<f32>) {
        let [nx, ny, nz] = grid.dims;
        let cells = grid.cells();
        let layer = self.stride * self.rows_per_layer;
        let layers = self.channel_stride / layer;
        padded.resize(sources * self.channel_stride, 0.0);
        for_each_chunk(
            padded,
            layer,
            sources * self.channel_stride,
            |index, out| {
                let (j, zp) = (index / layers, index % layers);
                out.fill(0.0);
                let Some(z) = zp.checked_sub(self.pad[2]).filter(|&z| z < nz) else {
                    return;
                };
                for y in 0..ny {
                    let row = &mut out[(y + self.pad[1]) * self.stride + self.pad[0]..][..nx];
                    row.copy_from_slice(&field[j * cells + nx * (y + ny * z)..][..nx]);
                }
            },
        );
    }
}

/// out[o][p] = start(o, p) + Σ_j Σ_t w(o, j, t) · field_j[p + sign·off_t]
/// for every output channel o (fields zero outside the grid). The source channels are first copied with zeros
/// around them, as far as the taps reach; then output rows run in
/// parallel, each computing every output channel over the row (see
/// [`correlate_row`]). Terms outside the grid add w·0, which leaves every
/// sum unchanged.
pub(crate) fn correlate(
    grid: Grid,
    offsets: &Taps,
    sign: isize,
    (sources, field): (usize, &[f32]),
    w: Weights<'_>,
    start: Start<'_>,
    out: &mut [f32],
) {
    let [nx, ny, nz] = grid.dims;
    let cells = grid.cells();
    let taps = offsets.len();
    let outs = out.len() / cells;
    let mut pad = [0usize; 3];
    for off in offsets.iter() {
        for (p, o) in pad.iter_mut().zip(off) {
            *p = (*p).max(o.unsigned_abs());
        }
    }
    let width = nx.div_ceil(NARROW) * NARROW;
    let padding = Padding::new(grid, pad, width);
    // Each tap's start of x = 0 of output row (0, 0) in a padded channel.
    let mut row_taps = [(0usize, 0usize); Taps::MAX];
    for (t, off) in offsets.iter().enumerate() {
        let at = |axis: usize| (pad[axis] as isize + sign * off[axis]) as usize;
        row_taps[t] = (
            t,
            (at(2) * padding.rows_per_layer + at(1)) * padding.stride + at(0),
        );
    }
    // Taken out of the thread-local (not borrowed) so that a nested call on
    // this thread, e.g. a stolen rayon task, finds empty buffers instead of
    // borrowed ones.
    let (mut padded, mut weights) = CALL_BUFFERS.with_borrow_mut(std::mem::take);
    padding.fill(grid, sources, field, &mut padded);
    kernel_weights(w, outs, sources, taps, &mut weights);
    let rows = ny * nz;
    let out = DisjointSlice::new(out);
    for_blocks(
        rows.div_ceil(ROWS_PER_TASK),
        weights.len() * cells,
        |task| {
            ROW_OUT.with_borrow_mut(|row_out| {
                row_out.resize(row_out.len().max(outs * width), 0.0);
                let row_out = &mut row_out[..outs * width];
                for row in task * ROWS_PER_TASK..((task + 1) * ROWS_PER_TASK).min(rows) {
                    let (y, z) = (row % ny, row / ny);
                    for (o, start_row) in row_out.chunks_exact_mut(width).enumerate() {
                        match start {
                            Start::Bias(bias) => start_row.fill(bias.map_or(0.0, |b| b[o])),
                            Start::Output => {
                                let at = o * cells + row * nx;
                                // SAFETY: as below, row `row` is this task's.
                                start_row[..nx].copy_from_slice(unsafe { out.range(at..at + nx) });
                            }
                        }
                    }
                    let sources_of_row = RowSources {
                        padded: &padded,
                        channel_stride: padding.channel_stride,
                        row_start: (z * padding.rows_per_layer + y) * padding.stride,
                        row_taps: &row_taps[..taps],
                        sources,
                    };
                    correlate_row(row_out, width, &sources_of_row, &weights);
                    for (o, computed) in row_out.chunks_exact(width).enumerate() {
                        let at = o * cells + row * nx;
                        // SAFETY: row `row` of every output channel is
                        // written by this task only.
                        unsafe { out.range(at..at + nx) }.copy_from_slice(&computed[..nx]);
                    }
                }
            });
        },
    );
    CALL_BUFFERS.with_borrow_mut(|buffers| *buffers = (padded, weights));
}

/// What the output chunks of one row read: the zero-padded source
/// channels (`channel_stride` apart), the row's offset in them, and each
/// tap with its start of x = 0 relative to that offset.
struct RowSources<'a> {
    padded: &'a [f32],
    channel_stride: usize,
    row_start: usize,
    row_taps: &'a [(usize, usize)],
    sources: usize,
}

/// row_out[o·width + x] += Σ_j Σ_(t, base) w(o, j, t) ·
/// padded[j·channel_stride + base + x] for every output channel o and
/// x < width (`w` as [`kernel_weights`] lays it out), each term added by a
/// fused multiply-add in the order j then t, whatever the CPU: results are
/// bitwise identical on every path. The accumulators of a group of output
/// channels span 32 cells with AVX-512 (16 registers) and 16 otherwise; a
/// lone channel's span 64 and 32 (independent sums that hide the latency
/// of the additions).
fn correlate_row(row_out: &mut [f32], width: usize, rows: &RowSources<'_>, w: &[f32]) {
    /// The chunk kernels of one CPU level: a `#[target_feature]` copy of
    /// [`accumulate_chunk`] per accumulator shape (the compiler keeps the
    /// accumulators in registers only when the chunk is its own function).
    macro_rules! chunk_kernels {
        ($feature:literal, $group_cells:literal, $lone_cells:literal) => {{
            #[target_feature(enable = $feature)]
            unsafe fn chunk<const G: usize, const W: usize>(
                acc: &mut [[f32; W]; G],
                rows: &RowSources<'_>,
                w: &[f32],
                x0: usize,
            ) {
                accumulate_chunk(acc, rows, w, x0)
            }
            // SAFETY (each call): `level()` reports only features the CPU
            // has (the AVX2 level requires FMA too).
            row_kernel::<$group_cells, $lone_cells>(
                (row_out, width, rows, w),
                ChunkKernels {
                    group: |acc: &mut [[f32; $group_cells]; GROUP],
                            rows: &RowSources<'_>,
                            w: &[f32],
                            x0: usize| unsafe { chunk(acc, rows, w, x0) },
                    group_narrow: |acc: &mut [[f32; NARROW]; GROUP],
                                   rows: &RowSources<'_>,
                                   w: &[f32],
                                   x0: usize| unsafe {
                        chunk(acc, rows, w, x0)
                    },
                    lone: |acc: &mut [[f32; $lone_cells]; 1],
                           rows: &RowSources<'_>,
                           w: &[f32],
                           x0: usize| unsafe { chunk(acc, rows, w, x0) },
                    lone_narrow: |acc: &mut [[f32; NARROW]; 1],
                                  rows: &RowSources<'_>,
                                  w: &[f32],
                                  x0: usize| unsafe {
                        chunk(acc, rows, w, x0)
                    },
                },
            )
        }};
    }
    match crate::simd::level() {
        #[cfg(target_arch = "x86_64")]
        crate::simd::Level::Avx512 => chunk_kernels!("avx512f", 32, 64),
        #[cfg(target_arch = "x86_64")]
        crate::simd::Level::Avx2 => chunk_kernels!("avx2,fma", 16, 32),
        crate::simd::Level::Baseline => row_kernel::<NARROW, NARROW>(
            (row_out, width, rows, w),
            ChunkKernels {
                group: accumulate_chunk,
                group_narrow: accumulate_chunk,
                lone: accumulate_chunk,
                lone_narrow: accumulate_chunk,
            },
        ),
    }
}

/// Cells of the narrowest chunk: rows are computed to a multiple of it,
/// in chunks of the kernels' full width while they fit, then narrow ones.
const NARROW: usize = 16;

/// The arguments of [`correlate_row`].
type RowArgs<'r, 'a> = (&'r mut [f32], usize, &'r RowSources<'a>, &'r [f32]);

/// The chunk functions of [`correlate_row`]: for a group of [`GROUP`]
/// channels and for one channel, of full and of [`NARROW`] width.
struct ChunkKernels<G, GN, L, LN> {
    group: G,
    group_narrow: GN,
    lone: L,
    lone_narrow: LN,
}

/// A chunk function: adds the correlation of chunk x0 to G accumulators of
/// W cells.
trait Chunk<const G: usize, const W: usize>:
    Fn(&mut [[f32; W]; G], &RowSources<'_>, &[f32], usize)
{
}
impl<const G: usize, const W: usize, F> Chunk<G, W> for F where
    F: Fn(&mut [[f32; W]; G], &RowSources<'_>, &[f32], usize)
{
}

/// [`correlate_row`] through the chunk kernels, GW cells wide for a group
/// and LW for a lone channel.
#[inline(always)]
fn row_kernel<const GW: usize, const LW: usize>(
    (row_out, width, rows, w): RowArgs<'_, '_>,
    kernels: ChunkKernels<
        impl Chunk<GROUP, GW>,
        impl Chunk<GROUP, NARROW>,
        impl Chunk<1, LW>,
        impl Chunk<1, NARROW>,
    >,
) {
    let outs = row_out.len() / width;
    let per_output = rows.sources * rows.row_taps.len();
    let mut o = 0;
    while o < outs {
        let size = if outs - o >= GROUP { GROUP } else { 1 };
        let out = &mut row_out[o * width..(o + size) * width];
        let w = &w[o * per_output..(o + size) * per_output];
        if size == GROUP {
            accumulate_row(out, width, rows, w, &kernels.group, &kernels.group_narrow);
        } else {
            accumulate_row(out, width, rows, w, &kernels.lone, &kernels.lone_narrow);
        }
        o += size;
    }
}

/// Adds to the rows of G output channels: chunks of W cells by `wide`
/// while they fit in `width`, the rest by `narrow`.
#[inline(always)]
fn accumulate_row<const G: usize, const W: usize>(
    out: &mut [f32],
    width: usize,
    rows: &RowSources<'_>,
    w: &[f32],
    wide: &impl Chunk<G, W>,
    narrow: &impl Chunk<G, NARROW>,
) {
    let mut x0 = 0;
    while x0 + W <= width {
        run_chunk(out, width, x0, |acc| wide(acc, rows, w, x0));
        x0 += W;
    }
    while x0 < width {
        run_chunk(out, width, x0, |acc| narrow(acc, rows, w, x0));
        x0 += NARROW;
    }
}

/// Loads the accumulators of chunk x0 from the rows of `out`, lets `add`
/// add to them, and stores them back.
#[inline(always)]
fn run_chunk<const G: usize, const W: usize>(
    out: &mut [f32],
    width: usize,
    x0: usize,
    add: impl FnOnce(&mut [[f32; W]; G]),
) {
    let mut acc = [[0.0f32; W]; G];
    for (g, a) in acc.iter_mut().enumerate() {
        a.copy_from_slice(&out[g * width + x0..][..W]);
    }
    add(&mut acc);
    for (g, a) in acc.iter().enumerate() {
        out[g * width + x0..][..W].copy_from_slice(a);
    }
}

/// acc[g][l] += Σ_j Σ_(t, base) w(g, j, t) · padded[j·channel_stride +
/// base + x0 + l] by fused multiply-adds, j then t.
#[inline(always)]
fn accumulate_chunk<const G: usize, const W: usize>(
    acc: &mut [[f32; W]; G],
    rows: &RowSources<'_>,
    w: &[f32],
    x0: usize,
) {
    let mut local = *acc;
    for j in 0..rows.sources {
        let channel = &rows.padded[j * rows.channel_stride + rows.row_start..];
        for &(t, base) in rows.row_taps {
            let s: &[f32; W] = channel[base + x0..][..W].try_into().expect("W cells");
            for (g, a) in local.iter_mut().enumerate() {
                let wv = w[(j * rows.row_taps.len() + t) * G + g];
                for l in 0..W {
                    a[l] = wv.mul_add(s[l], a[l]);
                }
            }
        }
    }
    *acc = local;
}

/// out = conv(input) (+ bias, when given).
pub fn conv_forward(
    grid: Grid,
    shape: ConvShape,
    weight: &[f32],
    bias: Option<&[f32]>,
    input: &[f32],
    out: &mut [f32],
) {
    let offsets = shape.offsets(grid.ndim());
    correlate(
        grid,
        &offsets,
        1,
        (shape.cin, input),
        Weights::OutputsFirst(weight),
        Start::Bias(bias),
        out,
    );
}

/// Given dL/d(out), accumulates dL/dweight into `grad_weight` and dL/dbias
/// into `grad_bias`, and writes dL/d(input) to `grad_input`, each when
/// given.
#[allow(clippy::too_many_arguments)]
pub fn conv_backward(
    grid: Grid,
    shape: ConvShape,
    weight: &[f32],
    input: &[f32],
    grad_out: &[f32],
    grad_weight: Option<&mut [f32]>,
    grad_bias: Option<&mut [f32]>,
    grad_input: Option<&mut [f32]>,
) {
    let (cells, ndim) = (grid.cells(), grid.ndim());
    let offsets = shape.offsets(ndim);
    let taps = offsets.len();
    let work = shape.weights(ndim) * cells;
    let per_out = shape.cin * taps;
    let [nx, ny, nz] = grid.dims;
    for_each_chunk(grad_weight.unwrap_or_default(), per_out, work, |co, gw| {
        // Row by row (the grad_out row stays in L1), one running sum per
        // weight added to `gw` at the end.
        let go = &grad_out[co * cells..(co + 1) * cells];
        let mut acc = vec![0.0f32; per_out];
        for z in 0..nz {
            for y in 0..ny {
                let row = &go[nx * (y + ny * z)..][..nx];
                for ci in 0..shape.cin {
                    let src = &input[ci * cells..(ci + 1) * cells];
                    for (t, &off) in offsets.iter().enumerate() {
                        if let Some((lo, s, len)) = row_segment(grid, y, z, off) {
                            acc[ci * taps + t] += row[lo..lo + len]
                                .iter()
                                .zip(&src[s..s + len])
                                .map(|(g, i)| g * i)
                                .sum::<f32>();
                        }
                    }
                }
            }
        }
        gw.iter_mut().zip(acc.iter()).for_each(|(g, a)| *g += a);
    });
    for (co, gb) in grad_bias.into_iter().flatten().enumerate() {
        *gb += grad_out[co * cells..(co + 1) * cells].iter().sum::<f32>();
    }
    if let Some(grad_input) = grad_input {
        // dL/d(input)[ci][q] = Σ_co Σ_t w(co, ci, t) · grad_out[co][q − off_t].
        correlate(
            grid,
            &offsets,
            -1,
            (shape.cout, grad_out),
            Weights::SourcesFirst(weight),
            Start::Bias(None),
            grad_input,
        );
    }
}

/// The fine rows under coarse row (jy, jz), as the cell index of their
/// x = 0, z outermost: up to 4 in `out` (those inside the fine grid);
/// returns how many. The children of coarse cell (jx, jy, jz) are cells
/// 2jx and 2jx + 1 (when inside) of these rows.
fn child_rows(fine: Grid, jy: usize, jz: usize, out: &mut [usize; 4]) -> usize {
    let [nx, ny, nz] = fine.dims;
    let kz = if fine.ndim() == 3 { 2 } else { 1 };
    let mut count = 0;
    for fz in (kz * jz..kz * jz + kz).filter(|&z| z < nz) {
        for fy in (2 * jy..2 * jy + 2).filter(|&y| y < ny) {
            out[count] = nx * (fy + ny * fz);
            count += 1;
        }
    }
    count
}

/// Calls `f(coarse row, its child rows)` for every row of the coarse grid
/// of `fine`; the children of the row's cell jx are cells 2jx, 2jx + 1
/// (when < nx) of each child row.
fn for_coarse_rows(fine: Grid, mut f: impl FnMut(usize, &[usize])) {
    let [_, cy, cz] = fine.coarse().dims;
    let mut rows = [0; 4];
    for row in 0..cy * cz {
        let count = child_rows(fine, row % cy, row / cy, &mut rows);
        f(row, &rows[..count]);
    }
}

/// The cells 2jx, 2jx + 1 of a fine row of `nx` cells that exist.
fn child_columns(jx: usize, nx: usize) -> std::ops::Range<usize> {
    2 * jx..(2 * jx + 2).min(nx)
}

/// 2× average pooling of `channels` channels (the mean over the children
/// inside the grid).
pub fn pool_forward(fine: Grid, channels: usize, input: &[f32], out: &mut [f32]) {
    let coarse = fine.coarse();
    let (fc, cc, [nx, _, _], cx) = (fine.cells(), coarse.cells(), fine.dims, coarse.dims[0]);
    for_each_chunk(out, cc, channels * fc, |ch, out| {
        let src = &input[ch * fc..(ch + 1) * fc];
        for_coarse_rows(fine, |row, rows| {
            for (jx, o) in out[row * cx..][..cx].iter_mut().enumerate() {
                let columns = child_columns(jx, nx);
                let count = rows.len() * columns.len();
                let sum: f32 = rows
                    .iter()
                    .flat_map(|&r| src[r + columns.start..r + columns.end].iter())
                    .sum();
                *o = sum / count as f32;
            }
        });
    });
}

/// Backward of [`pool_forward`]: each child gets grad_out(parent) / count.
pub fn pool_backward(fine: Grid, channels: usize, grad_out: &[f32], grad_input: &mut [f32]) {
    let coarse = fine.coarse();
    let (fc, cc, [nx, _, _], cx) = (fine.cells(), coarse.cells(), fine.dims, coarse.dims[0]);
    for_each_chunk(grad_input, fc, channels * fc, |ch, gi| {
        let go = &grad_out[ch * cc..(ch + 1) * cc];
        for_coarse_rows(fine, |row, rows| {
            for (jx, &g) in go[row * cx..][..cx].iter().enumerate() {
                let columns = child_columns(jx, nx);
                let share = g / (rows.len() * columns.len()) as f32;
                for &r in rows {
                    gi[r + columns.start..r + columns.end].fill(share);
                }
            }
        });
    });
}

/// Nearest-neighbour 2× upsampling from `fine.coarse()` to `fine`, added
/// to `out`.
pub fn upsample_add(fine: Grid, channels: usize, input: &[f32], out: &mut [f32]) {
    let coarse = fine.coarse();
    let (fc, cc, [nx, _, _], cx) = (fine.cells(), coarse.cells(), fine.dims, coarse.dims[0]);
    for_each_chunk(out, fc, channels * fc, |ch, out| {
        let src = &input[ch * cc..(ch + 1) * cc];
        for_coarse_rows(fine, |row, rows| {
            for &r in rows {
                let fine_row = &mut out[r..r + nx];
                for (pair, &s) in fine_row.chunks_mut(2).zip(&src[row * cx..][..cx]) {
                    pair.iter_mut().for_each(|v| *v += s);
                }
            }
        });
    });
}

/// Backward of [`upsample_add`]: grad_input(parent) = Σ grad_out(children).
pub fn upsample_backward(fine: Grid, channels: usize, grad_out: &[f32], grad_input: &mut [f32]) {
    let coarse = fine.coarse();
    let (fc, cc, [nx, _, _], cx) = (fine.cells(), coarse.cells(), fine.dims, coarse.dims[0]);
    for_each_chunk(grad_input, cc, channels * fc, |ch, gi| {
        let go = &grad_out[ch * fc..(ch + 1) * fc];
        for_coarse_rows(fine, |row, rows| {
            for (jx, g) in gi[row * cx..][..cx].iter_mut().enumerate() {
                let columns = child_columns(jx, nx);
                *g = rows
                    .iter()
                    .flat_map(|&r| go[r + columns.start..r + columns.end].iter())
                    .sum();
            }
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::FORCED;
    use std::sync::atomic::Ordering;

    /// `correlate` against the sum written out, on an asymmetric box of
    /// taps wider than the 3³ convolutions, in both directions, with both
    /// weight layouts and both starts.
    #[test]
    fn correlation_matches_the_sum_written_out() {
        let wave = |k: usize, s: f32| (k as f32 * s).sin();
        for dims in [[21, 9, 7], [45, 6, 1]] {
            let grid = Grid::new(dims);
            let ranges = [[-3, 1], [-1, 2], [0, 2]];
            let taps = Taps::boxed(grid.ndim(), ranges);
            let (outs, sources, cells) = (9, 2, grid.cells());
            let w: Vec<f32> = (0..outs * sources * taps.len())
                .map(|k| wave(k, 0.37))
                .collect();
            let field: Vec<f32> = (0..sources * cells).map(|k| wave(k, 0.71)).collect();
            let initial: Vec<f32> = (0..outs * cells).map(|k| wave(k, 0.19)).collect();
            for sign in [1, -1] {
                for sources_first in [false, true] {
                    let weight = |o: usize, j: usize, t: usize| {
                        let k = if sources_first {
                            (j * outs + o) * taps.len() + t
                        } else {
                            (o * sources + j) * taps.len() + t
                        };
                        w[k]
                    };
                    let mut out = initial.clone();
                    let layout = if sources_first {
                        Weights::SourcesFirst(&w)
                    } else {
                        Weights::OutputsFirst(&w)
                    };
                    correlate(
                        grid,
                        &taps,
                        sign,
                        (sources, &field),
                        layout,
                        Start::Output,
                        &mut out,
                    );
                    for (at, &got) in out.iter().enumerate() {
                        let (o, c) = (at / cells, at % cells);
                        let p = [
                            c % dims[0],
                            (c / dims[0]) % dims[1],
                            c / (dims[0] * dims[1]),
                        ];
                        let mut expected = initial[at] as f64;
                        for j in 0..sources {
                            for (t, off) in taps.iter().enumerate() {
                                let q: Vec<isize> =
                                    (0..3).map(|a| p[a] as isize + sign * off[a]).collect();
                                if (0..3).all(|a| q[a] >= 0 && q[a] < dims[a] as isize) {
                                    let cell = q[0] as usize
                                        + dims[0] * (q[1] as usize + dims[1] * q[2] as usize);
                                    expected +=
                                        weight(o, j, t) as f64 * field[j * cells + cell] as f64;
                                }
                            }
                        }
                        assert!(
                            (got as f64 - expected).abs() < 1e-4,
                            "{dims:?} sign {sign} output {o} cell {c}: {got} vs {expected}"
                        );
                    }
                }
            }
        }
    }

    /// Every vector path gives the baseline's bits: forward (a group of
    /// eight output channels and three lone ones, with bias) and the
    /// transposed convolution, on 2D and 3D grids whose rows end in a
    /// partial chunk.
    #[test]
    fn vector_paths_give_identical_bits() {
        let wave = |k: usize, s: f32| (k as f32 * s).sin();
        for dims in [[37, 5, 4], [70, 3, 1]] {
            let grid = Grid::new(dims);
            let shape = ConvShape {
                cin: 5,
                cout: 11,
                k: 3,
            };
            let weight: Vec<f32> = (0..shape.weights(grid.ndim()))
                .map(|k| wave(k, 0.37))
                .collect();
            let bias: Vec<f32> = (0..shape.cout).map(|k| wave(k, 1.1)).collect();
            let input: Vec<f32> = (0..shape.cin * grid.cells())
                .map(|k| wave(k, 0.71))
                .collect();
            let grad_out: Vec<f32> = (0..shape.cout * grid.cells())
                .map(|k| wave(k, 0.53))
                .collect();
            let passes = || {
                let mut out = vec![0.0; shape.cout * grid.cells()];
                conv_forward(grid, shape, &weight, Some(&bias), &input, &mut out);
                let mut grad_input = vec![0.0; input.len()];
                conv_backward(
                    grid,
                    shape,
                    &weight,
                    &input,
                    &grad_out,
                    None,
                    None,
                    Some(&mut grad_input),
                );
                out.extend(grad_input);
                out.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
            };
            let detected = passes();
            for forced in [1, 2] {
                FORCED.store(forced, Ordering::SeqCst);
                let other = passes();
                FORCED.store(0, Ordering::SeqCst);
                assert_eq!(other, detected, "{dims:?}, forced level {forced}");
            }
        }
    }
}
