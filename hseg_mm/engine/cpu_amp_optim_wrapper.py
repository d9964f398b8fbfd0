"""Mixed precision on a CPU: what `tools/train.py --amp` uses where there is no GPU."""
from contextlib import contextmanager
from typing import Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from mmseg.registry import OPTIM_WRAPPERS

__all__ = ['CPUAmpOptimWrapper']


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """`OptimWrapper` whose forward (and loss) runs under CPU autocast.

    mmengine's `AmpOptimWrapper` asserts a CUDA/NPU/MLU/MUSA device, so on a CPU
    `--amp` builds this instead. Like `AmpOptimWrapper` it only changes
    `optim_context`, which mmengine's `train_step` enters around the data
    preprocessor and the forward; `val_step` and `test_step` do not enter it, so
    validation and testing stay float32. Parameters, gradients and optimizer
    state stay float32: autocast only computes some ops (convolutions, matrix
    products) in `dtype`.

    Args:
        dtype: the autocast dtype, 'bfloat16' (default) or 'float16'.
        **kwargs: `OptimWrapper`'s arguments (`optimizer`, `clip_grad`, ...).
    """

    valid_dtypes = ('bfloat16', 'float16')

    def __init__(self, dtype: Union[str, torch.dtype] = 'bfloat16', **kwargs) -> None:
        super().__init__(**kwargs)
        name = dtype if isinstance(dtype, str) else str(dtype).replace('torch.', '')
        if name not in self.valid_dtypes:
            raise ValueError(f'CPUAmpOptimWrapper: dtype must be one of {self.valid_dtypes}, '
                             f'got {dtype!r}')
        # No loss scaling: bfloat16 keeps float32's 8-bit exponent (range ~1e-38..3e38),
        # so small gradients do not underflow as they do in float16 (5-bit exponent),
        # which is what AmpOptimWrapper's GradScaler is for. The gradients land in
        # float32 parameters anyway. With dtype='float16' nothing is scaled either.
        self.cast_dtype = getattr(torch, name)
        print_log(f'CPUAmpOptimWrapper: mixed precision by {name} autocast on the CPU, '
                  'no loss scaling', logger='current')

    @contextmanager
    def optim_context(self, model: nn.Module):
        """`OptimWrapper.optim_context` (gradient accumulation) plus CPU autocast."""
        with super().optim_context(model), \
                torch.autocast(device_type='cpu', dtype=self.cast_dtype):
            yield
