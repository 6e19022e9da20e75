/* Distributed multigrid-preconditioned CG with MPI: the library's
 * distributed grid operator and V-cycle, MPI reached through two callbacks.
 *
 * A smoke box of NX x NY x NZ cells (smoke_scene.h: walls around, the top
 * two z layers air, a solid sphere and a solid slab) is split into a 3D
 * grid of boxes (MPI_Dims_create, MPI_Cart_create), one per rank. Each
 * rank passes its box's cell flags and right-hand side; the library packs
 * the halo messages and the exchange callback moves them (MPI_Irecv and
 * MPI_Isend per message, MPI_Waitall), the allreduce callback sums
 * (MPI_Allreduce).
 *
 * Build (after cargo build --release):
 *   mpicc -O2 -Iinclude examples/mpi/poisson_mpi.c target/release/libadjunct.a \
 *         -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o poisson_mpi
 * Run:
 *   mpirun -n 4 ./poisson_mpi [NX NY NZ] [--dims PX PY PZ] [--uneven]
 *          [--threads T] [--compare] [--repeat K] [--frames F]
 *          [--fail-exchange R K | --fail-allreduce R K | --bad MODE]
 * --dims fixes the rank grid (default MPI_Dims_create); --uneven moves
 * every odd cut one cell up; --compare gathers the solution on rank 0 and
 * compares it with the serial adj_pressure_solver's; --repeat times K
 * solves and prints the median; --frames F then moves the sphere through
 * F more frames (adj_distributed_pressure_solver_update, warm-started
 * solves) and prints each frame's iterations; --fail-* make rank R's K-th callback call
 * fail after its communication; --bad overlap|gap|outside|dims|flags
 * gives one rank bad input (offset: every rank's exchange serves face
 * neighbours only). Rank 0 prints the summary line; every rank
 * prints its status when it is not ADJ_OK.
 */
#include "adjunct.h"
#include "smoke_scene.h"

#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    MPI_Comm cart;
    int coords[3], dims[3];
    int fail_exchange_rank, fail_exchange_call, exchange_calls;
    int fail_allreduce_rank, fail_allreduce_call, allreduce_calls;
    int rank, faces_only;
} Comm;

static int exchange(void *ctx, adj_halo_message *messages, size_t count) {
    Comm *c = ctx;
    MPI_Request requests[2 * 26];
    int served = 1, n = 0;
    for (size_t m = 0; m < count; ++m) {
        int at[3], neighbour;
        for (int a = 0; a < 3; ++a) at[a] = c->coords[a] + messages[m].offset[a];
        int nonzero = (messages[m].offset[0] != 0) + (messages[m].offset[1] != 0) + (messages[m].offset[2] != 0);
        if (count > 26 || (c->faces_only && nonzero > 1) || at[0] < 0 || at[1] < 0 || at[2] < 0 ||
            at[0] >= c->dims[0] || at[1] >= c->dims[1] || at[2] >= c->dims[2]) {
            served = 0;
            continue;
        }
        MPI_Cart_rank(c->cart, at, &neighbour);
        MPI_Irecv(messages[m].recv, (int)messages[m].recv_bytes, MPI_BYTE, neighbour, 7, c->cart,
                  &requests[n++]);
        MPI_Isend(messages[m].send, (int)messages[m].send_bytes, MPI_BYTE, neighbour, 7, c->cart,
                  &requests[n++]);
    }
    MPI_Waitall(n, requests, MPI_STATUSES_IGNORE);
    int call = c->exchange_calls++;
    if (!served) return 2;
    return c->rank == c->fail_exchange_rank && call == c->fail_exchange_call;
}

static int allreduce(void *ctx, double *buf, size_t n) {
    Comm *c = ctx;
    MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, c->cart);
    int call = c->allreduce_calls++;
    return c->rank == c->fail_allreduce_rank && call == c->fail_allreduce_call;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double now(void) { return MPI_Wtime(); }

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    size_t n[3] = {48, 40, 36};
    int dims[3] = {0, 0, 0}, uneven = 0, compare = 0, repeat = 1, threads = 0, frames = 0;
    const char *bad = NULL;
    Comm c = {.fail_exchange_rank = -1, .fail_allreduce_rank = -1};
    int positional = 0;
    for (int a = 1; a < argc; ++a) {
        if (!strcmp(argv[a], "--dims") && a + 3 < argc) {
            for (int d = 0; d < 3; ++d) dims[d] = atoi(argv[++a]);
        } else if (!strcmp(argv[a], "--uneven")) {
            uneven = 1;
        } else if (!strcmp(argv[a], "--compare")) {
            compare = 1;
        } else if (!strcmp(argv[a], "--repeat") && a + 1 < argc) {
            repeat = atoi(argv[++a]);
        } else if (!strcmp(argv[a], "--frames") && a + 1 < argc) {
            frames = atoi(argv[++a]);
        } else if (!strcmp(argv[a], "--threads") && a + 1 < argc) {
            threads = atoi(argv[++a]);
        } else if (!strcmp(argv[a], "--fail-exchange") && a + 2 < argc) {
            c.fail_exchange_rank = atoi(argv[++a]);
            c.fail_exchange_call = atoi(argv[++a]);
        } else if (!strcmp(argv[a], "--fail-allreduce") && a + 2 < argc) {
            c.fail_allreduce_rank = atoi(argv[++a]);
            c.fail_allreduce_call = atoi(argv[++a]);
        } else if (!strcmp(argv[a], "--bad") && a + 1 < argc) {
            bad = argv[++a];
        } else if (positional < 3) {
            n[positional++] = (size_t)atol(argv[a]);
        }
    }
    if (threads > 0) adj_set_num_threads((size_t)threads);
    MPI_Dims_create(size, 3, dims);
    int periods[3] = {0, 0, 0};
    MPI_Cart_create(MPI_COMM_WORLD, 3, dims, periods, 0, &c.cart);
    MPI_Comm_rank(c.cart, &c.rank);
    MPI_Cart_coords(c.cart, c.rank, 3, c.coords);
    memcpy(c.dims, dims, sizeof dims);
    /* MPI's Cartesian coordinates are z-slowest per our box order: axis a
     * of the grid is split along Cartesian dimension a. */
    size_t lo[3], hi[3];
    scene_box(n, dims, c.coords, uneven, lo, hi);
    size_t global[3] = {n[0], n[1], n[2]};
    if (bad && !strcmp(bad, "overlap") && c.rank == 1 && lo[0] > 0) lo[0] -= 1;
    if (bad && !strcmp(bad, "gap") && c.rank == 1) hi[0] -= 1;
    if (bad && !strcmp(bad, "outside") && c.rank == size - 1) hi[2] += 1;
    if (bad && !strcmp(bad, "dims") && c.rank == 2) global[2] += 1;
    size_t box[3] = {hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]};
    size_t cells = box[0] * box[1] * box[2];
    uint8_t *flags = malloc(cells);
    double *rhs = malloc(cells * sizeof(double)), *p = calloc(cells, sizeof(double));
    for (size_t k = 0; k < box[2]; ++k)
        for (size_t j = 0; j < box[1]; ++j)
            for (size_t i = 0; i < box[0]; ++i) {
                size_t l = i + box[0] * (j + box[1] * k);
                size_t gi = lo[0] + i, gj = lo[1] + j, gk = lo[2] + k;
                int in = gi < n[0] && gj < n[1] && gk < n[2];
                flags[l] = (uint8_t)(in ? scene_kind(n, gi, gj, gk) : SCENE_SOLID);
                rhs[l] = in && flags[l] == SCENE_FLUID ? scene_source(n, gi, gj, gk) : 0.0;
            }
    if (bad && !strcmp(bad, "flags") && c.rank == 0) flags[0] = 9;
    c.faces_only = bad && !strcmp(bad, "offset");
    /* A failure asked for on the command line is the expected outcome. */
    const int expected_failure = bad || c.fail_exchange_rank >= 0 || c.fail_allreduce_rank >= 0;

    adj_comm comm;
    adj_comm_init(&comm, sizeof comm);
    comm.ctx = &c;
    comm.rank = (size_t)c.rank;
    comm.size = (size_t)size;
    comm.allreduce_sum = allreduce;
    comm.exchange = exchange;

    double t0 = now();
    adj_distributed_pressure_solver *solver = NULL;
    adj_status st = adj_distributed_pressure_solver_new(&comm, global[0], global[1], global[2], lo, hi,
                                                        flags, NULL, &solver);
    double setup = now() - t0;
    if (st != ADJ_OK) {
        printf("rank %d: setup status %d: %s\n", c.rank, st, adj_last_error_message());
        MPI_Finalize();
        return !expected_failure;
    }
    adj_solve_report report;
    adj_solve_report_init(&report, sizeof report);
    adj_comm_stats stats;
    adj_comm_stats_init(&stats, sizeof stats);
    double *times = malloc((size_t)repeat * sizeof(double));
    for (int r = 0; r < repeat && st == ADJ_OK; ++r) {
        MPI_Barrier(c.cart);
        t0 = now();
        st = adj_distributed_pressure_solver_solve(solver, rhs, p, cells, 0, NULL, &report, &stats);
        times[r] = now() - t0;
    }
    if (st != ADJ_OK) {
        printf("rank %d: solve status %d: %s\n", c.rank, st, adj_last_error_message());
        adj_distributed_pressure_solver_free(solver);
        MPI_Finalize();
        return !expected_failure;
    }
    /* Later frames: the sphere moves along x; warm starts. */
    for (int f = 1; f <= frames && st == ADJ_OK; ++f) {
        for (size_t k = 0; k < box[2]; ++k)
            for (size_t j = 0; j < box[1]; ++j)
                for (size_t i = 0; i < box[0]; ++i) {
                    size_t l = i + box[0] * (j + box[1] * k);
                    flags[l] = (uint8_t)scene_kind_at(n, lo[0] + i, lo[1] + j, lo[2] + k, 0.03 * f);
                    rhs[l] = flags[l] == SCENE_FLUID ? scene_source(n, lo[0] + i, lo[1] + j, lo[2] + k) : 0.0;
                }
        adj_solve_report frame;
        adj_solve_report_init(&frame, sizeof frame);
        st = adj_distributed_pressure_solver_update(solver, flags, NULL);
        if (st == ADJ_OK) st = adj_distributed_pressure_solver_solve(solver, rhs, p, cells, 1, NULL, &frame, NULL);
        if (st == ADJ_OK && c.rank == 0)
            printf("frame %d: %zu iterations (warm start), relative residual %.3e\n", f, frame.iterations,
                   frame.relative_residual);
    }
    if (st != ADJ_OK) {
        printf("rank %d: frame status %d: %s\n", c.rank, st, adj_last_error_message());
        adj_distributed_pressure_solver_free(solver);
        MPI_Finalize();
        return 1;
    }
    if (frames > 0) {
        /* The summary and --compare are about the first frame. */
        adj_distributed_pressure_solver_free(solver);
        free(times); free(flags); free(rhs); free(p);
        MPI_Finalize();
        return 0;
    }
    qsort(times, (size_t)repeat, sizeof(double), cmp_double);
    double solve = times[repeat / 2];
    /* The solution field gathered on rank 0 (a zero-filled global sum). */
    size_t total = n[0] * n[1] * n[2];
    double *field = calloc(total, sizeof(double)), *all = rank == 0 ? calloc(total, sizeof(double)) : NULL;
    for (size_t k = 0; k < box[2]; ++k)
        for (size_t j = 0; j < box[1]; ++j)
            for (size_t i = 0; i < box[0]; ++i)
                field[lo[0] + i + n[0] * (lo[1] + j + n[1] * (lo[2] + k))] = p[i + box[0] * (j + box[1] * k)];
    MPI_Reduce(field, all, (int)total, MPI_DOUBLE, MPI_SUM, 0, c.cart);
    if (rank == 0) {
        /* Independent check: the serial operator's true residual, and the
         * serial pressure solver's iterations and solution. */
        uint8_t *gflags = malloc(total);
        double *grhs = malloc(total * sizeof(double));
        for (size_t k = 0; k < n[2]; ++k)
            for (size_t j = 0; j < n[1]; ++j)
                for (size_t i = 0; i < n[0]; ++i) {
                    size_t g = i + n[0] * (j + n[1] * k);
                    gflags[g] = (uint8_t)scene_kind(n, i, j, k);
                    grhs[g] = gflags[g] == SCENE_FLUID ? scene_source(n, i, j, k) : 0.0;
                }
        adj_operator *a = NULL;
        adj_operator_new_grid(n[0], n[1], n[2], gflags, NULL, &a);
        size_t dim = 0;
        adj_operator_dim(a, &dim);
        double *x = malloc(dim * sizeof(double)), *b = malloc(dim * sizeof(double)), *ax = malloc(dim * sizeof(double));
        adj_grid_gather(a, all, total, x, dim);
        adj_grid_gather(a, grhs, total, b, dim);
        adj_operator_apply(a, x, ax, dim);
        double rr = 0, bb = 0;
        for (size_t u = 0; u < dim; ++u) {
            rr += (b[u] - ax[u]) * (b[u] - ax[u]);
            bb += b[u] * b[u];
        }
        printf("%d ranks (%dx%dx%d) %zux%zux%zu: %zu iterations, %.4f s setup, %.4f s solve, "
               "%.2f allreduces/iteration, %.2f exchanges/iteration, %.1f messages/iteration, "
               "%.0f bytes/iteration, true residual %.3e\n",
               size, dims[0], dims[1], dims[2], n[0], n[1], n[2], report.iterations, setup, solve,
               (double)stats.allreduces / report.iterations, (double)stats.exchanges / report.iterations,
               (double)stats.messages / report.iterations, (double)stats.bytes / report.iterations,
               sqrt(rr / bb));
        if (compare) {
            adj_pressure_solver *serial = NULL;
            adj_pressure_solver_new(n[0], n[1], n[2], &serial);
            adj_pressure_solver_update(serial, gflags, NULL);
            double *ps = calloc(total, sizeof(double));
            adj_solve_report sr;
            adj_solve_report_init(&sr, sizeof sr);
            t0 = now();
            st = adj_pressure_solver_solve(serial, grhs, ps, total, 0, NULL, &sr);
            double serial_time = now() - t0;
            double dd = 0, ss = 0;
            for (size_t g = 0; g < total; ++g) {
                dd += (all[g] - ps[g]) * (all[g] - ps[g]);
                ss += ps[g] * ps[g];
            }
            printf("serial: status %d, %zu iterations, %.4f s solve, relative difference %.3e\n", st,
                   sr.iterations, serial_time, sqrt(dd / ss));
            free(ps);
            adj_pressure_solver_free(serial);
        }
        free(x); free(b); free(ax); free(gflags); free(grhs);
        adj_operator_free(a);
    }
    free(field); free(all); free(times); free(flags); free(rhs); free(p);
    adj_distributed_pressure_solver_free(solver);
    MPI_Comm_free(&c.cart);
    MPI_Finalize();
    return 0;
}
