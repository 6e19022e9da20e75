//! Implicit differentiation via linear solves (Blondel et al., "Efficient
//! and Modular Implicit Differentiation", NeurIPS 2022).
//!
//! For a solution x*(θ) of F(x, θ) = 0 with A = ∂F/∂x (n×n) and
//! B = ∂F/∂θ (n×p) at the solution, the implicit function theorem gives
//! ∂x*/∂θ = −A⁻¹B, so
//! - a vector-Jacobian product is Bᵀu with Aᵀu = −v̄ ([`vjp`]),
//! - a Jacobian-vector product is ẋ with A ẋ = −B θ̇ ([`jvp`]).
//!
//! The caller provides the products with A, Aᵀ, B and Bᵀ (closures, or C
//! callbacks through the C ABI). Linear solves x = A⁻¹b with a CSR or grid
//! operator have ready-made gradients ([`csr_solve_vjp`], [`grid_solve_vjp`]).
//!
//! ```
//! use adjunct::implicit::{vjp, ImplicitOptions, JacobianKind, LinearSolver, RootProblem};
//!
//! // F(x, θ) = (2 + θ) x − 1 (one unknown, one parameter): x* = 1/(2 + θ).
//! let theta = 0.5;
//! let x_star = 1.0 / (2.0 + theta);
//! let a = |v: &[f64], out: &mut [f64]| { out[0] = (2.0 + theta) * v[0]; Ok(()) };
//! let b_t = |u: &[f64], out: &mut [f64]| { out[0] = x_star * u[0]; Ok(()) };
//! let problem = RootProblem {
//!     dim: 1,
//!     num_params: 1,
//!     kind: JacobianKind::Symmetric,
//!     a: &a,
//!     a_t: None,
//!     b: None,
//!     b_t: Some(&b_t),
//! };
//! let options = ImplicitOptions { solver: LinearSolver::Cg, ..ImplicitOptions::default() };
//! // dx*/dθ = −1/(2 + θ)².
//! let (gradient, _) = vjp(&problem, &[1.0], &options)?;
//! assert!((gradient[0] + 1.0 / (2.0 + theta).powi(2)).abs() < 1e-10);
//! # Ok::<(), adjunct::Error>(())
//! ```

mod linear;
mod root;
mod transport;

pub use linear::{csr_solve_vjp, grid_solve_vjp, matrix_gradient, LinearSolveGradient};
pub use root::{
    jvp, vjp, ImplicitOptions, JacobianKind, JacobianProduct, LinearSolver, RootProblem,
};
pub use transport::{OtCostGradient, OtPoint, PlanVjp};
