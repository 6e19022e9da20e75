//! Multigrid-preconditioned CG on a distributed grid.

use super::comm::CommStats;
use super::grid::DistributedGridPoisson;
use super::multigrid::DistributedMultigrid;
use crate::error::{Error, Result};
use crate::krylov::{cg_single_reduction, KrylovOptions, Preconditioner};
use crate::operator::LinearOperator;
use crate::report::SolveReport;

/// The report of a distributed solve: the same [`SolveReport`] on every
/// rank, and this rank's communication during the solve.
#[derive(Debug, Clone, PartialEq)]
pub struct DistributedSolveReport {
    /// Iterations, residuals and the stopping reason (identical on all ranks).
    pub solve: SolveReport,
    /// This rank's communicator calls during the solve.
    pub comm: CommStats,
}

/// Solves A x = b to ‖b − A x‖₂ ≤ max(rtol·‖b‖₂, atol) (norms over the
/// whole grid) by CG preconditioned with the distributed V-cycle `m`, in
/// the single-reduction form: per iteration one product with A (a face
/// exchange), one V-cycle (its exchanges and the gathered level's
/// reduction) and one reduction of the inner products, plus one more
/// reduction for the null-space projection when the grid has fluid
/// regions enclosed by walls. `b` and `x` are this rank's unknowns
/// ([`DistributedGridPoisson::unknown_of_cell`]). Collective; every rank
/// returns the same status, a failure of any rank's input or communicator
/// included.
pub fn distributed_mgpcg(
    a: &DistributedGridPoisson,
    m: &DistributedMultigrid,
    b: &[f64],
    x: &mut [f64],
    options: &KrylovOptions,
) -> Result<DistributedSolveReport> {
    let collective = &a.collective;
    let before = collective.stats();
    let local = Error::check_len("b", a.dim(), b.len())
        .and_then(|()| Error::check_len("x", a.dim(), x.len()))
        .and_then(|()| Error::check_len("m", a.dim(), m.dim()))
        .and_then(|()| options.setup(a.dim(), a.dim(), b, x).map(|_| ()));
    if let Err(e) = local {
        collective.fail(e);
    }
    a.agree()?;
    // A failure kept by the communicator raises the failure flag that the
    // single-reduction CG appends as the last value of each reduction.
    let allreduce = |values: &mut [f64]| -> Result<()> {
        if collective.failed() {
            if let Some(flag) = values.last_mut() {
                *flag += 1.0;
            }
        }
        collective.allreduce(values);
        Ok(())
    };
    let outcome = cg_single_reduction(a, m, b, x, options, Some(&allreduce));
    a.agree()?;
    // A failure of that last reduction itself is this rank's alone.
    if let Some(e) = collective.take_failure() {
        return Err(e);
    }
    Ok(DistributedSolveReport {
        solve: outcome?,
        comm: collective.stats() - before,
    })
}
