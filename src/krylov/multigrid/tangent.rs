//! The V-cycle's derivatives with respect to parameters θ_1 … θ_P of its
//! [`Schedule`](super::Schedule) (forward mode, in f64): what training a
//! schedule needs. One pass carries the value and all P tangents.
//!
//! Differentiating each step of the cycle:
//!
//! - a sweep x ← x + ω D⁻¹ r (r = b − A x) gives ẋ ← ẋ + ω D⁻¹ ṙ + ω̇ D⁻¹ r
//!   with ṙ = ḃ − A ẋ, where ω̇ = 1 when ω is θ_j, else 0;
//! - the coarse correction x ← x + γ P e gives ẋ ← ẋ + γ P ė + γ̇ P e;
//! - restriction and the coarsest solve are linear and independent of θ.
//!
//! The fine right-hand side does not depend on θ (ḃ = 0).

use super::schedule::ScheduleParameter;
use super::transfer::Transfer;
use super::Multigrid;
use crate::error::Result;
use crate::operator::LinearOperator;

/// A vector and its derivative with respect to each parameter.
struct Dual {
    value: Vec<f64>,
    tangents: Vec<Vec<f64>>,
}

impl Dual {
    fn zeros(n: usize, parameters: usize) -> Self {
        Self {
            value: vec![0.0; n],
            tangents: vec![vec![0.0; n]; parameters],
        }
    }

    /// Applies the linear map `f(from, to)` to the value and every tangent.
    fn map_into(&self, out: &mut Dual, mut f: impl FnMut(&[f64], &mut [f64])) {
        f(&self.value, &mut out.value);
        for (from, to) in self.tangents.iter().zip(&mut out.tangents) {
            f(from, to);
        }
    }
}

impl Multigrid {
    /// d = M⁻¹ b and ∂d/∂θ_j for each of `thetas`, with the cycle run in
    /// f64 whatever its precision.
    pub(crate) fn apply_with_tangents(
        &self,
        b: &[f64],
        thetas: &[ScheduleParameter],
    ) -> Result<(Vec<f64>, Vec<Vec<f64>>)> {
        let b = Dual {
            value: b.to_vec(),
            tangents: vec![vec![0.0; b.len()]; thetas.len()],
        };
        let inv_diagonals = self.inv_diagonals();
        let x = self.tangent_vcycle(0, &b, thetas, &inv_diagonals)?;
        Ok((x.value, x.tangents))
    }

    fn tangent_vcycle(
        &self,
        l: usize,
        b: &Dual,
        thetas: &[ScheduleParameter],
        inv_diagonals: &[Vec<f64>],
    ) -> Result<Dual> {
        let n = b.value.len();
        let mut x = Dual::zeros(n, thetas.len());
        if l + 1 == self.levels.len() {
            let mut wide = vec![0.0; n];
            b.map_into(&mut x, |from, to| self.coarsest_solve(from, to, &mut wide));
            return Ok(x);
        }
        let level = &self.levels[l];
        let entry = self.schedule.entry_of_level(l);
        let schedule = self.schedule.level(l);
        let inv_diagonal = &inv_diagonals[l];
        let mut r = Dual {
            value: b.value.clone(),
            tangents: b.tangents.clone(),
        };
        let residual = |x: &Dual, r: &mut Dual| -> Result<()> {
            level.residual(&b.value, &x.value, &mut r.value)?;
            for ((b, x), r) in b.tangents.iter().zip(&x.tangents).zip(&mut r.tangents) {
                level.residual(b, x, r)?;
            }
            Ok(())
        };
        // x ← x + ω D⁻¹ r, and each tangent plus D⁻¹ r where θ_j is this ω.
        let sweep = |sweep: usize, r: &Dual, x: &mut Dual| {
            let omega = schedule.damping[sweep];
            for ((value, &w), &r) in x.value.iter_mut().zip(inv_diagonal).zip(&r.value) {
                *value += omega * w * r;
            }
            for ((tangent, r_dot), &theta) in x.tangents.iter_mut().zip(&r.tangents).zip(thetas) {
                let active = if theta == (ScheduleParameter::Damping { entry, sweep }) {
                    1.0
                } else {
                    0.0
                };
                for (((t, &w), &r_dot), &r) in tangent
                    .iter_mut()
                    .zip(inv_diagonal)
                    .zip(r_dot)
                    .zip(&r.value)
                {
                    *t += w * (omega * r_dot + active * r);
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
        let mut b_coarse = Dual::zeros(coarse.dim(), thetas.len());
        r.map_into(&mut b_coarse, |from, to| transfer.restrict(from, to));
        let e = self.tangent_vcycle(l + 1, &b_coarse, thetas, inv_diagonals)?;
        // x ← x + γ P e, and each tangent plus P e where θ_j is this γ.
        let mut correction = Dual::zeros(n, thetas.len());
        e.map_into(&mut correction, |from, to| transfer.prolong_add(from, to));
        let gamma = schedule.correction;
        for (value, c) in x.value.iter_mut().zip(&correction.value) {
            *value += gamma * c;
        }
        for ((tangent, c_dot), &theta) in
            x.tangents.iter_mut().zip(&correction.tangents).zip(thetas)
        {
            let active = theta == ScheduleParameter::Correction { entry };
            for ((t, &c_dot), &c) in tangent.iter_mut().zip(c_dot).zip(&correction.value) {
                *t += gamma * c_dot + if active { c } else { 0.0 };
            }
        }
        for k in (0..schedule.damping.len()).rev() {
            residual(&x, &mut r)?;
            sweep(k, &r, &mut x);
        }
        Ok(x)
    }
}
