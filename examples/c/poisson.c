/*
 * Pressure projection from C: a 3D smoke-style grid (box with a spherical
 * obstacle and an air layer on top) solved with CG + IC(0) and Jacobi, then a
 * 2D Laplacian given as CSR arrays with 32-bit indices. Every solution is
 * checked by recomputing its residual through the operator.
 *
 * Build (after `cargo build --release`):
 *   cc -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude examples/c/poisson.c \
 *      target/release/libadjunct.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o poisson
 */
#include "adjunct.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int failures = 0;

#define CHECK(call)                                                              \
    do {                                                                         \
        adj_status status_ = (call);                                             \
        if (status_ != ADJ_OK) {                                                 \
            fprintf(stderr, "%s:%d: %s failed (%d): %s\n", __FILE__, __LINE__,   \
                    #call, (int)status_, adj_last_error_message());              \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

static double seconds(void) {
    struct timespec t;
    timespec_get(&t, TIME_UTC);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double norm2(const double *v, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += v[i] * v[i];
    return sqrt(s);
}

/* ||b - A x|| / ||b|| through adj_operator_apply. */
static double relative_residual(const adj_operator *op, const double *b, const double *x, size_t n) {
    double *ax = malloc(n * sizeof *ax);
    CHECK(adj_operator_apply(op, x, ax, n));
    for (size_t i = 0; i < n; i++) ax[i] = b[i] - ax[i];
    double r = norm2(ax, n) / norm2(b, n);
    free(ax);
    return r;
}

static void solve_and_check(const char *name, const adj_operator *op, const adj_precond *pc,
                            const double *b, size_t n) {
    double *x = calloc(n, sizeof *x);
    /* Every options and report struct carries its size, so that this program
       keeps working with later versions of the library. */
    adj_cg_options options;
    CHECK(adj_cg_options_init(&options, sizeof options));
    options.rtol = 1e-8;
    adj_solve_report report;
    CHECK(adj_solve_report_init(&report, sizeof report));
    double t0 = seconds();
    CHECK(adj_cg_solve(op, pc, b, x, n, &options, &report));
    double t1 = seconds();
    double res = relative_residual(op, b, x, n);
    int ok = report.reason == ADJ_CONVERGED_RTOL && res <= 1e-8 * 1.01 &&
             fabs(res - report.relative_residual) <= 1e-6 * res;
    printf("  %-8s %5zu iterations  %.3f s  true relative residual %.3e  %s\n", name,
           report.iterations, t1 - t0, res, ok ? "ok" : "WRONG");
    failures += !ok;
    free(x);
}

static void grid_problem(size_t nx) {
    size_t ny = nx, nz = nx, ncells = nx * ny * nz;
    double h = 1.0 / (double)nx;
    uint8_t *cells = malloc(ncells);
    for (size_t k = 0; k < nz; k++)
        for (size_t j = 0; j < ny; j++)
            for (size_t i = 0; i < nx; i++) {
                double x = ((double)i + 0.5) * h, y = ((double)j + 0.5) * h, z = ((double)k + 0.5) * h;
                double d2 = (x - 0.5) * (x - 0.5) + (y - 0.5) * (y - 0.5) + (z - 0.4) * (z - 0.4);
                size_t c = i + nx * (j + ny * k);
                cells[c] = k + 2 >= nz ? ADJ_CELL_AIR : d2 < 0.15 * 0.15 ? ADJ_CELL_SOLID : ADJ_CELL_FLUID;
            }
    /* Divergence of a rising plume under the obstacle: w = 1 on the vertical
       faces of a column of cells, 0 on faces touching solids. */
    double *div = calloc(ncells, sizeof *div);
    for (size_t k = 0; k + 1 < nz; k++)
        for (size_t j = 0; j < ny; j++)
            for (size_t i = 0; i < nx; i++) {
                double x = ((double)i + 0.5) * h, y = ((double)j + 0.5) * h, z = ((double)k + 1.0) * h;
                size_t c = i + nx * (j + ny * k), up = c + nx * ny;
                int in_plume = (x - 0.5) * (x - 0.5) + (y - 0.5) * (y - 0.5) < 0.01 && z < 0.3;
                if (!in_plume || cells[c] == ADJ_CELL_SOLID || cells[up] == ADJ_CELL_SOLID) continue;
                div[c] += 1.0 / h; /* flux out through the top face */
                div[up] -= 1.0 / h;
            }
    const double spacing[3] = {h, h, h};
    adj_operator *op = NULL;
    CHECK(adj_operator_new_grid_poisson(nx, ny, nz, cells, spacing, NULL, &op));
    size_t n = 0;
    CHECK(adj_operator_dim(op, &n));
    double *b = malloc(n * sizeof *b);
    CHECK(adj_grid_gather(op, div, ncells, b, n));
    for (size_t i = 0; i < n; i++) b[i] = -b[i];
    printf("grid %zux%zux%zu: %zu unknowns\n", nx, ny, nz, n);

    adj_precond *ic0 = NULL, *jacobi = NULL;
    CHECK(adj_precond_new(op, ADJ_PRECOND_IC0, &ic0));
    CHECK(adj_precond_new(op, ADJ_PRECOND_JACOBI, &jacobi));
    solve_and_check("ic0", op, ic0, b, n);
    solve_and_check("jacobi", op, jacobi, b, n);
    solve_and_check("none", op, NULL, b, n);
    adj_precond_free(ic0);
    adj_precond_free(jacobi);
    adj_operator_free(op);
    free(b);
    free(div);
    free(cells);
}

static void csr_problem(int m) {
    /* 5-point Laplacian on an m x m grid, Dirichlet boundary, 32-bit CSR. */
    size_t n = (size_t)m * (size_t)m;
    int32_t *row_ptr = malloc((n + 1) * sizeof *row_ptr);
    int32_t *col_idx = malloc(5 * n * sizeof *col_idx);
    double *values = malloc(5 * n * sizeof *values);
    int32_t nnz = 0;
    for (int j = 0; j < m; j++)
        for (int i = 0; i < m; i++) {
            int32_t row = j * m + i;
            row_ptr[row] = nnz;
            int32_t cols[5] = {row - m, row - 1, row, row + 1, row + m};
            int use[5] = {j > 0, i > 0, 1, i + 1 < m, j + 1 < m};
            for (int t = 0; t < 5; t++)
                if (use[t]) {
                    col_idx[nnz] = cols[t];
                    values[nnz++] = t == 2 ? 4.0 : -1.0;
                }
        }
    row_ptr[n] = nnz;
    adj_operator *op = NULL;
    CHECK(adj_operator_new_csr_i32(n, n, row_ptr, col_idx, values, &op));
    double *b = malloc(n * sizeof *b);
    for (size_t i = 0; i < n; i++) b[i] = sin(0.1 * (double)i);
    printf("csr 2D Laplacian %dx%d: %zu unknowns, %d nonzeros\n", m, m, n, (int)nnz);
    adj_precond *jacobi = NULL;
    CHECK(adj_precond_new(op, ADJ_PRECOND_JACOBI, &jacobi));
    solve_and_check("jacobi", op, jacobi, b, n);

    /* A bad call: the status says what, the message says which argument. */
    double *x = calloc(n, sizeof *x);
    adj_status s = adj_cg_solve(op, jacobi, NULL, x, n, NULL, NULL);
    printf("  NULL b -> status %d: %s\n", (int)s, adj_last_error_message());
    failures += s != ADJ_ERR_NULL_ARGUMENT;
    adj_precond_free(jacobi);
    adj_operator_free(op);
    free(x);
    free(b);
    free(values);
    free(col_idx);
    free(row_ptr);
}

int main(int argc, char **argv) {
    size_t nx = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 64;
    printf("adjunct %s (header %s), %zu threads\n", adj_version(), ADJ_VERSION_STRING, adj_get_num_threads());
    grid_problem(nx);
    csr_problem(200);
    printf("%s\n", failures ? "FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
