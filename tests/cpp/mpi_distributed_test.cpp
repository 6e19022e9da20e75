// Distributed MGPCG through the C++ wrapper with MPI (built and run by
// tests/mpi.rs with 1, 2 and 4 ranks): adjunct::DistributedPressureSolver
// with lambdas for the allreduce and the halo exchange on a 3D grid of
// boxes; rank 0 compares with the serial adjunct::PressureSolver. With
// --fail one rank's exchange throws (after its communication) and every
// rank fails.
#include "adjunct.hpp"

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
    int dims[3] = {0, 0, 0}, periods[3] = {0, 0, 0}, coords[3];
    MPI_Dims_create(size, 3, dims);
    MPI_Comm cart;
    MPI_Cart_create(MPI_COMM_WORLD, 3, dims, periods, 0, &cart);
    MPI_Cart_coords(cart, rank, 3, coords);
    const std::size_t n[3] = {30, 26, 22};
    std::size_t lo[3], hi[3], box[3];
    for (int a = 0; a < 3; ++a) {
        lo[a] = n[a] * coords[a] / dims[a];
        hi[a] = n[a] * (coords[a] + 1) / dims[a];
        box[a] = hi[a] - lo[a];
    }
    auto flag = [&](std::size_t i, std::size_t j, std::size_t k) -> uint8_t {
        if (k + 2 >= n[2]) return ADJ_CELL_AIR;
        const double x = (i + 0.5) / n[0] - 0.5, y = (j + 0.5) / n[1] - 0.5, z = (k + 0.5) / n[2] - 0.4;
        return x * x + y * y + z * z < 0.04 ? ADJ_CELL_SOLID : ADJ_CELL_FLUID;
    };
    auto source = [&](std::size_t i, std::size_t j, std::size_t k) {
        return std::sin(0.3 * i) * std::cos(0.2 * j) + 0.01 * k;
    };
    std::vector<uint8_t> cells(box[0] * box[1] * box[2]);
    std::vector<double> rhs(cells.size()), pressure(cells.size());
    for (std::size_t k = 0; k < box[2]; ++k)
        for (std::size_t j = 0; j < box[1]; ++j)
            for (std::size_t i = 0; i < box[0]; ++i) {
                const std::size_t c = i + box[0] * (j + box[1] * k);
                cells[c] = flag(lo[0] + i, lo[1] + j, lo[2] + k);
                rhs[c] = source(lo[0] + i, lo[1] + j, lo[2] + k);
            }
    int exchanges = 0, failures = 0;
    auto allreduce = [&](double *buf, std::size_t k) {
        MPI_Allreduce(MPI_IN_PLACE, buf, static_cast<int>(k), MPI_DOUBLE, MPI_SUM, cart);
    };
    auto exchange = [&](adj_halo_message *messages, std::size_t count) {
        std::vector<MPI_Request> requests;
        for (std::size_t m = 0; m < count; ++m) {
            int at[3], neighbour;
            for (int a = 0; a < 3; ++a) at[a] = coords[a] + messages[m].offset[a];
            MPI_Cart_rank(cart, at, &neighbour);
            requests.emplace_back();
            MPI_Irecv(messages[m].recv, static_cast<int>(messages[m].recv_bytes), MPI_BYTE, neighbour, 3, cart,
                      &requests.back());
            requests.emplace_back();
            MPI_Isend(messages[m].send, static_cast<int>(messages[m].send_bytes), MPI_BYTE, neighbour, 3, cart,
                      &requests.back());
        }
        MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE);
        if (fail && rank == size - 1 && ++exchanges == 12) throw std::runtime_error("exchange failed");
    };
    try {
        adjunct::DistributedPressureSolver solver(rank, size, allreduce, exchange, n[0], n[1], n[2], lo, hi,
                                                  cells.data());
        adj_comm_stats stats;
        adj_comm_stats_init(&stats, sizeof stats);
        const adj_solve_report report = solver.solve(rhs.data(), pressure.data(), false, adjunct::cg_options(), &stats);
        // The same frame again, warm-started from its own solution.
        solver.update(cells.data());
        const adj_solve_report again = solver.solve(rhs.data(), pressure.data(), true);
        if (again.iterations > 1) ++failures;
        if (fail) ++failures;  // must not succeed
        const std::size_t total = n[0] * n[1] * n[2];
        std::vector<double> field(total, 0.0), all(total, 0.0);
        for (std::size_t k = 0; k < box[2]; ++k)
            for (std::size_t j = 0; j < box[1]; ++j)
                for (std::size_t i = 0; i < box[0]; ++i)
                    field[lo[0] + i + n[0] * (lo[1] + j + n[1] * (lo[2] + k))] = pressure[i + box[0] * (j + box[1] * k)];
        MPI_Reduce(field.data(), all.data(), static_cast<int>(total), MPI_DOUBLE, MPI_SUM, 0, cart);
        if (rank == 0) {
            std::vector<uint8_t> global_cells(total);
            std::vector<double> global_rhs(total), serial(total);
            for (std::size_t k = 0; k < n[2]; ++k)
                for (std::size_t j = 0; j < n[1]; ++j)
                    for (std::size_t i = 0; i < n[0]; ++i) {
                        global_cells[i + n[0] * (j + n[1] * k)] = flag(i, j, k);
                        global_rhs[i + n[0] * (j + n[1] * k)] = source(i, j, k);
                    }
            adjunct::PressureSolver whole(n[0], n[1], n[2]);
            whole.update(global_cells.data());
            const adj_solve_report serial_report = whole.solve(global_rhs.data(), serial.data(), false);
            double diff = 0.0, norm = 0.0;
            for (std::size_t g = 0; g < total; ++g) {
                diff += (all[g] - serial[g]) * (all[g] - serial[g]);
                norm += serial[g] * serial[g];
            }
            if (serial_report.iterations != report.iterations || std::sqrt(diff / norm) > 1e-10) ++failures;
            std::printf("%d ranks: %zu iterations (serial %zu), relative difference %.2e, %llu exchanges\n", size,
                        report.iterations, serial_report.iterations, std::sqrt(diff / norm),
                        static_cast<unsigned long long>(stats.exchanges));
        }
    } catch (const adjunct::Error &e) {
        if (!fail || e.status() != ADJ_ERR_CALLBACK) ++failures;
        std::printf("rank %d: adjunct::Error %d\n", rank, static_cast<int>(e.status()));
    } catch (const std::runtime_error &e) {
        if (!fail || rank != size - 1) ++failures;
        std::printf("rank %d: rethrown: %s\n", rank, e.what());
    }
    int total_failures = 0;
    MPI_Allreduce(&failures, &total_failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) std::printf("%s\n", total_failures ? "FAILED" : "all checks passed");
    MPI_Comm_free(&cart);
    MPI_Finalize();
    return total_failures ? 1 : 0;
}
