//! The Rust examples a user runs first (quickstart, transport, implicit,
//! learned) run to completion, and the checks they print hold: each
//! gradient agrees with its central difference, each learned solve reaches
//! its tolerance. `cargo test` builds the examples next to the test
//! binaries (target/<profile>/examples).

use std::path::PathBuf;
use std::process::Command;

/// Runs the built example `name` and returns its standard output.
fn run(name: &str) -> String {
    let deps = std::env::current_exe().expect("test binary path");
    let dir: PathBuf = deps
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>")
        .join("examples");
    let exe = dir.join(name);
    assert!(
        exe.exists(),
        "{} is missing (cargo test builds the examples)",
        exe.display()
    );
    let out = Command::new(&exe).output().expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The numbers printed after each `marker` in `text`.
fn numbers_after(text: &str, marker: &str) -> Vec<f64> {
    text.match_indices(marker)
        .map(|(i, _)| {
            let rest = &text[i + marker.len()..];
            let token: String = rest
                .trim_start()
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != ',')
                .collect();
            token
                .parse()
                .unwrap_or_else(|_| panic!("{token:?} after {marker:?}"))
        })
        .collect()
}

#[test]
fn quickstart_runs() {
    assert!(!run("quickstart").is_empty());
}

/// Asserts that `example` prints one relative difference, below `bound`.
#[track_caller]
fn prints_relative_difference_below(example: &str, bound: f64) {
    let out = run(example);
    let diffs = numbers_after(&out, "relative difference");
    assert_eq!(diffs.len(), 1, "{out}");
    assert!(diffs[0] < bound, "{out}");
}

#[test]
fn transport_gradient_matches_its_finite_difference() {
    prints_relative_difference_below("transport", 1e-3);
}

#[test]
fn implicit_gradient_matches_its_finite_difference() {
    prints_relative_difference_below("implicit", 1e-6);
}

#[test]
fn learned_solves_reach_their_tolerance() {
    let out = run("learned");
    let residuals = numbers_after(&out, "true residual");
    assert_eq!(residuals.len(), 3, "{out}");
    assert!(residuals.iter().all(|&r| r <= 1.01e-8), "{out}");
}
