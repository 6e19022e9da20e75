//! Gradients of entropic optimal transport (see [`crate::ot`]).
//!
//! At the solution the dual optimality conditions F(f, g) = (a − P1,
//! b − Pᵀ1) = 0 hold with P_ij = exp((f_i + g_j − C_ij)/ε), and
//! ∂F/∂(f, g) = −H/ε with H = [[diag(P1), P], [Pᵀ, diag(Pᵀ1)]], symmetric
//! positive semidefinite with the null direction (1, −1). Tangent and
//! adjoint systems H z = r are solved by the crate's CG, preconditioned by
//! the diagonal of H, with r and z kept orthogonal to (1, −1).

use crate::error::{Error, Result};
use crate::krylov::{cg, Jacobi, KrylovOptions, SolveReport};
use crate::operator::FnOperator;
use crate::ot::{self, project_out_null, CostMatrix};

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
    /// Σ_kl P̄_kl ∂P_kl/∂a_i (n), centred like [`OtCostGradient::a`].
    pub a: Vec<f64>,
    /// Σ_kl P̄_kl ∂P_kl/∂b_j (m).
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

    /// Solves H z = r on the complement of (1, −1).
    fn solve_hessian(
        &self,
        plan: &[f64],
        mut rhs: Vec<f64>,
        options: &KrylovOptions,
    ) -> Result<(Vec<f64>, SolveReport)> {
        let (n, m) = (self.f.len(), self.g.len());
        let rows: Vec<f64> = plan.chunks_exact(m).map(|r| r.iter().sum()).collect();
        let mut cols = vec![0.0; m];
        for row in plan.chunks_exact(m) {
            cols.iter_mut().zip(row).for_each(|(c, p)| *c += p);
        }
        let diag: Vec<f64> = rows.iter().chain(&cols).copied().collect();
        let shift = RELATIVE_SHIFT * diag.iter().fold(0.0f64, |acc, &d| acc.max(d));
        let hessian = FnOperator::new(n + m, |v: &[f64], y: &mut [f64]| {
            let (vf, vg) = v.split_at(n);
            let (yf, yg) = y.split_at_mut(n);
            for (i, row) in plan.chunks_exact(m).enumerate() {
                yf[i] =
                    (rows[i] + shift) * vf[i] + row.iter().zip(vg).map(|(p, g)| p * g).sum::<f64>();
            }
            for (j, yj) in yg.iter_mut().enumerate() {
                *yj = (cols[j] + shift) * vg[j];
            }
            for (row, fi) in plan.chunks_exact(m).zip(vf) {
                yg.iter_mut().zip(row).for_each(|(y, p)| *y += p * fi);
            }
            Ok(())
        });
        project_out_null(&mut rhs, n);
        let jacobi = Jacobi::from_diagonal(&diag.iter().map(|d| d + shift).collect::<Vec<_>>())?;
        let mut z = vec![0.0; n + m];
        let report = cg(&hessian, &jacobi, &rhs, &mut z, options)?;
        project_out_null(&mut z, n);
        Ok((z, report))
    }

    /// Vector-Jacobian product of the plan: for P̄ (n·m, row-major) returns
    /// the gradients of ⟨P̄, P⟩ wrt C, a and b. With Q = P̄ ⊙ P / ε and u the
    /// solution of H u = ε (Q1, Qᵀ1): ∂/∂a = u_f, ∂/∂b = u_g,
    /// ∂/∂C_ij = P_ij (u_f,i + u_g,j)/ε − Q_ij.
    pub fn plan_vjp(&self, plan_bar: &[f64], options: &KrylovOptions) -> Result<PlanVjp> {
        let (n, m) = self.check()?;
        Error::check_len("plan_bar", n * m, plan_bar.len())?;
        let plan = self.plan()?;
        let q: Vec<f64> = plan
            .iter()
            .zip(plan_bar)
            .map(|(p, pb)| p * pb / self.eps)
            .collect();
        let mut rhs = vec![0.0; n + m];
        for (i, row) in q.chunks_exact(m).enumerate() {
            rhs[i] = self.eps * row.iter().sum::<f64>();
            rhs[n..]
                .iter_mut()
                .zip(row)
                .for_each(|(r, v)| *r += self.eps * v);
        }
        let (u, report) = self.solve_hessian(&plan, rhs, options)?;
        let (uf, ug) = u.split_at(n);
        let mut cost = vec![0.0; n * m];
        for (i, ((row_c, row_p), row_q)) in cost
            .chunks_exact_mut(m)
            .zip(plan.chunks_exact(m))
            .zip(q.chunks_exact(m))
            .enumerate()
        {
            for (j, ((c, p), qv)) in row_c.iter_mut().zip(row_p).zip(row_q).enumerate() {
                *c = p * (uf[i] + ug[j]) / self.eps - qv;
            }
        }
        Ok(PlanVjp {
            cost,
            a: uf.to_vec(),
            b: ug.to_vec(),
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
        let plan = self.plan()?;
        let mut rhs: Vec<f64> = a_dot.iter().chain(b_dot).map(|v| self.eps * v).collect();
        for (i, (row_p, row_c)) in plan
            .chunks_exact(m)
            .zip(cost_dot.chunks_exact(m))
            .enumerate()
        {
            for (j, (p, c)) in row_p.iter().zip(row_c).enumerate() {
                rhs[i] += p * c;
                rhs[n + j] += p * c;
            }
        }
        let (z, report) = self.solve_hessian(&plan, rhs, options)?;
        let (fd, gd) = z.split_at(n);
        let mut plan_dot = vec![0.0; n * m];
        for (i, ((row_d, row_p), row_c)) in plan_dot
            .chunks_exact_mut(m)
            .zip(plan.chunks_exact(m))
            .zip(cost_dot.chunks_exact(m))
            .enumerate()
        {
            for (j, ((d, p), c)) in row_d.iter_mut().zip(row_p).zip(row_c).enumerate() {
                *d = p * (fd[i] + gd[j] - c) / self.eps;
            }
        }
        Ok((plan_dot, report))
    }
}
