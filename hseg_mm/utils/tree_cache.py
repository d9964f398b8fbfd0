"""A cache of what a function derives from a class tree, that torch.compile can trace."""
import functools
from typing import Callable, TypeVar

import torch

T = TypeVar('T')


def tree_cached(fn: Callable[..., T]) -> Callable[..., T]:
    """`functools.lru_cache(maxsize=32)` over `fn(hierarchy)` (keyed by the tree object's
    identity), bypassed while torch.compile traces: dynamo ignores an lru_cache anyway
    (it traces the wrapped function, so the result becomes the graph's constants) and
    warns about it at every compilation; calling `fn` directly is the same trace
    without the warning."""
    cached = functools.lru_cache(maxsize=32)(fn)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if torch.compiler.is_compiling():
            return fn(*args, **kwargs)
        return cached(*args, **kwargs)
    return call
