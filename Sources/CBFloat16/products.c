// bfloat16 matrix products for Float matrices: operands are rounded to bfloat16 while they are packed, and
// vdpbf16ps multiplies pairs of them and sums each pair into a Float accumulator.
//
// The layout is GotoBLAS's: for each block of KC values of k, op(a)'s rows are packed into panels of MR rows and
// op(b)'s columns into panels of NR columns, each holding, for every pair of k values, MR (or NR) pairs of
// bfloat16 as 32-bit words; the micro-kernel keeps an MR x NR tile of c in 16 registers and adds one k pair per
// step: two loads of b, eight broadcasts of a, sixteen vdpbf16ps. Sums run over k in blocks, in order, whatever
// columns a call covers.
#include "cbfloat16.h"

#include <cpuid.h>
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MR 8
#define NR 32
#define KC 512  // k values per block: an a panel (8 x 512) is 8 KB, a b panel (512 x 32) 32 KB

#define BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

bool bf16_supported(void) {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid_count(1, 0, &eax, &ebx, &ecx, &edx) || !(ecx & bit_OSXSAVE)) return false;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xE6) != 0xE6) return false;  // the OS saves SSE, AVX and the three AVX-512 states
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
    if (!(ebx & bit_AVX512F) || !(ebx & bit_AVX512BW) || !(ebx & bit_AVX512VL)) return false;
    if (!__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) return false;
    return (eax & (1u << 5)) != 0;  // AVX512_BF16
}

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

// 16 chains of `rounds` dependent instructions each; the shortest of three runs, in multiply-adds per second.
BF16 static double dot_rate(long rounds) {
    double best = 0;
    for (int run = 0; run < 3; run++) {
        __m512 acc[16];
        for (int i = 0; i < 16; i++) acc[i] = _mm512_set1_ps((float)i);
        __m512bh x = (__m512bh)_mm512_set1_epi32(0x3F803F80);
        double start = seconds();
        for (long r = 0; r < rounds; r++) {
            for (int i = 0; i < 16; i++) acc[i] = _mm512_dpbf16_ps(acc[i], x, x);
            __asm__ volatile("" : "+v"(x));
        }
        double rate = 16.0 * 32 * rounds / (seconds() - start);
        float sink = 0;
        for (int i = 0; i < 16; i++) sink += _mm512_reduce_add_ps(acc[i]);
        __asm__ volatile("" ::"x"(sink));
        if (rate > best) best = rate;
    }
    return best;
}

BF16 static double fma_rate(long rounds) {
    double best = 0;
    for (int run = 0; run < 3; run++) {
        __m512 acc[16];
        for (int i = 0; i < 16; i++) acc[i] = _mm512_set1_ps((float)i);
        __m512 x = _mm512_set1_ps(1.0f), y = _mm512_set1_ps(0.0f);
        double start = seconds();
        for (long r = 0; r < rounds; r++) {
            for (int i = 0; i < 16; i++) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
            __asm__ volatile("" : "+v"(x));
        }
        double rate = 16.0 * 16 * rounds / (seconds() - start);
        float sink = 0;
        for (int i = 0; i < 16; i++) sink += _mm512_reduce_add_ps(acc[i]);
        __asm__ volatile("" ::"x"(sink));
        if (rate > best) best = rate;
    }
    return best;
}

double bf16_rate_against_float(void) {
    return dot_rate(20000) / fma_rate(20000);
}

// Interleaves two rows of 16 bf16 (the low and high halves of a vector) into 16 pairs.
static const uint16_t interleave_pairs[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                              8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};

// 16 pairs (k, k + 1) of one row, from 32 Floats at `row` of which `valid` exist.
BF16 static inline __m512i pairs_along_row(const float *row, int valid) {
    __mmask16 low = (__mmask16)(valid >= 16 ? 0xFFFF : (1u << valid) - 1);
    __mmask16 high = (__mmask16)(valid >= 32 ? 0xFFFF : valid <= 16 ? 0 : (1u << (valid - 16)) - 1);
    __m512 first = _mm512_maskz_loadu_ps(low, row), second = _mm512_maskz_loadu_ps(high, row + 16);
    return (__m512i)_mm512_cvtne2ps_pbh(second, first);
}

// 16 pairs (row0[j], row1[j]) for j < valid (zero beyond); a null row1 reads as zeros.
BF16 static inline __m512i pairs_across_rows(const float *row0, const float *row1, int valid) {
    __mmask16 mask = (__mmask16)(valid >= 16 ? 0xFFFF : (1u << valid) - 1);
    __m512 first = _mm512_maskz_loadu_ps(mask, row0);
    __m512 second = row1 ? _mm512_maskz_loadu_ps(mask, row1) : _mm512_setzero_ps();
    __m512i halves = (__m512i)_mm512_cvtne2ps_pbh(second, first);
    return _mm512_permutexvar_epi16(_mm512_loadu_si512(interleave_pairs), halves);
}

// Packs `width` (<= panel) lines of a panel for k values [k0, k0 + kc): out[p * panel + line] is the pair
// (x(line, k0 + 2p), x(line, k0 + 2p + 1)), lines beyond `width` and k beyond `k` zero. `along` says whether a
// line's k values are contiguous (x(line, kk) = x[line * ld + kk]) or its lines are (x(line, kk) = x[kk * ld + line]).
BF16 static void pack(const float *x, int ld, bool along, int width, int panel, int k0, int kc, int k, uint32_t *out) {
    int pairs = (kc + 1) / 2;
    if (along) {
        __m512i offsets = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                             _mm512_set1_epi32(panel));
        for (int line = 0; line < panel; line++) {
            if (line >= width) {
                for (int p = 0; p < pairs; p++) out[p * panel + line] = 0;
                continue;
            }
            const float *row = x + (long)line * ld + k0;
            for (int p = 0; p < pairs; p += 16) {
                int valid = kc - 2 * p;  // Floats left in this block
                __m512i words = pairs_along_row(row + 2 * p, valid > 32 ? 32 : valid);
                int count = pairs - p < 16 ? pairs - p : 16;
                _mm512_mask_i32scatter_epi32(out + p * panel + line, (__mmask16)((1u << count) - 1), offsets, words, 4);
            }
        }
    } else {
        for (int p = 0; p < pairs; p++) {
            int kk = k0 + 2 * p;
            const float *row0 = x + (long)kk * ld, *row1 = kk + 1 < k ? row0 + ld : NULL;
            for (int line = 0; line < panel; line += 16) {
                int valid = width - line;
                __m512i words = pairs_across_rows(row0 + line, row1 ? row1 + line : NULL, valid < 0 ? 0 : valid);
                int count = panel - line < 16 ? panel - line : 16;
                _mm512_mask_storeu_epi32(out + p * panel + line, (__mmask16)((1u << count) - 1), words);
            }
        }
    }
}

// c[0..<rows, 0..<columns] (op)= the MR x NR tile of a's and b's panels over `pairs` k pairs: stored when
// `store` (beta 0 on the first block), added otherwise.
BF16 static void tile(int pairs, const uint32_t *a, const uint32_t *b, float *c, int ldc, int rows, int columns,
                      bool store) {
    __m512 acc[MR][2];
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int p = 0; p < pairs; p++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + p * NR), b1 = (__m512bh)_mm512_loadu_si512(b + p * NR + 16);
        for (int i = 0; i < MR; i++) {
            __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[p * MR + i]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
        }
    }
    __mmask16 m0 = (__mmask16)(columns >= 16 ? 0xFFFF : (1u << columns) - 1);
    __mmask16 m1 = (__mmask16)(columns >= 32 ? 0xFFFF : columns <= 16 ? 0 : (1u << (columns - 16)) - 1);
    for (int i = 0; i < rows; i++) {
        float *row = c + (long)i * ldc;
        __m512 v0 = acc[i][0], v1 = acc[i][1];
        if (!store) {
            v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, row), v0);
            v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, row + 16), v1);
        }
        _mm512_mask_storeu_ps(row, m0, v0);
        _mm512_mask_storeu_ps(row + 16, m1, v1);
    }
}

// Per-thread packing space, grown as needed.
static _Thread_local uint32_t *space = NULL;
static _Thread_local size_t space_words = 0;

static uint32_t *packing_space(size_t words) {
    if (words > space_words) {
        free(space);
        space = aligned_alloc(64, ((words * 4 + 63) / 64) * 64);
        if (!space) abort();
        space_words = words;
    }
    return space;
}

BF16 void bf16_gemm(bool transpose_a, bool transpose_b, int m, int n, int k,
                    const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        if (beta == 0) for (int i = 0; i < m; i++) memset(c + (long)i * ldc, 0, (size_t)n * 4);
        return;
    }
    int row_panels = (m + MR - 1) / MR;
    size_t pairs_max = (KC + 1) / 2;
    uint32_t *a_packed = packing_space((size_t)row_panels * MR * pairs_max + NR * pairs_max);
    uint32_t *b_packed = a_packed + (size_t)row_panels * MR * pairs_max;
    for (int k0 = 0; k0 < k; k0 += KC) {
        int kc = k - k0 < KC ? k - k0 : KC, pairs = (kc + 1) / 2;
        bool store = k0 == 0 && beta == 0;
        // op(a)'s row i, value kk: a[i * lda + kk], or transposed a[kk * lda + i].
        for (int panel = 0; panel < row_panels; panel++) {
            int i0 = panel * MR, rows = m - i0 < MR ? m - i0 : MR;
            const float *origin = transpose_a ? a + i0 : a + (long)i0 * lda;
            pack(origin, lda, !transpose_a, rows, MR, k0, kc, k, a_packed + (size_t)panel * MR * pairs);
        }
        // op(b)'s column j, value kk: b[kk * ldb + j], or transposed b[j * ldb + kk].
        for (int j0 = 0; j0 < n; j0 += NR) {
            int columns = n - j0 < NR ? n - j0 : NR;
            const float *origin = transpose_b ? b + (long)j0 * ldb : b + j0;
            pack(origin, ldb, transpose_b, columns, NR, k0, kc, k, b_packed);
            for (int panel = 0; panel < row_panels; panel++) {
                int i0 = panel * MR, rows = m - i0 < MR ? m - i0 : MR;
                tile(pairs, a_packed + (size_t)panel * MR * pairs, b_packed, c + (long)i0 * ldc + j0, ldc, rows,
                     columns, store);
            }
        }
    }
}
