"""Random states in checkpoints, so a resumed run is the uninterrupted one, bit for bit."""
import random
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.runner import BaseLoop, IterBasedTrainLoop
from mmseg.registry import HOOKS

__all__ = ['RandomStateHook', 'get_random_states', 'set_random_states']


def get_random_states() -> Dict[str, Any]:
    """This process's python, numpy, torch (and CUDA) random states, as values a
    weights-only `torch.load` reads back (numpy's key array as a tensor)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    states = dict(python=random.getstate(), torch=torch.get_rng_state(),
                  numpy=(name, torch.from_numpy(keys.astype(np.int64)), int(pos),
                         int(has_gauss), float(gauss)))
    if torch.cuda.is_available():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def set_random_states(states: Dict[str, Any]) -> None:
    """Restore what `get_random_states` returned."""
    random.setstate(_as_tuple(states['python']))
    torch.set_rng_state(states['torch'])
    name, keys, pos, has_gauss, gauss = states['numpy']
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states['cuda'])


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


class _RestoreBeforeNext:
    """Wraps the train loop's data iterator: before the `after`+1-th batch (the first
    one trained after a resume: the `after` before it replay the skipped data), sets
    the random states, so they are those the uninterrupted run had at that point."""

    def __init__(self, iterator, after: int, states: Dict[str, Any]) -> None:
        self.iterator, self.after, self.states, self.count = iterator, after, states, 0

    def __next__(self):
        if self.count == self.after and self.states is not None:
            set_random_states(self.states)
            self.states = None
        self.count += 1
        return next(self.iterator)

    def __iter__(self):
        return self

    def __getattr__(self, name: str):
        return getattr(self.iterator, name)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Saves every rank's random states with each checkpoint and restores them on
    `--resume`, so dropout, random triplet sampling and (with num_workers=0) the
    augmentations continue as if the run had never stopped.

    - At each iteration that ends in a checkpoint or a validation, every rank's
      python/numpy/torch(/CUDA) states are gathered and written into the
      checkpoints of that iteration (`meta['random_states']`, one per rank).
    - Validation inside training runs on forked states (saved before, restored
      after), so whether and when a run validates never changes its training.
    - On resume (iteration-based loops) each rank restores its own states right
      before the first batch it trains, after mmengine has replayed the data
      iterator past the batches already trained.

    `HierarchicalRunner` registers it.
    """
    priority = 'NORMAL'  # after_train_iter: before CheckpointHook (VERY_LOW) saves

    def __init__(self) -> None:
        self._gathered: Optional[List[Dict[str, Any]]] = None
        self._pending: Optional[Dict[str, Any]] = None
        self._val_states: Optional[Dict[str, Any]] = None

    # --------------------------------------------------------------- saving
    @staticmethod
    def _due(runner) -> bool:
        done = runner.iter + 1  # iterations finished once this after_train_iter returns
        for hook in runner.hooks:
            if isinstance(hook, CheckpointHook) and not hook.by_epoch and (
                    hook.every_n_train_iters(runner, hook.interval, hook.save_begin)
                    or (hook.save_last and hook.is_last_train_iter(runner))):
                return True
        loop = runner.train_loop
        return isinstance(runner._val_loop, BaseLoop) and hasattr(loop, 'val_interval') and \
            done >= loop.val_begin and (done % loop.val_interval == 0 or done == loop.max_iters)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self._due(runner):
            states = get_random_states()
            # every rank takes part: a collective, only at these iterations
            self._gathered = all_gather_object(states) if get_world_size() > 1 else [states]

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._gathered is not None:
            checkpoint.setdefault('meta', {})['random_states'] = self._gathered

    def before_val(self, runner) -> None:
        self._val_states = get_random_states()

    def after_val(self, runner) -> None:
        if self._val_states is not None:
            set_random_states(self._val_states)
            self._val_states = None

    # ------------------------------------------------------------- resuming
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not runner._resume:
            return  # load_from (fine-tuning, testing): a new run
        saved = (checkpoint.get('meta') or {}).get('random_states')
        if not saved:
            print_log('the checkpoint holds no random states (older code): the resumed run '
                      'will not repeat the uninterrupted one exactly', logger='current',
                      level=30)
        elif len(saved) != get_world_size():
            print_log(f'the checkpoint holds the random states of {len(saved)} processes, '
                      f'this run has {get_world_size()}: not restored', logger='current',
                      level=30)
        else:
            self._pending = saved[get_rank()]

    def before_train_epoch(self, runner) -> None:
        loop = runner.train_loop
        if self._pending is not None and isinstance(loop, IterBasedTrainLoop) and loop.iter:
            loop.dataloader_iterator = _RestoreBeforeNext(loop.dataloader_iterator, loop.iter,
                                                          self._pending)
        self._pending = None
