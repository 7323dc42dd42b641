#!/usr/bin/env bash
# Regenerates the reference values the tests compare with (Tests/References/*.json) from numpy and PyTorch.
# The JSON files are committed, so the tests need neither; run this only to change or re-derive them.
#
#   scripts/make-references.sh              # makes .venv-reference (numpy, torch) on first use, then runs
#   TORCH_WHEEL=/path/torch-...whl scripts/make-references.sh   # install torch from a local wheel
#
# PyPI's default torch wheel pulls in several GB of CUDA libraries; a CPU-only wheel is enough. The generators are
# deterministic: a second run writes the same bytes (with the same numpy and torch versions).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${REFERENCE_VENV:-$root/.venv-reference}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q numpy "${TORCH_WHEEL:-torch}"
fi
cd "$root/Tests/References"
for name in numpy_randomstate0:make_numpy_reference torch_reference:make_torch_reference \
            model_reference:make_model_reference; do
  output="${name%%:*}.json" script="${name#*:}.py"
  "$venv/bin/python" "$script" > "$output.new"
  mv "$output.new" "$output"
  echo "wrote Tests/References/$output"
done
git -C "$root" diff --stat -- Tests/References
