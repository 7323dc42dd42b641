// Matrix products with bfloat16 operands and Float accumulation (AVX512_BF16's vdpbf16ps), for Float matrices.
#ifndef CBFLOAT16_H
#define CBFLOAT16_H

#include <stdbool.h>
#include <stdint.h>

/// Whether this CPU runs `bf16_gemm`: AVX512_BF16 (with AVX512F and AVX512BW), and an operating system that saves
/// the AVX-512 registers.
bool bf16_supported(void);

/// `c = op(a) · op(b) + beta · c` for row-major Float matrices, op(a) m x k and op(b) k x n, where every operand
/// is rounded to bfloat16 (to nearest, ties to even) and each product pair is summed in Float by vdpbf16ps.
/// `beta` is 0 (c is not read) or 1. Each element's sum runs over k in the same order whatever the column range a
/// call covers, so a product cut into column ranges gives the same bits as one call.
/// Only on a CPU where `bf16_supported()` is true.
void bf16_gemm(bool transpose_a, bool transpose_b, int m, int n, int k,
               const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);

/// The multiply-adds per second of vdpbf16ps against vfmadd231ps on this core, each in a loop of independent
/// chains lasting about a millisecond: above 1, bfloat16 dot products outrun Float FMAs. Only on a CPU where
/// `bf16_supported()` is true.
double bf16_rate_against_float(void);

#endif
