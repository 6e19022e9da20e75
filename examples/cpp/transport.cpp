// Entropic optimal transport from C++: two point clouds, Sinkhorn-Newton-Sparse
// at eps = 1/1200 with costs scaled to [0, 1]; checks the plan's marginals.
//
// Build (after cargo build --release):
//   g++ -std=c++17 -O2 -Iinclude -Ibindings/cpp examples/cpp/transport.cpp
//       target/release/libadjunct.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o transport
#include "adjunct.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

int main() {
    const std::size_t n = 400, m = 300;
    std::vector<double> x(2 * n), y(2 * m);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::fmod(0.6180339887 * (i + 1), 1.0);
    for (std::size_t j = 0; j < y.size(); ++j) y[j] = 0.25 + std::fmod(0.4142135623 * (j + 1), 1.0);
    try {
        std::vector<double> cost = adjunct::cost_sqeuclidean(x, y, 2);
        const double max = *std::max_element(cost.begin(), cost.end());
        for (double &c : cost) c /= max;
        std::vector<double> a(n, 1.0 / n), b(m, 1.0 / m);
        adj_ot_options options = adjunct::ot_options();
        options.eps = 1.0 / 1200.0;
        adjunct::OtSolution s = adjunct::ot_solve(a, b, cost, options, /*want_plan=*/true);
        double err = 0.0;
        for (std::size_t i = 0; i < n; ++i) {
            double row = 0.0;
            for (std::size_t j = 0; j < m; ++j) row += s.plan[i * m + j];
            err += std::fabs(row - a[i]);
        }
        std::printf("transport cost %.6f, %zu Sinkhorn + %zu Newton iterations, row marginal error %.2e\n",
                    s.result.transport_cost, s.result.sinkhorn_iterations, s.result.newton_iterations, err);
        return err <= 1e-9 ? 0 : 1;
    } catch (const adjunct::Error &e) {
        std::fprintf(stderr, "adjunct error %d: %s\n", static_cast<int>(e.status()), e.what());
        return 1;
    }
}
