"""Version shims (DESIGN.md section 5). Each is applied only where needed.

`apply()` runs on `import hseg_mm`, before anything imports `mmseg.models`.
"""
import importlib.util
import os
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


def _torch_at_least(version: str) -> bool:
    from mmengine.utils import digit_version
    return digit_version(torch.__version__.split('+')[0]) >= digit_version(version)


def load_local_checkpoint(filename: str, map_location=None) -> dict:
    """mmengine's local checkpoint loader, with `weights_only=False` made explicit.

    Load only checkpoints you trust: this unpickles, as torch < 2.6 always did.
    """
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'checkpoint not found: {filename}')
    return torch.load(filename, map_location=map_location, weights_only=False)


def _allow_mmengine_checkpoints() -> None:
    # torch >= 2.6 loads with weights_only=True, and mmengine 0.10.7 checkpoints hold a
    # HistoryBuffer (with bound methods) for resume; mmengine's own fix (PR 1650) does this.
    if _torch_at_least('2.6.0'):
        from mmengine.runner.checkpoint import CheckpointLoader
        CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)


def apply() -> None:
    """Apply every shim this environment needs; safe to call more than once."""
    if not has_compiled_mmcv_ops() and not isinstance(sys.modules.get('mmcv.ops'), types.ModuleType):
        _install_mmcv_ops_stand_in()
    _allow_mmengine_checkpoints()
