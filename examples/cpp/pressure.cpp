// Pressure projection from C++ with the header-only wrapper: a 3D smoke box
// (spherical obstacle, air on top) solved with multigrid-preconditioned CG.
//
// Build (after cargo build --release):
//   g++ -std=c++17 -O2 -Iinclude -Ibindings/cpp examples/cpp/pressure.cpp
//       target/release/libadjunct.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o pressure
#include "adjunct.hpp"

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
    const std::size_t n = 48;
    const double h = 1.0 / n;
    std::vector<uint8_t> cells(n * n * n);
    std::vector<double> divergence(cells.size(), 0.0);
    for (std::size_t k = 0; k < n; ++k)
        for (std::size_t j = 0; j < n; ++j)
            for (std::size_t i = 0; i < n; ++i) {
                const double x = (i + 0.5) * h, y = (j + 0.5) * h, z = (k + 0.5) * h;
                const std::size_t c = i + n * (j + n * k);
                const double d2 = (x - 0.5) * (x - 0.5) + (y - 0.5) * (y - 0.5) + (z - 0.4) * (z - 0.4);
                cells[c] = k + 2 >= n ? ADJ_CELL_AIR : d2 < 0.0225 ? ADJ_CELL_SOLID : ADJ_CELL_FLUID;
                divergence[c] = std::sin(6.0 * x) * std::cos(4.0 * y) * z;  // some velocity divergence
            }
    try {
        adjunct::Operator a = adjunct::Operator::grid_poisson(n, n, n, cells, {h, h, h});
        adjunct::Preconditioner m = adjunct::Preconditioner::multigrid(a);
        std::vector<double> b = a.gather(divergence);
        for (double &v : b) v = -v;
        std::vector<double> p(b.size(), 0.0);
        adj_solve_report r = adjunct::cg(a, &m, b, p);
        std::printf("%zu unknowns: %zu iterations, relative residual %.3e\n", b.size(), r.iterations, r.relative_residual);
        std::vector<double> pressure = a.scatter(p);  // per-cell field, 0 in solid and air
        std::printf("pressure at the centre of the top fluid layer: %.6f\n", pressure[n / 2 + n * (n / 2 + n * (n - 3))]);
        return r.relative_residual <= 1e-8 ? 0 : 1;
    } catch (const adjunct::Error &e) {
        std::fprintf(stderr, "adjunct error %d: %s\n", static_cast<int>(e.status()), e.what());
        return 1;
    }
}
