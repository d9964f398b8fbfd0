"""TreeTripletLoss under DDP: two CPU processes over gloo, ranks with different
triplet counts (one with none at all) must neither hang nor diverge.

The ranks are started by torchrun, as tools/dist_train.sh does, with a time limit,
so a collective that waits fails the test instead of blocking the suite.
"""
import os
import os.path as osp
import socket
import subprocess
import sys

import torch

WORKER = osp.join(osp.dirname(osp.abspath(__file__)), 'ddp_triplet_worker.py')
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_tree_triplet_loss_under_ddp(tmp_path):
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
           '--master_addr=127.0.0.1', f'--master_port={_free_port()}', WORKER, str(tmp_path)]
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [torch.load(tmp_path / f'rank{r}.pt') for r in range(2)]
    assert results[0]['loss'] == 0 and results[1]['loss'] > 0
    # gradients are averaged across ranks, so both hold the same, non-zero values
    assert torch.equal(results[0]['grad'], results[1]['grad'])
    assert results[0]['grad'].abs().sum() > 0
