//! A simulator's frame loop: a solid sphere moves through a smoke box while
//! the air layer on top changes thickness, one pressure solve per frame
//! (divergence-like right-hand side, rtol 1e-8). All solvers in the same
//! run, per-frame medians of setup and solve:
//!
//! - the persistent solver (`PressureSolver`: hierarchy rebuilt per frame,
//!   warm start from the last pressure), with the default single-precision
//!   V-cycle and with a double-precision one (the same final tolerance:
//!   CG runs in f64 either way),
//! - rebuild from scratch (operator, hierarchy, cold MGPCG: the path before
//!   the persistent solver),
//! - IC(0)-PCG (factorisation per frame),
//! - MIC(0)-PCG written here as fluid simulators write it (Bridson,
//!   "Fluid Simulation for Computer Graphics", τ = 0.97, σ = 0.25): the
//!   yardstick a simulator's own pressure solve sets.
//!
//! `cargo run --release --example bench_frames -- [--grids 64,128] [--frames 20] [--yardstick-every 1]`
//!
//! `--yardstick-every k` runs IC(0) and MIC(0) on every k-th frame only (at
//! 128³ they take 10–16 s a frame), so that long sequences stay short.

mod common;

use adjunct::krylov::{
    Ic0, Multigrid, MultigridOptions, Precision, Preconditioner, PressureSolver,
};
use adjunct::{cg, Cell, GridPoisson, KrylovOptions, LinearOperator};
use std::time::Instant;

/// Modified incomplete Cholesky MIC(0) of the 7-point stencil, in the form
/// of a simulator's pressure solver: per unknown its diagonal entry, its
/// couplings to the +x, +y, +z neighbours and the inverse pivot.
struct Mic0 {
    /// Per unknown: the unknowns at −x, −y, −z (u32::MAX when absent).
    lower: Vec<[u32; 3]>,
    /// Per unknown: A's coupling to its −x, −y, −z neighbour (≤ 0).
    coupling: Vec<[f64; 3]>,
    precon: Vec<f64>,
    /// Scratch of the forward solve.
    q: std::cell::RefCell<Vec<f64>>,
}

impl Mic0 {
    fn new(grid: &GridPoisson) -> adjunct::Result<Self> {
        const TAU: f64 = 0.97;
        const SIGMA: f64 = 0.25;
        let csr = grid.to_csr()?;
        let [nx, ny, _] = grid.dims();
        let stride = [1, nx, nx * ny];
        let n = grid.dim();
        let (ptr, cols, vals) = (csr.row_ptr(), csr.col_idx(), csr.values());
        let entry = |u: usize, v: usize| -> f64 {
            let range = ptr[u] as usize..ptr[u + 1] as usize;
            cols[range.clone()]
                .binary_search(&(v as u32))
                .map_or(0.0, |k| vals[range.start + k])
        };
        let mut cell_of = vec![0usize; n];
        for c in 0..grid.num_cells() {
            if let Some(u) = grid.unknown_of_cell(c) {
                cell_of[u] = c;
            }
        }
        let (mut lower, mut coupling) = (vec![[u32::MAX; 3]; n], vec![[0.0; 3]; n]);
        for u in 0..n {
            let c = cell_of[u];
            let p = [c % nx, (c / nx) % ny, c / (nx * ny)];
            for a in 0..3 {
                if p[a] > 0 {
                    if let Some(v) = grid.unknown_of_cell(c - stride[a]) {
                        lower[u][a] = v as u32;
                        coupling[u][a] = entry(u, v);
                    }
                }
            }
        }
        // The +a coupling of unknown v is the −a coupling of its +a neighbour.
        let mut upper = vec![[0.0f64; 3]; n];
        for u in 0..n {
            for a in 0..3 {
                if lower[u][a] != u32::MAX {
                    upper[lower[u][a] as usize][a] = coupling[u][a];
                }
            }
        }
        let mut precon = vec![0.0; n];
        for u in 0..n {
            let diag = entry(u, u);
            let mut e = diag;
            for a in 0..3 {
                let v = lower[u][a];
                if v == u32::MAX {
                    continue;
                }
                let (v, w) = (v as usize, coupling[u][a]);
                let pv = precon[v];
                e -= (w * pv).powi(2);
                let others: f64 = (0..3).filter(|&b| b != a).map(|b| upper[v][b]).sum();
                e -= TAU * w * others * pv * pv;
            }
            if e < SIGMA * diag {
                e = diag;
            }
            precon[u] = 1.0 / e.sqrt();
        }
        Ok(Self {
            lower,
            coupling,
            precon,
            q: std::cell::RefCell::new(vec![0.0; n]),
        })
    }
}

impl Preconditioner for Mic0 {
    fn dim(&self) -> usize {
        self.precon.len()
    }

    fn apply_dot(&self, r: &[f64], z: &mut [f64]) -> adjunct::Result<f64> {
        let n = self.dim();
        let mut q = self.q.borrow_mut();
        for u in 0..n {
            let mut t = r[u];
            for a in 0..3 {
                let v = self.lower[u][a];
                if v != u32::MAX {
                    let v = v as usize;
                    t -= self.coupling[u][a] * self.precon[v] * q[v];
                }
            }
            q[u] = t * self.precon[u];
        }
        z.copy_from_slice(&q);
        for u in (0..n).rev() {
            let t = z[u] * self.precon[u];
            z[u] = t;
            for a in 0..3 {
                let v = self.lower[u][a];
                if v != u32::MAX {
                    z[v as usize] -= self.coupling[u][a] * self.precon[v as usize] * t;
                }
            }
        }
        Ok(r.iter().zip(z.iter()).map(|(a, b)| a * b).sum())
    }
}

fn cells(n: usize, t: usize, frames: usize) -> Vec<Cell> {
    let travel = 0.5 * n as f64 * t as f64 / frames.max(1) as f64;
    let centre = [0.25 * n as f64 + travel, 0.5 * n as f64, 0.45 * n as f64];
    let radius2 = (0.15 * n as f64).powi(2);
    let air_from = n - 2 - t % 3;
    (0..n * n * n)
        .map(|c| {
            let p = [c % n, (c / n) % n, c / (n * n)];
            let d2: f64 = (0..3)
                .map(|a| (p[a] as f64 + 0.5 - centre[a]).powi(2))
                .sum();
            if p[2] >= air_from {
                Cell::Air
            } else if d2 < radius2 {
                Cell::Solid
            } else {
                Cell::Fluid
            }
        })
        .collect()
}

fn rhs(n: usize, t: usize) -> Vec<f64> {
    (0..n * n * n)
        .map(|c| {
            let p = [c % n, (c / n) % n, c / (n * n)].map(|v| v as f64 / n as f64);
            (6.0 * p[0] + 0.1 * t as f64).sin() * (5.0 * p[1]).cos() * (4.0 * p[2]).sin()
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Row {
    setup: Vec<f64>,
    solve: Vec<f64>,
    iterations: Vec<f64>,
    /// The final true residual ‖b − A x‖₂ (the same b for every row).
    residual: Vec<f64>,
}

impl Row {
    fn new() -> Self {
        Row {
            setup: Vec::new(),
            solve: Vec::new(),
            iterations: Vec::new(),
            residual: Vec::new(),
        }
    }
    fn record(&mut self, report: &adjunct::SolveReport) {
        self.iterations.push(report.iterations as f64);
        self.residual.push(report.true_residual_norm);
    }
    fn total(&self) -> f64 {
        median(
            self.setup
                .iter()
                .zip(&self.solve)
                .map(|(a, b)| a + b)
                .collect(),
        )
    }
    fn print(&self, name: &str) {
        println!(
            "  {name:<24} setup {:7.3} s   solve {:7.3} s   total {:7.3} s   {:5.1} its   true ‖r‖ {:.2e}",
            median(self.setup.clone()),
            median(self.solve.clone()),
            self.total(),
            median(self.iterations.clone()),
            median(self.residual.clone())
        );
    }
}

fn main() -> adjunct::Result<()> {
    let grids: Vec<usize> = common::flag("--grids")
        .unwrap_or_else(|| "64,128".into())
        .split(',')
        .map(|s| s.parse().expect("grid size"))
        .collect();
    let frames: usize = common::flag("--frames").map_or(20, |s| s.parse().expect("frames"));
    let yardstick_every: usize = common::flag("--yardstick-every")
        .map_or(1, |s| s.parse().expect("yardstick-every"))
        .max(1);
    let options = KrylovOptions::default();
    println!(
        "{frames} frames per grid (IC(0) and MIC(0) on every {yardstick_every}), {} threads, rtol 1e-8, per-frame medians",
        adjunct::num_threads()
    );
    let mut ratios = Vec::new();
    for n in grids {
        let (mut persistent, mut double, mut rebuild, mut ic0, mut mic0) =
            (Row::new(), Row::new(), Row::new(), Row::new(), Row::new());
        let mut solver = PressureSolver::new([n, n, n])?;
        let mut solver_double = PressureSolver::with_multigrid(
            [n, n, n],
            MultigridOptions {
                precision: Precision::Double,
                ..MultigridOptions::default()
            },
        )?;
        let mut pressure = vec![0.0; n * n * n];
        let mut pressure_double = vec![0.0; n * n * n];
        for t in 0..frames {
            let kinds = cells(n, t, frames);
            let field = rhs(n, t);

            for (solver, pressure, row) in [
                (&mut solver, &mut pressure, &mut persistent),
                (&mut solver_double, &mut pressure_double, &mut double),
            ] {
                let start = Instant::now();
                solver.update(GridPoisson::builder([n, n, n], &kinds).build()?)?;
                row.setup.push(start.elapsed().as_secs_f64());
                let start = Instant::now();
                let report = solver.solve(&field, pressure, true, &options)?;
                row.solve.push(start.elapsed().as_secs_f64());
                row.record(&report);
            }

            let start = Instant::now();
            let grid = GridPoisson::builder([n, n, n], &kinds).build()?;
            let multigrid = Multigrid::new(&grid, &MultigridOptions::default())?;
            rebuild.setup.push(start.elapsed().as_secs_f64());
            let mut b = vec![0.0; grid.dim()];
            grid.gather(&field, &mut b)?;
            let mut x = vec![0.0; grid.dim()];
            let start = Instant::now();
            let report = cg(&grid, &multigrid, &b, &mut x, &options)?;
            rebuild.solve.push(start.elapsed().as_secs_f64());
            rebuild.record(&report);
            if t % yardstick_every != 0 {
                continue;
            }

            let start = Instant::now();
            let factor = Ic0::new(&grid.to_csr()?)?;
            ic0.setup.push(start.elapsed().as_secs_f64());
            let mut x = vec![0.0; grid.dim()];
            let start = Instant::now();
            let report = cg(&grid, &factor, &b, &mut x, &options)?;
            ic0.solve.push(start.elapsed().as_secs_f64());
            ic0.record(&report);

            let start = Instant::now();
            let factor = Mic0::new(&grid)?;
            mic0.setup.push(start.elapsed().as_secs_f64());
            let mut x = vec![0.0; grid.dim()];
            let start = Instant::now();
            let report = cg(&grid, &factor, &b, &mut x, &options)?;
            mic0.solve.push(start.elapsed().as_secs_f64());
            mic0.record(&report);
        }
        println!(
            "{n}³ ({} unknowns in the last frame):",
            solver.grid().map_or(0, |g| g.dim())
        );
        persistent.print("persistent, f32 V-cycle");
        double.print("persistent, f64 V-cycle");
        rebuild.print("rebuild, cold MGPCG");
        ic0.print("IC(0)-PCG");
        mic0.print("MIC(0)-PCG (simulator)");
        ratios.push((
            n,
            persistent.total(),
            double.total(),
            rebuild.total(),
            ic0.total(),
            mic0.total(),
            median(persistent.setup.clone()),
        ));
    }
    println!("ratios (per-frame total, same run):");
    for (n, p, d, r, i, m, setup) in ratios {
        println!(
            "  {n}³: f32 / f64 V-cycle {:.2}, persistent / rebuild {:.2}, IC(0) / persistent {:.1}, MIC(0) / persistent {:.1} (target ≥ 5); persistent setup {setup:.3} s (target ≤ 0.1 s), total {p:.3} s (target ≤ 0.6 s)",
            p / d,
            p / r,
            i / p,
            m / p
        );
    }
    Ok(())
}
