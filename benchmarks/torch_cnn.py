"""The chapter's CNN in PyTorch (eager), the reference for mnist-dist's CNN on one process.

conv 1->32 3x3, relu, conv 32->64 3x3, relu, 2x2 max-pool, fc 9216->128, relu, fc 128->10, log-softmax; Adadelta
lr 0.1 (rho 0.9, eps 1e-6); batch 128 drawn from a fresh permutation each epoch; inputs x/255. With --precision
bf16, forward and loss run under torch.autocast("cpu", torch.bfloat16), as PyTorch's AMP recipe has it: convolutions
and linear layers take bfloat16 operands, parameters and Adadelta stay float32.

    python benchmarks/torch_cnn.py --threads 2 --epochs 4 [--precision bf16]
"""
import contextlib
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mnist_split import arguments, chapter_split, result


class ChapterCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.fc1 = nn.Linear(64 * 12 * 12, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return F.log_softmax(self.fc2(x), dim=1)


def tensors(directory):
    train_x, train_y, test_x, test_y, _ = chapter_split(directory)
    as_images = lambda a: torch.from_numpy(a).reshape(-1, 1, 28, 28)
    return as_images(train_x), torch.from_numpy(train_y), as_images(test_x), torch.from_numpy(test_y)


@torch.no_grad()
def test_accuracy(model, images, labels):
    model.eval()
    right = sum((model(images[i:i + 1000]).argmax(1) == labels[i:i + 1000]).sum().item() for i in range(0, len(images), 1000))
    model.train()
    return right / len(images)


def main():
    options = arguments(__doc__.split("\n")[0])
    torch.set_num_threads(options.threads)
    torch.manual_seed(0)
    train_x, train_y, test_x, test_y = tensors(options.data_dir)
    model = ChapterCNN()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=0.1)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if options.precision == "bf16" else contextlib.nullcontext
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {sum(p.numel() for p in model.parameters())} parameters, "
          f"products in {options.precision}")
    times = []
    for epoch in range(options.epochs):
        order = torch.randperm(len(train_x))
        start = time.perf_counter()
        loss_sum = 0.0
        for first in range(0, len(order), 128):
            batch = order[first:first + 128]
            optimizer.zero_grad()
            with autocast():
                loss = F.nll_loss(model(train_x[batch]), train_y[batch])
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(batch)
        times.append(time.perf_counter() - start)
        with autocast():
            accuracy = test_accuracy(model, test_x, test_y)
        print(f"epoch {epoch + 1}: {times[-1]:.3f} s, loss {loss_sum / len(order):.4f}, test {accuracy:.4f}", flush=True)
    result(times, accuracy, threads=options.threads, precision=options.precision)


if __name__ == "__main__":
    main()
