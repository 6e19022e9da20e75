//! The learned conjugate-direction solver against CG, Jacobi-PCG and
//! IC(0)-PCG on held-out scenes, measured in the same run.
//!
//! Run: `cargo run --release --example bench_cdm [-- --quick]
//!  [--symmetric2 F] [--symmetric3 F] [--dcdm2 F] [--dcdm3 F]
//!  [--reference2 F] [--reference3 F] [--max-seconds S]
//!  [--dcdm-max-seconds S] [--grids 256x256,64x64x64]`
//!
//! Scenes: `scene::obstacles` (two boxes and a sphere, none of which the
//! training scene `scene::smoke` has) at 256² and 512² in 2D and 64³ and
//! 128³ in 3D (`--quick`: 128² and 32³), all larger than the training grids
//! (64², 24³); `--grids` names others. Each is solved to ‖b − A x‖ ≤
//! 1e-6·‖b‖ from x = 0 with the grid operator by CG, Jacobi-PCG, IC(0)-PCG (IC(0) of the same matrix in
//! CSR form, factorisation time reported apart) and the conjugate-direction
//! method (k = 2, stall safeguard on) with each model: by default the
//! shipped symmetric models `models/cdm_{2,3}d.safetensors` (D = LᵀL),
//! evaluated layer by layer ("sym., layers") and with the finest level
//! contracted ("symmetric", the default evaluation), and DCDM-form
//! fast-variant models `models/cdm_{2,3}d_dcdm.safetensors`, and
//! reference-preset models when `--reference2/3` name them (none ships).
//! A learned solve is capped at `--max-seconds` (default 300; DCDM-form
//! models, which stall, at `--dcdm-max-seconds`, default 60) through its
//! iteration limit, estimated from one timed direction; a capped solve
//! prints its iterations and the relative residual it reached.
//!
//! Columns: iterations, wall-clock seconds (median of 3 runs for the
//! classical solvers, one run for the learned ones), time per network
//! application, fallback steps; then the ratios the issue sets targets
//! for: learned/CG iterations (≤ 0.2), learned/IC(0) iterations (< 1) and
//! learned/IC(0) wall-clock (≤ 2).
//!
//! Learned multigrid (`--multigrid-only` runs just this part): on the same
//! scenes at rtol 1e-8, setup included (hierarchy build + MGPCG, median of
//! 3), the shipped schedules `models/multigrid_{2,3}d.safetensors`
//! (trained on the default hierarchy; `--multigrid2/3 F` names others) and
//! `models/multigrid_axis_{2,3}d.safetensors` (trained on axis-Galerkin
//! levels; `--multigrid-axis2/3 F`) against
//! classical MGPCG tuned in the same run: every damped-Jacobi cycle with
//! ν ∈ {1, 2, 3, 4} sweeps on the finest level, doubling on k ∈ {0, 1, 2}
//! coarser levels, and ω ∈ {0.6, 0.7, 0.8, 0.9, 1.0}, and Chebyshev
//! smoothing with ν ∈ {2, 3, 4} on [λ, 2] for λ ∈ {0.3, 0.5}, lumped
//! Galerkin coarse levels under the default cycle and Chebyshev ν = 4
//! (`CoarseOperators::LumpedGalerkin`), and axis-Galerkin levels under the
//! default cycle and Chebyshev ν = 3 and 4 (`CoarseOperators::AxisGalerkin`);
//! the sweep's 3 fastest and the default cycle are timed again,
//! alternating with the learned cycles (medians of 3 rounds), and the
//! fastest of them is the yardstick. Ratios last: learned/tuned
//! iterations (target ≤ 0.7) and wall-clock (≤ 0.9).

use adjunct::krylov::{
    conjugate_direction, CoarseOperators, CoarseSpace, ConjugateDirectionOptions, Multigrid,
    MultigridOptions, Schedule, TwoLevel,
};
use adjunct::learned::{Evaluation, Model, MultigridModel, NetworkDirection};
use adjunct::{
    cg, scene, Error, GridPoisson, Ic0, Identity, Jacobi, KrylovOptions, LinearOperator,
    Preconditioner, SolveReport,
};
use std::path::PathBuf;

mod common;
use common::flag;
use std::time::Instant;

const RTOL: f64 = 1e-6;

/// Aggregate side of the two-level Jacobi yardstick (that of the shipped
/// two-level models).
const COARSE_BLOCK: usize = 8;

/// One solver's outcome on one scene.
struct Row {
    solver: String,
    iterations: usize,
    seconds: f64,
    relative_residual: f64,
    converged: bool,
    per_direction: Option<f64>,
    fallback_steps: Option<usize>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The report of a finished solve, converged or not.
fn outcome<T>(result: Result<T, Error>, report: impl Fn(&T) -> &SolveReport) -> (SolveReport, bool)
where
    T: Clone,
{
    match result {
        Ok(r) => (report(&r).clone(), true),
        Err(Error::SolveFailed { report, .. }) => (*report, false),
        Err(e) => panic!("solve failed: {e}"),
    }
}

/// Three solves from x = 0 by `solve`: the median wall-clock and the last
/// outcome.
fn timed(label: &str, n: usize, solve: impl Fn(&mut [f64]) -> (SolveReport, bool)) -> Row {
    let mut runs = Vec::new();
    let mut last = None;
    for _ in 0..3 {
        let mut x = vec![0.0; n];
        let start = Instant::now();
        last = Some(solve(&mut x));
        runs.push(start.elapsed().as_secs_f64());
    }
    let (report, converged) = last.expect("three runs");
    Row {
        solver: label.to_string(),
        iterations: report.iterations,
        seconds: median(runs),
        relative_residual: report.relative_residual,
        converged,
        per_direction: None,
        fallback_steps: None,
    }
}

fn classical(
    label: &str,
    a: &GridPoisson,
    precond: &dyn Preconditioner,
    b: &[f64],
    options: &KrylovOptions,
) -> Row {
    timed(label, a.dim(), |x| {
        outcome(cg(a, precond, b, x, options), |r| r)
    })
}

fn learned(
    label: &str,
    a: &GridPoisson,
    (model, evaluation): (&Model, Evaluation),
    b: &[f64],
    max_seconds: f64,
) -> Row {
    let generator =
        NetworkDirection::with_evaluation(a, &model.network, model.coarse_block, evaluation)
            .expect("model matches the grid");
    // One untimed warm-up direction (allocates the workspace), one timed.
    let mut d = vec![0.0; a.dim()];
    generator.apply_dot(b, &mut d).expect("direction");
    let start = Instant::now();
    generator.apply_dot(b, &mut d).expect("direction");
    let per_direction = start.elapsed().as_secs_f64();
    let start = Instant::now();
    a.apply(b, &mut d).expect("apply");
    let per_apply = start.elapsed().as_secs_f64();
    let cap = (max_seconds / (per_direction + 3.0 * per_apply)).max(10.0) as usize;
    let options = ConjugateDirectionOptions {
        krylov: KrylovOptions {
            rtol: RTOL,
            max_iterations: cap,
            ..KrylovOptions::default()
        },
        ..ConjugateDirectionOptions::default()
    };
    let mut x = vec![0.0; a.dim()];
    let start = Instant::now();
    let result = conjugate_direction(a, &generator, b, &mut x, &options);
    let seconds = start.elapsed().as_secs_f64();
    let (fallback_steps, direction_seconds) = match &result {
        Ok(r) => (Some(r.fallback_steps), r.direction_seconds),
        Err(_) => (None, f64::NAN),
    };
    let (report, converged) = outcome(result, |r| &r.solve);
    let per_direction = if direction_seconds.is_finite() && report.iterations > 0 {
        direction_seconds / report.iterations as f64
    } else {
        per_direction
    };
    Row {
        solver: label.to_string(),
        iterations: report.iterations,
        seconds,
        relative_residual: report.relative_residual,
        converged,
        per_direction: Some(per_direction),
        fallback_steps,
    }
}

/// MGPCG with `mg_options` from x = 0 to rtol 1e-8, hierarchy built
/// inside the timer: (iterations, median seconds of 3, converged).
fn mgpcg(a: &GridPoisson, b: &[f64], mg_options: &MultigridOptions) -> (usize, f64, bool) {
    let options = KrylovOptions {
        rtol: 1e-8,
        ..KrylovOptions::default()
    };
    let row = timed("", a.dim(), |x| {
        let m = Multigrid::new(a, mg_options).expect("multigrid");
        outcome(cg(a, &m, b, x, &options), |r| r)
    });
    (row.iterations, row.seconds, row.converged)
}

/// How many of the sweep's fastest classical settings are timed again.
const FINALISTS: usize = 3;

/// The learned multigrid rows of one scene; returns per model (learned
/// iterations, seconds) and the tuned classical cycle's (label,
/// iterations, seconds).
fn multigrid_rows(
    a: &GridPoisson,
    b: &[f64],
    models: &[(String, MultigridModel)],
) -> (Vec<(usize, f64)>, (String, usize, f64)) {
    let mut candidates: Vec<(String, MultigridOptions)> = Vec::new();
    for sweep_doublings in 0..=2 {
        for sweeps in 1..=4 {
            for damping in [0.6, 0.7, 0.8, 0.9, 1.0] {
                candidates.push((
                    format!("Jacobi ν={sweeps} k={sweep_doublings} ω={damping}"),
                    MultigridOptions {
                        smoothing_sweeps: sweeps,
                        sweep_doublings,
                        damping,
                        ..MultigridOptions::default()
                    },
                ));
            }
        }
    }
    for sweeps in 2..=4 {
        for lower in [0.3, 0.5] {
            candidates.push((
                format!("Chebyshev ν={sweeps} [{lower}, 2]"),
                MultigridOptions {
                    schedule: Some(Schedule::chebyshev(sweeps, lower)),
                    ..MultigridOptions::default()
                },
            ));
        }
    }
    // The lumped and the axis-Galerkin levels: fewer iterations, a longer
    // setup.
    for (name, coarse_operators) in [
        ("lumped Galerkin", CoarseOperators::LumpedGalerkin),
        ("axis Galerkin", CoarseOperators::AxisGalerkin),
    ] {
        let mut cycles = vec![
            ("Jacobi ν=2 k=2 ω=0.9".to_string(), None),
            (
                "Chebyshev ν=4 [0.3, 2]".to_string(),
                Some(Schedule::chebyshev(4, 0.3)),
            ),
        ];
        if coarse_operators == CoarseOperators::AxisGalerkin {
            cycles.push((
                "Chebyshev ν=3 [0.3, 2]".to_string(),
                Some(Schedule::chebyshev(3, 0.3)),
            ));
        }
        for (cycle, schedule) in cycles {
            candidates.push((
                format!("{name}, {cycle}"),
                MultigridOptions {
                    coarse_operators,
                    schedule,
                    ..MultigridOptions::default()
                },
            ));
        }
    }
    let mut swept: Vec<(String, MultigridOptions, f64)> = Vec::new();
    let mut default = None;
    for (label, mg_options) in &candidates {
        let (its, seconds, converged) = mgpcg(a, b, mg_options);
        if !converged {
            continue;
        }
        let defaults = MultigridOptions::default();
        if mg_options.schedule.is_none()
            && mg_options.smoothing_sweeps == defaults.smoothing_sweeps
            && mg_options.sweep_doublings == defaults.sweep_doublings
            && mg_options.damping == defaults.damping
            && mg_options.coarse_operators == defaults.coarse_operators
        {
            default = Some((label.clone(), its, seconds));
        }
        swept.push((label.clone(), mg_options.clone(), seconds));
    }
    // The sweep's fastest few and the default cycle are finalists: one
    // timing of each setting picks by luck on this machine, so the
    // finalists are timed again.
    swept.sort_by(|x, y| x.2.total_cmp(&y.2));
    let is_default = |label: &str| default.as_ref().is_some_and(|d| d.0 == label);
    let finalists: Vec<(String, MultigridOptions)> = swept
        .into_iter()
        .enumerate()
        .filter(|(rank, (label, _, _))| *rank < FINALISTS || is_default(label))
        .map(|(_, (label, options, _))| (label, options))
        .collect();
    assert!(!finalists.is_empty(), "a classical cycle converges");
    let learned_options = models.iter().map(|(_, model)| {
        model
            .options_for(a, &MultigridOptions::default())
            .expect("the model fits the grid")
    });
    // The final comparison alternates the finalists and the learned cycles,
    // so that all see the same stretch of this noisy machine: medians of 3
    // rounds (of 3 runs each); the fastest finalist is the yardstick.
    let contenders: Vec<MultigridOptions> = finalists
        .iter()
        .map(|(_, options)| options.clone())
        .chain(learned_options)
        .collect();
    let mut runs = vec![Vec::new(); contenders.len()];
    let mut iterations = vec![0; contenders.len()];
    for _ in 0..3 {
        for (k, options) in contenders.iter().enumerate() {
            let (its, seconds, converged) = mgpcg(a, b, options);
            assert!(converged, "a finalist or learned cycle did not converge");
            iterations[k] = its;
            runs[k].push(seconds);
        }
    }
    let mut timed: Vec<(usize, f64)> = iterations
        .into_iter()
        .zip(runs.into_iter().map(median))
        .collect();
    let learned = timed.split_off(finalists.len());
    let best = finalists
        .iter()
        .zip(timed)
        .map(|((label, _), (its, seconds))| (label.clone(), its, seconds))
        .min_by(|x, y| x.2.total_cmp(&y.2))
        .expect("finalists");
    if let Some((_, its, seconds)) = default {
        println!(
            "  {:<34} {its:>4} its {seconds:>8.3} s",
            "classical default"
        );
    }
    println!(
        "  {:<34} {:>4} its {:>8.3} s",
        format!("tuned classical: {}", best.0),
        best.1,
        best.2
    );
    for ((name, _), (its, seconds)) in models.iter().zip(&learned) {
        println!(
            "  {:<34} {its:>4} its {seconds:>8.3} s",
            format!("learned {name}")
        );
    }
    (learned, best)
}

fn print_row(row: &Row) {
    let per = row
        .per_direction
        .map_or("".into(), |t| format!("{:.1} ms", t * 1e3));
    let fallbacks = row.fallback_steps.map_or("".into(), |f| f.to_string());
    let status = if row.converged {
        String::new()
    } else {
        format!(
            "  NOT CONVERGED (rel. residual {:.1e})",
            row.relative_residual
        )
    };
    println!(
        "  {:<22} {:>7} {:>10.3} {:>12} {:>9}{status}",
        row.solver, row.iterations, row.seconds, per, fallbacks
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let seconds = |name: &str, default: f64| -> f64 {
        flag(name).map_or(default, |v| v.parse().expect("seconds"))
    };
    let (max_seconds, dcdm_max_seconds) = (
        seconds("--max-seconds", 300.0),
        seconds("--dcdm-max-seconds", 60.0),
    );
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let load = |path: PathBuf| Model::load(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let models = |dim: usize| -> Vec<(String, Model, Evaluation)> {
        let mut out = Vec::new();
        for (label, name) in [("symmetric", ""), ("dcdm", "_dcdm")] {
            let path = flag(&format!("--{label}{dim}")).map_or_else(
                || root.join(format!("models/cdm_{dim}d{name}.safetensors")),
                PathBuf::from,
            );
            let model = load(path);
            if model.network.architecture().symmetric {
                out.push((
                    "learned (sym., layers)".to_string(),
                    model.clone(),
                    Evaluation::LayerByLayer,
                ));
                out.push((
                    "learned (symmetric)".to_string(),
                    model,
                    Evaluation::Fastest,
                ));
            } else {
                out.push((
                    "learned (DCDM fast)".to_string(),
                    model,
                    Evaluation::Fastest,
                ));
            }
        }
        if let Some(path) = flag(&format!("--reference{dim}")) {
            out.push((
                "learned (DCDM reference)".to_string(),
                load(path.into()),
                Evaluation::Fastest,
            ));
        }
        out
    };
    let scenes: Vec<[usize; 3]> = if let Some(list) = flag("--grids") {
        list.split(',')
            .map(|g| {
                let n: Vec<usize> = g
                    .split('x')
                    .map(|v| v.parse().expect("NxN or NxNxN"))
                    .collect();
                [n[0], n[1], n.get(2).copied().unwrap_or(1)]
            })
            .collect()
    } else if quick {
        vec![[128, 128, 1], [32, 32, 32]]
    } else {
        vec![[256, 256, 1], [512, 512, 1], [64, 64, 64], [128, 128, 128]]
    };
    println!(
        "held-out scene::obstacles, rtol {RTOL:.0e}, {} threads; learned solves capped at {max_seconds} s (DCDM form: {dcdm_max_seconds} s)",
        rayon::current_num_threads()
    );
    if args.iter().any(|a| a == "--multigrid-only") {
        return multigrid_section(&root, &scenes);
    }
    let mut ratios = Vec::new();
    for dims in scenes.iter().copied() {
        let dim = if dims[2] > 1 { 3 } else { 2 };
        let problem = scene::obstacles(dims, 2).expect("scene");
        let a = problem.operator().expect("operator");
        let b = &problem.rhs;
        let options = KrylovOptions {
            rtol: RTOL,
            max_iterations: 100_000,
            ..KrylovOptions::default()
        };
        let start = Instant::now();
        let ic0 = Ic0::new(&a.to_csr().unwrap()).expect("IC(0)");
        let factor_seconds = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let multigrid = Multigrid::new(&a, &MultigridOptions::default()).expect("multigrid");
        let multigrid_seconds = start.elapsed().as_secs_f64();
        let jacobi = Jacobi::new(&a).expect("Jacobi");
        let start = Instant::now();
        let coarse = CoarseSpace::new(&a, COARSE_BLOCK).expect("coarse space");
        let coarse_seconds = start.elapsed().as_secs_f64();
        let two_level_jacobi = TwoLevel::new(&a, coarse, &jacobi).expect("two-level");
        println!(
            "\n{dims:?}: {} unknowns (setup not included: IC(0) factorisation {factor_seconds:.3} s, multigrid {multigrid_seconds:.3} s, coarse space of {}^d-cell aggregates {coarse_seconds:.3} s)",
            a.dim(),
            COARSE_BLOCK
        );
        let direction_options = ConjugateDirectionOptions {
            krylov: options.clone(),
            ..ConjugateDirectionOptions::default()
        };
        println!(
            "  {:<22} {:>7} {:>10} {:>12} {:>9}",
            "solver", "its", "seconds", "per D(r)", "fallbacks"
        );
        let rows = [
            classical("CG", &a, &Identity { dim: a.dim() }, b, &options),
            classical("Jacobi-PCG", &a, &jacobi, b, &options),
            classical("IC(0)-PCG", &a, &ic0, b, &options),
            classical("multigrid-PCG", &a, &multigrid, b, &options),
            timed("two-level Jacobi", a.dim(), |x| {
                let result = conjugate_direction(&a, &two_level_jacobi, b, x, &direction_options);
                outcome(result, |r| &r.solve)
            }),
        ];
        rows.iter().for_each(print_row);
        for (label, model, evaluation) in models(dim) {
            let cap = if model.network.architecture().symmetric {
                max_seconds
            } else {
                dcdm_max_seconds
            };
            let row = learned(&label, &a, (&model, evaluation), b, cap);
            print_row(&row);
            ratios.push((
                dims,
                row,
                rows[0].iterations,
                rows[2].iterations,
                rows[2].seconds,
            ));
        }
    }
    println!("\nratios (targets: its/CG ≤ 0.2, its/IC(0) < 1 and time/IC(0) ≤ 2 on 3D scenes)");
    for (dims, row, cg_its, ic_its, ic_seconds) in ratios {
        let capped = if row.converged {
            ""
        } else {
            " (capped, not converged)"
        };
        println!(
            "  {dims:?} {:<20} its/CG {:.2}  its/IC(0) {:.2}  time/IC(0) {:.1}{capped}",
            row.solver,
            row.iterations as f64 / cg_its as f64,
            row.iterations as f64 / ic_its as f64,
            row.seconds / ic_seconds
        );
    }
    multigrid_section(&root, &scenes);
}

/// The learned multigrid rows of every scene, ratios last.
fn multigrid_section(root: &std::path::Path, scenes: &[[usize; 3]]) {
    println!(
        "\nlearned multigrid: held-out scene::obstacles, rtol 1e-8, setup included, {} threads",
        rayon::current_num_threads()
    );
    let mut ratios = Vec::new();
    for &dims in scenes {
        let dim = if dims[2] > 1 { 3 } else { 2 };
        let models: Vec<(String, MultigridModel)> = [
            ("multigrid", "--multigrid"),
            ("multigrid_axis", "--multigrid-axis"),
        ]
        .into_iter()
        .map(|(file, option)| {
            let path = flag(&format!("{option}{dim}")).map_or_else(
                || root.join(format!("models/{file}_{dim}d.safetensors")),
                PathBuf::from,
            );
            let model = MultigridModel::load(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            let levels = model.coarse_operators.name();
            (format!("schedule on {levels} levels"), model)
        })
        .collect();
        let problem = scene::obstacles(dims, 2).expect("scene");
        let a = problem.operator().expect("operator");
        println!("\n{dims:?}: {} unknowns", a.dim());
        let (learned, tuned) = multigrid_rows(&a, &problem.rhs, &models);
        ratios.push((dims, models, learned, tuned));
    }
    println!("\nratios, learned schedule / tuned classical MGPCG (targets: its ≤ 0.7, time ≤ 0.9)");
    for (dims, models, learned, (label, tuned_its, tuned_seconds)) in ratios {
        for ((name, _), (its, seconds)) in models.iter().zip(learned) {
            println!(
                "  {dims:?} {name}: its {:.2}  time {:.2}  (against {label})",
                its as f64 / tuned_its as f64,
                seconds / tuned_seconds
            );
        }
    }
}
