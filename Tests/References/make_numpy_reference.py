"""Writes numpy_randomstate0.json: draws of numpy's legacy RandomState(0) (MT19937) that mnist-dist reproduces
bit for bit: raw 32-bit words, uniform and normal doubles, the chapter's two permutations (train/test split, then
the first epoch's order) and the chapter's MLP initial weights (0.1 * randn).

Run from the repository root: scripts/make-references.sh (it makes the Python environment and runs every
generator here). Only the JSON is read by the tests (MNISTDataTests/RandomStateTests, NNTests/ModelTests)."""
import hashlib
import json
import sys

import numpy as np


def int32_digest(values):
    """SHA-256 of the values as little-endian int32, how the tests hash a permutation without storing it."""
    return hashlib.sha256(np.asarray(values, dtype="<i4").tobytes()).hexdigest()


def fresh():
    return np.random.RandomState(0)


def main():
    out = {"about": "numpy.random.RandomState(0) draws (legacy MT19937), from Tests/References/make_numpy_reference.py",
           "numpy_version": np.__version__}
    # randint over the whole uint32 range masks with 0xffffffff, so it returns the generator's raw words.
    out["first_uint32_draws"] = [int(w) for w in fresh().randint(0, 2**32, size=5, dtype=np.uint32)]
    out["random_sample_first5"] = [float(v) for v in fresh().random_sample(5)]
    out["randn_first6"] = [float(v) for v in fresh().randn(6)]

    stream = fresh()
    split = stream.permutation(10000)
    epoch = stream.permutation(8000)
    out["permutation_10000_first20"] = [int(v) for v in split[:20]]
    out["permutation_10000_sha256_int32le"] = int32_digest(split)
    out["then_permutation_8000_first20"] = [int(v) for v in epoch[:20]]
    out["then_permutation_8000_sha256_int32le"] = int32_digest(epoch)

    # The chapter's MLP: W1 = 0.1 * randn(784, 1024), then b1 = 0.1 * randn(1024), from one stream.
    stream = fresh()
    w1 = 0.1 * stream.randn(784, 1024)
    b1 = 0.1 * stream.randn(1024)
    out["init_scale0.1_W1_784x1024_first5_row_major"] = [float(v) for v in w1.reshape(-1)[:5]]
    out["init_scale0.1_W1_sum"] = float(w1.sum())
    out["init_scale0.1_b1_first5"] = [float(v) for v in b1[:5]]

    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
