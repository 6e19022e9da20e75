// Eigen 3 ConjugateGradient on a problem written by examples/bench_peers.rs,
// without preconditioner and with its diagonal (Jacobi) and IncompleteCholesky
// preconditioners.
// Prints one line per solver:
//   RESULT <name> <setup_s> <solve_s> <iterations> <true_relative_residual>
// Usage: eigen_cg DIR TOL   (OMP_NUM_THREADS sets Eigen's SpMV threads)
#include <cmath>

#include "common_io.hpp"

#include <Eigen/IterativeLinearSolvers>
#include <Eigen/Sparse>
#include <chrono>

using Matrix = Eigen::SparseMatrix<double, Eigen::RowMajor, int>;

static double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

template <class Solver>
static void run(const char *name, const Matrix &a, const CsrProblem &p, double tol) {
    Eigen::Map<const Eigen::VectorXd> b(p.rhs.data(), p.n);
    auto t0 = std::chrono::steady_clock::now();
    Solver solver;
    solver.setTolerance(tol);
    solver.setMaxIterations(100000);
    solver.compute(a);
    const double setup = seconds_since(t0);
    auto t1 = std::chrono::steady_clock::now();
    Eigen::VectorXd x = solver.solve(b);
    const double solve = seconds_since(t1);
    std::printf("RESULT %s %.6f %.6f %ld %.3e\n", name, setup, solve, static_cast<long>(solver.iterations()),
                true_relative_residual(p, x.data()));
    std::fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: eigen_cg DIR TOL\n");
        return 2;
    }
    const CsrProblem p = read_problem(argv[1]);
    const double tol = std::atof(argv[2]);
    // 32-bit indices (Eigen's IncompleteCholesky needs them); nnz < 2^31 here.
    const std::vector<int> row_ptr(p.row_ptr.begin(), p.row_ptr.end()), col_idx(p.col_idx.begin(), p.col_idx.end());
    Eigen::Map<const Matrix> view(p.n, p.n, p.nnz, row_ptr.data(), col_idx.data(), p.values.data());
    const Matrix a = view;
    run<Eigen::ConjugateGradient<Matrix, Eigen::Lower | Eigen::Upper, Eigen::IdentityPreconditioner>>(
        "eigen_cg", a, p, tol);
    run<Eigen::ConjugateGradient<Matrix, Eigen::Lower | Eigen::Upper, Eigen::DiagonalPreconditioner<double>>>(
        "eigen_cg_jacobi", a, p, tol);
    run<Eigen::ConjugateGradient<Matrix, Eigen::Lower | Eigen::Upper, Eigen::IncompleteCholesky<double>>>(
        "eigen_cg_ichol", a, p, tol);
    return 0;
}
