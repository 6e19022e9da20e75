//! The install layout (bindings/install.sh): files, SONAME, and the C
//! example built against the installed prefix through pkg-config (make) and
//! CMake `find_package(adjunct)`, statically and dynamically.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{require_tool, root, run};

/// The directory holding the libraries built for this test run (cargo
/// builds the library's crate types into the profile's `deps/`).
fn built_libraries() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent().expect("deps directory").to_path_buf()
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn needed_libraries(binary: &Path) -> String {
    run(Command::new("readelf").arg("-d").arg(binary))
}

#[test]
fn header_version_matches_cargo_toml() {
    let header = std::fs::read_to_string(root().join("include/adjunct.h")).unwrap();
    for (macro_name, value) in [
        ("ADJ_VERSION_MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("ADJ_VERSION_MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("ADJ_VERSION_PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ] {
        assert!(
            header.contains(&format!("#define {macro_name} {value}\n")),
            "{macro_name} != {value}"
        );
    }
}

#[test]
fn install_then_build_with_pkg_config_and_cmake() {
    for tool in ["cmake", "pkg-config", "make", "readelf"] {
        if !require_tool(
            tool,
            ".ci/run installs cmake, pkg-config, make and binutils",
        ) {
            return;
        }
    }
    let prefix = fresh_dir("install_prefix");
    run(Command::new("bash")
        .arg(root().join("bindings/install.sh"))
        .arg(&prefix)
        .arg(built_libraries()));
    let version = env!("CARGO_PKG_VERSION");
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    for file in [
        "lib/libadjunct.a".to_string(),
        format!("lib/libadjunct.so.{version}"),
        format!("lib/libadjunct.so.{major}"),
        "lib/libadjunct.so".to_string(),
        "include/adjunct.h".to_string(),
        "include/adjunct.hpp".to_string(),
        "lib/pkgconfig/adjunct.pc".to_string(),
        "lib/cmake/adjunct/adjunctConfig.cmake".to_string(),
        "lib/cmake/adjunct/adjunctConfigVersion.cmake".to_string(),
    ] {
        assert!(prefix.join(&file).exists(), "{file} not installed");
    }
    let soname = needed_libraries(&prefix.join(format!("lib/libadjunct.so.{version}")));
    assert!(
        soname.contains(&format!("Library soname: [libadjunct.so.{major}]")),
        "{soname}"
    );

    // pkg-config: version, private libraries.
    let pc_path = prefix.join("lib/pkgconfig");
    let pkg = |args: &[&str]| {
        run(Command::new("pkg-config")
            .env("PKG_CONFIG_PATH", &pc_path)
            .args(args)
            .arg("adjunct"))
    };
    assert_eq!(pkg(&["--modversion"]).trim(), version);
    assert!(pkg(&["--libs", "--static"]).contains("-lpthread"));

    // make + pkg-config, shared and static.
    let out = fresh_dir("install_make");
    run(Command::new("make")
        .arg("-C")
        .arg(root().join("examples/c"))
        .arg(format!("PREFIX={}", prefix.display()))
        .arg(format!("OUT={}", out.display())));
    check_example(&out.join("poisson_shared"), true);
    check_example(&out.join("poisson_static"), false);

    // CMake find_package, shared and static.
    let build = fresh_dir("install_cmake");
    run(Command::new("cmake")
        .arg("-S")
        .arg(root().join("examples/c"))
        .arg("-B")
        .arg(&build)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display())));
    run(Command::new("cmake").arg("--build").arg(&build));
    check_example(&build.join("poisson_shared"), true);
    check_example(&build.join("poisson_static"), false);
}

/// Runs the example and checks whether it links the shared library.
fn check_example(exe: &Path, shared: bool) {
    let output = run(Command::new(exe).arg("16"));
    assert!(
        output.contains("all checks passed"),
        "{}: {output}",
        exe.display()
    );
    let dynamic = needed_libraries(exe);
    assert_eq!(
        dynamic.contains("libadjunct.so"),
        shared,
        "{}: {dynamic}",
        exe.display()
    );
}
