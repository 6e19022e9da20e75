//! The distributed pressure solver's C entry points on one rank (no MPI):
//! the solution of the serial `adj_pressure_solver`, and every bad
//! argument a status naming it (the multi-rank cases run under mpirun in
//! tests/mpi.rs).

mod common;

use adjunct::ffi::*;
use common::{expect, init};
use std::ptr::{null, null_mut};

const N: [usize; 3] = [12, 10, 8];

fn cells() -> Vec<u8> {
    let mut cells = vec![adj_cell::ADJ_CELL_FLUID as u8; N.iter().product()];
    for (c, cell) in cells.iter_mut().enumerate() {
        let (i, k) = (c % N[0], c / (N[0] * N[1]));
        if k == N[2] - 1 {
            *cell = adj_cell::ADJ_CELL_AIR as u8;
        } else if (4..7).contains(&i) && k < 3 {
            *cell = adj_cell::ADJ_CELL_SOLID as u8;
        }
    }
    cells
}

fn one_rank() -> adj_comm {
    init(adj_comm_init)
}

/// Creates the solver on the whole grid (one rank).
fn create(comm: &adj_comm, cells: &[u8]) -> (adj_status, *mut adj_distributed_pressure_solver) {
    let (lo, hi) = ([0usize; 3], N);
    let mut out = null_mut();
    // SAFETY: valid pointers of the stated sizes.
    let status = unsafe {
        adj_distributed_pressure_solver_new(
            comm,
            N[0],
            N[1],
            N[2],
            lo.as_ptr(),
            hi.as_ptr(),
            cells.as_ptr(),
            null(),
            &mut out,
        )
    };
    (status, out)
}

#[test]
fn one_rank_solves_as_the_serial_pressure_solver() {
    let cells = cells();
    let n: usize = N.iter().product();
    let rhs: Vec<f64> = (0..n).map(|c| ((c * 7) % 11) as f64 - 5.0).collect();
    let (status, solver) = create(&one_rank(), &cells);
    assert_eq!(status, adj_status::ADJ_OK, "{}", common::last_error());
    let mut report: adj_solve_report = init(adj_solve_report_init);
    let mut stats: adj_comm_stats = init(adj_comm_stats_init);
    let mut p = vec![0.0; n];
    // SAFETY: live handle, buffers of n values.
    let status = unsafe {
        adj_distributed_pressure_solver_solve(
            solver,
            rhs.as_ptr(),
            p.as_mut_ptr(),
            n,
            0,
            null(),
            &mut report,
            &mut stats,
        )
    };
    assert_eq!(status, adj_status::ADJ_OK, "{}", common::last_error());
    assert!(stats.allreduces > 0 && stats.messages == 0, "{stats:?}");

    let mut serial = null_mut();
    let mut serial_report: adj_solve_report = init(adj_solve_report_init);
    let mut ps = vec![0.0; n];
    // SAFETY: valid pointers of the stated sizes.
    unsafe {
        assert_eq!(
            adj_pressure_solver_new(N[0], N[1], N[2], &mut serial),
            adj_status::ADJ_OK
        );
        assert_eq!(
            adj_pressure_solver_update(serial, cells.as_ptr(), null()),
            adj_status::ADJ_OK
        );
        let status = adj_pressure_solver_solve(
            serial,
            rhs.as_ptr(),
            ps.as_mut_ptr(),
            n,
            0,
            null(),
            &mut serial_report,
        );
        assert_eq!(status, adj_status::ADJ_OK);
        adj_pressure_solver_free(serial);
    }
    assert_eq!(report.iterations, serial_report.iterations);
    let diff: f64 = p
        .iter()
        .zip(&ps)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!(diff <= 1e-10 * common::norm(&ps), "difference {diff:e}");

    // A warm start from the solution converges at once; f32 fields too.
    let mut p32 = vec![0f32; n];
    let rhs32: Vec<f32> = rhs.iter().map(|&v| v as f32).collect();
    // SAFETY: live handle, buffers of n values.
    let (warm, single) = unsafe {
        (
            adj_distributed_pressure_solver_solve(
                solver,
                rhs.as_ptr(),
                p.as_mut_ptr(),
                n,
                1,
                null(),
                &mut report,
                null_mut(),
            ),
            adj_distributed_pressure_solver_solve_f32(
                solver,
                rhs32.as_ptr(),
                p32.as_mut_ptr(),
                n,
                0,
                null(),
                null_mut(),
                null_mut(),
            ),
        )
    };
    assert_eq!(warm, adj_status::ADJ_OK);
    assert!(report.iterations <= 1, "{report:?}");
    assert_eq!(single, adj_status::ADJ_OK);
    assert!(p32
        .iter()
        .zip(&ps)
        .all(|(a, b)| (*a as f64 - b).abs() <= 1e-4 * (1.0 + b.abs())));

    // A new frame: fewer solid cells.
    let mut next = cells.clone();
    next[4 + N[0] * (5 + N[1])] = adj_cell::ADJ_CELL_FLUID as u8;
    // SAFETY: live handle, n flags.
    let status = unsafe { adj_distributed_pressure_solver_update(solver, next.as_ptr(), null()) };
    assert_eq!(status, adj_status::ADJ_OK, "{}", common::last_error());
    // SAFETY: as above.
    unsafe { adj_distributed_pressure_solver_free(solver) };
}

#[test]
fn bad_arguments_name_themselves() {
    let cells = cells();
    let n: usize = N.iter().product();
    // The communicator.
    let (status, _) = {
        let mut out = null_mut();
        let (lo, hi) = ([0usize; 3], N);
        // SAFETY: NULL comm is the case under test.
        let s = unsafe {
            adj_distributed_pressure_solver_new(
                null(),
                N[0],
                N[1],
                N[2],
                lo.as_ptr(),
                hi.as_ptr(),
                cells.as_ptr(),
                null(),
                &mut out,
            )
        };
        (s, out)
    };
    expect(status, adj_status::ADJ_ERR_NULL_ARGUMENT, &["comm"]);
    let mut comm = one_rank();
    comm.rank = 1;
    expect(
        create(&comm, &cells).0,
        adj_status::ADJ_ERR_INVALID_ARGUMENT,
        &["comm->rank"],
    );
    let mut comm = one_rank();
    comm.size = 2;
    comm.rank = 1;
    expect(
        create(&comm, &cells).0,
        adj_status::ADJ_ERR_NULL_ARGUMENT,
        &["comm->allreduce_sum"],
    );
    let mut comm = one_rank();
    comm.struct_size = 3;
    expect(
        create(&comm, &cells).0,
        adj_status::ADJ_ERR_INVALID_ARGUMENT,
        &["struct_size"],
    );
    // Flags, boxes, outputs.
    let mut bad = cells.clone();
    bad[5] = 9;
    expect(
        create(&one_rank(), &bad).0,
        adj_status::ADJ_ERR_INVALID_ARGUMENT,
        &["cells[5] = 9"],
    );
    let box_case = |lo: [usize; 3], hi: [usize; 3]| {
        let mut out = null_mut();
        // SAFETY: valid pointers; the box is what is wrong.
        unsafe {
            adj_distributed_pressure_solver_new(
                &one_rank(),
                N[0],
                N[1],
                N[2],
                lo.as_ptr(),
                hi.as_ptr(),
                cells.as_ptr(),
                null(),
                &mut out,
            )
        }
    };
    expect(
        box_case([0, 0, 3], [12, 10, 3]),
        adj_status::ADJ_ERR_INVALID_ARGUMENT,
        &["lo", "empty"],
    );
    expect(
        box_case([0, 0, 0], [12, 10, 9]),
        adj_status::ADJ_ERR_INVALID_ARGUMENT,
        &["hi[2] = 9"],
    );
    expect(
        box_case([0, 0, 0], [12, 10, 4]),
        adj_status::ADJ_ERR_INVALID_ARGUMENT,
        &["box", "uncovered"],
    );
    let mut out = null_mut();
    let (lo, hi) = ([0usize; 3], N);
    // SAFETY: NULL hi is the case under test.
    let status = unsafe {
        adj_distributed_pressure_solver_new(
            &one_rank(),
            N[0],
            N[1],
            N[2],
            lo.as_ptr(),
            null(),
            cells.as_ptr(),
            null(),
            &mut out,
        )
    };
    expect(status, adj_status::ADJ_ERR_NULL_ARGUMENT, &["hi"]);
    // SAFETY: NULL out is the case under test.
    let status = unsafe {
        adj_distributed_pressure_solver_new(
            &one_rank(),
            N[0],
            N[1],
            N[2],
            lo.as_ptr(),
            hi.as_ptr(),
            cells.as_ptr(),
            null(),
            null_mut(),
        )
    };
    expect(status, adj_status::ADJ_ERR_NULL_ARGUMENT, &["out"]);

    // The solve.
    let (status, solver) = create(&one_rank(), &cells);
    assert_eq!(status, adj_status::ADJ_OK);
    let rhs = vec![1.0; n];
    let mut p = vec![0.0; n];
    let out = p.as_mut_ptr();
    let solve = |num_cells: usize, warm: i32, stats: *mut adj_comm_stats| {
        // SAFETY: live handle; buffers of n values (num_cells is checked).
        unsafe {
            adj_distributed_pressure_solver_solve(
                solver,
                rhs.as_ptr(),
                out,
                num_cells,
                warm,
                null(),
                null_mut(),
                stats,
            )
        }
    };
    expect(
        solve(n - 1, 0, null_mut()),
        adj_status::ADJ_ERR_DIMENSION_MISMATCH,
        &["num_cells"],
    );
    expect(
        solve(n, 2, null_mut()),
        adj_status::ADJ_ERR_INVALID_ARGUMENT,
        &["warm_start"],
    );
    let mut stats: adj_comm_stats = init(adj_comm_stats_init);
    stats.struct_size = 1;
    expect(
        solve(n, 0, &mut stats),
        adj_status::ADJ_ERR_INVALID_ARGUMENT,
        &["stats"],
    );
    // SAFETY: NULL solver is the case under test.
    let status = unsafe {
        adj_distributed_pressure_solver_solve(
            null(),
            rhs.as_ptr(),
            out,
            n,
            0,
            null(),
            null_mut(),
            null_mut(),
        )
    };
    expect(status, adj_status::ADJ_ERR_NULL_ARGUMENT, &["solver"]);
    // A bad frame keeps the old one.
    let mut bad = cells.clone();
    bad[0] = 7;
    // SAFETY: live handle, n flags.
    let status = unsafe { adj_distributed_pressure_solver_update(solver, bad.as_ptr(), null()) };
    expect(
        status,
        adj_status::ADJ_ERR_INVALID_ARGUMENT,
        &["cells[0] = 7"],
    );
    assert_eq!(solve(n, 0, null_mut()), adj_status::ADJ_OK);
    // SAFETY: live handle; NULL is accepted by free.
    unsafe {
        adj_distributed_pressure_solver_free(solver);
        adj_distributed_pressure_solver_free(null_mut());
    }
}
