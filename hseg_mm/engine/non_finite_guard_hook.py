"""Stop (or skip) at the first nan/inf loss term or gradient; never save a NaN model."""
import logging
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

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

    How: `before_train` wraps, on the instances, the model's `parse_losses` (to
    keep this iteration's loss terms) and the optim wrapper's `backward` and
    `step` (so any wrapper class works: OptimWrapper, AmpOptimWrapper,
    CPUAmpOptimWrapper). The loss terms are read before `backward`, the gradients
    after it; the decision is taken in `step`, before the parameters change.
    After every iteration (before EMAHook and CheckpointHook) the parameters and
    buffers are checked too: a finite gradient times a huge learning rate can
    still overflow a weight, and that model must not reach a checkpoint or the
    validation that picks the best one. Last, `before_save_checkpoint` refuses a
    checkpoint whose `state_dict` is not finite (a safety net only: mmengine's
    CheckpointHook deletes the oldest or previous best file before it saves).

    Cost: per optimizer step, one fused max-abs reduction over the gradients and
    one host sync to read the verdict (the loss-term check adds a few scalar ops
    and shares that sync); per iteration, one reduction over the weights and
    buffers, read after mmengine's own per-iteration sync (RuntimeInfoHook reads
    the logged losses with `.item()`), so it waits only for that reduction.

    Distributed: every rank must take the same decision, or the others hang in the
    next collective. The gradients are all-reduced (the same on every rank), the
    loss terms are each rank's own, so the verdict (loss terms or gradients bad)
    is all-reduced as one float (MAX) before it is read: one 4-byte all-reduce
    per step, and one per iteration for the weights/buffers check (buffers such
    as BN statistics differ between ranks). Each rank names what it saw; a rank
    whose own terms and gradients were finite says another rank's were not.

    With a loss scaler (mmengine's AmpOptimWrapper on CUDA) inf/nan gradients are
    the scaler's business: it skips that step and lowers the scale. So only the
    loss terms (and the weights after each iteration) are checked there.

    Args:
        action: 'stop' (raise `NonFiniteError`, default) or 'skip' (no optimizer
            step: parameters, optimizer state and BN statistics stay as before
            the iteration, gradients are zeroed; the learning-rate schedule goes
            on), up to `max_skips` iterations in a row, then stop. A weight that
            is non-finite after a step cannot be undone: that always stops.
        max_skips: with 'skip', how many non-finite iterations in a row are
            skipped; the next one stops. A finite step resets the count.
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
        self._terms: Optional[List[Tuple[str, Tensor]]] = None  # from parse_losses
        self._pending: List[Tuple[int, List[Tuple[str, Tensor]], Tensor]] = []
        self._buffers: Optional[List[Tuple[Tensor, Tensor]]] = None
        self._wrapped: List[Tuple[object, str]] = []
        self._names: Dict[int, str] = {}
        self._device = torch.device('cpu')

    # ------------------------------------------------------------- wrapping
    def _wrap(self, obj, name: str, make) -> None:
        original = getattr(obj, name)
        setattr(obj, name, make(original))  # an instance attribute shadows the method
        self._wrapped.append((obj, name))

    def before_train(self, runner) -> None:
        self._runner = runner
        self._unwrap_all()
        model = _unwrap(runner.model)
        self._names = {id(p): n for n, p in model.named_parameters()}
        # where a verdict lives when nothing was checked (NCCL wants a CUDA tensor)
        self._device = next(model.parameters(), torch.empty(0)).device
        if hasattr(model, 'parse_losses'):
            self._wrap(model, 'parse_losses', self._parse_losses)
        for wrapper in _wrappers(runner.optim_wrapper):
            self._wrap(wrapper, 'backward', self._backward)
            self._wrap(wrapper, 'step', lambda step, w=wrapper: self._step(w, step))

    def after_train(self, runner) -> None:
        self._unwrap_all()

    def _unwrap_all(self) -> None:
        for obj, name in self._wrapped:
            obj.__dict__.pop(name, None)
        self._wrapped = []

    def _parse_losses(self, parse_losses):
        def wrapped(losses):
            loss, log_vars = parse_losses(losses)
            # the terms mmengine's parse_losses sums ('loss' in the key), then the sum
            terms = [(k, v) for k, v in log_vars.items() if 'loss' in k and k != 'loss']
            self._terms = terms + [('loss (the sum)', loss)]
            return loss, log_vars
        return wrapped

    def _backward(self, backward):
        def wrapped(loss, **kwargs):
            terms = self._terms if self._terms is not None else [('loss', loss)]
            self._terms = None
            values = [t.detach().float().reshape(-1) for _, t in terms
                      if isinstance(t, Tensor)]
            flag = all_finite(values)  # no sync: read at the step
            self._pending.append((self._iteration(), terms, flag))
            return backward(loss, **kwargs)
        return wrapped

    def _step(self, wrapper: OptimWrapper, step):
        def wrapped(**kwargs):
            pending, self._pending = self._pending, []
            grads = [] if hasattr(wrapper, 'loss_scaler') else self._grads(wrapper)
            flags = [f for _, _, f in pending] + [all_finite(g for _, g in grads)]
            if self._verdict(flags):  # the one host sync of the step
                return self._non_finite_step(wrapper, pending, grads)
            self.skips_in_a_row = 0
            return step(**kwargs)
        return wrapped

    # ------------------------------------------------------------- deciding
    def _verdict(self, flags: Sequence[Optional[Tensor]]) -> bool:
        """True when some flag (0-d bool, True = finite) is False on some rank.

        Every rank all-reduces exactly once per call, even with no flag (a structure
        that differs between ranks must not leave one rank out of the collective).
        """
        flags = [f for f in flags if f is not None]
        if flags:
            bad = (~torch.stack([f.to(flags[0].device) for f in flags]).all()).float()
        elif _distributed():
            bad = torch.zeros((), device=self._device)
        else:
            return False
        return bool(_any_rank(bad))

    def _iteration(self) -> int:
        return self._runner.iter + 1 if self._runner is not None else 0  # as logged

    def _grads(self, wrapper: OptimWrapper) -> List[Tuple[str, Tensor]]:
        grads = []
        for i, group in enumerate(wrapper.optimizer.param_groups):
            for j, p in enumerate(group['params']):
                if p.grad is not None:
                    grads.append((self._names.get(id(p), f'param_groups[{i}][{j}]'), p.grad))
        return grads

    def _non_finite_step(self, wrapper, pending, grads) -> None:
        message = None
        for iteration, terms, flag in pending:
            if flag is not None and not bool(flag):
                name, kind = find_non_finite(
                    ((n, t.detach()) for n, t in terms if isinstance(t, Tensor)), limit=1)[0]
                message = f'iteration {iteration}: loss term {name} is {kind}'
                break
        if message is None:
            found = find_non_finite(grads, limit=1)
            message = f'iteration {self._iteration()}: ' + (
                f'gradient of {found[0][0]} is {found[0][1]}' if found else
                'a loss term or gradient of another rank is not finite')
        self._restore_buffers()  # 'skip' only: BN statistics as before this iteration
        if self.action == 'stop' or self.skips_in_a_row >= self.max_skips:
            if self.action == 'skip':
                message += (f' ({self.skips_in_a_row + 1} non-finite iterations in a row, '
                            f'max_skips={self.max_skips})')
            self._stop(message)
        self.skips_in_a_row += 1
        self.skipped_iters.append(self._iteration())
        wrapper.zero_grad()
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

    # ----------------------------------------------------- buffers (skip mode)
    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        # The forward updates BN statistics before the verdict; 'skip' puts them back.
        # Taken at the start of an accumulation window only (no backward pending).
        if self.action == 'skip' and not self._pending:
            self._buffers = [(b, b.detach().clone())
                             for b in _unwrap(runner.model).buffers()]

    def _restore_buffers(self) -> None:
        with torch.no_grad():
            for buffer, saved in self._buffers or []:
                buffer.copy_(saved)

    # ------------------------------------------------------ the model itself
    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        model = _unwrap(runner.model)
        params, buffers = list(model.named_parameters()), list(model.named_buffers())
        if not self._verdict([all_finite(t for _, t in params + buffers)]):
            return
        found = find_non_finite(params, limit=1)
        if found:
            what = (f'weight {found[0][0]} is {found[0][1]} after the optimizer step (its '
                    'gradient was finite: the update overflowed; lower the learning rate)')
        else:
            found = find_non_finite(buffers, limit=1)
            what = (f'buffer {found[0][0]} is {found[0][1]} after the forward' if found
                    else 'the weights of another rank are not finite')
        self._stop(f'iteration {self._iteration()}: {what}')

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
