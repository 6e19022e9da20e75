//! `adj_ot_*` through the C ABI: results equal the Rust API, bad input is
//! reported with its argument, outputs untouched on failure.

mod common;

use adjunct::ffi::*;
use adjunct::ot::{self, CostMatrix, OtOptions};
use common::{expect, init, init_uninit, last_error};
use std::ptr::{null, null_mut};

fn problem() -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let x: Vec<f64> = (0..12).map(|i| (i as f64 * 0.37).sin()).collect();
    let y: Vec<f64> = (0..16).map(|i| (i as f64 * 0.91).cos()).collect();
    let a = vec![1.0 / 6.0; 6];
    let b: Vec<f64> = (0..8).map(|j| (1.0 + j as f64) / 36.0).collect();
    (x, y, a, b)
}

#[test]
fn solve_through_the_abi_matches_rust() {
    let (x, y, a, b) = problem();
    let mut cost = vec![0.0; 48];
    // SAFETY: arrays of the documented sizes.
    unsafe {
        assert_eq!(
            adj_ot_cost_sqeuclidean(x.as_ptr(), 6, y.as_ptr(), 8, 2, cost.as_mut_ptr()),
            adj_status::ADJ_OK
        );
        let c = CostMatrix::squared_euclidean(&x, &y, 2).unwrap();
        assert_eq!(cost, c.values());
        let mut options = init(adj_ot_options_init);
        options.eps = 0.05;
        options.tol = 1e-12;
        let (mut f, mut g, mut plan) = (vec![0.0; 6], vec![0.0; 8], vec![0.0; 48]);
        let mut result = init_uninit(adj_ot_result_init);
        let s = adj_ot_solve(
            a.as_ptr(),
            6,
            b.as_ptr(),
            8,
            cost.as_ptr(),
            &options,
            f.as_mut_ptr(),
            g.as_mut_ptr(),
            plan.as_mut_ptr(),
            result.as_mut_ptr(),
        );
        assert_eq!(s, adj_status::ADJ_OK, "{}", last_error());
        let r = result.assume_init();
        let rust = ot::solve(
            &a,
            &b,
            &c,
            &OtOptions {
                eps: 0.05,
                tol: 1e-12,
                ..OtOptions::default()
            },
        )
        .unwrap();
        assert_eq!(f, rust.f);
        assert_eq!(g, rust.g);
        assert_eq!(r.transport_cost, rust.transport_cost);
        assert!(r.marginal_error <= 1e-12 && r.newton_iterations == rust.report.newton_iterations);
        let rows: Vec<f64> = plan.chunks(8).map(|row| row.iter().sum()).collect();
        assert!(rows.iter().zip(&a).all(|(r, a)| (r - a).abs() < 1e-12));
        let mut l1 = vec![0.0; 48];
        assert_eq!(
            adj_ot_cost_pnorm(x.as_ptr(), 6, y.as_ptr(), 8, 2, 1.0, l1.as_mut_ptr()),
            adj_status::ADJ_OK
        );
        assert_eq!(l1, CostMatrix::p_norm(&x, &y, 2, 1.0).unwrap().values());
    }
}

#[test]
fn bad_input_is_reported() {
    use adj_status::*;
    let (x, y, a, b) = problem();
    let cost = CostMatrix::squared_euclidean(&x, &y, 2)
        .unwrap()
        .values()
        .to_vec();
    let (mut f, mut g) = (vec![7.0; 6], vec![7.0; 8]);
    let mut out = vec![0.0; 48];
    // SAFETY: arrays of the documented sizes (or NULL, which is reported).
    unsafe {
        let solve =
            |a: &[f64], b: &[f64], options: *const adj_ot_options, f: &mut [f64], g: &mut [f64]| {
                adj_ot_solve(
                    a.as_ptr(),
                    6,
                    b.as_ptr(),
                    8,
                    cost.as_ptr(),
                    options,
                    f.as_mut_ptr(),
                    g.as_mut_ptr(),
                    null_mut(),
                    null_mut(),
                )
            };
        expect(
            adj_ot_solve(
                null(),
                6,
                b.as_ptr(),
                8,
                cost.as_ptr(),
                null(),
                f.as_mut_ptr(),
                g.as_mut_ptr(),
                null_mut(),
                null_mut(),
            ),
            ADJ_ERR_NULL_ARGUMENT,
            &["`a`"],
        );
        expect(
            adj_ot_solve(
                a.as_ptr(),
                6,
                b.as_ptr(),
                8,
                cost.as_ptr(),
                null(),
                null_mut(),
                g.as_mut_ptr(),
                null_mut(),
                null_mut(),
            ),
            ADJ_ERR_NULL_ARGUMENT,
            &["`f`"],
        );
        let mut heavy = b.clone();
        heavy[0] += 0.5;
        expect(
            solve(&a, &heavy, null(), &mut f, &mut g),
            ADJ_ERR_INVALID_ARGUMENT,
            &["equal mass"],
        );
        let mut negative = a.clone();
        negative[2] = -0.1;
        expect(
            solve(&negative, &b, null(), &mut f, &mut g),
            ADJ_ERR_INVALID_ARGUMENT,
            &["`a`"],
        );
        let mut options = init(adj_ot_options_init);
        options.eps = -1.0;
        expect(
            solve(&a, &b, &options, &mut f, &mut g),
            ADJ_ERR_INVALID_ARGUMENT,
            &["`eps`"],
        );
        options = init(adj_ot_options_init);
        options.method = 5;
        expect(
            solve(&a, &b, &options, &mut f, &mut g),
            ADJ_ERR_INVALID_ARGUMENT,
            &["`method`"],
        );
        options = init(adj_ot_options_init);
        options.method = adj_ot_method::ADJ_OT_SINKHORN as u32;
        options.eps = 1e-3;
        options.max_sinkhorn_iterations = 3;
        expect(
            solve(&a, &b, &options, &mut f, &mut g),
            ADJ_ERR_NOT_CONVERGED,
            &["marginal error"],
        );
        assert!(
            f.iter().chain(&g).all(|&v| v == 7.0),
            "outputs untouched on failure"
        );
        let mut bad_cost = cost.clone();
        bad_cost[5] = f64::INFINITY;
        expect(
            adj_ot_solve(
                a.as_ptr(),
                6,
                b.as_ptr(),
                8,
                bad_cost.as_ptr(),
                null(),
                f.as_mut_ptr(),
                g.as_mut_ptr(),
                null_mut(),
                null_mut(),
            ),
            ADJ_ERR_INVALID_ARGUMENT,
            &["`cost`"],
        );
        expect(
            adj_ot_cost_pnorm(x.as_ptr(), 6, y.as_ptr(), 8, 2, 0.5, out.as_mut_ptr()),
            ADJ_ERR_INVALID_ARGUMENT,
            &["`p`"],
        );
        expect(
            adj_ot_cost_sqeuclidean(x.as_ptr(), 6, y.as_ptr(), 8, 0, out.as_mut_ptr()),
            ADJ_ERR_INVALID_ARGUMENT,
            &["`d`"],
        );
    }
}
