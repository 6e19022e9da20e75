//! The learned solvers on a held-out scene (not the training scene): the
//! conjugate-direction method with the shipped direction network, and CG
//! with the shipped learned multigrid schedule, against CG with the
//! classical V-cycle. Each solution is checked by its true residual.
//!
//! `cargo run --release --example learned`

use adjunct::krylov::{conjugate_direction, ConjugateDirectionOptions};
use adjunct::learned::{Evaluation, Model, MultigridModel, NetworkDirection};
use adjunct::{cg, scene, KrylovOptions, LinearOperator, Multigrid, MultigridOptions};
use std::path::Path;

/// ‖b − A x‖ / ‖b‖.
fn true_residual(a: &impl LinearOperator, b: &[f64], x: &[f64]) -> adjunct::Result<f64> {
    let mut ax = vec![0.0; b.len()];
    a.apply(x, &mut ax)?;
    let norm = |v: &mut dyn Iterator<Item = f64>| v.map(|t| t * t).sum::<f64>().sqrt();
    Ok(norm(&mut b.iter().zip(&ax).map(|(b, ax)| b - ax)) / norm(&mut b.iter().copied()))
}

fn main() -> adjunct::Result<()> {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let problem = scene::obstacles([128, 128, 1], 2)?;
    let a = problem.operator()?;
    let b = &problem.rhs;
    let krylov = KrylovOptions {
        rtol: 1e-8,
        ..KrylovOptions::default()
    };
    println!(
        "held-out 128² obstacles scene, {} unknowns, rtol 1e-8",
        a.dim()
    );

    // A trained direction network (symmetric form: the method is PCG),
    // inside the two-level correction its file asks for.
    let network = Model::load(&models.join("cdm_2d.safetensors"))?;
    let generator = NetworkDirection::with_evaluation(
        &a,
        &network.network,
        network.coarse_block,
        Evaluation::Fastest,
    )?;
    let mut x = vec![0.0; a.dim()];
    let options = ConjugateDirectionOptions {
        krylov: krylov.clone(),
        ..ConjugateDirectionOptions::default()
    };
    let report = conjugate_direction(&a, &generator, b, &mut x, &options)?;
    println!(
        "  direction network       {:4} iterations, true residual {:.1e}",
        report.solve.iterations,
        true_residual(&a, b, &x)?
    );

    // A learned V-cycle schedule as CG's preconditioner.
    let schedule = MultigridModel::load(&models.join("multigrid_2d.safetensors"))?;
    let learned = schedule.multigrid(&a)?;
    let mut x = vec![0.0; a.dim()];
    let report = cg(&a, &learned, b, &mut x, &krylov)?;
    println!(
        "  learned multigrid-PCG   {:4} iterations, true residual {:.1e}",
        report.iterations,
        true_residual(&a, b, &x)?
    );

    let classical = Multigrid::new(&a, &MultigridOptions::default())?;
    let mut x = vec![0.0; a.dim()];
    let report = cg(&a, &classical, b, &mut x, &krylov)?;
    println!(
        "  classical multigrid-PCG {:4} iterations, true residual {:.1e}",
        report.iterations,
        true_residual(&a, b, &x)?
    );
    Ok(())
}
