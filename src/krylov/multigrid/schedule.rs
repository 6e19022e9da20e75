//! The smoothing schedule of the V-cycle: per level, the damping of each
//! Jacobi sweep and the scale of the coarse correction.
//!
//! On level l with sweeps ω_1 … ω_ν and correction γ the cycle runs
//!
//! - pre-smoothing x ← x + ω_k D⁻¹ (b − A x) for k = 1 … ν (from x = 0),
//! - the coarse correction x ← x + γ P e_c,
//! - post-smoothing with the same sweeps in reverse order, ω_ν … ω_1.
//!
//! Every sweep's error propagation I − ω D⁻¹A is a polynomial in D⁻¹A, so
//! pre- and post-smoothing commute and each is the A-adjoint of the other;
//! with E = p(D⁻¹A), p(λ) = Π_k (1 − ω_k λ), the cycle is
//! M⁻¹ = A⁻¹(I − Eᵀ²) + γ E P M_c⁻¹ R Eᵀ: symmetric, and positive definite
//! whenever |p(λ)| < 1 on the spectrum of D⁻¹A (which Gershgorin puts in
//! [0, 2] for these weakly diagonally dominant stencils; λ = 0 only on an
//! enclosed region's null space) and γ ≥ 0. [`Schedule::check`] enforces
//! both, so a learned schedule cannot make CG's preconditioner indefinite.
//!
//! The classical cycle is ν sweeps of one damping and γ = 1 on every level.

use crate::error::{Error, Result};

/// The smoothing of one level.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelSchedule {
    /// Damping ω_k of each pre-smoothing sweep, in order (post-smoothing
    /// runs them in reverse). At least one.
    pub damping: Vec<f64>,
    /// The scale γ ∈ [0, 2] of the coarse correction (1 = plain).
    pub correction: f64,
}

/// The smoothing of every level, finest first; the last entry serves
/// every coarser level, so one schedule fits hierarchies of any depth.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Per level, finest first. At least one.
    pub levels: Vec<LevelSchedule>,
}

/// One parameter of a [`Schedule`], for training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleParameter {
    /// The damping of sweep `sweep` of entry `entry`.
    Damping {
        /// Index into [`Schedule::levels`].
        entry: usize,
        /// Index into [`LevelSchedule::damping`].
        sweep: usize,
    },
    /// The coarse-correction scale of entry `entry`.
    Correction {
        /// Index into [`Schedule::levels`].
        entry: usize,
    },
}

/// Points of [0, 2] at which the smoothing polynomial is bounded.
const BOUND_SAMPLES: usize = 4096;

impl LevelSchedule {
    /// |p(λ)| = |Π_k (1 − ω_k λ)|, the amplification of an error component
    /// of D⁻¹A-eigenvalue λ.
    fn amplification_at(&self, lambda: f64) -> f64 {
        self.damping
            .iter()
            .map(|w| 1.0 - w * lambda)
            .product::<f64>()
            .abs()
    }

    /// max |p(λ)| over λ ∈ [0, 2] (sampled at 4097 points, and at 2):
    /// the worst error amplification of the level's smoothing.
    pub fn amplification(&self) -> f64 {
        (0..=BOUND_SAMPLES)
            .map(|i| self.amplification_at(2.0 * i as f64 / BOUND_SAMPLES as f64))
            .fold(0.0, f64::max)
    }

    /// Why this level would make the cycle indefinite, if it would: a
    /// damping not finite and positive, γ outside [0, 2], or |p(λ)| > 1 on
    /// [0, 2] or |p(2)| = 1.
    pub(crate) fn defect(&self) -> Option<String> {
        if self.damping.is_empty() {
            return Some("has no smoothing sweep".into());
        }
        if let Some(w) = self.damping.iter().find(|w| !(w.is_finite() && **w > 0.0)) {
            return Some(format!("has damping {w} (must be finite and > 0)"));
        }
        if !(0.0..=2.0).contains(&self.correction) {
            return Some(format!(
                "has correction {} (must be in [0, 2])",
                self.correction
            ));
        }
        let worst = self.amplification();
        if worst > 1.0 + 1e-12 || self.amplification_at(2.0) >= 1.0 {
            return Some(format!(
                "has damping {:?}, which amplifies some error by {worst:.3} (the smoothing polynomial must stay within 1 on [0, 2])",
                self.damping
            ));
        }
        None
    }
}

impl Schedule {
    /// ν·2^min(l, k) sweeps of damping ω and γ = 1 on level l: the sweep
    /// count doubles on the k levels below the finest, then stays.
    pub fn doubling(sweeps: usize, damping: f64, doublings: usize) -> Self {
        Self {
            levels: (0..=doublings)
                .map(|l| LevelSchedule {
                    damping: vec![damping; sweeps << l],
                    correction: 1.0,
                })
                .collect(),
        }
    }

    /// ν sweeps of damping ω and γ = 1 on every level.
    pub fn classical(sweeps: usize, damping: f64) -> Self {
        Self::doubling(sweeps, damping, 0)
    }

    /// ν sweeps of Chebyshev smoothing on every level: the dampings are
    /// the inverses of the roots of the degree-ν Chebyshev polynomial on
    /// [λ_low, 2], which minimises max |p(λ)| there (the error components
    /// of D⁻¹A-eigenvalue above λ_low are the smoother's; below, the coarse
    /// grid's), and γ = 1. `lower` = λ_low ∈ (0, 2).
    pub fn chebyshev(sweeps: usize, lower: f64) -> Self {
        let (centre, radius) = (0.5 * (2.0 + lower), 0.5 * (2.0 - lower));
        let damping = (0..sweeps)
            .map(|k| {
                let angle = std::f64::consts::PI * (2 * k + 1) as f64 / (2 * sweeps) as f64;
                1.0 / (centre + radius * angle.cos())
            })
            .collect();
        Self {
            levels: vec![LevelSchedule {
                damping,
                correction: 1.0,
            }],
        }
    }

    /// The entry that serves level `l` (0 = finest).
    pub fn entry_of_level(&self, l: usize) -> usize {
        l.min(self.levels.len() - 1)
    }

    /// The schedule of level `l` (0 = finest).
    pub fn level(&self, l: usize) -> &LevelSchedule {
        &self.levels[self.entry_of_level(l)]
    }

    /// Every parameter: per entry its dampings in order, then its
    /// correction (the order of [`Schedule::values`]).
    pub fn parameters(&self) -> Vec<ScheduleParameter> {
        let mut out = Vec::new();
        for (entry, level) in self.levels.iter().enumerate() {
            out.extend(
                (0..level.damping.len()).map(|sweep| ScheduleParameter::Damping { entry, sweep }),
            );
            out.push(ScheduleParameter::Correction { entry });
        }
        out
    }

    /// The value of every parameter, in the order of [`Schedule::parameters`].
    pub fn values(&self) -> Vec<f64> {
        self.parameters()
            .into_iter()
            .map(|p| *self.value(p))
            .collect()
    }

    /// Sets every parameter from `values` (in the order of
    /// [`Schedule::parameters`]; extra values are ignored).
    pub fn set_values(&mut self, values: &[f64]) {
        for (p, &v) in self.parameters().into_iter().zip(values) {
            *self.value_mut(p) = v;
        }
    }

    fn value(&self, p: ScheduleParameter) -> &f64 {
        match p {
            ScheduleParameter::Damping { entry, sweep } => &self.levels[entry].damping[sweep],
            ScheduleParameter::Correction { entry } => &self.levels[entry].correction,
        }
    }

    fn value_mut(&mut self, p: ScheduleParameter) -> &mut f64 {
        match p {
            ScheduleParameter::Damping { entry, sweep } => &mut self.levels[entry].damping[sweep],
            ScheduleParameter::Correction { entry } => &mut self.levels[entry].correction,
        }
    }

    /// The schedule of a hierarchy that starts at level `l` of this one.
    pub(crate) fn starting_at(&self, l: usize) -> Self {
        Self {
            levels: self.levels[l.min(self.levels.len() - 1)..].to_vec(),
        }
    }

    /// Checks that the cycle it makes is symmetric positive definite: every
    /// damping finite and positive, |p(λ)| ≤ 1 on [0, 2] with |p(2)| < 1,
    /// and γ ∈ [0, 2].
    pub fn check(&self) -> Result<()> {
        let invalid = |message: String| Err(Error::invalid("schedule", message));
        if self.levels.is_empty() {
            return invalid("a schedule needs at least one level".into());
        }
        for (l, level) in self.levels.iter().enumerate() {
            if let Some(defect) = level.defect() {
                return invalid(format!("level {l} {defect}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubling_doubles_the_sweeps_then_stays() {
        let schedule = Schedule::doubling(2, 0.9, 2);
        let sweeps: Vec<usize> = (0..6).map(|l| schedule.level(l).damping.len()).collect();
        assert_eq!(sweeps, [2, 4, 8, 8, 8, 8]);
        assert!(schedule.check().is_ok());
        assert_eq!(Schedule::doubling(3, 0.9, 0), Schedule::classical(3, 0.9));
    }

    #[test]
    fn classical_damping_is_bounded_and_overrelaxation_is_refused() {
        assert!(Schedule::classical(2, 0.8).check().is_ok());
        assert!(Schedule::classical(1, 1.0).check().is_err());
        // ω = 1.2 alone amplifies λ = 2 by 1.4.
        assert!(Schedule::classical(1, 1.2).check().is_err());
        // A pair may overrelax as long as the product stays within 1:
        // (1 − 1.2λ)(1 − 0.5λ) is 1 at λ = 0 and ≥ −0.21 on (0, 2].
        let pair = LevelSchedule {
            damping: vec![1.2, 0.5],
            correction: 1.0,
        };
        let p = |l: f64| ((1.0 - 1.2 * l) * (1.0 - 0.5 * l)).abs();
        let worst = (0..=2000).map(|i| p(i as f64 / 1000.0)).fold(0.0, f64::max);
        assert!((pair.amplification() - worst).abs() < 1e-6);
        let schedule = Schedule { levels: vec![pair] };
        assert!(schedule.check().is_ok());
    }
}
