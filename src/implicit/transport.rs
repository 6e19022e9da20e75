//! Gradients of entropic optimal transport (see [`crate::ot`]).
//!
//! At the solution the dual optimality conditions F(f, g) = (a − P1,
//! b − Pᵀ1) = 0 hold with P_ij = exp((f_i + g_j − C_ij)/ε), and
//! ∂F/∂(f, g) = −H/ε with H = [[diag(P1), P], [Pᵀ, diag(Pᵀ1)]], symmetric
//! positive semidefinite with the null direction (1, −1). Tangent and
//! adjoint systems H z = r are solved with r and z kept orthogonal to
//! (1, −1), by CG on the Schur complement of H on the g block with its
//! diagonal as preconditioner (the solver of the SNS Newton steps, here with
//! the exact plan; the residual reported is that of H z = r).

use crate::error::{Error, Result};
use crate::krylov::{KrylovOptions, SolveReport};
use crate::ot::{self, CostMatrix, DensePlan, OtHessian};
use crate::parallel::for_each_chunk;

/// Diagonal shift of H relative to its largest diagonal entry (keeps it
/// definite; far below the solve tolerance).
const RELATIVE_SHIFT: f64 = 1e-14;

/// A converged entropic OT solution, as needed for its derivatives.
pub struct OtPoint<'a> {
    /// The cost C (n×m).
    pub cost: &'a CostMatrix,
    /// The regularisation ε.
    pub eps: f64,
    /// Potential f (n).
    pub f: &'a [f64],
    /// Potential g (m).
    pub g: &'a [f64],
}

/// The gradient of the regularised OT cost OT_ε(C, a, b) = ⟨C,P⟩ + εΣP(log P − 1).
#[derive(Debug, Clone)]
pub struct OtCostGradient {
    /// ∂OT_ε/∂C = P (n·m, row-major).
    pub cost: Vec<f64>,
    /// ∂OT_ε/∂a = f, centred to mean 0 (a and b keep equal mass, so the
    /// gradient wrt (a, b) is defined up to adding (c, −c)).
    pub a: Vec<f64>,
    /// ∂OT_ε/∂b = g + mean(f), the matching shift.
    pub b: Vec<f64>,
}

/// A vector-Jacobian product of the plan P.
#[derive(Debug, Clone)]
pub struct PlanVjp {
    /// Σ_kl P̄_kl ∂P_kl/∂C_ij (n·m, row-major).
    pub cost: Vec<f64>,
    /// Σ_kl P̄_kl ∂P_kl/∂a_i (n), centred (Σ = 0) like [`OtCostGradient::a`].
    pub a: Vec<f64>,
    /// Σ_kl P̄_kl ∂P_kl/∂b_j (m), in the same gauge: (a + c, b − c) is the
    /// same gradient for any c, as a and b keep equal mass.
    pub b: Vec<f64>,
    /// The report of the adjoint CG solve.
    pub report: SolveReport,
}

impl OtPoint<'_> {
    fn check(&self) -> Result<(usize, usize)> {
        let (n, m) = (self.cost.rows(), self.cost.cols());
        Error::check_len("f", n, self.f.len())?;
        Error::check_len("g", m, self.g.len())?;
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(Error::invalid(
                "eps",
                format!("eps = {} must be finite and > 0", self.eps),
            ));
        }
        Ok((n, m))
    }

    fn plan(&self) -> Result<Vec<f64>> {
        let (n, m) = self.check()?;
        let mut plan = vec![0.0; n * m];
        ot::write_plan(self.cost, self.eps, self.f, self.g, &mut plan)?;
        Ok(plan)
    }

    /// The gradient of the regularised cost: (P, f, g), centred.
    pub fn cost_gradient(&self) -> Result<OtCostGradient> {
        let plan = self.plan()?;
        let mut a = self.f.to_vec();
        let mut b = self.g.to_vec();
        let shift = a.iter().sum::<f64>() / a.len() as f64;
        a.iter_mut().for_each(|v| *v -= shift);
        b.iter_mut().for_each(|v| *v += shift);
        Ok(OtCostGradient { cost: plan, a, b })
    }

    /// With W = P ⊙ X (elementwise): solves H z = y + (W1, Wᵀ1) on the
    /// complement of (1, −1) and returns D_ij = P_ij (z_f,i + z_g,j − X_ij)/ε,
    /// z and the report: the VJP and the JVP of the plan both have this form.
    fn plan_derivative(
        &self,
        x: &[f64],
        mut y: Vec<f64>,
        options: &KrylovOptions,
    ) -> Result<(Vec<f64>, Vec<f64>, SolveReport)> {
        let (n, m) = self.check()?;
        let plan = self.plan()?;
        let mut out = vec![0.0; n * m];
        for_each_chunk(&mut out, m, n * m, |i, row| {
            let range = i * m..(i + 1) * m;
            for ((w, p), x) in row.iter_mut().zip(&plan[range.clone()]).zip(&x[range]) {
                *w = p * x;
            }
        });
        let (w_rows, w_cols) = DensePlan { values: &out, m }.marginals();
        for (y, w) in y.iter_mut().zip(w_rows.iter().chain(&w_cols)) {
            *y += w;
        }
        let plan_rows = DensePlan { values: &plan, m };
        let (rows, cols) = plan_rows.marginals();
        let hessian = OtHessian::new(plan_rows, &rows, &cols, RELATIVE_SHIFT);
        let (z, report) = hessian.solve(&y, options)?;
        let (z_f, z_g) = z.split_at(n);
        let inv_eps = 1.0 / self.eps;
        for_each_chunk(&mut out, m, n * m, |i, row| {
            let range = i * m..(i + 1) * m;
            for (((d, p), x), zg) in row
                .iter_mut()
                .zip(&plan[range.clone()])
                .zip(&x[range])
                .zip(z_g)
            {
                *d = p * (z_f[i] + zg - x) * inv_eps;
            }
        });
        Ok((out, z, report))
    }

    /// Vector-Jacobian product of the plan: for P̄ (n·m, row-major) returns
    /// the gradients of ⟨P̄, P⟩ wrt C, a and b. With Q = P̄ ⊙ P / ε and u the
    /// solution of H u = ε (Q1, Qᵀ1): ∂/∂a = u_f, ∂/∂b = u_g,
    /// ∂/∂C_ij = P_ij (u_f,i + u_g,j)/ε − Q_ij.
    pub fn plan_vjp(&self, plan_bar: &[f64], options: &KrylovOptions) -> Result<PlanVjp> {
        let (n, m) = self.check()?;
        Error::check_len("plan_bar", n * m, plan_bar.len())?;
        let (cost, u, report) = self.plan_derivative(plan_bar, vec![0.0; n + m], options)?;
        let (uf, ug) = u.split_at(n);
        // The same gauge as the cost gradient: (a, b) keep equal mass, so
        // the gradient is defined up to (c, −c); choose Σ a = 0.
        let mean = uf.iter().sum::<f64>() / n as f64;
        Ok(PlanVjp {
            cost,
            a: uf.iter().map(|v| v - mean).collect(),
            b: ug.iter().map(|v| v + mean).collect(),
            report,
        })
    }

    /// Jacobian-vector product of the plan for tangents Ċ (n·m), ȧ (n), ḃ
    /// (m) with Σȧ = Σḃ: Ṗ_ij = P_ij (ḟ_i + ġ_j − Ċ_ij)/ε where
    /// H (ḟ, ġ) = ε (ȧ, ḃ) + (PĊ-row sums, PĊ-column sums), P Ċ elementwise.
    pub fn plan_jvp(
        &self,
        cost_dot: &[f64],
        a_dot: &[f64],
        b_dot: &[f64],
        options: &KrylovOptions,
    ) -> Result<(Vec<f64>, SolveReport)> {
        let (n, m) = self.check()?;
        Error::check_len("cost_dot", n * m, cost_dot.len())?;
        Error::check_len("a_dot", n, a_dot.len())?;
        Error::check_len("b_dot", m, b_dot.len())?;
        let (sa, sb) = (a_dot.iter().sum::<f64>(), b_dot.iter().sum::<f64>());
        if (sa - sb).abs()
            > 1e-10
                * (a_dot.iter().chain(b_dot).map(|v| v.abs()).sum::<f64>()).max(f64::MIN_POSITIVE)
        {
            return Err(Error::invalid(
                "b_dot",
                format!("tangents must keep equal mass: sum(a_dot) = {sa:e}, sum(b_dot) = {sb:e}"),
            ));
        }
        let y: Vec<f64> = a_dot.iter().chain(b_dot).map(|v| self.eps * v).collect();
        let (plan_dot, _, report) = self.plan_derivative(cost_dot, y, options)?;
        Ok((plan_dot, report))
    }
}
