#!/usr/bin/env bash
# Fuzzes the IDX reader and the checkpoint reader with libFuzzer and AddressSanitizer, side by side, each for a
# bounded time (default 60 s), starting from the seed corpus in Tests/Fuzz/corpus. Fails on any crash, leak, timeout
# or single allocation over 64 MB (inputs are at most 4 KB, so no legitimate allocation comes near that).
# Usage: scripts/fuzz.sh [seconds]      Artifacts (crashing inputs) go to .build-fuzz/artifacts.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
seconds="${1:-60}"
out=.build-fuzz
mkdir -p "$out/artifacts"

# The shared helpers (Sources/Support) are a module of their own, as in the package.
mkdir -p "$out/modules"
swiftc -sanitize=fuzzer,address -parse-as-library -O -g -module-name Support -emit-module \
  -emit-module-path "$out/modules/Support.swiftmodule" -emit-library -static Sources/Support/*.swift \
  -o "$out/libSupport.a" -Xfrontend -disable-reflection-metadata 2>&1 || { echo "fuzz.sh: building Support failed" >&2; exit 1; }

build() {  # name, sources...
  local name="$1"; shift
  swiftc -sanitize=fuzzer,address -parse-as-library -O -g -module-name "Fuzz_$name" -I "$out/modules" \
    -I Sources/CZlib -Xcc -fmodule-map-file=Sources/CZlib/module.modulemap "$@" -L "$out" -lSupport -lz -o "$out/fuzz-$name" 2>&1 \
    | grep -vE "ld.gold: warning: Cannot export local symbol" || true
  [ -x "$out/fuzz-$name" ] || { echo "fuzz.sh: building fuzz-$name failed" >&2; exit 1; }
}

build idx Sources/Deflate/*.swift Sources/MNISTData/*.swift Tests/Fuzz/FuzzIDX.swift
build checkpoint Sources/Deflate/*.swift Sources/Checkpoints/CheckpointFormat.swift Tests/Fuzz/FuzzCheckpoint.swift

# The two fuzzers run side by side, one core each (libFuzzer is single-threaded), then report in order.
fuzz() {  # name
  local name="$1" corpus="$out/corpus-$1"
  mkdir -p "$corpus"
  "$out/fuzz-$name" "$corpus" "Tests/Fuzz/corpus/$name" -max_total_time="$seconds" -max_len=4096 \
    -malloc_limit_mb=64 -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/$name-" > "$out/fuzz-$name.log" 2>&1 < /dev/null
}
echo "== fuzz-idx and fuzz-checkpoint for ${seconds}s, side by side"
declare -A pids
for name in idx checkpoint; do fuzz "$name" & pids[$name]=$!; done
status=0
for name in idx checkpoint; do
  if ! wait "${pids[$name]}"; then
    echo "fuzz-$name FAILED; the crashing input is in $out/artifacts:" >&2
    grep -E "ERROR|==[0-9]+==|Fatal|Test unit written" "$out/fuzz-$name.log" | head -20 >&2
    status=1
  fi
  runs=$(grep -E "stat::number_of_executed_units" "$out/fuzz-$name.log" | awk '{print $2}')
  speed=$(grep -E "stat::average_exec_per_sec" "$out/fuzz-$name.log" | awk '{print $2}')
  coverage=$(grep -oE "cov: [0-9]+ ft: [0-9]+" "$out/fuzz-$name.log" | tail -1)
  echo "   fuzz-$name: $runs runs, $speed exec/s, $coverage, corpus $(ls "$out/corpus-$name" | wc -l) inputs"
done
exit $status
