// A fault for FaultTests, loaded into the ranks with LD_PRELOAD: the rank whose OMPI_COMM_WORLD_RANK equals
// MNIST_DIST_TEST_STOP_RANK stops itself with SIGSTOP as it enters MPI_Finalize, after every collective of its run
// and after rank 0 printed its last line: a rank that freezes at the very end of a job, as the other ranks see it.
// Every other call of MPI_Finalize goes straight to Open MPI's.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

int MPI_Finalize(void) {
    const char *target = getenv("MNIST_DIST_TEST_STOP_RANK"), *rank = getenv("OMPI_COMM_WORLD_RANK");
    if (target != NULL && rank != NULL && strcmp(target, rank) == 0) raise(SIGSTOP);
    int (*finalize)(void) = (int (*)(void))dlsym(RTLD_NEXT, "MPI_Finalize");
    return finalize();
}
