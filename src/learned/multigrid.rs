//! Learned multigrid: a V-cycle [`Schedule`] (per level the damping of each
//! Jacobi sweep and the scale of the coarse correction) trained end to end
//! with the DCDM loss, saved and loaded in safetensors.
//!
//! - Loss: for each right-hand side r (‖r‖ = 1) and d = M⁻¹ r the cycle's
//!   output, the residual left by the exact line search along d,
//!   L = ‖r − α A d‖² with α = dᵀr / dᵀAd, averaged over the batch (the
//!   loss of [`super::loss_and_gradient`], with the network replaced by
//!   the V-cycle, and its ∂L/∂d).
//! - Gradient: ∂L/∂θ = (∂L/∂d)ᵀ ∂d/∂θ for each schedule parameter θ, with
//!   ∂d/∂θ from the cycle differentiated in forward mode (checked against
//!   finite differences in `tests/learned_multigrid.rs`).
//! - Every Adam step is followed by a projection onto the schedules that
//!   keep the cycle symmetric positive definite ([`Schedule::check`]):
//!   corrections clamped to [0, 2], and a level whose smoothing polynomial
//!   leaves [−1, 1] on [0, 2] pulled halfway back to the classical
//!   damping until it does not.
//!
//! File: tensors `damping` (f64, [levels, sweeps], a level with fewer
//! sweeps padded with zeros after its last) and `correction` (f64,
//! [levels]); metadata `format = adjunct-multigrid`, `version = 1`,
//! `component = smoother-schedule`, `dim`, `levels`, `sweeps`,
//! `coarse_operators` (the hierarchy the schedule was trained on and runs
//! on: `automatic`, `rediscretized`, `galerkin`, `lumped-galerkin` or
//! `axis-galerkin`; a file without it, as written before the field
//! existed, means `automatic`), and free-form `training_grid`,
//! `training_command` and `training_loss`.

use super::file::{checked_metadata, field, format_error, read_file, serialize, write_file};
use super::train::{sample_loss, Adam};
use crate::error::{Error, Result};
use crate::krylov::{
    CoarseOperators, LevelSchedule, Multigrid, MultigridOptions, Precision, Schedule,
};
use crate::operator::GridPoisson;
use crate::random::SplitMix;
use crate::vector;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::path::Path;

pub(crate) const FORMAT: &str = "adjunct-multigrid";
const VERSION: &str = "1";
const COMPONENT: &str = "smoother-schedule";
/// Bounds on the file's sizes, checked before anything is allocated.
const MAX_LEVELS: usize = 64;
const MAX_SWEEPS: usize = 16;

/// A trained V-cycle schedule and what it was trained for.
#[derive(Debug, Clone, PartialEq)]
pub struct MultigridModel {
    /// The grid dimension (2 or 3) it was trained on and serves.
    pub dim: usize,
    /// The schedule.
    pub schedule: Schedule,
    /// The coarse operators of the hierarchy the schedule was trained on,
    /// which [`MultigridModel::options_for`] runs it on.
    pub coarse_operators: CoarseOperators,
    /// Grid size the model was trained on, e.g. "64x64x64".
    pub training_grid: String,
    /// The command that trained it.
    pub training_command: String,
    /// The final training loss (informative).
    pub training_loss: String,
}

impl MultigridModel {
    /// The multigrid options that run this model's schedule on its coarse
    /// operators on `a` (the other options from `base`), whose dimension
    /// must be the model's ([`Error::Format`] naming `dim`). A schedule
    /// trained on axis-Galerkin levels runs on Galerkin levels when the
    /// face coefficients between fluid cells of `a` vary by more than 1e3,
    /// where the axis levels lose their grip (it stays symmetric positive
    /// definite on any level whose smoother is ℓ1-scaled Jacobi).
    pub fn options_for(
        &self,
        a: &GridPoisson,
        base: &MultigridOptions,
    ) -> Result<MultigridOptions> {
        if a.ndim() != self.dim {
            return Err(format_error(format!(
                "metadata `dim` is {} but the operator's grid is {}D",
                self.dim,
                a.ndim()
            )));
        }
        Ok(MultigridOptions {
            schedule: Some(self.schedule.clone()),
            coarse_operators: self.coarse_operators.within_contrast_of(a),
            ..base.clone()
        })
    }

    /// The learned V-cycle on `a` (the default options otherwise: f32 cycle,
    /// coarsest level at most 1000 unknowns).
    pub fn multigrid(&self, a: &GridPoisson) -> Result<Multigrid> {
        Multigrid::new(a, &self.options_for(a, &MultigridOptions::default())?)
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let levels = self.schedule.levels.len();
        let sweeps = self
            .schedule
            .levels
            .iter()
            .map(|l| l.damping.len())
            .max()
            .unwrap_or(0);
        let damping: Vec<u8> = self
            .schedule
            .levels
            .iter()
            .flat_map(|l| {
                let padding = std::iter::repeat_n(0.0, sweeps - l.damping.len());
                l.damping.iter().copied().chain(padding)
            })
            .flat_map(f64::to_le_bytes)
            .collect();
        let correction: Vec<u8> = self
            .schedule
            .levels
            .iter()
            .flat_map(|l| l.correction.to_le_bytes())
            .collect();
        fn view(shape: Vec<usize>, data: &[u8]) -> Result<TensorView<'_>> {
            TensorView::new(Dtype::F64, shape, data).map_err(|e| format_error(e.to_string()))
        }
        let tensors = vec![
            ("damping".to_string(), view(vec![levels, sweeps], &damping)?),
            ("correction".to_string(), view(vec![levels], &correction)?),
        ];
        serialize(
            tensors,
            &[
                ("format", FORMAT.to_string()),
                ("version", VERSION.to_string()),
                ("component", COMPONENT.to_string()),
                ("dim", self.dim.to_string()),
                ("levels", levels.to_string()),
                ("sweeps", sweeps.to_string()),
                ("coarse_operators", self.coarse_operators.name().to_string()),
                ("training_grid", self.training_grid.clone()),
                ("training_command", self.training_command.clone()),
                ("training_loss", self.training_loss.clone()),
            ],
        )
    }

    /// Writes the model to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_file(path, &self.to_bytes()?)
    }

    /// Parses a model file: [`Error::Format`] naming the field or tensor
    /// when it is not a valid multigrid model (wrong component, level or
    /// sweep counts that disagree with the tensors, a schedule that would
    /// make the cycle indefinite).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let meta = checked_metadata(bytes, FORMAT, VERSION)?;
        let get = |key: &str| field(&meta, key);
        let component = get("component")?;
        if component != COMPONENT {
            return Err(format_error(format!(
                "metadata `component` is `{component}`, expected `{COMPONENT}`"
            )));
        }
        let number = |key: &str, range: std::ops::RangeInclusive<usize>| -> Result<usize> {
            let v: usize = get(key)?
                .parse()
                .map_err(|_| format_error(format!("metadata `{key}` is not an integer")))?;
            if !range.contains(&v) {
                return Err(format_error(format!(
                    "metadata `{key}` is {v}, expected {}..={}",
                    range.start(),
                    range.end()
                )));
            }
            Ok(v)
        };
        let dim = number("dim", 2..=3)?;
        let levels = number("levels", 1..=MAX_LEVELS)?;
        let sweeps = number("sweeps", 1..=MAX_SWEEPS)?;
        let coarse_operators = match meta.get("coarse_operators") {
            None => CoarseOperators::Automatic,
            Some(name) => CoarseOperators::from_name(name).ok_or_else(|| {
                let known: Vec<&str> = CoarseOperators::ALL.iter().map(|c| c.name()).collect();
                format_error(format!(
                    "metadata `coarse_operators` is `{name}`, expected one of {}",
                    known.join(", ")
                ))
            })?,
        };
        let file = SafeTensors::deserialize(bytes)
            .map_err(|e| format_error(format!("corrupted or truncated: {e}")))?;
        if file.len() != 2 {
            return Err(format_error(format!(
                "{} tensors, expected `damping` and `correction`",
                file.len()
            )));
        }
        let read = |name: &str, shape: &[usize], what: &str| -> Result<Vec<f64>> {
            let t = file
                .tensor(name)
                .map_err(|_| format_error(format!("tensor `{name}` is missing")))?;
            if t.dtype() != Dtype::F64 {
                return Err(format_error(format!(
                    "tensor `{name}` has dtype {:?}, expected F64",
                    t.dtype()
                )));
            }
            if t.shape() != shape {
                return Err(format_error(format!(
                    "tensor `{name}` has shape {:?}, but {what} say {shape:?}",
                    t.shape()
                )));
            }
            Ok(t.data()
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("chunks of 8")))
                .collect())
        };
        let damping = read(
            "damping",
            &[levels, sweeps],
            "metadata `levels` and `sweeps`",
        )?;
        let correction = read("correction", &[levels], "metadata `levels`")?;
        let schedule = Schedule {
            levels: damping
                .chunks_exact(sweeps)
                .zip(&correction)
                .map(|(w, &c)| {
                    let used = w.iter().rposition(|&w| w != 0.0).map_or(0, |last| last + 1);
                    LevelSchedule {
                        damping: w[..used].to_vec(),
                        correction: c,
                    }
                })
                .collect(),
        };
        schedule
            .check()
            .map_err(|e| format_error(format!("tensors `damping`/`correction`: {e}")))?;
        Ok(Self {
            dim,
            schedule,
            coarse_operators,
            training_grid: meta.get("training_grid").cloned().unwrap_or_default(),
            training_command: meta.get("training_command").cloned().unwrap_or_default(),
            training_loss: meta.get("training_loss").cloned().unwrap_or_default(),
        })
    }

    /// Reads a model from `path`.
    pub fn load(path: &Path) -> Result<Self> {
        Self::from_bytes(&read_file(path)?)
    }
}

/// The batch-mean DCDM loss of the cycle with `schedule` on `a` (f64
/// cycle, the other options from `base`) over `rhs` (each of norm 1), and
/// its gradient with respect to [`Schedule::values`].
pub fn schedule_loss_and_gradient<R: AsRef<[f64]>>(
    a: &GridPoisson,
    schedule: &Schedule,
    base: &MultigridOptions,
    rhs: &[R],
) -> Result<(f64, Vec<f64>)> {
    loss_and_gradient_of(&training_cycle(a, schedule, base)?, a, rhs)
}

/// The f64 cycle with `schedule` on `a`, the other options from `base`.
fn training_cycle(
    a: &GridPoisson,
    schedule: &Schedule,
    base: &MultigridOptions,
) -> Result<Multigrid> {
    let options = MultigridOptions {
        schedule: Some(schedule.clone()),
        precision: Precision::Double,
        ..base.clone()
    };
    Multigrid::new(a, &options)
}

/// [`schedule_loss_and_gradient`] of the cycle `m` (its schedule).
fn loss_and_gradient_of<R: AsRef<[f64]>>(
    m: &Multigrid,
    a: &GridPoisson,
    rhs: &[R],
) -> Result<(f64, Vec<f64>)> {
    let parameters = m.schedule().parameters();
    let (mut loss, mut gradient) = (0.0, vec![0.0; parameters.len()]);
    for r in rhs {
        let r = r.as_ref();
        let (d, d_dots) = m.apply_with_tangents(r, &parameters)?;
        let (sample, dl_dd) = sample_loss(a, r, &d)?;
        loss += sample;
        for (g, d_dot) in gradient.iter_mut().zip(&d_dots) {
            *g += vector::dot(&dl_dd, d_dot);
        }
    }
    let count = rhs.len().max(1) as f64;
    gradient.iter_mut().for_each(|g| *g /= count);
    Ok((loss / count, gradient))
}

/// Options of [`train_schedule`].
#[derive(Debug, Clone)]
pub struct ScheduleTrainOptions {
    /// Adam steps. Default 60.
    pub steps: usize,
    /// Right-hand sides per step, drawn from the dataset. Default 8.
    pub batch: usize,
    /// Adam's learning rate. Default 0.02.
    pub learning_rate: f64,
    /// Seed of the batch draws.
    pub seed: u64,
}

impl Default for ScheduleTrainOptions {
    fn default() -> Self {
        Self {
            steps: 60,
            batch: 8,
            learning_rate: 0.02,
            seed: 1,
        }
    }
}

/// Trains `schedule` on `a` with the right-hand sides `data` (see the
/// module documentation); returns the loss of every step.
pub fn train_schedule(
    schedule: &mut Schedule,
    a: &GridPoisson,
    base: &MultigridOptions,
    data: &[Vec<f64>],
    options: &ScheduleTrainOptions,
) -> Result<Vec<f64>> {
    schedule.check()?;
    if data.is_empty() || options.batch == 0 {
        return Err(Error::invalid("data", "training needs data and batch ≥ 1"));
    }
    // The hierarchy does not depend on the schedule: built once.
    let mut m = training_cycle(a, schedule, base)?;
    let mut values = schedule.values();
    let mut adam = Adam::new(values.len(), options.learning_rate);
    let mut rng = SplitMix(options.seed);
    let mut history = Vec::with_capacity(options.steps);
    for _ in 0..options.steps {
        let batch: Vec<&[f64]> = (0..options.batch)
            .map(|_| data[(rng.next_u64() % data.len() as u64) as usize].as_slice())
            .collect();
        let (loss, gradient) = loss_and_gradient_of(&m, a, &batch)?;
        history.push(loss);
        adam.step(&mut values, &gradient);
        schedule.set_values(&values);
        project(schedule, base.damping);
        values = schedule.values();
        m.set_schedule(schedule.clone())?;
    }
    Ok(history)
}

/// Moves `schedule` to the nearest-by-halving schedule that passes
/// [`Schedule::check`]: corrections into [0, 2], each damping positive, and
/// a level's dampings pulled halfway to `classical` until its smoothing
/// polynomial stays within 1.
fn project(schedule: &mut Schedule, classical: f64) {
    for level in &mut schedule.levels {
        level.correction = level.correction.clamp(0.0, 2.0);
        for w in &mut level.damping {
            *w = w.max(1e-3);
        }
        for _ in 0..60 {
            if level.defect().is_none() {
                break;
            }
            for w in &mut level.damping {
                *w = 0.5 * (*w + classical);
            }
        }
    }
}
