//! The layers and the whole forward pass of the direction network against
//! naive reference code (unit tests: the layers are internal).

use super::layers::{conv_backward, conv_forward, pool_forward, upsample_add, ConvShape, Grid};
use super::{Architecture, Network, Tape, Workspace};
use crate::random::SplitMix;

fn random_f32(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix(seed);
    (0..n).map(|_| (2.0 * rng.uniform() - 1.0) as f32).collect()
}

/// Naive convolution: out[co][p] = b[co] + Σ_ci Σ_tap w · in[ci][p + off].
fn naive_conv(grid: Grid, s: ConvShape, w: &[f32], b: &[f32], input: &[f32]) -> Vec<f32> {
    let [nx, ny, nz] = grid.dims;
    let cells = grid.cells();
    let r = (s.k / 2) as isize;
    let rz = if grid.ndim() == 3 { r } else { 0 };
    let taps = s.taps(grid.ndim());
    let mut out = vec![0.0f32; s.cout * cells];
    for co in 0..s.cout {
        for z in 0..nz {
            for y in 0..ny {
                for x in 0..nx {
                    let mut acc = b[co] as f64;
                    for ci in 0..s.cin {
                        let mut t = 0;
                        for dz in -rz..=rz {
                            for dy in -r..=r {
                                for dx in -r..=r {
                                    let (xx, yy, zz) =
                                        (x as isize + dx, y as isize + dy, z as isize + dz);
                                    if xx >= 0
                                        && yy >= 0
                                        && zz >= 0
                                        && (xx as usize) < nx
                                        && (yy as usize) < ny
                                        && (zz as usize) < nz
                                    {
                                        let c = xx as usize + nx * (yy as usize + ny * zz as usize);
                                        acc += w[(co * s.cin + ci) * taps + t] as f64
                                            * input[ci * cells + c] as f64;
                                    }
                                    t += 1;
                                }
                            }
                        }
                    }
                    out[co * cells + x + nx * (y + ny * z)] = acc as f32;
                }
            }
        }
    }
    out
}

fn max_rel(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

#[test]
fn convolutions_match_naive_code() {
    // Rows of 37 cells span three 16-cell chunks; 10 channels are a group
    // of 8 and a remainder of 2 in the blocked kernel.
    for (dims, k, cin, cout) in [
        ([9, 7, 1], 3, 3, 4),
        ([6, 5, 4], 3, 3, 4),
        ([8, 6, 1], 1, 3, 4),
        ([5, 4, 3], 1, 3, 4),
        ([37, 5, 3], 3, 3, 10),
        ([37, 4, 1], 3, 10, 3),
        ([33, 3, 2], 1, 10, 9),
    ] {
        let grid = Grid::new(dims);
        let s = ConvShape { cin, cout, k };
        let w = random_f32(s.weights(grid.ndim()), 1);
        let b = random_f32(cout, 2);
        let input = random_f32(cin * grid.cells(), 3);
        let mut out = vec![0.0; cout * grid.cells()];
        conv_forward(grid, s, &w, Some(&b), &input, &mut out);
        let reference = naive_conv(grid, s, &w, &b, &input);
        assert!(max_rel(&out, &reference) < 1e-5, "{dims:?} k={k}");

        // Backward: <g, conv(x)> is bilinear, so dL/dx and dL/dw follow from
        // the naive forward applied to unit perturbations.
        let g = random_f32(cout * grid.cells(), 4);
        let (mut gw, mut gb, mut gx) =
            (vec![0.0; w.len()], vec![0.0; cout], vec![0.0; input.len()]);
        conv_backward(
            grid,
            s,
            &w,
            &input,
            &g,
            Some(&mut gw),
            Some(&mut gb),
            Some(&mut gx),
        );
        let dot = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| *x as f64 * *y as f64)
                .sum::<f64>()
        };
        let zero_b = vec![0.0; cout];
        // Every 41st entry, so rows' first and last cells and every chunk
        // are among them.
        for probe in (0..input.len()).step_by(41).chain([input.len() - 1]) {
            let mut e = vec![0.0; input.len()];
            e[probe] = 1.0;
            let expected = dot(&g, &naive_conv(grid, s, &w, &zero_b, &e));
            assert!((gx[probe] as f64 - expected).abs() < 1e-4, "dx {probe}");
        }
        for probe in [0usize, w.len() / 3, w.len() - 1] {
            let mut e = vec![0.0; w.len()];
            e[probe] = 1.0;
            let expected = dot(&g, &naive_conv(grid, s, &e, &zero_b, &input));
            assert!(
                (gw[probe] as f64 - expected).abs() < 1e-3 * expected.abs().max(1.0),
                "dw {probe}"
            );
        }
        let expected_b0: f32 = g[..grid.cells()].iter().sum();
        assert!((gb[0] - expected_b0).abs() < 1e-3);
    }
}

#[test]
fn pooling_and_upsampling_match_naive_code() {
    let fine = Grid::new([5, 3, 1]);
    let input: Vec<f32> = (0..15).map(|v| v as f32).collect();
    let mut pooled = vec![0.0; fine.coarse().cells()];
    pool_forward(fine, 1, &input, &mut pooled);
    // Coarse 3×2: cell (2, 1) has the single child (4, 2) = 14.
    assert_eq!(fine.coarse().dims, [3, 2, 1]);
    assert_eq!(pooled[0], (0.0 + 1.0 + 5.0 + 6.0) / 4.0);
    assert_eq!(pooled[2], (4.0 + 9.0) / 2.0);
    assert_eq!(pooled[5], 14.0);
    let mut up = vec![1.0; 15];
    upsample_add(fine, 1, &pooled, &mut up);
    assert_eq!(up[6], 1.0 + pooled[0]);
    assert_eq!(up[14], 1.0 + pooled[5]);
}

/// The whole network by composing the naive layers.
fn naive_network(net: &Network, grid: Grid, input: &[f32]) -> Vec<f32> {
    let arch = net.architecture();
    let params = net.params();
    let shapes: Vec<ConvShape> = {
        let c = arch.channels;
        let mut v = vec![ConvShape {
            cin: 1,
            cout: c,
            k: 3,
        }];
        v.extend((0..2 * arch.levels * arch.blocks).map(|_| ConvShape {
            cin: c,
            cout: c,
            k: 3,
        }));
        v.push(ConvShape {
            cin: c,
            cout: 1,
            k: 1,
        });
        v
    };
    let mut offset = 0;
    let layers: Vec<&[f32]> = shapes
        .iter()
        .map(|s| {
            let nw = s.weights(arch.dim);
            let w = &params[offset..offset + nw];
            offset += nw;
            w
        })
        .collect();
    assert_eq!(offset, params.len(), "the network has weights only");
    let zero = vec![0.0f32; arch.channels.max(1)];
    let conv = |k: usize, g: Grid, x: &[f32]| {
        naive_conv(g, shapes[k], layers[k], &zero[..shapes[k].cout], x)
    };
    let c = arch.channels;
    let mut h = conv(0, grid, input);
    let mut g = grid;
    let mut skips = Vec::new();
    let mut k = 1;
    for level in 0..arch.levels {
        if level > 0 {
            let mut pooled = vec![0.0; c * g.coarse().cells()];
            pool_forward(g, c, &h, &mut pooled);
            skips.push((g, std::mem::replace(&mut h, pooled)));
            g = g.coarse();
        }
        for _ in 0..arch.blocks {
            let act = |v: f32| if arch.symmetric { v } else { v.max(0.0) };
            let a: Vec<f32> = conv(k, g, &h).iter().map(|&v| act(v)).collect();
            let b = conv(k + 1, g, &a);
            h = b.iter().zip(&h).map(|(&b, s)| act(b) + s).collect();
            k += 2;
        }
    }
    while let Some((fine, mut skip)) = skips.pop() {
        upsample_add(fine, c, &h, &mut skip);
        h = skip;
    }
    conv(k, grid, &h)
}

#[test]
fn network_forward_matches_naive_composition() {
    for (arch, dims) in [
        (Architecture::fast(2), [13, 11, 1]),
        (Architecture::reference(2), [9, 8, 1]),
        (
            Architecture {
                dim: 3,
                channels: 4,
                levels: 2,
                blocks: 1,
                symmetric: false,
            },
            [7, 6, 5],
        ),
        (Architecture::symmetric(2), [13, 11, 1]),
    ] {
        let net = Network::new(arch, 7).unwrap();
        let grid = Grid::new(dims);
        let input = random_f32(grid.cells(), 8);
        let out = net.forward(grid, &input, &mut Tape::default()).unwrap();
        let reference = naive_network(&net, grid, &input);
        assert!(max_rel(&out, &reference) < 1e-4, "{arch:?}");
        // Inference without a tape gives the same output, twice in a row
        // from the same workspace.
        let mut workspace = Workspace::default();
        for _ in 0..2 {
            let inferred = net.infer(grid, &input, &mut workspace).unwrap();
            assert_eq!(inferred, out.as_slice(), "{arch:?}");
        }
    }
}

/// The matrix of the linear map `f` on `n`-vectors, column by column.
fn matrix_of(n: usize, f: impl Fn(&[f32]) -> Vec<f32>) -> Vec<Vec<f64>> {
    (0..n)
        .map(|j| {
            let mut e = vec![0.0f32; n];
            e[j] = 1.0;
            f(&e).iter().map(|&v| v as f64).collect()
        })
        .collect()
}

#[test]
fn symmetric_form_applies_l_transpose_l() {
    for (arch, dims) in [
        (Architecture::symmetric(2), [13, 11, 1]),
        (
            Architecture {
                dim: 3,
                channels: 3,
                levels: 2,
                blocks: 2,
                symmetric: true,
            },
            [7, 6, 5],
        ),
    ] {
        let net = Network::new(arch, 12).unwrap();
        let grid = Grid::new(dims);
        let n = grid.cells();
        // L column by column through the naive layers; D = LᵀL from it.
        let l = matrix_of(n, |e| naive_network(&net, grid, e));
        let u = random_f32(n, 13);
        let lu: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| l[j][i] * u[j] as f64).sum())
            .collect();
        let reference: Vec<f32> = (0..n)
            .map(|j| (0..n).map(|i| l[j][i] * lu[i]).sum::<f64>() as f32)
            .collect();
        let mut workspace = Workspace::default();
        for _ in 0..2 {
            let d = net.direction(grid, &u, &mut workspace).unwrap();
            assert!(max_rel(d, &reference) < 1e-4, "{arch:?}");
        }
        // The same through the tape: Lᵀ as the input gradient.
        let mut tape = Tape::default();
        let out = net.forward(grid, &u, &mut tape).unwrap();
        let mut transposed = vec![0.0; n];
        net.backward_to(grid, &tape, &out, None, Some(&mut transposed));
        assert!(max_rel(&transposed, &reference) < 1e-4, "{arch:?}");
    }
}
