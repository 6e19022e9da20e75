//! Closed domains (every wall solid, no air: A is singular, its null space
//! the constants on each enclosed region) the way a simulator meets them:
//! 200 frames of a divergence computed in float32, whose sum over the box
//! is zero only up to rounding. Every solver and preconditioner removes
//! that null-space component, reports it, converges and returns the
//! zero-mean solution, which matches a direct solve of the system with one
//! pressure pinned (made zero-mean afterwards). An inconsistent b is still
//! rejected, naming `b`.

mod common;

use adjunct::krylov::{
    cg_single_reduction, conjugate_direction, ConjugateDirectionOptions, Ic0, Identity, Jacobi,
    Multigrid, MultigridOptions,
};
use adjunct::{cg, Cell, Error, GridPoisson, KrylovOptions, LinearOperator};
use common::{direct_solve, rel_diff, Rng};

/// The divergence of a random face-velocity field in float32 (zero normal
/// velocity on the walls and on solid cells' faces), gathered to the fluid
/// unknowns as f64: consistent in exact arithmetic, not after rounding.
fn float_divergence(grid: &GridPoisson, seed: u64) -> Vec<f64> {
    let dims = grid.dims();
    let ndim = if dims[2] > 1 { 3 } else { 2 };
    let ncells = grid.num_cells();
    let mut rng = Rng::new(seed);
    let index = |p: [usize; 3]| p[0] + dims[0] * (p[1] + dims[1] * p[2]);
    // u[a][c]: velocity on the +a face of cell c.
    let u: Vec<Vec<f32>> = (0..ndim)
        .map(|a| {
            (0..ncells)
                .map(|c| {
                    let p = [
                        c % dims[0],
                        (c / dims[0]) % dims[1],
                        c / (dims[0] * dims[1]),
                    ];
                    let mut q = p;
                    q[a] += 1;
                    let open = q[a] < dims[a]
                        && grid.cell(c) == Cell::Fluid
                        && grid.cell(index(q)) == Cell::Fluid;
                    if open {
                        (rng.range(-1.0, 1.0) * 3.7) as f32
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect();
    let mut field = vec![0.0f64; ncells];
    for (c, f) in field.iter_mut().enumerate() {
        let p = [
            c % dims[0],
            (c / dims[0]) % dims[1],
            c / (dims[0] * dims[1]),
        ];
        let mut div = 0.0f32;
        for (a, ua) in u.iter().enumerate() {
            div += ua[c];
            if p[a] > 0 {
                let mut q = p;
                q[a] -= 1;
                div -= ua[index(q)];
            }
        }
        // −∇·u, the right-hand side of A p = −∇·u for A = −∇².
        *f = f64::from(-div);
    }
    let mut b = vec![0.0; grid.dim()];
    grid.gather(&field, &mut b).unwrap();
    b
}

/// A closed box with a solid block inside (one enclosed fluid region).
fn closed_box(dims: [usize; 3]) -> GridPoisson {
    let ncells = dims.iter().product();
    let cells: Vec<Cell> = (0..ncells)
        .map(|c| {
            let p = [
                c % dims[0],
                (c / dims[0]) % dims[1],
                c / (dims[0] * dims[1]),
            ];
            let inside =
                (0..3).all(|a| dims[a] == 1 || (p[a] >= dims[a] / 3 && p[a] < dims[a] / 2));
            if inside {
                Cell::Solid
            } else {
                Cell::Fluid
            }
        })
        .collect();
    let grid = GridPoisson::builder(dims, &cells).build().unwrap();
    assert!(grid.is_singular());
    grid
}

/// The reference: A with the first unknown pinned to 0 (its row and column
/// removed) solved by sparse Cholesky, then made zero-mean.
fn pinned_reference(grid: &GridPoisson, b: &[f64]) -> Vec<f64> {
    let a = grid.to_csr().unwrap();
    let n = a.dim();
    let (ptr, cols, vals) = (a.row_ptr(), a.col_idx(), a.values());
    let mut rows: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n - 1];
    for (i, row) in rows.iter_mut().enumerate() {
        for k in ptr[i + 1] as usize..ptr[i + 2] as usize {
            if cols[k] > 0 {
                row.push((cols[k] as usize - 1, vals[k]));
            }
        }
    }
    let reduced = common::csr_from_rows(&rows);
    let mean_b = b.iter().sum::<f64>() / n as f64;
    let rhs: Vec<f64> = b[1..].iter().map(|v| v - mean_b).collect();
    let mut x = vec![0.0];
    x.extend(direct_solve(&reduced, &rhs));
    let mean = x.iter().sum::<f64>() / n as f64;
    x.iter().map(|v| v - mean).collect()
}

fn check_frame(grid: &GridPoisson, b: &[f64], x: &[f64], null_space_component: f64, what: &str) {
    let n = grid.dim();
    let mean = x.iter().sum::<f64>() / n as f64;
    let scale = x.iter().map(|v| v.abs()).fold(0.0, f64::max);
    assert!(mean.abs() <= 1e-12 * scale, "{what}: mean {mean:e}");
    let b_norm = b.iter().map(|v| v * v).sum::<f64>().sqrt();
    let b_sum: f64 = b.iter().sum();
    // The removed component is that of b: |Σb|/√n.
    let expected = b_sum.abs() / (n as f64).sqrt();
    assert!(
        (null_space_component - expected).abs() <= 1e-9 * expected.max(1e-300) + 1e-18 * b_norm,
        "{what}: removed {null_space_component:e}, b has {expected:e}"
    );
    let mut ax = vec![0.0; n];
    grid.apply(x, &mut ax).unwrap();
    let mean_b = b_sum / n as f64;
    let residual = ax
        .iter()
        .zip(b)
        .map(|(a, b)| (b - mean_b - a).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!(
        residual <= 1.01e-8 * b_norm,
        "{what}: residual {residual:e}"
    );
}

#[test]
fn every_solver_handles_200_frames_of_a_closed_box() {
    for dims in [[48, 40, 1], [20, 18, 16]] {
        let grid = closed_box(dims);
        let multigrid = Multigrid::new(&grid, &MultigridOptions::default()).unwrap();
        let ic0 = Ic0::new(&grid.to_csr().unwrap()).unwrap();
        let jacobi = Jacobi::new(&grid).unwrap();
        let identity = Identity { dim: grid.dim() };
        let options = KrylovOptions::default();
        let mut largest = 0.0f64;
        for frame in 0..200u64 {
            let b = float_divergence(&grid, 1000 * dims[2] as u64 + frame);
            let mut x = vec![0.0; grid.dim()];
            // The simulator's solver: multigrid-PCG, every frame.
            let report = cg(&grid, &multigrid, &b, &mut x, &options)
                .unwrap_or_else(|e| panic!("{dims:?} frame {frame}: {e}"));
            check_frame(&grid, &b, &x, report.null_space_component, "multigrid");
            largest = largest.max(report.null_space_component / common::norm(&b));
            if frame % 20 == 0 {
                let reference = pinned_reference(&grid, &b);
                assert!(rel_diff(&x, &reference) < 1e-7, "{dims:?} frame {frame}");
                // The other preconditioners and solvers on some frames.
                for (name, report) in [
                    ("IC(0)", cg(&grid, &ic0, &b, &mut x, &options)),
                    ("Jacobi", cg(&grid, &jacobi, &b, &mut x, &options)),
                    ("none", cg(&grid, &identity, &b, &mut x, &options)),
                    (
                        "single reduction",
                        cg_single_reduction(&grid, &multigrid, &b, &mut x, &options, None),
                    ),
                ] {
                    let report = report.unwrap_or_else(|e| panic!("{name}, frame {frame}: {e}"));
                    check_frame(&grid, &b, &x, report.null_space_component, name);
                }
                let cdm = conjugate_direction(
                    &grid,
                    &multigrid,
                    &b,
                    &mut x,
                    &ConjugateDirectionOptions::default(),
                )
                .unwrap();
                check_frame(
                    &grid,
                    &b,
                    &x,
                    cdm.solve.null_space_component,
                    "conjugate directions",
                );
                // A warm start with a constant added: the same zero-mean answer.
                let mut warm: Vec<f64> = reference.iter().map(|v| v + 5.0).collect();
                let warm_options = KrylovOptions {
                    nonzero_initial_guess: true,
                    ..options.clone()
                };
                let report = cg(&grid, &multigrid, &b, &mut warm, &warm_options).unwrap();
                check_frame(&grid, &b, &warm, report.null_space_component, "warm start");
            }
        }
        // Rounding made every frame slightly inconsistent, as in a simulator.
        assert!(largest > 0.0 && largest < 1e-6, "{dims:?}: {largest:e}");
        println!("{dims:?}: largest null-space component {largest:.2e} of ‖b‖");
    }
}

#[test]
fn an_inconsistent_right_hand_side_is_still_rejected() {
    let grid = closed_box([16, 12, 1]);
    let mut b = float_divergence(&grid, 7);
    b[3] += 1.0; // a net source: no solution exists
    let mut x = vec![0.0; grid.dim()];
    let multigrid = Multigrid::new(&grid, &MultigridOptions::default()).unwrap();
    match cg(&grid, &multigrid, &b, &mut x, &KrylovOptions::default()) {
        Err(Error::InvalidArgument {
            argument: "b",
            message,
        }) => {
            assert!(message.contains("inconsistent"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // A nonsingular grid reports no null-space component.
    let cells: Vec<Cell> = (0..16 * 12)
        .map(|c| if c >= 16 * 11 { Cell::Air } else { Cell::Fluid })
        .collect();
    let open = GridPoisson::builder([16, 12, 1], &cells).build().unwrap();
    let b = vec![1.0; open.dim()];
    let mut x = vec![0.0; open.dim()];
    let report = cg(
        &open,
        &Identity { dim: open.dim() },
        &b,
        &mut x,
        &KrylovOptions::default(),
    )
    .unwrap();
    assert_eq!(report.null_space_component, 0.0);
}

#[test]
fn multigrid_handles_isolated_fluid_cells() {
    // A smoke box of 7 680 unknowns (so the hierarchy has three levels)
    // with two isolated fluid cells: all four neighbours solid, a zero row
    // of A. Each is its own enclosed region; b is zero there.
    let (nx, ny) = (96, 80);
    let mut cells: Vec<Cell> = (0..nx * ny)
        .map(|c| {
            if c / nx == ny - 1 {
                Cell::Air
            } else {
                Cell::Fluid
            }
        })
        .collect();
    let mut isolated = Vec::new();
    for (i, j) in [(5, 5), (61, 37)] {
        for (di, dj) in [(-1, 0), (1, 0), (0, -1), (0, 1)] {
            cells[(i + di) as usize + nx * (j + dj) as usize] = Cell::Solid;
        }
        isolated.push(i as usize + nx * j as usize);
    }
    let grid = GridPoisson::builder([nx, ny, 1], &cells).build().unwrap();
    assert!(grid.is_singular());
    let mut b = Rng::new(3).vector(grid.dim());
    let mut field = vec![0.0; nx * ny];
    grid.scatter(&b, &mut field).unwrap();
    for &c in &isolated {
        field[c] = 0.0;
    }
    grid.gather(&field, &mut b).unwrap();
    let multigrid = Multigrid::new(&grid, &MultigridOptions::default()).unwrap();
    assert!(multigrid.level_dims().len() > 2);
    let mut x = vec![0.0; grid.dim()];
    let report = cg(&grid, &multigrid, &b, &mut x, &KrylovOptions::default()).unwrap();
    assert_eq!(report.null_space_component, 0.0);
    // Reference: the system without the isolated cells' rows and columns.
    let (keep, reference) = common::direct_solve_without_zero_rows(&grid.to_csr().unwrap(), &b);
    assert_eq!(keep.len(), grid.dim() - 2);
    let new_index = |u: usize| keep.binary_search(&u).ok();
    let kept: Vec<f64> = keep.iter().map(|&u| x[u]).collect();
    assert!(rel_diff(&kept, &reference) < 1e-7);
    assert!(report.iterations < 30, "{} iterations", report.iterations);
    for (u, &xu) in x.iter().enumerate() {
        if new_index(u).is_none() {
            assert_eq!(
                xu, 0.0,
                "an isolated cell's pressure is its region's mean, 0"
            );
        }
    }
}
