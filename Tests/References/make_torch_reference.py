"""Writes torch_reference.json: PyTorch float64 forward values and gradients of the ops mnist-dist's autodiff
implements, numpy's 1-D convolve in its three modes, and five float32 steps of PyTorch's Adadelta and SGD.

Every backward case takes loss = sum(output * upstream) with a random `upstream`, so each input's gradient is the
vector-Jacobian product the Swift test rebuilds on its own tape. Tensors are stored flattened, row-major (NCHW).

Run from the repository root: scripts/make-references.sh. Only the JSON is read by the tests
(AutodiffTests/TorchReferenceTests, NNTests/ModelTests)."""
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
generator = torch.Generator().manual_seed(20261201)


def draw(*shape, scale=1.0):
    return torch.randn(*shape, generator=generator) * scale


def flat(t):
    return {"shape": list(t.shape), "data": [float(v) for v in t.detach().reshape(-1)]}


def backward_case(name, op, inputs, params=None):
    """Runs op on leaf copies of inputs, backpropagates sum(output * upstream), records everything."""
    leaves = {k: v.clone().requires_grad_() for k, v in inputs.items()}
    output = op(**leaves)
    upstream = draw(*output.shape)
    (output * upstream).sum().backward()
    return {"name": name, "params": params or {}, "inputs": {k: flat(v) for k, v in inputs.items()},
            "output": flat(output), "upstream": [float(v) for v in upstream.reshape(-1)],
            "grads": {k: [float(v) for v in leaf.grad.reshape(-1)] for k, leaf in leaves.items()}}


def forward_case(name, output, inputs, params):
    return {"name": name, "params": params, "inputs": {k: flat(v) for k, v in inputs.items()},
            "output": flat(output), "upstream": [], "grads": {}}


def optimizer_case(name, make):
    """Five steps from one start with fixed gradients, in float32 as mnist-dist trains."""
    start = draw(5).float()
    gradients = draw(5, 5).float()
    parameter = torch.nn.Parameter(start.clone())
    optimizer = make([parameter])
    after = []
    for g in gradients:
        parameter.grad = g.clone()
        optimizer.step()
        after.append(parameter.detach().clone())
    return {"name": name, "params": {}, "inputs": {"param0": flat(start), "grads_per_step": flat(gradients)},
            "output": flat(torch.stack(after)), "upstream": [], "grads": {},
            "note": "float32; output row k = parameters after step k+1"}


def main():
    cases = []
    images, weight, bias = draw(2, 3, 7, 6), draw(4, 3, 3, 3, scale=0.5), draw(4)
    for stride, padding in [(1, 0), (2, 1), (1, 1)]:
        cases.append(backward_case(
            f"conv2d_s{stride}_p{padding}",
            lambda input, weight, bias: F.conv2d(input, weight, bias, stride=stride, padding=padding),
            {"input": images, "weight": weight, "bias": bias}, {"stride": stride, "padding": padding}))
    maps = draw(2, 3, 7, 8)
    for kernel in [2, 3]:
        cases.append(backward_case(f"max_pool2d_k{kernel}_s2", lambda input: F.max_pool2d(input, kernel, 2),
                                   {"input": maps}, {"kernel": kernel, "stride": 2}))
    cases.append(backward_case("linear_weight_out_by_in", lambda input, weight, bias: F.linear(input, weight, bias),
                               {"input": draw(5, 7), "weight": draw(3, 7, scale=0.4), "bias": draw(3)}))
    cases.append(backward_case("tanh", lambda input: torch.tanh(input), {"input": draw(4, 6, scale=1.5)}))
    cases.append(backward_case("relu", lambda input: F.relu(input), {"input": draw(4, 6)}))
    # Logits of size ~100: a log-softmax that does not subtract the maximum overflows exp() in Float.
    cases.append(backward_case("log_softmax_dim1_large_logits", lambda input: F.log_softmax(input, dim=1),
                               {"input": draw(4, 10, scale=60.0) + 40.0}))
    targets = [3, 0, 9, 1, 1, 7]
    log_probabilities = F.log_softmax(draw(6, 10), dim=1)
    cases.append(backward_case("nll_loss_mean",
                               lambda input: F.nll_loss(input, torch.tensor(targets)).reshape(1),
                               {"input": log_probabilities}, {"targets": targets}))
    # The chapter's loss: the mean over the batch of -sum(one_hot * log_probabilities).
    one_hot = F.one_hot(torch.tensor(targets), 10).double()
    cases.append(backward_case("onehot_mean_loss",
                               lambda input: (-(one_hot * input).sum(dim=1)).mean().reshape(1),
                               {"input": log_probabilities}, {"targets": targets}))
    signal, window = draw(25), draw(10)
    for mode in ["full", "same", "valid"]:
        result = torch.from_numpy(np.convolve(signal.numpy(), window.numpy(), mode=mode))
        cases.append(forward_case(f"numpy_convolve_{mode}", result, {"a": signal, "v": window}, {"mode": mode}))
    for lr in [0.1, 1.0]:
        cases.append(optimizer_case(f"adadelta_lr{lr}_rho0.9_eps1e-6",
                                    lambda p: torch.optim.Adadelta(p, lr=lr, rho=0.9, eps=1e-6)))
    cases.append(optimizer_case("sgd_lr0.001", lambda p: torch.optim.SGD(p, lr=0.001)))

    out = {"about": "PyTorch float64 reference values from Tests/References/make_torch_reference.py (optimizer "
                    "cases in float32). Tensors flattened row-major (NCHW); backward cases use "
                    "loss = sum(output * upstream).",
           "torch_version": torch.__version__, "numpy_version": np.__version__, "cases": cases}
    json.dump(out, sys.stdout, indent=None, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
