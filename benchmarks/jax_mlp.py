"""The chapter's MLP in JAX (jit), the reference for mnist-dist's MLP: 784-1024-1024-10, tanh, log-softmax, plain SGD
0.001, batch 128, weights scale 0.1 x RandomState(0).randn; the batch order keeps drawing from the split's
generator, so 10 epochs end at the chapter's train 0.8044 / test 0.7725. With --precision bf16 every product takes
bfloat16 operands and sums in float32 (`preferred_element_type`), parameters and the SGD step staying float32: what a
JAX user writes for mixed precision on a CPU.

    python benchmarks/jax_mlp.py --epochs 4 [--precision bf16]
"""
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from mnist_split import arguments, chapter_split, result

SIZES = [784, 1024, 1024, 10]


OPERANDS = jnp.float32  # jnp.bfloat16 under --precision bf16


def dot(x, weight):
    return jnp.dot(x.astype(OPERANDS), weight.astype(OPERANDS), preferred_element_type=jnp.float32)


def log_probabilities(parameters, x):
    for weight, bias in parameters[:-1]:
        x = jnp.tanh(dot(x, weight) + bias)
    weight, bias = parameters[-1]
    logits = dot(x, weight) + bias
    return logits - logsumexp(logits, axis=1, keepdims=True)


def mean_loss(parameters, x, one_hot):
    return -jnp.mean(jnp.sum(log_probabilities(parameters, x) * one_hot, axis=1))


@jax.jit
def sgd_step(parameters, x, one_hot):
    gradients = jax.grad(mean_loss)(parameters, x, one_hot)
    return [(w - 0.001 * dw, b - 0.001 * db) for (w, b), (dw, db) in zip(parameters, gradients)]


@jax.jit
def accuracy(parameters, x, labels):
    return jnp.mean(jnp.argmax(log_probabilities(parameters, x), axis=1) == labels)


def main():
    global OPERANDS
    options = arguments(__doc__.split("\n")[0], threads=False)
    OPERANDS = jnp.bfloat16 if options.precision == "bf16" else jnp.float32
    train_x, train_y, test_x, test_y, generator = chapter_split(options.data_dir)
    one_hot = np.eye(10, dtype=np.float32)[train_y]
    weights = np.random.RandomState(0)
    parameters = [(0.1 * weights.randn(m, n), 0.1 * weights.randn(n)) for m, n in zip(SIZES[:-1], SIZES[1:])]
    parameters = [(jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32)) for w, b in parameters]
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, products in {options.precision}")
    times = []
    for epoch in range(options.epochs):
        order = generator.permutation(len(train_x))
        start = time.perf_counter()
        for first in range(0, len(order), 128):
            batch = order[first:first + 128]
            parameters = sgd_step(parameters, train_x[batch], one_hot[batch])
        jax.block_until_ready(parameters)
        times.append(time.perf_counter() - start)
        train = float(accuracy(parameters, train_x, train_y))
        test = float(accuracy(parameters, test_x, test_y))
        print(f"epoch {epoch + 1}: {times[-1]:.3f} s, train {train:.4f}, test {test:.4f}", flush=True)
    result(times, test, final_train=f"{train:.4f}", precision=options.precision)


if __name__ == "__main__":
    main()
