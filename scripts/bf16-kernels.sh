#!/usr/bin/env bash
# Measures the candidates for the bfloat16 products side by side on one core (benchmarks/kernels/bf16_products.c):
# OpenBLAS sgemm, mnist-dist's own kernel, and oneDNN's bf16 matmul. Needs a CPU with AVX512_BF16, clang (the Swift
# toolchain's) and libdnnl-dev (apt-get install libdnnl-dev; only this comparison uses it).
#
#   scripts/bf16-kernels.sh
# Run it with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset to see what a user's machine does.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
[ -f /usr/include/oneapi/dnnl/dnnl.h ] || { echo "bf16-kernels: oneDNN's headers are missing (apt-get install libdnnl-dev)" >&2; exit 69; }
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
clang -O3 -I"$root/Sources/CBFloat16/include" "$root/benchmarks/kernels/bf16_products.c" "$root/Sources/CBFloat16/products.c" \
  -lopenblas -ldnnl -o "$out/bf16-products"
# OpenBLAS 0.3.21 gives CPUs it does not know narrower kernels than they have; on an AVX-512 CPU mnist-dist then
# runs the SkylakeX ones (KernelChoice in Sources/Training/Machine.swift), and so does this comparison.
core="${OPENBLAS_CORETYPE:-}"
if [ -z "$core" ] && grep -qw avx512f /proc/cpuinfo; then core=SkylakeX; fi
echo "CPU: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), family $(sed -n 's/^cpu family\s*: //p' /proc/cpuinfo | head -1) model $(sed -n 's/^model\s*: //p' /proc/cpuinfo | head -1); OpenBLAS kernels: ${core:-the ones OpenBLAS picks}; one thread"
if [ -n "$core" ]; then export OPENBLAS_CORETYPE="$core"; fi
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$out/bf16-products"
