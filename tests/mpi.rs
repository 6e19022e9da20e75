//! Distributed CG through the C ABI with MPI (examples/mpi/poisson_mpi.c):
//! 1, 2 and 4 ranks take the same number of iterations and give the same
//! solution to 1e-10 relative; one allreduce per iteration; a callback
//! error on one rank is reported on every rank without a deadlock. Needs
//! `mpicc` and `mpirun` (Debian openmpi-bin, libopenmpi-dev; .ci/run
//! installs them).

mod common;

use common::{root, run, static_library, tempdir, tool_available, NATIVE_LIBS};
use std::path::PathBuf;
use std::process::Command;

fn build() -> Option<PathBuf> {
    for tool in ["mpicc", "mpirun"] {
        if !tool_available(tool) {
            eprintln!(
                "SKIPPED: no `{tool}` on PATH (.ci/run installs openmpi-bin and libopenmpi-dev)"
            );
            return None;
        }
    }
    let exe = tempdir("mpi").join("poisson_mpi");
    run(Command::new("mpicc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O2", "-I"])
        .arg(root().join("include"))
        .arg(root().join("examples/mpi/poisson_mpi.c"))
        .arg(static_library())
        .args(NATIVE_LIBS)
        .arg("-o")
        .arg(&exe));
    Some(exe)
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

#[test]
fn ranks_agree_with_the_serial_solve() {
    let Some(exe) = build() else { return };
    let dir = tempdir("mpi");
    let mut reference: Option<(f64, Vec<f64>)> = None;
    for ranks in [1, 2, 4] {
        let out_file = dir.join(format!("solution_{ranks}.f64"));
        let output = mpirun(ranks, &exe, &["20", "--out", out_file.to_str().unwrap()]);
        let iterations = field(&output, "iterations");
        let per_iteration = field(&output, "per");
        assert!(
            per_iteration <= 1.05,
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
fn a_callback_error_on_one_rank_is_reported_on_every_rank() {
    let Some(exe) = build() else { return };
    let output = mpirun(3, &exe, &["16", "--fail-rank", "1", "--fail-after", "4"]);
    for rank in 0..3 {
        let line = output
            .lines()
            .find(|l| l.starts_with(&format!("rank {rank}: status -6")))
            .unwrap_or_else(|| panic!("rank {rank} did not report the callback error:\n{output}"));
        let expected = if rank == 1 {
            "returned 7"
        } else {
            "another rank"
        };
        assert!(line.contains(expected), "{line}");
    }
}
