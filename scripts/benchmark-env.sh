#!/usr/bin/env bash
# Makes the Python environment for the reference programs that `mnist-dist bench --compare` runs
# (benchmarks/*.py): numpy, PyTorch (CPU) and JAX. bench uses it by itself when it exists.
#
#   scripts/benchmark-env.sh                                        # makes .venv-bench (ignored by git)
#   TORCH_WHEEL=/path/torch-2.x+cpu-...whl scripts/benchmark-env.sh   # torch from a local wheel
#   BENCH_VENV=/path scripts/benchmark-env.sh
#
# PyPI's default torch wheel brings several GB of CUDA libraries that a CPU run never loads; a CPU-only wheel
# (download.pytorch.org/whl/cpu) is enough. Nothing is installed when the environment is already complete.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${BENCH_VENV:-$root/.venv-bench}"
command -v python3 >/dev/null || { echo "benchmark-env: python3 is missing (apt-get install python3 python3-venv)" >&2; exit 69; }
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import numpy, torch, jax" 2>/dev/null; then
  "$venv/bin/python" -c "import numpy, torch, jax; print('benchmark environment', '$venv:', 'numpy', numpy.__version__, 'torch', torch.__version__, 'jax', jax.__version__)"
  exit 0
fi
echo "making the reference programs' Python environment in $venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip
"$venv/bin/pip" install -q --disable-pip-version-check numpy "jax[cpu]" "${TORCH_WHEEL:-torch}"
"$venv/bin/python" -c "import numpy, torch, jax; print('benchmark environment', '$venv:', 'numpy', numpy.__version__, 'torch', torch.__version__, 'jax', jax.__version__)"
