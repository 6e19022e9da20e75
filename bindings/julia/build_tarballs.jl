# BinaryBuilder recipe for adjunct_jll (the shared library and its headers). Submitting it to Yggdrasil (as
# A/adjunct/build_tarballs.jl) publishes the JLL; locally,
#   julia --project=@BinaryBuilder bindings/julia/build_tarballs.jl --verbose x86_64-linux-gnu
# builds a tarball from this checkout.
#
# For Yggdrasil, replace the DirectorySource by the release's
#   GitSource("https://<the adjunct repository>.git", "<40-hex commit of the release>")
# (Yggdrasil builds only from fixed, hashed sources), and keep the rest.
using BinaryBuilder, Pkg

name = "adjunct"
version = v"0.3.0"  # the crate's version (Cargo.toml)

sources = [
    DirectorySource(joinpath(@__DIR__, "..", ".."); target = "adjunct"),
]

# The Rust toolchain of BinaryBuilder sets CARGO_BUILD_TARGET to ${rust_target},
# so cargo's output lands in target/${rust_target}/release. The JLL carries the
# shared library and the C and C++ headers (bindings/install.sh, which also
# writes pkg-config and CMake files, relies on GNU ld -r for the static
# library and is for native Linux installs).
script = raw"""
cd ${WORKSPACE}/srcdir/adjunct
cargo build --release --lib
install -Dvm 755 "target/${rust_target}/release/libadjunct.${dlext}" "${libdir}/libadjunct.${dlext}"
install -Dvm 644 include/adjunct.h "${includedir}/adjunct.h"
install -Dvm 644 bindings/cpp/adjunct.hpp "${includedir}/adjunct.hpp"
install_license LICENSE-MIT LICENSE-APACHE
"""

# Platforms the Rust toolchain of BinaryBuilder supports.
platforms = supported_platforms()
filter!(p -> !(Sys.iswindows(p) && arch(p) == "i686"), platforms)
filter!(p -> arch(p) != "riscv64", platforms)
filter!(p -> !Sys.isfreebsd(p) || arch(p) == "x86_64", platforms)

products = [
    LibraryProduct("libadjunct", :libadjunct),
    FileProduct("include/adjunct.h", :adjunct_h),
]

dependencies = Dependency[]

build_tarballs(ARGS, name, version, sources, script, platforms, products, dependencies;
               compilers = [:c, :rust], julia_compat = "1.6", preferred_gcc_version = v"5")
