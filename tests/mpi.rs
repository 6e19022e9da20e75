//! Distributed CG and conjugate directions through the C ABI with MPI
//! (examples/mpi/poisson_mpi.c): 1, 2 and 4 ranks take the same number of
//! iterations and give the same solution to 1e-10 relative; one allreduce
//! per CG iteration, two per conjugate-direction iteration; a callback
//! error on one rank is reported on every rank without a deadlock. Needs
//! `mpicc` and `mpirun` (Debian openmpi-bin, libopenmpi-dev; .ci/run
//! installs them).

mod common;

use common::{require_tool, root, run, static_library, tempdir, NATIVE_LIBS};
use std::path::PathBuf;
use std::process::Command;

/// The example built once per test process (tests run in parallel).
/// `None` (the skip reported by [`require_tool`]) without MPI.
#[track_caller]
fn build() -> Option<PathBuf> {
    for tool in ["mpicc", "mpirun"] {
        if !require_tool(tool, ".ci/run installs openmpi-bin and libopenmpi-dev") {
            return None;
        }
    }
    static EXE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    Some(EXE.get_or_init(build_once).clone())
}

fn build_once() -> PathBuf {
    let exe = tempdir("mpi").join("poisson_mpi");
    run(Command::new("mpicc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O2", "-I"])
        .arg(root().join("include"))
        .arg(root().join("examples/mpi/poisson_mpi.c"))
        .arg(static_library())
        .args(NATIVE_LIBS)
        .arg("-o")
        .arg(&exe));
    exe
}

fn mpirun(ranks: usize, exe: &PathBuf, args: &[&str]) -> String {
    run(Command::new("timeout")
        .arg("120")
        .arg("mpirun")
        .args([
            "--allow-run-as-root",
            "--oversubscribe",
            "-n",
            &ranks.to_string(),
        ])
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .arg(exe)
        .args(args))
}

fn read_f64(path: &PathBuf) -> Vec<f64> {
    std::fs::read(path)
        .expect("solution file")
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// The number after `key` in the program's summary line.
fn field(output: &str, key: &str) -> f64 {
    let line = output
        .lines()
        .find(|l| l.contains("iterations,"))
        .expect("summary line");
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| w.trim_matches(',') == key)
        .expect(key);
    words[at - 1]
        .trim_start_matches('(')
        .parse()
        .expect("a number")
}

/// Runs 1, 2 and 4 ranks with `extra` flags; asserts equal iteration counts,
/// solutions equal to 1e-10 and at most `reductions` allreduce calls per
/// iteration.
fn ranks_agree(extra: &[&str], reductions: f64) {
    let Some(exe) = build() else { return };
    let dir = tempdir("mpi");
    let mut reference: Option<(f64, Vec<f64>)> = None;
    for ranks in [1, 2, 4] {
        let out_file = dir.join(format!("solution_{ranks}_{}.f64", extra.len()));
        let mut args = vec!["20", "--out", out_file.to_str().unwrap()];
        args.extend_from_slice(extra);
        let output = mpirun(ranks, &exe, &args);
        let iterations = field(&output, "iterations");
        let per_iteration = field(&output, "per");
        assert!(
            per_iteration <= reductions,
            "allreduce calls per iteration {per_iteration}: {output}"
        );
        let solution = read_f64(&out_file);
        match &reference {
            None => reference = Some((iterations, solution)),
            Some((its, x)) => {
                assert_eq!(iterations, *its, "{ranks} ranks: {output}");
                let diff = common::rel_diff(&solution, x);
                assert!(diff <= 1e-10, "{ranks} ranks: solution differs by {diff:e}");
            }
        }
    }
}

#[test]
fn cg_ranks_agree_with_the_serial_solve() {
    ranks_agree(&[], 1.05);
}

#[test]
fn conjugate_direction_ranks_agree_with_the_serial_solve() {
    ranks_agree(&["--cdm"], 2.1);
}

#[test]
fn a_callback_error_on_one_rank_is_reported_on_every_rank() {
    let Some(exe) = build() else { return };
    for solver in [None, Some("--cdm")] {
        let mut args = vec!["16", "--fail-rank", "1", "--fail-after", "4"];
        args.extend(solver);
        let output = mpirun(3, &exe, &args);
        for rank in 0..3 {
            let line = output
                .lines()
                .find(|l| l.starts_with(&format!("rank {rank}: status -6")))
                .unwrap_or_else(|| {
                    panic!("{solver:?}: rank {rank} did not report the callback error:\n{output}")
                });
            let expected = if rank == 1 {
                "returned 7"
            } else {
                "another rank"
            };
            assert!(line.contains(expected), "{solver:?}: {line}");
        }
    }
}

/// The C++ wrapper under MPI: `adjunct::cg_distributed` with lambdas, 1, 2
/// and 4 ranks against the serial solve, and an exception thrown by one
/// rank's operator reported on every rank.
#[test]
fn cpp_wrapper_under_mpi() {
    if build().is_none() || !require_tool("mpicxx", ".ci/run installs libopenmpi-dev") {
        return;
    }
    let exe = tempdir("mpi").join("mpi_wrapper_test");
    run(Command::new("mpicxx")
        .args(["-std=c++17", "-Wall", "-Wextra", "-Werror", "-O2", "-I"])
        .arg(root().join("include"))
        .arg("-I")
        .arg(root().join("bindings/cpp"))
        .arg(root().join("tests/cpp/mpi_wrapper_test.cpp"))
        .arg(static_library())
        .args(NATIVE_LIBS)
        .arg("-o")
        .arg(&exe));
    for ranks in [1, 2, 4] {
        let output = mpirun(ranks, &exe, &[]);
        assert!(
            output.contains("all checks passed"),
            "{ranks} ranks:\n{output}"
        );
    }
    let output = mpirun(2, &exe, &["--fail"]);
    assert!(output.contains("all checks passed"), "{output}");
    assert!(output.contains("rethrown: operator failed"), "{output}");
}
