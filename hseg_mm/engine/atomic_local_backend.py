"""Files written whole or not at all: checkpoints and `last_checkpoint`."""
import glob
import os
import os.path as osp
from pathlib import Path
from typing import Union

import mmengine
from mmengine.fileio import LocalBackend, register_backend

__all__ = ['AtomicLocalBackend', 'ATOMIC_BACKEND_ARGS']

ATOMIC_BACKEND_ARGS = dict(backend='local_atomic')


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose writes are atomic.

    A file is written beside its target (`.<name>.tmp-<pid>`), flushed to disk and
    renamed over the target (`os.replace`, atomic on POSIX within one folder). A kill
    or a full disk during the write leaves the previous file whole and the target
    never partial; the temporary file is removed when the write fails.
    `CheckpointHook(backend_args=dict(backend='local_atomic'))` uses it for the
    checkpoints, the best checkpoint and `last_checkpoint`; `HierarchicalRunner`
    sets that for local work dirs.
    """

    def _write(self, filepath: Union[str, Path], data: Union[bytes, str], mode: str,
               encoding: Union[str, None] = None) -> None:
        filepath = str(filepath)
        mmengine.mkdir_or_exist(osp.dirname(filepath) or '.')
        stem = osp.join(osp.dirname(filepath), f'.{osp.basename(filepath)}.tmp-')
        for stale in glob.glob(glob.escape(stem) + '*'):  # a killed writer's half file
            os.remove(stale)
        tmp = f'{stem}{os.getpid()}'
        try:
            with open(tmp, mode, encoding=encoding) as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, filepath)
        except BaseException:  # a full disk, an interrupt: never leave a partial file
            if osp.exists(tmp):
                os.remove(tmp)
            raise

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        self._write(filepath, obj, 'wb')

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        self._write(filepath, obj, 'w', encoding)


register_backend('local_atomic', AtomicLocalBackend)
