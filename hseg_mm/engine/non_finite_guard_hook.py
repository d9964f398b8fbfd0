"""Stop (or skip) at the first nan/inf loss term or gradient; never save a NaN model."""
import logging
from typing import Dict, Iterable, List, Optional, Tuple

import torch
import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.logging import MMLogger, print_log
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmseg.registry import HOOKS
from torch import Tensor

__all__ = ['NonFiniteError', 'NonFiniteGuardHook', 'all_finite', 'find_non_finite']


class NonFiniteError(RuntimeError):
    """A loss term, gradient, weight or checkpoint holds nan or inf."""


def _kind(tensor: Tensor) -> str:
    return 'nan' if bool(torch.isnan(tensor).any()) else 'inf'


def all_finite(tensors: Iterable[Tensor]) -> Optional[Tensor]:
    """A 0-d bool tensor: every element of every floating tensor is finite.

    No host sync: the caller reads it (`bool(...)`) once. One max-abs reduction
    (`torch.nn.utils.get_total_norm(..., inf)`, what `clip_grad_norm_` uses; fused
    per device where torch has foreach kernels): max|x| is nan or inf exactly when
    some element is, and unlike a 2-norm it cannot overflow on large finite values.
    None when there is no floating tensor.
    """
    group = [t.detach() for t in tensors
             if t is not None and t.is_floating_point() and t.numel() and not t.is_sparse]
    if not group:
        return None
    return torch.isfinite(torch.nn.utils.get_total_norm(group, float('inf')))


def find_non_finite(named_tensors: Iterable[Tuple[str, Tensor]],
                    limit: Optional[int] = None) -> List[Tuple[str, str]]:
    """(name, 'nan' or 'inf') of the floating tensors that hold a non-finite
    value, in order, at most `limit`. Reads each tensor: for error paths and
    checkpoints, not for every iteration (use `all_finite` there)."""
    found = []
    for name, t in named_tensors:
        if isinstance(t, Tensor) and t.is_floating_point() and not t.is_sparse \
                and not bool(torch.isfinite(t).all()):
            found.append((name, _kind(t)))
            if limit is not None and len(found) >= limit:
                break
    return found


def _unwrap(model):
    while hasattr(model, 'module'):  # DDP (and a TTA wrapper)
        model = model.module
    return model


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _any_rank(flag: Tensor) -> Tensor:
    """`flag` (0-d, 1.0 = bad) made the same on every rank: one 4-byte all-reduce."""
    if _distributed():
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return flag


def _wrappers(optim_wrapper) -> List[OptimWrapper]:
    if isinstance(optim_wrapper, OptimWrapperDict):
        return list(optim_wrapper.values())
    return [optim_wrapper]


@HOOKS.register_module()
class NonFiniteGuardHook(Hook):
    """Stops training at the first non-finite loss term or gradient, naming the
    iteration and the term, e.g. ``iteration 3: loss term decode.loss_ce is nan``
    or ``iteration 3: gradient of backbone.conv1.weight is inf``; the model is then
    still the last finite one and no checkpoint of a non-finite model is written,
    so `last_checkpoint` names the last good one.

    How, through public extension points only: `before_train` registers a step
    pre-hook on each optimizer (`torch.optim.Optimizer.register_step_pre_hook`).
    It runs inside `optimizer.step()`, after mmengine's gradient clipping, before
    any parameter changes; when a gradient is not finite it notes the first such
    parameter and sets every gradient to None, which torch's optimizers (and
    geoopt's) read as "no update": parameters and optimizer state stay as they
    were. `after_train_iter` (before EMAHook and CheckpointHook) then reads the
    iteration's loss terms from `outputs` (the `log_vars` of `train_step`) and
    the parameters and buffers, and stops, naming the term (first), the gradient
    or the weight; a finite gradient times a huge learning rate can still
    overflow a weight, and that model must not reach a checkpoint or the
    validation that picks the best one. Last, `before_save_checkpoint` refuses a
    checkpoint whose `state_dict` is not finite (a safety net only: mmengine's
    CheckpointHook deletes the oldest or previous best file before it saves).
    A loss term that is not finite while every gradient is (a term without
    gradient) is caught after that iteration's step. With `clip_grad`, mmengine
    clips before the step, and a non-finite norm makes every gradient non-finite:
    the first parameter is named then, and the loss term, when it is the cause.

    Cost: per optimizer step, one fused max-abs reduction over the gradients and
    one host sync to read it; per iteration, one reduction over the loss terms,
    weights and buffers, read after mmengine's own per-iteration sync
    (RuntimeInfoHook reads the logged losses with `.item()`).

    Distributed: every rank must take the same decision, or the others hang in the
    next collective. The gradients are all-reduced by DDP, so every rank skips the
    same steps; the loss terms and BN statistics are each rank's own, so the
    iteration's verdict is all-reduced as one float (MAX) before it is read: one
    4-byte all-reduce per iteration. Each rank names what it saw; a rank whose own
    terms and weights were finite names the gradient, or says another rank's
    values were not finite.

    With a loss scaler (mmengine's AmpOptimWrapper on CUDA) inf/nan gradients are
    the scaler's business: it skips that step and lowers the scale. So no step
    pre-hook is registered there; loss terms and weights are checked as above.

    Args:
        action: 'stop' (raise `NonFiniteError`, default) or 'skip' (no optimizer
            update: parameters, optimizer state and BN statistics stay as before
            the iteration; the learning-rate schedule goes on), up to `max_skips`
            iterations in a row, then stop. A weight that is non-finite after a
            step cannot be undone: that always stops.
        max_skips: with 'skip', how many non-finite iterations in a row are
            skipped; the next one stops. A finite iteration resets the count.
    """
    priority = 'ABOVE_NORMAL'  # after_train_iter before EMAHook and CheckpointHook

    def __init__(self, action: str = 'stop', max_skips: int = 10) -> None:
        if action not in ('stop', 'skip'):
            raise ValueError(f"NonFiniteGuardHook: action must be 'stop' or 'skip', "
                             f'got {action!r}')
        if not isinstance(max_skips, int) or max_skips < 0:
            raise ValueError(f'NonFiniteGuardHook: max_skips must be an int >= 0, '
                             f'got {max_skips!r}')
        self.action, self.max_skips = action, max_skips
        self.skips_in_a_row = 0
        self.skipped_iters: List[int] = []
        self._runner = None
        self._handles: list = []  # the optimizers' step pre-hooks
        self._skipped_step: Optional[str] = None  # what the pre-hook found this iteration
        self._buffers: Optional[List[Tuple[Tensor, Tensor]]] = None
        self._names: Dict[int, str] = {}
        self._device = torch.device('cpu')

    # ------------------------------------------------------ the optimizer step
    def before_train(self, runner) -> None:
        self._runner = runner
        self._remove_handles()
        model = _unwrap(runner.model)
        self._names = {id(p): n for n, p in model.named_parameters()}
        # where a verdict lives when nothing was checked (NCCL wants a CUDA tensor)
        self._device = next(model.parameters(), torch.empty(0)).device
        for wrapper in _wrappers(runner.optim_wrapper):
            if not hasattr(wrapper, 'loss_scaler'):
                self._handles.append(
                    wrapper.optimizer.register_step_pre_hook(self._before_step))

    def after_train(self, runner) -> None:
        self._remove_handles()

    def _remove_handles(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _before_step(self, optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        """Optimizer step pre-hook: a non-finite gradient turns the step into none."""
        grads = []
        for i, group in enumerate(optimizer.param_groups):
            for j, p in enumerate(group['params']):
                if p.grad is not None:
                    grads.append((self._names.get(id(p), f'param_groups[{i}][{j}]'), p.grad))
        flag = all_finite(g for _, g in grads)
        if flag is None or bool(flag):  # the one host sync of the step
            return None
        if self._skipped_step is None:
            name, kind = find_non_finite(grads, limit=1)[0]
            self._skipped_step = f'gradient of {name} is {kind}'
        for group in optimizer.param_groups:
            for p in group['params']:
                p.grad = None  # an optimizer leaves a parameter without gradient as it is
        return None

    # ------------------------------------------------------------- deciding
    def _iteration(self) -> int:
        return self._runner.iter + 1 if self._runner is not None else 0  # as logged

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._runner = runner
        self._skipped_step = None
        # The forward updates BN statistics before the verdict; 'skip' puts them back.
        if self.action == 'skip':
            self._buffers = [(b, b.detach().clone())
                             for b in _unwrap(runner.model).buffers()]

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        self._runner = runner
        skipped, self._skipped_step = self._skipped_step, None
        # the terms mmengine's parse_losses sums ('loss' in the key), then their sum
        outputs = outputs or {}
        terms = [(k, v.detach()) for k, v in outputs.items()
                 if 'loss' in k and k != 'loss' and isinstance(v, Tensor)]
        if isinstance(outputs.get('loss'), Tensor):
            terms.append(('loss (the sum)', outputs['loss'].detach()))
        model = _unwrap(runner.model)
        params, buffers = list(model.named_parameters()), list(model.named_buffers())
        flags = [f for f in (all_finite(v.float().reshape(-1) for _, v in terms),
                             all_finite(t for _, t in params + buffers)) if f is not None]
        bad = (~torch.stack(flags).all()).float() if flags else \
            torch.zeros((), device=self._device)
        if skipped is not None:
            bad = torch.ones_like(bad)
        if not _distributed() and skipped is None and not flags:
            return
        if not bool(_any_rank(bad)):  # every rank all-reduces once per iteration
            self.skips_in_a_row = 0
            return
        found = find_non_finite(terms, limit=1)
        if skipped is None:  # a step may have been taken: a weight it overflowed stays so
            weight = find_non_finite(params, limit=1)
            if weight:
                self._stop(f'iteration {self._iteration()}: ' + (
                    f'loss term {found[0][0]} is {found[0][1]}' if found else
                    f'weight {weight[0][0]} is {weight[0][1]} after the optimizer step (its '
                    'gradient was finite: the update overflowed; lower the learning rate)'))
        if found:
            message = f'loss term {found[0][0]} is {found[0][1]}'
        elif skipped is not None:
            message = skipped
        else:
            buffer = find_non_finite(buffers, limit=1)
            message = (f'buffer {buffer[0][0]} is {buffer[0][1]} after the forward' if buffer
                       else 'a loss term or gradient of another rank is not finite')
        message = f'iteration {self._iteration()}: {message}'
        self._restore_buffers()  # 'skip' only: BN statistics as before this iteration
        if self.action == 'stop' or self.skips_in_a_row >= self.max_skips:
            if self.action == 'skip':
                message += (f' ({self.skips_in_a_row + 1} non-finite iterations in a row, '
                            f'max_skips={self.max_skips})')
            self._stop(message)
        self.skips_in_a_row += 1
        self.skipped_iters.append(self._iteration())
        print_log(f'{message}: optimizer step skipped ({self.skips_in_a_row} in a row, '
                  f'{len(self.skipped_iters)} in all, max_skips={self.max_skips} in a row)',
                  logger='current', level=logging.WARNING)

    def _stop(self, message: str) -> None:
        runner = self._runner
        last = runner.message_hub.get_info('last_ckpt') if runner is not None else None
        MMLogger.get_current_instance().error(
            f'{message}; training stopped by NonFiniteGuardHook'
            + (f', last checkpoint: {last}' if last else ''))
        raise NonFiniteError(message)

    def _restore_buffers(self) -> None:
        with torch.no_grad():
            for buffer, saved in self._buffers or []:
                buffer.copy_(saved)

    # ------------------------------------------------------ the model itself
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in ('state_dict', 'ema_state_dict'):
            state = checkpoint.get(key)
            if not isinstance(state, dict):
                continue
            flag = all_finite(v for v in state.values() if isinstance(v, Tensor))
            if flag is not None and not bool(flag):
                found = find_non_finite(state.items(), limit=3)
                names = ', '.join(f'{n} is {k}' for n, k in found)
                meta = checkpoint.get('meta') or {}
                raise NonFiniteError(f"iteration {meta.get('iter', runner.iter)}: refusing to "
                                     f'save a checkpoint whose {key} is not finite ({names})')
