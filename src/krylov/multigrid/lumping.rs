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

use crate::alloc;
use crate::error::Result;
use crate::operator::{CsrMatrix, GridPoisson, LinearOperator, AIR};

/// The grid positions of a level's unknowns and the unknown at a position.
struct Lattice<'a> {
    dims: [usize; 3],
    codes: &'a [u32],
    coords: Vec<[usize; 3]>,
}

impl<'a> Lattice<'a> {
    fn new(grid: &'a GridPoisson) -> Result<Self> {
        let dims = grid.dims();
        let codes = grid.unknown_codes();
        let mut coords = alloc::with_capacity(grid.dim(), "unknown coordinates")?;
        coords.resize(grid.dim(), [0; 3]);
        for (c, &u) in codes.iter().enumerate() {
            if u < AIR {
                coords[u as usize] = [
                    c % dims[0],
                    (c / dims[0]) % dims[1],
                    c / (dims[0] * dims[1]),
                ];
            }
        }
        Ok(Self {
            dims,
            codes,
            coords,
        })
    }

    /// The unknown at `p` + one unit step along axis `a` (`up`: +, else −),
    /// if that cell is in the grid and fluid.
    fn step(&self, p: [usize; 3], a: usize, up: bool) -> Option<([usize; 3], usize)> {
        let mut q = p;
        if up {
            q[a] += 1;
            if q[a] >= self.dims[a] {
                return None;
            }
        } else {
            q[a] = q[a].checked_sub(1)?;
        }
        let code = self.codes[q[0] + self.dims[0] * (q[1] + self.dims[1] * q[2])];
        (code < AIR).then_some((q, code as usize))
    }
}

/// The orders in which a path may take the axes `axes` (1 to 3 of them).
fn axis_orders(axes: &[usize]) -> Vec<Vec<usize>> {
    match *axes {
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
    }
}

/// One unit step of a path: the face between unknown `low` and its +axis
/// neighbour, and the step's weight factor |o_axis|.
struct Step {
    low: usize,
    axis: usize,
    factor: f64,
}

/// The Galerkin operator `a` of the level `grid` (its unknowns), lumped
/// onto face neighbours as the module describes.
pub(crate) fn lumped(a: &CsrMatrix, grid: &GridPoisson) -> Result<CsrMatrix> {
    let lattice = Lattice::new(grid)?;
    let n = a.dim();
    // face[u][axis]: the weight of the face between u and its +axis neighbour.
    let mut face = alloc::with_capacity(n, "lumped face weights")?;
    face.resize(n, [0.0f64; 3]);
    let mut leak = alloc::with_capacity(n, "lumped row sums")?;
    leak.resize(n, 0.0f64);
    let (ptr, cols, vals) = (a.row_ptr(), a.col_idx(), a.values());
    let mut steps: Vec<Step> = Vec::new();
    let mut path: Vec<Step> = Vec::new();
    for i in 0..n {
        for k in ptr[i] as usize..ptr[i + 1] as usize {
            let j = cols[k] as usize;
            leak[i] += vals[k];
            if j <= i {
                continue;
            }
            let (from, to) = (lattice.coords[i], lattice.coords[j]);
            let offset = [0, 1, 2].map(|a| to[a] as i64 - from[a] as i64);
            let axes: Vec<usize> = (0..3).filter(|&a| offset[a] != 0).collect();
            let orders = axis_orders(&axes);
            steps.clear();
            let mut valid = 0;
            for order in &orders {
                path.clear();
                let (mut p, mut blocked) = (from, false);
                let mut u = i;
                'walk: for &axis in order {
                    let up = offset[axis] > 0;
                    for _ in 0..offset[axis].unsigned_abs() {
                        let Some((q, v)) = lattice.step(p, axis, up) else {
                            blocked = true;
                            break 'walk;
                        };
                        path.push(Step {
                            low: if up { u } else { v },
                            axis,
                            factor: offset[axis].unsigned_abs() as f64,
                        });
                        (p, u) = (q, v);
                    }
                }
                if !blocked {
                    valid += 1;
                    steps.append(&mut path);
                }
            }
            // A pair with no path through unknowns is dropped: its weight
            // stays only in the row sums.
            let share = -vals[k] / valid.max(1) as f64;
            for step in &steps {
                face[step.low][step.axis] += share * step.factor;
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
    for (i, &p) in lattice.coords.iter().enumerate() {
        row.clear();
        let mut diagonal = leak[i].max(0.0);
        for (axis, &up) in face[i].iter().enumerate() {
            if let Some((_, below)) = lattice.step(p, axis, false) {
                let w = face[below][axis].max(0.0);
                diagonal += w;
                row.push((below, -w));
            }
            if let Some((_, above)) = lattice.step(p, axis, true) {
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
    use super::super::{coarsen, transfer::Transfer};
    use super::*;
    use crate::operator::Cell;

    /// R A P of the operator `a` of the level `fine` onto its coarse grid,
    /// and that coarse grid.
    fn galerkin(a: &CsrMatrix, fine: &GridPoisson) -> (CsrMatrix, GridPoisson) {
        let coarse = coarsen(fine).unwrap();
        let p = Transfer {
            fine,
            coarse: &coarse,
            shift: [0; 3],
        }
        .assemble()
        .unwrap();
        let scale = 1.0 / (1 << fine.ndim()) as f64;
        (a.galerkin_product(p.as_ref(), scale).unwrap(), coarse)
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
            let cd = coarse.dims();
            // Rows whose paths all stay inside the grid (2 cells from its
            // walls) are the rediscretised stencil's.
            let interior = |p: [usize; 3]| (0..fine.ndim()).all(|a| p[a] >= 2 && p[a] + 2 < cd[a]);
            let mut checked = 0;
            for (i, &p) in lattice.coords.iter().enumerate() {
                if !interior(p) {
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
                for (i, &p) in lattice.coords.iter().enumerate() {
                    let (mut diagonal, mut off) = (0.0, 0.0);
                    for (j, v) in entries(&lumped, i) {
                        let q = lattice.coords[j as usize];
                        let distance: usize = (0..3).map(|a| p[a].abs_diff(q[a])).sum();
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
