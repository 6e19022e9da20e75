/*
 * Entropic optimal transport from C: two point clouds, squared Euclidean
 * cost scaled to [0, 1], solved with Sinkhorn-Newton-Sparse at eps = 1e-3
 * and with plain log-domain Sinkhorn at eps = 0.05; the plan's marginals
 * are checked against a and b.
 *
 * Build: cc -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude examples/c/transport.c \
 *        target/release/libadjunct.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o transport
 */
#include "adjunct.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define N 300
#define M 200

static int check(adj_status s, const char *what) {
    if (s != ADJ_OK) fprintf(stderr, "%s failed (%d): %s\n", what, (int)s, adj_last_error_message());
    return s == ADJ_OK;
}

static int solve(const double *a, const double *b, const double *cost, uint32_t method, double eps) {
    static double f[N], g[M], plan[N * M];
    adj_ot_options options;
    adj_ot_result r;
    if (!check(adj_ot_options_init(&options, sizeof options), "adj_ot_options_init") ||
        !check(adj_ot_result_init(&r, sizeof r), "adj_ot_result_init"))
        return 0;
    options.method = method;
    options.eps = eps;
    if (!check(adj_ot_solve(a, N, b, M, cost, &options, f, g, plan, &r), "adj_ot_solve")) return 0;
    double err = 0.0;
    for (size_t i = 0; i < N; i++) {
        double s = 0.0;
        for (size_t j = 0; j < M; j++) s += plan[i * M + j];
        err += fabs(s - a[i]);
    }
    for (size_t j = 0; j < M; j++) {
        double s = 0.0;
        for (size_t i = 0; i < N; i++) s += plan[i * M + j];
        err += fabs(s - b[j]);
    }
    int ok = err <= 2e-9;
    printf("%-8s eps %.0e: cost %.6f, %zu Sinkhorn + %zu Newton iterations, marginal error %.1e (recomputed %.1e) %s\n",
           method == ADJ_OT_SINKHORN ? "sinkhorn" : "sns", eps, r.transport_cost, r.sinkhorn_iterations,
           r.newton_iterations, r.marginal_error, err, ok ? "ok" : "WRONG");
    return ok;
}

int main(void) {
    static double x[2 * N], y[2 * M], cost[N * M], a[N], b[M];
    unsigned s = 12345u;
    for (size_t k = 0; k < 2 * N; k++) x[k] = (double)((s = s * 1103515245u + 12345u) >> 8) / 16777216.0;
    for (size_t k = 0; k < 2 * M; k++) y[k] = 0.3 + (double)((s = s * 1103515245u + 12345u) >> 8) / 16777216.0;
    for (size_t i = 0; i < N; i++) a[i] = 1.0 / N;
    for (size_t j = 0; j < M; j++) b[j] = 1.0 / M;
    if (!check(adj_ot_cost_sqeuclidean(x, N, y, M, 2, cost), "cost")) return 1;
    double max = 0.0;
    for (size_t k = 0; k < N * M; k++) max = cost[k] > max ? cost[k] : max;
    for (size_t k = 0; k < N * M; k++) cost[k] /= max;
    int ok = solve(a, b, cost, ADJ_OT_SINKHORN_NEWTON_SPARSE, 1e-3) && solve(a, b, cost, ADJ_OT_SINKHORN, 0.05);
    printf("%s\n", ok ? "all checks passed" : "FAILED");
    return ok ? 0 : 1;
}
