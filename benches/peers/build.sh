#!/usr/bin/env bash
# Builds the native peer programs of examples/bench_peers.rs into OUT (default
# target/bench_peers/bin). Needs: g++ with OpenMP, libeigen3-dev, libhypre-dev
# and an MPI C++ compiler (Debian: apt-get install libeigen3-dev libhypre-dev
# libopenmpi-dev openmpi-bin).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../../target/bench_peers/bin}"
mkdir -p "$out"
g++ -O3 -march=native -fopenmp -DNDEBUG -I/usr/include/eigen3 "$here/eigen_cg.cpp" -o "$out/eigen_cg"
mpicxx -O3 -march=native -DNDEBUG -I/usr/include/hypre "$here/hypre_pcg.cpp" -lHYPRE -o "$out/hypre_pcg"
echo "built $out/eigen_cg $out/hypre_pcg"
