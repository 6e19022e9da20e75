/* A fluid simulator's pressure projection, frame after frame, with the
 * persistent solver: the simulator's own cell codes (air 0, fluid 1,
 * solid 2) and float fields, A scaled by dt/ρ, the max-norm stopping test
 * simulators use, a solid ball moving through the box, and a warm start
 * from the last pressure.
 *
 *   frames [N] [FRAMES]   (default 32³, 20 frames)
 */
#include "adjunct.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { SIM_AIR = 0, SIM_FLUID = 1, SIM_SOLID = 2 };

#define CHECK(call)                                                                                   \
    do {                                                                                              \
        adj_status s_ = (call);                                                                       \
        if (s_ != ADJ_OK) {                                                                           \
            fprintf(stderr, "%s: %s: %s\n", #call, adj_status_string(s_), adj_last_error_message()); \
            return 1;                                                                                 \
        }                                                                                             \
    } while (0)

int main(int argc, char **argv) {
    const size_t n = argc > 1 ? (size_t)atoi(argv[1]) : 32;
    const int frames = argc > 2 ? atoi(argv[2]) : 20;
    const size_t cells_total = n * n * n;
    const double dt = 1.0 / 60.0, rho = 1000.0, h = 1.0 / (double)n;
    uint8_t *cells = malloc(cells_total);
    float *divergence = malloc(cells_total * sizeof(float));
    float *pressure = calloc(cells_total, sizeof(float));
    if (!cells || !divergence || !pressure) return 1;

    adj_pressure_solver *solver = NULL;
    CHECK(adj_pressure_solver_new(n, n, n, &solver));
    adj_grid_options grid;
    CHECK(adj_grid_options_init(&grid, sizeof grid));
    grid.fluid_code = SIM_FLUID; /* the simulator's codes, stated instead of remapped */
    grid.solid_code = SIM_SOLID;
    grid.air_code = SIM_AIR;
    const double spacing[3] = {h, h, h};
    grid.spacing = spacing;
    grid.scale = dt / rho; /* A = (dt/ρ)·(−∇²): b is −∇·u* itself */
    adj_cg_options options;
    CHECK(adj_cg_options_init(&options, sizeof options));
    options.norm = ADJ_NORM_MAX; /* stop on max |divergence left| */
    options.rtol = 0.0;
    options.atol = 1e-6;
    adj_solve_report report;
    CHECK(adj_solve_report_init(&report, sizeof report));

    size_t total_iterations = 0;
    for (int t = 0; t < frames; t++) {
        const double cx = 0.25 + 0.5 * t / (double)frames, cy = 0.5, cz = 0.45, r = 0.15;
        for (size_t k = 0; k < n; k++)
            for (size_t j = 0; j < n; j++)
                for (size_t i = 0; i < n; i++) {
                    const size_t c = i + n * (j + n * k);
                    const double x = (i + 0.5) * h, y = (j + 0.5) * h, z = (k + 0.5) * h;
                    const double d2 = (x - cx) * (x - cx) + (y - cy) * (y - cy) + (z - cz) * (z - cz);
                    cells[c] = k + 2 >= n ? SIM_AIR : d2 < r * r ? SIM_SOLID : SIM_FLUID;
                    divergence[c] = (float)(sin(6.0 * x + 0.1 * t) * cos(5.0 * y) * sin(4.0 * z));
                }
        CHECK(adj_pressure_solver_update(solver, cells, &grid));
        CHECK(adj_pressure_solver_solve_f32(solver, divergence, pressure, cells_total, 1, &options, &report));
        total_iterations += report.iterations;
        if (t % 5 == 0 || t + 1 == frames) {
            double setup = 0.0;
            CHECK(adj_pressure_solver_setup_seconds(solver, &setup));
            printf("frame %2d: %zu iterations, max |r| %.2e, setup %.3f s\n", t, report.iterations,
                   report.true_residual_norm, setup);
        }
        if (!(report.true_residual_norm <= options.atol)) return 1;
        for (size_t c = 0; c < cells_total; c++)
            if (cells[c] != SIM_FLUID && pressure[c] != 0.0f) return 1;
    }
    printf("%d frames, %zu iterations: all checks passed\n", frames, total_iterations);
    adj_pressure_solver_free(solver);
    free(cells);
    free(divergence);
    free(pressure);
    return 0;
}
