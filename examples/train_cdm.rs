//! Trains a direction network for the conjugate-direction solver on a smoke
//! scene (walls, a solid sphere/disc obstacle, air on top) and saves it.
//!
//! `cargo run --release --example train_cdm -- --dim 2 --grid 64 --arch fast
//!  --samples 400 --lanczos 150 --epochs 40 --batch 16 --lr 3e-3 --rounds 1
//!  --minutes 15 --seed 1 --out cdm_2d.safetensors`
//!
//! Every flag is optional (defaults shown above for 2D; 3D uses --grid 24);
//! `--channels`, `--levels` and `--blocks` override the preset's shape;
//! `--coarse-block B` (default 0, none) stores in the model that solves
//! apply the two-level correction with aggregates of Bᵈ cells around it
//! (training itself is unchanged: see `learned::NetworkDirection`).
//! Round 1 trains on right-hand sides built from Ritz vectors; each further
//! round adds the residuals the conjugate-direction solver meets with the
//! current network (30 iterations from a tenth of the data) and trains
//! again. Training stops at the epoch count or the time budget, whichever
//! comes first; a progress line shows epoch, Adam step and the batch loss.

use adjunct::learned::{
    ritz_dataset, solver_residuals, train, Architecture, Model, Network, TrainOptions,
};
use adjunct::{scene, LinearOperator};
use std::io::Write;
use std::path::PathBuf;

mod common;
use common::flag;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let number = |name: &str, default: f64| -> f64 {
        flag(name).map_or(default, |v| v.parse().expect("a number"))
    };
    let dim = number("--dim", 2.0) as usize;
    let n = number("--grid", if dim == 2 { 64.0 } else { 24.0 }) as usize;
    let mut arch = match flag("--arch").as_deref().unwrap_or("fast") {
        "fast" => Architecture::fast(dim),
        "reference" => Architecture::reference(dim),
        "symmetric" => Architecture::symmetric(dim),
        other => return Err(format!("unknown --arch {other} (fast, reference, symmetric)").into()),
    };
    // Overrides of the preset's shape.
    arch.channels = number("--channels", arch.channels as f64) as usize;
    arch.levels = number("--levels", arch.levels as f64) as usize;
    arch.blocks = number("--blocks", arch.blocks as f64) as usize;
    let samples = number("--samples", 400.0) as usize;
    let lanczos = number("--lanczos", 150.0) as usize;
    let minutes = number("--minutes", 15.0);
    let options = TrainOptions {
        epochs: number("--epochs", 40.0) as usize,
        batch: number("--batch", 16.0) as usize,
        learning_rate: number("--lr", 3e-3),
        seed: number("--seed", 1.0) as u64,
    };
    let out = PathBuf::from(flag("--out").unwrap_or_else(|| format!("cdm_{dim}d.safetensors")));

    let dims = if dim == 2 { [n, n, 1] } else { [n, n, n] };
    let problem = scene::smoke(dims, 2)?;
    let a = problem.operator()?;
    let start = Instant::now();
    println!(
        "training {arch:?} on the {dims:?} smoke scene ({} unknowns): {samples} right-hand sides from {lanczos} Lanczos steps",
        a.dim()
    );
    let data = ritz_dataset(&a, lanczos, samples, options.seed)?;
    println!("dataset ready in {:.1} s", start.elapsed().as_secs_f64());
    let mut net = Network::new(arch, options.seed)?;
    let rounds = number("--rounds", 1.0).max(1.0) as usize;
    let mut data = data;
    let mut history = Vec::new();
    for round in 0..rounds {
        if round > 0 {
            let probe = &data[..(samples / 10).min(data.len())];
            let extra = solver_residuals(&net, &a, probe, 30)?;
            println!(
                "\nround {}: {} solver residuals added",
                round + 1,
                extra.len()
            );
            data.extend(extra);
        }
        let steps_per_epoch = data.len().div_ceil(options.batch);
        history = train(&mut net, &a, &data, &options, |epoch, step, loss| {
            print!(
                "\repoch {:>3}/{} [{:<30}] step {step:>6} loss {loss:.4} ({:.0} s)",
                epoch + 1,
                options.epochs,
                "#".repeat(30 * (1 + (step - 1) % steps_per_epoch) / steps_per_epoch),
                start.elapsed().as_secs_f64()
            );
            std::io::stdout().flush().ok();
            start.elapsed().as_secs_f64() < 60.0 * minutes
        })?;
    }
    println!();
    println!(
        "mean loss per epoch: first {:.4}, last {:.4} ({} epochs, {:.1} min)",
        history.first().copied().unwrap_or(f64::NAN),
        history.last().copied().unwrap_or(f64::NAN),
        history.len(),
        start.elapsed().as_secs_f64() / 60.0
    );
    let model = Model {
        network: net,
        coarse_block: number("--coarse-block", 0.0) as usize,
        training_grid: dims
            .iter()
            .take(dim)
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x"),
        training_command: format!(
            "cargo run --release --example train_cdm -- {}",
            args[1..].join(" ")
        ),
    };
    model.save(&out)?;
    println!(
        "saved {} ({} bytes)",
        out.display(),
        std::fs::metadata(&out)?.len()
    );
    Ok(())
}
