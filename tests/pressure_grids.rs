//! What a fluid simulator's grid needs beyond the plain stencil, through
//! the C ABI: empty domains (no fluid cell) are the trivial solve.

mod common;

use adjunct::ffi::*;
use common::{init, last_error};
use std::ffi::CString;
use std::ptr::{null, null_mut};

use adj_status::*;

fn grid(dims: [usize; 3], cells: &[u8]) -> *mut adj_operator {
    let mut op = null_mut();
    // SAFETY: `cells` holds nx·ny·nz flags.
    let status = unsafe {
        adj_operator_new_grid_poisson(
            dims[0],
            dims[1],
            dims[2],
            cells.as_ptr(),
            null(),
            null(),
            &mut op,
        )
    };
    assert_eq!(status, ADJ_OK, "{}", last_error());
    op
}

#[test]
fn an_empty_domain_is_the_trivial_solve() {
    // A drained box (all air) and a box of walls: no unknowns.
    let model_path = CString::new(
        common::root()
            .join("models/cdm_2d.safetensors")
            .to_str()
            .unwrap(),
    )
    .unwrap();
    let mut model = null_mut();
    // SAFETY: a NUL-terminated path.
    assert_eq!(
        unsafe { adj_model_load(model_path.as_ptr(), &mut model) },
        ADJ_OK
    );
    for flag in [adj_cell::ADJ_CELL_AIR, adj_cell::ADJ_CELL_SOLID] {
        let cells = vec![flag as u8; 8 * 6];
        let op = grid([8, 6, 1], &cells);
        let mut n = 99;
        // SAFETY: live handles; zero-length arrays may be NULL or not.
        unsafe {
            assert_eq!(adj_operator_dim(op, &mut n), ADJ_OK);
            assert_eq!(n, 0);
            let field = vec![1.0; 48];
            let mut out = vec![7.0; 48];
            assert_eq!(
                adj_grid_gather(op, field.as_ptr(), 48, null_mut(), 0),
                ADJ_OK
            );
            assert_eq!(
                adj_grid_scatter(op, null(), 0, out.as_mut_ptr(), 48),
                ADJ_OK
            );
            assert_eq!(out, vec![0.0; 48]);
            for kind in [
                adj_precond_kind::ADJ_PRECOND_NONE,
                adj_precond_kind::ADJ_PRECOND_JACOBI,
                adj_precond_kind::ADJ_PRECOND_IC0,
                adj_precond_kind::ADJ_PRECOND_MULTIGRID,
            ] {
                let mut pc = null_mut();
                assert_eq!(
                    adj_precond_new(op, kind as u32, &mut pc),
                    ADJ_OK,
                    "{kind:?}: {}",
                    last_error()
                );
                let mut report = init(adj_solve_report_init);
                let status = adj_cg_solve(op, pc, null(), null_mut(), 0, null(), &mut report);
                assert_eq!(status, ADJ_OK, "{kind:?}: {}", last_error());
                assert_eq!(report.iterations, 0);
                assert!(report.reason as i32 > 0, "a converged reason");
                let status = adj_cg_solve_distributed(
                    op,
                    pc,
                    null(),
                    null_mut(),
                    0,
                    null(),
                    None,
                    null_mut(),
                    &mut report,
                );
                assert_eq!(status, ADJ_OK, "{kind:?}: {}", last_error());
                adj_precond_free(pc);
            }
            let mut report = init(adj_solve_report_init);
            let status = adj_cdm_solve(
                op,
                model,
                null(),
                None,
                null_mut(),
                null(),
                null_mut(),
                0,
                null(),
                &mut report,
                null_mut(),
            );
            assert_eq!(status, ADJ_OK, "cdm: {}", last_error());
            assert_eq!(report.iterations, 0);
            adj_operator_free(op);
        }
    }
    // SAFETY: a live handle.
    unsafe { adj_model_free(model) };
}

fn new_grid(
    dims: [usize; 3],
    cells: &[u8],
    options: &adj_grid_options,
) -> (adj_status, *mut adj_operator) {
    let mut op = null_mut();
    // SAFETY: `cells` holds nx·ny·nz flags; the options' arrays their sizes.
    let status = unsafe {
        adj_operator_new_grid(dims[0], dims[1], dims[2], cells.as_ptr(), options, &mut op)
    };
    (status, op)
}

/// The operator's matrix as dense rows, from its CSR export.
fn dense(op: *const adj_operator) -> Vec<Vec<f64>> {
    let (mut n, mut nnz) = (0, 0);
    // SAFETY: a live handle and arrays of the reported sizes.
    unsafe {
        adj_operator_dim(op, &mut n);
        assert_eq!(adj_operator_csr_nnz(op, &mut nnz), ADJ_OK);
        let (mut p, mut c, mut v) = (vec![0i64; n + 1], vec![0i64; nnz], vec![0.0; nnz]);
        assert_eq!(
            adj_operator_to_csr_i64(op, p.as_mut_ptr(), c.as_mut_ptr(), v.as_mut_ptr()),
            ADJ_OK
        );
        let mut a = vec![vec![0.0; n]; n];
        for i in 0..n {
            for k in p[i] as usize..p[i + 1] as usize {
                a[i][c[k] as usize] = v[k];
            }
        }
        a
    }
}

/// A 2D liquid scene: solid floor and walls, a liquid pool with a wavy
/// surface, air above; φ the signed distance to that surface.
fn pool(nx: usize, ny: usize) -> (Vec<adj_cell>, Vec<f64>) {
    let mut cells = Vec::new();
    let mut phi = Vec::new();
    for j in 0..ny {
        for i in 0..nx {
            let surface = ny as f64 * 0.55 + 1.7 * (i as f64 * 0.7).sin();
            let d = j as f64 + 0.5 - surface; // < 0 in the liquid
            phi.push(d);
            cells.push(if i == 0 || i + 1 == nx || j == 0 {
                adj_cell::ADJ_CELL_SOLID
            } else if d < 0.0 {
                adj_cell::ADJ_CELL_FLUID
            } else {
                adj_cell::ADJ_CELL_AIR
            });
        }
    }
    (cells, phi)
}

#[test]
fn the_callers_cell_codes_scale_and_ghost_fluid_faces() {
    let (nx, ny) = (14, 11);
    let (kinds, phi) = pool(nx, ny);
    let ours: Vec<u8> = kinds.iter().map(|&k| k as u8).collect();
    // A simulator's own codes: air = 0, fluid = 1, solid = 2.
    let theirs: Vec<u8> = kinds
        .iter()
        .map(|k| match k {
            adj_cell::ADJ_CELL_AIR => 0,
            adj_cell::ADJ_CELL_FLUID => 1,
            adj_cell::ADJ_CELL_SOLID => 2,
        })
        .collect();
    let mut options = init(adj_grid_options_init);
    assert_eq!(options.scale, 1.0);
    assert_eq!(
        (options.fluid_code, options.solid_code, options.air_code),
        (0, 1, 2)
    );
    let reference = grid([nx, ny, 1], &ours);
    options.fluid_code = 1;
    options.solid_code = 2;
    options.air_code = 0;
    let (status, mapped) = new_grid([nx, ny, 1], &theirs, &options);
    assert_eq!(status, ADJ_OK, "{}", last_error());
    assert_eq!(
        dense(mapped),
        dense(reference),
        "the same operator from the caller's codes"
    );
    // Unchanged flags with the default codes would swap fluid and air:
    // that is why the codes must be stated.
    let (_, swapped) = new_grid([nx, ny, 1], &theirs, &init(adj_grid_options_init));
    assert_ne!(dense(swapped), dense(reference));
    let mut bad = options;
    bad.air_code = 1;
    common::expect(
        new_grid([nx, ny, 1], &theirs, &bad).0,
        ADJ_ERR_INVALID_ARGUMENT,
        &["`options`", "differ"],
    );
    let mut stray = theirs.clone();
    stray[7] = 9;
    common::expect(
        new_grid([nx, ny, 1], &stray, &options).0,
        ADJ_ERR_INVALID_ARGUMENT,
        &["`cells`", "cells[7] = 9"],
    );

    // A scalar factor multiplies every entry.
    let mut scaled = init(adj_grid_options_init);
    scaled.scale = 0.25;
    let (status, quarter) = new_grid([nx, ny, 1], &ours, &scaled);
    assert_eq!(status, ADJ_OK);
    let (a, q) = (dense(reference), dense(quarter));
    for (ra, rq) in a.iter().zip(&q) {
        for (x, y) in ra.iter().zip(rq) {
            assert!((0.25 * x - y).abs() <= 1e-15 * x.abs());
        }
    }
    for bad_scale in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        scaled.scale = bad_scale;
        common::expect(
            new_grid([nx, ny, 1], &ours, &scaled).0,
            ADJ_ERR_INVALID_ARGUMENT,
            &["`scale`"],
        );
    }

    // Ghost fluid: the matrix assembled here from the level set, face by
    // face, with spacing h and θ = φ_i/(φ_i − φ_a) clamped to [0.01, 1].
    let h = [0.5, 0.25];
    let mut ghost = init(adj_grid_options_init);
    ghost.spacing = h.as_ptr();
    ghost.air_level_set = phi.as_ptr();
    let (status, op) = new_grid([nx, ny, 1], &ours, &ghost);
    assert_eq!(status, ADJ_OK, "{}", last_error());
    let unknown: Vec<Option<usize>> = {
        let mut next = 0;
        kinds
            .iter()
            .map(|&k| {
                (k == adj_cell::ADJ_CELL_FLUID).then(|| {
                    next += 1;
                    next - 1
                })
            })
            .collect()
    };
    let n = unknown.iter().flatten().count();
    let mut expected = vec![vec![0.0; n]; n];
    let mut air_faces = 0;
    for j in 0..ny {
        for i in 0..nx {
            let c = i + nx * j;
            let Some(u) = unknown[c] else { continue };
            for (di, dj, axis) in [(-1i64, 0i64, 0), (1, 0, 0), (0, -1, 1), (0, 1, 1)] {
                let (qi, qj) = (i as i64 + di, j as i64 + dj);
                if qi < 0 || qj < 0 || qi >= nx as i64 || qj >= ny as i64 {
                    continue;
                }
                let q = qi as usize + nx * qj as usize;
                let w = 1.0 / (h[axis] * h[axis]);
                match kinds[q] {
                    adj_cell::ADJ_CELL_SOLID => {}
                    adj_cell::ADJ_CELL_FLUID => {
                        expected[u][u] += w;
                        expected[u][unknown[q].unwrap()] -= w;
                    }
                    adj_cell::ADJ_CELL_AIR => {
                        let theta = (phi[c] / (phi[c] - phi[q])).clamp(0.01, 1.0);
                        expected[u][u] += w / theta;
                        air_faces += 1;
                    }
                }
            }
        }
    }
    assert!(air_faces > 10);
    let found = dense(op);
    for (re, rf) in expected.iter().zip(&found) {
        for (x, y) in re.iter().zip(rf) {
            assert!((x - y).abs() <= 1e-12 * x.abs().max(1.0), "{x} vs {y}");
        }
    }
    let mut bad = ghost;
    bad.min_air_fraction = 0.0;
    common::expect(
        new_grid([nx, ny, 1], &ours, &bad).0,
        ADJ_ERR_INVALID_ARGUMENT,
        &["`min_air_fraction`"],
    );
    let mut nan_phi = phi.clone();
    nan_phi[3] = f64::NAN;
    bad = ghost;
    bad.air_level_set = nan_phi.as_ptr();
    common::expect(
        new_grid([nx, ny, 1], &ours, &bad).0,
        ADJ_ERR_INVALID_ARGUMENT,
        &["`air_level_set`"],
    );
    // SAFETY: live handles.
    unsafe {
        for op in [reference, mapped, swapped, quarter, op] {
            adj_operator_free(op);
        }
    }
}

#[test]
fn multigrid_solves_a_ghost_fluid_liquid_against_a_direct_solve() {
    use adjunct::krylov::{Multigrid, MultigridOptions};
    use adjunct::{cg, Cell, GridPoisson, KrylovOptions, LinearOperator};
    // A 3D sloshing pool: walls and floor solid, the surface tilted.
    let [nx, ny, nz] = [28, 24, 26];
    let (mut cells, mut phi) = (Vec::new(), Vec::new());
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let surface = nz as f64 * 0.6
                    + 0.18 * (i as f64 - nx as f64 / 2.0)
                    + 1.3 * (j as f64 * 0.5).cos();
                let d = k as f64 + 0.5 - surface;
                phi.push(d);
                let wall = i == 0 || j == 0 || i + 1 == nx || j + 1 == ny || k == 0;
                cells.push(if wall {
                    Cell::Solid
                } else if d < 0.0 {
                    Cell::Fluid
                } else {
                    Cell::Air
                });
            }
        }
    }
    let grid = GridPoisson::builder([nx, ny, nz], &cells)
        .air_level_set(&phi, 0.01)
        .scale(0.5)
        .build()
        .unwrap();
    let multigrid = Multigrid::new(&grid, &MultigridOptions::default()).unwrap();
    let b = common::Rng::new(9).vector(grid.dim());
    let mut x = vec![0.0; grid.dim()];
    let options = KrylovOptions {
        rtol: 1e-10,
        ..KrylovOptions::default()
    };
    let report = cg(&grid, &multigrid, &b, &mut x, &options).unwrap();
    let reference = common::direct_solve(&grid.to_csr().unwrap(), &b);
    assert!(common::rel_diff(&x, &reference) < 1e-8);
    println!(
        "ghost-fluid pool {nx}×{ny}×{nz}: {} MGPCG iterations",
        report.iterations
    );
    assert!(report.iterations < 40, "{}", report.iterations);
}

#[test]
fn cg_stops_on_the_max_norm_when_asked() {
    let (nx, ny, nz) = (20, 18, 16);
    let cells: Vec<u8> = (0..nx * ny * nz)
        .map(|c| {
            if c / (nx * ny) == nz - 1 {
                adj_cell::ADJ_CELL_AIR as u8
            } else {
                0
            }
        })
        .collect();
    let op = grid([nx, ny, nz], &cells);
    let mut n = 0;
    // SAFETY: live handles and arrays of n doubles.
    unsafe {
        adj_operator_dim(op, &mut n);
        let b = common::Rng::new(4).vector(n);
        let mut pc = null_mut();
        adj_precond_new(op, adj_precond_kind::ADJ_PRECOND_MULTIGRID as u32, &mut pc);
        let mut options = init(adj_cg_options_init);
        assert_eq!(options.norm, adj_norm::ADJ_NORM_2 as u32);
        options.norm = adj_norm::ADJ_NORM_MAX as u32;
        options.rtol = 0.0;
        options.atol = 1e-9;
        let mut history = vec![0.0; 64];
        options.residual_history = history.as_mut_ptr();
        options.residual_history_capacity = 64;
        let mut x = vec![0.0; n];
        let mut report = init(adj_solve_report_init);
        let status = adj_cg_solve(op, pc, b.as_ptr(), x.as_mut_ptr(), n, &options, &mut report);
        assert_eq!(status, ADJ_OK, "{}", last_error());
        // max|b − A x| computed here.
        let mut ax = vec![0.0; n];
        adj_operator_apply(op, x.as_ptr(), ax.as_mut_ptr(), n);
        let max = b
            .iter()
            .zip(&ax)
            .map(|(b, a)| (b - a).abs())
            .fold(0.0, f64::max);
        assert!(max <= 1e-9, "max |r| = {max:e}");
        assert!((report.true_residual_norm - max).abs() <= 1e-12 * max.max(1e-300) + 1e-18);
        assert_eq!(report.reason, adj_solve_reason::ADJ_CONVERGED_ATOL);
        // The history is in the stopping norm too, ending below atol.
        let k = report.residual_history_length;
        assert!(k > 0 && history[k - 1] <= 1e-9);
        // The 2-norm of the same residual is larger: the tests differ.
        let two = b
            .iter()
            .zip(&ax)
            .map(|(b, a)| (b - a).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(two > max);
        // Solvers that sum over ranks reject it, naming `norm`.
        let status = adj_cg_solve_distributed(
            op,
            pc,
            b.as_ptr(),
            x.as_mut_ptr(),
            n,
            &options,
            None,
            null_mut(),
            null_mut(),
        );
        common::expect(status, ADJ_ERR_INVALID_ARGUMENT, &["`norm`"]);
        options.norm = 7;
        let status = adj_cg_solve(op, pc, b.as_ptr(), x.as_mut_ptr(), n, &options, null_mut());
        common::expect(status, ADJ_ERR_INVALID_ARGUMENT, &["`norm`"]);
        // A 0.2.0 caller's options end before `norm`: the 2-norm.
        let mut old = init(adj_cg_options_init);
        old.struct_size = std::mem::offset_of!(adj_cg_options, norm);
        old.norm = adj_norm::ADJ_NORM_MAX as u32; // beyond its size: not read
        let status = adj_cg_solve(op, pc, b.as_ptr(), x.as_mut_ptr(), n, &old, &mut report);
        assert_eq!(status, ADJ_OK, "{}", last_error());
        assert_eq!(report.reason, adj_solve_reason::ADJ_CONVERGED_RTOL);
        adj_precond_free(pc);
        adj_operator_free(op);
    }
}
