//! Inference of the symmetric network with its finest level contracted
//! into single kernels.
//!
//! The symmetric network is linear:
//! `L r = w·M₀F r + w·U Q(P M₀F r)`, with F the first convolution
//! (1 → C), M₀ = Π_b (I + W_b W_a) the finest level's residual blocks,
//! P the 2× average pooling, Q the coarser levels, U the upsampling and w
//! the last (1×1, C → 1) convolution. The finest level carries most of the
//! work (in 3D with 8 channels and one block: 3 680 of about 4 170
//! multiply-adds per fine cell of one pass), yet as a map from one channel
//! it is small once multiplied out:
//!
//! - K = w·M₀F is one single-channel correlation of (2R + 1)ᵈ taps, R = 1 + 2B;
//! - E = P M₀F is a stride-2 correlation from one channel to C. Split by
//!   the parity p ∈ {0, 1}ᵈ of the fine cell (the phases r_p[J] = r[2J + p]
//!   on the coarse grid), it is Σ_p E_p r_p with E_p an ordinary
//!   correlation on the coarse grid of (R + 1)ᵈ taps.
//!
//! So L r = K r + w·U Q(Σ_p E_p r_p) and D r = Lᵀ L r with the transposes
//! in reverse order; in 3D with 8 channels and one block a pass costs
//! 343 + 512 multiply-adds per fine cell on the finest level instead of
//! 3 680.
//!
//! The contraction pads the finest level's input with zeros once, where the
//! network pads each layer's: within R cells of the grid's edge K r and
//! E r differ from the layer-by-layer network, and the pooling of an
//! odd-sized axis's last coarse cell divides by 2ᵈ (the network: by the
//! children inside the grid). D stays symmetric positive semidefinite, so
//! the conjugate-direction method stays preconditioned CG; its iteration
//! counts are measured against the layer-by-layer network in the tests.

use super::layers::{
    correlate, upsample_add, upsample_backward, ConvShape, Grid, Start, Taps, Weights,
};
use super::network::Network;
use crate::error::{Error, Result};
use crate::parallel::for_each_chunk;

/// A multi-channel correlation kernel in f64: `w[(o·cin + i)·taps + t]`
/// over the box [−radius, radius]ᵈ of taps (z outermost, x innermost).
#[derive(Debug, Clone)]
struct Stencil {
    ndim: usize,
    cout: usize,
    cin: usize,
    radius: isize,
    w: Vec<f64>,
}

impl Stencil {
    fn zeros(ndim: usize, cout: usize, cin: usize, radius: isize) -> Self {
        let taps = (2 * radius as usize + 1).pow(ndim as u32);
        Self {
            ndim,
            cout,
            cin,
            radius,
            w: vec![0.0; cout * cin * taps],
        }
    }

    /// The network's convolution `shape` with weights `w`.
    fn of_conv(ndim: usize, shape: ConvShape, w: &[f32]) -> Self {
        Self {
            ndim,
            cout: shape.cout,
            cin: shape.cin,
            radius: (shape.k / 2) as isize,
            w: w.iter().map(|&v| v as f64).collect(),
        }
    }

    fn taps(&self) -> usize {
        (2 * self.radius as usize + 1).pow(self.ndim as u32)
    }

    /// The offsets of the taps, in order.
    fn offsets(&self) -> Taps {
        let r = self.radius;
        Taps::boxed(self.ndim, [[-r, r]; 3])
    }

    /// The index of offset `off` (inside the box).
    fn tap_index(&self, off: [isize; 3]) -> usize {
        let side = 2 * self.radius + 1;
        let z = if self.ndim == 3 {
            off[2] + self.radius
        } else {
            0
        };
        ((z * side + off[1] + self.radius) * side + off[0] + self.radius) as usize
    }

    /// The weight of (o, i) at offset `off`, 0 outside the box.
    fn at(&self, o: usize, i: usize, off: [isize; 3]) -> f64 {
        let r = self.radius;
        let inside = off[0].abs() <= r
            && off[1].abs() <= r
            && (self.ndim == 2 && off[2] == 0 || self.ndim == 3 && off[2].abs() <= r);
        if inside {
            self.w[(o * self.cin + i) * self.taps() + self.tap_index(off)]
        } else {
            0.0
        }
    }

    /// outer ∘ inner: Σ_a outer(p + a) · Σ_b inner(p + a + b) has taps a + b.
    fn then(&self, outer: &Stencil) -> Stencil {
        let mut out = Stencil::zeros(self.ndim, outer.cout, self.cin, self.radius + outer.radius);
        let (inner_offsets, outer_offsets) = (self.offsets(), outer.offsets());
        let taps = out.taps();
        for o in 0..outer.cout {
            for m in 0..outer.cin {
                for (ta, a) in outer_offsets.iter().enumerate() {
                    let wa = outer.w[(o * outer.cin + m) * outer.taps() + ta];
                    for i in 0..self.cin {
                        for (tb, b) in inner_offsets.iter().enumerate() {
                            let wb = self.w[(m * self.cin + i) * self.taps() + tb];
                            let t = out.tap_index([a[0] + b[0], a[1] + b[1], a[2] + b[2]]);
                            out.w[(o * self.cin + i) * taps + t] += wa * wb;
                        }
                    }
                }
            }
        }
        out
    }

    /// self + other, on the larger box.
    fn plus(&self, other: &Stencil) -> Stencil {
        let radius = self.radius.max(other.radius);
        let mut out = Stencil::zeros(self.ndim, self.cout, self.cin, radius);
        let taps = out.taps();
        for (t, off) in out.offsets().iter().enumerate() {
            for o in 0..self.cout {
                for i in 0..self.cin {
                    out.w[(o * self.cin + i) * taps + t] =
                        self.at(o, i, *off) + other.at(o, i, *off);
                }
            }
        }
        out
    }
}

/// One parity p of the fine cells: E_p, C outputs from the phase r_p,
/// over the taps `ranges` (the phases are held in the order of
/// [`phase_index`]).
#[derive(Debug)]
struct Phase {
    ranges: [[isize; 2]; 3],
    /// [C][1][taps], f32.
    weights: Vec<f32>,
}

/// The symmetric network with its finest level contracted, and the
/// buffers of one application (allocated on the first call for a grid).
#[derive(Debug)]
pub(crate) struct Contracted<'n> {
    network: &'n Network,
    radius: isize,
    /// K, [1][1][(2R + 1)ᵈ], f32.
    k: Vec<f32>,
    phases: Vec<Phase>,
    /// Eᵀ in one correlation, phase images from the C channels: the E_p
    /// over the union of their tap boxes (zero where a phase has no tap),
    /// [phase][C][taps], so that it runs as one group of outputs.
    transposed: Phase,
    buffers: Buffers,
}

/// Per-call fields: the network's levels ≥ 1 (level 0 is never used), the
/// phases of the input and their images under Eᵀ (phase after phase, in
/// the order of [`phase_index`]), the coarse single-channel field w·h₁,
/// L r and Lᵀ L r.
#[derive(Debug, Default)]
struct Buffers {
    dims: [usize; 3],
    levels: Vec<[Vec<f32>; 3]>,
    phases: Vec<f32>,
    phase_images: Vec<f32>,
    coarse: Vec<f32>,
    lr: Vec<f32>,
    out: Vec<f32>,
}

impl<'n> Contracted<'n> {
    /// Whether `network` can be contracted: the symmetric form (linear)
    /// with at most one block per level (K within 7ᵈ taps).
    pub(crate) fn applies(network: &Network) -> bool {
        let arch = network.architecture();
        arch.symmetric && arch.blocks <= 1
    }

    /// K and the E_p of `network`; fails unless [`Contracted::applies`].
    pub(crate) fn new(network: &'n Network) -> Result<Self> {
        if !Self::applies(network) {
            return Err(Error::invalid(
                "model",
                "only a symmetric network with at most one block per level can be contracted",
            ));
        }
        let arch = network.architecture();
        let ndim = arch.dim;
        let convs = network.conv_params();
        let stencil = |k: usize| Stencil::of_conv(ndim, convs[k].shape, network.weight(&convs[k]));
        // G = M₀ F, then K = w·G.
        let mut g = stencil(0);
        for block in 0..arch.blocks {
            let a = network.block_conv(0, block);
            g = g.plus(&g.then(&stencil(a)).then(&stencil(a + 1)));
        }
        let k = g.then(&stencil(convs.len() - 1));
        let radius = g.radius;
        let phases = if arch.levels > 1 {
            pooled_phases(&g)
        } else {
            Vec::new()
        };
        let transposed = all_phases(ndim, &phases);
        Ok(Self {
            network,
            radius,
            k: k.w.iter().map(|&v| v as f32).collect(),
            phases,
            transposed,
            buffers: Buffers::default(),
        })
    }

    /// D(input) = Lᵀ L input on `grid` (the caller masks non-fluid cells).
    pub(crate) fn direction(&mut self, grid: Grid, input: &[f32]) -> Result<&[f32]> {
        self.network.check_grid(grid, input.len())?;
        self.prepare(grid);
        self.forward(grid, input);
        self.transpose(grid);
        Ok(&self.buffers.out)
    }

    /// The taps of K.
    fn k_taps(&self, grid: Grid) -> Taps {
        let r = self.radius;
        Taps::boxed(grid.ndim(), [[-r, r]; 3])
    }

    /// buffers.lr = L input = K input + w·U Q(Σ_p E_p input_p).
    fn forward(&mut self, grid: Grid, input: &[f32]) {
        let k_taps = self.k_taps(grid);
        let b = &mut self.buffers;
        correlate(
            grid,
            &k_taps,
            1,
            (1, input),
            Weights::OutputsFirst(&self.k),
            Start::Bias(None),
            &mut b.lr,
        );
        if self.phases.is_empty() {
            return;
        }
        let coarse = grid.coarse();
        gather_phases(grid, input, &mut b.phases);
        for (n, (phase, field)) in self
            .phases
            .iter()
            .zip(b.phases.chunks_exact(coarse.cells()))
            .enumerate()
        {
            let taps = Taps::boxed(grid.ndim(), phase.ranges);
            let start = if n == 0 {
                Start::Bias(None)
            } else {
                Start::Output
            };
            correlate(
                coarse,
                &taps,
                1,
                (1, field),
                Weights::OutputsFirst(&phase.weights),
                start,
                &mut b.levels[1][0],
            );
        }
        self.network.forward_levels(grid, &mut b.levels, 1);
        let last = self.network.conv_params().len() - 1;
        self.network
            .conv_into(last, coarse, &b.levels[1][0], &mut b.coarse);
        upsample_add(grid, 1, &b.coarse, &mut b.lr);
    }

    /// buffers.out = Lᵀ buffers.lr: the maps of [`Contracted::forward`]
    /// transposed, in reverse order (buffers.lr is kept).
    fn transpose(&mut self, grid: Grid) {
        let k_taps = self.k_taps(grid);
        let b = &mut self.buffers;
        correlate(
            grid,
            &k_taps,
            -1,
            (1, &b.lr),
            Weights::OutputsFirst(&self.k),
            Start::Bias(None),
            &mut b.out,
        );
        if self.phases.is_empty() {
            return;
        }
        let coarse = grid.coarse();
        let last = self.network.conv_params().len() - 1;
        upsample_backward(grid, 1, &b.lr, &mut b.coarse);
        self.network
            .conv_transpose_into(last, coarse, &b.coarse, &mut b.levels[1][0]);
        self.network.transpose_levels(grid, &mut b.levels, 1);
        let channels = self.network.architecture().channels;
        let taps = Taps::boxed(grid.ndim(), self.transposed.ranges);
        correlate(
            coarse,
            &taps,
            -1,
            (channels, &b.levels[1][0]),
            Weights::OutputsFirst(&self.transposed.weights),
            Start::Bias(None),
            &mut b.phase_images,
        );
        scatter_phases_add(grid, &b.phase_images, &mut b.out);
    }

    fn prepare(&mut self, grid: Grid) {
        let b = &mut self.buffers;
        if b.dims == grid.dims && !b.out.is_empty() {
            return;
        }
        let coarse = grid.coarse().cells();
        b.dims = grid.dims;
        b.levels = self.network.level_buffers(grid, 1);
        let phases = self.phases.len() * coarse;
        b.phases = vec![0.0; phases];
        b.phase_images = vec![0.0; phases];
        b.coarse = vec![0.0; coarse];
        b.lr = vec![0.0; grid.cells()];
        b.out = vec![0.0; grid.cells()];
    }
}

/// The E_p of E = P G for a stencil G of radius R from one channel: the
/// stride-2 kernel ê(u) = 2⁻ᵈ Σ_δ∈{0,1}ᵈ G(u − δ), u ∈ [−R, R + 1]ᵈ, read
/// at u = 2v + p, v ∈ [⌈(−R − p)/2⌉, ⌊(R + 1 − p)/2⌋] per axis.
fn pooled_phases(g: &Stencil) -> Vec<Phase> {
    let ndim = g.ndim;
    let r = g.radius;
    let kz = if ndim == 3 { 2 } else { 1 };
    let scale = 0.5f64.powi(ndim as i32);
    let mut phases = Vec::new();
    for pz in 0..kz {
        for py in 0..2 {
            for px in 0..2 {
                let parity = [px, py, pz];
                let mut ranges = [[0isize; 2]; 3];
                for (axis, range) in ranges.iter_mut().enumerate().take(ndim) {
                    let p = parity[axis] as isize;
                    *range = [-(r + p).div_euclid(2), (r + 1 - p).div_euclid(2)];
                }
                let taps = Taps::boxed(ndim, ranges);
                let mut weights = Vec::with_capacity(g.cout * taps.len());
                for c in 0..g.cout {
                    for v in taps.iter() {
                        let u = [
                            2 * v[0] + px as isize,
                            2 * v[1] + py as isize,
                            2 * v[2] + pz as isize,
                        ];
                        let mut sum = 0.0;
                        for dz in 0..kz as isize {
                            for dy in 0..2 {
                                for dx in 0..2 {
                                    sum += g.at(c, 0, [u[0] - dx, u[1] - dy, u[2] - dz]);
                                }
                            }
                        }
                        weights.push((scale * sum) as f32);
                    }
                }
                debug_assert_eq!(phase_index(parity), phases.len());
                phases.push(Phase { ranges, weights });
            }
        }
    }
    phases
}

/// The E_p side by side: the union of their tap boxes and the weights
/// [phase][C][union taps], zero where a phase has no tap.
fn all_phases(ndim: usize, phases: &[Phase]) -> Phase {
    let mut union = [[0isize; 2]; 3];
    for phase in phases {
        for (u, r) in union.iter_mut().zip(&phase.ranges) {
            *u = [u[0].min(r[0]), u[1].max(r[1])];
        }
    }
    let taps = Taps::boxed(ndim, union);
    let mut weights = Vec::new();
    for phase in phases {
        let own = Taps::boxed(ndim, phase.ranges);
        let channels = phase.weights.len() / own.len();
        for c in 0..channels {
            for off in taps.iter() {
                let t = own.iter().position(|o| o == off);
                weights.push(t.map_or(0.0, |t| phase.weights[c * own.len() + t]));
            }
        }
    }
    Phase {
        ranges: union,
        weights,
    }
}

/// The index of the phase of `parity` (x fastest; z is 0 in 2D), the
/// order in which [`pooled_phases`] builds them.
fn phase_index(parity: [usize; 3]) -> usize {
    (parity[2] * 2 + parity[1]) * 2 + parity[0]
}

/// phases[p][J] = field[2J + parity(p)] on `fine.coarse()`, 0 outside
/// `fine`, for every phase p (in parallel).
fn gather_phases(fine: Grid, field: &[f32], phases: &mut [f32]) {
    let [nx, ny, nz] = fine.dims;
    let [cx, cy, cz] = fine.coarse().dims;
    for_each_chunk(phases, cx * cy * cz, phases.len(), |p, phase| {
        let parity = [p % 2, (p / 2) % 2, p / 4];
        debug_assert_eq!(phase_index(parity), p);
        for (j, row) in phase.chunks_exact_mut(cx).enumerate() {
            let (fy, fz) = (2 * (j % cy) + parity[1], 2 * (j / cy) + parity[2]);
            if fy >= ny || fz >= nz {
                row.fill(0.0);
                continue;
            }
            let source = &field[nx * (fy + ny * fz)..][..nx];
            for (jx, v) in row.iter_mut().enumerate() {
                *v = source.get(2 * jx + parity[0]).copied().unwrap_or(0.0);
            }
        }
    });
}

/// field[f] += phases[p(f)][f / 2] for every fine cell f, p(f) its
/// parity (the transpose of [`gather_phases`]; in parallel by layer).
fn scatter_phases_add(fine: Grid, phases: &[f32], field: &mut [f32]) {
    let [nx, ny, _] = fine.dims;
    let [cx, cy, _] = fine.coarse().dims;
    let coarse = fine.coarse().cells();
    for_each_chunk(field, nx * ny, field.len(), |z, layer| {
        for (y, row) in layer.chunks_exact_mut(nx).enumerate() {
            let at = cx * (y / 2 + cy * (z / 2));
            let phase = |px: usize| {
                let p = phase_index([px, y % 2, z % 2]);
                &phases[p * coarse + at..][..cx]
            };
            let (even, odd) = (phase(0), phase(1));
            for (jx, pair) in row.chunks_mut(2).enumerate() {
                pair[0] += even[jx];
                if let Some(v) = pair.get_mut(1) {
                    *v += odd[jx];
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learned::{Architecture, Workspace};
    use crate::random::SplitMix;

    fn network(dim: usize, blocks: usize, levels: usize) -> Network {
        let arch = Architecture {
            dim,
            channels: 8,
            levels,
            blocks,
            symmetric: true,
        };
        Network::new(arch, 7).unwrap()
    }

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix(seed);
        (0..n).map(|_| rng.normal() as f32).collect()
    }

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
    }

    /// On an input that vanishes within R cells of the edge (where the
    /// layers' zero padding never matters) and an even-sized grid, L r is
    /// the layer-by-layer network's output.
    #[test]
    fn forward_is_the_network_away_from_the_edge() {
        for (dims, blocks, levels) in [
            ([24, 20, 16], 1, 3),
            ([40, 36, 1], 1, 4),
            ([20, 16, 12], 0, 2),
            ([18, 14, 1], 1, 1),
        ] {
            let grid = Grid::new(dims);
            let net = network(grid.ndim(), blocks, levels);
            let mut contracted = Contracted::new(&net).unwrap();
            let r = contracted.radius as usize;
            let mut input = random(grid.cells(), 3);
            for (c, v) in input.iter_mut().enumerate() {
                let p = [
                    c % dims[0],
                    (c / dims[0]) % dims[1],
                    c / (dims[0] * dims[1]),
                ];
                let inside = (0..grid.ndim()).all(|a| p[a] >= r && p[a] + r < dims[a]);
                if !inside {
                    *v = 0.0;
                }
            }
            let mut workspace = Workspace::default();
            let expected = net.infer(grid, &input, &mut workspace).unwrap().to_vec();
            contracted.prepare(grid);
            contracted.forward(grid, &input);
            let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for (c, (a, e)) in contracted.buffers.lr.iter().zip(&expected).enumerate() {
                assert!(
                    (a - e).abs() <= 2e-5 * scale,
                    "{dims:?} cell {c}: {a} vs {e}"
                );
            }
        }
    }

    /// ⟨L r, y⟩ = ⟨r, Lᵀ y⟩, odd sizes included, so D = Lᵀ L is symmetric.
    #[test]
    fn transpose_is_the_adjoint() {
        for dims in [[23, 18, 13], [24, 16, 16], [37, 30, 1]] {
            let grid = Grid::new(dims);
            let net = network(grid.ndim(), 1, 3);
            let mut contracted = Contracted::new(&net).unwrap();
            contracted.prepare(grid);
            let (r, y) = (random(grid.cells(), 5), random(grid.cells(), 6));
            contracted.forward(grid, &r);
            let lr_y = dot(&contracted.buffers.lr, &y);
            contracted.buffers.lr.copy_from_slice(&y);
            contracted.transpose(grid);
            let r_lty = dot(&r, &contracted.buffers.out);
            assert!(
                (lr_y - r_lty).abs() <= 1e-5 * lr_y.abs().max(r_lty.abs()),
                "{dims:?}: {lr_y} vs {r_lty}"
            );
        }
    }

    #[test]
    fn only_linear_single_block_networks_contract() {
        let mut arch = Architecture::fast(3);
        assert!(Contracted::new(&Network::new(arch, 1).unwrap()).is_err());
        arch.symmetric = true;
        arch.blocks = 2;
        assert!(Contracted::new(&Network::new(arch, 1).unwrap()).is_err());
    }
}
