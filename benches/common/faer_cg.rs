//! The peer in the CG benchmarks: faer's `matrix_free::conjugate_gradient`
//! on a faer CSR matrix, unpreconditioned. Shared by `benches/cg.rs` and
//! `examples/bench_cg.rs`.

use adjunct::CsrMatrix;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::matrix_free::conjugate_gradient::{
    conjugate_gradient, conjugate_gradient_scratch, CgParams,
};
use faer::matrix_free::{IdentityPrecond, InitialGuessStatus};
use faer::{Mat, MatRef, Par};

/// Solves A x = b with faer's CG to ‖r‖ ≤ rtol·‖b‖ (at most `max_iterations`),
/// starting from x = 0; returns x and the iteration count.
pub fn faer_cg(
    a: &CsrMatrix,
    b: &[f64],
    rtol: f64,
    max_iterations: usize,
    par: Par,
) -> (Vec<f64>, usize) {
    let n = b.len();
    let op = a.as_faer();
    let precond = IdentityPrecond { dim: n };
    // faer ignores b when told the guess is zero (InitialGuessStatus::Zero),
    // so pass a zeroed x with the default MaybeNonZero status.
    let mut x = Mat::<f64>::zeros(n, 1);
    let rhs = MatRef::from_column_major_slice(b, n, 1);
    let params = CgParams::<f64> {
        initial_guess: InitialGuessStatus::MaybeNonZero,
        rel_tolerance: rtol,
        abs_tolerance: 0.0,
        max_iters: max_iterations,
        ..Default::default()
    };
    let mut mem = MemBuffer::new(conjugate_gradient_scratch(precond, op, 1, par));
    let iterations = match conjugate_gradient(
        x.as_mut(),
        precond,
        op,
        rhs,
        params,
        |_| {},
        par,
        MemStack::new(&mut mem),
    ) {
        Ok(info) => info.iter_count,
        Err(_) => max_iterations,
    };
    (x.col(0).iter().copied().collect(), iterations)
}
