//! The direction network through its public API: backpropagation against
//! finite differences, Adam against a hand computation, model files (round
//! trip and every kind of bad file), and training that reduces the loss.
//! (The layers and the forward pass against naive reference code are unit
//! tests of the crate, `src/learned/reference.rs`: the layers are internal.)

mod common;

use adjunct::learned::{
    loss_and_gradient, ritz_dataset, train, Adam, Architecture, Grid, Model, Network, Tape,
    TrainOptions,
};
use adjunct::{scene, Error, LinearOperator};
use common::Rng;

fn random_f32(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.range(-1.0, 1.0) as f32).collect()
}

#[test]
fn backpropagation_matches_finite_differences() {
    let arch = Architecture {
        dim: 2,
        channels: 3,
        levels: 2,
        blocks: 1,
        symmetric: false,
    };
    let mut net = Network::new(arch, 3).unwrap();
    let grid = Grid::new([7, 6, 1]);
    let input = random_f32(grid.cells(), 4);
    let g = random_f32(grid.cells(), 5);
    let loss = |net: &Network| -> f64 {
        let out = net.forward(grid, &input, &mut Tape::default()).unwrap();
        out.iter().zip(&g).map(|(o, g)| *o as f64 * *g as f64).sum()
    };
    let mut tape = Tape::default();
    net.forward(grid, &input, &mut tape).unwrap();
    let mut grad = vec![0.0; net.params().len()];
    net.backward(grid, &tape, &g, &mut grad);
    let n = net.params().len();
    let mut checked = 0;
    for probe in (0..n).step_by(n / 25 + 1) {
        let h = 2e-3f32;
        let p0 = net.params()[probe];
        net.params_mut()[probe] = p0 + h;
        let plus = loss(&net);
        net.params_mut()[probe] = p0 - h;
        let minus = loss(&net);
        net.params_mut()[probe] = p0;
        let fd = (plus - minus) / (2.0 * h as f64);
        let an = grad[probe] as f64;
        assert!(
            (fd - an).abs() <= 2e-2 * an.abs().max(0.05),
            "parameter {probe}: backprop {an:e}, finite difference {fd:e}"
        );
        checked += 1;
    }
    assert!(checked >= 20);
}

#[test]
fn training_gradients_match_finite_differences() {
    // The 3D case coarsens 8×6×3 to 4×3×2 and 2×2×1: a 3D level with a
    // single layer in z still uses the 3^3 kernels.
    let shape = |dim, levels, symmetric| Architecture {
        dim,
        channels: 3,
        levels,
        blocks: 1,
        symmetric,
    };
    for (arch, dims, air) in [
        (shape(2, 2, false), [12, 10, 1], 2),
        (shape(2, 2, true), [12, 10, 1], 2),
        (shape(3, 3, true), [8, 6, 3], 1),
    ] {
        let problem = scene::smoke(dims, air).unwrap();
        let a = problem.operator().unwrap();
        let data = ritz_dataset(&a, 30, 3, 4).unwrap();
        let mut net = Network::new(arch, 6).unwrap();
        let (_, grad) = loss_and_gradient(&net, &a, &data).unwrap();
        let n = net.params().len();
        let mut checked = 0;
        for probe in (0..n).step_by(n / 20 + 1) {
            let h = 1e-3f32;
            let p0 = net.params()[probe];
            net.params_mut()[probe] = p0 + h;
            let plus = loss_and_gradient(&net, &a, &data).unwrap().0;
            net.params_mut()[probe] = p0 - h;
            let minus = loss_and_gradient(&net, &a, &data).unwrap().0;
            net.params_mut()[probe] = p0;
            let fd = (plus - minus) / (2.0 * h as f64);
            let an = grad[probe] as f64;
            let scale = grad.iter().map(|g| g.abs()).fold(0.0f32, f32::max) as f64;
            // ReLU kinks inside ±h perturb the direct form's differences.
            let tolerance = if arch.symmetric { 1e-2 } else { 5e-2 };
            assert!(
                (fd - an).abs() <= tolerance * an.abs().max(0.05 * scale),
                "{arch:?} parameter {probe}: gradient {an:e}, finite difference {fd:e}"
            );
            checked += 1;
        }
        assert!(checked >= 15);
    }
}

#[test]
fn adam_step_matches_a_hand_computation() {
    let mut params = vec![1.0f32, -2.0];
    let mut adam = Adam::new(2, 0.1);
    adam.step(&mut params, &[0.5, -4.0]);
    // Step 1: m̂ = g, v̂ = g², update = lr · g / (|g| + 1e-8) ≈ lr · sign(g).
    assert!((params[0] - 0.9).abs() < 1e-6 && (params[1] + 1.9).abs() < 1e-6);
    adam.step(&mut params, &[0.5, 0.0]);
    // Step 2, first parameter: m = 0.095·... m̂ = 0.5, v̂ = 0.25 → again −0.1.
    assert!((params[0] - 0.8).abs() < 1e-6);
    // Second: m = 0.9·(0.1·−4) = −0.36, m̂ = −0.36/0.19; v = 0.999·0.016 =
    // 0.015984, v̂ = 0.015984/0.001999.
    let (m_hat, v_hat) = (-0.36f64 / 0.19, 0.015984f64 / 0.001999);
    let expected = -1.9 - 0.1 * m_hat / (v_hat.sqrt() + 1e-8);
    assert!(
        (params[1] as f64 - expected).abs() < 1e-5,
        "{} vs {expected}",
        params[1]
    );
}

#[test]
fn model_files_round_trip_and_bad_files_are_errors() {
    let net = Network::new(Architecture::fast(3), 11).unwrap();
    let model = Model {
        network: net.clone(),
        coarse_block: 0,
        training_grid: "16x16x16".into(),
        training_command: "test".into(),
    };
    let bytes = model.to_bytes().unwrap();
    let back = Model::from_bytes(&bytes).unwrap();
    assert_eq!(back.network.params(), net.params());
    assert_eq!(back.network.architecture(), net.architecture());
    assert_eq!(back.training_grid, "16x16x16");
    let symmetric = Model {
        network: Network::new(Architecture::symmetric(2), 12).unwrap(),
        ..model.clone()
    };
    let back = Model::from_bytes(&symmetric.to_bytes().unwrap()).unwrap();
    assert_eq!(back.network.architecture(), Architecture::symmetric(2));
    assert_eq!(back.network.params(), symmetric.network.params());
    let two_level = Model {
        coarse_block: 8,
        ..symmetric.clone()
    };
    let two_level_bytes = two_level.to_bytes().unwrap();
    assert_eq!(Model::from_bytes(&two_level_bytes).unwrap().coarse_block, 8);
    assert_eq!(back.coarse_block, 0);

    let format_error = |bytes: &[u8], fragment: &str| match Model::from_bytes(bytes) {
        Err(Error::Format { message }) => {
            assert!(message.contains(fragment), "{message:?} lacks {fragment:?}")
        }
        other => panic!("expected a format error, got {other:?}"),
    };
    format_error(&bytes[..bytes.len() - 10], "truncated");
    format_error(&bytes[..5], "truncated");
    format_error(b"garbage that is not a model", "safetensors");
    // Another architecture's file: shapes differ.
    let needle = b"\"channels\":\"8\"";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("channels in the header");
    let mut other = bytes.clone();
    other[at + needle.len() - 2] = b'9';
    format_error(&other, "shape");
    // A coarse block of 1 (no coarsening) or not a number.
    let needle = b"\"coarse_block\":\"8\"";
    let at = two_level_bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("coarse_block in the header");
    let mut other = two_level_bytes.clone();
    other[at + needle.len() - 2] = b'1';
    format_error(&other, "coarse_block");
    other[at + needle.len() - 2] = b'x';
    format_error(&other, "coarse_block");
    // NaN weights.
    let mut bad = Model {
        network: net.clone(),
        ..model.clone()
    };
    bad.network.params_mut()[3] = f32::NAN;
    format_error(&bad.to_bytes().unwrap(), "not finite");
    match Model::load(std::path::Path::new("/nonexistent/model.safetensors")) {
        Err(Error::Io { path, .. }) => assert!(path.contains("nonexistent")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn training_on_a_tiny_grid_reduces_the_loss() {
    let problem = scene::smoke([16, 16, 1], 2).unwrap();
    let a = problem.operator().unwrap();
    let data = ritz_dataset(&a, 60, 64, 3).unwrap();
    assert!(data
        .iter()
        .all(|r| (r.iter().map(|v| v * v).sum::<f64>() - 1.0).abs() < 1e-10));
    let mut net = Network::new(Architecture::fast(2), 5).unwrap();
    let (before, _) = loss_and_gradient(&net, &a, &data).unwrap();
    let options = TrainOptions {
        epochs: 30,
        batch: 8,
        learning_rate: 1e-2,
        seed: 2,
    };
    let start = std::time::Instant::now();
    train(&mut net, &a, &data, &options, |_, _, _| true).unwrap();
    let (after, _) = loss_and_gradient(&net, &a, &data).unwrap();
    // The same loss for Jacobi directions q = D⁻¹r, as a yardstick.
    let diag = a.diagonal().unwrap();
    let jacobi: f64 = data
        .iter()
        .map(|r| {
            let q: Vec<f64> = r.iter().zip(&diag).map(|(r, d)| r / d).collect();
            let mut w = vec![0.0; q.len()];
            a.apply(&q, &mut w).unwrap();
            let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f64>();
            let alpha = dot(&q, r) / dot(&q, &w);
            r.iter()
                .zip(&w)
                .map(|(r, w)| (r - alpha * w).powi(2))
                .sum::<f64>()
        })
        .sum::<f64>()
        / data.len() as f64;
    eprintln!(
        "loss {before:.4} -> {after:.4} in {:.1} s (Jacobi directions: {jacobi:.4})",
        start.elapsed().as_secs_f64()
    );
    assert!(after < before / 3.0, "loss {before:.4} -> {after:.4}");
    assert!(
        after < 0.7 * jacobi,
        "trained {after:.4} vs Jacobi {jacobi:.4}"
    );
}
