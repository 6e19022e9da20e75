//! Criterion benchmark: 20 unpreconditioned CG iterations on the 64³ smoke
//! scene, adjunct (grid stencil and CSR) against faer's CG on the same CSR
//! matrix. `cargo bench --bench cg`; the full comparison with ratios and the
//! bandwidth model is `cargo run --release --example bench_cg`.

mod common;

use adjunct::{cg, scene, Identity, KrylovOptions, LinearOperator};
use common::faer_cg::faer_cg;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

const ITERATIONS: usize = 20;

fn cg_iterations(c: &mut Criterion) {
    let problem = scene::smoke([64, 64, 64], 2).expect("scene");
    let grid = problem.operator().expect("operator");
    let csr = grid.to_csr().unwrap();
    let b = &problem.rhs;
    let options = KrylovOptions {
        rtol: 0.0,
        max_iterations: ITERATIONS,
        ..KrylovOptions::default()
    };
    let mut group = c.benchmark_group("cg_20_iterations_smoke_64");
    group.sample_size(20);
    let run = |op: &dyn LinearOperator| {
        let mut x = vec![0.0; b.len()];
        // Stops at the iteration limit by design (rtol = 0).
        let _ = cg(op, &Identity { dim: b.len() }, b, &mut x, &options);
        black_box(x)
    };
    group.bench_function("adjunct_grid_stencil", |bench| bench.iter(|| run(&grid)));
    group.bench_function("adjunct_csr", |bench| bench.iter(|| run(&csr)));
    group.bench_function("faer_csr_seq", |bench| {
        bench.iter(|| black_box(faer_cg(&csr, b, 1e-300, ITERATIONS, faer::Par::Seq)))
    });
    group.finish();
}

criterion_group!(benches, cg_iterations);
criterion_main!(benches);
