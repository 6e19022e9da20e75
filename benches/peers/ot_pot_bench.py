#!/usr/bin/env python3
"""POT's log-domain Sinkhorn on the problems written by examples/bench_ot.rs.

Usage: python3 benches/peers/ot_pot_bench.py DIR EPS TOL SECONDS
(examples/bench_ot.rs calls it in the same run). Runs
ot.sinkhorn(a, b, C, EPS, method="sinkhorn_log", stopThr=TOL) with an
iteration cap calibrated to SECONDS, then reports the time and the l1
marginal error ||P1 - a||_1 + ||P^T 1 - b||_1 it reached (the measure adjunct
stops on; POT itself stops on the 2-norm of one marginal's error, checked
every 10 iterations).
"""
import json
import os
import sys
import time

import numpy as np

try:
    import ot
except ImportError:
    print("POT comparison skipped: python package `pot` is not installed (pip install pot)")
    sys.exit(0)


def main():
    folder, eps, tol, budget = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    with open(os.path.join(folder, "manifest.json")) as fh:
        problems = json.load(fh)
    print(f"\nPOT {ot.__version__} ot.sinkhorn(method='sinkhorn_log'), eps = {eps:g}, stopThr = {tol:g}")
    print("| problem | POT iterations | POT s | l1 marginal error reached |")
    print("|---|---:|---:|---:|")
    for p in problems:
        n, m = p["n"], p["m"]
        load = lambda ext, shape: np.fromfile(os.path.join(folder, p["stem"] + ext), dtype="<f8").reshape(shape)
        a, b, C = load(".a", (n,)), load(".b", (m,)), load(".C", (n, m))
        t = time.perf_counter()
        ot.sinkhorn(a, b, C, eps, method="sinkhorn_log", numItermax=10, stopThr=0.0)
        per_iteration = (time.perf_counter() - t) / 10
        cap = max(10, int(budget / per_iteration))
        t = time.perf_counter()
        P, log = ot.sinkhorn(a, b, C, eps, method="sinkhorn_log", numItermax=cap, stopThr=tol, log=True)
        seconds = time.perf_counter() - t
        err = np.abs(P.sum(1) - a).sum() + np.abs(P.sum(0) - b).sum()
        its = log.get("niter", cap)
        status = "" if its < cap else f" (hit the cap of {cap})"
        print(f"| {p['name']} | {its}{status} | {seconds:.2f} | {err:.2e} |")


if __name__ == "__main__":
    main()
