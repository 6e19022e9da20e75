#!/usr/bin/env python3
"""OTT-JAX on the entropic OT problem written by examples/bench_implicit.rs.

Usage: python3 benches/peers/ot_jax_bench.py DIR N EPS TOL REPEATS
(examples/bench_implicit.rs calls it in the same run). Reads the row-major
N x N cost DIR/cost.f64 (costs in [0, 1]) and matrix DIR/g.f64, uniform
marginals, and times (median of REPEATS runs, jit-compiled, compile time
excluded, float64, CPU) one forward Sinkhorn (log domain, threshold TOL on
the l1 marginal error, OTT's default otherwise) plus the gradients wrt C of
reg_ot_cost and of <G, P>, both from that one forward solve through
jax.jacrev, with OTT's default implicit differentiation (lineax CG at
rtol = atol = 1e-6). Then once more with the implicit solve tightened to
rtol 1e-10, atol 1e-12 (also timed). Writes the gradients of the tight run
to DIR/ott_grad_reg.f64 and DIR/ott_grad_dot.f64 (little-endian f64,
row-major) for comparison, and of the default run to DIR/ott_default_*.f64.
"""
import os
import statistics
import sys
import time

try:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from ott.geometry import geometry
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import implicit_differentiation, sinkhorn
except ImportError as e:
    print(f"  OTT-JAX comparison skipped: {e} (pip install jax ott-jax)")
    sys.exit(1)


def main():
    folder, n, eps, tol, repeats = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    jax.config.update("jax_enable_x64", True)
    cost = jnp.asarray(np.fromfile(os.path.join(folder, "cost.f64"), dtype="<f8").reshape(n, n))
    G = jnp.asarray(np.fromfile(os.path.join(folder, "g.f64"), dtype="<f8").reshape(n, n))
    a = jnp.full(n, 1.0 / n)
    b = jnp.full(n, 1.0 / n)
    def timed_gradients(solver):
        def outputs(c):
            geom = geometry.Geometry(cost_matrix=c, epsilon=eps)
            out = solver(linear_problem.LinearProblem(geom, a=a, b=b))
            return out.reg_ot_cost, jnp.sum(G * out.matrix)

        both = jax.jit(jax.jacrev(outputs))
        jax.block_until_ready(both(cost))  # compile
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            grads = jax.block_until_ready(both(cost))
            times.append(time.perf_counter() - t)
        return statistics.median(times), grads

    default = sinkhorn.Sinkhorn(threshold=tol, max_iterations=200_000)
    tight = sinkhorn.Sinkhorn(threshold=tol, max_iterations=200_000, implicit_diff=implicit_differentiation.ImplicitDiff(
        solver_kwargs={"rtol": 1e-10, "atol": 1e-12}))
    out = jax.block_until_ready(jax.jit(lambda c: default(linear_problem.LinearProblem(
        geometry.Geometry(cost_matrix=c, epsilon=eps), a=a, b=b)))(cost))
    P = np.asarray(out.matrix)
    marginal = np.abs(P.sum(1) - 1.0 / n).sum() + np.abs(P.sum(0) - 1.0 / n).sum()
    seconds, grads = timed_gradients(default)
    tight_seconds, tight_grads = timed_gradients(tight)
    for name, g in (("ott_default_grad_reg", grads[0]), ("ott_default_grad_dot", grads[1]),
                    ("ott_grad_reg", tight_grads[0]), ("ott_grad_dot", tight_grads[1])):
        np.asarray(g, dtype="<f8").tofile(os.path.join(folder, name + ".f64"))
    print(f"  OTT-JAX {__import__('ott').__version__} (jax {jax.__version__}, {jax.devices()[0].platform}): "
          f"{int(out.n_iters)} Sinkhorn iterations, l1 marginal error {marginal:.1e}")
    print(f"  OTT-JAX forward + both gradients {1e3 * seconds:9.1f} ms (default implicit diff), "
          f"{1e3 * tight_seconds:.1f} ms (implicit solve at rtol 1e-10)")
    print(f"ott_forward_and_gradients_seconds {seconds}")


if __name__ == "__main__":
    main()
