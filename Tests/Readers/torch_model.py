"""A CNN trained a few steps in PyTorch and saved as safetensors, as a PyTorch user saves one, for mnist-dist to
evaluate and start from.

    torch_model.py OUT.safetensors MNIST_DIR

Trains pytorch/examples' MNIST Net (without dropout) for 40 steps of 64 images on the chapter split's training
images, inputs normalised as that example does ((x/255 - 0.1307)/0.3081), Adadelta 1.0; saves the state dict with
safetensors.torch.save_file and no metadata. Prints one JSON object: PyTorch's own accuracy on the chapter split's
2,000 test images, and the FNV-1a checksum of the weights' float32 bit patterns in the order of the Net's
parameters (the checksum mnist-dist prints for a model).
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from check_exports import ChapterCNN, open_idx


def split(directory):
    with open_idx(directory, "t10k-images-idx3-ubyte") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(10000, 1, 28, 28)
    with open_idx(directory, "t10k-labels-idx1-ubyte") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    order = np.random.RandomState(0).permutation(10000)
    x = torch.from_numpy((images.astype(np.float32) / np.float32(255) - np.float32(0.1307)) / np.float32(0.3081))
    y = torch.from_numpy(labels)
    return x[order[:8000]], y[order[:8000]], x[order[8000:]], y[order[8000:]]


def checksum(tensors):
    value = 0xcbf29ce484222325
    for tensor in tensors:
        for word in tensor.detach().numpy().astype(np.float32).ravel().view(np.uint32).tolist():
            value = ((value ^ word) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def main():
    out, directory = sys.argv[1:3]
    torch.manual_seed(1)
    torch.set_num_threads(1)
    train_x, train_y, test_x, test_y = split(directory)
    model = ChapterCNN()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    for step in range(40):
        batch = torch.arange(step * 64, (step + 1) * 64)
        optimizer.zero_grad()
        F.nll_loss(model(train_x[batch]), train_y[batch]).backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = float((model(test_x).argmax(1) == test_y).double().mean())
    save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()}, out)
    print(json.dumps({"accuracy": accuracy, "correct": int(round(accuracy * len(test_y))),
                      "checksum": checksum(model.parameters())}))


if __name__ == "__main__":
    main()
