//! The fully convolutional direction network (f32), forward and backward.
//!
//! ```text
//! h = conv_first(x)                          3^d, 1 → C, linear
//! for level l = 0 … L−1:
//!     if l > 0: skip_{l−1} = h; h = avgpool2(h)
//!     repeat B times: s = h; h = relu(conv_b(relu(conv_a(h)))) + s
//! for l = L−1 … 1: h = upsample2(h) + skip_{l−1}
//! out = conv_last(h)                         1×1, C → 1, linear
//! ```
//! The residual addition follows the reference Keras code of Kaneda et al.:
//! `relu(conv(x)) + skip`. Non-fluid cells are zero on input and output
//! (the caller masks them). The convolutions have no bias, so the network
//! is positively homogeneous, D(c·r) = c·D(r) for c > 0, and D(0) = 0: a
//! network with biases learns an input-independent component that
//! dominates once the residual no longer looks like the training data, and
//! the conjugate-direction iteration then stalls.

use super::layers::{
    conv_backward, conv_forward, pool_backward, pool_forward, upsample_add, upsample_backward,
    ConvShape, Grid,
};
use crate::error::{Error, Result};
use crate::random::SplitMix;

/// The network's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Architecture {
    /// 2 or 3.
    pub dim: usize,
    /// Channels C of every hidden layer.
    pub channels: usize,
    /// Resolution levels L (1 = no pooling).
    pub levels: usize,
    /// Residual blocks (two convolutions each) per level.
    pub blocks: usize,
    /// `false`: the network N above is the direction, D(r) = N(r) (the
    /// DCDM form). `true`: the activations are dropped, making the network
    /// a linear operator L, and D(r) = Lᵀ L r — symmetric positive
    /// semidefinite, so the conjugate-direction method is preconditioned CG
    /// with a learned preconditioner and keeps CG's convergence guarantees.
    pub symmetric: bool,
}

impl Architecture {
    /// The reference architecture of the DCDM paper: 16 channels, one 2×
    /// pooling level, two residual blocks per level.
    pub fn reference(dim: usize) -> Self {
        Self {
            dim,
            channels: 16,
            levels: 2,
            blocks: 2,
            symmetric: false,
        }
    }

    /// A cheaper multi-level variant for CPUs: 8 channels, 3 levels, one
    /// residual block per level (most work on coarse levels).
    pub fn fast(dim: usize) -> Self {
        Self {
            dim,
            channels: 8,
            levels: 3,
            blocks: 1,
            symmetric: false,
        }
    }

    /// The symmetric variant: D = Lᵀ L with L a linear 4-level network of
    /// 8 channels and one block per level (see [`Architecture::symmetric`]
    /// the field).
    pub fn symmetric(dim: usize) -> Self {
        Self {
            dim,
            channels: 8,
            levels: 4,
            blocks: 1,
            symmetric: true,
        }
    }

    /// The activation: ReLU, or the identity in the symmetric form.
    fn activate(&self, v: f32) -> f32 {
        if self.symmetric {
            v
        } else {
            v.max(0.0)
        }
    }

    /// The derivative of the activation at pre-activation `v` times `g`.
    fn activate_grad(&self, v: f32, g: f32) -> f32 {
        if self.symmetric || v > 0.0 {
            g
        } else {
            0.0
        }
    }

    fn check(&self) -> Result<()> {
        if !(self.dim == 2 || self.dim == 3) {
            return Err(Error::invalid(
                "dim",
                format!("dim = {} must be 2 or 3", self.dim),
            ));
        }
        if self.channels == 0
            || self.levels == 0
            || self.channels > Self::MAX_CHANNELS
            || self.levels > Self::MAX_LEVELS
            || self.blocks > Self::MAX_BLOCKS
        {
            return Err(Error::invalid(
                "architecture",
                format!(
                    "channels = {} must be in 1..={}, levels = {} in 1..={} and blocks = {} in 0..={}",
                    self.channels,
                    Self::MAX_CHANNELS,
                    self.levels,
                    Self::MAX_LEVELS,
                    self.blocks,
                    Self::MAX_BLOCKS
                ),
            ));
        }
        Ok(())
    }

    /// Bounds of [`Architecture::channels`], [`Architecture::levels`] and
    /// [`Architecture::blocks`]: with them a network has at most
    /// 2 + 2·8·64 = 1 026 convolutions, so no size derived from an
    /// architecture (for instance one read from a file) can overflow.
    pub const MAX_CHANNELS: usize = 256;
    /// See [`Architecture::MAX_CHANNELS`].
    pub const MAX_LEVELS: usize = 8;
    /// See [`Architecture::MAX_CHANNELS`].
    pub const MAX_BLOCKS: usize = 64;

    /// The convolutions and where their weights start in the flat
    /// parameter vector, and that vector's length, after checking the
    /// architecture's bounds.
    pub(crate) fn layout(&self) -> Result<(Vec<ConvParams>, usize)> {
        self.check()?;
        let mut convs = Vec::new();
        let mut len = 0;
        for shape in self.convs() {
            convs.push(ConvParams { shape, weight: len });
            len += shape.weights(self.dim);
        }
        Ok((convs, len))
    }

    /// The convolutions in order: first, (a, b) per block per level, last.
    pub(crate) fn convs(&self) -> Vec<ConvShape> {
        let c = self.channels;
        let mut out = vec![ConvShape {
            cin: 1,
            cout: c,
            k: 3,
        }];
        for _ in 0..self.levels * self.blocks * 2 {
            out.push(ConvShape {
                cin: c,
                cout: c,
                k: 3,
            });
        }
        out.push(ConvShape {
            cin: c,
            cout: 1,
            k: 1,
        });
        out
    }
}

/// Where one convolution's weights live in the flat parameter vector.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvParams {
    pub shape: ConvShape,
    pub weight: usize,
}

/// A network: architecture and flat f32 parameters.
#[derive(Debug, Clone)]
pub struct Network {
    arch: Architecture,
    convs: Vec<ConvParams>,
    params: Vec<f32>,
}

/// Intermediate values of one forward pass, kept for the backward pass.
#[derive(Debug, Default)]
pub struct Tape {
    input: Vec<f32>,
    first: Vec<f32>,
    /// Per block, in order: block input, relu(conv_a), conv_a pre-activation,
    /// conv_b pre-activation.
    blocks: Vec<[Vec<f32>; 4]>,
    skips: Vec<Vec<f32>>,
    last_input: Vec<f32>,
}

impl Network {
    /// A network with He-initialised weights (seeded).
    pub fn new(arch: Architecture, seed: u64) -> Result<Self> {
        let (convs, len) = arch.layout()?;
        let mut params = vec![0.0f32; len];
        let mut rng = SplitMix(seed);
        for c in &convs {
            let fan_in = (c.shape.cin * c.shape.taps(arch.dim)) as f64;
            let scale = (2.0 / fan_in).sqrt();
            for w in &mut params[c.weight..c.weight + c.shape.weights(arch.dim)] {
                *w = (scale * rng.normal()) as f32;
            }
        }
        Ok(Self {
            arch,
            convs,
            params,
        })
    }

    /// A network with the given flat parameters (in the order of
    /// [`Network::params`]); their count must match the architecture.
    pub fn from_params(arch: Architecture, params: Vec<f32>) -> Result<Self> {
        let (convs, len) = arch.layout()?;
        Error::check_len("params", len, params.len())?;
        Ok(Self {
            arch,
            convs,
            params,
        })
    }

    /// The architecture.
    pub fn architecture(&self) -> Architecture {
        self.arch
    }

    /// The flat parameters.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// The flat parameters, for an optimiser.
    pub fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }

    pub(crate) fn conv_params(&self) -> &[ConvParams] {
        &self.convs
    }

    pub(crate) fn weight(&self, c: &ConvParams) -> &[f32] {
        &self.params[c.weight..c.weight + c.shape.weights(self.arch.dim)]
    }

    pub(crate) fn check_grid(&self, grid: Grid, len: usize) -> Result<()> {
        if grid.ndim() != self.arch.dim {
            return Err(Error::invalid(
                "grid",
                format!(
                    "a {}D network cannot run on the grid {:?}",
                    self.arch.dim, grid.dims
                ),
            ));
        }
        Error::check_len("input", grid.cells(), len)
    }

    fn conv(&self, k: usize, grid: Grid, input: &[f32]) -> Vec<f32> {
        let c = &self.convs[k];
        let mut out = vec![0.0; c.shape.cout * grid.cells()];
        conv_forward(grid, c.shape, self.weight(c), None, input, &mut out);
        out
    }

    /// The network applied to a one-channel field on `grid`; the tape keeps
    /// what [`Network::backward`] needs.
    pub fn forward(&self, grid: Grid, input: &[f32], tape: &mut Tape) -> Result<Vec<f32>> {
        self.check_grid(grid, input.len())?;
        let c = self.arch.channels;
        tape.input = input.to_vec();
        tape.blocks.clear();
        tape.skips.clear();
        let mut h = self.conv(0, grid, input);
        tape.first = h.clone();
        let mut level_grid = grid;
        let mut k = 1;
        for level in 0..self.arch.levels {
            if level > 0 {
                let mut pooled = vec![0.0; c * level_grid.coarse().cells()];
                pool_forward(level_grid, c, &h, &mut pooled);
                tape.skips.push(std::mem::replace(&mut h, pooled));
                level_grid = level_grid.coarse();
            }
            for _ in 0..self.arch.blocks {
                let a_pre = self.conv(k, level_grid, &h);
                let a: Vec<f32> = a_pre.iter().map(|&v| self.arch.activate(v)).collect();
                let b_pre = self.conv(k + 1, level_grid, &a);
                let next: Vec<f32> = b_pre
                    .iter()
                    .zip(&h)
                    .map(|(&b, s)| self.arch.activate(b) + s)
                    .collect();
                tape.blocks
                    .push([std::mem::replace(&mut h, next), a, a_pre, b_pre]);
                k += 2;
            }
        }
        for level in (1..self.arch.levels).rev() {
            let fine = self.level_grid(grid, level - 1);
            let mut up = tape.skips[level - 1].clone();
            upsample_add(fine, c, &h, &mut up);
            h = up;
        }
        let out = self.conv(k, grid, &h);
        tape.last_input = h;
        Ok(out)
    }

    fn level_grid(&self, grid: Grid, level: usize) -> Grid {
        (0..level).fold(grid, |g, _| g.coarse())
    }

    /// Given dL/d(out) for the forward pass recorded in `tape`, adds
    /// dL/dparams to `grad` (same layout as [`Network::params`]).
    pub fn backward(&self, grid: Grid, tape: &Tape, grad_out: &[f32], grad: &mut [f32]) {
        self.backward_to(grid, tape, grad_out, Some(grad), None);
    }

    /// [`Network::backward`] that also, or only, writes dL/d(input) to
    /// `grad_input` (one channel on `grid`). For the linear network of the
    /// symmetric form this is the transpose Lᵀ applied to `grad_out`.
    pub fn backward_to(
        &self,
        grid: Grid,
        tape: &Tape,
        grad_out: &[f32],
        mut grad: Option<&mut [f32]>,
        grad_input: Option<&mut [f32]>,
    ) {
        let c = self.arch.channels;
        let last = self.convs.len() - 1;
        let mut g = vec![0.0; c * grid.cells()];
        self.conv_grad(
            last,
            grid,
            &tape.last_input,
            grad_out,
            grad.as_deref_mut(),
            Some(&mut g),
        );
        // Upsampling path, undone from the finest level down.
        let mut skip_grads = Vec::with_capacity(self.arch.levels);
        for level in 1..self.arch.levels {
            let fine = self.level_grid(grid, level - 1);
            let mut coarse = vec![0.0; c * fine.coarse().cells()];
            upsample_backward(fine, c, &g, &mut coarse);
            skip_grads.push(std::mem::replace(&mut g, coarse));
        }
        let mut k = 1 + 2 * self.arch.levels * self.arch.blocks;
        let mut block = tape.blocks.len();
        for level in (0..self.arch.levels).rev() {
            let level_grid = self.level_grid(grid, level);
            for _ in 0..self.arch.blocks {
                block -= 1;
                k -= 2;
                let [input, a, a_pre, b_pre] = &tape.blocks[block];
                let g_b: Vec<f32> = g
                    .iter()
                    .zip(b_pre)
                    .map(|(&g, &b)| self.arch.activate_grad(b, g))
                    .collect();
                let mut g_a = vec![0.0; g.len()];
                self.conv_grad(
                    k + 1,
                    level_grid,
                    a,
                    &g_b,
                    grad.as_deref_mut(),
                    Some(&mut g_a),
                );
                g_a.iter_mut()
                    .zip(a_pre)
                    .for_each(|(g, &a)| *g = self.arch.activate_grad(a, *g));
                let mut g_in = vec![0.0; g.len()];
                self.conv_grad(
                    k,
                    level_grid,
                    input,
                    &g_a,
                    grad.as_deref_mut(),
                    Some(&mut g_in),
                );
                g_in.iter_mut().zip(&g).for_each(|(gi, gs)| *gi += gs);
                g = g_in;
            }
            if level > 0 {
                let fine = self.level_grid(grid, level - 1);
                let mut g_fine = vec![0.0; c * fine.cells()];
                pool_backward(fine, c, &g, &mut g_fine);
                g_fine
                    .iter_mut()
                    .zip(&skip_grads[level - 1])
                    .for_each(|(a, b)| *a += b);
                g = g_fine;
            }
        }
        self.conv_grad(0, grid, &tape.input, &g, grad, grad_input);
    }

    fn conv_grad(
        &self,
        k: usize,
        grid: Grid,
        input: &[f32],
        grad_out: &[f32],
        grad: Option<&mut [f32]>,
        grad_input: Option<&mut [f32]>,
    ) {
        let c = self.convs[k];
        let nw = c.shape.weights(self.arch.dim);
        conv_backward(
            grid,
            c.shape,
            self.weight(&c),
            input,
            grad_out,
            grad.map(|g| &mut g[c.weight..c.weight + nw]),
            None,
            grad_input,
        );
    }
}

/// Preallocated activations for [`Network::infer`]: after the first call
/// on a grid, inference allocates nothing.
#[derive(Debug, Default)]
pub struct Workspace {
    dims: [usize; 3],
    /// Per level: the running activation h (on level l − 1 it is also the
    /// skip of level l), and two scratch fields.
    levels: Vec<[Vec<f32>; 3]>,
    out: Vec<f32>,
}

impl Network {
    /// The network applied to a one-channel field on `grid`, for inference:
    /// the same result as [`Network::forward`] without recording a tape,
    /// in buffers of `workspace` (allocated on the first call for a grid).
    pub fn infer<'w>(
        &self,
        grid: Grid,
        input: &[f32],
        workspace: &'w mut Workspace,
    ) -> Result<&'w [f32]> {
        self.check_grid(grid, input.len())?;
        if workspace.dims != grid.dims || workspace.levels.len() != self.arch.levels {
            workspace.dims = grid.dims;
            workspace.levels = self.level_buffers(grid, 0);
            workspace.out = vec![0.0; grid.cells()];
        }
        let Workspace { levels, out, .. } = workspace;
        self.conv_into(0, grid, input, &mut levels[0][0]);
        self.forward_levels(grid, levels, 0);
        self.conv_into(self.convs.len() - 1, grid, &levels[0][0], out);
        Ok(out)
    }

    /// The buffers of [`Workspace::levels`] for `grid` (the finest level's),
    /// empty below level `from`, which the passes from `from` never touch.
    pub(crate) fn level_buffers(&self, grid: Grid, from: usize) -> Vec<[Vec<f32>; 3]> {
        (0..self.arch.levels)
            .map(|l| {
                let cells = if l < from {
                    0
                } else {
                    self.arch.channels * self.level_grid(grid, l).cells()
                };
                [vec![0.0; cells], vec![0.0; cells], vec![0.0; cells]]
            })
            .collect()
    }

    /// y = conv_k(x) on `grid`.
    pub(crate) fn conv_into(&self, k: usize, grid: Grid, x: &[f32], y: &mut [f32]) {
        let p = &self.convs[k];
        conv_forward(grid, p.shape, self.weight(p), None, x, y);
    }

    /// x = conv_kᵀ(y) on `grid` (the convolution's input gradient).
    pub(crate) fn conv_transpose_into(&self, k: usize, grid: Grid, y: &[f32], x: &mut [f32]) {
        let p = &self.convs[k];
        conv_backward(grid, p.shape, self.weight(p), &[], y, None, None, Some(x));
    }

    /// The index of convolution a of block `block` on `level` (b is next).
    pub(crate) fn block_conv(&self, level: usize, block: usize) -> usize {
        1 + 2 * (level * self.arch.blocks + block)
    }

    /// Levels `from..L` of the forward pass in workspace buffers (see
    /// [`Workspace`]): `levels[from][0]` holds the level's input on entry
    /// and its output, the residual blocks and the upsampled coarser
    /// levels added, on return. `grid` is the finest level's.
    pub(crate) fn forward_levels(&self, grid: Grid, levels: &mut [[Vec<f32>; 3]], from: usize) {
        let c = self.arch.channels;
        for level in from..self.arch.levels {
            let level_grid = self.level_grid(grid, level);
            if level > from {
                let (finer, here) = levels.split_at_mut(level);
                pool_forward(
                    self.level_grid(grid, level - 1),
                    c,
                    &finer[level - 1][0],
                    &mut here[0][0],
                );
            }
            let [h, a, b] = &mut levels[level];
            for block in 0..self.arch.blocks {
                let k = self.block_conv(level, block);
                self.conv_into(k, level_grid, h, a);
                a.iter_mut().for_each(|v| *v = self.arch.activate(*v));
                self.conv_into(k + 1, level_grid, a, b);
                h.iter_mut()
                    .zip(b.iter())
                    .for_each(|(h, &b)| *h += self.arch.activate(b));
            }
        }
        for level in (from + 1..self.arch.levels).rev() {
            let (finer, here) = levels.split_at_mut(level);
            upsample_add(
                self.level_grid(grid, level - 1),
                c,
                &here[0][0],
                &mut finer[level - 1][0],
            );
        }
    }

    /// The transpose of [`Network::forward_levels`] for the linear network
    /// of the symmetric form: `levels[from][0]` holds a field at the
    /// level's output on entry, its image under the transpose on return.
    pub(crate) fn transpose_levels(&self, grid: Grid, levels: &mut [[Vec<f32>; 3]], from: usize) {
        let c = self.arch.channels;
        // The upsampling path: each level's skip gradient, coarser and coarser.
        for level in from + 1..self.arch.levels {
            let (finer, here) = levels.split_at_mut(level);
            let fine = self.level_grid(grid, level - 1);
            upsample_backward(fine, c, &finer[level - 1][0], &mut here[0][0]);
        }
        for level in (from..self.arch.levels).rev() {
            let level_grid = self.level_grid(grid, level);
            let (here, coarser) = levels.split_at_mut(level + 1);
            let [h, a, b] = &mut here[level];
            if let Some(coarser) = coarser.first() {
                pool_backward(level_grid, c, &coarser[0], a);
                h.iter_mut().zip(a.iter()).for_each(|(h, a)| *h += a);
            }
            // (I + W_b W_a)ᵀ = I + W_aᵀ W_bᵀ, blocks in reverse order.
            for block in (0..self.arch.blocks).rev() {
                let k = self.block_conv(level, block);
                self.conv_transpose_into(k + 1, level_grid, h, a);
                self.conv_transpose_into(k, level_grid, a, b);
                h.iter_mut().zip(b.iter()).for_each(|(h, b)| *h += b);
            }
        }
    }
}

impl Network {
    /// The direction D(input) of the conjugate-direction method: the
    /// network's output in the direct form, Lᵀ L input in the symmetric
    /// form (Lᵀ runs the layers' transposes in reverse order). Buffers as
    /// in [`Network::infer`]: no allocation after the first call on a grid.
    pub fn direction<'w>(
        &self,
        grid: Grid,
        input: &[f32],
        workspace: &'w mut Workspace,
    ) -> Result<&'w [f32]> {
        self.infer(grid, input, workspace)?;
        if !self.arch.symmetric {
            return Ok(&workspace.out);
        }
        let Workspace { levels, out, .. } = workspace;
        let last = self.convs.len() - 1;
        self.conv_transpose_into(last, grid, out, &mut levels[0][0]);
        self.transpose_levels(grid, levels, 0);
        self.conv_transpose_into(0, grid, &levels[0][0], out);
        Ok(out)
    }
}
