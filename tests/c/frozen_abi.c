/* A client built against a frozen copy of the 0.2.0 header (the first
 * layout of the versioned structs), run against the library of this
 * checkout: every options, report and result struct is passed with the
 * struct_size of that layout. When the library grows, this file and its
 * header stay as they are. */
#include "adjunct_0.2.0.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define CHECK(call)                                                                  \
    do {                                                                             \
        adj_status s_ = (call);                                                      \
        if (s_ != ADJ_OK) {                                                          \
            fprintf(stderr, "%s failed: %s: %s\n", #call, adj_status_string(s_),     \
                    adj_last_error_message());                                       \
            return 1;                                                                \
        }                                                                            \
    } while (0)

static int product_2x(void *ctx, const double *v, size_t v_len, double *y, size_t y_len) {
    (void)ctx;
    (void)y_len;
    for (size_t i = 0; i < v_len; i++) y[i] = 2.0 * v[i];
    return 0;
}

static int product_copy(void *ctx, const double *v, size_t v_len, double *y, size_t y_len) {
    (void)ctx;
    (void)y_len;
    memcpy(y, v, v_len * sizeof *v);
    return 0;
}

int main(void) {
    /* CG on a 2D smoke box. */
    enum { NX = 8, NY = 6, NCELLS = NX * NY };
    uint8_t cells[NCELLS];
    for (size_t c = 0; c < NCELLS; c++) cells[c] = c / NX == NY - 1 ? ADJ_CELL_AIR : ADJ_CELL_FLUID;
    adj_operator *op = NULL;
    CHECK(adj_operator_new_grid_poisson(NX, NY, 1, cells, NULL, NULL, &op));
    size_t n = 0;
    CHECK(adj_operator_dim(op, &n));
    double b[NCELLS], x[NCELLS];
    for (size_t i = 0; i < n; i++) b[i] = 1.0 + (double)(i % 3);
    adj_cg_options options;
    CHECK(adj_cg_options_init(&options, sizeof options));
    options.rtol = 1e-10;
    adj_solve_report report;
    CHECK(adj_solve_report_init(&report, sizeof report));
    CHECK(adj_cg_solve(op, NULL, b, x, n, &options, &report));
    if (report.struct_size != sizeof report || report.relative_residual > 1e-10) {
        fprintf(stderr, "CG report: size %zu, relative residual %g\n", report.struct_size, report.relative_residual);
        return 1;
    }
    printf("cg: %zu iterations, relative residual %.2e\n", report.iterations, report.relative_residual);

    /* A struct_size that is not a layout of the library is rejected. */
    options.struct_size = 3;
    adj_status status = adj_cg_solve(op, NULL, b, x, n, &options, &report);
    if (status != ADJ_ERR_INVALID_ARGUMENT || !strstr(adj_last_error_message(), "struct_size")) {
        fprintf(stderr, "struct_size 3 gave %s: %s\n", adj_status_string(status), adj_last_error_message());
        return 1;
    }
    printf("struct_size 3: %s\n", adj_status_string(status));

    /* The conjugate-direction method with its two reports. */
    adj_precond *jacobi = NULL;
    CHECK(adj_precond_new(op, ADJ_PRECOND_JACOBI, &jacobi));
    adj_cdm_options cdm_options;
    CHECK(adj_cdm_options_init(&cdm_options, sizeof cdm_options));
    adj_cdm_report cdm_report;
    CHECK(adj_cdm_report_init(&cdm_report, sizeof cdm_report));
    CHECK(adj_solve_report_init(&report, sizeof report));
    CHECK(adj_cdm_solve(op, NULL, jacobi, NULL, NULL, b, x, n, &cdm_options, &report, &cdm_report));
    printf("cdm: %zu iterations, %zu fallback steps\n", report.iterations, cdm_report.fallback_steps);

    /* Entropic OT. */
    double a[2] = {0.5, 0.5}, bm[3] = {0.25, 0.25, 0.5}, cost[6] = {0, 1, 0.5, 1, 0, 0.25};
    double f[2], g[3];
    adj_ot_options ot_options;
    CHECK(adj_ot_options_init(&ot_options, sizeof ot_options));
    ot_options.eps = 0.1;
    adj_ot_result ot_result;
    CHECK(adj_ot_result_init(&ot_result, sizeof ot_result));
    CHECK(adj_ot_solve(a, 2, bm, 3, cost, &ot_options, f, g, NULL, &ot_result));
    if (!(ot_result.marginal_error <= ot_options.tol)) return 1;
    printf("ot: marginal error %.2e\n", ot_result.marginal_error);

    /* An implicit VJP: A = 2I, B = I, so (∂x/∂θ)ᵀ v̄ = −v̄/2. */
    adj_root_problem problem;
    CHECK(adj_root_problem_init(&problem, sizeof problem));
    problem.n = 3;
    problem.p = 3;
    problem.kind = ADJ_JACOBIAN_SYMMETRIC;
    problem.a = product_2x;
    problem.b = product_copy;
    problem.b_t = product_copy;
    adj_implicit_options implicit_options;
    CHECK(adj_implicit_options_init(&implicit_options, sizeof implicit_options));
    implicit_options.solver = ADJ_SOLVER_CG;
    double cotangent[3] = {1, 2, 3}, out[3];
    CHECK(adj_implicit_vjp(&problem, cotangent, 3, &implicit_options, out, 3, NULL));
    for (int i = 0; i < 3; i++)
        if (fabs(out[i] + cotangent[i] / 2) > 1e-9) return 1;
    printf("vjp: %g %g %g\n", out[0], out[1], out[2]);

    adj_precond_free(jacobi);
    adj_operator_free(op);
    printf("frozen ABI: all checks passed\n");
    return 0;
}
