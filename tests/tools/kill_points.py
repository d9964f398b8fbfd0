"""Test-only faults for the reliability tests, imported by a child config's
`custom_imports`: kill -9 of the training process (or of one rank) at a chosen
iteration, or in the middle of writing a chosen checkpoint file (env
HSEG_KILL_IN_WRITE=<file name>); a file corrupted while training runs; a DataLoader
worker killed on a chosen image."""
import os
import os.path as osp
import signal
from typing import Optional

import torch.utils.data
from mmcv.transforms import BaseTransform
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmseg.registry import HOOKS, TRANSFORMS

from hseg_mm.engine.atomic_local_backend import AtomicLocalBackend


@HOOKS.register_module()
class KillAtIterationHook(Hook):
    """SIGKILL (kill -9: no handler, no clean-up) at the start of `iteration` (1-based),
    in every rank's process, or with `rank` given in that rank's only."""

    def __init__(self, iteration: int, rank: Optional[int] = None) -> None:
        self.iteration, self.rank = iteration, rank

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if runner.iter + 1 == self.iteration and self.rank in (None, get_rank()):
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class CorruptFileAtIterationHook(Hook):
    """At the start of `iteration` (1-based), keep only the first `keep` of the bytes of
    `path` (a truncated copy; 0: an empty file), long after the dataset has listed it."""

    def __init__(self, iteration: int, path: str, keep: float = 0.5) -> None:
        self.iteration, self.path, self.keep = iteration, path, keep

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if runner.iter + 1 == self.iteration:
            with open(self.path, 'rb') as f:
                data = f.read()
            with open(self.path, 'wb') as f:
                f.write(data[:int(len(data) * self.keep)])


@TRANSFORMS.register_module()
class KillWorkerOnImage(BaseTransform):
    """SIGKILL the DataLoader worker process that loads the image named `name` (as the
    out-of-memory killer would); a no-op in the main process (num_workers=0)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def transform(self, results: dict) -> dict:
        if osp.basename(results['img_path']) == self.name and \
                torch.utils.data.get_worker_info() is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        return results


_write = AtomicLocalBackend._write


def _write_then_die(self, filepath, data, mode, encoding=None):
    # half the bytes reach the disk, then the process is killed mid-write
    if osp.basename(str(filepath)) == os.environ.get('HSEG_KILL_IN_WRITE'):
        tmp = osp.join(osp.dirname(str(filepath)), f'.{osp.basename(str(filepath))}.tmp-'
                       f'{os.getpid()}')
        with open(tmp, mode) as f:
            f.write(data[:len(data) // 2])
            f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return _write(self, filepath, data, mode, encoding)


AtomicLocalBackend._write = _write_then_die
