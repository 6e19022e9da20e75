//! CG and MGPCG on pressure-projection problems against peer libraries, in
//! one run: Eigen 3 `ConjugateGradient` (identity, diagonal and
//! IncompleteCholesky preconditioners), SciPy `scipy.sparse.linalg.cg`
//! (none and Jacobi) and hypre PCG + BoomerAMG, on the same CSR matrices and
//! right-hand sides, stopping at relative residual 1e-8 (each library's own
//! test; the table reports the true residual ‖b − Ax‖/‖b‖ of every result).
//!
//! Problems: 3D smoke box with a spherical obstacle at 64³ and 128³ and the
//! 2D version at 1024² (`scene::smoke`, two air layers on top).
//!
//! Peers are skipped, with the reason printed, when missing. Build them with
//! `benches/peers/build.sh` (Debian: libeigen3-dev libhypre-dev
//! libopenmpi-dev openmpi-bin; SciPy from pip).
//!
//! Run: `cargo run --release --example bench_peers [-- --threads T --sizes 64,128,1024]`

use adjunct::krylov::{Multigrid, MultigridOptions};
use adjunct::{cg, scene, Ic0, Identity, KrylovOptions, LinearOperator, Preconditioner};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const RTOL: f64 = 1e-8;

/// One solver's outcome on one problem.
struct Row {
    solver: String,
    setup: f64,
    solve: f64,
    iterations: usize,
    residual: f64,
}

impl Row {
    fn per_iteration(&self) -> f64 {
        self.solve / self.iterations.max(1) as f64
    }
}

fn write<T: Copy>(path: &Path, values: &[T], bytes: impl Fn(T) -> [u8; 8]) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("create file"));
    for &v in values {
        file.write_all(&bytes(v)).expect("write file");
    }
}

fn ours(
    name: &str,
    op: &dyn LinearOperator,
    setup: impl FnOnce() -> Box<dyn Preconditioner>,
    b: &[f64],
) -> Row {
    let t0 = Instant::now();
    let precond = setup();
    let setup_seconds = t0.elapsed().as_secs_f64();
    let mut x = vec![0.0; b.len()];
    let options = KrylovOptions {
        rtol: RTOL,
        max_iterations: 100_000,
        ..KrylovOptions::default()
    };
    let t1 = Instant::now();
    let report = cg(op, &*precond, b, &mut x, &options).expect("CG converges");
    Row {
        solver: name.to_string(),
        setup: setup_seconds,
        solve: t1.elapsed().as_secs_f64(),
        iterations: report.iterations,
        residual: report.relative_residual,
    }
}

/// Runs a peer and parses its `RESULT name setup solve iterations residual` lines.
fn peer(label: &str, command: &mut Command) -> Vec<Row> {
    match command.output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 6 && f[0] == "RESULT").then(|| Row {
                    solver: f[1].to_string(),
                    setup: f[2].parse().unwrap_or(f64::NAN),
                    solve: f[3].parse().unwrap_or(f64::NAN),
                    iterations: f[4].parse().unwrap_or(0),
                    residual: f[5].parse().unwrap_or(f64::NAN),
                })
            })
            .collect(),
        Ok(out) => {
            println!(
                "  {label} skipped: failed: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            Vec::new()
        }
        Err(e) => {
            println!("  {label} skipped: {e}");
            Vec::new()
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
    };
    let threads: usize = value("--threads").map_or(2, |v| v.parse().expect("a number"));
    let sizes: Vec<usize> = value("--sizes").map_or(vec![64, 128, 1024], |v| {
        v.split(',').map(|s| s.parse().expect("a size")).collect()
    });
    adjunct::set_num_threads(threads).expect("thread count");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = root.join("target/bench_peers/bin");
    println!(
        "adjunct {} with {threads} threads; Eigen with OMP_NUM_THREADS={threads}; SciPy (numpy's threads); hypre 1 MPI rank",
        env!("CARGO_PKG_VERSION")
    );
    let mut ratios = Vec::new();
    for n in sizes {
        let dims = if n >= 256 { [n, n, 1] } else { [n, n, n] };
        let ndim = if dims[2] > 1 { 3 } else { 2 };
        let problem = scene::smoke(dims, 2).expect("scene");
        let grid = problem.operator().expect("operator");
        let csr = grid.to_csr().unwrap();
        let b = &problem.rhs;
        let label = if ndim == 3 {
            format!("3D smoke {n}^3")
        } else {
            format!("2D smoke {n}^2")
        };
        println!(
            "\n{label}: {} unknowns, {} nonzeros, rtol {RTOL:e}",
            b.len(),
            csr.nnz()
        );
        let dir = root.join(format!("target/bench_peers/{n}"));
        std::fs::create_dir_all(&dir).expect("create problem folder");
        std::fs::write(dir.join("meta.txt"), format!("{} {}", b.len(), csr.nnz()))
            .expect("write meta");
        write(&dir.join("row_ptr.i64"), csr.row_ptr(), |v| {
            (v as i64).to_le_bytes()
        });
        write(&dir.join("col_idx.i64"), csr.col_idx(), |v| {
            (v as i64).to_le_bytes()
        });
        write(&dir.join("values.f64"), csr.values(), f64::to_le_bytes);
        write(&dir.join("rhs.f64"), b, f64::to_le_bytes);

        let dim = b.len();
        let mut rows = vec![
            ours(
                "adjunct CG (grid stencil)",
                &grid,
                || Box::new(Identity { dim }),
                b,
            ),
            ours("adjunct CG (CSR)", &csr, || Box::new(Identity { dim }), b),
            ours(
                "adjunct IC(0)-PCG (CSR)",
                &csr,
                || Box::new(Ic0::new(&csr).expect("IC(0)")),
                b,
            ),
            ours(
                "adjunct MGPCG (grid)",
                &grid,
                || Box::new(Multigrid::new(&grid, &MultigridOptions::default()).expect("MG")),
                b,
            ),
        ];
        let dir_arg = dir.to_string_lossy().to_string();
        rows.extend(peer(
            "Eigen",
            Command::new(bin.join("eigen_cg"))
                .args([&dir_arg, &RTOL.to_string()])
                .env("OMP_NUM_THREADS", threads.to_string()),
        ));
        rows.extend(peer(
            "SciPy",
            Command::new("python3")
                .arg(root.join("benches/peers/scipy_cg.py"))
                .args([&dir_arg, &RTOL.to_string()]),
        ));
        rows.extend(peer(
            "hypre",
            Command::new("mpirun")
                .args(["--allow-run-as-root", "--oversubscribe", "-n", "1"])
                .arg(bin.join("hypre_pcg"))
                .args([&dir_arg, &RTOL.to_string(), &ndim.to_string()]),
        ));
        println!(
            "  {:<28} {:>9} {:>9} {:>9} {:>6} {:>11} {:>9}",
            "solver", "setup s", "solve s", "total s", "its", "ms/it", "true res"
        );
        for r in &rows {
            println!(
                "  {:<28} {:>9.3} {:>9.3} {:>9.3} {:>6} {:>11.3} {:>9.1e}",
                r.solver,
                r.setup,
                r.solve,
                r.setup + r.solve,
                r.iterations,
                1e3 * r.per_iteration(),
                r.residual
            );
        }
        let find = |name: &str| rows.iter().find(|r| r.solver == name);
        let plain = find("adjunct CG (grid stencil)").expect("ours");
        let plain_csr = find("adjunct CG (CSR)").expect("ours");
        for peer_name in ["eigen_cg", "scipy_cg"] {
            if let Some(p) = find(peer_name) {
                ratios.push(format!(
                    "{label}: {peer_name} / adjunct plain CG per iteration: {:.1}x grid stencil, {:.1}x CSR (target >= 2)",
                    p.per_iteration() / plain.per_iteration(),
                    p.per_iteration() / plain_csr.per_iteration()
                ));
            }
        }
        if let (Some(h), Some(m)) = (find("hypre_boomeramg_pcg"), find("adjunct MGPCG (grid)")) {
            ratios.push(format!(
                "{label}: hypre BoomerAMG-PCG / adjunct MGPCG total time: {:.2}x (target > 1 in 3D)",
                (h.setup + h.solve) / (m.setup + m.solve)
            ));
        }
    }
    println!("\nratios");
    for r in ratios {
        println!("  {r}");
    }
}
