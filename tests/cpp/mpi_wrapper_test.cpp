// Distributed CG through the C++ wrapper with MPI (built and run by
// tests/mpi.rs with 1, 2 and 4 ranks): a 1D Laplacian split into contiguous
// blocks, the halo exchanged with MPI_Sendrecv inside a lambda operator, and
// a lambda allreduce. Rank 0 compares with a serial solve of the whole
// system; a rank whose operator throws makes every rank fail.
#include "adjunct.hpp"

// The C API of MPI only (OpenMPI's deprecated C++ bindings do not build
// warning-free).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const bool fail = argc > 1 && std::string(argv[1]) == "--fail";
    const std::size_t n = 400, lo = n * rank / size, hi = n * (rank + 1) / size, local = hi - lo;
    int failures = 0;
    int calls = 0;
    auto apply = [&](const double *x, double *y, std::size_t len) {
        double left = 0.0, right = 0.0;  // neighbours' boundary values (0 outside)
        const int below = rank > 0 ? rank - 1 : MPI_PROC_NULL, above = rank + 1 < size ? rank + 1 : MPI_PROC_NULL;
        MPI_Sendrecv(&x[0], 1, MPI_DOUBLE, below, 0, &right, 1, MPI_DOUBLE, above, 0, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE);
        MPI_Sendrecv(&x[len - 1], 1, MPI_DOUBLE, above, 1, &left, 1, MPI_DOUBLE, below, 1, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE);
        if (fail && rank == size - 1 && ++calls == 3) throw std::runtime_error("operator failed");
        for (std::size_t i = 0; i < len; ++i)
            y[i] = 2.0 * x[i] - (i > 0 ? x[i - 1] : left) - (i + 1 < len ? x[i + 1] : right);
    };
    auto allreduce = [](double *buf, std::size_t k) {
        MPI_Allreduce(MPI_IN_PLACE, buf, static_cast<int>(k), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    };
    std::vector<double> b(local), x(local, 0.0);
    for (std::size_t i = 0; i < local; ++i) b[i] = std::sin(0.05 * (lo + i));
    adjunct::Operator op = adjunct::Operator::from_callable(local, apply);
    adj_cg_options options = adjunct::cg_options();
    options.rtol = 1e-12;
    try {
        adj_solve_report report = adjunct::cg_distributed(op, nullptr, b, x, allreduce, options);
        if (fail) ++failures;  // must not succeed
        // Gather and compare with the serial solve on rank 0.
        std::vector<int> counts(size), displs(size);
        const int count = static_cast<int>(local);
        MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
        for (int r = 1; r < size; ++r) displs[r] = displs[r - 1] + counts[r - 1];
        std::vector<double> all(n);
        MPI_Gatherv(x.data(), count, MPI_DOUBLE, all.data(), counts.data(), displs.data(), MPI_DOUBLE, 0,
                    MPI_COMM_WORLD);
        if (rank == 0) {
            std::vector<double> full_b(n), serial(n, 0.0);
            for (std::size_t i = 0; i < n; ++i) full_b[i] = std::sin(0.05 * i);
            adjunct::Operator whole = adjunct::Operator::from_callable(n, [](const double *v, double *y, std::size_t len) {
                for (std::size_t i = 0; i < len; ++i)
                    y[i] = 2.0 * v[i] - (i > 0 ? v[i - 1] : 0.0) - (i + 1 < len ? v[i + 1] : 0.0);
            });
            adj_solve_report serial_report = adjunct::cg_distributed(
                whole, nullptr, full_b, serial, [](double *, std::size_t) {}, options);
            double diff = 0.0, norm = 0.0;
            for (std::size_t i = 0; i < n; ++i) {
                diff += (all[i] - serial[i]) * (all[i] - serial[i]);
                norm += serial[i] * serial[i];
            }
            if (serial_report.iterations != report.iterations || std::sqrt(diff / norm) > 1e-10) ++failures;
            std::printf("%d ranks: %zu iterations (serial %zu), relative difference %.2e\n", size, report.iterations,
                        serial_report.iterations, std::sqrt(diff / norm));
        }
    } catch (const adjunct::Error &e) {
        // Ranks whose own operator did not throw see a callback error.
        if (!fail || e.status() != ADJ_ERR_CALLBACK) ++failures;
        std::printf("rank %d: adjunct::Error %d\n", rank, static_cast<int>(e.status()));
    } catch (const std::runtime_error &e) {
        if (!fail || rank != size - 1) ++failures;
        std::printf("rank %d: rethrown: %s\n", rank, e.what());
    }
    int total = 0;
    MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) std::printf("%s\n", total ? "FAILED" : "all checks passed");
    MPI_Finalize();
    return total ? 1 : 0;
}
