#!/usr/bin/env bash
# Sets mnist-dist up on Debian: installs the system packages it needs (when missing), fetches MNIST into data/mnist
# (MNIST_MIRROR=DIR copies from a local mirror instead of downloading), builds the release binary and puts
# `mnist-dist` on the PATH. Idempotent: a second run finds everything in place and changes nothing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# 1. System packages: MPI, BLAS, zlib, libpng and libjpeg-turbo (predict's pictures), pkg-config (SwiftPM finds
#    the libraries through it), Fashion-MNIST, and python3-venv (the tests read our files with other tools' readers).
packages=(openmpi-bin libopenmpi-dev libopenblas-dev zlib1g-dev libpng-dev libturbojpeg0-dev pkg-config
          dataset-fashion-mnist python3-venv)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "System packages: all present"
fi
if ! command -v swift >/dev/null; then
  echo "error: the Swift toolchain (6.2 or later) is not on the PATH; install it from https://www.swift.org/install/linux/" >&2
  exit 1
fi

# 2. Data.
echo "MNIST:"
scripts/fetch-mnist.sh

# 3. Build (incremental: quick when nothing changed).
echo "Building mnist-dist (release)"
swift build -c release --product mnist-dist 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
binary="$(swift build -c release --show-bin-path)/mnist-dist"
[ -x "$binary" ] || { echo "error: the build did not produce $binary" >&2; exit 1; }

# 4. On the PATH: a link in /usr/local/bin (where writable, or with sudo), else say what to export.
link=/usr/local/bin/mnist-dist
if [ "$(readlink "$link" 2>/dev/null)" = "$binary" ]; then
  echo "mnist-dist is on the PATH ($link -> $binary)"
elif [ -w /usr/local/bin ] || { [ "$(id -u)" != 0 ] && sudo -n true 2>/dev/null; }; then
  as_root ln -sfn "$binary" "$link"
  echo "Linked $link -> $binary"
else
  echo "Add mnist-dist to your PATH with:  export PATH=\"$(dirname "$binary"):\$PATH\""
fi
echo "Ready. Try: mnist-dist --help, mnist-dist (one process), mpirun -np 2 mnist-dist (two ranks)."
