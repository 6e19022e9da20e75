//! Training data, loss and optimiser of the direction network.
//!
//! - Dataset: m Lanczos steps with full reorthogonalisation on the training
//!   operator A give Ritz pairs (θ_i, y_i); each right-hand side is
//!   Σ_i c_i y_i with c_i ~ N(0, 1), multiplied by 9 for the lower half of
//!   the spectrum (as in the reference; [`ritz_dataset_weighted`] takes
//!   another factor), normalised to ‖r‖ = 1. Seeded.
//! - Loss (the unsupervised loss of the paper with the step length
//!   eliminated by the exact line search): for q = D(r),
//!   L = ‖r − (qᵀr / qᵀAq) A q‖², averaged over the batch; its gradient
//!   wrt q is −2 (eᵀw)(r/t − 2 s w/t²) − 2 α A e with w = Aq, s = qᵀr,
//!   t = qᵀw, α = s/t, e = r − α w; then backpropagation through the net.
//! - Adam (β₁ = 0.9, β₂ = 0.999, ε = 1e-8).

use super::layers::Grid;
use super::network::{Network, Tape};
use crate::error::{Error, Result};
use crate::operator::{FieldValue, GridPoisson, LinearOperator};
use crate::random::SplitMix;
use crate::vector;

/// Right-hand sides built from Ritz vectors of A, the lower half of the
/// spectrum weighted 9 (as in the DCDM reference).
pub fn ritz_dataset(
    a: &GridPoisson,
    lanczos_steps: usize,
    count: usize,
    seed: u64,
) -> Result<Vec<Vec<f64>>> {
    ritz_dataset_weighted(a, lanczos_steps, count, seed, 9.0)
}

/// Right-hand sides built from Ritz vectors of A, the coefficients of the
/// lower half of the Ritz values multiplied by `lower_weight` (1: every
/// Ritz vector alike, as a preconditioner that CG runs must serve the
/// whole spectrum).
pub fn ritz_dataset_weighted(
    a: &GridPoisson,
    lanczos_steps: usize,
    count: usize,
    seed: u64,
    lower_weight: f64,
) -> Result<Vec<Vec<f64>>> {
    if !(lower_weight.is_finite() && lower_weight > 0.0) {
        return Err(Error::invalid(
            "lower_weight",
            format!("lower_weight = {lower_weight} must be positive and finite"),
        ));
    }
    let n = a.dim();
    let m = lanczos_steps.min(n);
    if m < 2 {
        return Err(Error::invalid(
            "lanczos_steps",
            "at least 2 Lanczos steps are needed",
        ));
    }
    let mut rng = SplitMix(seed);
    // Lanczos with full reorthogonalisation: A V = V T (+ remainder).
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(m);
    let mut v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let norm = vector::norm2(&v);
    v.iter_mut().for_each(|x| *x /= norm);
    let (mut alpha, mut beta) = (Vec::with_capacity(m), Vec::with_capacity(m));
    let mut w = vec![0.0; n];
    for j in 0..m {
        a.apply(&v, &mut w)?;
        let aj = vector::dot(&v, &w);
        alpha.push(aj);
        basis.push(v);
        // Full reorthogonalisation, Gram–Schmidt twice ("twice is enough").
        for _ in 0..2 {
            for q in &basis {
                let c = vector::dot(&w, q);
                vector::axpy(-c, q, &mut w);
            }
        }
        let b = vector::norm2(&w);
        if j + 1 == m || b < 1e-12 * aj.abs().max(1.0) {
            break;
        }
        beta.push(b);
        v = w.iter().map(|x| x / b).collect();
    }
    let k = alpha.len();
    let t = faer::Mat::<f64>::from_fn(k, k, |i, j| {
        if i == j {
            alpha[i]
        } else if i + 1 == j {
            beta[i]
        } else if j + 1 == i {
            beta[j]
        } else {
            0.0
        }
    });
    let eig = t
        .self_adjoint_eigen(faer::Side::Lower)
        .map_err(|_| Error::NotConverged {
            message: "eigen-decomposition of the Lanczos matrix".into(),
        })?;
    let s = eig.U();
    // Ritz vectors y_i = V s_i, eigenvalues ascending.
    let ritz: Vec<Vec<f64>> = (0..k)
        .map(|i| {
            let mut y = vec![0.0; n];
            for (j, q) in basis.iter().enumerate() {
                vector::axpy(s[(j, i)], q, &mut y);
            }
            y
        })
        .collect();
    Ok((0..count)
        .map(|_| {
            let mut r = vec![0.0; n];
            for (i, y) in ritz.iter().enumerate() {
                let weight = if i < k / 2 { lower_weight } else { 1.0 };
                vector::axpy(weight * rng.normal(), y, &mut r);
            }
            let norm = vector::norm2(&r);
            r.iter_mut().for_each(|x| *x /= norm);
            r
        })
        .collect())
}

/// The normalised residuals that the conjugate-direction solver meets with
/// `net` as direction generator on A x = b for each b in `rhs`, one per
/// iteration for up to `iterations` iterations: the training data of
/// further rounds, so that the network also learns the residuals its own
/// directions leave behind.
pub fn solver_residuals(
    net: &Network,
    a: &GridPoisson,
    rhs: &[Vec<f64>],
    iterations: usize,
) -> Result<Vec<Vec<f64>>> {
    use crate::krylov::{
        conjugate_direction, ConjugateDirectionOptions, FnPreconditioner, Preconditioner,
    };
    let generator = super::NetworkDirection::new(a, net)?;
    let seen = std::cell::RefCell::new(Vec::new());
    let recording = FnPreconditioner::nonlinear(a.dim(), |r: &[f64], d: &mut [f64]| {
        seen.borrow_mut().push(r.to_vec());
        generator.apply(r, d)
    });
    let options = ConjugateDirectionOptions {
        krylov: crate::krylov::KrylovOptions {
            rtol: 1e-6,
            max_iterations: iterations,
            ..Default::default()
        },
        ..Default::default()
    };
    for b in rhs {
        let mut x = vec![0.0; a.dim()];
        // Stalls and iteration limits are expected here: they are what the
        // next round learns from.
        let _ = conjugate_direction(a, &recording, b, &mut x, &options);
    }
    Ok(seen.into_inner())
}

/// The loss of one sample and dL/dq.
pub(crate) fn sample_loss(a: &GridPoisson, r: &[f64], q: &[f64]) -> Result<(f64, Vec<f64>)> {
    let n = r.len();
    let mut w = vec![0.0; n];
    a.apply(q, &mut w)?;
    let (s, t) = (vector::dot(q, r), vector::dot(q, &w));
    if t.is_nan() || t <= 0.0 {
        // A zero direction: the loss is ‖r‖², no useful gradient.
        return Ok((vector::dot(r, r), vec![0.0; n]));
    }
    let alpha = s / t;
    let e: Vec<f64> = r.iter().zip(&w).map(|(ri, wi)| ri - alpha * wi).collect();
    let loss = vector::dot(&e, &e);
    let ew = vector::dot(&e, &w);
    let mut ae = vec![0.0; n];
    a.apply(&e, &mut ae)?;
    let grad = (0..n)
        .map(|i| -2.0 * ew * (r[i] / t - 2.0 * s * w[i] / (t * t)) - 2.0 * alpha * ae[i])
        .collect();
    Ok((loss, grad))
}

/// The batch-mean loss of `net` on `batch` and its gradient wrt the
/// parameters. In the symmetric form the direction is q = Sᵀ Lᵀ L S r (S
/// scatters the unknowns into the grid), and for g = dL/dq on the grid
/// dL = yᵀ dL g + (L g)ᵀ dL r with y = L S r: two more passes of L.
pub fn loss_and_gradient<R: AsRef<[f64]>>(
    net: &Network,
    a: &GridPoisson,
    batch: &[R],
) -> Result<(f64, Vec<f32>)> {
    let grid = Grid::new(a.dims());
    let symmetric = net.architecture().symmetric;
    let mut grad = vec![0.0f32; net.params().len()];
    let mut field = vec![0.0f32; grid.cells()];
    let mut transposed = vec![0.0f32; if symmetric { grid.cells() } else { 0 }];
    let (mut tape, mut tape_g) = (Tape::default(), Tape::default());
    let mut total = 0.0;
    let mut q = vec![0.0; a.dim()];
    for r in batch {
        let r = r.as_ref();
        a.scatter(r, &mut field)?;
        let out = net.forward(grid, &field, &mut tape)?;
        if symmetric {
            net.backward_to(grid, &tape, &out, None, Some(&mut transposed));
            a.gather(&transposed, &mut q)?;
        } else {
            a.gather(&out, &mut q)?;
        }
        let (loss, dq) = sample_loss(a, r, &q)?;
        total += loss;
        // The tape keeps its own copy of the input: `field` now carries
        // dL/dq, averaged over the batch.
        a.scatter(&dq, &mut field)?;
        field.iter_mut().for_each(|g| *g /= batch.len() as f32);
        if symmetric {
            let lg = net.forward(grid, &field, &mut tape_g)?;
            net.backward(grid, &tape_g, &out, &mut grad);
            net.backward(grid, &tape, &lg, &mut grad);
        } else {
            net.backward(grid, &tape, &field, &mut grad);
        }
    }
    Ok((total / batch.len() as f64, grad))
}

/// The Adam optimiser.
#[derive(Debug, Clone)]
pub struct Adam {
    /// Learning rate. Default 1e-3.
    pub learning_rate: f64,
    m: Vec<f64>,
    v: Vec<f64>,
    step: i32,
}

impl Adam {
    /// Adam for `len` parameters.
    pub fn new(len: usize, learning_rate: f64) -> Self {
        Self {
            learning_rate,
            m: vec![0.0; len],
            v: vec![0.0; len],
            step: 0,
        }
    }

    /// One step: θ ← θ − lr · m̂ / (√v̂ + ε), on f32 (network weights) or
    /// f64 (schedules) parameters.
    pub fn step<P: FieldValue>(&mut self, params: &mut [P], grad: &[P]) {
        const B1: f64 = 0.9;
        const B2: f64 = 0.999;
        const EPS: f64 = 1e-8;
        self.step += 1;
        let (c1, c2) = (1.0 - B1.powi(self.step), 1.0 - B2.powi(self.step));
        for ((p, &g), (m, v)) in params
            .iter_mut()
            .zip(grad)
            .zip(self.m.iter_mut().zip(self.v.iter_mut()))
        {
            let g = g.to_f64();
            *m = B1 * *m + (1.0 - B1) * g;
            *v = B2 * *v + (1.0 - B2) * g * g;
            *p =
                P::from_f64(p.to_f64() - self.learning_rate * (*m / c1) / ((*v / c2).sqrt() + EPS));
        }
    }
}

/// Options of [`train`].
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Passes over the dataset. Default 10.
    pub epochs: usize,
    /// Samples per Adam step. Default 16.
    pub batch: usize,
    /// Adam's learning rate. Default 1e-3.
    pub learning_rate: f64,
    /// Seed of the batch order.
    pub seed: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch: 16,
            learning_rate: 1e-3,
            seed: 1,
        }
    }
}

/// Trains `net` on `data` for the operator `a`; `progress(epoch, step,
/// loss)` is called after every Adam step (return `false` to stop). Returns
/// the mean loss of each epoch.
pub fn train(
    net: &mut Network,
    a: &GridPoisson,
    data: &[Vec<f64>],
    options: &TrainOptions,
    mut progress: impl FnMut(usize, usize, f64) -> bool,
) -> Result<Vec<f64>> {
    if data.is_empty() || options.batch == 0 {
        return Err(Error::invalid("data", "an empty dataset or batch"));
    }
    let mut adam = Adam::new(net.params().len(), options.learning_rate);
    let mut rng = SplitMix(options.seed);
    let mut order: Vec<usize> = (0..data.len()).collect();
    let mut history = Vec::with_capacity(options.epochs);
    let mut step = 0;
    for epoch in 0..options.epochs {
        for i in (1..order.len()).rev() {
            let j = (rng.uniform() * (i + 1) as f64) as usize;
            order.swap(i, j.min(i));
        }
        let mut sum = 0.0;
        for chunk in order.chunks(options.batch) {
            let batch: Vec<&[f64]> = chunk.iter().map(|&k| data[k].as_slice()).collect();
            let (loss, grad) = loss_and_gradient(net, a, &batch)?;
            adam.step(net.params_mut(), &grad);
            sum += loss * chunk.len() as f64;
            step += 1;
            if !progress(epoch, step, loss) {
                history.push(sum / data.len() as f64);
                return Ok(history);
            }
        }
        history.push(sum / data.len() as f64);
    }
    Ok(history)
}
