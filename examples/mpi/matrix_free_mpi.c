/* Distributed pressure solve with MPI through the library's callbacks.
 *
 * An N^3 smoke box (walls on the sides and bottom, two air layers on top,
 * a solid sphere of radius 0.15 at (0.5, 0.5, 0.4)) is split into slabs
 * along z, one per rank. Each rank owns the fluid cells of its slab; the
 * matvec callback scatters them into a field with one ghost plane below and
 * above, exchanges the ghost planes with MPI_Sendrecv and applies the
 * 7-point stencil (neighbour indices precomputed at setup). The library's single-reduction CG calls the allreduce
 * callback (MPI_Allreduce) once per iteration; the library never links MPI.
 *
 * Rank 0 prints iterations, time, allreduce calls per iteration and the
 * global true residual ‖b − A x‖/‖b‖ recomputed here.
 *
 * Build (after cargo build --release):
 *   mpicc -O2 -Iinclude examples/mpi/matrix_free_mpi.c target/release/libadjunct.a \
 *         -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o matrix_free_mpi
 * Run:
 *   mpirun -n 2 ./matrix_free_mpi [N] [--cdm] [--out FILE] [--fail-rank R --fail-after K]
 * --cdm uses the conjugate-direction solver (Jacobi directions, k = 2) with
 * the same allreduce callback instead of CG;
 * --out writes the global solution (fluid cells in cell order, f64) from rank 0;
 * --fail-rank/--fail-after make rank R's matvec fail at its K-th call (after
 * its halo exchange), to show that every rank reports the error.
 */
#include "adjunct.h"

#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FLUID = 0, SOLID = 1, AIR = 2 };

typedef struct {
    int n, rank, size;
    int k0, k1;              /* owned z range [k0, k1) */
    double inv_h2;
    size_t num_local;        /* fluid cells owned */
    long *cell_of_unknown;   /* local field index of each owned unknown */
    long *neighbours;        /* per unknown, 6 field indices of its fluid neighbours, or -1 */
    double *faces;           /* per unknown, the number of non-solid faces */
    double *field;           /* n*n*(k1-k0+2) values, ghost planes at 0 and last */
    int fail_rank, fail_after, calls;
    long allreduce_calls;
} Slab;

static int kind(int n, int i, int j, int k) {
    if (i < 0 || j < 0 || k < 0 || i >= n || j >= n || k >= n) return SOLID;
    if (k >= n - 2) return AIR;
    const double h = 1.0 / n, x = (i + 0.5) * h, y = (j + 0.5) * h, z = (k + 0.5) * h;
    const double d2 = (x - 0.5) * (x - 0.5) + (y - 0.5) * (y - 0.5) + (z - 0.4) * (z - 0.4);
    return d2 < 0.0225 ? SOLID : FLUID;
}

static long local_index(const Slab *s, int i, int j, int kl) { return i + (long)s->n * (j + (long)s->n * kl); }

/* y = A x on this rank's unknowns; exchanges one ghost plane each way. */
static int matvec(void *ctx, const double *x, double *y, size_t n_local) {
    Slab *s = ctx;
    const int n = s->n, planes = s->k1 - s->k0;
    const long plane = (long)n * n;
    memset(s->field, 0, sizeof(double) * plane * (planes + 2));
    for (size_t u = 0; u < n_local; ++u) s->field[s->cell_of_unknown[u]] = x[u];
    const int below = s->rank > 0 ? s->rank - 1 : MPI_PROC_NULL;
    const int above = s->rank + 1 < s->size ? s->rank + 1 : MPI_PROC_NULL;
    MPI_Sendrecv(s->field + plane, (int)plane, MPI_DOUBLE, below, 0, s->field + plane * (planes + 1), (int)plane,
                 MPI_DOUBLE, above, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Sendrecv(s->field + plane * planes, (int)plane, MPI_DOUBLE, above, 1, s->field, (int)plane, MPI_DOUBLE, below,
                 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    s->calls += 1;
    if (s->rank == s->fail_rank && s->calls == s->fail_after) return 7; /* simulated failure */
    for (size_t u = 0; u < n_local; ++u) {
        const long *nb = s->neighbours + 6 * u;
        double sum = s->faces[u] * s->field[s->cell_of_unknown[u]];
        for (int f = 0; f < 6; ++f)
            if (nb[f] >= 0) sum -= s->field[nb[f]];
        y[u] = s->inv_h2 * sum;
    }
    return 0;
}

static int allreduce(void *ctx, double *buf, size_t n) {
    Slab *s = ctx;
    s->allreduce_calls += 1;
    return MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD) == MPI_SUCCESS ? 0 : 1;
}

static double global_dot(const double *a, const double *b, size_t n) {
    double local = 0.0, global = 0.0;
    for (size_t i = 0; i < n; ++i) local += a[i] * b[i];
    MPI_Allreduce(&local, &global, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return global;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    Slab s;
    memset(&s, 0, sizeof s);
    s.n = 128;
    s.fail_rank = -1;
    const char *out = NULL;
    int use_cdm = 0;
    for (int a = 1; a < argc; ++a) {
        if (!strcmp(argv[a], "--out") && a + 1 < argc) out = argv[++a];
        else if (!strcmp(argv[a], "--cdm")) use_cdm = 1;
        else if (!strcmp(argv[a], "--fail-rank") && a + 1 < argc) s.fail_rank = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--fail-after") && a + 1 < argc) s.fail_after = atoi(argv[++a]);
        else s.n = atoi(argv[a]);
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &s.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &s.size);
    const int n = s.n;
    s.k0 = (int)((long)n * s.rank / s.size);
    s.k1 = (int)((long)n * (s.rank + 1) / s.size);
    s.inv_h2 = (double)n * n;
    const int planes = s.k1 - s.k0;
    const long plane = (long)n * n;
    s.field = calloc((size_t)(plane * (planes + 2)), sizeof(double));
    s.cell_of_unknown = malloc(sizeof(long) * (size_t)(plane * planes + 1));
    double *b = malloc(sizeof(double) * (size_t)(plane * planes + 1));
    double *diag = malloc(sizeof(double) * (size_t)(plane * planes + 1));
    s.neighbours = malloc(sizeof(long) * 6 * (size_t)(plane * planes + 1));
    s.faces = malloc(sizeof(double) * (size_t)(plane * planes + 1));
    static const int offsets[6][3] = {{-1, 0, 0}, {1, 0, 0}, {0, -1, 0}, {0, 1, 0}, {0, 0, -1}, {0, 0, 1}};
    for (int kl = 1; kl <= planes; ++kl)
        for (int j = 0; j < n; ++j)
            for (int i = 0; i < n; ++i) {
                const int k = s.k0 + kl - 1;
                if (kind(n, i, j, k) != FLUID) continue;
                const double h = 1.0 / n, x = (i + 0.5) * h, y = (j + 0.5) * h, z = (k + 0.5) * h;
                int faces = 0;
                faces += kind(n, i - 1, j, k) != SOLID;
                faces += kind(n, i + 1, j, k) != SOLID;
                faces += kind(n, i, j - 1, k) != SOLID;
                faces += kind(n, i, j + 1, k) != SOLID;
                faces += kind(n, i, j, k - 1) != SOLID;
                faces += kind(n, i, j, k + 1) != SOLID;
                for (int f = 0; f < 6; ++f) {
                    const int ni = i + offsets[f][0], nj = j + offsets[f][1], nkl = kl + offsets[f][2];
                    const int kd = kind(n, ni, nj, s.k0 + nkl - 1);
                    s.neighbours[6 * s.num_local + f] = kd == FLUID ? local_index(&s, ni, nj, nkl) : -1;
                }
                s.faces[s.num_local] = faces;
                s.cell_of_unknown[s.num_local] = local_index(&s, i, j, kl);
                b[s.num_local] = sin(6.0 * x) * cos(4.0 * y) * z;
                diag[s.num_local] = faces * s.inv_h2;
                s.num_local += 1;
            }

    adj_operator *op = NULL;
    adj_precond *jacobi = NULL;
    adj_status status = adj_operator_new_callback(s.num_local, matvec, &s, &op);
    if (status == ADJ_OK) status = adj_precond_new_jacobi(diag, s.num_local, &jacobi);
    if (status != ADJ_OK) {
        fprintf(stderr, "rank %d: setup failed: %s\n", s.rank, adj_last_error_message());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    double *x = calloc(s.num_local + 1, sizeof(double));
    adj_cg_options options;
    adj_solve_report report;
    if (adj_cg_options_init(&options, sizeof options) != ADJ_OK ||
        adj_solve_report_init(&report, sizeof report) != ADJ_OK) {
        fprintf(stderr, "rank %d: %s\n", s.rank, adj_last_error_message());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    /* The communicator: the operator exchanges its own halo, so only the sum
       over ranks is needed. */
    adj_comm comm;
    if (adj_comm_init(&comm, sizeof comm) != ADJ_OK) {
        fprintf(stderr, "rank %d: %s\n", s.rank, adj_last_error_message());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    comm.ctx = &s;
    comm.rank = (size_t)s.rank;
    comm.size = (size_t)s.size;
    comm.allreduce_sum = allreduce;
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();
    if (use_cdm) {
        adj_cdm_options cdm_options;
        if (adj_cdm_options_init(&cdm_options, sizeof cdm_options) != ADJ_OK) {
            fprintf(stderr, "rank %d: %s\n", s.rank, adj_last_error_message());
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        cdm_options.comm = &comm;
        status = adj_cdm_solve(op, NULL, jacobi, NULL, NULL, b, x, s.num_local, &cdm_options, &report, NULL);
    } else {
        options.comm = &comm;
        status = adj_cg_solve(op, jacobi, b, x, s.num_local, &options, &report);
    }
    const double seconds = MPI_Wtime() - t0;
    if (status != ADJ_OK) {
        printf("rank %d: status %d after %zu iterations: %s\n", s.rank, (int)status, report.iterations,
               adj_last_error_message());
        fflush(stdout);
        MPI_Finalize();
        return 0;
    }

    /* Independent check: the global true residual with this program's matvec. */
    double *ax = malloc(sizeof(double) * (s.num_local + 1));
    matvec(&s, x, ax, s.num_local);
    for (size_t u = 0; u < s.num_local; ++u) ax[u] = b[u] - ax[u];
    const double residual = sqrt(global_dot(ax, ax, s.num_local) / global_dot(b, b, s.num_local));
    long total = 0, local = (long)s.num_local;
    MPI_Allreduce(&local, &total, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    if (s.rank == 0)
        printf("%s, %d ranks, %d^3 grid, %ld unknowns: %zu iterations, %.3f s (%.3f ms/iteration), "
               "%ld allreduce calls (%.2f per iteration), true relative residual %.3e\n",
               use_cdm ? "conjugate directions" : "CG", s.size, n, total, report.iterations, seconds, 1e3 * seconds / report.iterations, s.allreduce_calls,
               (double)s.allreduce_calls / report.iterations, residual);

    if (out) {
        int count = (int)s.num_local, *counts = NULL, *displs = NULL;
        double *all = NULL;
        if (s.rank == 0) {
            counts = malloc(sizeof(int) * s.size);
            displs = malloc(sizeof(int) * s.size);
        }
        MPI_Gather(&count, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD);
        if (s.rank == 0) {
            displs[0] = 0;
            for (int r = 1; r < s.size; ++r) displs[r] = displs[r - 1] + counts[r - 1];
            all = malloc(sizeof(double) * (size_t)total);
        }
        MPI_Gatherv(x, count, MPI_DOUBLE, all, counts, displs, MPI_DOUBLE, 0, MPI_COMM_WORLD);
        if (s.rank == 0) {
            FILE *f = fopen(out, "wb");
            if (!f || fwrite(all, sizeof(double), (size_t)total, f) != (size_t)total) MPI_Abort(MPI_COMM_WORLD, 1);
            fclose(f);
            free(all);
            free(counts);
            free(displs);
        }
    }
    adj_precond_free(jacobi);
    adj_operator_free(op);
    free(ax);
    free(x);
    free(b);
    free(diag);
    free(s.field);
    free(s.cell_of_unknown);
    free(s.neighbours);
    free(s.faces);
    MPI_Finalize();
    return residual <= 1e-8 ? 0 : 1;
}
