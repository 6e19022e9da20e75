//! The committed `include/adjunct.h` must be what cbindgen generates from
//! the current sources. `build.rs` rewrites the working-tree file on every
//! build, so the comparison is with the version git has staged or committed
//! (the index), which is what a clean checkout gets.

#[allow(dead_code)]
#[path = "../build.rs"]
mod build_script;

use std::path::Path;
use std::process::Command;

#[test]
fn committed_header_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let generated =
        build_script::generate_header(root, env!("CARGO_PKG_VERSION")).expect("cbindgen runs");
    let from_git = Command::new("git")
        .current_dir(root)
        .args(["show", ":include/adjunct.h"])
        .output()
        .ok()
        .filter(|o| o.status.success());
    let (committed, source) = match from_git {
        Some(out) => (
            String::from_utf8(out.stdout).expect("UTF-8 header"),
            "the git index",
        ),
        None => {
            eprintln!("note: not a git checkout; comparing with include/adjunct.h on disk");
            (
                std::fs::read_to_string(root.join("include/adjunct.h"))
                    .expect("include/adjunct.h exists"),
                "the working tree",
            )
        }
    };
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b);
        panic!(
            "include/adjunct.h in {source} is stale (first difference at line {}): run `cargo build` and commit include/adjunct.h",
            line.map_or_else(|| "end".to_string(), |l| (l + 1).to_string())
        );
    }
}
