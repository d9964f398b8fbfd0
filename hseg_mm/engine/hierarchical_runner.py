"""mmengine's Runner, given the config's one tree before it builds anything, and
made to resume a run exactly where it stopped."""
import copy
import json
import os.path as osp
import re
from typing import Optional, Union

import torch
from mmengine.config import Config, ConfigDict
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log
from mmengine.runner import Runner
from mmengine.runner.checkpoint import find_latest_checkpoint
from mmengine.visualization import LocalVisBackend, TensorboardVisBackend
from mmseg.registry import HOOKS, RUNNERS

from .atomic_local_backend import ATOMIC_BACKEND_ARGS
from .hierarchy_config import apply_hierarchy
from .param_groups import plain_param_groups

_TIMESTAMP = re.compile(r'\d{8}_\d{6}$')


@RUNNERS.register_module()
class HierarchicalRunner(Runner):
    """A Runner whose config states its class tree once, at the top level, and
    whose runs survive a kill.

    Selected by `runner_type = 'HierarchicalRunner'` (configs/_base_/default_runtime.py):
    `RUNNERS.build(cfg)`, as mmseg's and hseg_mm's tools/train.py and test.py do,
    calls `from_cfg`, which runs `apply_hierarchy` (the tree into the model and
    the datasets, the data paths checked) before the config is dumped or the model
    built.

    It registers the hooks of the config's `hierarchical_hooks`, a dict of name ->
    hook config beside mmengine's `default_hooks` (default_runtime.py lists
    `HierarchyCheckHook`, `RandomStateHook` and `NonFiniteGuardHook` there); being a
    dict, a child config changes one entry, or turns it off with None, in one
    statement. A hook type the config already registers (e.g. in `custom_hooks`) is
    not registered twice.

    Checkpoints of a local work dir are written atomically (`AtomicLocalBackend`).
    A resumed run writes into the log folder of the run it resumes (same text log,
    TensorBoard run and scalars.json), without the steps the interrupted run logged
    after its checkpoint.
    """

    @classmethod
    def from_cfg(cls, cfg: Union[Config, ConfigDict, dict]) -> 'HierarchicalRunner':
        cfg = copy.deepcopy(cfg)
        if not isinstance(cfg, Config):
            cfg = Config(cfg)
        apply_hierarchy(cfg)
        return super().from_cfg(cfg)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name, hook in (self.cfg.get('hierarchical_hooks') or {}).items():
            if hook is None:
                continue  # turned off by the config
            hook = HOOKS.build(hook) if isinstance(hook, dict) else hook
            if not any(type(h) is type(hook) for h in self.hooks):
                self.register_hook(hook)
        for hook in self.hooks:
            if isinstance(hook, CheckpointHook) and hook.backend_args is None and \
                    '://' not in str(hook.out_dir or self.work_dir):
                hook.backend_args = dict(ATOMIC_BACKEND_ARGS)
        self.checkpoint_being_loaded = None

    # ------------------------------------------------------------ compile
    def build_optim_wrapper(self, optim_wrapper):
        """mmengine's, with the optimiser's parameter groups made plain dicts, which
        `compile=True` needs on torch 2.13 (`plain_param_groups`)."""
        optim_wrapper = super().build_optim_wrapper(optim_wrapper)
        plain_param_groups(optim_wrapper)
        return optim_wrapper

    def train(self) -> torch.nn.Module:
        self.compile_eval_steps()  # mmengine's train() compiles train_step itself
        return super().train()

    def val(self) -> dict:
        self.compile_eval_steps()
        return super().val()

    def test(self) -> dict:
        self.compile_eval_steps()
        return super().test()

    def compile_eval_steps(self) -> None:
        """With the config's `compile` (True or torch.compile's keywords), compile the
        model's `val_step` and `test_step` too: mmengine's switch compiles `train_step`
        only, so `tools/test.py --cfg-options compile=True` would otherwise run eagerly.
        Once per runner."""
        compile_cfg = self.cfg.get('compile')
        if not compile_cfg or getattr(self, '_eval_steps_compiled', False):
            return
        options = {} if compile_cfg is True else dict(compile_cfg)
        for name in ('val_step', 'test_step'):
            setattr(self.model, name, torch.compile(getattr(self.model, name), **options))
        self._eval_steps_compiled = True

    # ------------------------------------------------------------ resuming
    def _resumed_checkpoint(self) -> Optional[str]:
        """The checkpoint `--resume` will load, if it is a local file."""
        if not self.cfg.get('resume', False):
            return None
        path = self.cfg.get('load_from') or find_latest_checkpoint(self.work_dir)
        return path if path and osp.isfile(path) else None

    def setup_env(self, env_cfg: dict) -> None:
        super().setup_env(env_cfg)
        # A resumed run logs into the folder of the run it resumes: the timestamp names
        # it. Read from the checkpoint's meta without reading its tensors (mmap).
        path = self._resumed_checkpoint()
        if path is None:
            return
        try:
            meta = torch.load(path, map_location='cpu', mmap=True, weights_only=True)['meta']
        except Exception:  # not ours, or unreadable: resume() will say so
            return
        previous = str(meta.get('experiment_name', ''))[-15:]
        if _TIMESTAMP.match(previous) and osp.isdir(osp.join(self.work_dir, previous)):
            self._timestamp = previous

    def load_or_resume(self) -> None:
        resuming = self._resume and not self._has_loaded
        super().load_or_resume()
        if resuming and self._has_loaded:
            self._drop_logs_after(self.iter)

    def _drop_logs_after(self, step: int) -> None:
        """Forget what the interrupted run logged after its checkpoint (`step`)."""
        for backend in getattr(self.visualizer, '_vis_backends', {}).values():
            if isinstance(backend, LocalVisBackend):
                path = osp.join(backend._save_dir, backend._scalar_save_file)
                if osp.isfile(path):
                    with open(path) as f:
                        kept = [ln for ln in f if json.loads(ln).get('step', 0) <= step]
                    with open(path, 'w') as f:
                        f.writelines(kept)
            elif isinstance(backend, TensorboardVisBackend) and \
                    getattr(backend, '_tensorboard', None) is not None:
                # TensorBoard hides the earlier events at steps >= purge_step
                writer_cls = type(backend._tensorboard)
                backend._tensorboard.close()
                backend._tensorboard = writer_cls(backend._save_dir, purge_step=step + 1)
        print_log(f'resumed at iteration {step}: logging on in {self.log_dir}',
                  logger='current')

    def load_checkpoint(self, filename: str, *args, **kwargs):
        # named in HierarchyCheckHook's message; resume() loads through here too
        self.checkpoint_being_loaded = filename
        try:
            return super().load_checkpoint(filename, *args, **kwargs)
        finally:
            self.checkpoint_being_loaded = None
