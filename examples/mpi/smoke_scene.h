/* The scene and the box decomposition shared by the MPI examples
 * (poisson_mpi.c, bench_hypre.c): a smoke box of n[0] x n[1] x n[2] cells,
 * walls around, the top two z layers air, a solid sphere of radius 0.15 at
 * (0.5, 0.5, 0.4) and a solid slab, in units of the longest side; and the
 * boxes of a Cartesian grid of ranks. */
#ifndef ADJUNCT_EXAMPLES_SMOKE_SCENE_H
#define ADJUNCT_EXAMPLES_SMOKE_SCENE_H

#include <math.h>
#include <stddef.h>

enum { SCENE_FLUID = 0, SCENE_SOLID = 1, SCENE_AIR = 2 };

/* The kind of cell (i, j, k) (codes as ADJ_CELL_*) with the sphere moved
 * by `shift` along x (a frame of a moving obstacle). */
static inline int scene_kind_at(const size_t n[3], size_t i, size_t j, size_t k, double shift) {
    if (k + 2 >= n[2]) return SCENE_AIR;
    const size_t longest = n[0] > n[1] ? (n[0] > n[2] ? n[0] : n[2]) : (n[1] > n[2] ? n[1] : n[2]);
    const double h = 1.0 / (double)longest;
    const double x = (i + 0.5) * h, y = (j + 0.5) * h, z = (k + 0.5) * h;
    const double cx = 0.5 + shift;
    const double d2 = (x - cx) * (x - cx) + (y - 0.5) * (y - 0.5) + (z - 0.4) * (z - 0.4);
    if (d2 < 0.0225) return SCENE_SOLID;
    if (x > 0.2 && x < 0.45 && z > 0.55 && z < 0.62) return SCENE_SOLID;
    return SCENE_FLUID;
}

/* The kind of cell (i, j, k) of the scene's first frame. */
static inline int scene_kind(const size_t n[3], size_t i, size_t j, size_t k) {
    return scene_kind_at(n, i, j, k, 0.0);
}

/* The right-hand side at fluid cell (i, j, k). */
static inline double scene_source(const size_t n[3], size_t i, size_t j, size_t k) {
    const double x = (i + 0.5) / n[0], y = (j + 0.5) / n[1], z = (k + 0.5) / n[2];
    return sin(6.0 * x + 1.0) * cos(5.0 * y) + z * z - 0.3;
}

/* The box [lo, hi) of the rank at `coords` in a grid of `dims` ranks;
 * with `uneven`, every odd cut moves one cell up. */
static inline void scene_box(const size_t n[3], const int dims[3], const int coords[3], int uneven, size_t lo[3],
                             size_t hi[3]) {
    for (int a = 0; a < 3; ++a) {
        lo[a] = n[a] * (size_t)coords[a] / (size_t)dims[a];
        hi[a] = n[a] * (size_t)(coords[a] + 1) / (size_t)dims[a];
        if (uneven && coords[a] % 2 == 1) lo[a] += 1;
        if (uneven && (coords[a] + 1) % 2 == 1 && coords[a] + 1 < dims[a]) hi[a] += 1;
    }
}

#endif
