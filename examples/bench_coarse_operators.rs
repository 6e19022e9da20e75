//! The multigrid hierarchy's coarse operators against each other, in the
//! same run: the default (automatic), rediscretised, Galerkin, lumped
//! Galerkin and axis-Galerkin levels under the default cycle and Chebyshev
//! smoothing (ν = 4 on [0.3, 2]).
//!
//! Run: `cargo run --release --example bench_coarse_operators [-- --grids
//! 64x64x64,128x128x128,512x512 --repeats 3]`
//!
//! Scenes: held-out `scene::obstacles` with 2 air layers, as a plain
//! operator (whose hierarchy is rediscretised by default) and as a liquid
//! whose free surface is a ghost-fluid level set between the last fluid and
//! the first air layer (per-face coefficients on the faces to air only:
//! rediscretised by default since 2026-12-04, Galerkin before). Each
//! row solves A x = b from x = 0 to ‖r‖ ≤ 1e-8·‖b‖ by MGPCG and prints
//! iterations, the hierarchy's setup and the solve in seconds (medians of
//! `--repeats`), and their sum; the ratio of each row's total to the
//! scene's first row (the default: automatic levels, default cycle) comes
//! last.

use adjunct::krylov::{CoarseOperators, Multigrid, MultigridOptions, Schedule};
use adjunct::{cg, scene, GridPoisson, KrylovOptions, LinearOperator};
use std::time::Instant;

mod common;
use common::flag;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// (iterations, median setup s, median solve s) of MGPCG with `options`.
fn measure(
    a: &GridPoisson,
    b: &[f64],
    options: &MultigridOptions,
    repeats: usize,
) -> (usize, f64, f64) {
    let krylov = KrylovOptions {
        rtol: 1e-8,
        ..KrylovOptions::default()
    };
    let (mut setups, mut solves, mut iterations) = (Vec::new(), Vec::new(), 0);
    for _ in 0..repeats {
        let start = Instant::now();
        let m = Multigrid::new(a, options).expect("multigrid");
        setups.push(start.elapsed().as_secs_f64());
        let mut x = vec![0.0; a.dim()];
        let start = Instant::now();
        let report = cg(a, &m, b, &mut x, &krylov).expect("MGPCG converges");
        solves.push(start.elapsed().as_secs_f64());
        iterations = report.iterations;
    }
    (iterations, median(setups), median(solves))
}

/// The level set of a liquid whose surface lies between the last fluid
/// layer and the first air layer (2 air layers on top), at a height that
/// varies across the box: θ from 0.5 to 0.83 on the faces it cuts.
fn free_surface(dims: [usize; 3]) -> Vec<f64> {
    let up = if dims[2] > 1 { 2 } else { 1 };
    let top = dims[up] as f64 - 2.0;
    (0..dims.iter().product::<usize>())
        .map(|c| {
            let p = [
                c % dims[0],
                (c / dims[0]) % dims[1],
                c / (dims[0] * dims[1]),
            ];
            let x = p[0] as f64 / dims[0] as f64;
            let y = p[if up == 2 { 1 } else { 0 }] as f64 / dims[0] as f64;
            let wave =
                0.5 + 0.5 * (std::f64::consts::TAU * x).sin() * (std::f64::consts::TAU * y).cos();
            (p[up] as f64 + 0.5) - (top - 0.1 - 0.4 * wave)
        })
        .collect()
}

fn main() {
    let grids: Vec<[usize; 3]> = flag("--grids")
        .unwrap_or_else(|| "64x64x64,128x128x128,512x512".into())
        .split(',')
        .map(|g| {
            let mut d = [1; 3];
            for (slot, v) in d.iter_mut().zip(g.split('x')) {
                *slot = v.parse().expect("grid sizes like 64x64x64");
            }
            d
        })
        .collect();
    let repeats: usize = flag("--repeats").map_or(3, |r| r.parse().expect("--repeats N"));
    println!(
        "coarse operators: scene::obstacles, rtol 1e-8, {} threads, medians of {repeats}",
        rayon::current_num_threads()
    );
    // Each coarse operator under the default cycle, then Chebyshev ν = 4.
    let levels = [
        ("automatic", CoarseOperators::Automatic),
        ("rediscretised", CoarseOperators::Rediscretized),
        ("Galerkin", CoarseOperators::Galerkin),
        ("lumped Galerkin", CoarseOperators::LumpedGalerkin),
        ("axis Galerkin", CoarseOperators::AxisGalerkin),
    ];
    let rows: Vec<(String, MultigridOptions)> = levels
        .iter()
        .flat_map(|&(name, coarse_operators)| {
            [
                (name.to_string(), None),
                (
                    format!("{name}, Cheb. 4"),
                    Some(Schedule::chebyshev(4, 0.3)),
                ),
            ]
            .map(|(label, schedule)| {
                let options = MultigridOptions {
                    coarse_operators,
                    schedule,
                    ..MultigridOptions::default()
                };
                (label, options)
            })
        })
        .collect();
    for dims in grids {
        let problem = scene::obstacles(dims, 2).expect("scene");
        let phi = free_surface(dims);
        let plain = problem.operator().expect("operator");
        let liquid = GridPoisson::builder(dims, &problem.cells)
            .spacing([problem.spacing; 3])
            .air_level_set(&phi, 0.01)
            .build()
            .expect("ghost-fluid operator");
        for (name, a) in [("plain", &plain), ("ghost-fluid surface", &liquid)] {
            println!("\n{dims:?} {name}: {} unknowns", a.dim());
            println!(
                "  {:<24} {:>5} {:>9} {:>9} {:>9} {:>7}",
                "coarse levels", "its", "setup s", "solve s", "total s", "ratio"
            );
            let mut default_total = None;
            for (label, options) in &rows {
                let (its, setup, solve) = measure(a, &problem.rhs, options, repeats);
                let total = setup + solve;
                let reference = *default_total.get_or_insert(total);
                println!(
                    "  {label:<24} {its:>5} {setup:>9.3} {solve:>9.3} {total:>9.3} {:>7.2}",
                    total / reference
                );
            }
        }
    }
}
