#!/usr/bin/env bash
# The one test command: builds mnist-dist in release mode and runs every test, including the multi-rank tests under
# real mpirun and the 10-epoch accuracy checks. Extra arguments go to `swift test` (e.g. --filter AutodiffTests).
# MNIST_DIST_QUICK=1 skips the long experiments (minutes) for a fast inner loop.
#
# No run hangs: each test has a time limit of its own (Tests/TestSupport/TimeLimit.swift), and the whole run a
# budget, MNIST_DIST_TEST_BUDGET seconds (default 2700, 45 min; a full run takes 10-15 min on 2 cores). Past it the
# run is stopped and the tests still running are named. The log is kept in .build/test-log.txt; its five longest
# tests are printed at the end.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# Open MPI refuses to start as root without these; the tests also pass --oversubscribe, since they run more
# ranks than a small machine has cores.
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

# The tests read MNIST from data/mnist (fetched here if missing; MNIST_MIRROR names a local mirror).
if [ ! -e data/mnist/t10k-images-idx3-ubyte.gz ] && [ ! -e data/mnist/t10k-images-idx3-ubyte ]; then
  scripts/fetch-mnist.sh
fi

# What only the tests use, installed when missing: a real browser for serve's page (Debian's chromium and its
# driver) and curl for its HTTP requests.
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
for package in chromium chromium-driver curl; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing, for the tests: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Other tools' own readers check the files mnist-dist writes (TensorBoard's, Pillow, onnx, onnxruntime, safetensors,
# PyTorch) and Selenium drives the browser: a Python environment for them.
scripts/python-env.sh

# Each target's dependencies in Package.swift are the modules its files import, no more and no fewer.
python3 scripts/check-imports.py

# One build of the program and the tests together; `swift test` then runs what it built. (A plain `swift build`
# first would compile every module twice: `swift test` builds them again for the test products.)
mkdir -p .build
if ! swift build -c release --build-tests > .build/build-log.txt 2>&1; then
  grep -vE '^\[[0-9]+/[0-9]+\]' .build/build-log.txt >&2 || true
  echo "error: the build failed (the whole log is in .build/build-log.txt)" >&2
  exit 1
fi
grep -E "warning:|Build complete" .build/build-log.txt | grep -v "unhandled; explicitly declare" || true

budget="${MNIST_DIST_TEST_BUDGET:-2700}"
log=.build/test-log.txt
status=0
timeout --kill-after=30 "$budget" swift test -c release --skip-build "$@" 2>&1 | tee "$log" || status=$?
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
  echo "error: the tests ran past their budget of ${budget} s (MNIST_DIST_TEST_BUDGET) and were stopped; still running:" >&2
  scripts/test-report.sh running "$log" >&2 || true
fi
echo "longest tests:"
scripts/test-report.sh longest "$log" 5 || true  # a report, never the run's outcome
exit "$status"
