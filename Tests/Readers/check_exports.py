"""Checks a model mnist-dist exported, with each format's own tools, against mnist-dist's own log-probabilities.

    check_exports.py MODEL.onnx MODEL.safetensors OURS.jsonl MNIST_DIR

OURS.jsonl is `mnist-dist predict --json --limit 10000` on t10k-images: one object per image with its
log_probabilities. On the chapter split's 2,000 test images (numpy RandomState(0).permutation(10000)[8000:]):
- onnx.checker.check_model passes, and onnxruntime's log-probabilities (one batch of 2,000, and single images, so
  the batch dimension is dynamic) match ours within 1e-4, with the same classes;
- safetensors.torch.load_file + load_state_dict(strict=True) into a PyTorch definition of the model (the CNN as
  pytorch/examples' MNIST Net, the MLP as layer1 ... layerK) gives the same classes, within 1e-4.
Prints one JSON object with the figures; exits 1, saying why, when a check fails.
"""
import gzip
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn


class ChapterCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        return F.log_softmax(self.fc2(F.relu(self.fc1(x.flatten(1)))), dim=1)


class MLP(nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.count = len(sizes) - 1
        for index, (m, n) in enumerate(zip(sizes[:-1], sizes[1:])):
            setattr(self, f"layer{index + 1}", nn.Linear(m, n))

    def forward(self, x):
        x = x.flatten(1)
        for index in range(1, self.count + 1):
            x = getattr(self, f"layer{index}")(x)
            if index < self.count:
                x = torch.tanh(x)
        return F.log_softmax(x, dim=1)


def open_idx(directory, stem):
    """An IDX file of the MNIST directory, gzip-compressed or raw."""
    path = os.path.join(directory, stem + ".gz")
    return gzip.open(path) if os.path.exists(path) else open(os.path.join(directory, stem), "rb")


def test_images(directory):
    with open_idx(directory, "t10k-images-idx3-ubyte") as f:
        raw = f.read()
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(10000, 1, 28, 28)
    order = np.random.RandomState(0).permutation(10000)[8000:]
    return order, images[order].astype(np.float32) / np.float32(255)


def fail(message, **figures):
    print(json.dumps(dict(figures, failure=message)))
    sys.exit(1)


def main():
    onnx_path, safetensors_path, ours_path, directory = sys.argv[1:5]
    order, pixels = test_images(directory)
    ours_by_index = {}
    with open(ours_path) as f:
        for line in f:
            item = json.loads(line)
            ours_by_index[item["index"]] = item["log_probabilities"]
    ours = np.array([ours_by_index[int(i)] for i in order], np.float64)

    model = onnx.load(onnx_path)
    onnx.checker.check_model(model, full_check=True)
    session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    inputs, outputs = session.get_inputs(), session.get_outputs()
    batch = session.run(None, {inputs[0].name: pixels})[0].astype(np.float64)
    singles = np.concatenate([session.run(None, {inputs[0].name: pixels[i:i + 1]})[0] for i in range(5)])
    figures = {
        "opset": model.opset_import[0].version, "ir_version": model.ir_version, "doc_string": model.doc_string,
        "input": [inputs[0].name, inputs[0].shape], "output": [outputs[0].name, outputs[0].shape],
        "metadata": {p.key: p.value for p in model.metadata_props},
        "onnx_max_difference": float(np.abs(batch - ours).max()),
        "onnx_same_classes": int((batch.argmax(1) == ours.argmax(1)).sum()),
        "images": len(order),
    }
    if figures["onnx_max_difference"] > 1e-4 or figures["onnx_same_classes"] != len(order):
        fail("onnxruntime's log-probabilities differ from ours", **figures)
    if np.abs(singles - batch[:5]).max() > 1e-5:
        fail("one image at a time gives other values than the batch", **figures)

    with safe_open(safetensors_path, "pt") as f:
        metadata = f.metadata() or {}
    state = load_file(safetensors_path)
    if metadata.get("model") == "cnn":
        network = ChapterCNN()
    else:
        layers = sorted(int(name[len("layer"):-len(".weight")]) for name in state if name.endswith(".weight"))
        network = MLP([state["layer1.weight"].shape[1]] + [state[f"layer{k}.weight"].shape[0] for k in layers])
    network.load_state_dict(state, strict=True)
    x = torch.from_numpy(pixels)
    if metadata.get("normalization") == "standard":
        x = (x - 0.1307) / 0.3081
    with torch.no_grad():
        theirs = network(x).double().numpy()
    figures.update(safetensors_metadata=metadata, torch_max_difference=float(np.abs(theirs - ours).max()),
                   torch_same_classes=int((theirs.argmax(1) == ours.argmax(1)).sum()))
    if figures["torch_max_difference"] > 1e-4 or figures["torch_same_classes"] != len(order):
        fail("PyTorch's log-probabilities from the safetensors weights differ from ours", **figures)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
