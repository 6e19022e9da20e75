// hypre PCG preconditioned by BoomerAMG on a problem written by
// examples/bench_peers.rs, one MPI rank. BoomerAMG settings are hypre's
// recommendations for 3D Poisson-like problems: HMIS coarsening, extended+i
// interpolation (max 4 elements per row), strong threshold 0.5 (0.25 in 2D),
// hybrid symmetric Gauss-Seidel relaxation, one V-cycle per application.
// Prints: RESULT hypre_boomeramg_pcg <setup_s> <solve_s> <iterations> <true_relative_residual>
// Usage: mpirun -n 1 hypre_pcg DIR TOL DIM
#include "common_io.hpp"

#include <HYPRE.h>
#include <HYPRE_IJ_mv.h>
#include <HYPRE_parcsr_ls.h>
#include <mpi.h>

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    if (argc != 4) {
        std::fprintf(stderr, "usage: hypre_pcg DIR TOL DIM\n");
        return 2;
    }
    const CsrProblem p = read_problem(argv[1]);
    const double tol = std::atof(argv[2]);
    const int dim = std::atoi(argv[3]);
    HYPRE_Init();
    const HYPRE_BigInt last = static_cast<HYPRE_BigInt>(p.n - 1);

    double t0 = MPI_Wtime();
    HYPRE_IJMatrix ij;
    HYPRE_IJMatrixCreate(MPI_COMM_WORLD, 0, last, 0, last, &ij);
    HYPRE_IJMatrixSetObjectType(ij, HYPRE_PARCSR);
    std::vector<HYPRE_Int> ncols(p.n);
    std::vector<HYPRE_BigInt> rows(p.n), cols(p.nnz);
    for (long long i = 0; i < p.n; ++i) {
        rows[i] = i;
        ncols[i] = static_cast<HYPRE_Int>(p.row_ptr[i + 1] - p.row_ptr[i]);
    }
    for (long long k = 0; k < p.nnz; ++k) cols[k] = p.col_idx[k];
    std::vector<HYPRE_Int> sizes(ncols);
    HYPRE_IJMatrixSetRowSizes(ij, sizes.data());
    HYPRE_IJMatrixInitialize(ij);
    HYPRE_IJMatrixSetValues(ij, static_cast<HYPRE_Int>(p.n), ncols.data(), rows.data(), cols.data(), p.values.data());
    HYPRE_IJMatrixAssemble(ij);
    HYPRE_ParCSRMatrix a;
    HYPRE_IJMatrixGetObject(ij, reinterpret_cast<void **>(&a));

    auto vector = [&](const double *values) {
        HYPRE_IJVector v;
        HYPRE_IJVectorCreate(MPI_COMM_WORLD, 0, last, &v);
        HYPRE_IJVectorSetObjectType(v, HYPRE_PARCSR);
        HYPRE_IJVectorInitialize(v);
        HYPRE_IJVectorSetValues(v, static_cast<HYPRE_Int>(p.n), rows.data(), values);
        HYPRE_IJVectorAssemble(v);
        return v;
    };
    std::vector<double> zero(p.n, 0.0), x(p.n, 0.0);
    HYPRE_IJVector ij_b = vector(p.rhs.data()), ij_x = vector(zero.data());
    HYPRE_ParVector b, xv;
    HYPRE_IJVectorGetObject(ij_b, reinterpret_cast<void **>(&b));
    HYPRE_IJVectorGetObject(ij_x, reinterpret_cast<void **>(&xv));
    const double assemble = MPI_Wtime() - t0;

    HYPRE_Solver pcg, amg;
    HYPRE_ParCSRPCGCreate(MPI_COMM_WORLD, &pcg);
    HYPRE_PCGSetTol(pcg, tol);
    HYPRE_PCGSetMaxIter(pcg, 1000);
    HYPRE_PCGSetTwoNorm(pcg, 1);
    HYPRE_PCGSetRelChange(pcg, 0);
    HYPRE_BoomerAMGCreate(&amg);
    HYPRE_BoomerAMGSetCoarsenType(amg, 10);
    HYPRE_BoomerAMGSetInterpType(amg, 6);
    HYPRE_BoomerAMGSetPMaxElmts(amg, 4);
    HYPRE_BoomerAMGSetStrongThreshold(amg, dim == 3 ? 0.5 : 0.25);
    HYPRE_BoomerAMGSetRelaxType(amg, 6);
    HYPRE_BoomerAMGSetNumSweeps(amg, 1);
    HYPRE_BoomerAMGSetMaxIter(amg, 1);
    HYPRE_BoomerAMGSetTol(amg, 0.0);
    HYPRE_BoomerAMGSetPrintLevel(amg, 0);
    HYPRE_PCGSetPrecond(pcg, reinterpret_cast<HYPRE_PtrToSolverFcn>(HYPRE_BoomerAMGSolve),
                        reinterpret_cast<HYPRE_PtrToSolverFcn>(HYPRE_BoomerAMGSetup), amg);

    double t1 = MPI_Wtime();
    HYPRE_ParCSRPCGSetup(pcg, a, b, xv);
    const double setup = MPI_Wtime() - t1;
    double t2 = MPI_Wtime();
    HYPRE_ParCSRPCGSolve(pcg, a, b, xv);
    const double solve = MPI_Wtime() - t2;
    HYPRE_Int iterations = 0;
    HYPRE_PCGGetNumIterations(pcg, &iterations);
    HYPRE_IJVectorGetValues(ij_x, static_cast<HYPRE_Int>(p.n), rows.data(), x.data());
    std::printf("RESULT hypre_boomeramg_pcg %.6f %.6f %d %.3e\n", setup, solve, static_cast<int>(iterations),
                true_relative_residual(p, x.data()));
    std::fprintf(stderr, "hypre matrix assembly (not counted): %.3f s\n", assemble);

    HYPRE_BoomerAMGDestroy(amg);
    HYPRE_ParCSRPCGDestroy(pcg);
    HYPRE_IJMatrixDestroy(ij);
    HYPRE_IJVectorDestroy(ij_b);
    HYPRE_IJVectorDestroy(ij_x);
    HYPRE_Finalize();
    MPI_Finalize();
    return 0;
}
