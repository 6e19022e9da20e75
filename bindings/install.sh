#!/usr/bin/env bash
# Installs the C/C++ development files of adjunct into PREFIX:
#   PREFIX/lib/libadjunct.a
#   PREFIX/lib/libadjunct.so.X.Y.Z, libadjunct.so.X (SONAME), libadjunct.so
#   PREFIX/include/adjunct.h, PREFIX/include/adjunct.hpp
#   PREFIX/lib/pkgconfig/adjunct.pc
#   PREFIX/lib/cmake/adjunct/adjunctConfig.cmake, adjunctConfigVersion.cmake
#
# Usage: cargo build --release && bindings/install.sh PREFIX [LIB_DIR]
# LIB_DIR holds the built libadjunct.a / libadjunct.so (default target/release).
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 PREFIX [LIB_DIR]" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
prefix=$(mkdir -p "$1" && cd "$1" && pwd)
libdir_src=${2:-$root/target/release}

version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)
major=${version%%.*}
# System libraries Rust's standard library needs when linking the static
# library (cargo rustc --release --lib --crate-type staticlib -- --print native-static-libs).
native_libs="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"

for f in libadjunct.a libadjunct.so; do
  [ -f "$libdir_src/$f" ] || { echo "missing $libdir_src/$f: run cargo build --release first" >&2; exit 1; }
done

install -d "$prefix/lib/pkgconfig" "$prefix/lib/cmake/adjunct" "$prefix/include"

# The static library as one partially linked object whose only global
# symbols are the adj_* functions: Rust's standard library and the
# dependencies (faer, gemm, rayon, ...) become local, so a client that links
# it into its own shared library exports nothing else and cannot clash with
# another copy of them. (GNU ld -r, objcopy, ar; the archive is written
# for the object's own BFD target, so that ar need not load linker plugins.)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ld -r --whole-archive "$libdir_src/libadjunct.a" -o "$work/all.o"
readelf -sW "$work/all.o" | awk '($5 == "GLOBAL" || $5 == "WEAK") && $7 != "UND" && $8 ~ /^adj_/ { print $8 }' \
  | sort -u > "$work/keep.txt"
[ -s "$work/keep.txt" ] || { echo "no adj_* symbols in $libdir_src/libadjunct.a" >&2; exit 1; }
objcopy --keep-global-symbols="$work/keep.txt" "$work/all.o" "$work/adjunct.o"
bfd_target=$(objdump -f "$work/adjunct.o" | sed -n 's/.*file format \(.*\)/\1/p')
rm -f "$prefix/lib/libadjunct.a"
ar --target="$bfd_target" rcs "$prefix/lib/libadjunct.a" "$work/adjunct.o"
chmod 644 "$prefix/lib/libadjunct.a"
install -m 755 "$libdir_src/libadjunct.so" "$prefix/lib/libadjunct.so.$version"
ln -sf "libadjunct.so.$version" "$prefix/lib/libadjunct.so.$major"
ln -sf "libadjunct.so.$major" "$prefix/lib/libadjunct.so"
install -m 644 "$root/include/adjunct.h" "$prefix/include/adjunct.h"
install -m 644 "$root/bindings/cpp/adjunct.hpp" "$prefix/include/adjunct.hpp"

cat > "$prefix/lib/pkgconfig/adjunct.pc" <<PC
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: adjunct
Description: Sparse SPD solvers, entropic optimal transport and implicit differentiation with a C ABI
Version: $version
Libs: -L\${libdir} -ladjunct
Libs.private: $native_libs
Cflags: -I\${includedir}
PC

cmake_libs=$(echo "$native_libs" | sed 's/-l//g; s/ /;/g')
cat > "$prefix/lib/cmake/adjunct/adjunctConfig.cmake" <<CMAKE
# Imported targets: adjunct::adjunct (shared) and adjunct::adjunct_static.
get_filename_component(_adjunct_prefix "\${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET adjunct::adjunct)
  add_library(adjunct::adjunct SHARED IMPORTED)
  set_target_properties(adjunct::adjunct PROPERTIES
    IMPORTED_LOCATION "\${_adjunct_prefix}/lib/libadjunct.so.$version"
    IMPORTED_SONAME "libadjunct.so.$major"
    INTERFACE_INCLUDE_DIRECTORIES "\${_adjunct_prefix}/include")
endif()
if(NOT TARGET adjunct::adjunct_static)
  add_library(adjunct::adjunct_static STATIC IMPORTED)
  set_target_properties(adjunct::adjunct_static PROPERTIES
    IMPORTED_LOCATION "\${_adjunct_prefix}/lib/libadjunct.a"
    INTERFACE_INCLUDE_DIRECTORIES "\${_adjunct_prefix}/include"
    INTERFACE_LINK_LIBRARIES "$cmake_libs")
endif()
unset(_adjunct_prefix)
CMAKE

cat > "$prefix/lib/cmake/adjunct/adjunctConfigVersion.cmake" <<CMAKE
# Compatible when the major version matches and the installed version is at
# least the one requested: within a SONAME the ABI only grows (README, "ABI
# and versions"); 0.2.0 is its first release, so 0.x requests below 0.2 fail.
set(PACKAGE_VERSION "$version")
if(PACKAGE_FIND_VERSION_MAJOR STREQUAL "$major" AND NOT PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION
   AND NOT PACKAGE_FIND_VERSION VERSION_LESS 0.2)
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
  if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
else()
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
endif()
CMAKE

echo "installed adjunct $version into $prefix"
