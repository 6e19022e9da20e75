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

mod linear;
mod root;
mod transport;

pub use linear::{csr_solve_vjp, grid_solve_vjp, matrix_gradient, LinearSolveGradient};
pub use root::{
    jvp, vjp, ImplicitOptions, JacobianKind, JacobianProduct, LinearSolver, RootProblem,
};
pub use transport::{OtCostGradient, OtPoint, PlanVjp};
