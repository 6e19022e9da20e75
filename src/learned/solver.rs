//! The conjugate-direction solve as one policy: where the directions come
//! from, whether the two-level correction wraps them, serial or across
//! ranks. `adj_cdm_solve` converts its C arguments into this and nothing
//! more.

use super::direction::{Evaluation, NetworkDirection};
use super::io::AnyModel;
use crate::error::{Error, Result};
use crate::krylov::{
    conjugate_direction_reduced, AllreduceSum, CoarseSpace, ConjugateDirectionOptions,
    ConjugateDirectionReport, Preconditioner, TwoLevel,
};
use crate::operator::{GridPoisson, LinearOperator};

/// Where the search directions D(r) come from.
#[derive(Clone, Copy)]
pub enum Directions<'a> {
    /// A loaded model: a direction network (D = N), or a learned multigrid
    /// schedule (D = its V-cycle: the method is then PCG). Needs a grid
    /// operator of the model's dimension.
    Model(&'a AnyModel),
    /// Any preconditioner, linear (a flexible PCG) or not (a caller's
    /// network).
    Map(&'a dyn Preconditioner),
}

/// Whether the two-level correction of [`TwoLevel`] wraps the directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CoarseCorrection {
    /// As a direction network's model file says (its `coarse_block`, as the
    /// shipped models ask for); none for every other source.
    #[default]
    AsModelSays,
    /// No correction.
    Off,
    /// Aggregates of this many cells per axis (at least 2).
    Blocks(usize),
}

/// A configured conjugate-direction solve (Kaneda et al. 2023): directions,
/// their two-level correction, the network's evaluation, the iteration's
/// options and, for a distributed problem, the sum over ranks.
///
/// ```
/// use adjunct::learned::{CoarseCorrection, ConjugateDirectionSolver, Directions};
/// use adjunct::{scene, Jacobi};
///
/// let problem = scene::obstacles([32, 32, 1], 1)?;
/// let a = problem.operator()?;
/// let jacobi = Jacobi::new(&a)?;
/// let solver = ConjugateDirectionSolver::new(Directions::Map(&jacobi))
///     .coarse_correction(CoarseCorrection::Blocks(4));
/// let mut x = vec![0.0; problem.rhs.len()];
/// let report = solver.solve(&a, &problem.rhs, &mut x)?;
/// assert!(report.solve.reason.converged());
/// # Ok::<(), adjunct::Error>(())
/// ```
#[derive(Clone)]
pub struct ConjugateDirectionSolver<'a> {
    directions: Directions<'a>,
    coarse: CoarseCorrection,
    evaluation: Evaluation,
    options: ConjugateDirectionOptions,
    allreduce: Option<AllreduceSum<'a>>,
}

impl<'a> ConjugateDirectionSolver<'a> {
    /// A serial solve with `directions`, the correction the model asks for,
    /// the fastest evaluation and default options.
    pub fn new(directions: Directions<'a>) -> Self {
        Self {
            directions,
            coarse: CoarseCorrection::default(),
            evaluation: Evaluation::default(),
            options: ConjugateDirectionOptions::default(),
            allreduce: None,
        }
    }

    /// Sets the two-level correction.
    pub fn coarse_correction(mut self, coarse: CoarseCorrection) -> Self {
        self.coarse = coarse;
        self
    }

    /// Sets how a direction network is evaluated.
    pub fn evaluation(mut self, evaluation: Evaluation) -> Self {
        self.evaluation = evaluation;
        self
    }

    /// Sets the tolerances, iteration limit and history.
    pub fn options(mut self, options: ConjugateDirectionOptions) -> Self {
        self.options = options;
        self
    }

    /// Makes the solve distributed: each rank passes its part of the
    /// problem (its rows of A, doing their own halo exchange; a local
    /// direction map) and `allreduce` sums over ranks, as for
    /// [`cg_single_reduction`](crate::krylov::cg_single_reduction). Two
    /// reductions per iteration (the orthogonalisation coefficients with
    /// ‖r‖²; then the step's inner products), two more for a fallback step,
    /// one per true-residual recomputation; all ranks take the same steps,
    /// and a local failure is reported on every rank at the next reduction.
    pub fn allreduce(mut self, allreduce: AllreduceSum<'a>) -> Self {
        self.allreduce = Some(allreduce);
        self
    }

    /// Solves A x = b to ‖b − A x‖₂ ≤ max(rtol·‖b‖₂, atol). A model's
    /// directions and the two-level correction need `op` to be a grid
    /// operator ([`LinearOperator::as_grid`]); the correction's coarse space
    /// is built from it on every call.
    pub fn solve(
        &self,
        op: &dyn LinearOperator,
        b: &[f64],
        x: &mut [f64],
    ) -> Result<ConjugateDirectionReport> {
        let coarse_block = match (self.coarse, self.directions) {
            (CoarseCorrection::AsModelSays, Directions::Model(AnyModel::Directions(m))) => {
                m.coarse_block
            }
            (CoarseCorrection::AsModelSays | CoarseCorrection::Off, _) => 0,
            (CoarseCorrection::Blocks(block), _) => block,
        };
        let network;
        let multigrid;
        let base: &dyn Preconditioner = match self.directions {
            Directions::Model(AnyModel::Directions(m)) => {
                let grid = grid_of(op, "op", MODEL_NEEDS_GRID)?;
                network = NetworkDirection::with_evaluation(grid, &m.network, 0, self.evaluation)?;
                &network
            }
            Directions::Model(AnyModel::Multigrid(m)) => {
                multigrid = m.multigrid(grid_of(op, "op", MODEL_NEEDS_GRID)?)?;
                &multigrid
            }
            Directions::Map(map) => map,
        };
        let two_level;
        let directions: &dyn Preconditioner = if coarse_block == 0 {
            base
        } else {
            let grid = grid_of(
                op,
                "coarse_block",
                "the two-level correction needs a grid Poisson operator (set coarse_block = 0)",
            )?;
            two_level = TwoLevel::new(grid, CoarseSpace::new(grid, coarse_block)?, base)?;
            &two_level
        };
        conjugate_direction_reduced(op, directions, b, x, &self.options, self.allreduce)
    }
}

const MODEL_NEEDS_GRID: &str = "a model's directions need a grid Poisson operator";

/// `op` as a grid operator, or an error naming `argument`, the setting that
/// needs one, and saying `why`.
fn grid_of<'o>(
    op: &'o dyn LinearOperator,
    argument: &'static str,
    why: &'static str,
) -> Result<&'o GridPoisson> {
    op.as_grid().ok_or_else(|| Error::invalid(argument, why))
}
