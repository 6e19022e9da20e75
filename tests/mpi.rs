//! Distributed solves through the C ABI with MPI.
//!
//! The library's distributed MGPCG (examples/mpi/poisson_mpi.c): 1, 2, 3,
//! 4 and 8 ranks in slab, pencil and block decompositions of odd-sized
//! grids, uneven boxes, take the serial MGPCG's iterations and give its
//! solution to 1e-10 relative, with an independent true residual; bad
//! input and a failing callback on one of 3 ranks give an error on every
//! rank, with no deadlock.
//!
//! CG and conjugate directions with the caller's own matvec
//! (examples/mpi/matrix_free_mpi.c): 1, 2 and 4 ranks take the same number of
//! iterations and give the same solution to 1e-10 relative; one allreduce
//! per CG iteration, two per conjugate-direction iteration; a callback
//! error on one rank is reported on every rank without a deadlock. Needs
//! `mpicc` and `mpirun` (Debian openmpi-bin, libopenmpi-dev; .ci/run
//! installs them).

mod common;

use common::{require_tool, root, run, static_library, tempdir, NATIVE_LIBS};
use std::path::PathBuf;
use std::process::Command;

/// The example `examples/mpi/{name}.c`, built once per test process
/// (tests run in parallel). `None` (the skip reported by
/// [`require_tool`]) without MPI.
#[track_caller]
fn build_example(name: &'static str) -> Option<PathBuf> {
    for tool in ["mpicc", "mpirun"] {
        if !require_tool(tool, ".ci/run installs openmpi-bin and libopenmpi-dev") {
            return None;
        }
    }
    static BUILT: std::sync::Mutex<Vec<(&str, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap();
    if let Some((_, exe)) = built.iter().find(|(n, _)| *n == name) {
        return Some(exe.clone());
    }
    let exe = tempdir("mpi").join(name);
    run(Command::new("mpicc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O2", "-I"])
        .arg(root().join("include"))
        .arg(root().join(format!("examples/mpi/{name}.c")))
        .arg(static_library())
        .args(NATIVE_LIBS)
        .arg("-o")
        .arg(&exe));
    built.push((name, exe.clone()));
    Some(exe)
}

/// The matrix-free example (the caller's own matvec).
#[track_caller]
fn build() -> Option<PathBuf> {
    build_example("matrix_free_mpi")
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

/// The C++ wrapper under MPI, 1, 2 and 4 ranks against the serial solve,
/// and an exception thrown by one rank's callable reported on every rank:
/// `adjunct::cg_distributed` with a lambda operator and allreduce
/// (mpi_wrapper_test.cpp), and `adjunct::DistributedPressureSolver` with
/// lambdas for the allreduce and the halo exchange
/// (mpi_distributed_test.cpp).
#[test]
fn cpp_wrapper_under_mpi() {
    if build().is_none() || !require_tool("mpicxx", ".ci/run installs libopenmpi-dev") {
        return;
    }
    for (program, thrown) in [
        ("mpi_wrapper_test", "rethrown: operator failed"),
        ("mpi_distributed_test", "rethrown: exchange failed"),
    ] {
        let exe = tempdir("mpi").join(program);
        run(Command::new("mpicxx")
            .args(["-std=c++17", "-Wall", "-Wextra", "-Werror", "-O2", "-I"])
            .arg(root().join("include"))
            .arg("-I")
            .arg(root().join("bindings/cpp"))
            .arg(root().join(format!("tests/cpp/{program}.cpp")))
            .arg(static_library())
            .args(NATIVE_LIBS)
            .arg("-o")
            .arg(&exe));
        for ranks in [1, 2, 4] {
            let output = mpirun(ranks, &exe, &[]);
            assert!(
                output.contains("all checks passed"),
                "{program}, {ranks} ranks:\n{output}"
            );
        }
        let output = mpirun(2, &exe, &["--fail"]);
        assert!(output.contains("all checks passed"), "{program}: {output}");
        assert!(output.contains(thrown), "{program}: {output}");
    }
}

/// The number before `key` in `line`.
fn number_before(line: &str, key: &str) -> f64 {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| w.trim_matches(',') == key)
        .unwrap_or_else(|| panic!("{key} in {line}"));
    words[at - 1].parse().expect("a number")
}

/// The number after `key` in `line`.
fn number_after(line: &str, key: &str) -> f64 {
    let at = line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len();
    line[at..]
        .split_whitespace()
        .next()
        .expect("a number")
        .trim_end_matches(',')
        .parse()
        .expect("a number")
}

#[test]
fn distributed_mgpcg_matches_the_serial_solve_for_every_decomposition() {
    let Some(exe) = build_example("poisson_mpi") else {
        return;
    };
    let grids: [&[&str]; 2] = [&["45", "38", "29", "--uneven"], &["64", "64", "64"]];
    let layouts: [(usize, &[&str]); 7] = [
        (1, &[]),
        (2, &["--dims", "1", "1", "2"]),
        (3, &["--dims", "3", "1", "1"]),
        (4, &["--dims", "1", "2", "2"]),
        (4, &["--dims", "2", "2", "1"]),
        (8, &["--dims", "2", "2", "2"]),
        (8, &["--dims", "1", "1", "8"]),
    ];
    for grid in grids {
        for (ranks, layout) in layouts {
            let mut args: Vec<&str> = grid.to_vec();
            args.extend_from_slice(layout);
            args.extend(["--compare", "--threads", "1"]);
            let output = mpirun(ranks, &exe, &args);
            let summary = output
                .lines()
                .find(|l| l.contains("iterations,") && l.contains("ranks"))
                .unwrap_or_else(|| panic!("no summary:\n{output}"));
            let serial = output
                .lines()
                .find(|l| l.starts_with("serial:"))
                .unwrap_or_else(|| panic!("no serial line:\n{output}"));
            let iterations = number_before(summary, "iterations");
            assert_eq!(
                iterations,
                number_before(serial, "iterations"),
                "{ranks} ranks {args:?}: iterations against the serial MGPCG\n{output}"
            );
            let difference = number_after(serial, "relative difference");
            assert!(difference <= 1e-10, "{ranks} ranks {args:?}: {serial}");
            let residual = number_after(summary, "true residual");
            assert!(residual <= 1.01e-8, "{ranks} ranks {args:?}: {summary}");
            let reductions = number_before(summary, "allreduces/iteration");
            assert!(reductions <= 2.5, "{summary}");
        }
    }
}

#[test]
fn distributed_mgpcg_bad_input_and_failures_stop_every_rank() {
    let Some(exe) = build_example("poisson_mpi") else {
        return;
    };
    let cases: [(&[&str], usize, &str); 10] = [
        (&["--bad", "overlap"], 3, "`box`"),
        (&["--bad", "gap"], 3, "`box`"),
        (&["--bad", "outside"], 3, "`hi`"),
        (&["--bad", "dims"], 3, "`dims`"),
        (&["--bad", "flags"], 3, "`cells`"),
        (&["--bad", "offset", "--dims", "2", "2", "1"], 4, "exchange"),
        (&["--fail-exchange", "1", "0"], 3, "exchange"),
        (&["--fail-exchange", "2", "40"], 3, "exchange"),
        (&["--fail-allreduce", "0", "1"], 3, "allreduce"),
        (&["--fail-allreduce", "1", "30"], 3, "allreduce"),
    ];
    for (flags, ranks, needle) in cases {
        let mut args = vec!["45", "38", "29"];
        args.extend_from_slice(flags);
        let output = mpirun(ranks, &exe, &args);
        for rank in 0..ranks {
            let line = output
                .lines()
                .find(|l| l.starts_with(&format!("rank {rank}: ")))
                .unwrap_or_else(|| panic!("{flags:?}: rank {rank} reported nothing:\n{output}"));
            assert!(line.contains("status -"), "{flags:?}: {line}");
        }
        assert!(
            output.contains(needle),
            "{flags:?}: {needle} not named:\n{output}"
        );
    }
}

/// Frames of a moving obstacle: `adj_distributed_pressure_solver_update`
/// and warm-started solves on 4 ranks converge every frame.
#[test]
fn distributed_mgpcg_frames_with_updates_and_warm_starts() {
    let Some(exe) = build_example("poisson_mpi") else {
        return;
    };
    let output = mpirun(
        4,
        &exe,
        &["40", "36", "32", "--frames", "3", "--threads", "1"],
    );
    let frames: Vec<&str> = output.lines().filter(|l| l.starts_with("frame ")).collect();
    assert_eq!(frames.len(), 3, "{output}");
    for line in frames {
        let residual = number_after(line, "relative residual");
        assert!(residual <= 1e-8, "{line}");
    }
}
