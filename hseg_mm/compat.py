"""Version shims (see docs/environment.md). Each is applied only where needed.

`apply()` runs on `import hseg_mm`, before anything imports `mmseg.models`.
"""
import importlib.util
import sys
import types
import warnings
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def has_compiled_mmcv_ops() -> bool:
    """True when full mmcv (with its compiled `mmcv._ext`) is installed."""
    try:
        return importlib.util.find_spec('mmcv._ext') is not None
    except ModuleNotFoundError:  # no mmcv at all
        return False


def point_sample(input: Tensor, points: Tensor, align_corners: bool = False,
                 **kwargs) -> Tensor:
    """Pure-torch `mmcv.ops.point_sample`: `grid_sample` at points in [0, 1].

    Args:
        input: features, (N, C, H, W).
        points: (N, P, 2) or (N, Hg, Wg, 2), (x, y) in [0, 1].

    Returns:
        (N, C, P) or (N, C, Hg, Wg).
    """
    add_dim = points.dim() == 3
    if add_dim:
        points = points.unsqueeze(2)
    out = F.grid_sample(input, 2.0 * points - 1.0, align_corners=align_corners, **kwargs)
    return out.squeeze(3) if add_dim else out


def _missing_op(name: str) -> Callable:
    def missing(*args, **kwargs):
        raise RuntimeError(
            f'mmcv.ops.{name} needs full mmcv with compiled ops; this environment has '
            'mmcv-lite. Install mmcv 2.1.0 built for your torch (see README, "Install").')

    missing.__name__ = name
    return missing


def _install_mmcv_ops_stand_in() -> None:
    # mmcv-lite lacks mmcv._ext, and mmseg imports mmcv.ops unguarded in a few modules.
    module = types.ModuleType('mmcv.ops')
    module.__doc__ = 'hseg_mm stand-in for mmcv.ops (mmcv-lite): point_sample only.'
    module.point_sample = point_sample

    def __getattr__(name: str):
        if name.startswith('__'):
            raise AttributeError(name)
        return _missing_op(name)

    module.__getattr__ = __getattr__
    sys.modules['mmcv.ops'] = module
    import mmcv
    mmcv.ops = module
    # mmcv.cnn warns on import that deformable attention is missing; no model here uses it.
    warnings.filterwarnings('ignore', message='Fail to import ``MultiScaleDeformableAttention``')


def _allow_mmengine_checkpoints() -> None:
    # torch >= 2.6 loads with weights_only=True; mmengine checkpoints keep a
    # HistoryBuffer and numpy values in `message_hub`, which resume and test need.
    if not hasattr(torch.serialization, 'add_safe_globals'):
        return
    import numpy as np
    from mmengine.logging import HistoryBuffer
    multiarray = (np._core if hasattr(np, '_core') else np.core).multiarray  # numpy 2 / 1
    safe = [HistoryBuffer, np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar]
    safe += [type(np.dtype(t)) for t in ('float64', 'float32', 'int64', 'int32', 'bool')]
    # HistoryBuffer pickles its statistics methods as getattr(HistoryBuffer, 'min');
    # allow exactly that, never a general getattr (which would reopen the sandbox).
    # Once: a reloaded module's new function object would be a second entry for the name.
    if not any(isinstance(g, tuple) and g[1] == 'builtins.getattr'
               for g in torch.serialization.get_safe_globals()):
        safe.append((_history_buffer_getattr, 'builtins.getattr'))
    torch.serialization.add_safe_globals(safe)


def _history_buffer_getattr(obj, name: str):
    """`getattr` restricted to the public methods of mmengine's HistoryBuffer."""
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and not name.startswith('_') and \
            callable(getattr(HistoryBuffer, name, None)):
        return getattr(HistoryBuffer, name)
    import pickle
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({obj!r}, {name!r}); only HistoryBuffer methods '
        'are allowed when loading with weights_only=True')


def apply() -> None:
    """Apply every shim this environment needs; safe to call more than once."""
    if not has_compiled_mmcv_ops() and not isinstance(sys.modules.get('mmcv.ops'), types.ModuleType):
        _install_mmcv_ops_stand_in()
    _allow_mmengine_checkpoints()
