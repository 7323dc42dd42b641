#!/usr/bin/env bash
# Runs `mnist-dist bench` as a machine with AVX2 and no AVX-512 would, on whatever x86-64 CPU this is:
#   - mnist-dist built for Haswell (MNIST_DIST_TARGET_CPU=haswell, into .build-avx2): its own kernels at 8 lanes;
#   - OpenBLAS's Haswell kernels (OPENBLAS_CORETYPE=Haswell; OPENBLAS_L2_SIZE is left to OpenBLAS);
#   - the reference programs held to AVX2 as well: PyTorch's ATen kernels (ATEN_CPU_CAPABILITY), oneDNN
#     (ONEDNN_MAX_CPU_ISA) and MKL (MKL_ENABLE_INSTRUCTIONS); JAX through XLA's --xla_cpu_max_isa.
# On an AVX-512 machine this shows both sides at AVX2 width with the same cores, clocks and caches; it is not an
# AVX2 CPU (whose cores, caches and clocks differ). On an AVX2 machine it is the plain bench.
#
#   scripts/bench-avx2.sh --epochs 6 --ranks 1,2 --rounds 3 --compare
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
echo "building mnist-dist for Haswell (AVX2) into .build-avx2" >&2
if ! MNIST_DIST_TARGET_CPU=haswell swift build -c release --scratch-path .build-avx2 > .build-avx2.log 2>&1; then
  tail -30 .build-avx2.log >&2
  echo "bench-avx2: the Haswell build failed (whole log: .build-avx2.log)" >&2
  exit 1
fi
exec env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=Haswell ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 \
  MKL_ENABLE_INSTRUCTIONS=AVX2 XLA_FLAGS="--xla_cpu_max_isa=AVX2${XLA_FLAGS:+ $XLA_FLAGS}" \
  .build-avx2/release/mnist-dist bench "$@"
