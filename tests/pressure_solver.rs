//! The persistent pressure solver through the C ABI, the way a simulator
//! runs it: one object for the grid, 100 frames of a solid sphere moving
//! through a smoke box (the air region changing too), a divergence field
//! per frame, warm starts from the last pressure, and float32 fields.

mod common;

use adjunct::ffi::*;
use adjunct::{Cell, GridPoisson, LinearOperator};
use common::{direct_solve, init, last_error, rel_diff};
use std::ptr::null_mut;

use adj_status::*;

const DIMS: [usize; 3] = [24, 20, 22];

/// Frame t: a sphere moving along x, an air layer whose thickness varies.
fn frame_cells(t: usize) -> Vec<u8> {
    let [nx, ny, nz] = DIMS;
    let centre = [4.0 + 0.16 * t as f64, 9.5, 10.0];
    let air_from = nz - 2 - (t / 25) % 3;
    (0..nx * ny * nz)
        .map(|c| {
            let p = [c % nx, (c / nx) % ny, c / (nx * ny)];
            let d2: f64 = (0..3)
                .map(|a| (p[a] as f64 + 0.5 - centre[a]).powi(2))
                .sum();
            if p[2] >= air_from {
                adj_cell::ADJ_CELL_AIR as u8
            } else if d2 < 16.0 {
                adj_cell::ADJ_CELL_SOLID as u8
            } else {
                adj_cell::ADJ_CELL_FLUID as u8
            }
        })
        .collect()
}

/// A smooth divergence field that drifts from frame to frame.
fn divergence(t: usize) -> Vec<f64> {
    let [nx, ny, nz] = DIMS;
    (0..nx * ny * nz)
        .map(|c| {
            let p = [c % nx, (c / nx) % ny, c / (nx * ny)].map(|v| v as f64);
            (0.3 * p[0] + 0.05 * t as f64).sin() * (0.4 * p[1]).cos() + 0.1 * (0.2 * p[2]).sin()
        })
        .collect()
}

fn rust_grid(cells: &[u8]) -> GridPoisson {
    let kinds: Vec<Cell> = cells.iter().map(|&c| Cell::from_code(c).unwrap()).collect();
    GridPoisson::builder(DIMS, &kinds).build().unwrap()
}

#[test]
fn a_hundred_frames_with_warm_starts_and_float_fields() {
    let num_cells: usize = DIMS.iter().product();
    let mut solver = null_mut();
    let mut solver32 = null_mut();
    // SAFETY: live handles; arrays of num_cells values.
    unsafe {
        assert_eq!(
            adj_pressure_solver_new(DIMS[0], DIMS[1], DIMS[2], &mut solver),
            ADJ_OK
        );
        assert_eq!(
            adj_pressure_solver_new(DIMS[0], DIMS[1], DIMS[2], &mut solver32),
            ADJ_OK
        );
        // Solving before any frame is set up is an error naming the solver.
        let (rhs, mut p) = (vec![0.0; num_cells], vec![0.0; num_cells]);
        let status = adj_pressure_solver_solve(
            solver,
            rhs.as_ptr(),
            p.as_mut_ptr(),
            num_cells,
            1,
            std::ptr::null(),
            null_mut(),
        );
        common::expect(status, ADJ_ERR_INVALID_ARGUMENT, &["`solver`", "update"]);
    }
    let mut options = init(adj_cg_options_init);
    options.rtol = 1e-10;
    let (mut warm_iterations, mut cold_iterations) = (0, 0);
    let mut pressure = vec![0.0; num_cells];
    let mut pressure32 = vec![0.0f32; num_cells];
    for t in 0..100 {
        let cells = frame_cells(t);
        let rhs = divergence(t);
        let rhs32: Vec<f32> = rhs.iter().map(|&v| v as f32).collect();
        let mut report = init(adj_solve_report_init);
        // SAFETY: as above.
        unsafe {
            assert_eq!(
                adj_pressure_solver_update(solver, cells.as_ptr(), std::ptr::null()),
                ADJ_OK,
                "{}",
                last_error()
            );
            assert_eq!(
                adj_pressure_solver_update(solver32, cells.as_ptr(), std::ptr::null()),
                ADJ_OK
            );
            let status = adj_pressure_solver_solve(
                solver,
                rhs.as_ptr(),
                pressure.as_mut_ptr(),
                num_cells,
                1,
                &options,
                &mut report,
            );
            assert_eq!(status, ADJ_OK, "frame {t}: {}", last_error());
            warm_iterations += report.iterations;
            let status = adj_pressure_solver_solve_f32(
                solver32,
                rhs32.as_ptr(),
                pressure32.as_mut_ptr(),
                num_cells,
                1,
                &options,
                null_mut(),
            );
            assert_eq!(status, ADJ_OK, "frame {t}: {}", last_error());
        }
        // The same frame solved from scratch (cold start) by plain MGPCG.
        let grid = rust_grid(&cells);
        let mut b = vec![0.0; grid.dim()];
        grid.gather(&rhs, &mut b).unwrap();
        let multigrid = adjunct::krylov::Multigrid::new(&grid, &Default::default()).unwrap();
        let mut x = vec![0.0; grid.dim()];
        let cold = adjunct::cg(
            &grid,
            &multigrid,
            &b,
            &mut x,
            &adjunct::KrylovOptions {
                rtol: 1e-10,
                ..Default::default()
            },
        )
        .unwrap();
        cold_iterations += cold.iterations;
        let mut p = vec![0.0; grid.dim()];
        grid.gather(&pressure, &mut p).unwrap();
        assert!(rel_diff(&p, &x) < 1e-8, "frame {t}");
        // Solid and air cells read 0.
        for (c, &flag) in cells.iter().enumerate() {
            if flag != adj_cell::ADJ_CELL_FLUID as u8 {
                assert_eq!(pressure[c], 0.0);
            }
        }
        // float32 fields: the solve runs in double; the output is the
        // solution of the float32 right-hand side, rounded.
        let mut p32 = vec![0.0; grid.dim()];
        grid.gather(&pressure32, &mut p32).unwrap();
        assert!(
            rel_diff(&p32, &x) < 1e-6,
            "frame {t}: {:e}",
            rel_diff(&p32, &x)
        );
        if t % 25 == 0 {
            let reference = direct_solve(&grid.to_csr().unwrap(), &b);
            assert!(rel_diff(&p, &reference) < 1e-8, "frame {t}");
        }
    }
    println!("100 frames: {warm_iterations} warm-started MGPCG iterations, {cold_iterations} cold");
    assert!(
        warm_iterations < cold_iterations,
        "{warm_iterations} vs {cold_iterations}"
    );
    let mut seconds = -1.0;
    // SAFETY: live handles.
    unsafe {
        assert_eq!(
            adj_pressure_solver_setup_seconds(solver, &mut seconds),
            ADJ_OK
        );
        assert!(seconds >= 0.0);
        // The same frame again keeps the hierarchy (a comparison, not a
        // rebuild) and solves the same.
        let cells = frame_cells(99);
        let rhs = divergence(99);
        let before = pressure.clone();
        assert_eq!(
            adj_pressure_solver_update(solver, cells.as_ptr(), std::ptr::null()),
            ADJ_OK
        );
        let mut kept = -1.0;
        adj_pressure_solver_setup_seconds(solver, &mut kept);
        let mut again = vec![0.0; num_cells];
        let status = adj_pressure_solver_solve(
            solver,
            rhs.as_ptr(),
            again.as_mut_ptr(),
            num_cells,
            0,
            &options,
            null_mut(),
        );
        assert_eq!(status, ADJ_OK);
        assert!(rel_diff(&again, &before) < 1e-8);
        assert!(kept < seconds, "kept {kept} s, rebuilt {seconds} s");
        println!("setup: rebuilt {seconds:.4} s, kept {kept:.4} s");
        // A frame of the wrong size or with a bad flag keeps the last one.
        let mut bad = frame_cells(0);
        bad[5] = 9;
        common::expect(
            adj_pressure_solver_update(solver, bad.as_ptr(), std::ptr::null()),
            ADJ_ERR_INVALID_ARGUMENT,
            &["`cells`"],
        );
        let rhs = divergence(0);
        let mut p = vec![0.0; num_cells];
        let status = adj_pressure_solver_solve(
            solver,
            rhs.as_ptr(),
            p.as_mut_ptr(),
            num_cells - 1,
            1,
            &options,
            null_mut(),
        );
        common::expect(status, ADJ_ERR_DIMENSION_MISMATCH, &["`num_cells`"]);
        let status = adj_pressure_solver_solve(
            solver,
            rhs.as_ptr(),
            p.as_mut_ptr(),
            num_cells,
            2,
            &options,
            null_mut(),
        );
        common::expect(status, ADJ_ERR_INVALID_ARGUMENT, &["`warm_start`"]);
        let mut nan = rhs.clone();
        nan[9] = f64::NAN;
        let status = adj_pressure_solver_solve(
            solver,
            nan.as_ptr(),
            p.as_mut_ptr(),
            num_cells,
            1,
            &options,
            null_mut(),
        );
        common::expect(status, ADJ_ERR_INVALID_ARGUMENT, &["`rhs`"]);
        assert_eq!(
            adj_pressure_solver_solve(
                solver,
                rhs.as_ptr(),
                p.as_mut_ptr(),
                num_cells,
                0,
                &options,
                null_mut()
            ),
            ADJ_OK
        );
        adj_pressure_solver_free(solver);
        adj_pressure_solver_free(solver32);
        adj_pressure_solver_free(null_mut());
    }
}

#[test]
fn float_fields_gather_and_scatter() {
    let cells = frame_cells(3);
    let mut op = null_mut();
    let num_cells: usize = DIMS.iter().product();
    // SAFETY: arrays of the documented sizes.
    unsafe {
        adj_operator_new_grid_poisson(
            DIMS[0],
            DIMS[1],
            DIMS[2],
            cells.as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            &mut op,
        );
        let mut n = 0;
        adj_operator_dim(op, &mut n);
        let field: Vec<f32> = (0..num_cells).map(|c| c as f32 * 0.25).collect();
        let mut unknowns = vec![0.0; n];
        assert_eq!(
            adj_grid_gather_f32(op, field.as_ptr(), num_cells, unknowns.as_mut_ptr(), n),
            ADJ_OK
        );
        let grid = rust_grid(&cells);
        let mut expected = vec![0.0; n];
        let field64: Vec<f64> = field.iter().map(|&v| f64::from(v)).collect();
        grid.gather(&field64, &mut expected).unwrap();
        assert_eq!(unknowns, expected);
        let mut back = vec![7.0f32; num_cells];
        assert_eq!(
            adj_grid_scatter_f32(op, unknowns.as_ptr(), n, back.as_mut_ptr(), num_cells),
            ADJ_OK
        );
        for (c, &flag) in cells.iter().enumerate() {
            let want = if flag == adj_cell::ADJ_CELL_FLUID as u8 {
                field[c]
            } else {
                0.0
            };
            assert_eq!(back[c], want);
        }
        common::expect(
            adj_grid_gather_f32(op, field.as_ptr(), num_cells - 1, unknowns.as_mut_ptr(), n),
            ADJ_ERR_DIMENSION_MISMATCH,
            &["`field`"],
        );
        adj_operator_free(op);
    }
}
