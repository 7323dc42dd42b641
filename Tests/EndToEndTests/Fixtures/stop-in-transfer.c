// A fault for FaultTests, loaded into the ranks with LD_PRELOAD: the rank whose OMPI_COMM_WORLD_RANK equals
// MNIST_DIST_TEST_STOP_RANK stops itself with SIGSTOP as it enters its MNIST_DIST_TEST_STOP_CALL-th MPI_Allreduce
// (counted from 1) of MNIST_DIST_TEST_STOP_VALUES values. mnist-dist waits until every rank has arrived before a
// blocking all-reduce starts, so the other ranks are inside that transfer when this rank freezes: a rank frozen
// mid-transfer, as the others see it. Every other call goes straight to Open MPI's.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <mpi.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

typedef int (*allreduce_function)(const void *, void *, int, MPI_Datatype, MPI_Op, MPI_Comm);

int MPI_Allreduce(const void *send, void *receive, int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm) {
    static long calls = 0;
    const char *target = getenv("MNIST_DIST_TEST_STOP_RANK"), *rank = getenv("OMPI_COMM_WORLD_RANK");
    const char *values = getenv("MNIST_DIST_TEST_STOP_VALUES"), *call = getenv("MNIST_DIST_TEST_STOP_CALL");
    if (target != NULL && rank != NULL && values != NULL && call != NULL && strcmp(target, rank) == 0
        && count == atol(values) && ++calls == atol(call)) {
        raise(SIGSTOP);
    }
    allreduce_function allreduce = (allreduce_function)dlsym(RTLD_NEXT, "MPI_Allreduce");
    return allreduce(send, receive, count, type, op, comm);
}
