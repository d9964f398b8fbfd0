"""Mixed precision on a CPU: what `tools/train.py --amp` uses where there is no GPU."""
import logging
import platform
from contextlib import contextmanager
from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from mmseg.registry import OPTIM_WRAPPERS

__all__ = ['CPUAmpOptimWrapper', 'cpu_has_native']


def cpu_has_native(dtype: torch.dtype) -> Optional[bool]:
    """Whether this CPU computes `dtype` in hardware; None where torch cannot tell.

    bfloat16 on x86: AVX512_BF16 or AMX tiles (torch's own probes, which oneDNN's
    kernels follow). Without them oneDNN still runs bfloat16 convolutions and matrix
    products, by converting to and from float32, and a step is slower than in float32:
    the Lite2 recipes' steps took 2.1x (HSSN) and 2.4x (flat) their float32 time on a
    2-core Xeon with AVX-512 but neither (README, GPU report). Other
    architectures (ARM's BF16 extension) and float16 are not probed: None.
    """
    if dtype != torch.bfloat16 or platform.machine().lower() not in ('x86_64', 'amd64'):
        return None
    probes = [getattr(torch.cpu, name, None)
              for name in ('_is_avx512_bf16_supported', '_is_amx_tile_supported')]
    probes = [probe for probe in probes if probe is not None]
    if not probes:  # a torch without the probes
        return None
    return any(probe() for probe in probes)


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
        if_emulated: what to do on a CPU without hardware for `dtype`
            (`cpu_has_native` is False): 'autocast' (default; what `--amp` asked for,
            with a warning that it will be slower than float32) or 'float32' (train
            in float32, logged): for configs that chose autocast for its speed.
        **kwargs: `OptimWrapper`'s arguments (`optimizer`, `clip_grad`, ...).
    """

    valid_dtypes = ('bfloat16', 'float16')
    valid_if_emulated = ('autocast', 'float32')

    def __init__(self, dtype: Union[str, torch.dtype] = 'bfloat16',
                 if_emulated: str = 'autocast', **kwargs) -> None:
        super().__init__(**kwargs)
        name = dtype if isinstance(dtype, str) else str(dtype).replace('torch.', '')
        if name not in self.valid_dtypes:
            raise ValueError(f'CPUAmpOptimWrapper: dtype must be one of {self.valid_dtypes}, '
                             f'got {dtype!r}')
        # No loss scaling: bfloat16 keeps float32's 8-bit exponent (range ~1e-38..3e38),
        # so small gradients do not underflow as they do in float16 (5-bit exponent),
        # which is what AmpOptimWrapper's GradScaler is for. The gradients land in
        # float32 parameters anyway. With dtype='float16' nothing is scaled either.
        if if_emulated not in self.valid_if_emulated:
            raise ValueError('CPUAmpOptimWrapper: if_emulated must be one of '
                             f'{self.valid_if_emulated}, got {if_emulated!r}')
        self.cast_dtype: Optional[torch.dtype] = getattr(torch, name)
        if cpu_has_native(self.cast_dtype) is False:
            if if_emulated == 'float32':
                self.cast_dtype = None
                print_log(f'CPUAmpOptimWrapper: this CPU has no {name} hardware (AVX512_BF16 '
                          'or AMX), where autocast is slower than float32: training in '
                          "float32 (the config's if_emulated='float32')", logger='current')
                return
            print_log(f'CPUAmpOptimWrapper: this CPU has no {name} hardware (AVX512_BF16 or '
                      'AMX): autocast emulates it and will be slower than float32 here '
                      "(if_emulated='float32' trains in float32 instead)",
                      logger='current', level=logging.WARNING)
        print_log(f'CPUAmpOptimWrapper: mixed precision by {name} autocast on the CPU, '
                  'no loss scaling', logger='current')

    @contextmanager
    def optim_context(self, model: nn.Module):
        """`OptimWrapper.optim_context` (gradient accumulation) plus CPU autocast."""
        with super().optim_context(model), torch.autocast(
                device_type='cpu', dtype=self.cast_dtype or torch.bfloat16,
                enabled=self.cast_dtype is not None):
            yield
