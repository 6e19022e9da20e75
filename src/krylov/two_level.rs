//! Two-level correction of a preconditioner or direction network by an aggregation coarse
//! space (deflation), for grid Poisson operators.
//!
//! - Coarse space: the fluid cells of each box of `block`ᵈ cells form one
//!   aggregate; P (n × n_c) is the piecewise-constant prolongation,
//!   P_{iJ} = 1 when unknown i lies in aggregate J. The coarse operator is
//!   the Galerkin product A_c = Pᵀ A P, factored once by sparse Cholesky
//!   (faer). The coarse correction is C = P A_c⁻¹ Pᵀ; C A is the
//!   A-orthogonal projector onto range(P).
//! - Two-level direction (the balanced form of deflation):
//!   D(r) = C r + (I − C A) s G((I − A C) r), with s > 0 a scale fitted
//!   once (see [`TwoLevel`]). The coarse space takes the smooth error that
//!   a local generator G (a network with a bounded receptive field,
//!   Jacobi) cannot reach; G only has to act on the A-orthogonal
//!   complement. When G is symmetric positive definite, so is D
//!   (vᵀ D v = vᵀ C v + s wᵀ G w with w = (I − A C) v), and the
//!   conjugate-direction method with D is preconditioned CG.
//!
//! Cost per direction: G, two products with A, two coarse solves and four
//! passes over the vectors for restriction and prolongation.

use super::precond::{apply_inverse, Preconditioner};
use crate::error::{Error, Result};
use crate::operator::{GridPoisson, LinearOperator};
use crate::parallel::{for_blocks, DisjointSlice};
use crate::random::SplitMix;
use crate::vector;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::LltRegularization;
use faer::sparse::linalg::cholesky::{
    factorize_symbolic_cholesky, LltRef, SymbolicCholesky, SymmetricOrdering,
};
use faer::sparse::{SparseColMat, Triplet};
use faer::{Conj, Par, Side};
use std::sync::Mutex;

/// Unknowns per parallel task of the transfers.
const TRANSFER_BLOCK: usize = 4096;

/// The aggregation coarse space of a grid operator: C = P (Pᵀ A P)⁻¹ Pᵀ.
pub struct CoarseSpace {
    /// Aggregate of every unknown.
    aggregate: Vec<u32>,
    /// Unknowns of aggregate J: `members[start[J]..start[J + 1]]`.
    start: Vec<usize>,
    members: Vec<u32>,
    block: usize,
    cholesky: CoarseCholesky,
    /// Right-hand side / solution of the coarse solve and its workspace.
    solve_buffers: Mutex<(Vec<f64>, MemBuffer)>,
}

/// The sparse Cholesky factor of A_c (faer's low-level API, so that a solve
/// runs in caller-owned workspace).
struct CoarseCholesky {
    symbolic: SymbolicCholesky<u32>,
    values: Vec<f64>,
}

impl std::fmt::Debug for CoarseSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoarseSpace")
            .field("unknowns", &self.aggregate.len())
            .field("aggregates", &self.aggregates())
            .field("block", &self.block)
            .finish()
    }
}

impl CoarseSpace {
    /// The coarse space of `a` with aggregates of `block`ᵈ cells (block ≥ 2;
    /// a singular `a`, a fluid region enclosed by walls, gets the Galerkin
    /// operator shifted by 1e-10 × its largest diagonal entry).
    pub fn new(a: &GridPoisson, block: usize) -> Result<Self> {
        if block < 2 {
            return Err(Error::invalid(
                "coarse_block",
                format!("coarse_block = {block} must be at least 2"),
            ));
        }
        let dims = a.dims();
        let boxes = dims.map(|n| n.div_ceil(block));
        let mut index_of_box = vec![u32::MAX; boxes.iter().product()];
        let mut aggregate = vec![0u32; a.dim()];
        let mut count = 0u32;
        for c in 0..a.num_cells() {
            let Some(u) = a.unknown_of_cell(c) else {
                continue;
            };
            let p = [
                c % dims[0],
                (c / dims[0]) % dims[1],
                c / (dims[0] * dims[1]),
            ];
            let q = p[0] / block + boxes[0] * (p[1] / block + boxes[1] * (p[2] / block));
            if index_of_box[q] == u32::MAX {
                index_of_box[q] = count;
                count += 1;
            }
            aggregate[u] = index_of_box[q];
        }
        let n_c = count as usize;
        let mut start = vec![0usize; n_c + 1];
        for &g in &aggregate {
            start[g as usize + 1] += 1;
        }
        for j in 0..n_c {
            start[j + 1] += start[j];
        }
        let mut fill = start.clone();
        let mut members = vec![0u32; a.dim()];
        for (u, &g) in aggregate.iter().enumerate() {
            members[fill[g as usize]] = u as u32;
            fill[g as usize] += 1;
        }
        let cholesky = galerkin_cholesky(a, &aggregate, n_c)?;
        let workspace =
            MemBuffer::new(cholesky.symbolic.solve_in_place_scratch::<f64>(1, Par::Seq));
        Ok(Self {
            aggregate,
            start,
            members,
            block,
            cholesky,
            solve_buffers: Mutex::new((vec![0.0; n_c], workspace)),
        })
    }

    /// The number of aggregates n_c (coarse unknowns).
    pub fn aggregates(&self) -> usize {
        self.start.len() - 1
    }

    /// The aggregate side in cells.
    pub fn block(&self) -> usize {
        self.block
    }

    /// z ← C r = P A_c⁻¹ Pᵀ r (no allocation; concurrent calls serialise).
    pub fn correct(&self, r: &[f64], z: &mut [f64]) -> Result<()> {
        Error::check_len("r", self.aggregate.len(), r.len())?;
        Error::check_len("z", self.aggregate.len(), z.len())?;
        let n_c = self.aggregates();
        let mut guard = self.solve_buffers.lock().unwrap_or_else(|p| p.into_inner());
        let (coarse, workspace) = &mut *guard;
        {
            let out = DisjointSlice::new(coarse.as_mut_slice());
            for_blocks(n_c.div_ceil(TRANSFER_BLOCK), r.len(), |b| {
                let range = b * TRANSFER_BLOCK..((b + 1) * TRANSFER_BLOCK).min(n_c);
                // SAFETY: blocks are disjoint.
                let sums = unsafe { out.range(range.clone()) };
                for (s, j) in sums.iter_mut().zip(range) {
                    *s = self.members[self.start[j]..self.start[j + 1]]
                        .iter()
                        .map(|&u| r[u as usize])
                        .sum();
                }
            });
        }
        LltRef::<u32, f64>::new(&self.cholesky.symbolic, &self.cholesky.values)
            .solve_in_place_with_conj(
                Conj::No,
                faer::MatMut::from_column_major_slice_mut(coarse, n_c, 1),
                Par::Seq,
                MemStack::new(workspace),
            );
        let values = &coarse[..];
        let n = z.len();
        let out = DisjointSlice::new(z);
        for_blocks(n.div_ceil(TRANSFER_BLOCK), 2 * n, |b| {
            let range = b * TRANSFER_BLOCK..((b + 1) * TRANSFER_BLOCK).min(n);
            // SAFETY: blocks are disjoint.
            let z = unsafe { out.range(range.clone()) };
            for (zi, &g) in z.iter_mut().zip(&self.aggregate[range]) {
                *zi = values[g as usize];
            }
        });
        Ok(())
    }

    /// The exact line-search step s = gᵀ r / gᵀ A g for g = G(r) on a fixed
    /// pseudo-random residual r = (I − A C) v of `a` (this coarse space's
    /// operator): the scale [`TwoLevel`] gives G; 1 when gᵀ A g is not
    /// positive.
    pub fn fitted_scale(&self, a: &GridPoisson, g: &dyn Preconditioner) -> Result<f64> {
        let n = a.dim();
        Error::check_len("coarse", n, self.aggregate.len())?;
        Error::check_len("inner", n, g.dim())?;
        let mut rng = SplitMix(0x5EED);
        let v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let (mut r, mut d, mut scratch) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        self.deflate(a, &v, &mut r, &mut scratch)?;
        apply_inverse(g, &r, &mut d)?;
        a.apply(&d, &mut scratch)?;
        let s = vector::dot(&d, &r) / vector::dot(&d, &scratch);
        Ok(if s.is_finite() && s > 0.0 { s } else { 1.0 })
    }

    /// out ← (I − A C) r, the input of the inner generator (`scratch`: n).
    fn deflate(
        &self,
        a: &GridPoisson,
        r: &[f64],
        out: &mut [f64],
        scratch: &mut [f64],
    ) -> Result<()> {
        self.correct(r, scratch)?;
        a.apply(scratch, out)?;
        vector::residual_from_product(r, out);
        Ok(())
    }

    /// d ← d + C (r − A d) = C r + (I − C A) d for the inner generator's
    /// direction d (`s1`, `s2`: scratch of length n).
    fn complete(
        &self,
        a: &GridPoisson,
        r: &[f64],
        d: &mut [f64],
        s1: &mut [f64],
        s2: &mut [f64],
    ) -> Result<()> {
        a.apply(d, s1)?;
        vector::residual_from_product(r, s1);
        self.correct(s1, s2)?;
        vector::axpy(1.0, s2, d);
        Ok(())
    }
}

/// Sparse Cholesky of A_c = Pᵀ A P (entries summed over aggregate pairs),
/// retried with a diagonal shift when A_c is singular.
fn galerkin_cholesky(a: &GridPoisson, aggregate: &[u32], n_c: usize) -> Result<CoarseCholesky> {
    let csr = a.to_csr()?;
    let (ptr, cols, vals) = (csr.row_ptr(), csr.col_idx(), csr.values());
    // Lower triangle of A_c row by row (the factorisation reads one side);
    // box aggregates of a 5- or 7-point stencil couple with at most 2d + 1
    // aggregates, so a linear search per entry is short.
    let mut rows: Vec<Vec<(u32, f64)>> = vec![Vec::new(); n_c];
    for (i, &gi) in aggregate.iter().enumerate() {
        let row = &mut rows[gi as usize];
        for k in ptr[i] as usize..ptr[i + 1] as usize {
            let gj = aggregate[cols[k] as usize];
            if gj > gi {
                continue;
            }
            match row.iter_mut().find(|(col, _)| *col == gj) {
                Some((_, v)) => *v += vals[k],
                None => row.push((gj, vals[k])),
            }
        }
    }
    // Every aggregate holds a fluid unknown, so every diagonal entry exists.
    let mut triplets: Vec<Triplet<u32, u32, f64>> = rows
        .iter()
        .enumerate()
        .flat_map(|(gi, row)| {
            row.iter().map(move |&(gj, val)| Triplet {
                row: gi as u32,
                col: gj,
                val,
            })
        })
        .collect();
    let assemble = |triplets: &[Triplet<u32, u32, f64>]| {
        SparseColMat::<u32, f64>::try_new_from_triplets(n_c, n_c, triplets)
            .map_err(|e| Error::invalid("op", format!("coarse operator: {e:?}")))
    };
    let not_spd = || Error::NotSpd {
        message: format!(
            "the Galerkin coarse operator ({n_c} aggregates) is not positive definite"
        ),
    };
    let matrix = assemble(&triplets)?;
    let symbolic = factorize_symbolic_cholesky(
        matrix.symbolic(),
        Side::Lower,
        SymmetricOrdering::Amd,
        Default::default(),
    )
    .map_err(|_| not_spd())?;
    let mut values = vec![0.0; symbolic.len_val()];
    let mut workspace =
        MemBuffer::new(symbolic.factorize_numeric_llt_scratch::<f64>(Par::Seq, Default::default()));
    let mut factor = |matrix: &SparseColMat<u32, f64>| {
        symbolic
            .factorize_numeric_llt(
                &mut values,
                matrix.as_ref(),
                Side::Lower,
                LltRegularization::default(),
                Par::Seq,
                MemStack::new(&mut workspace),
                Default::default(),
            )
            .is_ok()
    };
    if !factor(&matrix) {
        // Singular: shift the diagonal (same pattern, same symbolic analysis).
        let largest_diagonal = triplets
            .iter()
            .filter(|t| t.row == t.col)
            .fold(0.0f64, |m, t| m.max(t.val));
        triplets
            .iter_mut()
            .filter(|t| t.row == t.col)
            .for_each(|t| t.val += 1e-10 * largest_diagonal);
        if !factor(&assemble(&triplets)?) {
            return Err(not_spd());
        }
    }
    Ok(CoarseCholesky { symbolic, values })
}

/// D(r) = C r + (I − C A) s G((I − A C) r): a direction generator G with
/// the coarse-space correction of [`CoarseSpace`] (see the module docs).
///
/// The scale of G matters here (a network's is arbitrary: its training loss
/// eliminates it), so it is fitted once, in [`TwoLevel::new`], as the exact
/// line-search step s = gᵀ r / gᵀ A g for g = G(r) on a fixed pseudo-random
/// residual r = (I − A C) v; s = 1 when gᵀ A g is not positive. For the
/// exact inverse s = 1, and for Jacobi s is close to 1; iteration counts
/// change little for s within ×3 of the fitted value.
pub struct TwoLevel<'a, G> {
    op: &'a GridPoisson,
    coarse: CoarseSpace,
    inner: G,
    scale: f64,
    /// Input of G and two scratch vectors.
    buffers: Mutex<[Vec<f64>; 3]>,
}

impl<'a, G: Preconditioner> TwoLevel<'a, G> {
    /// The two-level generator on `op` around `inner`, with the coarse space
    /// `coarse` of `op`; calls `inner` once to fit its scale.
    pub fn new(op: &'a GridPoisson, coarse: CoarseSpace, inner: G) -> Result<Self> {
        // Also checks that `coarse` and `inner` have the dimension of `op`.
        let scale = coarse.fitted_scale(op, &inner)?;
        let n = op.dim();
        Ok(Self {
            op,
            coarse,
            inner,
            scale,
            buffers: Mutex::new([vec![0.0; n], vec![0.0; n], vec![0.0; n]]),
        })
    }

    /// The coarse space.
    pub fn coarse(&self) -> &CoarseSpace {
        &self.coarse
    }

    /// The fitted scale s of the inner generator.
    pub fn scale(&self) -> f64 {
        self.scale
    }
}

/// Around a linear G (symmetric positive definite by the trait's contract)
/// the two-level direction D = C + s (I − C A) G (I − A C) is symmetric
/// positive definite, so it preconditions plain CG too (the balancing
/// Neumann–Neumann form); around a nonlinear G (a network) it is nonlinear
/// and serves the conjugate-direction method.
impl<G: Preconditioner> Preconditioner for TwoLevel<'_, G> {
    fn dim(&self) -> usize {
        self.op.dim()
    }

    fn apply_dot(&self, r: &[f64], d: &mut [f64]) -> Result<f64> {
        self.apply(r, d)?;
        Ok(vector::dot(r, d))
    }

    fn apply(&self, r: &[f64], d: &mut [f64]) -> Result<()> {
        Error::check_len("r", self.dim(), r.len())?;
        Error::check_len("d", self.dim(), d.len())?;
        let mut guard = self.buffers.lock().unwrap_or_else(|p| p.into_inner());
        let [input, s1, s2] = &mut *guard;
        self.coarse.deflate(self.op, r, input, s1)?;
        apply_inverse(&self.inner, input, d)?;
        d.iter_mut().for_each(|v| *v *= self.scale);
        self.coarse.complete(self.op, r, d, s1, s2)
    }

    fn is_linear(&self) -> bool {
        self.inner.is_linear()
    }
}
