from typing import List, Sequence

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from torch import Tensor


class UNetDecoderBlock(nn.Module):
    """Upsample x2 (nearest, to the skip's size), concatenate the skip, two 3x3
    conv-BN-ReLU: (N, C_in, h, w) + (N, C_skip, 2h, 2w) -> (N, C_out, 2h, 2w)."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int,
                 **conv_kwargs) -> None:
        super().__init__()
        self.conv1 = ConvModule(in_channels + skip_channels, out_channels, 3, padding=1,
                                **conv_kwargs)
        self.conv2 = ConvModule(out_channels, out_channels, 3, padding=1, **conv_kwargs)

    def forward(self, x: Tensor, skip: Tensor = None) -> Tensor:
        if skip is None:
            x = resize(x, scale_factor=2, mode='nearest')
        else:  # to the skip's size: an odd input makes it 2h - 1, not 2h
            x = torch.cat([resize(x, size=skip.shape[2:], mode='nearest'), skip], dim=1)
        return self.conv2(self.conv1(x))


@MODELS.register_module()
class UNetHead(BaseDecodeHead):
    """The U-Net decoder of segmentation_models_pytorch's `Unet` as an mmseg head.

    The deepest backbone feature goes up through one decoder block per skip feature
    (upsample x2, concatenate the skip, two 3x3 conv-BN-ReLU), then through as many
    more blocks without a skip as `decoder_channels` has left, up to full resolution on
    a stride-2 feature; a 3x3 convolution scores the classes there. With the five
    features of an EfficientNet (strides 2 ... 32) and `decoder_channels=(256, 128, 64,
    32, 16)` this is smp's default Unet, the decoder of the seeds' systems (smp's
    `center` is an identity for such encoders, and its attention off).

    Args:
        in_channels: channels of the selected features, shallowest first
            (e.g. (16, 24, 40, 112, 320) for EfficientNet-Lite0, strides 2 ... 32).
        in_index: the backbone outputs taken, shallowest first.
        decoder_channels: output channels of each block, deepest first; at least
            `len(in_channels) - 1` blocks (one per skip), the rest upsample alone.
        cls_kernel_size: kernel of the class scorer (smp: 3; mmseg heads: 1).
        **kwargs: `BaseDecodeHead`'s (num_classes, norm_cfg, dropout_ratio, ...);
            `channels` is the last block's width and may be left out.

    Shapes: inputs shallowest first, (N, C_k, H / s_k, W / s_k); output (N, num_classes,
    H / s_0 * 2^(blocks - skips), ...): full resolution on a stride-2 first feature.
    """

    def __init__(self, in_channels: Sequence[int], in_index: Sequence[int],
                 decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
                 cls_kernel_size: int = 3, **kwargs) -> None:
        in_channels, decoder_channels = list(in_channels), list(decoder_channels)
        if kwargs.setdefault('channels', decoder_channels[-1]) != decoder_channels[-1]:
            raise ValueError(f'UNetHead: channels={kwargs["channels"]} must be the last '
                             f'decoder width, {decoder_channels[-1]}; leave it out')
        if len(decoder_channels) < len(in_channels) - 1:
            raise ValueError(f'UNetHead: {len(in_channels) - 1} skip features need at least '
                             f'as many decoder blocks, got decoder_channels={decoder_channels}')
        super().__init__(in_channels=in_channels, in_index=list(in_index),
                         input_transform='multiple_select', **kwargs)
        skips = in_channels[:-1][::-1]  # deepest skip first
        skips += [0] * (len(decoder_channels) - len(skips))
        inputs = [in_channels[-1]] + decoder_channels[:-1]
        conv_kwargs = dict(conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg,
                           act_cfg=self.act_cfg)
        self.blocks = nn.ModuleList(
            UNetDecoderBlock(i, s, o, **conv_kwargs)
            for i, s, o in zip(inputs, skips, decoder_channels))
        if cls_kernel_size != 1:
            self.conv_seg = nn.Conv2d(self.channels, self.out_channels, cls_kernel_size,
                                      padding=cls_kernel_size // 2)

    def _forward_feature(self, inputs: List[Tensor]) -> Tensor:
        """The last decoder block's output (N, decoder_channels[-1], H', W')."""
        feats = self._transform_inputs(inputs)
        skips = feats[:-1][::-1]
        x = feats[-1]
        for k, block in enumerate(self.blocks):
            x = block(x, skips[k] if k < len(skips) else None)
        return x

    def forward(self, inputs: List[Tensor]) -> Tensor:
        return self.cls_seg(self._forward_feature(inputs))
