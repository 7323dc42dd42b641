#!/usr/bin/env bash
# Hunts flaky tests: runs the in-process suites (every suite but the end-to-end ones, which drive the executable)
# RUNS times, PARALLEL test processes at a time, each with Swift Testing running its tests in parallel, and
# reports how many runs passed. The logs of failed runs are kept in .build/repeat-tests/.
# Usage: scripts/repeat-tests.sh [RUNS] [PARALLEL] [extra arguments for the test binary, e.g. --filter Autodiff]
# Builds the tests first (release); defaults: 20 runs, 2 at a time.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
runs="${1:-20}"; parallel="${2:-2}"; shift $(( $# < 2 ? $# : 2 ))
swift build -c release --build-tests 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
binary="$(swift build -c release --show-bin-path)/mnist-distPackageTests.xctest"
logs=.build/repeat-tests
rm -rf "$logs"; mkdir -p "$logs"
export MNIST_DIST_REPEAT_BINARY="$binary" MNIST_DIST_REPEAT_LOGS="$logs"
one() {  # run number, extra arguments
  local n="$1"; shift
  if "$MNIST_DIST_REPEAT_BINARY" --testing-library swift-testing --skip EndToEnd "$@" > "$MNIST_DIST_REPEAT_LOGS/run-$n.log" 2>&1; then
    echo "run $n passed"; rm "$MNIST_DIST_REPEAT_LOGS/run-$n.log"
  else
    echo "run $n FAILED: $MNIST_DIST_REPEAT_LOGS/run-$n.log"
  fi
}
export -f one
seq "$runs" | xargs -P "$parallel" -I{} bash -c 'one "$@"' _ {} "$@" | tee "$logs/summary.txt"
passed=$(grep -c "passed$" "$logs/summary.txt" || true)
echo "$passed of $runs runs passed"
[ "$passed" = "$runs" ]
