//! The network's layers on multi-channel f32 fields over a 2D/3D grid:
//! 3^d and 1×1 convolutions with zero padding at the grid boundary, 2×
//! average pooling and nearest-neighbour upsampling, each with its
//! backward pass. A field with C channels is stored channel-major:
//! `field[c · cells + cell]`, cells in grid order (x fastest).

use crate::parallel::for_each_chunk;

/// A grid: `[nx, ny, nz]` (`nz = 1` in 2D).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    /// Cells per axis.
    pub dims: [usize; 3],
}

impl Grid {
    /// 2 or 3.
    pub fn ndim(&self) -> usize {
        if self.dims[2] > 1 {
            3
        } else {
            2
        }
    }

    /// nx·ny·nz.
    pub fn cells(&self) -> usize {
        self.dims.iter().product()
    }

    /// The grid after 2× coarsening (each axis rounded up; z stays 1 in 2D).
    pub fn coarse(&self) -> Grid {
        let mut dims = self.dims;
        for d in dims.iter_mut().take(self.ndim()) {
            *d = d.div_ceil(2);
        }
        Grid { dims }
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

/// The row segments of a shift by `off`: (destination start, source start,
/// length) such that dst[p] pairs with src[p + off] wherever both exist.
fn shifted_rows(grid: Grid, off: [isize; 3]) -> impl Iterator<Item = (usize, usize, usize)> {
    let [nx, ny, nz] = grid.dims;
    let range = |n: usize, d: isize| {
        let lo = (-d).max(0) as usize;
        let hi = (n as isize - d.max(0)).max(0) as usize;
        lo..hi.max(lo)
    };
    let (xr, yr, zr) = (range(nx, off[0]), range(ny, off[1]), range(nz, off[2]));
    let len = xr.len();
    zr.flat_map(move |z| yr.clone().map(move |y| (y, z)))
        .filter(move |_| len > 0)
        .map(move |(y, z)| {
            let sy = (y as isize + off[1]) as usize;
            let sz = (z as isize + off[2]) as usize;
            let dst = nx * (y + ny * z) + xr.start;
            let src = nx * (sy + ny * sz) + (xr.start as isize + off[0]) as usize;
            (dst, src, len)
        })
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
        out.fill(bias.map_or(0.0, |b| b[co]));
        for ci in 0..shape.cin {
            let src = &input[ci * cells..(ci + 1) * cells];
            for (t, &off) in offsets.iter().enumerate() {
                let w = weight[(co * shape.cin + ci) * taps + t];
                for (dst, s, len) in shifted_rows(grid, off) {
                    let (o, i) = (&mut out[dst..dst + len], &src[s..s + len]);
                    o.iter_mut().zip(i).for_each(|(o, i)| *o += w * i);
                }
            }
        }
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
    for_each_chunk(grad_weight.unwrap_or_default(), per_out, work, |co, gw| {
        let go = &grad_out[co * cells..(co + 1) * cells];
        for ci in 0..shape.cin {
            let src = &input[ci * cells..(ci + 1) * cells];
            for (t, &off) in offsets.iter().enumerate() {
                let mut acc = 0.0f32;
                for (dst, s, len) in shifted_rows(grid, off) {
                    acc += go[dst..dst + len]
                        .iter()
                        .zip(&src[s..s + len])
                        .map(|(g, i)| g * i)
                        .sum::<f32>();
                }
                gw[ci * taps + t] += acc;
            }
        }
    });
    for (co, gb) in grad_bias.into_iter().flatten().enumerate() {
        *gb += grad_out[co * cells..(co + 1) * cells].iter().sum::<f32>();
    }
    if let Some(grad_input) = grad_input {
        for_each_chunk(grad_input, cells, work, |ci, gi| {
            gi.fill(0.0);
            for co in 0..shape.cout {
                let go = &grad_out[co * cells..(co + 1) * cells];
                for (t, &off) in offsets.iter().enumerate() {
                    let w = weight[(co * shape.cin + ci) * taps + t];
                    // out[p] used in[p + off]: gi[p + off] += w · go[p].
                    for (dst, s, len) in shifted_rows(grid, off) {
                        let (g, o) = (&mut gi[s..s + len], &go[dst..dst + len]);
                        g.iter_mut().zip(o).for_each(|(g, o)| *g += w * o);
                    }
                }
            }
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
