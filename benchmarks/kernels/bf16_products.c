// The candidates for mnist-dist's bfloat16 products, side by side on one core, on the products the chapter's
// models compute (a worker's share of a 128-sample batch: 64 rows):
//   - OpenBLAS sgemm, Float operands: what --precision float runs;
//   - bf16_gemm, mnist-dist's own kernel (Sources/CBFloat16): rounds Float operands while it packs them;
//   - oneDNN's matmul primitive with bfloat16 operands and Float results (Debian's libdnnl 2.6, what PyTorch's
//     autocast runs on), timed with the rounding of both operands to bfloat16 that it needs first.
// Prints the median microseconds of each, GFLOP/s, and oneDNN's implementation name (its ISA path).
//
//   scripts/bf16-kernels.sh      (builds this with the project's kernel and runs it)
#include "cbfloat16.h"

#include <cblas.h>
#include <immintrin.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define CHECK(call) do { dnnl_status_t s = (call); if (s != dnnl_success) { fprintf(stderr, "%s: status %d\n", #call, s); exit(1); } } while (0)

__attribute__((target("avx512f,avx512bf16")))
static void to_bf16(const float *x, uint16_t *y, long count) {
    long i = 0;
    for (; i + 16 <= count; i += 16) _mm256_storeu_si256((__m256i *)(y + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i)));
    for (; i < count; i++) {
        uint32_t bits;
        memcpy(&bits, x + i, 4);
        y[i] = (uint16_t)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }
}

typedef struct { const char *what; int ta, tb, m, n, k; } Shape;

int main(void) {
    static const Shape shapes[] = {
        {"CNN fc1 forward", 0, 1, 64, 128, 9216},   {"CNN fc1 weight gradient", 1, 0, 128, 9216, 64},
        {"CNN fc1 input gradient", 0, 0, 64, 9216, 128}, {"CNN conv2 Winograd forward", 0, 0, 64, 144, 32},
        {"CNN conv2 Winograd weight gradient", 0, 1, 64, 32, 144}, {"CNN conv2 Winograd input gradient", 1, 0, 32, 144, 64},
        {"MLP layer 2 forward", 0, 1, 128, 1024, 1024}, {"MLP layer 2 weight gradient", 1, 0, 1024, 1024, 128},
        {"MLP layer 2 input gradient", 0, 0, 128, 1024, 1024},
    };
    if (!bf16_supported()) { fprintf(stderr, "this CPU has no AVX512_BF16\n"); return 2; }
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    CHECK(dnnl_engine_create(&engine, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    printf("| product | m x n x k | sgemm | bf16_gemm (ours) | oneDNN bf16 matmul, with rounding | oneDNN path |\n");
    printf("| --- | --- | --- | --- | --- | --- |\n");
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        Shape p = shapes[s];
        int lda = p.ta ? p.m : p.k, ldb = p.tb ? p.k : p.n;
        long sa = (long)p.m * p.k, sb = (long)p.k * p.n, sc = (long)p.m * p.n;
        float *a = malloc(4 * sa), *b = malloc(4 * sb), *c = malloc(4 * sc);
        uint16_t *a16 = malloc(2 * sa), *b16 = malloc(2 * sb);
        for (long i = 0; i < sa; i++) a[i] = rand() / (float)RAND_MAX - 0.5f;
        for (long i = 0; i < sb; i++) b[i] = rand() / (float)RAND_MAX - 0.5f;

        dnnl_memory_desc_t a_md, b_md, c_md;
        dnnl_dims_t a_dims = {p.m, p.k}, a_strides = {p.ta ? 1 : p.k, p.ta ? p.m : 1};
        dnnl_dims_t b_dims = {p.k, p.n}, b_strides = {p.tb ? 1 : p.n, p.tb ? p.k : 1};
        dnnl_dims_t c_dims = {p.m, p.n};
        CHECK(dnnl_memory_desc_init_by_strides(&a_md, 2, a_dims, dnnl_bf16, a_strides));
        CHECK(dnnl_memory_desc_init_by_strides(&b_md, 2, b_dims, dnnl_bf16, b_strides));
        CHECK(dnnl_memory_desc_init_by_tag(&c_md, 2, c_dims, dnnl_f32, dnnl_ab));
        dnnl_matmul_desc_t desc;
        CHECK(dnnl_matmul_desc_init(&desc, &a_md, &b_md, NULL, &c_md));
        dnnl_primitive_desc_t pd;
        CHECK(dnnl_primitive_desc_create(&pd, &desc, NULL, engine, NULL));
        const char *implementation = "?";
        CHECK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &implementation));
        dnnl_primitive_t matmul;
        CHECK(dnnl_primitive_create(&matmul, pd));
        dnnl_memory_t am, bm, cm;
        CHECK(dnnl_memory_create(&am, &a_md, engine, a16));
        CHECK(dnnl_memory_create(&bm, &b_md, engine, b16));
        CHECK(dnnl_memory_create(&cm, &c_md, engine, c));
        dnnl_exec_arg_t arguments[3] = {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}};

        double flop = 2.0 * p.m * p.n * p.k, times[3][15];
        int repeats = (int)(3e8 / flop) + 1;
        for (int round = 0; round < 15; round++) {
            double t = now();
            for (int r = 0; r < repeats; r++)
                cblas_sgemm(CblasRowMajor, p.ta ? CblasTrans : CblasNoTrans, p.tb ? CblasTrans : CblasNoTrans, p.m, p.n, p.k,
                            1, a, lda, b, ldb, 0, c, p.n);
            times[0][round] = (now() - t) / repeats;
            t = now();
            for (int r = 0; r < repeats; r++) bf16_gemm(p.ta, p.tb, p.m, p.n, p.k, a, lda, b, ldb, 0, c, p.n);
            times[1][round] = (now() - t) / repeats;
            t = now();
            for (int r = 0; r < repeats; r++) {
                to_bf16(a, a16, sa);
                to_bf16(b, b16, sb);
                CHECK(dnnl_primitive_execute(matmul, stream, 3, arguments));
                CHECK(dnnl_stream_wait(stream));
            }
            times[2][round] = (now() - t) / repeats;
        }
        double median[3];
        for (int i = 0; i < 3; i++) { qsort(times[i], 15, sizeof(double), compare); median[i] = times[i][7]; }
        printf("| %s | %d x %d x %d%s%s |", p.what, p.m, p.n, p.k, p.ta ? ", a transposed" : "", p.tb ? ", b transposed" : "");
        for (int i = 0; i < 3; i++) printf(" %.1f us, %.0f GFLOP/s |", median[i] * 1e6, flop / median[i] * 1e-9);
        printf(" %s |\n", implementation);
        dnnl_primitive_destroy(matmul);
        dnnl_primitive_desc_destroy(pd);
        dnnl_memory_destroy(am);
        dnnl_memory_destroy(bm);
        dnnl_memory_destroy(cm);
        free(a); free(b); free(c); free(a16); free(b16);
    }
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(engine);
    return 0;
}
