#!/usr/bin/env python3
"""SciPy's scipy.sparse.linalg.cg (no preconditioner and Jacobi) on a problem
written by examples/bench_peers.rs. Prints one line per solver:
    RESULT <name> <setup_s> <solve_s> <iterations> <true_relative_residual>
Usage: python3 benches/peers/scipy_cg.py DIR TOL
"""
import os
import sys
import time

import numpy as np
import scipy
import scipy.sparse as sp
import scipy.sparse.linalg as spla


def main():
    folder, tol = sys.argv[1], float(sys.argv[2])
    with open(os.path.join(folder, "meta.txt")) as fh:
        n, nnz = (int(v) for v in fh.read().split())
    read = lambda name, dtype, count: np.fromfile(os.path.join(folder, name), dtype=dtype, count=count)  # noqa: E731
    a = sp.csr_matrix((read("values.f64", "<f8", nnz), read("col_idx.i64", "<i8", nnz),
                       read("row_ptr.i64", "<i8", n + 1)), shape=(n, n))
    b = read("rhs.f64", "<f8", n)
    for name, make in (("scipy_cg", lambda: None),
                       ("scipy_cg_jacobi", lambda: sp.diags(1.0 / a.diagonal()).tocsr())):
        t0 = time.perf_counter()
        m = make()
        setup = time.perf_counter() - t0
        iterations = [0]

        def count(_):
            iterations[0] += 1

        t1 = time.perf_counter()
        x, info = spla.cg(a, b, rtol=tol, atol=0.0, maxiter=100000, M=m, callback=count)
        solve = time.perf_counter() - t1
        residual = np.linalg.norm(b - a @ x) / np.linalg.norm(b)
        print(f"RESULT {name} {setup:.6f} {solve:.6f} {iterations[0]} {residual:.3e}", flush=True)
    print(f"scipy {scipy.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
