"""TreeTripletLoss under DDP: two CPU processes over gloo, ranks with different
triplet counts (one with none at all) must neither hang nor diverge."""
import datetime
import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def worker(rank: int, world_size: int, out_dir: str) -> None:
    import hseg_mm  # noqa: F401
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel

    from hseg_mm.models.losses import TreeTripletLoss

    torch.set_num_threads(1)
    # A file rendezvous: no free-port race with other processes on the machine; a
    # collective that waits raises after the timeout instead of hanging silently.
    dist.init_process_group('gloo', init_method=f'file://{out_dir}/rendezvous', rank=rank,
                            world_size=world_size, timeout=datetime.timedelta(seconds=60))
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
    dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason='torch.distributed unavailable')
def test_tree_triplet_loss_under_ddp():
    with tempfile.TemporaryDirectory() as out_dir:
        context = mp.start_processes(worker, args=(2, out_dir), nprocs=2,
                                     join=False, start_method='spawn')
        for _ in range(120):  # a hang fails the test after 2 minutes instead of blocking
            if context.join(timeout=1):
                break
        else:
            for p in context.processes:
                p.terminate()
            pytest.fail('DDP workers did not finish: a collective is probably waiting')
        results = [torch.load(os.path.join(out_dir, f'rank{r}.pt')) for r in range(2)]
    assert results[0]['loss'] == 0 and results[1]['loss'] > 0
    # gradients are averaged across ranks, so both hold the same, non-zero values
    assert torch.equal(results[0]['grad'], results[1]['grad'])
    assert results[0]['grad'].abs().sum() > 0
