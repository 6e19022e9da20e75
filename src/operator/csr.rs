//! Sparse matrices in compressed sparse row form, stored with faer's
//! sparse types, with a multithreaded SpMV.

use super::LinearOperator;
use crate::alloc;
use crate::error::{Error, Result};
use crate::parallel::{sum_blocks, DisjointSlice};
use crate::scalar::Real;
use faer::sparse::{SparseRowMat, SparseRowMatRef, SymbolicSparseRowMat};
use once_cell::sync::OnceCell;
use std::ops::Range;

/// Nonzeros (plus one per row) per block of the parallel SpMV.
const BLOCK_NNZ: usize = 32 * 1024;

/// Relative tolerance of the symmetry check: |a_ij − a_ji| ≤ tol·max(|a_ij|, |a_ji|).
const SYMMETRY_RTOL: f64 = 1e-12;

/// An integer type accepted for CSR row pointers and column indices.
pub trait CsrIndex: Copy + std::fmt::Display {
    /// The value as an index, or `None` when it is negative or too large.
    fn to_index(self) -> Option<usize>;
}

macro_rules! impl_csr_index {
    ($($t:ty),*) => {$(
        impl CsrIndex for $t {
            fn to_index(self) -> Option<usize> {
                usize::try_from(self).ok()
            }
        }
    )*};
}
impl_csr_index!(i32, i64, u32, u64, usize);

/// A square sparse matrix in CSR form (32-bit indices internally).
///
/// Column indices are strictly increasing within each row and all values are
/// finite; [`CsrMatrix::from_parts`] checks this.
#[derive(Debug, Clone)]
pub struct CsrMatrix {
    mat: SparseRowMat<u32, f64>,
    /// Row ranges of the parallel SpMV, fixed at construction.
    blocks: Vec<Range<usize>>,
    /// `None` when symmetric, else a description of the first asymmetry.
    asymmetry: OnceCell<Option<String>>,
}

impl CsrMatrix {
    /// Builds an n×n matrix from CSR arrays: row i holds the entries
    /// `values[row_ptr[i]..row_ptr[i+1]]` in columns
    /// `col_idx[row_ptr[i]..row_ptr[i+1]]`.
    ///
    /// Checks: square, `row_ptr` of length n+1 starting at 0 and monotone,
    /// column indices in range and strictly increasing within each row, all
    /// values finite, at most 2³²−1 rows and nonzeros.
    /// Checks the shape of a CSR matrix before its arrays are read: square,
    /// at least one and at most 2³²−2 rows (so that n + 1 row pointers fit
    /// the 32-bit index type).
    pub fn check_shape(n_rows: usize, n_cols: usize) -> Result<()> {
        if n_rows == 0 {
            return Err(Error::invalid(
                "n_rows",
                "the matrix must have at least one row",
            ));
        }
        if n_rows >= u32::MAX as usize {
            return Err(Error::invalid(
                "n_rows",
                format!("{n_rows} rows exceed the supported 2^32-2"),
            ));
        }
        if n_cols != n_rows {
            return Err(Error::invalid(
                "n_cols",
                format!("the operator must be square: n_rows = {n_rows}, n_cols = {n_cols}"),
            ));
        }
        Ok(())
    }

    pub fn from_parts<I: CsrIndex>(
        n_rows: usize,
        n_cols: usize,
        row_ptr: &[I],
        col_idx: &[I],
        values: &[f64],
    ) -> Result<Self> {
        Self::check_shape(n_rows, n_cols)?;
        let n = n_rows;
        Error::check_len("row_ptr", n + 1, row_ptr.len())?;
        let mut ptr = alloc::with_capacity(n + 1, "row pointers")?;
        for (i, &p) in row_ptr.iter().enumerate() {
            let p = p.to_index().ok_or_else(|| {
                Error::invalid(
                    "row_ptr",
                    format!("row_ptr[{i}] = {p} is negative or too large"),
                )
            })?;
            if i == 0 && p != 0 {
                return Err(Error::invalid(
                    "row_ptr",
                    format!("row_ptr[0] must be 0, found {p}"),
                ));
            }
            if let Some(&prev) = ptr.last() {
                if p < prev {
                    return Err(Error::invalid(
                        "row_ptr",
                        format!("row pointers must be non-decreasing: row_ptr[{}] = {prev} > row_ptr[{i}] = {p}", i - 1),
                    ));
                }
            }
            ptr.push(p);
        }
        let nnz = ptr[n];
        if nnz > u32::MAX as usize {
            return Err(Error::invalid(
                "row_ptr",
                format!("{nnz} nonzeros exceed the supported 2^32-1"),
            ));
        }
        Error::check_len("col_idx", nnz, col_idx.len())?;
        Error::check_len("values", nnz, values.len())?;
        let mut cols = alloc::with_capacity(nnz, "column indices")?;
        for i in 0..n {
            let mut prev: Option<usize> = None;
            for k in ptr[i]..ptr[i + 1] {
                let j = col_idx[k].to_index().filter(|&j| j < n).ok_or_else(|| {
                    Error::invalid(
                        "col_idx",
                        format!(
                            "col_idx[{k}] = {} (row {i}) is out of range 0..{n}",
                            col_idx[k]
                        ),
                    )
                })?;
                if let Some(prev) = prev.filter(|&p| j <= p) {
                    return Err(Error::invalid(
                        "col_idx",
                        format!(
                            "column indices of row {i} must be strictly increasing (sorted, no duplicates): col_idx[{k}] = {j} follows {prev}"
                        ),
                    ));
                }
                if !values[k].is_finite() {
                    return Err(Error::invalid(
                        "values",
                        format!("values[{k}] (row {i}, column {j}) is {}", values[k]),
                    ));
                }
                prev = Some(j);
                cols.push(j as u32);
            }
        }
        let mut ptr32 = alloc::with_capacity(n + 1, "row pointers")?;
        ptr32.extend(ptr.into_iter().map(|p| p as u32));
        let vals = alloc::copied(values, "values")?;
        Ok(Self::from_valid_parts(n, ptr32, cols, vals))
    }

    /// A matrix from arrays the library built itself and knows to be valid
    /// (the checks of [`CsrMatrix::from_parts`] hold by construction).
    pub(crate) fn from_valid_parts(
        n: usize,
        row_ptr: Vec<u32>,
        col_idx: Vec<u32>,
        values: Vec<f64>,
    ) -> Self {
        debug_assert!(values.iter().all(|v| v.is_finite()));
        let symbolic = SymbolicSparseRowMat::new_checked(n, n, row_ptr, None, col_idx);
        Self::from_faer(SparseRowMat::new(symbolic, values))
    }

    fn from_faer(mat: SparseRowMat<u32, f64>) -> Self {
        let blocks = row_blocks(mat.symbolic().row_ptr());
        Self {
            mat,
            blocks,
            asymmetry: OnceCell::new(),
        }
    }

    /// The matrix as a faer sparse view (for direct solvers and conversions).
    pub fn as_faer(&self) -> SparseRowMatRef<'_, u32, f64> {
        self.mat.as_ref()
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.mat.val().len()
    }

    /// Row pointers (length n+1).
    pub fn row_ptr(&self) -> &[u32] {
        self.mat.symbolic().row_ptr()
    }

    /// Column indices (length nnz), strictly increasing within each row.
    pub fn col_idx(&self) -> &[u32] {
        self.mat.symbolic().col_idx()
    }

    /// Stored values (length nnz).
    pub fn values(&self) -> &[f64] {
        self.mat.val()
    }

    /// `Ok` when A = Aᵀ up to a relative 1e-12 per entry, else an error
    /// naming the first asymmetric pair. Computed once and cached.
    pub fn check_symmetric(&self) -> Result<()> {
        let found = self.asymmetry.get_or_init(|| self.find_asymmetry());
        match found {
            None => Ok(()),
            Some(message) => Err(Error::NotSpd {
                message: message.clone(),
            }),
        }
    }

    /// Aᵀ as a new CSR matrix.
    pub fn transpose(&self) -> CsrMatrix {
        let n = self.dim();
        let (ptr, cols, vals) = (self.row_ptr(), self.col_idx(), self.values());
        let mut count = vec![0usize; n + 1];
        for &j in cols {
            count[j as usize + 1] += 1;
        }
        for j in 0..n {
            count[j + 1] += count[j];
        }
        let row_ptr: Vec<u32> = count.iter().map(|&c| c as u32).collect();
        let mut next = count;
        let (mut t_cols, mut t_vals) = (vec![0u32; cols.len()], vec![0.0; cols.len()]);
        for i in 0..n {
            for k in ptr[i] as usize..ptr[i + 1] as usize {
                let slot = &mut next[cols[k] as usize];
                t_cols[*slot] = i as u32;
                t_vals[*slot] = vals[k];
                *slot += 1;
            }
        }
        CsrMatrix::from_valid_parts(n, row_ptr, t_cols, t_vals)
    }

    /// The diagonal D̃ of the ℓ1-scaled Jacobi smoother,
    /// d̃ᵢ = max(aᵢᵢ, ½ Σⱼ |aᵢⱼ|) (Baker, Falgout, Kolev, Yang 2011): by
    /// Gershgorin every eigenvalue of D̃⁻¹A lies in [0, 2] for a symmetric
    /// positive semidefinite A, so a smoothing polynomial that is a
    /// contraction on [0, 2] keeps the V-cycle positive definite. Equal to
    /// the diagonal where the off-diagonal row sum is at most aᵢᵢ (a 5- or
    /// 7-point stencil), larger on Galerkin rows where it is not; a zero
    /// diagonal (an isolated cell's zero row) stays zero.
    pub(crate) fn l1_smoothing_diagonal(&self) -> Vec<f64> {
        let (ptr, vals) = (self.row_ptr(), self.values());
        (0..self.dim())
            .map(|i| {
                let l1: f64 = vals[ptr[i] as usize..ptr[i + 1] as usize]
                    .iter()
                    .map(|v| v.abs())
                    .sum();
                // A zero diagonal (an isolated cell's zero row) stays zero.
                let d = self.entry(i, i);
                if d > 0.0 {
                    d.max(0.5 * l1)
                } else {
                    d
                }
            })
            .collect()
    }

    fn entry(&self, i: usize, j: usize) -> f64 {
        let (ptr, cols) = (self.row_ptr(), self.col_idx());
        let range = ptr[i] as usize..ptr[i + 1] as usize;
        match cols[range.clone()].binary_search(&(j as u32)) {
            Ok(k) => self.values()[range.start + k],
            Err(_) => 0.0,
        }
    }

    fn find_asymmetry(&self) -> Option<String> {
        let (ptr, cols, vals) = (self.row_ptr(), self.col_idx(), self.values());
        for i in 0..self.dim() {
            for k in ptr[i] as usize..ptr[i + 1] as usize {
                let j = cols[k] as usize;
                let (aij, aji) = (vals[k], self.entry(j, i));
                if (aij - aji).abs() > SYMMETRY_RTOL * aij.abs().max(aji.abs()) {
                    return Some(format!(
                        "the matrix is not symmetric: A[{i},{j}] = {aij:e} but A[{j},{i}] = {aji:e}"
                    ));
                }
            }
        }
        None
    }

    /// One block of rows of y = A x, accumulated in f64 whatever the
    /// vectors' type; returns xᵀy over the block.
    fn spmv_block<T: Real>(&self, rows: Range<usize>, x: &[T], y: &mut [T]) -> f64 {
        let (ptr, cols, vals) = (self.row_ptr(), self.col_idx(), self.values());
        let mut dot = 0.0;
        for (yi, i) in y.iter_mut().zip(rows) {
            let range = ptr[i] as usize..ptr[i + 1] as usize;
            let mut s = 0.0;
            for (&j, &a) in cols[range.clone()].iter().zip(&vals[range]) {
                s += a * x[j as usize].to_f64();
            }
            *yi = T::from_f64(s);
            dot += x[i].to_f64() * s;
        }
        dot
    }

    /// y ← A x in the vectors' precision (f64 or f32); returns xᵀ(A x).
    pub(crate) fn apply_real<T: Real>(&self, x: &[T], y: &mut [T]) -> Result<f64> {
        Error::check_len("x", self.dim(), x.len())?;
        Error::check_len("y", self.dim(), y.len())?;
        let y = DisjointSlice::new(y);
        let work = self.nnz() + 2 * self.dim();
        Ok(sum_blocks(self.blocks.len(), work, |b| {
            let rows = self.blocks[b].clone();
            // SAFETY: row blocks are disjoint.
            let y = unsafe { y.range(rows.clone()) };
            self.spmv_block(rows, x, y)
        }))
    }
}

/// Cuts rows into consecutive ranges of about [`BLOCK_NNZ`] entries.
fn row_blocks(row_ptr: &[u32]) -> Vec<Range<usize>> {
    let n = row_ptr.len() - 1;
    let mut blocks = Vec::new();
    let mut start = 0;
    for i in 0..n {
        let work = (row_ptr[i + 1] - row_ptr[start]) as usize + (i + 1 - start);
        if work >= BLOCK_NNZ {
            blocks.push(start..i + 1);
            start = i + 1;
        }
    }
    if start < n {
        blocks.push(start..n);
    }
    blocks
}

impl LinearOperator for CsrMatrix {
    fn dim(&self) -> usize {
        self.mat.nrows()
    }

    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<()> {
        self.apply_dot(x, y).map(|_| ())
    }

    fn apply_dot(&self, x: &[f64], y: &mut [f64]) -> Result<f64> {
        self.apply_real(x, y)
    }

    fn diagonal(&self) -> Option<Vec<f64>> {
        Some((0..self.dim()).map(|i| self.entry(i, i)).collect())
    }

    fn check_cg_solvable(&self, _b: &[f64]) -> Result<()> {
        self.check_symmetric()
    }
}
