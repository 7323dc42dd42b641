#!/usr/bin/env bash
# Makes the Python environment the tests use to read mnist-dist's files with other tools' own readers:
# TensorBoard's event reader (--tensorboard), Pillow (pictures for predict), and onnx, onnxruntime, safetensors and
# PyTorch (export, and a model trained in PyTorch for evaluate and --init-from). PyPI's torch wheel brings its CUDA
# libraries (about 5 GB installed); only its CPU side is used. Selenium drives Debian's chromium
# (apt-get install chromium chromium-driver) for serve's page. scripts/test.sh runs this; it does
# nothing when the environment is already there. Needs python3 with venv, and PyPI (or a mirror pip is set up for).
#
#   scripts/python-env.sh            # makes .venv-tests (ignored by git)
#   TEST_VENV=/path scripts/python-env.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${TEST_VENV:-$root/.venv-tests}"
# Versions the tests were written against; a newer reader must still read what mnist-dist writes.
packages=(tensorboard==2.21.0 pillow==13.0.0 numpy==2.4.6 onnx==1.23.2 onnxruntime==1.32.0 safetensors==0.8.0 torch==2.15.0
          selenium==4.51.0)
stamp="$venv/.mnist-dist-packages"
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "${packages[*]}" ]; then
  exit 0
fi
echo "making the tests' Python environment in $venv (${packages[*]})"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "${packages[@]}"
echo "${packages[*]}" > "$stamp"
