//! Builds the C example against the static library with strict warnings and
//! runs it; also checks that the header compiles as C++.

use std::process::Command;

mod common;
use common::{require_tool, root, run, static_library, tempdir, NATIVE_LIBS};

/// Compiles `examples/c/{name}.c` with strict C11 warnings against the
/// static library, runs it with `args`, and returns its output; `None`
/// (after printing why) when there is no C compiler.
fn build_and_run_c_example(name: &str, args: &[&str]) -> Option<String> {
    build_and_run_c(&format!("examples/c/{name}.c"), name, "include", args)
}

/// Compiles the C program `source` (relative to the repository root) with
/// the headers of `include` against the static library, and runs it.
fn build_and_run_c(source: &str, name: &str, include: &str, args: &[&str]) -> Option<String> {
    if !require_tool("cc", ".ci/run installs gcc") {
        return None;
    }
    let exe = tempdir(&format!("c_{name}")).join(name);
    let mut cc = Command::new("cc");
    cc.args([
        "-std=c11",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pedantic",
        "-O2",
    ])
    .arg("-I")
    .arg(root().join(include))
    .arg(root().join(source))
    .arg(static_library())
    .arg("-lm")
    .args(NATIVE_LIBS)
    .arg("-o")
    .arg(&exe);
    run(&mut cc);
    let output = run(Command::new(&exe).args(args));
    println!("{output}");
    Some(output)
}

#[test]
fn c_poisson_example_builds_and_runs() {
    if let Some(output) = build_and_run_c_example("poisson", &["24"]) {
        assert!(output.contains("all checks passed"), "{output}");
        assert!(
            output.contains("status -1: argument `b` is NULL"),
            "{output}"
        );
    }
}

/// A client compiled against the frozen 0.2.0 header (tests/c) runs
/// against this library: the versioned structs keep old callers working.
#[test]
fn c_client_of_the_frozen_abi_runs() {
    if let Some(output) = build_and_run_c("tests/c/frozen_abi.c", "frozen_abi", "tests/c", &[]) {
        assert!(output.contains("frozen ABI: all checks passed"), "{output}");
        assert!(
            output.contains("struct_size 3: ADJ_ERR_INVALID_ARGUMENT"),
            "{output}"
        );
    }
}

/// The persistent pressure solver's frame loop (examples/c/frames.c).
#[test]
fn c_frames_example_builds_and_runs() {
    if let Some(output) = build_and_run_c_example("frames", &["20", "12"]) {
        assert!(output.contains("12 frames"), "{output}");
        assert!(output.contains("all checks passed"), "{output}");
    }
}

#[test]
fn c_transport_example_builds_and_runs() {
    if let Some(output) = build_and_run_c_example("transport", &[]) {
        assert!(output.contains("all checks passed"), "{output}");
    }
}

/// Compiles a C++ program against the header-only wrapper with strict
/// warnings (plus `extra` flags), runs it, and returns its output.
fn build_and_run_cpp(source: &str, label: &str, extra: &[&str]) -> Option<String> {
    if !require_tool("g++", ".ci/run installs g++") {
        return None;
    }
    let exe = tempdir(&format!("cpp_{label}")).join(label);
    let mut gxx = Command::new("g++");
    gxx.args([
        "-std=c++17",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pedantic",
        "-O1",
        "-g",
    ])
    .args(extra)
    .arg("-I")
    .arg(root().join("include"))
    .arg("-I")
    .arg(root().join("bindings/cpp"))
    .arg(root().join(source))
    .arg(static_library())
    .args(NATIVE_LIBS)
    .arg("-o")
    .arg(&exe);
    run(&mut gxx);
    let output = run(Command::new(&exe).env("ASAN_OPTIONS", "detect_leaks=1"));
    println!("{output}");
    Some(output)
}

#[test]
fn cpp_wrapper_tests_pass() {
    if let Some(output) = build_and_run_cpp("tests/cpp/wrapper_test.cpp", "wrapper", &[]) {
        assert!(output.contains("all checks passed"), "{output}");
    }
}

#[test]
fn cpp_wrapper_tests_pass_under_sanitizers() {
    if let Some(output) = build_and_run_cpp(
        "tests/cpp/wrapper_test.cpp",
        "wrapper_asan",
        &["-fsanitize=address,undefined", "-fno-sanitize-recover=all"],
    ) {
        assert!(output.contains("all checks passed"), "{output}");
    }
}

#[test]
fn cpp_wrapper_tests_pass_as_cpp20() {
    if let Some(output) = build_and_run_cpp(
        "tests/cpp/wrapper_test.cpp",
        "wrapper_cpp20",
        &["-std=c++20"],
    ) {
        assert!(output.contains("all checks passed"), "{output}");
    }
}

#[test]
fn cpp_pressure_example_runs() {
    if let Some(output) = build_and_run_cpp("examples/cpp/pressure.cpp", "pressure", &[]) {
        assert!(output.contains("relative residual"), "{output}");
    }
}

#[test]
fn cpp_transport_example_runs() {
    if let Some(output) = build_and_run_cpp("examples/cpp/transport.cpp", "transport", &[]) {
        assert!(output.contains("relative error"), "{output}");
    }
}

#[test]
fn header_compiles_as_cpp() {
    if !require_tool("g++", ".ci/run installs g++") {
        return;
    }
    let dir = tempdir("cpp_header");
    let src = dir.join("header.cpp");
    std::fs::write(
        &src,
        "#include \"adjunct.h\"\nint main() { return adj_version() == nullptr; }\n",
    )
    .unwrap();
    let mut gxx = Command::new("g++");
    gxx.args(["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg("-I")
        .arg(root().join("include"))
        .arg(&src)
        .arg(static_library())
        .args(NATIVE_LIBS)
        .arg("-o")
        .arg(dir.join("header"));
    run(&mut gxx);
    run(&mut Command::new(dir.join("header")));
}
