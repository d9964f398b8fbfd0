"""One rank of tests/models/test_losses_distributed.py, started by torchrun."""
import os
import sys

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

import hseg_mm  # noqa: F401
from hseg_mm.models.losses import TreeTripletLoss


def main(out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group('gloo')  # torchrun's env:// rendezvous
    rank = dist.get_rank()
    torch.manual_seed(0)  # same initial weights on both ranks
    model = DistributedDataParallel(torch.nn.Conv2d(3, 8, 1))
    loss_fn = TreeTripletLoss('pascal_person_part', max_samples_per_class=4)
    image = torch.randn(1, 3, 6, 6)
    # rank 0: one class only -> no triplet (loss 0); rank 1: every class.
    label = torch.full((1, 6, 6), 2) if rank == 0 else torch.arange(36).view(1, 6, 6) % 7
    for _ in range(2):
        model.zero_grad()
        loss = loss_fn(None, label, embedding=F.normalize(model(image), dim=1))
        loss.backward()  # DDP all-reduces the gradients here
    torch.save(dict(loss=loss.item(), grad=model.module.weight.grad.clone()),
               os.path.join(out_dir, f'rank{rank}.pt'))
    # Free DDP (its reducer holds the group) before the group: the other order
    # hung now and then at exit under gloo.
    del model, loss
    dist.destroy_process_group()


if __name__ == '__main__':
    main(sys.argv[1])
