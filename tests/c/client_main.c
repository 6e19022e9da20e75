/* Loads the client library of client_library.c and runs it. */
#include <stdio.h>

int client_solve(void);

int main(void) {
    int s = client_solve();
    printf("client_solve: %d\n", s);
    return s != 0;
}
