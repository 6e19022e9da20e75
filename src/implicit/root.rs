//! Vector-Jacobian and Jacobian-vector products of the solution of a root
//! problem F(x, θ) = 0.

use crate::error::{Error, Result};
use crate::krylov::{
    bicgstab, cg, conclude, gmres, require_linear, true_residual, Identity, KrylovOptions,
    Preconditioner, SolveReason, SolveReport,
};
use crate::operator::{FnOperator, LinearOperator};

/// A product y = M v with one of the Jacobians, written into its output.
pub type JacobianProduct<'a> = &'a dyn Fn(&[f64], &mut [f64]) -> Result<()>;

/// What the products with A describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JacobianKind {
    /// A = ∂F/∂x given directly; Aᵀ products are needed for VJPs.
    General,
    /// F is a gradient, A a (symmetric) Hessian: Aᵀ = A, only A·v is needed.
    Symmetric,
    /// F(x, θ) = T(x, θ) − x: the products given are with ∂T/∂x (and its
    /// transpose) and ∂T/∂θ; A = ∂T/∂x − I, B = ∂T/∂θ.
    FixedPoint,
}

/// The Jacobian products of a root problem at its solution.
pub struct RootProblem<'a> {
    /// n: the number of unknowns x.
    pub dim: usize,
    /// p: the number of parameters θ.
    pub num_params: usize,
    /// How to read `a` and `a_t`.
    pub kind: JacobianKind,
    /// v ↦ A v (∂T/∂x v for a fixed point).
    pub a: JacobianProduct<'a>,
    /// u ↦ Aᵀ u (needed for VJPs unless `kind` is `Symmetric`).
    pub a_t: Option<JacobianProduct<'a>>,
    /// θ̇ ↦ B θ̇ (length p → n); needed for JVPs.
    pub b: Option<JacobianProduct<'a>>,
    /// u ↦ Bᵀ u (length n → p); needed for VJPs.
    pub b_t: Option<JacobianProduct<'a>>,
}

/// The linear solver of the adjoint or tangent system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinearSolver {
    /// Conjugate gradient (A symmetric positive definite).
    Cg,
    /// Restarted GMRES with the given restart length.
    Gmres(usize),
    /// BiCGStab.
    Bicgstab,
    /// CG on the normal equations MᵀM u = Mᵀ r (any nonsingular A; needs
    /// products with A and Aᵀ).
    NormalCg,
    /// Dense LU with partial pivoting (faer) of the system matrix, built
    /// column by column: for small n only (at most 4096).
    DenseLu,
}

/// Options of [`vjp`] and [`jvp`], independent of the forward solve.
pub struct ImplicitOptions<'a> {
    /// The linear solver. Default GMRES(30).
    pub solver: LinearSolver,
    /// Tolerances and iteration limit of the linear solve (rtol relative to
    /// the right-hand side). Default rtol 1e-10.
    pub krylov: KrylovOptions,
    /// Ridge ρ ≥ 0: solve with A + ρI (Aᵀ + ρI) instead. Default 0.
    pub ridge: f64,
    /// Warm start for the solution of the linear system (u or ẋ).
    pub warm_start: Option<&'a [f64]>,
    /// Preconditioner of the linear system (Krylov solvers only).
    pub precond: Option<&'a dyn Preconditioner>,
}

impl Default for ImplicitOptions<'_> {
    fn default() -> Self {
        Self {
            solver: LinearSolver::Gmres(30),
            krylov: KrylovOptions {
                rtol: 1e-10,
                ..KrylovOptions::default()
            },
            ridge: 0.0,
            warm_start: None,
            precond: None,
        }
    }
}

/// Largest n for [`LinearSolver::DenseLu`].
const DENSE_LU_MAX: usize = 4096;

impl RootProblem<'_> {
    /// y ← (A + ρI) v, or (Aᵀ + ρI) v when `transpose`.
    fn system_product(&self, transpose: bool, ridge: f64, v: &[f64], y: &mut [f64]) -> Result<()> {
        let map = if transpose && self.kind != JacobianKind::Symmetric {
            self.a_t.ok_or_else(|| {
                Error::invalid(
                    "a_t",
                    "products with Aᵀ are required (the Jacobian is not declared symmetric)",
                )
            })?
        } else {
            self.a
        };
        map(v, y)?;
        let shift = ridge
            - if self.kind == JacobianKind::FixedPoint {
                1.0
            } else {
                0.0
            };
        if shift != 0.0 {
            for (yi, vi) in y.iter_mut().zip(v) {
                *yi += shift * vi;
            }
        }
        Ok(())
    }

    /// Solves (A + ρI) z = rhs (or the transposed system) with the chosen solver.
    fn solve(
        &self,
        transpose: bool,
        rhs: &[f64],
        options: &ImplicitOptions<'_>,
    ) -> Result<(Vec<f64>, SolveReport)> {
        let n = self.dim;
        if !(options.ridge.is_finite() && options.ridge >= 0.0) {
            return Err(Error::invalid(
                "ridge",
                format!("ridge = {} must be finite and >= 0", options.ridge),
            ));
        }
        let product =
            |v: &[f64], y: &mut [f64]| self.system_product(transpose, options.ridge, v, y);
        let op = FnOperator::new(n, product);
        let mut z = vec![0.0; n];
        let mut krylov = options.krylov.clone();
        if let Some(start) = options.warm_start {
            Error::check_len("warm_start", n, start.len())?;
            z.copy_from_slice(start);
            krylov.nonzero_initial_guess = true;
        }
        let identity = Identity { dim: n };
        let precond: &dyn Preconditioner = options.precond.unwrap_or(&identity);
        let report = match options.solver {
            LinearSolver::Cg => cg(&op, precond, rhs, &mut z, &krylov)?,
            LinearSolver::Gmres(restart) => gmres(&op, precond, rhs, &mut z, &krylov, restart)?,
            LinearSolver::Bicgstab => bicgstab(&op, precond, rhs, &mut z, &krylov)?,
            LinearSolver::NormalCg => {
                let adjoint =
                    |v: &[f64], y: &mut [f64]| self.system_product(!transpose, options.ridge, v, y);
                normal_cg(&op, &adjoint, precond, rhs, &mut z, &krylov)?
            }
            LinearSolver::DenseLu => dense_lu_solve(&op, rhs, &mut z, &krylov)?,
        };
        Ok((z, report))
    }
}

/// Solves M z = rhs (M = `op`, Mᵀ = `adjoint`) by CG on the normal
/// equations MᵀM z = Mᵀ rhs, to the tolerance of the system asked for:
/// ‖rhs − M z‖₂ ≤ max(rtol·‖rhs‖₂, atol). A normal-equations residual
/// below its tolerance does not imply that (the condition number is
/// squared, and a singular M has Mᵀ rhs = 0 for rhs in its left null
/// space), so CG is resumed with a proportionally tighter tolerance while
/// the true residual keeps falling by at least half per round; when it
/// stops falling M is taken as singular or the system as inconsistent
/// ([`SolveReason::DivergedBreakdown`]). The report counts all rounds'
/// iterations and holds the true residual of M z = rhs.
fn normal_cg(
    op: &dyn LinearOperator,
    adjoint: JacobianProduct<'_>,
    precond: &dyn Preconditioner,
    rhs: &[f64],
    z: &mut [f64],
    options: &KrylovOptions,
) -> Result<SolveReport> {
    const MAX_ROUNDS: usize = 8;
    let n = op.dim();
    require_linear(precond, "the normal-equations CG")?;
    let setup = options.setup(n, precond.dim(), rhs, z)?;
    let mut normal_rhs = vec![0.0; n];
    adjoint(rhs, &mut normal_rhs)?;
    let scratch = std::cell::RefCell::new(vec![0.0; n]);
    let normal = FnOperator::new(n, |v: &[f64], y: &mut [f64]| {
        let mut t = scratch.borrow_mut();
        op.apply(v, &mut t)?;
        adjoint(&t, y)
    });
    let mut tmp = vec![0.0; n];
    let initial_residual = if options.nonzero_initial_guess {
        true_residual(op, rhs, z, &mut tmp)?
    } else {
        setup.b_norm
    };
    let mut inner_options = options.clone();
    let (mut iterations, mut previous, mut round) = (0, f64::INFINITY, 0);
    loop {
        round += 1;
        let inner = cg(&normal, precond, &normal_rhs, z, &inner_options)?;
        iterations += inner.iterations;
        let residual = true_residual(op, rhs, z, &mut tmp)?;
        let reason = if !residual.is_finite() {
            Some(SolveReason::DivergedNanOrInf)
        } else if residual <= setup.threshold {
            Some(setup.converged)
        } else if residual >= 0.5 * previous
            || round == MAX_ROUNDS
            || iterations >= options.max_iterations
        {
            Some(SolveReason::DivergedBreakdown)
        } else {
            None
        };
        if let Some(reason) = reason {
            let report = SolveReport {
                iterations,
                true_residual_norm: residual,
                initial_residual_norm: initial_residual,
                ..inner
            };
            return conclude(
                "CG on the normal equations",
                report,
                setup.b_norm,
                Ok(reason),
                || Ok(residual),
            );
        }
        previous = residual;
        let tighten = (0.5 * setup.threshold / residual).max(1e-8);
        inner_options.rtol *= tighten;
        inner_options.atol = (inner_options.atol * tighten).max(f64::MIN_POSITIVE);
        inner_options.nonzero_initial_guess = true;
        inner_options.max_iterations = options.max_iterations - iterations;
    }
}

/// Builds the n×n matrix of `op` from its products with unit vectors and
/// solves with faer's partial-pivoting LU. The true residual must meet the
/// options' tolerance max(rtol‖rhs‖, atol), else the matrix is taken as
/// numerically singular ([`SolveReason::DivergedBreakdown`]).
fn dense_lu_solve(
    op: &dyn LinearOperator,
    rhs: &[f64],
    z: &mut [f64],
    options: &KrylovOptions,
) -> Result<SolveReport> {
    use faer::linalg::solvers::Solve;
    let n = op.dim();
    if n > DENSE_LU_MAX {
        return Err(Error::invalid(
            "solver",
            format!("dense LU is for n <= {DENSE_LU_MAX}, got n = {n}"),
        ));
    }
    let setup = options.setup(n, n, rhs, z)?;
    let mut matrix = faer::Mat::<f64>::zeros(n, n);
    let (mut e, mut column) = (vec![0.0; n], vec![0.0; n]);
    for j in 0..n {
        e[j] = 1.0;
        op.apply(&e, &mut column)?;
        e[j] = 0.0;
        for (i, v) in column.iter().enumerate() {
            matrix[(i, j)] = *v;
        }
    }
    let solution = matrix.partial_piv_lu().solve(faer::ColRef::from_slice(rhs));
    for (zi, si) in z.iter_mut().zip(solution.iter()) {
        *zi = *si;
    }
    let residual = true_residual(op, rhs, z, &mut column)?;
    let mut report = options.new_report(setup.converged);
    report.residual_norm = residual;
    report.true_residual_norm = residual;
    report.initial_residual_norm = setup.b_norm;
    let reason = if !residual.is_finite() {
        SolveReason::DivergedNanOrInf
    } else if residual <= setup.threshold {
        setup.converged
    } else {
        SolveReason::DivergedBreakdown
    };
    conclude("dense LU", report, setup.b_norm, Ok(reason), || {
        Ok(residual)
    })
}

/// Vector-Jacobian product: for a cotangent v̄ ∈ ℝⁿ of x*, returns
/// (∂x*/∂θ)ᵀ v̄ = Bᵀu with (Aᵀ + ρI) u = −v̄, and the report of that solve.
/// A failed or unconverged solve is an error, never a silently wrong gradient.
pub fn vjp(
    problem: &RootProblem<'_>,
    cotangent: &[f64],
    options: &ImplicitOptions<'_>,
) -> Result<(Vec<f64>, SolveReport)> {
    Error::check_len("cotangent", problem.dim, cotangent.len())?;
    let b_t = problem
        .b_t
        .ok_or_else(|| Error::invalid("b_t", "products with Bᵀ are required for a VJP"))?;
    let rhs: Vec<f64> = cotangent.iter().map(|v| -v).collect();
    let (u, report) = problem.solve(true, &rhs, options)?;
    let mut out = vec![0.0; problem.num_params];
    b_t(&u, &mut out)?;
    Ok((out, report))
}

/// Jacobian-vector product: for a tangent θ̇ ∈ ℝᵖ, returns
/// ẋ = (∂x*/∂θ) θ̇ with (A + ρI) ẋ = −B θ̇, and the report of that solve.
pub fn jvp(
    problem: &RootProblem<'_>,
    tangent: &[f64],
    options: &ImplicitOptions<'_>,
) -> Result<(Vec<f64>, SolveReport)> {
    Error::check_len("tangent", problem.num_params, tangent.len())?;
    let b = problem
        .b
        .ok_or_else(|| Error::invalid("b", "products with B are required for a JVP"))?;
    let mut rhs = vec![0.0; problem.dim];
    b(tangent, &mut rhs)?;
    rhs.iter_mut().for_each(|v| *v = -*v);
    problem.solve(false, &rhs, options)
}
