//! The network's layers on multi-channel f32 fields over a 2D/3D grid:
//! 3^d and 1×1 convolutions with zero padding at the grid boundary, 2×
//! average pooling and nearest-neighbour upsampling, each with its
//! backward pass. A field with C channels is stored channel-major:
//! `field[c · cells + cell]`, cells in grid order (x fastest).

use crate::parallel::for_each_chunk;

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

    /// The (dx, dy, dz) offset of each tap, z outermost, x innermost (in
    /// a fixed array: no allocation per call).
    fn offsets(&self, ndim: usize) -> Taps {
        let r = (self.k / 2) as isize;
        let zr = if ndim == 3 { r } else { 0 };
        let mut out = Taps {
            offsets: [[0; 3]; 27],
            len: 0,
        };
        for dz in -zr..=zr {
            for dy in -r..=r {
                for dx in -r..=r {
                    out.offsets[out.len] = [dx, dy, dz];
                    out.len += 1;
                }
            }
        }
        out
    }
}

/// The tap offsets of a kernel of size ≤ 3 (at most 27).
struct Taps {
    offsets: [[isize; 3]; 27],
    len: usize,
}

impl std::ops::Deref for Taps {
    type Target = [[isize; 3]];
    fn deref(&self) -> &[[isize; 3]] {
        &self.offsets[..self.len]
    }
}

/// In output row (y, z), the segment pairing x with source x + off[0] in
/// row (y + off[1], z + off[2]): (first x, source cell index, length), or
/// None when the segment lies outside the grid.
fn row_segment(grid: Grid, y: usize, z: usize, off: [isize; 3]) -> Option<(usize, usize, usize)> {
    let [nx, ny, nz] = grid.dims;
    let (sy, sz) = (y as isize + off[1], z as isize + off[2]);
    if sy < 0 || sy >= ny as isize || sz < 0 || sz >= nz as isize {
        return None;
    }
    let lo = (-off[0]).max(0) as usize;
    let hi = (nx as isize - off[0].max(0)).max(0) as usize;
    (hi > lo).then(|| {
        let src = nx * (sy as usize + ny * sz as usize) + (lo as isize + off[0]) as usize;
        (lo, src, hi - lo)
    })
}

/// One output channel: out[p] = init + Σ_j Σ_t w(j, t) · field_j[p + sign ·
/// off_t] over the `sources` channels of `field`, row by row so that the
/// output row stays in L1 while every source channel and tap adds to it.
#[allow(clippy::too_many_arguments)]
fn correlate_channel(
    grid: Grid,
    offsets: &Taps,
    sign: isize,
    sources: usize,
    field: &[f32],
    weight: impl Fn(usize, usize) -> f32,
    init: f32,
    out: &mut [f32],
) {
    let [nx, ny, nz] = grid.dims;
    let cells = grid.cells();
    for z in 0..nz {
        for y in 0..ny {
            let row = &mut out[nx * (y + ny * z)..][..nx];
            row.fill(init);
            for j in 0..sources {
                let src = &field[j * cells..(j + 1) * cells];
                for (t, off) in offsets.iter().enumerate() {
                    let off = off.map(|o| sign * o);
                    if let Some((lo, s, len)) = row_segment(grid, y, z, off) {
                        let w = weight(j, t);
                        row[lo..lo + len]
                            .iter_mut()
                            .zip(&src[s..s + len])
                            .for_each(|(o, i)| *o += w * i);
                    }
                }
            }
        }
    }
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
    let (cells, ndim) = (grid.cells(), grid.ndim());
    let offsets = shape.offsets(ndim);
    let taps = offsets.len();
    let work = shape.weights(ndim) * cells;
    for_each_chunk(out, cells, work, |co, out| {
        let w = |ci: usize, t: usize| weight[(co * shape.cin + ci) * taps + t];
        let init = bias.map_or(0.0, |b| b[co]);
        correlate_channel(grid, &offsets, 1, shape.cin, input, w, init, out);
    });
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
        for_each_chunk(grad_input, cells, work, |ci, gi| {
            let w = |co: usize, t: usize| weight[(co * shape.cin + ci) * taps + t];
            correlate_channel(grid, &offsets, -1, shape.cout, grad_out, w, 0.0, gi);
        });
    }
}

/// The children of coarse cell `c` (those inside the fine grid): up to 8
/// cell indices in `out`; returns how many.
fn children(fine: Grid, coarse: Grid, c: usize, out: &mut [usize; 8]) -> usize {
    let [cx, cy] = [coarse.dims[0], coarse.dims[1]];
    let p = [c % cx, (c / cx) % cy, c / (cx * cy)];
    let mut count = 0;
    let kz = if fine.ndim() == 3 { 2 } else { 1 };
    for k in 0..kz {
        for j in 0..2 {
            for i in 0..2 {
                let f = [
                    2 * p[0] + i,
                    2 * p[1] + j,
                    if kz == 2 { 2 * p[2] + k } else { 0 },
                ];
                if f[0] < fine.dims[0] && f[1] < fine.dims[1] && f[2] < fine.dims[2] {
                    out[count] = f[0] + fine.dims[0] * (f[1] + fine.dims[1] * f[2]);
                    count += 1;
                }
            }
        }
    }
    count
}

/// 2× average pooling of `channels` channels (the mean over the children
/// inside the grid).
pub fn pool_forward(fine: Grid, channels: usize, input: &[f32], out: &mut [f32]) {
    let coarse = fine.coarse();
    let (fc, cc) = (fine.cells(), coarse.cells());
    for_each_chunk(out, cc, channels * fc, |ch, out| {
        let src = &input[ch * fc..(ch + 1) * fc];
        let mut kids = [0; 8];
        for (c, o) in out.iter_mut().enumerate() {
            let k = children(fine, coarse, c, &mut kids);
            *o = kids[..k].iter().map(|&f| src[f]).sum::<f32>() / k as f32;
        }
    });
}

/// Backward of [`pool_forward`]: each child gets grad_out(parent) / count.
pub fn pool_backward(fine: Grid, channels: usize, grad_out: &[f32], grad_input: &mut [f32]) {
    let coarse = fine.coarse();
    let (fc, cc) = (fine.cells(), coarse.cells());
    for_each_chunk(grad_input, fc, channels * fc, |ch, gi| {
        let go = &grad_out[ch * cc..(ch + 1) * cc];
        let mut kids = [0; 8];
        for (c, g) in go.iter().enumerate() {
            let k = children(fine, coarse, c, &mut kids);
            let share = g / k as f32;
            for &f in &kids[..k] {
                gi[f] = share;
            }
        }
    });
}

/// Nearest-neighbour 2× upsampling from `fine.coarse()` to `fine`, added
/// to `out`.
pub fn upsample_add(fine: Grid, channels: usize, input: &[f32], out: &mut [f32]) {
    let coarse = fine.coarse();
    let (fc, cc) = (fine.cells(), coarse.cells());
    for_each_chunk(out, fc, channels * fc, |ch, out| {
        let src = &input[ch * cc..(ch + 1) * cc];
        let mut kids = [0; 8];
        for (c, s) in src.iter().enumerate() {
            let k = children(fine, coarse, c, &mut kids);
            for &f in &kids[..k] {
                out[f] += s;
            }
        }
    });
}

/// Backward of [`upsample_add`]: grad_input(parent) = Σ grad_out(children).
pub fn upsample_backward(fine: Grid, channels: usize, grad_out: &[f32], grad_input: &mut [f32]) {
    let coarse = fine.coarse();
    let (fc, cc) = (fine.cells(), coarse.cells());
    for_each_chunk(grad_input, cc, channels * fc, |ch, gi| {
        let go = &grad_out[ch * fc..(ch + 1) * fc];
        let mut kids = [0; 8];
        for (c, g) in gi.iter_mut().enumerate() {
            let k = children(fine, coarse, c, &mut kids);
            *g = kids[..k].iter().map(|&f| go[f]).sum();
        }
    });
}
