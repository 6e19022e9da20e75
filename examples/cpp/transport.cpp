// Entropic optimal transport and its gradient from C++: two point clouds in
// [0, 1]², Sinkhorn-Newton-Sparse at eps = 0.01, then the gradient of the
// regularised cost OT_ε with respect to the source points, checked against a
// central finite difference.
//
// With C_ij = ‖x_i − y_j‖², ∂OT_ε/∂C = P (adjunct::ot_cost_gradient), so
// ∂OT_ε/∂x_i = Σ_j P_ij · 2 (x_i − y_j).
//
// Build (after cargo build --release):
//   g++ -std=c++17 -O2 -Iinclude -Ibindings/cpp examples/cpp/transport.cpp
//       target/release/libadjunct.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o transport
#include "adjunct.hpp"

#include <cmath>
#include <cstdio>
#include <vector>

static const std::size_t n = 300, m = 200, d = 2;
static const double eps = 0.01;

static std::vector<double> points(std::size_t count, double step, double shift) {
    std::vector<double> p(d * count);
    for (std::size_t k = 0; k < p.size(); ++k) p[k] = shift + 0.7 * std::fmod(step * (k + 1), 1.0);
    return p;
}

// OT_ε between uniform weights on x and y.
static adjunct::OtSolution solve(const std::vector<double> &x, const std::vector<double> &y,
                                 std::vector<double> &cost) {
    cost = adjunct::cost_sqeuclidean(x, y, d);
    adj_ot_options options = adjunct::ot_options();
    options.eps = eps;
    options.tol = 1e-12;
    return adjunct::ot_solve(std::vector<double>(n, 1.0 / n), std::vector<double>(m, 1.0 / m), cost, options);
}

int main() {
    const std::vector<double> x = points(n, 0.6180339887, 0.0), y = points(m, 0.4142135623, 0.3);
    try {
        std::vector<double> cost;
        adjunct::OtSolution s = solve(x, y, cost);
        std::printf("OT_eps = %.8f (transport cost %.6f), %zu Sinkhorn + %zu Newton iterations, marginal error %.1e\n",
                    s.result.objective, s.result.transport_cost, s.result.sinkhorn_iterations,
                    s.result.newton_iterations, s.result.marginal_error);

        // Chain rule through the cost: ∂OT_ε/∂x_i = Σ_j P_ij · 2 (x_i − y_j).
        adjunct::OtGradient g = adjunct::ot_cost_gradient(cost, s, eps);
        std::vector<double> grad_x(d * n, 0.0);
        for (std::size_t i = 0; i < n; ++i)
            for (std::size_t j = 0; j < m; ++j)
                for (std::size_t k = 0; k < d; ++k)
                    grad_x[i * d + k] += g.cost[i * m + j] * 2.0 * (x[i * d + k] - y[j * d + k]);

        // Central difference along a fixed direction.
        const double h = 1e-5;
        std::vector<double> dir(d * n), xp(x), xm(x), scratch;
        double predicted = 0.0;
        for (std::size_t k = 0; k < dir.size(); ++k) {
            dir[k] = std::sin(1.3 * k);
            xp[k] += h * dir[k];
            xm[k] -= h * dir[k];
            predicted += grad_x[k] * dir[k];
        }
        const double fd = (solve(xp, y, scratch).result.objective - solve(xm, y, scratch).result.objective) / (2 * h);
        const double rel = std::fabs(fd - predicted) / std::fabs(fd);
        std::printf("directional derivative wrt x: gradient %.10f, finite difference %.10f, relative error %.1e\n",
                    predicted, fd, rel);
        return rel <= 1e-6 ? 0 : 1;
    } catch (const adjunct::Error &e) {
        std::fprintf(stderr, "adjunct error %d: %s\n", static_cast<int>(e.status()), e.what());
        return 1;
    }
}
