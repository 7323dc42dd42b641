"""The chapter's CNN under PyTorch DistributedDataParallel (gloo, CPU), the reference for `mpirun -np N mnist-dist`:
each process takes its share of the same global batch of 128, gradients are averaged by DDP's all-reduce. With
--precision bf16, forward and loss run under torch.autocast("cpu", torch.bfloat16), as in torch_cnn.py.

    python -m torch.distributed.run --standalone --nproc_per_node=2 benchmarks/torch_ddp.py --threads 1 --epochs 4
"""
import contextlib
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from mnist_split import arguments, result
from torch_cnn import ChapterCNN, tensors, test_accuracy


def main():
    options = arguments(__doc__.split("\n")[0])
    torch.set_num_threads(options.threads)
    dist.init_process_group("gloo")
    rank, ranks = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    train_x, train_y, test_x, test_y = tensors(options.data_dir)
    model = DistributedDataParallel(ChapterCNN())  # starts every rank from rank 0's parameters
    optimizer = torch.optim.Adadelta(model.parameters(), lr=0.1)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if options.precision == "bf16" else contextlib.nullcontext
    if rank == 0:
        print(f"torch {torch.__version__}, {ranks} processes x {torch.get_num_threads()} threads, global batch 128, "
              f"products in {options.precision}")
    times = []
    for epoch in range(options.epochs):
        shuffle = torch.Generator()
        shuffle.manual_seed(epoch)  # the same order on every rank
        order = torch.randperm(len(train_x), generator=shuffle)
        dist.barrier()
        start = time.perf_counter()
        for first in range(0, len(order), 128):
            batch = order[first:first + 128]
            share = (len(batch) + ranks - 1) // ranks
            mine = batch[rank * share:(rank + 1) * share]
            optimizer.zero_grad()
            # DDP averages the ranks' gradients: each rank's loss is its share's mean.
            with autocast():
                loss = F.nll_loss(model(train_x[mine]), train_y[mine])
            loss.backward()
            optimizer.step()
        dist.barrier()
        times.append(time.perf_counter() - start)
        if rank == 0:
            with autocast():
                accuracy = test_accuracy(model.module, test_x, test_y)
            print(f"epoch {epoch + 1}: {times[-1]:.3f} s, test {accuracy:.4f}", flush=True)
    if rank == 0:
        result(times, accuracy, ranks=ranks, threads=options.threads, precision=options.precision)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
