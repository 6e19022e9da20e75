//! The install layout (bindings/install.sh): files, SONAME, and the C
//! example built against the installed prefix through pkg-config (make) and
//! CMake `find_package(adjunct)`, statically and dynamically.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{require_tool, root, run, NATIVE_LIBS};

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

    client_shared_libraries(&prefix);
}

/// A client's own shared library built on the installed static library
/// exports only its own functions and adj_*; built on the installed shared
/// library it needs libadjunct.so.MAJOR. Both run.
fn client_shared_libraries(prefix: &Path) {
    let dir = fresh_dir("install_client");
    let lib = prefix.join("lib");
    let include = prefix.join("include");
    let client = root().join("tests/c/client_library.c");
    let static_client = dir.join("static/libclient.so");
    let shared_client = dir.join("shared/libclient.so");
    for d in ["static", "shared"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    run(Command::new("cc")
        .args(["-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(&include)
        .arg(&client)
        .arg("-o")
        .arg(&static_client)
        .arg(lib.join("libadjunct.a"))
        .args(NATIVE_LIBS));
    run(Command::new("cc")
        .args(["-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(&include)
        .arg(&client)
        .arg("-o")
        .arg(&shared_client)
        .arg("-L")
        .arg(&lib)
        .arg("-ladjunct")
        .arg(format!("-Wl,-rpath,{}", lib.display())));
    let exported = run(Command::new("readelf")
        .args(["--dyn-syms", "-W"])
        .arg(&static_client));
    let foreign: Vec<&str> = exported
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() >= 8 && (f[4] == "GLOBAL" || f[4] == "WEAK") && f[6] != "UND").then(|| f[7])
        })
        .filter(|name| !name.starts_with("adj_") && *name != "client_solve")
        .collect();
    assert!(
        foreign.is_empty(),
        "the client library exports {} other symbols: {:?}",
        foreign.len(),
        &foreign[..foreign.len().min(10)]
    );
    assert!(!needed_libraries(&static_client).contains("libadjunct"));
    assert!(needed_libraries(&shared_client).contains(&format!(
        "libadjunct.so.{}",
        env!("CARGO_PKG_VERSION_MAJOR")
    )));
    for (client, sub) in [(&static_client, "static"), (&shared_client, "shared")] {
        let exe = dir.join(sub).join("client_main");
        run(Command::new("cc")
            .arg(root().join("tests/c/client_main.c"))
            .arg("-L")
            .arg(client.parent().unwrap())
            .arg("-lclient")
            .arg(format!("-Wl,-rpath,{}", client.parent().unwrap().display()))
            .arg("-o")
            .arg(&exe));
        let output = run(&mut Command::new(&exe));
        assert!(output.contains("client_solve: 0"), "{sub}: {output}");
    }
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
