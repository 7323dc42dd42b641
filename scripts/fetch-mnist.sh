#!/usr/bin/env bash
# Obtains the four MNIST files into data/mnist/ (or the directory given as $1), verified by the SHA-256 of their
# decompressed content (data/mnist.sha256). For each file, in this order of preference:
#   1. already present and valid: kept;
#   2. copied from a local mirror directory named by MNIST_MIRROR (.gz or raw IDX);
#   3. downloaded from the public mirrors (MNIST_URLS, space-separated base URLs, overrides the list), only when no
#      MNIST_MIRROR is named: a named mirror is authoritative (clusters without internet keep datasets on a shared
#      filesystem, and a mirror holding only the t10k pair means "use the chapter split").
# A file that fails verification is never left in place. The t10k pair is required (the chapter's split needs only
# it); without the train pair, mnist-dist uses the chapter split.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$root/data/mnist}"
sums="$root/data/mnist.sha256"
mirror="${MNIST_MIRROR:-}"
urls="${MNIST_URLS:-https://ossci-datasets.s3.amazonaws.com/mnist https://storage.googleapis.com/cvdf-datasets/mnist http://yann.lecun.com/exdb/mnist}"

mkdir -p "$dest"
tmp="$(mktemp -d "$dest/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# The SHA-256 of a file's IDX content (decompressed if it is gzip).
content_sha() {
  if [ "$(head -c 2 "$1" | od -An -tx1 | tr -d ' \n')" = "1f8b" ]; then
    gzip -dc "$1" 2>/dev/null | sha256sum | cut -d' ' -f1
  else
    sha256sum "$1" | cut -d' ' -f1
  fi
}

# Installs candidate file $1 as $dest/$2(.gz) if its content has digest $3; otherwise removes it.
install_if_valid() {
  local candidate="$1" name="$2" want="$3" target
  if [ "$(content_sha "$candidate")" != "$want" ]; then
    rm -f "$candidate"
    return 1
  fi
  if [ "$(head -c 2 "$candidate" | od -An -tx1 | tr -d ' \n')" = "1f8b" ]; then target="$dest/$name.gz"; else target="$dest/$name"; fi
  rm -f "$dest/$name.gz" "$dest/$name"
  mv -f "$candidate" "$target"
}

download() {  # url output
  if command -v curl >/dev/null; then
    curl --fail --silent --show-error --location --retry 2 --connect-timeout 10 --max-time 300 -o "$2" "$1"
  elif command -v wget >/dev/null; then
    wget --quiet --tries=2 --timeout=10 -O "$2" "$1"
  else
    echo "neither curl nor wget is installed" >&2
    return 1
  fi
}

missing=()
while read -r want name; do
  [ -n "$name" ] || continue
  status=""
  for present in "$dest/$name.gz" "$dest/$name"; do
    if [ -f "$present" ] && [ "$(content_sha "$present")" = "$want" ]; then status="present"; break; fi
  done
  if [ -z "$status" ] && [ -n "$mirror" ]; then
    for candidate in "$mirror/$name.gz" "$mirror/$name"; do
      [ -f "$candidate" ] || continue
      cp "$candidate" "$tmp/$name.part" && chmod 644 "$tmp/$name.part"
      if install_if_valid "$tmp/$name.part" "$name" "$want"; then status="copied from $mirror"; break; fi
      echo "warning: $candidate does not match its checksum; ignored" >&2
    done
  fi
  if [ -z "$status" ] && [ -z "$mirror" ]; then
    for base in $urls; do
      if download "$base/$name.gz" "$tmp/$name.part" 2>/dev/null; then
        if install_if_valid "$tmp/$name.part" "$name" "$want"; then status="downloaded from $base"; break; fi
        echo "warning: $base/$name.gz does not match its checksum; ignored" >&2
      fi
      rm -f "$tmp/$name.part"
    done
  fi
  if [ -n "$status" ]; then
    echo "  $name: $status"
  else
    echo "  $name: not available"
    missing+=("$name")
  fi
done < "$sums"

for name in "${missing[@]}"; do
  case "$name" in
    t10k-*)
      if [ -n "$mirror" ]; then
        where="the mirror $mirror holds no valid copy (a named mirror is used instead of downloading)"
      else
        where="no download succeeded (tried: $urls)"
      fi
      cat >&2 <<MSG
error: could not obtain $name into $dest: $where.
  Copy the MNIST .gz files (at least t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz) into a directory
  and run:  MNIST_MIRROR=/that/directory scripts/fetch-mnist.sh
  or run it without MNIST_MIRROR on a machine that can reach one of the public mirrors.
MSG
      exit 1 ;;
  esac
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "note: only the t10k files are available; mnist-dist will use the chapter's 8,000/2,000 split of them."
fi
echo "MNIST is in $dest"
