"""Test-only faults for the reliability tests, imported by a child config's
`custom_imports`: kill -9 of the training process at a chosen iteration, or in the
middle of writing a chosen checkpoint file (env HSEG_KILL_IN_WRITE=<file name>)."""
import os
import os.path as osp
import signal

from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from hseg_mm.engine.atomic_local_backend import AtomicLocalBackend


@HOOKS.register_module()
class KillAtIterationHook(Hook):
    """SIGKILL (kill -9: no handler, no clean-up) at the start of `iteration` (1-based)."""

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if runner.iter + 1 == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)


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
