//! Static conformance of the Julia package (Julia cannot run here): every
//! Julia file parses with the tree-sitter Julia grammar, every `ccall`
//! matches include/adjunct.h (symbol, argument count, types), every C
//! function is wrapped, and the struct mirrors match. The checks live in
//! tests/julia/check_bindings.py (needs `pip install tree-sitter tree-sitter-julia`,
//! which .ci/run does).

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn julia_bindings_conform_to_the_c_header() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !common::require(
        "python3 with tree-sitter and tree-sitter-julia",
        Command::new("python3").args(["-c", "import tree_sitter, tree_sitter_julia"]),
        "pip install tree-sitter tree-sitter-julia; .ci/run installs them",
    ) {
        return;
    }
    let out = Command::new("python3")
        .arg(root.join("tests/julia/check_bindings.py"))
        .arg(root)
        .output()
        .expect("run check_bindings.py");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{report}");
    assert!(
        out.status.success(),
        "Julia bindings do not conform:\n{report}"
    );
    assert!(report.contains(": OK"), "{report}");
}
