// Whether OpenBLAS's sgemm gives a row the same bits whatever else the call computes, on the MLP's dense products.
//
// One rank's micro-batch (32 rows of a 128-sample batch at -np 4) computed alone is what every layout computes today:
// each rank, and each worker of one process, calls sgemm on its own rows. Ranks that shared their host's products
// would call it once on the host's rows stacked (64 at 2 ranks a host, 128 at 4), each rank taking some of the
// columns. The Double sum's promise (the bits of one process with as many workers) survives that only if a row's
// bits do not depend on the rows stacked around it, nor on the columns a call covers. For each product this prints
// how many of the micro-batch's rows come out bit for bit the same:
//   stacked      the micro-batch's rows inside one call over 64 and over 128 rows;
//   blocks       every 256-column block computed by a call of its own, against the whole-width call;
//   both         stacked and cut into 256-column blocks, against the micro-batch alone in the same blocks.
// (The weight gradient, x^T . dy, sums over the rows: stacking them changes what is summed, not only how.)
// Then what sharing would save on the 1024 x 1024 products: the best of 20 timings of one rank's call alone (32 rows,
// every column) against its quarter of the host's stacked call (128 rows, 256 columns), one thread.
//
//   scripts/sgemm-row-bits.sh      (builds this and runs it under each OpenBLAS kernel family the CPU has)
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { micro = 32, block = 256 };

static float *randoms(size_t count, unsigned *state) {
    float *values = malloc(count * sizeof(float));
    for (size_t i = 0; i < count; i++) {
        *state = *state * 1664525u + 1013904223u;
        values[i] = (float)(*state >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
    }
    return values;
}

// C (m x n, row-major) = op(A) · op(B) for rows [first, first + m) of op(A), columns [column, column + n) of op(B).
// op(A) is `rows` x k in all; transposed operands are read through sgemm's flags, as mnist-dist's Matmul does.
static void product(int transA, int transB, int first, int m, int column, int n, int k, int rows, int width,
                    const float *a, const float *b, float *c, int ldc) {
    int lda = transA ? rows : k, ldb = transB ? k : width;
    const float *aFirst = transA ? a + first : a + (size_t)first * lda;
    const float *bFirst = transB ? b + (size_t)column * ldb : b + column;
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                m, n, k, 1.0f, aFirst, lda, bFirst, ldb, 0.0f, c, ldc);
}

// Rows 0..<micro of `c` against `reference`, both `width` wide: how many are bit for bit the same.
static int equalRows(const float *c, const float *reference, int width) {
    int equal = 0;
    for (int row = 0; row < micro; row++) equal += !memcmp(c + (size_t)row * width, reference + (size_t)row * width, width * sizeof(float));
    return equal;
}

// The micro-batch's rows computed in 256-column blocks, each its own call, out of a call over `rows` rows.
static void blocks(int transA, int transB, int rows, int width, int k, const float *a, const float *b, float *c) {
    for (int column = 0; column < width; column += block) {
        int n = width - column < block ? width - column : block;
        product(transA, transB, 0, rows, column, n, k, rows, width, a, b, c + column, width);
    }
}

static void check(const char *name, int transA, int transB, int width, int k) {
    unsigned state = 1;
    float *a = randoms((size_t)128 * k, &state), *b = randoms((size_t)k * width, &state);
    float *alone = malloc((size_t)128 * width * 4), *other = malloc((size_t)128 * width * 4);
    float *aloneBlocks = malloc((size_t)128 * width * 4);
    // Transposed A is k x rows in memory: a micro-batch of it is its first 32 columns, read with the full leading
    // dimension, as a slice of the stacked rows would be.
    product(transA, transB, 0, micro, 0, width, k, 128, width, a, b, alone, width);
    product(transA, transB, 0, 64, 0, width, k, 128, width, a, b, other, width);
    int stacked64 = equalRows(other, alone, width);
    product(transA, transB, 0, 128, 0, width, k, 128, width, a, b, other, width);
    int stacked128 = equalRows(other, alone, width);
    blocks(transA, transB, micro, width, k, a, b, aloneBlocks);
    int blocked = equalRows(aloneBlocks, alone, width);
    blocks(transA, transB, 128, width, k, a, b, other);
    int both = equalRows(other, aloneBlocks, width);
    printf("  %-34s stacked 64: %2d/%d, 128: %2d/%d   blocks: %2d/%d   both: %2d/%d\n", name, stacked64, micro,
           stacked128, micro, blocked, micro, both, micro);
    free(a); free(b); free(alone); free(other); free(aloneBlocks);
}

static double seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

// Best of 20 timings, in milliseconds, of op(A) (rows x 1024) . op(B) (1024 x columns) out of 1024 x 1024 operands.
static double milliseconds(int transB, int rows, int columns, const float *a, const float *b, float *c) {
    double best = 1e9;
    for (int run = 0; run < 20; run++) {
        double start = seconds();
        product(0, transB, 0, rows, 0, columns, 1024, 128, 1024, a, b, c, 1024);
        double elapsed = seconds() - start;
        if (elapsed < best) best = elapsed;
    }
    return best * 1e3;
}

static void timings(void) {
    unsigned state = 2;
    float *a = randoms((size_t)128 * 1024, &state), *b = randoms((size_t)1024 * 1024, &state);
    float *c = malloc((size_t)128 * 1024 * 4);
    for (int transB = 0; transB < 2; transB++) {
        printf("  %s alone (32 x 1024): %.3f ms; a quarter of the stacked call (128 x 256): %.3f ms\n",
               transB ? "fc2 backward" : "fc2 forward ", milliseconds(transB, 32, 1024, a, b, c),
               milliseconds(transB, 128, 256, a, b, c));
    }
    free(a); free(b); free(c);
}

int main(void) {
    openblas_set_num_threads(1);
    printf("%s (%s kernels); rows of a 32-row micro-batch equal bit for bit:\n", openblas_get_config(),
           openblas_get_corename());
    check("fc2 forward   x . W    (1024x1024)", 0, 0, 1024, 1024);
    check("fc3 forward   x . W    (1024x10)", 0, 0, 10, 1024);
    check("fc2 backward  dy . W^T (1024x1024)", 0, 1, 1024, 1024);
    check("fc3 backward  dy . W^T (10x1024)", 0, 1, 1024, 10);
    timings();
    return 0;
}
