#!/usr/bin/env bash
# A bounded load run of `mnist-dist serve` on loopback: a fixed number of POST /predict requests, several at once,
# from ApacheBench (apt-get install apache2-utils), with keep-alive; prints requests/s and the latency percentiles.
#
#   scripts/serve-load.sh MODEL [REQUESTS [CONCURRENCY]]     # defaults: 2000 requests, 8 at once
# The picture sent is the first MNIST test digit as a 28x28 PNG, dark ink on white (data/mnist, or MNIST_DIR).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
model="${1:?usage: scripts/serve-load.sh MODEL [REQUESTS [CONCURRENCY]]}"
requests="${2:-2000}" concurrency="${3:-8}"
command -v ab >/dev/null || { echo "serve-load: ab is missing (apt-get install apache2-utils)" >&2; exit 69; }
mnist="${MNIST_DIR:-$root/data/mnist}"
work="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
python3 - "$mnist" "$work/digit.png" <<'PY'
import gzip, os, struct, sys, zlib
path = os.path.join(sys.argv[1], "t10k-images-idx3-ubyte.gz")
raw = (gzip.open(path).read() if os.path.exists(path) else open(path[:-3], "rb").read())[16:16 + 784]
rows = b"".join(b"\0" + bytes(255 - v for v in raw[28 * r:28 * (r + 1)]) for r in range(28))
chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
open(sys.argv[2], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
PY
mnist_dist="${MNIST_DIST:-$(command -v mnist-dist || echo "$root/.build/release/mnist-dist")}"
"$mnist_dist" serve "$model" --port 0 > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 100); do grep -q "^serving" "$work/serve.log" && break; sleep 0.1; done
address="$(sed -n 's|.*open http://\([^/]*\)/.*|\1|p' "$work/serve.log")"
[ -n "$address" ] || { cat "$work/serve.log" >&2; exit 1; }
echo "CPU: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(nproc) cores; $(head -1 "$work/serve.log")"
ab -k -n "$requests" -c "$concurrency" -p "$work/digit.png" -T image/png "http://$address/predict" 2>&1 |
  grep -E "Complete requests|Failed requests|Non-2xx|Requests per second|Time per request:.*mean\)$|^  (50|90|99|100)%"
