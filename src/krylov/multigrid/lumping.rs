//! The lumping of a Galerkin coarse operator onto the grid's 7-point
//! (5-point in 2D) stencil: [`CoarseOperators::LumpedGalerkin`].
//!
//! With cell-centred multilinear transfers, A_c = R A P couples each coarse
//! cell to cells up to 2 away along an axis (up to 75 neighbours in 3D).
//! Written as an energy, A_c is Σ_{pairs} w_ij (y_i − y_j)² + Σ_i ℓ_i y_i²
//! with w_ij = −(A_c)_ij and ℓ_i its row sum (the leak to Dirichlet cells).
//! Each pair that is not a face pair is moved onto the unit faces of the
//! monotone lattice paths from i to j (one per order of the axes along
//! which they differ, a step of 2 taken as two unit steps), each path
//! through unknowns only, the weight split evenly over the paths that
//! remain, and each unit step along axis a weighted w_ij·|o_a| for the
//! offset o = j − i. A linear function y has the same energy before and
//! after wherever no path is dropped (the pair's w(o·g)² averaged with its
//! mirror pair is Σ_a w o_a² g_a²), and row sums are kept, so constants
//! keep theirs. Negative face weights and leaks (Galerkin rows may have
//! positive off-diagonal entries and row sums below zero) are set to 0, so
//! the lumped operator is Σ w (y_i − y_j)² + Σ ℓ y² with w, ℓ ≥ 0:
//! symmetric positive semidefinite and weakly diagonally dominant, like a
//! rediscretised level, and exactly the rediscretised stencil in a region
//! of uniform fluid.
//!
//! [`CoarseOperators::LumpedGalerkin`]: super::CoarseOperators::LumpedGalerkin

use super::lattice::{add, sub, Lattice};
use crate::alloc;
use crate::error::{Error, Result};
use crate::operator::{CsrMatrix, GridPoisson, LinearOperator};

/// The most unit steps of a path across the window: 2 along each axis.
const MAX_STEPS: usize = 6;

/// The unit steps (axis, +) of one lattice path, and the cell index of
/// each step's end relative to the path's start.
#[derive(Clone, Copy, Default)]
struct Path {
    steps: [(usize, bool); MAX_STEPS],
    cells: [isize; MAX_STEPS],
    len: usize,
}

/// The paths of an offset on `lattice`: one per order of the axes along
/// which it is nonzero (1, 2 or 6 of them), a step of 2 taken as two unit
/// steps.
fn paths_of(lattice: &Lattice<'_>, offset: [i64; 3]) -> Vec<Path> {
    let axes: Vec<usize> = (0..3).filter(|&a| offset[a] != 0).collect();
    let orders: Vec<Vec<usize>> = match axes[..] {
        [a] => vec![vec![a]],
        [a, b] => vec![vec![a, b], vec![b, a]],
        [a, b, c] => vec![
            vec![a, b, c],
            vec![a, c, b],
            vec![b, a, c],
            vec![b, c, a],
            vec![c, a, b],
            vec![c, b, a],
        ],
        _ => Vec::new(),
    };
    orders
        .into_iter()
        .map(|order| {
            let mut path = Path::default();
            let mut at = [0i64; 3];
            for axis in order {
                for _ in 0..offset[axis].unsigned_abs() {
                    at[axis] += offset[axis].signum();
                    path.steps[path.len] = (axis, offset[axis] > 0);
                    path.cells[path.len] = lattice.cell_delta(at);
                    path.len += 1;
                }
            }
            path
        })
        .collect()
}

/// The unknowns after each step of `path` from unknown `i` at cell `p`,
/// or `None` if the path leaves the unknowns.
fn walk(lattice: &Lattice<'_>, p: [i64; 3], path: &Path, ends: &mut [usize; MAX_STEPS]) -> bool {
    if lattice.interior(p) {
        let start = lattice.cell(p) as isize;
        for (end, &delta) in ends.iter_mut().zip(&path.cells[..path.len]) {
            match lattice.unknown_of_cell((start + delta) as usize) {
                Some(v) => *end = v,
                None => return false,
            }
        }
        return true;
    }
    let mut q = p;
    for (end, &(axis, up)) in ends.iter_mut().zip(&path.steps[..path.len]) {
        q[axis] += if up { 1 } else { -1 };
        match lattice.unknown_at(q) {
            Some(v) => *end = v,
            None => return false,
        }
    }
    true
}

/// The Galerkin operator `a` of the level `grid` (its unknowns), lumped
/// onto face neighbours as the module describes.
pub(crate) fn lumped(a: &CsrMatrix, grid: &GridPoisson) -> Result<CsrMatrix> {
    let lattice = Lattice::new(grid)?;
    let paths: Vec<Vec<Path>> = (0..lattice.window_len())
        .map(|s| paths_of(&lattice, lattice.offset(s)))
        .collect();
    let n = a.dim();
    // face[u][axis]: the weight of the face between u and its +axis neighbour.
    let mut face = alloc::filled(n, [0.0f64; 3], "lumped face weights")?;
    let mut leak = alloc::filled(n, 0.0f64, "lumped row sums")?;
    let (ptr, cols, vals) = (a.row_ptr(), a.col_idx(), a.values());
    // The faces (lower unknown, axis, weight factor |o_axis|) of the paths
    // of one pair that stay on unknowns.
    let mut faces = Vec::with_capacity(6 * MAX_STEPS);
    let mut ends = [0; MAX_STEPS];
    for i in 0..n {
        let from = lattice.coords(i);
        for k in ptr[i] as usize..ptr[i + 1] as usize {
            let j = cols[k] as usize;
            leak[i] += vals[k];
            if j <= i {
                continue;
            }
            let offset = sub(lattice.coords(j), from);
            let slot = lattice.slot(offset).ok_or_else(|| {
                Error::invalid("op", "a Galerkin level couples cells more than 2 apart")
            })?;
            faces.clear();
            let mut valid = 0;
            for path in &paths[slot] {
                if !walk(&lattice, from, path, &mut ends) {
                    continue;
                }
                let mut u = i;
                for (&(axis, up), &v) in path.steps[..path.len].iter().zip(&ends) {
                    let factor = offset[axis].unsigned_abs() as f64;
                    faces.push((if up { u } else { v }, axis, factor));
                    u = v;
                }
                valid += 1;
            }
            // A pair with no path through unknowns is dropped: its weight
            // stays only in the row sums.
            let share = -vals[k] / valid.max(1) as f64;
            for &(low, axis, factor) in &faces {
                face[low][axis] += share * factor;
            }
        }
    }
    assemble(&lattice, &face, &leak)
}

/// The matrix Σ w (y_i − y_j)² + Σ ℓ y² of the face weights w and row sums
/// ℓ, each clamped at 0: rows in unknown order, columns sorted.
fn assemble(lattice: &Lattice<'_>, face: &[[f64; 3]], leak: &[f64]) -> Result<CsrMatrix> {
    let n = face.len();
    let mut row_ptr = alloc::with_capacity(n + 1, "lumped row pointers")?;
    let mut col_idx = alloc::with_capacity(7 * n, "lumped column indices")?;
    let mut values = alloc::with_capacity(7 * n, "lumped values")?;
    row_ptr.push(0u32);
    let mut row: Vec<(usize, f64)> = Vec::with_capacity(7);
    for (i, up_faces) in face.iter().enumerate() {
        let p = lattice.coords(i);
        row.clear();
        let mut diagonal = leak[i].max(0.0);
        for (axis, &up) in up_faces.iter().enumerate() {
            let mut e = [0; 3];
            e[axis] = 1;
            if let Some(below) = lattice.unknown_at(sub(p, e)) {
                let w = face[below][axis].max(0.0);
                diagonal += w;
                row.push((below, -w));
            }
            if let Some(above) = lattice.unknown_at(add(p, e)) {
                let w = up.max(0.0);
                diagonal += w;
                row.push((above, -w));
            }
        }
        row.push((i, diagonal));
        row.sort_unstable_by_key(|&(j, _)| j);
        for &(j, v) in &row {
            if v != 0.0 || j == i {
                col_idx.push(j as u32);
                values.push(v);
            }
        }
        row_ptr.push(col_idx.len() as u32);
    }
    Ok(CsrMatrix::from_valid_parts(n, row_ptr, col_idx, values))
}

#[cfg(test)]
mod tests {
    use super::super::{coarsen, galerkin, transfer::Transfer};
    use super::*;
    use crate::operator::Cell;

    /// R A P of the operator `a` of the level `fine` onto its coarse grid,
    /// and that coarse grid.
    fn galerkin(a: &CsrMatrix, fine: &GridPoisson) -> (CsrMatrix, GridPoisson) {
        let coarse = coarsen(fine).unwrap();
        let transfer = Transfer {
            fine,
            coarse: &coarse,
            shift: [0; 3],
        };
        (galerkin::product(a, &transfer).unwrap(), coarse)
    }

    fn entries(a: &CsrMatrix, i: usize) -> Vec<(u32, f64)> {
        let (ptr, cols, vals) = (a.row_ptr(), a.col_idx(), a.values());
        (ptr[i] as usize..ptr[i + 1] as usize)
            .map(|k| (cols[k], vals[k]))
            .collect()
    }

    #[test]
    fn uniform_fluid_lumps_to_the_rediscretised_stencil() {
        for dims in [[24, 20, 1], [16, 14, 12]] {
            let cells = vec![Cell::Fluid; dims.iter().product()];
            let fine = GridPoisson::builder(dims, &cells)
                .spacing([0.5, 0.5, 0.5])
                .build()
                .unwrap();
            let (a, coarse) = galerkin(&fine.to_csr().unwrap(), &fine);
            // The unlumped product reaches 2 cells along an axis.
            assert!((0..a.dim()).any(|i| entries(&a, i).len() > 9));
            let lumped = lumped(&a, &coarse).unwrap();
            let reference = coarse.to_csr().unwrap();
            let lattice = Lattice::new(&coarse).unwrap();
            let cd = coarse.dims().map(|v| v as i64);
            // Rows whose paths all stay inside the grid (2 cells from its
            // walls) are the rediscretised stencil's.
            let interior = |p: [i64; 3]| (0..fine.ndim()).all(|a| p[a] >= 2 && p[a] + 2 < cd[a]);
            let mut checked = 0;
            for i in 0..coarse.dim() {
                if !interior(lattice.coords(i)) {
                    continue;
                }
                let (got, want) = (entries(&lumped, i), entries(&reference, i));
                assert_eq!(got.len(), want.len(), "{dims:?} row {i}");
                for ((cg, vg), (cw, vw)) in got.iter().zip(&want) {
                    assert_eq!(cg, cw);
                    assert!((vg - vw).abs() <= 1e-12 * vw.abs().max(1.0), "{vg} vs {vw}");
                }
                checked += 1;
            }
            assert!(checked > 0);
        }
    }

    #[test]
    fn the_lumped_operator_is_a_symmetric_diagonally_dominant_face_stencil() {
        for dims in [[30, 26, 1], [18, 16, 14]] {
            let problem = crate::scene::obstacles(dims, 2).unwrap();
            let mut fine = problem.operator().unwrap();
            let mut a = fine.to_csr().unwrap();
            // Two levels: the second lumps the product of a lumped level.
            for _ in 0..2 {
                let (product, coarse) = galerkin(&a, &fine);
                let lumped = lumped(&product, &coarse).unwrap();
                lumped.check_symmetric().unwrap();
                let lattice = Lattice::new(&coarse).unwrap();
                for i in 0..coarse.dim() {
                    let p = lattice.coords(i);
                    let (mut diagonal, mut off) = (0.0, 0.0);
                    for (j, v) in entries(&lumped, i) {
                        let q = lattice.coords(j as usize);
                        let distance: u64 = (0..3).map(|a| p[a].abs_diff(q[a])).sum();
                        match distance {
                            0 => diagonal = v,
                            1 => {
                                assert!(v <= 0.0);
                                off -= v;
                            }
                            _ => panic!("{dims:?}: row {i} couples {p:?} to {q:?}"),
                        }
                    }
                    assert!(diagonal >= off * (1.0 - 1e-12), "{dims:?} row {i}");
                }
                (fine, a) = (coarse, lumped);
            }
        }
    }
}
