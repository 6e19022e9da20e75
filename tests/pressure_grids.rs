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
