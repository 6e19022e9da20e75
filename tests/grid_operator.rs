//! The grid Poisson operator against hand-built references, its CSR export,
//! symmetry, definiteness and the singular all-Neumann case.

mod common;

use adjunct::{cg, Cell, Error, GridPoisson, Identity, Jacobi, KrylovOptions, LinearOperator};
use common::*;
use faer::{Mat, Side};

/// A dense reference written directly from the stencil definition, one
/// face at a time (independent of the crate's kernels).
fn dense_reference(
    dims: [usize; 3],
    cells: &[Cell],
    h: [f64; 3],
    beta: Option<&[f64]>,
) -> Mat<f64> {
    let [nx, ny, nz] = dims;
    let ncells = nx * ny * nz;
    let index: Vec<Option<usize>> = {
        let mut next = 0;
        cells
            .iter()
            .map(|&c| {
                (c == Cell::Fluid).then(|| {
                    next += 1;
                    next - 1
                })
            })
            .collect()
    };
    let n = index.iter().flatten().count();
    let mut a = Mat::<f64>::zeros(n, n);
    let stride = [1, nx, nx * ny];
    for c in 0..ncells {
        let Some(u) = index[c] else { continue };
        let ijk = [c % nx, (c / nx) % ny, c / (nx * ny)];
        for axis in 0..3 {
            for dir in [-1i64, 1] {
                let pos = ijk[axis] as i64 + dir;
                if pos < 0 || pos >= dims[axis] as i64 {
                    continue; // outside: wall
                }
                let nb = (c as i64 + dir * stride[axis] as i64) as usize;
                let lower = c.min(nb);
                let w = beta.map_or(1.0, |b| b[axis * ncells + lower]) / (h[axis] * h[axis]);
                match cells[nb] {
                    Cell::Solid => {}
                    Cell::Air => a[(u, u)] += w,
                    Cell::Fluid => {
                        a[(u, u)] += w;
                        a[(u, index[nb].unwrap())] -= w;
                    }
                }
            }
        }
    }
    a
}

fn csr_to_dense(a: &adjunct::CsrMatrix) -> Mat<f64> {
    let n = a.dim();
    let mut d = Mat::<f64>::zeros(n, n);
    for i in 0..n {
        for k in a.row_ptr()[i] as usize..a.row_ptr()[i + 1] as usize {
            d[(i, a.col_idx()[k] as usize)] = a.values()[k];
        }
    }
    d
}

fn max_abs_diff(a: &Mat<f64>, b: &Mat<f64>) -> f64 {
    let mut m: f64 = 0.0;
    for i in 0..a.nrows() {
        for j in 0..a.ncols() {
            m = m.max((a[(i, j)] - b[(i, j)]).abs());
        }
    }
    m
}

#[test]
fn hand_written_small_grids() {
    use Cell::*;
    // 1D chain: fluid, fluid, air (h = 1): A = [[1, -1], [-1, 2]].
    let g = GridPoisson::builder([3, 1, 1], &[Fluid, Fluid, Air])
        .build()
        .unwrap();
    let d = csr_to_dense(&g.to_csr().unwrap());
    assert_eq!(
        (d[(0, 0)], d[(0, 1)], d[(1, 0)], d[(1, 1)]),
        (1.0, -1.0, -1.0, 2.0)
    );
    // 2×2 with one solid (top-left fluid... ) and spacing 0.5: weights 4.
    // cells: c0 fluid, c1 solid, c2 fluid, c3 air.
    let g = GridPoisson::builder([2, 2, 1], &[Fluid, Solid, Fluid, Air])
        .spacing([0.5, 0.5, 1.0])
        .build()
        .unwrap();
    let d = csr_to_dense(&g.to_csr().unwrap());
    // c0: neighbours c1 (solid, dropped), c2 (fluid): A00 = 4, A01 = -4.
    // c2: neighbours c0 (fluid), c3 (air): A11 = 8.
    assert_eq!(
        (d[(0, 0)], d[(0, 1)], d[(1, 0)], d[(1, 1)]),
        (4.0, -4.0, -4.0, 8.0)
    );
    let mut y = [0.0; 2];
    g.apply(&[1.0, 2.0], &mut y).unwrap();
    assert_eq!(y, [4.0 - 8.0, -4.0 + 16.0]);
}

#[test]
fn matches_dense_reference_and_csr_export() {
    let mut rng = Rng::new(3);
    for (dims, spacing) in [
        ([9, 7, 1], [0.3, 0.7, 1.0]),
        ([6, 5, 4], [1.0, 0.5, 2.0]),
        ([40, 2, 1], [1.0; 3]),
    ] {
        let mut cells = random_cells(dims, 0.2, dims[0] as u64);
        // Air pockets too, so that fluid cells have air on every side.
        for cell in cells.iter_mut() {
            if *cell == Cell::Fluid && rng.uniform() < 0.1 {
                *cell = Cell::Air;
            }
        }
        let ndim = if dims[2] > 1 { 3 } else { 2 };
        let ncells = dims.iter().product::<usize>();
        let beta: Vec<f64> = (0..ndim * ncells).map(|_| rng.range(0.0, 3.0)).collect();
        // β = 1 except on the faces to air, as a ghost-fluid surface makes
        // them: the run kernel with its air-face corrections.
        let stride = [1, dims[0], dims[0] * dims[1]];
        let air_faces: Vec<f64> = (0..ndim * ncells)
            .map(|k| {
                let (axis, c) = (k / ncells, k % ncells);
                let upper = c + stride[axis];
                let inside = (c / stride[axis]) % dims[axis] + 1 < dims[axis];
                let to_air = inside && (cells[c] == Cell::Air || cells[upper] == Cell::Air);
                if to_air {
                    rng.range(0.5, 3.0)
                } else {
                    1.0
                }
            })
            .collect();
        for (with_beta, coefficients) in
            [(false, None), (true, Some(&beta)), (true, Some(&air_faces))]
        {
            let mut builder = GridPoisson::builder(dims, &cells).spacing(spacing);
            if let Some(coefficients) = coefficients {
                builder = builder.face_coefficients(coefficients);
            }
            let g = builder.build().unwrap();
            let reference = dense_reference(dims, &cells, spacing, coefficients.map(|b| &b[..]));
            let csr = g.to_csr().unwrap();
            let dense = csr_to_dense(&csr);
            assert!(
                max_abs_diff(&dense, &reference) < 1e-12,
                "{dims:?} beta={with_beta}: CSR export vs reference"
            );
            let x = rng.vector(g.dim());
            let (mut y_grid, mut y_csr) = (vec![0.0; g.dim()], vec![0.0; g.dim()]);
            let dot = g.apply_dot(&x, &mut y_grid).unwrap();
            csr.apply(&x, &mut y_csr).unwrap();
            assert!(
                rel_diff(&y_grid, &y_csr) < 1e-14,
                "{dims:?}: stencil apply vs CSR"
            );
            let y_ref: Vec<f64> = (0..g.dim())
                .map(|i| (0..g.dim()).map(|j| reference[(i, j)] * x[j]).sum())
                .collect();
            assert!(
                rel_diff(&y_grid, &y_ref) < 1e-13,
                "{dims:?}: stencil apply vs dense reference"
            );
            let dot_ref: f64 = x.iter().zip(&y_ref).map(|(a, b)| a * b).sum();
            assert!((dot - dot_ref).abs() <= 1e-12 * dot_ref.abs(), "fused dot");
            let diag = g.diagonal().unwrap();
            assert!((0..g.dim()).all(|i| (diag[i] - reference[(i, i)]).abs() < 1e-12));
        }
    }
}

#[test]
fn structured_scenes_match_dense_reference() {
    // Smoke scenes have whole rows of fluid next to uniform rows (walls, air
    // layers), which the kernel applies as vectorised 1D stencils.
    let mut rng = Rng::new(12);
    for dims in [[9, 8, 7], [12, 10, 1], [1, 6, 5], [2, 5, 1]] {
        let problem = adjunct::scene::smoke(dims, 2).unwrap();
        let g = problem.operator().unwrap();
        let h = problem.spacing;
        let reference = dense_reference(dims, &problem.cells, [h; 3], None);
        let x = rng.vector(g.dim());
        let mut y = vec![0.0; g.dim()];
        g.apply(&x, &mut y).unwrap();
        let y_ref: Vec<f64> = (0..g.dim())
            .map(|i| (0..g.dim()).map(|j| reference[(i, j)] * x[j]).sum())
            .collect();
        assert!(
            rel_diff(&y, &y_ref) < 1e-13,
            "{dims:?}: stencil apply vs dense reference"
        );
        let diag = g.diagonal().unwrap();
        assert!(
            (0..g.dim()).all(|i| (diag[i] - reference[(i, i)]).abs() < 1e-12),
            "{dims:?}: diagonal vs dense reference"
        );
    }
}

#[test]
fn symmetric_and_positive_definite_with_air() {
    let mut rng = Rng::new(9);
    let dims = [7, 6, 5];
    let cells = random_cells(dims, 0.15, 1);
    let beta: Vec<f64> = (0..3 * 210).map(|_| rng.range(0.5, 2.0)).collect();
    let g = GridPoisson::builder(dims, &cells)
        .face_coefficients(&beta)
        .build()
        .unwrap();
    let a = csr_to_dense(&g.to_csr().unwrap());
    assert!(
        max_abs_diff(&a, &a.transpose().to_owned()) == 0.0,
        "CSR export symmetric"
    );
    let (x, y) = (rng.vector(g.dim()), rng.vector(g.dim()));
    let (mut ax, mut ay) = (vec![0.0; g.dim()], vec![0.0; g.dim()]);
    g.apply(&x, &mut ax).unwrap();
    g.apply(&y, &mut ay).unwrap();
    let (yax, xay): (f64, f64) = (
        y.iter().zip(&ax).map(|(a, b)| a * b).sum(),
        x.iter().zip(&ay).map(|(a, b)| a * b).sum(),
    );
    assert!(
        (yax - xay).abs() <= 1e-12 * yax.abs().max(1.0),
        "yᵀAx = xᵀAy"
    );
    assert!(!g.is_singular());
    let eig = a.self_adjoint_eigenvalues(Side::Lower).unwrap();
    assert!(
        eig[0] > 1e-8,
        "smallest eigenvalue {} must be positive with air",
        eig[0]
    );
}

/// A closed box (no air) split by a solid wall into two rooms; the right
/// room has an air cell, the left one does not.
fn two_rooms(left_air: bool) -> (GridPoisson, Vec<Cell>) {
    let (nx, ny) = (9, 6);
    let cells: Vec<Cell> = (0..nx * ny)
        .map(|c| {
            let (i, j) = (c % nx, c / nx);
            if i == 4 {
                Cell::Solid
            } else if (i == 8 && j == 5) || (left_air && i == 0 && j == 5) {
                Cell::Air
            } else {
                Cell::Fluid
            }
        })
        .collect();
    (
        GridPoisson::builder([nx, ny, 1], &cells).build().unwrap(),
        cells,
    )
}

#[test]
fn all_neumann_region_is_singular_and_checked() {
    let (g, cells) = two_rooms(false);
    assert!(g.is_singular());
    let (sealed, _) = two_rooms(true);
    assert!(!sealed.is_singular());
    let eig = csr_to_dense(&g.to_csr().unwrap())
        .self_adjoint_eigenvalues(Side::Lower)
        .unwrap();
    assert!(
        eig[0].abs() < 1e-12 && eig[1] > 1e-6,
        "exactly one zero eigenvalue: {:?}",
        &eig[..2]
    );

    // Consistent: zero mean over the enclosed left room (cells with i < 4).
    let mut rng = Rng::new(5);
    let mut b = rng.vector(g.dim());
    let left: Vec<usize> = (0..cells.len())
        .filter(|&c| c % 9 < 4)
        .filter_map(|c| g.unknown_of_cell(c))
        .collect();
    let mean = left.iter().map(|&u| b[u]).sum::<f64>() / left.len() as f64;
    for &u in &left {
        b[u] -= mean;
    }
    let mut x = vec![0.0; g.dim()];
    let report = cg(
        &g,
        &Jacobi::new(&g).unwrap(),
        &b,
        &mut x,
        &KrylovOptions {
            rtol: 1e-10,
            ..KrylovOptions::default()
        },
    )
    .unwrap();
    let mut ax = vec![0.0; g.dim()];
    g.apply(&x, &mut ax).unwrap();
    assert!(
        rel_diff(&ax, &b) < 1e-9,
        "consistent singular system solved ({} iterations)",
        report.iterations
    );

    // Inconsistent: a nonzero sum over the left room is reported, naming b.
    b[left[0]] += 1.0;
    let err = cg(
        &g,
        &Identity { dim: g.dim() },
        &b,
        &mut x,
        &KrylovOptions::default(),
    )
    .unwrap_err();
    match &err {
        Error::InvalidArgument { argument, message } => {
            assert_eq!(*argument, "b");
            assert!(
                message.contains("inconsistent") && message.contains("touches no air"),
                "{message}"
            );
        }
        other => panic!("expected an invalid-argument error, got {other}"),
    }
}

#[test]
fn gather_and_scatter_round_trip() {
    let cells = random_cells([8, 7, 3], 0.3, 2);
    let g = GridPoisson::builder([8, 7, 3], &cells).build().unwrap();
    let field: Vec<f64> = (0..g.num_cells()).map(|c| c as f64).collect();
    let mut unknowns = vec![0.0; g.dim()];
    g.gather(&field, &mut unknowns).unwrap();
    let mut back = vec![-1.0; g.num_cells()];
    g.scatter(&unknowns, &mut back).unwrap();
    for c in 0..g.num_cells() {
        let expected = if cells[c] == Cell::Fluid {
            c as f64
        } else {
            0.0
        };
        assert_eq!(back[c], expected);
    }
}

#[test]
fn invalid_grids_are_rejected() {
    let cells = vec![Cell::Fluid; 12];
    let err = |r: Result<GridPoisson, Error>| r.unwrap_err().to_string();
    assert!(err(GridPoisson::builder([3, 4, 2], &cells).build()).contains("`cells`"));
    assert!(err(GridPoisson::builder([0, 4, 3], &cells).build()).contains("`nx`"));
    assert!(err(GridPoisson::builder([3, 4, 1], &cells)
        .spacing([0.0, 1.0, 1.0])
        .build())
    .contains("`spacing`"));
    let beta = vec![-1.0; 24];
    assert!(err(GridPoisson::builder([3, 4, 1], &cells)
        .face_coefficients(&beta)
        .build())
    .contains("`face_coefficients`"));
    // No fluid cell is not an error (a drained scene): no unknowns.
    let empty = GridPoisson::builder([3, 4, 1], &[Cell::Air; 12])
        .build()
        .unwrap();
    assert_eq!(empty.dim(), 0);
}

/// The enclosed regions (the null space the solvers remove) against the
/// connected components of the dense reference: on random grids with few
/// air cells and some faces of β = 0, `remove_null_space` subtracts the
/// mean over exactly the components whose rows all sum to 0.
#[test]
fn enclosed_regions_match_the_components_of_the_reference() {
    let mut rng = Rng::new(17);
    for (dims, seed) in [
        ([12, 9, 1], 1),
        ([30, 3, 1], 2),
        ([7, 6, 5], 3),
        ([9, 4, 6], 4),
    ] {
        let ncells: usize = dims.iter().product();
        let ndim = if dims[2] > 1 { 3 } else { 2 };
        let mut cells = random_cells(dims, 0.3, seed);
        for c in cells.iter_mut().step_by(37) {
            *c = Cell::Air;
        }
        let beta: Vec<f64> = (0..ndim * ncells)
            .map(|_| if rng.uniform() < 0.3 { 0.0 } else { 1.0 })
            .collect();
        let g = GridPoisson::builder(dims, &cells)
            .face_coefficients(&beta)
            .build()
            .unwrap();
        let a = dense_reference(dims, &cells, [1.0; 3], Some(&beta));
        let n = g.dim();
        // Components of the graph of A's off-diagonal nonzeros.
        let mut component = vec![usize::MAX; n];
        let mut members: Vec<Vec<usize>> = Vec::new();
        for start in 0..n {
            if component[start] != usize::MAX {
                continue;
            }
            let (id, mut stack) = (members.len(), vec![start]);
            component[start] = id;
            members.push(Vec::new());
            while let Some(i) = stack.pop() {
                members[id].push(i);
                for j in 0..n {
                    if j != i && a[(i, j)] != 0.0 && component[j] == usize::MAX {
                        component[j] = id;
                        stack.push(j);
                    }
                }
            }
        }
        let floating: Vec<&Vec<usize>> = members
            .iter()
            .filter(|m| {
                m.iter()
                    .all(|&i| (0..n).map(|j| a[(i, j)]).sum::<f64>().abs() < 1e-12)
            })
            .collect();
        assert!(
            !floating.is_empty() && floating.len() < members.len(),
            "{dims:?}"
        );
        assert!(g.is_singular());
        let v = rng.vector(n);
        let mut expected = v.clone();
        for m in &floating {
            let mean = m.iter().map(|&i| v[i]).sum::<f64>() / m.len() as f64;
            for &i in m.iter() {
                expected[i] -= mean;
            }
        }
        let mut projected = v.clone();
        g.remove_null_space(&mut projected);
        assert!(rel_diff(&projected, &expected) < 1e-14, "{dims:?}");
    }
}
