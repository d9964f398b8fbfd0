"""Optimiser parameter groups as plain dicts, so that torch.compile can trace the step."""
from typing import Iterator

import torch
from mmengine.optim import OptimWrapper, OptimWrapperDict


def _optimizers(optim_wrapper) -> Iterator[torch.optim.Optimizer]:
    if isinstance(optim_wrapper, OptimWrapperDict):
        for wrapper in optim_wrapper.values():
            yield from _optimizers(wrapper)
    elif isinstance(optim_wrapper, OptimWrapper):
        yield optim_wrapper.optimizer
    elif isinstance(optim_wrapper, torch.optim.Optimizer):
        yield optim_wrapper


def plain_param_groups(optim_wrapper) -> int:
    """Make every parameter group of `optim_wrapper`'s optimiser(s) a plain `dict`, in
    place (the same list, keys, values and parameter tensors); the number converted.

    With a `paramwise_cfg`, mmengine's `DefaultOptimWrapperConstructor` hands the
    optimiser its groups inside a `ConfigDict`, which turns each group into a
    `ConfigDict`. torch 2.13's dynamo, tracing the optimiser step that mmengine's
    `compile=True` puts in the compiled `train_step`, treats a dict subclass as a user
    object and fails on it (`'UserDefinedDictVariable' object has no attribute
    'items'`, in `Optimizer._set_capturable`): every recipe with layer-wise
    learning rates or decay (the Swin ones) could not be compiled.
    """
    count = 0
    for optimizer in _optimizers(optim_wrapper):
        for i, group in enumerate(optimizer.param_groups):
            if type(group) is not dict:
                optimizer.param_groups[i] = dict(group)
                count += 1
    return count
