//! One spelling of a distributed solve through the C ABI: an `adj_comm` in
//! `options->comm`. `adj_cg_solve` and `adj_cdm_solve` with it take exactly
//! the steps (and reductions) of their deprecated spellings
//! (`adj_cg_solve_distributed`, `adj_cdm_options.allreduce`); a bad
//! communicator, both spellings at once, or a communicator where a function
//! cannot use one are refused naming `comm`. (Several ranks: tests/mpi.rs.)

mod common;

use adjunct::ffi::*;
use common::{c_grid_operator, expect, init, last_error};
use std::ffi::{c_int, c_void};
use std::ptr::{null, null_mut};

use adj_status::*;

/// A sum over one rank (the identity) that counts its calls.
unsafe extern "C" fn counting_sum(ctx: *mut c_void, _buf: *mut f64, _n: usize) -> c_int {
    // SAFETY: ctx is the test's counter.
    unsafe { *ctx.cast::<usize>() += 1 };
    0
}

fn dim(op: *const adj_operator) -> usize {
    let mut n = 0;
    // SAFETY: a live handle.
    assert_eq!(unsafe { adj_operator_dim(op, &mut n) }, ADJ_OK);
    n
}

fn comm_counting(calls: &mut usize) -> adj_comm {
    let mut comm = init(adj_comm_init);
    comm.ctx = (calls as *mut usize).cast();
    comm.allreduce_sum = Some(counting_sum);
    comm
}

#[test]
fn cg_with_a_communicator_takes_the_steps_of_the_deprecated_spelling() {
    let op = c_grid_operator(24, 20);
    let n = dim(op);
    let b: Vec<f64> = (0..n).map(|i| ((i * 7) % 11) as f64 - 5.0).collect();
    let (mut calls, mut deprecated_calls) = (0usize, 0usize);
    let comm = comm_counting(&mut calls);
    let mut options = init(adj_cg_options_init);
    options.comm = &comm;
    let (mut x, mut x_deprecated) = (vec![0.0; n], vec![0.0; n]);
    let (mut report, mut deprecated_report) =
        (init(adj_solve_report_init), init(adj_solve_report_init));
    // SAFETY: arrays of n doubles, live handles, valid structs.
    unsafe {
        let status = adj_cg_solve(
            op,
            null(),
            b.as_ptr(),
            x.as_mut_ptr(),
            n,
            &options,
            &mut report,
        );
        assert_eq!(status, ADJ_OK, "{}", last_error());
        let plain = init(adj_cg_options_init);
        let status = adj_cg_solve_distributed(
            op,
            null(),
            b.as_ptr(),
            x_deprecated.as_mut_ptr(),
            n,
            &plain,
            Some(counting_sum),
            (&mut deprecated_calls as *mut usize).cast(),
            &mut deprecated_report,
        );
        assert_eq!(status, ADJ_OK, "{}", last_error());
        // Both spellings at once: refused, naming the field.
        let status = adj_cg_solve_distributed(
            op,
            null(),
            b.as_ptr(),
            x_deprecated.as_mut_ptr(),
            n,
            &options,
            Some(counting_sum),
            null_mut(),
            null_mut(),
        );
        expect(status, ADJ_ERR_INVALID_ARGUMENT, &["`comm`", "not both"]);
        adj_operator_free(op);
    }
    assert_eq!(x, x_deprecated);
    assert_eq!(report.iterations, deprecated_report.iterations);
    assert_eq!(calls, deprecated_calls);
    // Single-reduction CG: one reduction per iteration, one to start and
    // one to confirm the true residual.
    assert_eq!(calls, report.iterations + 2, "{calls} reductions");
    assert!(report.relative_residual <= 1e-8);
}

#[test]
fn conjugate_directions_with_a_communicator_take_the_deprecated_steps() {
    let op = c_grid_operator(20, 18);
    let n = dim(op);
    let b: Vec<f64> = (0..n).map(|i| ((i * 5) % 9) as f64 - 4.0).collect();
    let mut pc = null_mut();
    // SAFETY: a live grid operator.
    assert_eq!(
        unsafe { adj_precond_new(op, adj_precond_kind::ADJ_PRECOND_JACOBI as u32, &mut pc) },
        ADJ_OK
    );
    let (mut calls, mut deprecated_calls) = (0usize, 0usize);
    let comm = comm_counting(&mut calls);
    let mut options = init(adj_cdm_options_init);
    options.comm = &comm;
    let mut deprecated = init(adj_cdm_options_init);
    deprecated.allreduce = Some(counting_sum);
    deprecated.allreduce_ctx = (&mut deprecated_calls as *mut usize).cast();
    let (mut x, mut x_deprecated) = (vec![0.0; n], vec![0.0; n]);
    let solve = |x: &mut [f64], options: &adj_cdm_options| {
        let mut report = init(adj_solve_report_init);
        // SAFETY: arrays of n doubles, live handles, valid structs.
        let status = unsafe {
            adj_cdm_solve(
                op,
                null(),
                pc,
                None,
                null_mut(),
                b.as_ptr(),
                x.as_mut_ptr(),
                n,
                options,
                &mut report,
                null_mut(),
            )
        };
        (status, report.iterations)
    };
    let (status, iterations) = solve(&mut x, &options);
    assert_eq!(status, ADJ_OK, "{}", last_error());
    let (status, deprecated_iterations) = solve(&mut x_deprecated, &deprecated);
    assert_eq!(status, ADJ_OK, "{}", last_error());
    assert_eq!(x, x_deprecated);
    assert_eq!(iterations, deprecated_iterations);
    assert_eq!(calls, deprecated_calls);
    assert!(calls >= 2 * iterations, "{calls} reductions");

    let mut both = options;
    both.allreduce = Some(counting_sum);
    let (status, _) = solve(&mut x, &both);
    expect(status, ADJ_ERR_INVALID_ARGUMENT, &["`comm`", "not both"]);
    // SAFETY: live handles, not used afterwards.
    unsafe {
        adj_precond_free(pc);
        adj_operator_free(op);
    }
}

#[test]
fn a_bad_or_misplaced_communicator_is_refused_naming_it() {
    let op = c_grid_operator(12, 10);
    let n = dim(op);
    let b = vec![1.0; n];
    let mut x = vec![0.0; n];
    let mut calls = 0usize;
    let solve = |comm: &adj_comm, x: &mut [f64]| {
        let mut options = init(adj_cg_options_init);
        options.comm = comm;
        // SAFETY: arrays of n doubles, a live handle, valid structs.
        unsafe {
            adj_cg_solve(
                op,
                null(),
                b.as_ptr(),
                x.as_mut_ptr(),
                n,
                &options,
                null_mut(),
            )
        }
    };
    let mut rank_too_large = comm_counting(&mut calls);
    rank_too_large.rank = 1;
    expect(
        solve(&rank_too_large, &mut x),
        ADJ_ERR_INVALID_ARGUMENT,
        &["`comm`", "comm->rank = 1"],
    );
    let mut no_sum = init(adj_comm_init);
    no_sum.size = 2;
    expect(
        solve(&no_sum, &mut x),
        ADJ_ERR_NULL_ARGUMENT,
        &["comm->allreduce_sum"],
    );
    assert!(x.iter().all(|&v| v == 0.0), "x written on failure");

    // A function that is not distributed by options->comm refuses it.
    let mut solver = null_mut();
    let cells = vec![adj_cell::ADJ_CELL_FLUID as u8; 12 * 10];
    let mut with_air = cells.clone();
    with_air[..12].fill(adj_cell::ADJ_CELL_AIR as u8);
    let comm = comm_counting(&mut calls);
    let mut options = init(adj_cg_options_init);
    options.comm = &comm;
    let (rhs, mut pressure) = (vec![1.0; 120], vec![0.0; 120]);
    // SAFETY: arrays of the documented sizes, live handles.
    unsafe {
        assert_eq!(adj_pressure_solver_new(12, 10, 1, &mut solver), ADJ_OK);
        assert_eq!(
            adj_pressure_solver_update(solver, with_air.as_ptr(), null()),
            ADJ_OK,
            "{}",
            last_error()
        );
        let status = adj_pressure_solver_solve(
            solver,
            rhs.as_ptr(),
            pressure.as_mut_ptr(),
            120,
            0,
            &options,
            null_mut(),
        );
        expect(status, ADJ_ERR_INVALID_ARGUMENT, &["`comm`"]);
        adj_pressure_solver_free(solver);
        adj_operator_free(op);
    }
    assert_eq!(calls, 0, "no communicator was called");
}
