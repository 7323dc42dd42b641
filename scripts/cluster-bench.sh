#!/usr/bin/env bash
# Measures training on the simulated cluster (scripts/cluster-sim.sh): seconds per epoch and the all-reduce's share,
# for each number of hosts, ranks per host, link and overlap setting, with the bytes each rank all-reduces per step,
# the bytes each host sent per step as its link counted them (Ethernet frames: headers, and the acknowledgements of
# what it received, included; startup and evaluation traffic spread over the steps), and how those compare with a
# ring all-reduce of the gradient over the hosts (2 (H - 1) / H x the gradient's bytes, and that at the link's rate).
# Ranks of one thread. Root only. Not a test.
#   scripts/cluster-bench.sh [--model cnn] [--epochs 2] [--hosts "2 4"] [--ranks-per-host "1 2"] [--reduction double]
#                            [--links "1gbit 0.2ms"] [--overlaps "overlap no-overlap"] [--extra "ARGS"]
# Prints a Markdown table; the figures go into docs/scaling.md.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
model=cnn epochs=2 hostcounts="2 4" perhosts="1" reduction=double extra=""
links=("unlimited" "10gbit 0.05ms" "1gbit 0.2ms") overlaps="overlap no-overlap"
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    --epochs) epochs="$2"; shift 2 ;;
    --hosts) hostcounts="$2"; shift 2 ;;
    --ranks-per-host) perhosts="$2"; shift 2 ;;
    --reduction) reduction="$2"; shift 2 ;;
    --extra) extra="$2"; shift 2 ;;
    --links) IFS=, read -r -a links <<< "$2"; shift 2 ;;
    --overlaps) overlaps="$2"; shift 2 ;;
    *) echo "cluster-bench.sh: unknown option $1" >&2; exit 64 ;;
  esac
done
binary="${MNIST_DIST:-$root/.build/release/mnist-dist}"   # MNIST_DIST names another build
[ -x "$binary" ] || { echo "cluster-bench.sh: build first (swift build -c release)" >&2; exit 1; }
data="${MNIST_DATA_DIR:-$root/data/mnist}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "| hosts x ranks | link | sum | overlap | s/epoch | all-reduce share | MB per step per rank | MB per step per host, on its link | against the ring's bytes | ms per step in all-reduce | against the wire's time |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for hosts in $hostcounts; do
 for perhost in $perhosts; do
  for link in "${links[@]}"; do
    limits=()
    if [ "$link" != unlimited ]; then set -- $link; limits=(--rate "$1" --delay "$2"); fi
    for overlap in $overlaps; do
      metrics="$work/m-$hosts-$perhost-${link// /_}-$overlap.jsonl"
      "$root/scripts/cluster-sim.sh" --hosts "$hosts" --ranks-per-host "$perhost" "${limits[@]}" -- "$binary" train --model "$model" \
        --data-dir "$data" --split chapter --epochs "$epochs" --threads 1 --allreduce "$reduction" --"$overlap" --metrics "$metrics" \
        --progress none --quiet $extra > "$work/log" 2>&1 || { echo "run failed:"; tail -20 "$work/log"; exit 1; }
      python3 - "$metrics" "$hosts" "$link" "$overlap" "$reduction" "$perhost" "$work/log" <<'PY'
import json, re, sys, statistics
path, hosts, link, overlap, reduction, perhost, log = sys.argv[1:]
epochs = [json.loads(l) for l in open(path) if '"epoch"' in l]
sent = [int(b) for b in re.findall(r"cluster-sim: host\d+ sent (\d+) bytes", open(log).read())]
used = epochs[1:] if len(epochs) > 1 else epochs
seconds = statistics.median(e["seconds"] for e in used)
share = statistics.median(e["communication_share"] for e in used)
step_ms = statistics.median(e["allreduce_seconds"] / e["steps"] * 1000 for e in used)
payload = statistics.median(e["allreduce_bytes_per_step"] for e in used)
n, k = int(hosts), int(perhost)
steps = sum(e["steps"] for e in epochs)
# The gradient's bytes as the sum sends them: every rank of a host hands its slice (or, alone, the whole gradient).
gradient = payload * k
ring = 2 * (n - 1) / n * gradient
host_bytes = max(sent) / steps if sent and steps else float("nan")
against = "-"
if link != "unlimited":
    rate = float(link.split()[0].replace("gbit", "")) * 1e9
    wire_ms = ring * 8 / rate * 1000
    against = f"{wire_ms:.1f} ms: {step_ms / wire_ms:.2f}x"
print(f"| {hosts} x {perhost} | {link} | {reduction} | {'on' if overlap == 'overlap' else 'off'} | {seconds:.2f} | {100*share:.0f} % | "
      f"{payload / 1e6:.2f} | {host_bytes / 1e6:.2f} | {host_bytes / ring:.3f}x of {ring / 1e6:.2f} MB | {step_ms:.1f} | {against} |")
PY
    done
  done
 done
done
