//! Trains a learned V-cycle schedule (per level the damping of each Jacobi
//! sweep and the scale of the coarse correction) on a smoke scene with the
//! DCDM loss through the cycle, and saves it.
//!
//! `cargo run --release --example train_multigrid -- --dim 3 --grid 32
//!  --sweeps 3 --lower 0.5 --samples 32 --lanczos 40 --steps 60 --batch 8 --lr 0.02
//!  --seed 1 --out models/multigrid_3d.safetensors`
//!
//! Every flag is optional (defaults above; 2D uses --grid 128;
//! `--coarse-sweeps k` gives the levels below the finest k sweeps;
//! `--coarse-operators NAME` trains on, and records in the file, the
//! hierarchy of `CoarseOperators::from_name(NAME)`, default `automatic`;
//! `--lower-weight w` weights the lower half of the Ritz vectors of the
//! data by w instead of 9). The
//! schedule starts from Chebyshev smoothing on [--lower, 2] and γ = 1,
//! with one entry per level of the training hierarchy (the last serves
//! every coarser level of a larger grid). A progress line shows the step
//! and the batch loss; the end prints the schedule and MGPCG iterations of
//! the classical and learned cycles on the training operator.

use adjunct::krylov::{cg, CoarseOperators, KrylovOptions, Multigrid, MultigridOptions, Schedule};
use adjunct::learned::{
    ritz_dataset_weighted, train_schedule, MultigridModel, ScheduleTrainOptions,
};
use adjunct::{scene, LinearOperator};
use std::path::PathBuf;
use std::time::Instant;

mod common;
use common::flag;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let number = |name: &str, default: f64| -> f64 {
        flag(name).map_or(default, |v| v.parse().expect("a number"))
    };
    let dim = number("--dim", 3.0) as usize;
    let n = number("--grid", if dim == 2 { 128.0 } else { 32.0 }) as usize;
    let sweeps = number("--sweeps", 3.0) as usize;
    let coarse_sweeps = number("--coarse-sweeps", sweeps as f64) as usize;
    let samples = number("--samples", 32.0) as usize;
    let lanczos = number("--lanczos", 40.0) as usize;
    let lower_weight = number("--lower-weight", 9.0);
    let options = ScheduleTrainOptions {
        steps: number("--steps", 60.0) as usize,
        batch: number("--batch", 8.0) as usize,
        learning_rate: number("--lr", 0.02),
        seed: number("--seed", 1.0) as u64,
    };
    let out = PathBuf::from(
        flag("--out").unwrap_or_else(|| format!("models/multigrid_{dim}d.safetensors")),
    );
    let dims = if dim == 2 { [n, n, 1] } else { [n, n, n] };
    let a = scene::smoke(dims, 2)?.operator()?;
    let start = Instant::now();
    let data = ritz_dataset_weighted(&a, lanczos, samples, options.seed, lower_weight)?;
    let coarse_operators = flag("--coarse-operators").map_or(CoarseOperators::Automatic, |name| {
        CoarseOperators::from_name(&name).expect("a coarse-operator name, e.g. axis-galerkin")
    });
    let base = MultigridOptions {
        coarse_operators,
        ..MultigridOptions::default()
    };
    let smoothing_levels = Multigrid::new(&a, &base)?.level_dims().len() - 1;
    let classical = Schedule::classical(sweeps, base.damping);
    // The start: Chebyshev smoothing on [--lower, 2] (distinct dampings,
    // which the loss's symmetry in the sweeps would otherwise keep equal).
    let finest_start = Schedule::chebyshev(sweeps, number("--lower", 0.5));
    let coarse_start = Schedule::chebyshev(coarse_sweeps, number("--lower", 0.5));
    let mut schedule = Schedule {
        levels: (0..smoothing_levels.max(1))
            .map(|l| {
                if l == 0 {
                    finest_start.levels[0].clone()
                } else {
                    coarse_start.levels[0].clone()
                }
            })
            .collect(),
    };
    let start_schedule = schedule.clone();
    println!(
        "training on the {n}^{dim} smoke scene ({} unknowns, {} samples, {:.1} s for the data)",
        a.dim(),
        data.len(),
        start.elapsed().as_secs_f64()
    );
    let history = train_schedule(&mut schedule, &a, &base, &data, &options)?;
    for (step, loss) in history.iter().enumerate() {
        if step % 10 == 0 || step + 1 == history.len() {
            println!("step {step:4}  loss {loss:.5}");
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    for (l, level) in schedule.levels.iter().enumerate() {
        println!(
            "level {l}: damping {:?}, correction {:.4}",
            level.damping, level.correction
        );
    }
    let b: Vec<f64> = data[0].clone();
    let krylov = KrylovOptions {
        rtol: 1e-8,
        ..KrylovOptions::default()
    };
    for (label, s) in [
        ("classical", &classical),
        ("start", &start_schedule),
        ("learned", &schedule),
    ] {
        let m = Multigrid::new(
            &a,
            &MultigridOptions {
                schedule: Some(s.clone()),
                ..base.clone()
            },
        )?;
        let mut x = vec![0.0; a.dim()];
        let report = cg(&a, &m, &b, &mut x, &krylov)?;
        println!("{label:>9} MGPCG: {} iterations", report.iterations);
    }
    let model = MultigridModel {
        dim,
        schedule,
        coarse_operators,
        training_grid: dims[..dim]
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("x"),
        training_command: format!(
            "cargo run --release --example train_multigrid -- {}",
            args[1..].join(" ")
        ),
        training_loss: format!("{:.6}", history.last().copied().unwrap_or(f64::NAN)),
    };
    model.save(&out)?;
    println!("saved {} after {seconds:.0} s", out.display());
    Ok(())
}
