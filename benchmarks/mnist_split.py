"""The data every reference program trains on: the chapter's split of the MNIST test set, read from the same IDX
files mnist-dist reads (gzip-compressed or raw).

numpy's RandomState(0) permutes the 10,000 images once; the first 8,000 train and the last 2,000 test. The
generator is returned too: the chapter's MLP keeps drawing its batch order from it.
"""
import argparse
import gzip
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def read_idx(path):
    """An IDX file (big-endian header: two zero bytes, the element type 0x08 for bytes, the number of dimensions,
    then one 32-bit size per dimension) as a uint8 array of its shape."""
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise SystemExit(f"{path}: not an IDX file of bytes")
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def locate(directory, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    raise SystemExit(f"{directory}: no {stem}(.gz); fetch it with scripts/fetch-mnist.sh or name the folder with --data-dir")


def chapter_split(directory):
    """(train images N x 784 float32 in [0, 1], train labels int64, test images, test labels, the generator)."""
    images = read_idx(locate(directory, "t10k-images-idx3-ubyte"))
    labels = read_idx(locate(directory, "t10k-labels-idx1-ubyte")).astype(np.int64)
    generator = np.random.RandomState(0)
    order = generator.permutation(len(images))
    pixels = images.reshape(len(images), -1).astype(np.float32) / np.float32(255)
    train, test = order[:8000], order[8000:]
    return pixels[train], labels[train], pixels[test], labels[test], generator


def arguments(description, threads=True):
    """The options every reference program takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--epochs", type=int, default=10)
    if threads:
        parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_DIR", os.path.join(HERE, "..", "data", "mnist")))
    parser.add_argument("--precision", choices=["float", "bf16"], default="float",
                        help="bf16: the products' operands in bfloat16, summed in float32 (each program says how)")
    return parser.parse_args()


def result(times, accuracy, **extra):
    """The line `mnist-dist bench` reads: the median epoch after the first (the first includes warm-up and
    compiling), and the final test accuracy."""
    median = float(np.median(times[1:] if len(times) > 1 else times))
    fields = " ".join(f"{key} {value}" for key, value in extra.items())
    print(f"RESULT median_epoch_after_first {median:.3f}s first_epoch {times[0]:.3f}s samples_per_s {8000 / median:.0f} "
          f"final_test_acc {accuracy:.4f} {fields}".rstrip(), flush=True)
