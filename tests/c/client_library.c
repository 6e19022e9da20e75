/* A client's own shared library that uses adjunct internally: linked once
 * against the installed static library and once against the shared one
 * (tests/install.rs). It exports client_solve, and from the static library
 * only the adj_* functions. */
#include "adjunct.h"

int client_solve(void) {
    uint8_t cells[16];
    for (int c = 0; c < 16; c++) cells[c] = c >= 12 ? ADJ_CELL_AIR : ADJ_CELL_FLUID;
    adj_operator *op = NULL;
    if (adj_operator_new_grid_poisson(4, 4, 1, cells, NULL, NULL, &op) != ADJ_OK) return -1;
    double b[12], x[12];
    for (int i = 0; i < 12; i++) b[i] = 1.0;
    adj_status s = adj_cg_solve(op, NULL, b, x, 12, NULL, NULL);
    adj_operator_free(op);
    return s;
}
