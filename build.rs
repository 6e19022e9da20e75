//! Generates `include/adjunct.h` with cbindgen, rewriting it only when its
//! content changed (so that builds do not touch a committed, current header).

use std::path::Path;

fn main() {
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let version = std::env::var("CARGO_PKG_VERSION").expect("cargo sets CARGO_PKG_VERSION");
    println!("cargo:rerun-if-changed=src");
    // The shared library's SONAME carries the major version (libadjunct.so.MAJOR).
    let major =
        std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets CARGO_PKG_VERSION_MAJOR");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libadjunct.so.{major}");
    }
    println!("cargo:rerun-if-changed=cbindgen.toml");
    match generate_header(Path::new(&crate_dir), &version) {
        Ok(header) => {
            let path = Path::new(&crate_dir).join("include").join("adjunct.h");
            if std::fs::read_to_string(&path).ok().as_deref() != Some(header.as_str()) {
                std::fs::create_dir_all(path.parent().expect("include/ has a parent"))
                    .and_then(|()| std::fs::write(&path, header))
                    .unwrap_or_else(|e| {
                        println!("cargo:warning=cannot write {}: {e}", path.display())
                    });
            }
        }
        // The compiler reports the source error itself; keep the old header.
        Err(e) => println!("cargo:warning=cbindgen could not generate include/adjunct.h: {e}"),
    }
}

/// The C header for the crate at `crate_dir`, with `ADJ_VERSION_*` macros
/// for `version` ("MAJOR.MINOR.PATCH"). Shared with the header test.
pub fn generate_header(crate_dir: &Path, version: &str) -> Result<String, String> {
    let mut config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).map_err(|e| e.to_string())?;
    let parts: Vec<&str> = version.split(['.', '-', '+']).collect();
    config.after_includes = Some(format!(
        "\n#define ADJ_VERSION_MAJOR {}\n#define ADJ_VERSION_MINOR {}\n#define ADJ_VERSION_PATCH {}\n#define ADJ_VERSION_STRING \"{}.{}.{}\"",
        parts[0], parts[1], parts[2], parts[0], parts[1], parts[2]
    ));
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).map_err(|e| e.to_string())
}
