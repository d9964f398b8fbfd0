"""What tools/train.py and tools/test.py share: config loading and launch set-up.

mmseg's own tools assume CUDA for `--launcher pytorch`, SyncBN and `--amp`. Here the
same commands also run on a CPU-only machine (DDP over gloo, BN for SyncBN), and
`--amp` there means bfloat16 autocast (`CPUAmpOptimWrapper`).
"""
import argparse
import gc
import logging
import os
import os.path as osp
import re
from typing import Any, Callable, Optional, Sequence

import torch
import torch.distributed as dist
from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from ..utils import keep_freed_memory
from .hierarchy_config import ConfigError, apply_hierarchy


def load_config(path: str, cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None, check_data: bool = True,
                resolve_tree: bool = True) -> Config:
    """Load a config, apply `--cfg-options` and `--work-dir`, give every part its tree.

    `apply_hierarchy` runs here, before anything is built or printed, so an error
    in the tree, in a part's tree or in a data path stops the run with one
    `ConfigError` line naming the key or file. `check_data=False` skips the data
    (e.g. to build the model for inference, as mmseg's `init_model(cfg, ckpt)`).
    `resolve_tree=False` leaves the tree to the runner (`build_runner`), so that it
    is resolved once per command, data paths included.
    """
    if not osp.isfile(path):
        raise ConfigError(f'config file not found: {path}')
    try:
        cfg = Config.fromfile(path)
    except Exception as err:  # mmengine raises several types for a broken config
        raise ConfigError(f'{path}: {type(err).__name__}: {err}') from None
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    if resolve_tree:
        apply_hierarchy(cfg, check_paths=check_data)
    return cfg


def run_tool(main: Callable[[], Any]) -> Any:
    """Run a tool's `main`; a user's config error, pretrained weights that cannot be had,
    or training stopped by a non-finite value end it as one line, no traceback."""
    from ..models.segmentors.pretrained import PretrainedWeightsError
    from .non_finite_guard_hook import NonFiniteError
    try:
        return main()
    except (ConfigError, NonFiniteError, PretrainedWeightsError) as err:
        raise SystemExit(f'error: {err}') from None


def build_runner(cfg: Config):
    """The config's runner (`runner_type`, as mmseg's tools build it).

    `HierarchicalRunner.from_cfg` resolves the tree; for another runner it is resolved
    here first."""
    from mmengine.runner import Runner
    from mmseg.registry import RUNNERS
    from .hierarchical_runner import HierarchicalRunner
    runner_type = cfg.get('runner_type')
    runner_cls = RUNNERS.get(runner_type) if isinstance(runner_type, str) else runner_type
    if not (isinstance(runner_cls, type) and issubclass(runner_cls, HierarchicalRunner)):
        apply_hierarchy(cfg)
    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)


def _replace_type(node: Any, old: str, new: str) -> int:
    """Replace `type=old` by `type=new` in every dict of a config tree."""
    count = 0
    if isinstance(node, dict):
        if node.get('type') == old:
            node['type'] = new
            count += 1
        for value in node.values():
            count += _replace_type(value, old, new)
    elif isinstance(node, (list, tuple)):
        for value in node:
            count += _replace_type(value, old, new)
    return count


def prepare_runtime(cfg: Config, launcher: str = 'none', amp: bool = False) -> Config:
    """Adapt `cfg` to the machine: launcher, CPU DDP, SyncBN on CPU, AMP."""
    cuda = torch.cuda.is_available()
    cfg.launcher = launcher
    if amp:
        # CUDA: float16 with dynamic loss scaling (mmengine's AmpOptimWrapper, which
        # refuses a CPU); CPU: bfloat16 autocast (CPUAmpOptimWrapper, no scaling needed).
        amp_type = 'AmpOptimWrapper' if cuda else 'CPUAmpOptimWrapper'
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper == 'OptimWrapper':
            cfg.optim_wrapper.type = amp_type
            if cuda:
                cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
        elif wrapper != amp_type:
            raise SystemExit(f'--amp needs optim_wrapper type OptimWrapper (or {amp_type} '
                             f'on this machine), got {wrapper}')
        elif amp_type == 'CPUAmpOptimWrapper':
            # --amp asks for autocast: a config's float32 fallback on CPUs without
            # bfloat16 hardware (if_emulated='float32') yields to it
            cfg.optim_wrapper.if_emulated = 'autocast'
    if not cuda:
        if keep_freed_memory():
            print_log('CPU: glibc keeps freed memory for reuse (hseg_mm/utils/allocator.py)',
                      logger='current')
        # torch's SyncBatchNorm runs only on GPUs; BN gives the same model on CPU.
        if _replace_type(cfg.model, 'SyncBN', 'BN'):
            print_log('no CUDA: SyncBN replaced by BN', logger='current',
                      level=logging.WARNING)
        if launcher == 'slurm':
            _set_dist_env_from_slurm()
        if launcher in ('pytorch', 'slurm'):
            _init_cpu_process_group(cfg)
    return cfg


def _init_cpu_process_group(cfg: Config) -> None:
    # mmengine's init_dist calls torch.cuda.set_device; it skips its own set-up
    # when a group exists, so start gloo here. CPU DDP wants device_ids=None.
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    wrapper['device_ids'] = None
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = wrapper


def _set_dist_env_from_slurm() -> None:
    # What mmengine's _init_dist_slurm sets before its CUDA call: ranks from srun,
    # the master is the allocation's first node, MASTER_PORT (else 29500) and
    # MASTER_ADDR are kept when set.
    env = os.environ
    if 'SLURM_PROCID' not in env:
        raise SystemExit('--launcher slurm: no SLURM_PROCID, so this process was not '
                         'started by srun; use tools/slurm_train.sh or slurm_test.sh')
    env['RANK'] = env['SLURM_PROCID']
    env['WORLD_SIZE'] = env['SLURM_NTASKS']
    env['LOCAL_RANK'] = env.get('SLURM_LOCALID', '0')
    env.setdefault('MASTER_PORT', '29500')
    env.setdefault('MASTER_ADDR', first_slurm_host(env['SLURM_NODELIST']))


def first_slurm_host(nodelist: str) -> str:
    """The first host of a Slurm host list ('node[07-09,12],gpu1' -> 'node07'), as
    `scontrol show hostnames LIST | head -n1` gives it, without needing scontrol."""
    first = re.split(r',(?![^\[]*\])', nodelist.strip())[0]
    return re.sub(r'\[([^\],-]+)[^\]]*\]', r'\1', first)


def close_process_group() -> None:
    """End a distributed run cleanly: wait for every rank, then destroy the group.

    Left to interpreter exit, gloo's threads now and then abort a rank ("terminate
    called without an active exception", 1 run in 10 of 2-process dist_test.sh here),
    which torchrun and srun --kill-on-bad-exit report as a failed run. Call it after
    the Runner (its DDP wrapper holds the group) is released.
    """
    if dist.is_available() and dist.is_initialized():
        gc.collect()  # the Runner's reference cycles hold DDP, DDP holds the group
        dist.barrier()
        dist.destroy_process_group()


def skip_pretrained(cfg: Config) -> None:
    """Testing loads every weight from the checkpoint: no backbone weights are needed."""
    if 'pretrained' in cfg.model:
        cfg.model.pretrained = None
    backbone = cfg.model.get('backbone')
    if isinstance(backbone, dict):
        if backbone.get('type') in ('TIMMBackbone', 'mmseg.TIMMBackbone'):
            # timm's own weights: its `pretrained` is a bool that defaults to True
            backbone['pretrained'] = False
            backbone.pop('pretrained_cfg_overlay', None)
            backbone['checkpoint_path'] = ''
        else:
            backbone.pop('pretrained', None)
        backbone['init_cfg'] = None


def add_launch_args(parser: argparse.ArgumentParser) -> None:
    """The flags tools/train.py and tools/test.py share with mmseg's tools."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. train_cfg.max_iters=100')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--allow-other-tree', action='store_true',
                        help='load a checkpoint trained on another class tree anyway '
                        '(e.g. to fine-tune on a new tree)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def set_local_rank(local_rank: int) -> None:
    """torchrun sets LOCAL_RANK; the old launcher passes --local-rank instead."""
    os.environ.setdefault('LOCAL_RANK', str(local_rank))


def check_eval_metrics(names: Sequence[str]) -> None:
    """`--eval mIoU` (the mmseg 0.x habit): only names the metric reports are accepted."""
    known = {'mIoU', 'aAcc'}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f'--eval {unknown}: the hierarchical metric reports {sorted(known)}'
                         ' (per level); the config\'s test_evaluator decides the rest')
