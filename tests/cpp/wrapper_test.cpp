// Tests of bindings/cpp/adjunct.hpp, built by tests/c_programs.rs with
// g++ -std=c++17 -Wall -Wextra -Werror (once with ASan + UBSan, and once
// with -std=c++20 for the std::span views).
#include "adjunct.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>
#if defined(__cpp_lib_span)
#include <span>
#endif

static int failures = 0;

#define EXPECT(cond)                                                        \
    do {                                                                    \
        if (!(cond)) {                                                      \
            std::fprintf(stderr, "%s:%d: EXPECT(%s) failed\n", __FILE__, __LINE__, #cond); \
            ++failures;                                                     \
        }                                                                   \
    } while (0)

// 1D Laplacian with Dirichlet ends, as CSR with 32-bit indices.
static adjunct::Operator laplacian(int n) {
    std::vector<int32_t> ptr{0}, cols;
    std::vector<double> vals;
    for (int i = 0; i < n; ++i) {
        for (int j = i - 1; j <= i + 1; ++j)
            if (j >= 0 && j < n) {
                cols.push_back(j);
                vals.push_back(j == i ? 2.0 : -1.0);
            }
        ptr.push_back(static_cast<int32_t>(cols.size()));
    }
    return adjunct::Operator::csr(n, n, ptr, cols, vals);
}

static void apply_laplacian(const double *x, double *y, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i)
        y[i] = 2.0 * x[i] - (i > 0 ? x[i - 1] : 0.0) - (i + 1 < n ? x[i + 1] : 0.0);
}

static double max_diff(const std::vector<double> &a, const std::vector<double> &b) {
    double m = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) m = std::fmax(m, std::fabs(a[i] - b[i]));
    return m;
}

int main() {
    const int n = 200;
    std::vector<double> b(n);
    for (int i = 0; i < n; ++i) b[i] = std::sin(0.05 * i);

    // CSR solve with Jacobi; residual through apply().
    adjunct::Operator a = laplacian(n);
    adjunct::Operator moved = std::move(a);  // move-only handles
    EXPECT(moved.dim() == static_cast<std::size_t>(n));
    adjunct::Preconditioner jacobi = adjunct::Preconditioner::jacobi(moved);
    std::vector<double> x(n, 0.0);
    adj_cg_options options = adjunct::cg_options();
    options.rtol = 1e-12;
    adj_solve_report report = adjunct::cg(moved, &jacobi, b, x, options);
    EXPECT(report.reason == ADJ_CONVERGED_RTOL);
    EXPECT(max_diff(moved.apply(x), b) < 1e-9);

    // Named options and array views: the same solve from a CgOptions, from
    // pointer + size views, and (C++20) from spans; the history setter fills
    // the caller's buffer.
    {
        std::vector<double> history(40, -1.0);
        std::vector<double> x_named(n, 0.0), x_view(n, 0.0);
        adj_solve_report named = adjunct::cg(moved, &jacobi, b, x_named,
                                             adjunct::CgOptions().rtol(1e-12).residual_history(history));
        EXPECT(named.iterations == report.iterations);
        EXPECT(x_named == x);
        EXPECT(named.residual_history_length == std::min<std::size_t>(named.iterations, history.size()));
        EXPECT(history[0] > 0.0);
        adj_solve_report viewed = adjunct::cg(moved, &jacobi, adjunct::In<double>(b.data(), b.size()),
                                              adjunct::InOut<double>(x_view.data(), x_view.size()),
                                              adjunct::CgOptions().rtol(1e-12));
        EXPECT(viewed.iterations == report.iterations && x_view == x);
#if defined(__cpp_lib_span)
        std::vector<double> x_span(n, 0.0);
        adjunct::cg(moved, &jacobi, std::span<const double>(b), std::span<double>(x_span),
                    adjunct::CgOptions().rtol(1e-12));
        EXPECT(x_span == x);
#endif
        // A view of the wrong length is refused before the library is called.
        bool refused = false;
        try {
            adjunct::cg(moved, &jacobi, b, adjunct::InOut<double>(x_view.data(), n - 1));
        } catch (const adjunct::Error &e) {
            refused = e.status() == ADJ_ERR_DIMENSION_MISMATCH;
        }
        EXPECT(refused);
        // CSR arrays shorter than the row pointers say are refused too.
        bool short_values = false;
        try {
            adjunct::Operator::csr(2, 2, std::vector<int32_t>{0, 1, 2}, std::vector<int32_t>{0, 1},
                                   std::vector<double>{1.0});
        } catch (const adjunct::Error &e) {
            short_values = e.status() == ADJ_ERR_DIMENSION_MISMATCH;
        }
        EXPECT(short_values);
        // Every options class starts from the library's defaults.
        const adj_cdm_options cdm_defaults = adjunct::CdmOptions();
        EXPECT(cdm_defaults.orthogonalize == adjunct::cdm_options().orthogonalize);
        const adj_implicit_options implicit = adjunct::ImplicitOptions().solver(ADJ_SOLVER_CG).ridge(0.5);
        EXPECT(implicit.solver == ADJ_SOLVER_CG && implicit.ridge == 0.5 && implicit.gmres_restart == 30);
        const adj_ot_options ot = adjunct::OtOptions().eps(0.25).method(ADJ_OT_SINKHORN);
        EXPECT(ot.eps == 0.25 && ot.method == ADJ_OT_SINKHORN);
        const adj_grid_options grid = adjunct::GridOptions().scale(2.0).air_code(7);
        EXPECT(grid.scale == 2.0 && grid.air_code == 7 && grid.fluid_code == ADJ_CELL_FLUID);
    }

    // Single-reduction CG with a (serial) reduction that counts its calls.
    std::size_t reductions = 0;
    std::vector<double> xd(n, 0.0);
    adj_solve_report rd = adjunct::cg_distributed(moved, &jacobi, b, xd, [&](double *, std::size_t) { ++reductions; },
                                                  options);
    EXPECT(reductions == rd.iterations + 2);
    EXPECT(max_diff(moved.apply(xd), b) < 1e-9);

    // Conjugate directions: Jacobi directions and a lambda generator.
    std::vector<double> xc(n, 0.0);
    adj_cdm_options co = adjunct::cdm_options();
    co.rtol = 1e-10;
    adjunct::CdmReport rc = adjunct::cdm(moved, jacobi, b, xc, co);
    EXPECT(rc.solve.reason == ADJ_CONVERGED_RTOL);
    EXPECT(max_diff(moved.apply(xc), b) < 1e-7);
    std::vector<double> xl(n, 0.0);
    adjunct::cdm_with(moved, [](const double *r, double *d, std::size_t len) { std::copy(r, r + len, d); }, b, xl, co);
    EXPECT(max_diff(moved.apply(xl), b) < 1e-7);
    bool missing = false;
    try {
        adjunct::Model::load("/nonexistent/model.safetensors");
    } catch (const adjunct::Error &e) {
        missing = e.status() == ADJ_ERR_IO;
    }
    EXPECT(missing);

    // The learned multigrid V-cycle as CG's preconditioner (cwd: the crate root).
    {
        const std::size_t side = 48;
        std::vector<uint8_t> cells(side * side, ADJ_CELL_FLUID);
        for (std::size_t i = 0; i < side; ++i) cells[(side - 1) * side + i] = ADJ_CELL_AIR;
        adjunct::Operator grid = adjunct::Operator::grid_poisson(side, side, 1, cells);
        adjunct::Model schedule = adjunct::Model::load("models/multigrid_2d.safetensors");
        EXPECT(schedule.ndim() == 2);
        adjunct::Preconditioner learned = adjunct::Preconditioner::learned_multigrid(grid, schedule);
        adjunct::Preconditioner classical =
            adjunct::Preconditioner::of_kind(grid, adjunct::PreconditionerKind::multigrid);
        std::vector<double> xc2(grid.dim(), 0.0), ones(grid.dim(), 1.0);
        EXPECT(adjunct::cg(grid, &classical, ones, xc2, options).reason == ADJ_CONVERGED_RTOL);
        std::vector<double> rhs(grid.dim(), 1.0), xg(grid.dim(), 0.0);
        adj_solve_report rg = adjunct::cg(grid, &learned, rhs, xg, options);
        EXPECT(rg.reason == ADJ_CONVERGED_RTOL);
        EXPECT(max_diff(grid.apply(xg), rhs) < 1e-8);
        adjunct::Model network = adjunct::Model::load("models/cdm_2d.safetensors");
        bool refused = false;
        try {
            adjunct::Preconditioner::learned_multigrid(grid, network);
        } catch (const adjunct::Error &e) {
            refused = e.status() == ADJ_ERR_FORMAT && std::string(e.what()).find("component") != std::string::npos;
        }
        EXPECT(refused);
    }

    // The same system through a lambda operator and a lambda preconditioner.
    int calls = 0;
    adjunct::Operator lambda_op = adjunct::Operator::from_callable(n, [&](const double *in, double *out, std::size_t len) {
        ++calls;
        apply_laplacian(in, out, len);
    });
    adjunct::Preconditioner lambda_pc = adjunct::Preconditioner::from_callable(n, [](const double *r, double *z, std::size_t len) {
        for (std::size_t i = 0; i < len; ++i) z[i] = r[i] / 2.0;
    });
    std::vector<double> x2(n, 0.0);
    adjunct::cg(lambda_op, &lambda_pc, b, x2, options);
    EXPECT(calls > 0);
    EXPECT(max_diff(x, x2) < 1e-8);

    // An exception inside a callback stops the solve and is rethrown as is.
    int countdown = 5;
    adjunct::Operator throwing = adjunct::Operator::from_callable(n, [&](const double *in, double *out, std::size_t len) {
        if (--countdown == 0) throw std::invalid_argument("boom from the operator");
        apply_laplacian(in, out, len);
    });
    std::vector<double> x3(n, 7.0);
    bool rethrown = false;
    try {
        adjunct::cg(throwing, nullptr, b, x3);
    } catch (const std::invalid_argument &e) {
        rethrown = std::string(e.what()) == "boom from the operator";
    }
    EXPECT(rethrown);
    EXPECT(x3[0] == 7.0);  // x untouched on failure

    // Library errors carry the status and the message naming the argument.
    bool caught = false;
    try {
        adjunct::Operator::csr(2, 2, std::vector<int32_t>{0, 1, 2}, std::vector<int32_t>{0, 5}, std::vector<double>{1.0, 1.0});
    } catch (const adjunct::Error &e) {
        caught = e.status() == ADJ_ERR_INVALID_ARGUMENT && std::string(e.what()).find("`col_idx`") != std::string::npos;
    }
    EXPECT(caught);
    caught = false;
    adj_cg_options few = adjunct::cg_options();
    few.max_iterations = 3;
    try {
        std::vector<double> x4(n, 0.0);
        adjunct::cg(moved, nullptr, b, x4, few);
    } catch (const adjunct::SolveError &e) {
        // A solve that ran: the exception carries the report.
        caught = e.status() == ADJ_ERR_NOT_CONVERGED && e.report().iterations == 3 &&
                 e.report().reason == ADJ_DIVERGED_MAX_ITERATIONS && e.report().residual_norm > 0.0;
    }
    EXPECT(caught);
    // Rejected arguments are a plain Error: no report exists.
    bool plain = false;
    try {
        std::vector<double> short_x(n - 1, 0.0);
        adj_cg_options bad = adjunct::cg_options();
        bad.rtol = -1.0;
        adjunct::cg(moved, nullptr, b.data(), x.data(), n, bad);
    } catch (const adjunct::SolveError &) {
        plain = false;
    } catch (const adjunct::Error &e) {
        plain = e.status() == ADJ_ERR_INVALID_ARGUMENT;
    }
    EXPECT(plain);

    // Grid operator: gather / scatter and IC(0).
    const std::size_t nx = 12, ny = 10, nz = 8;
    std::vector<uint8_t> cells(nx * ny * nz, ADJ_CELL_FLUID);
    for (std::size_t c = 0; c < cells.size(); ++c)
        if (c / (nx * ny) == nz - 1) cells[c] = ADJ_CELL_AIR;
    cells[3 + nx * (4 + ny * 2)] = ADJ_CELL_SOLID;
    adjunct::Operator grid = adjunct::Operator::grid_poisson(nx, ny, nz, cells);
    std::vector<double> field(grid.num_cells(), 1.0);
    std::vector<double> rhs = grid.gather(field);
    // The caller's own codes and buffers, without copies.
    std::vector<uint8_t> theirs(cells.size());
    for (std::size_t c = 0; c < cells.size(); ++c)
        theirs[c] = cells[c] == ADJ_CELL_AIR ? 0 : cells[c] == ADJ_CELL_FLUID ? 1 : 2;
    adj_grid_options coded = adjunct::grid_options();
    coded.fluid_code = 1;
    coded.solid_code = 2;
    coded.air_code = 0;
    adjunct::Operator same = adjunct::Operator::grid(nx, ny, nz, theirs.data(), &coded);
    std::vector<double> gathered(same.dim());
    same.gather(field.data(), field.size(), gathered.data(), gathered.size());
    EXPECT(gathered == rhs);
    EXPECT(max_diff(same.apply(rhs), grid.apply(rhs)) == 0.0);
    // The persistent solver on float fields, a few frames with a moving solid.
    adjunct::PressureSolver pressure_solver(nx, ny, nz);
    std::vector<float> divergence(cells.size(), 1.0f), pressure(cells.size(), 0.0f);
    for (std::size_t frame = 0; frame < 4; ++frame) {
        std::vector<uint8_t> moving = theirs;
        moving[2 + frame + nx * (3 + ny * 3)] = 2;  // their solid code
        pressure_solver.update(moving.data(), &coded);
        adj_solve_report pr = pressure_solver.solve(divergence.data(), pressure.data());
        EXPECT(pr.reason == ADJ_CONVERGED_RTOL);
        EXPECT(pressure_solver.setup_seconds() >= 0.0);
    }
    adjunct::Preconditioner ic0 = adjunct::Preconditioner::ic0(grid);
    std::vector<double> p(rhs.size(), 0.0);
    adjunct::cg(grid, &ic0, rhs, p);
    EXPECT(max_diff(grid.apply(p), rhs) < 1e-6);
    EXPECT(grid.scatter(p).size() == cells.size());
    adjunct::Preconditioner mg = adjunct::Preconditioner::multigrid(grid);
    std::vector<double> pm(rhs.size(), 0.0);
    adjunct::cg(grid, &mg, rhs, pm);
    EXPECT(max_diff(grid.apply(pm), rhs) < 1e-6);
    bool rejected = false;
    try {
        adjunct::Preconditioner::multigrid(moved);  // a CSR operator
    } catch (const adjunct::Error &e) {
        rejected = e.status() == ADJ_ERR_INVALID_ARGUMENT;
    }
    EXPECT(rejected);

#if defined(__cpp_lib_span)
    std::vector<double> x5(n, 0.0);
    adjunct::cg(moved, nullptr, std::span<const double>(b), std::span<double>(x5), options);
    EXPECT(max_diff(x, x5) < 1e-8);
#endif

    // Entropic OT.
    std::vector<double> px, py;
    for (int i = 0; i < 40; ++i) px.push_back(std::cos(0.3 * i));
    for (int i = 0; i < 30; ++i) py.push_back(std::sin(0.7 * i));
    std::vector<double> cost = adjunct::cost_sqeuclidean(px, py, 2);
    std::vector<double> ha(20, 1.0 / 20), hb(15, 1.0 / 15);
    adj_ot_options ot = adjunct::ot_options();
    ot.eps = 0.02;
    adjunct::OtSolution s = adjunct::ot_solve(ha, hb, cost, ot, true);
    double err = 0.0;
    for (std::size_t i = 0; i < 20; ++i) {
        double row = 0.0;
        for (std::size_t j = 0; j < 15; ++j) row += s.plan[i * 15 + j];
        err += std::fabs(row - ha[i]);
    }
    EXPECT(err < 1e-9 && s.result.marginal_error <= 1e-9);

    // OT gradients: the plan VJP against the JVP (adjoint identity).
    adjunct::OtGradient dcost = adjunct::ot_cost_gradient(cost, s, ot.eps);
    EXPECT(max_diff(dcost.cost, s.plan) == 0.0);
    std::vector<double> pbar(cost.size()), cdot(cost.size());
    for (std::size_t k = 0; k < cost.size(); ++k) {
        pbar[k] = std::sin(0.37 * k);
        cdot[k] = std::cos(0.11 * k);
    }
    adjunct::OtGradient vjp = adjunct::ot_plan_vjp(cost, s, ot.eps, pbar);
    adjunct::Gradient jvp = adjunct::ot_plan_jvp(cost, s, ot.eps, cdot, std::vector<double>(20, 0.0),
                                                 std::vector<double>(15, 0.0));
    double lhs = 0.0, rhs_dot = 0.0;
    for (std::size_t k = 0; k < cost.size(); ++k) {
        lhs += pbar[k] * jvp.value[k];
        rhs_dot += vjp.cost[k] * cdot[k];
    }
    EXPECT(std::fabs(lhs - rhs_dot) <= 1e-8 * std::fmax(1.0, std::fabs(lhs)));

    // Implicit differentiation of F(x, θ) = L x − θ (L the Laplacian): x* = L⁻¹θ,
    // so the VJP is L⁻ᵀ v̄ = L⁻¹ v̄, checked against CG.
    adjunct::RootProblem root(n, n, adjunct::JacobianKind::symmetric);
    root.a([](const double *v, std::size_t, double *y, std::size_t len) { apply_laplacian(v, y, len); })
        .b_t([](const double *v, std::size_t len, double *y, std::size_t) {
            for (std::size_t i = 0; i < len; ++i) y[i] = -v[i];
        });
    adj_implicit_options io = adjunct::implicit_options();
    io.solver = ADJ_SOLVER_CG;
    io.rtol = 1e-12;
    std::vector<double> xs(n, 0.0);
    adjunct::cg(moved, &jacobi, b, xs, options);
    double scale = 0.0;
    for (double v : xs) scale = std::fmax(scale, std::fabs(v));
    adjunct::Gradient g = adjunct::implicit_vjp(root, b, io);
    EXPECT(g.report.reason == ADJ_CONVERGED_RTOL);
    EXPECT(max_diff(g.value, xs) < 1e-7 * scale);
    // A missing product is an Error; a throwing product is rethrown.
    bool threw = false;
    try {
        adjunct::implicit_jvp(root, b, io);
    } catch (const adjunct::Error &e) {
        threw = e.status() == ADJ_ERR_INVALID_ARGUMENT;
    }
    EXPECT(threw);
    root.a([](const double *, std::size_t, double *, std::size_t) { throw std::runtime_error("product failed"); });
    threw = false;
    try {
        adjunct::implicit_vjp(root, b, io);
    } catch (const std::runtime_error &e) {
        threw = std::string(e.what()) == "product failed";
    }
    EXPECT(threw);

    // Linear-solve gradient: ∂L/∂b = L⁻ᵀ x̄ with the forward preconditioner.
    adjunct::LinearSolveGradient lg = adjunct::linear_solve_vjp(moved, &jacobi, xs, b);
    EXPECT(max_diff(lg.b, xs) < 1e-7 * scale);
    EXPECT(lg.values.size() == static_cast<std::size_t>(3 * n - 2));
    EXPECT(std::fabs(lg.values[0] + lg.b[0] * xs[0]) <= 1e-12 * scale * scale);

    EXPECT(adjunct::version() == ADJ_VERSION_STRING);
    std::printf("%s (%d failures)\n", failures ? "FAILED" : "all checks passed", failures);
    return failures ? 1 : 0;
}
