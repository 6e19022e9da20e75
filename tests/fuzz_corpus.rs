//! Replays the kept fuzz corpus (`fuzz/corpus/<target>/`, the inputs
//! libFuzzer found interesting, minimised with `cargo fuzz cmin`) through
//! the same target bodies the fuzzers run (`fuzz/targets.rs`), so that
//! every input that once reached new code stays a regression test.

#[path = "../fuzz/targets.rs"]
mod targets;

use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= 10,
        "{}: only {} inputs",
        dir.display(),
        inputs.len()
    );
    for path in &inputs {
        let data = std::fs::read(path).unwrap();
        let outcome = std::panic::catch_unwind(|| body(&data));
        assert!(outcome.is_ok(), "{target}: {} fails", path.display());
    }
    println!("{target}: {} inputs replayed", inputs.len());
}

#[test]
fn model_load_corpus() {
    replay("model_load", targets::model_load);
}

#[test]
fn csr_corpus() {
    replay("csr", targets::csr);
}

#[test]
fn grid_corpus() {
    replay("grid", targets::grid);
}
