//! The V-cycle's derivative with respect to one parameter θ of its
//! [`Schedule`](super::Schedule) (forward mode, in f64): what training a
//! schedule needs.
//!
//! Differentiating each step of the cycle:
//!
//! - a sweep x ← x + ω D⁻¹ r (r = b − A x) gives ẋ ← ẋ + ω D⁻¹ ṙ + ω̇ D⁻¹ r
//!   with ṙ = ḃ − A ẋ, where ω̇ = 1 when ω is θ, else 0;
//! - the coarse correction x ← x + γ P e gives ẋ ← ẋ + γ P ė + γ̇ P e;
//! - restriction and the coarsest solve are linear and independent of θ.
//!
//! The fine right-hand side does not depend on θ (ḃ = 0).

use super::schedule::ScheduleParameter;
use super::transfer::Transfer;
use super::Multigrid;
use crate::error::Result;
use crate::operator::LinearOperator;

/// A vector and its derivative.
struct Dual {
    value: Vec<f64>,
    tangent: Vec<f64>,
}

impl Dual {
    fn zeros(n: usize) -> Self {
        Self {
            value: vec![0.0; n],
            tangent: vec![0.0; n],
        }
    }
}

impl Multigrid {
    /// d = M⁻¹ b and ∂d/∂θ, with the cycle run in f64 whatever its
    /// precision.
    pub(crate) fn apply_with_tangent(
        &self,
        b: &[f64],
        theta: ScheduleParameter,
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let b = Dual {
            value: b.to_vec(),
            tangent: vec![0.0; b.len()],
        };
        let x = self.tangent_vcycle(0, &b, theta)?;
        Ok((x.value, x.tangent))
    }

    fn tangent_vcycle(&self, l: usize, b: &Dual, theta: ScheduleParameter) -> Result<Dual> {
        let n = b.value.len();
        let mut x = Dual::zeros(n);
        if l + 1 == self.levels.len() {
            let mut wide = vec![0.0; n];
            self.coarsest_solve(&b.value, &mut x.value, &mut wide);
            self.coarsest_solve(&b.tangent, &mut x.tangent, &mut wide);
            return Ok(x);
        }
        let level = &self.levels[l];
        let entry = self.schedule.entry_of_level(l);
        let schedule = self.schedule.level(l);
        let diagonal = match &level.galerkin {
            Some(a) => a.diagonal(),
            None => level.op.diagonal(),
        }
        .unwrap_or_default();
        let inv_diagonal: Vec<f64> = diagonal
            .iter()
            .map(|&d| if d > 0.0 { 1.0 / d } else { 0.0 })
            .collect();
        let mut r = Dual {
            value: b.value.clone(),
            tangent: b.tangent.clone(),
        };
        let residual = |x: &Dual, r: &mut Dual| -> Result<()> {
            level.residual(&b.value, &x.value, &mut r.value)?;
            level.residual(&b.tangent, &x.tangent, &mut r.tangent)
        };
        let sweep = |sweep: usize, r: &Dual, x: &mut Dual| {
            let omega = schedule.damping[sweep];
            let active = theta == ScheduleParameter::Damping { entry, sweep };
            let rows = x.value.iter_mut().zip(x.tangent.iter_mut());
            for ((value, tangent), ((&w, &r), &r_dot)) in
                rows.zip(inv_diagonal.iter().zip(&r.value).zip(&r.tangent))
            {
                let step = w * r;
                *value += omega * step;
                *tangent += omega * w * r_dot;
                if active {
                    *tangent += step;
                }
            }
        };
        for k in 0..schedule.damping.len() {
            sweep(k, &r, &mut x);
            residual(&x, &mut r)?;
        }
        let coarse = &self.levels[l + 1].op;
        let transfer = Transfer {
            fine: &level.op,
            coarse,
            shift: [0; 3],
        };
        let mut b_coarse = Dual::zeros(coarse.dim());
        transfer.restrict(&r.value, &mut b_coarse.value);
        transfer.restrict(&r.tangent, &mut b_coarse.tangent);
        let e = self.tangent_vcycle(l + 1, &b_coarse, theta)?;
        let mut correction = Dual::zeros(n);
        transfer.prolong_add(&e.value, &mut correction.value);
        transfer.prolong_add(&e.tangent, &mut correction.tangent);
        let gamma = schedule.correction;
        let active = theta == ScheduleParameter::Correction { entry };
        for i in 0..n {
            x.value[i] += gamma * correction.value[i];
            x.tangent[i] += gamma * correction.tangent[i];
            if active {
                x.tangent[i] += correction.value[i];
            }
        }
        for k in (0..schedule.damping.len()).rev() {
            residual(&x, &mut r)?;
            sweep(k, &r, &mut x);
        }
        Ok(x)
    }
}
