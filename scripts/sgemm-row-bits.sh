#!/usr/bin/env bash
# Whether OpenBLAS gives a row of the MLP's products the same bits whatever rows and columns the call covers
# (benchmarks/kernels/sgemm_row_bits.c), under each kernel family this CPU can run: Haswell (what the MLP runs on,
# and what OPENBLAS_CORETYPE forces in CI), Zen, and on AVX-512 CPUs SkylakeX and Cooperlake. Needs gcc or clang and
# libopenblas-dev.
#
#   scripts/sgemm-row-bits.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
compiler="$(command -v cc || command -v clang || true)"
[ -n "$compiler" ] || { echo "sgemm-row-bits: no C compiler (apt-get install gcc)" >&2; exit 69; }
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$compiler" -O2 "$root/benchmarks/kernels/sgemm_row_bits.c" -lopenblas -o "$out/sgemm-row-bits"
echo "CPU: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), family $(sed -n 's/^cpu family\s*: //p' /proc/cpuinfo | head -1) model $(sed -n 's/^model\s*: //p' /proc/cpuinfo | head -1)"
cores="Haswell Zen"
if grep -qw avx512f /proc/cpuinfo; then cores="$cores SkylakeX"; fi
if grep -qw avx512_bf16 /proc/cpuinfo; then cores="$cores Cooperlake"; fi
for core in $cores; do
  OPENBLAS_CORETYPE="$core" OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 "$out/sgemm-row-bits"
done
