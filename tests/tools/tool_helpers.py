"""What the tests of the command-line tools share: a free port, the options that
shrink configs/demo_cpu.py to a few iterations on tiny generated data, and a tool
script loaded as a module."""
import importlib.util
import socket
from pathlib import Path
from types import ModuleType
from typing import List, Optional


def free_port() -> int:
    """A port nobody listens on now (torchrun's rendezvous, not the default 29500)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def demo_options(data_root: str, iters: int, val_interval: int = 2,
                 checkpoint_interval: int = 2, max_keep_ckpts: Optional[int] = None,
                 train_workers: int = 0) -> List[str]:
    """`--cfg-options` for the demo config: `iters` iterations at batch 2, a log line per
    iteration, the data in `data_root` (not generated), no persistent workers."""
    options = [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={val_interval}',
               f'param_scheduler.0.end={iters}', 'default_hooks.logger.interval=1',
               f'default_hooks.checkpoint.interval={checkpoint_interval}',
               'train_dataloader.batch_size=2']
    if max_keep_ckpts is not None:
        options.append(f'default_hooks.checkpoint.max_keep_ckpts={max_keep_ckpts}')
    for split in ('train', 'val', 'test'):
        options += [f'{split}_dataloader.dataset.data_root={data_root}',
                    f'{split}_dataloader.dataset.generate=None',
                    f'{split}_dataloader.num_workers={train_workers if split == "train" else 0}',
                    f'{split}_dataloader.persistent_workers=False']
    return options


def load_tool(relpath: str, name: str) -> ModuleType:
    """The script at `relpath` (from the repository root) loaded as module `name`."""
    path = Path(__file__).resolve().parents[2] / relpath
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
