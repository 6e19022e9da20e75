/* The library's distributed MGPCG against hypre in the same run: the same
 * matrix (the 7-point pressure Poisson operator of the smoke scene of
 * smoke_scene.h, unit spacing) and right-hand side, the same 3D grid of
 * boxes, the same stopping test (‖b − A x‖₂ ≤ 1e-8 ‖b‖₂), one thread per
 * rank:
 *
 * - adjunct: adj_distributed_pressure_solver (setup = operator + V-cycle),
 * - hypre Struct PCG with PFMG (Jacobi and red-black Gauss-Seidel
 *   smoothers) and with SMG, the structured-grid multigrid of hypre; solid
 *   and air cells are decoupled identity rows,
 * - hypre ParCSR PCG with BoomerAMG (HMIS coarsening, ext+i interpolation,
 *   hybrid symmetric Gauss-Seidel, strong threshold 0.5: the 3D Poisson
 *   settings of hypre's documentation), on the fluid unknowns only.
 *
 * Setup includes assembling hypre's matrix and vectors from the cell
 * flags, as the library's includes building its operator from them.
 *
 * Build (Debian: apt-get install libhypre-dev):
 *   mpicc -O2 -Iinclude -I/usr/include/hypre examples/mpi/bench_hypre.c \
 *         target/release/libadjunct.a -lHYPRE -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o bench_hypre
 * Run:
 *   mpirun -n 2 ./bench_hypre [NX NY NZ] [--repeat K] [--only LIST]
 * LIST: the solvers to run, comma-separated, from adjunct, pfmg, pfmg-rb,
 * smg and boomeramg (default all); the ratio is against the fastest
 * hypre solver run.
 */
#include "adjunct.h"
#include "smoke_scene.h"

#include <HYPRE.h>
#include <HYPRE_parcsr_ls.h>
#include <HYPRE_struct_ls.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    MPI_Comm cart;
    int coords[3], dims[3];
} Comm;

static int exchange(void *ctx, adj_halo_message *messages, size_t count) {
    Comm *c = ctx;
    MPI_Request requests[2 * 26];
    int n = 0;
    for (size_t m = 0; m < count && m < 26; ++m) {
        int at[3], neighbour;
        for (int a = 0; a < 3; ++a) at[a] = c->coords[a] + messages[m].offset[a];
        MPI_Cart_rank(c->cart, at, &neighbour);
        MPI_Irecv(messages[m].recv, (int)messages[m].recv_bytes, MPI_BYTE, neighbour, 7, c->cart, &requests[n++]);
        MPI_Isend(messages[m].send, (int)messages[m].send_bytes, MPI_BYTE, neighbour, 7, c->cart, &requests[n++]);
    }
    MPI_Waitall(n, requests, MPI_STATUSES_IGNORE);
    return count > 26;
}

static int allreduce(void *ctx, double *buf, size_t n) {
    Comm *c = ctx;
    return MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, c->cart) != MPI_SUCCESS;
}

typedef struct {
    const char *name;
    double setup, solve, residual;
    int iterations;
} Result;

static int cmp_result(const void *a, const void *b) {
    double x = ((const Result *)a)->setup + ((const Result *)a)->solve;
    double y = ((const Result *)b)->setup + ((const Result *)b)->solve;
    return (x > y) - (x < y);
}

/* The median (by total time) of `k` results. */
static Result median(Result *r, int k) {
    qsort(r, (size_t)k, sizeof *r, cmp_result);
    return r[k / 2];
}

typedef struct {
    size_t n[3], lo[3], hi[3], box[3], cells;
    uint8_t *flags;
    double *rhs;
    Comm comm;
    int rank, size;
} Problem;

static int fluid(const Problem *p, long i, long j, long k) {
    if (i < 0 || j < 0 || k < 0 || i >= (long)p->n[0] || j >= (long)p->n[1] || k >= (long)p->n[2]) return 0;
    return scene_kind(p->n, (size_t)i, (size_t)j, (size_t)k) == SCENE_FLUID;
}

static int solid(const Problem *p, long i, long j, long k) {
    if (i < 0 || j < 0 || k < 0 || i >= (long)p->n[0] || j >= (long)p->n[1] || k >= (long)p->n[2]) return 1;
    return scene_kind(p->n, (size_t)i, (size_t)j, (size_t)k) == SCENE_SOLID;
}

static const int OFFSETS[7][3] = {{0, 0, 0}, {-1, 0, 0}, {1, 0, 0}, {0, -1, 0}, {0, 1, 0}, {0, 0, -1}, {0, 0, 1}};

/* The 7 stencil values of cell (i, j, k): fluid rows couple to fluid
 * neighbours (−1) with the count of non-solid faces on the diagonal;
 * other cells are identity rows. */
static void stencil_row(const Problem *p, long i, long j, long k, double v[7]) {
    memset(v, 0, 7 * sizeof(double));
    if (!fluid(p, i, j, k)) {
        v[0] = 1.0;
        return;
    }
    for (int e = 1; e < 7; ++e) {
        long a = i + OFFSETS[e][0], b = j + OFFSETS[e][1], c = k + OFFSETS[e][2];
        if (!solid(p, a, b, c)) v[0] += 1.0;
        if (fluid(p, a, b, c)) v[e] = -1.0;
    }
}

static Result run_adjunct(const Problem *p) {
    Result r = {.name = "adjunct distributed MGPCG"};
    adj_comm comm;
    adj_comm_init(&comm, sizeof comm);
    comm.ctx = (void *)&p->comm;
    comm.rank = (size_t)p->rank;
    comm.size = (size_t)p->size;
    comm.allreduce_sum = allreduce;
    comm.exchange = exchange;
    double *pressure = calloc(p->cells, sizeof(double));
    MPI_Barrier(p->comm.cart);
    double t = MPI_Wtime();
    adj_distributed_pressure_solver *solver = NULL;
    adj_status st = adj_distributed_pressure_solver_new(&comm, p->n[0], p->n[1], p->n[2], p->lo, p->hi, p->flags,
                                                        NULL, &solver);
    r.setup = MPI_Wtime() - t;
    adj_solve_report report;
    adj_solve_report_init(&report, sizeof report);
    t = MPI_Wtime();
    if (st == ADJ_OK) st = adj_distributed_pressure_solver_solve(solver, p->rhs, pressure, p->cells, 0, NULL, &report, NULL);
    r.solve = MPI_Wtime() - t;
    if (st != ADJ_OK) fprintf(stderr, "adjunct: status %d: %s\n", st, adj_last_error_message());
    r.iterations = (int)report.iterations;
    r.residual = report.relative_residual;
    adj_distributed_pressure_solver_free(solver);
    free(pressure);
    return r;
}

/* hypre Struct PCG with PFMG (relax 1: weighted Jacobi, 2: red-black
 * Gauss-Seidel) or SMG (relax < 0). */
static Result run_struct(const Problem *p, int relax) {
    Result r = {.name = relax < 0 ? "hypre Struct SMG-PCG" : relax == 1 ? "hypre Struct PFMG-PCG (Jacobi)"
                                                                      : "hypre Struct PFMG-PCG (RB Gauss-Seidel)"};
    MPI_Comm comm = p->comm.cart;
    MPI_Barrier(comm);
    double t = MPI_Wtime();
    HYPRE_Int lower[3], upper[3];
    for (int a = 0; a < 3; ++a) {
        lower[a] = (HYPRE_Int)p->lo[a];
        upper[a] = (HYPRE_Int)p->hi[a] - 1;
    }
    HYPRE_StructGrid grid;
    HYPRE_StructGridCreate(comm, 3, &grid);
    HYPRE_StructGridSetExtents(grid, lower, upper);
    HYPRE_StructGridAssemble(grid);
    HYPRE_StructStencil stencil;
    HYPRE_StructStencilCreate(3, 7, &stencil);
    for (int e = 0; e < 7; ++e) HYPRE_StructStencilSetElement(stencil, e, (HYPRE_Int *)OFFSETS[e]);
    HYPRE_StructMatrix A;
    HYPRE_StructMatrixCreate(comm, grid, stencil, &A);
    HYPRE_StructMatrixInitialize(A);
    double *values = malloc(7 * p->cells * sizeof(double));
    for (size_t k = 0; k < p->box[2]; ++k)
        for (size_t j = 0; j < p->box[1]; ++j)
            for (size_t i = 0; i < p->box[0]; ++i)
                stencil_row(p, (long)(p->lo[0] + i), (long)(p->lo[1] + j), (long)(p->lo[2] + k),
                            &values[7 * (i + p->box[0] * (j + p->box[1] * k))]);
    HYPRE_Int entries[7] = {0, 1, 2, 3, 4, 5, 6};
    HYPRE_StructMatrixSetBoxValues(A, lower, upper, 7, entries, values);
    HYPRE_StructMatrixAssemble(A);
    free(values);
    HYPRE_StructVector b, x;
    HYPRE_StructVectorCreate(comm, grid, &b);
    HYPRE_StructVectorCreate(comm, grid, &x);
    HYPRE_StructVectorInitialize(b);
    HYPRE_StructVectorInitialize(x);
    double *zeros = calloc(p->cells, sizeof(double));
    HYPRE_StructVectorSetBoxValues(b, lower, upper, p->rhs);
    HYPRE_StructVectorSetBoxValues(x, lower, upper, zeros);
    HYPRE_StructVectorAssemble(b);
    HYPRE_StructVectorAssemble(x);
    free(zeros);
    HYPRE_StructSolver solver, precond;
    HYPRE_StructPCGCreate(comm, &solver);
    HYPRE_StructPCGSetTol(solver, 1e-8);
    HYPRE_StructPCGSetTwoNorm(solver, 1);
    HYPRE_StructPCGSetMaxIter(solver, 1000);
    if (relax < 0) {
        HYPRE_StructSMGCreate(comm, &precond);
        HYPRE_StructSMGSetMemoryUse(precond, 0);
        HYPRE_StructSMGSetMaxIter(precond, 1);
        HYPRE_StructSMGSetTol(precond, 0.0);
        HYPRE_StructSMGSetZeroGuess(precond);
        HYPRE_StructSMGSetNumPreRelax(precond, 1);
        HYPRE_StructSMGSetNumPostRelax(precond, 1);
        HYPRE_StructPCGSetPrecond(solver, HYPRE_StructSMGSolve, HYPRE_StructSMGSetup, precond);
    } else {
        HYPRE_StructPFMGCreate(comm, &precond);
        HYPRE_StructPFMGSetMaxIter(precond, 1);
        HYPRE_StructPFMGSetTol(precond, 0.0);
        HYPRE_StructPFMGSetZeroGuess(precond);
        HYPRE_StructPFMGSetRelaxType(precond, relax);
        HYPRE_StructPFMGSetNumPreRelax(precond, 1);
        HYPRE_StructPFMGSetNumPostRelax(precond, 1);
        HYPRE_StructPCGSetPrecond(solver, HYPRE_StructPFMGSolve, HYPRE_StructPFMGSetup, precond);
    }
    HYPRE_StructPCGSetup(solver, A, b, x);
    r.setup = MPI_Wtime() - t;
    t = MPI_Wtime();
    HYPRE_StructPCGSolve(solver, A, b, x);
    r.solve = MPI_Wtime() - t;
    HYPRE_Int its;
    HYPRE_StructPCGGetNumIterations(solver, &its);
    HYPRE_StructPCGGetFinalRelativeResidualNorm(solver, &r.residual);
    r.iterations = (int)its;
    HYPRE_StructPCGDestroy(solver);
    if (relax < 0)
        HYPRE_StructSMGDestroy(precond);
    else
        HYPRE_StructPFMGDestroy(precond);
    HYPRE_StructVectorDestroy(b);
    HYPRE_StructVectorDestroy(x);
    HYPRE_StructMatrixDestroy(A);
    HYPRE_StructStencilDestroy(stencil);
    HYPRE_StructGridDestroy(grid);
    return r;
}

/* hypre ParCSR PCG with BoomerAMG on the fluid unknowns, numbered rank by
 * rank in box order. */
static Result run_boomeramg(const Problem *p) {
    Result r = {.name = "hypre BoomerAMG-PCG"};
    MPI_Comm comm = p->comm.cart;
    MPI_Barrier(comm);
    double t = MPI_Wtime();
    /* The global unknown of every cell (−1: not fluid), from every box. */
    const size_t total = p->n[0] * p->n[1] * p->n[2];
    long *global = malloc(total * sizeof(long));
    long next = 0, first = 0, last = -1;
    for (int q = 0; q < p->size; ++q) {
        int coords[3];
        size_t lo[3], hi[3];
        MPI_Cart_coords(comm, q, 3, coords);
        scene_box(p->n, p->comm.dims, coords, 0, lo, hi);
        if (q == p->rank) first = next;
        for (size_t k = lo[2]; k < hi[2]; ++k)
            for (size_t j = lo[1]; j < hi[1]; ++j)
                for (size_t i = lo[0]; i < hi[0]; ++i)
                    global[i + p->n[0] * (j + p->n[1] * k)] = fluid(p, (long)i, (long)j, (long)k) ? next++ : -1;
        if (q == p->rank) last = next - 1;
    }
    HYPRE_IJMatrix ij;
    HYPRE_IJMatrixCreate(comm, first, last, first, last, &ij);
    HYPRE_IJMatrixSetObjectType(ij, HYPRE_PARCSR);
    HYPRE_IJMatrixInitialize(ij);
    HYPRE_IJVector ib, ix;
    HYPRE_IJVectorCreate(comm, first, last, &ib);
    HYPRE_IJVectorCreate(comm, first, last, &ix);
    HYPRE_IJVectorSetObjectType(ib, HYPRE_PARCSR);
    HYPRE_IJVectorSetObjectType(ix, HYPRE_PARCSR);
    HYPRE_IJVectorInitialize(ib);
    HYPRE_IJVectorInitialize(ix);
    for (size_t k = p->lo[2]; k < p->hi[2]; ++k)
        for (size_t j = p->lo[1]; j < p->hi[1]; ++j)
            for (size_t i = p->lo[0]; i < p->hi[0]; ++i) {
                HYPRE_BigInt row = global[i + p->n[0] * (j + p->n[1] * k)];
                if (row < 0) continue;
                double v[7];
                stencil_row(p, (long)i, (long)j, (long)k, v);
                HYPRE_BigInt cols[7];
                double vals[7];
                HYPRE_Int count = 0;
                for (int e = 0; e < 7; ++e) {
                    if (v[e] == 0.0) continue;
                    size_t a = i + OFFSETS[e][0], b = j + OFFSETS[e][1], c = k + OFFSETS[e][2];
                    cols[count] = global[a + p->n[0] * (b + p->n[1] * c)];
                    vals[count++] = v[e];
                }
                HYPRE_IJMatrixSetValues(ij, 1, &count, &row, cols, vals);
                double rhs = p->rhs[(i - p->lo[0]) + p->box[0] * ((j - p->lo[1]) + p->box[1] * (k - p->lo[2]))];
                double zero = 0.0;
                HYPRE_IJVectorSetValues(ib, 1, &row, &rhs);
                HYPRE_IJVectorSetValues(ix, 1, &row, &zero);
            }
    free(global);
    HYPRE_IJMatrixAssemble(ij);
    HYPRE_IJVectorAssemble(ib);
    HYPRE_IJVectorAssemble(ix);
    HYPRE_ParCSRMatrix A;
    HYPRE_ParVector b, x;
    HYPRE_IJMatrixGetObject(ij, (void **)&A);
    HYPRE_IJVectorGetObject(ib, (void **)&b);
    HYPRE_IJVectorGetObject(ix, (void **)&x);
    HYPRE_Solver solver, amg;
    HYPRE_ParCSRPCGCreate(comm, &solver);
    HYPRE_PCGSetTol(solver, 1e-8);
    HYPRE_PCGSetTwoNorm(solver, 1);
    HYPRE_PCGSetMaxIter(solver, 1000);
    HYPRE_BoomerAMGCreate(&amg);
    HYPRE_BoomerAMGSetMaxIter(amg, 1);
    HYPRE_BoomerAMGSetTol(amg, 0.0);
    HYPRE_BoomerAMGSetCoarsenType(amg, 10);
    HYPRE_BoomerAMGSetInterpType(amg, 6);
    HYPRE_BoomerAMGSetPMaxElmts(amg, 4);
    HYPRE_BoomerAMGSetRelaxType(amg, 6);
    HYPRE_BoomerAMGSetNumSweeps(amg, 1);
    HYPRE_BoomerAMGSetStrongThreshold(amg, 0.5);
    HYPRE_ParCSRPCGSetPrecond(solver, HYPRE_BoomerAMGSolve, HYPRE_BoomerAMGSetup, amg);
    HYPRE_ParCSRPCGSetup(solver, A, b, x);
    r.setup = MPI_Wtime() - t;
    t = MPI_Wtime();
    HYPRE_ParCSRPCGSolve(solver, A, b, x);
    r.solve = MPI_Wtime() - t;
    HYPRE_Int its;
    HYPRE_PCGGetNumIterations(solver, &its);
    HYPRE_PCGGetFinalRelativeResidualNorm(solver, &r.residual);
    r.iterations = (int)its;
    HYPRE_BoomerAMGDestroy(amg);
    HYPRE_ParCSRPCGDestroy(solver);
    HYPRE_IJMatrixDestroy(ij);
    HYPRE_IJVectorDestroy(ib);
    HYPRE_IJVectorDestroy(ix);
    return r;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    Problem p = {.n = {128, 128, 128}};
    enum { SOLVERS = 5 };
    static const char *const keys[SOLVERS] = {"adjunct", "pfmg", "pfmg-rb", "smg", "boomeramg"};
    int repeat = 3, positional = 0, selected[SOLVERS] = {1, 1, 1, 1, 1};
    for (int a = 1; a < argc; ++a) {
        if (!strcmp(argv[a], "--repeat") && a + 1 < argc)
            repeat = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--only") && a + 1 < argc) {
            const char *list = argv[++a];
            for (int s = 0; s < SOLVERS; ++s) {
                size_t len = strlen(keys[s]);
                selected[s] = 0;
                for (const char *at = list; (at = strstr(at, keys[s])) != NULL; at += len)
                    if ((at == list || at[-1] == ',') && (at[len] == ',' || at[len] == '\0')) selected[s] = 1;
            }
        } else if (positional < 3)
            p.n[positional++] = (size_t)atol(argv[a]);
    }
    if (repeat < 1) repeat = 1;
    HYPRE_Init();
    adj_set_num_threads(1);
    MPI_Comm_size(MPI_COMM_WORLD, &p.size);
    int periods[3] = {0, 0, 0};
    MPI_Dims_create(p.size, 3, p.comm.dims);
    /* MPI_Dims_create puts the largest count first; reversed, the cuts fall
       on z first, so each box is whole x-y planes (contiguous in memory) as
       long as the rank count allows, which is what a C-ordered simulator
       picks. Every solver gets the same boxes. */
    { int t = p.comm.dims[0]; p.comm.dims[0] = p.comm.dims[2]; p.comm.dims[2] = t; }
    MPI_Cart_create(MPI_COMM_WORLD, 3, p.comm.dims, periods, 0, &p.comm.cart);
    MPI_Comm_rank(p.comm.cart, &p.rank);
    MPI_Cart_coords(p.comm.cart, p.rank, 3, p.comm.coords);
    scene_box(p.n, p.comm.dims, p.comm.coords, 0, p.lo, p.hi);
    for (int a = 0; a < 3; ++a) p.box[a] = p.hi[a] - p.lo[a];
    p.cells = p.box[0] * p.box[1] * p.box[2];
    p.flags = malloc(p.cells);
    p.rhs = malloc(p.cells * sizeof(double));
    for (size_t k = 0; k < p.box[2]; ++k)
        for (size_t j = 0; j < p.box[1]; ++j)
            for (size_t i = 0; i < p.box[0]; ++i) {
                size_t l = i + p.box[0] * (j + p.box[1] * k);
                p.flags[l] = (uint8_t)scene_kind(p.n, p.lo[0] + i, p.lo[1] + j, p.lo[2] + k);
                p.rhs[l] = p.flags[l] == SCENE_FLUID ? scene_source(p.n, p.lo[0] + i, p.lo[1] + j, p.lo[2] + k) : 0.0;
            }
    Result *runs = malloc((size_t)(SOLVERS * repeat) * sizeof(Result)), best[SOLVERS];
    for (int rep = 0; rep < repeat; ++rep) {
        if (selected[0]) runs[0 * repeat + rep] = run_adjunct(&p);
        if (selected[1]) runs[1 * repeat + rep] = run_struct(&p, 1);
        if (selected[2]) runs[2 * repeat + rep] = run_struct(&p, 2);
        if (selected[3]) runs[3 * repeat + rep] = run_struct(&p, -1);
        if (selected[4]) runs[4 * repeat + rep] = run_boomeramg(&p);
    }
    for (int s = 0; s < SOLVERS; ++s) {
        if (!selected[s]) continue;
        Result m = median(&runs[s * repeat], repeat);
        /* The slowest rank's times. */
        double local[2] = {m.setup, m.solve}, worst[2];
        MPI_Allreduce(local, worst, 2, MPI_DOUBLE, MPI_MAX, p.comm.cart);
        m.setup = worst[0];
        m.solve = worst[1];
        best[s] = m;
    }
    if (p.rank == 0) {
        printf("%zux%zux%zu smoke, %d ranks (%dx%dx%d) x 1 thread, rtol 1e-8, medians of %d\n", p.n[0], p.n[1], p.n[2],
               p.size, p.comm.dims[0], p.comm.dims[1], p.comm.dims[2], repeat);
        printf("%-42s %8s %8s %8s %5s %10s\n", "", "setup s", "solve s", "total s", "its", "rel. res.");
        double fastest_peer = 1e300;
        for (int s = 0; s < SOLVERS; ++s) {
            if (!selected[s]) continue;
            double total = best[s].setup + best[s].solve;
            printf("%-42s %8.3f %8.3f %8.3f %5d %10.2e\n", best[s].name, best[s].setup, best[s].solve, total,
                   best[s].iterations, best[s].residual);
            if (s > 0 && total < fastest_peer) fastest_peer = total;
        }
        if (selected[0] && fastest_peer < 1e300)
            printf("ratio: fastest hypre / adjunct (total time) %.2f\n", fastest_peer / (best[0].setup + best[0].solve));
    }
    free(runs);
    free(p.flags);
    free(p.rhs);
    MPI_Comm_free(&p.comm.cart);
    HYPRE_Finalize();
    MPI_Finalize();
    return 0;
}
