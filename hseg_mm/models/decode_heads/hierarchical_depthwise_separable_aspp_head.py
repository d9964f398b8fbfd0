from typing import List

import torch
from mmseg.models.decode_heads import DepthwiseSeparableASPPHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from torch import Tensor

from .hierarchical_head_mixin import HierarchicalHeadMixin


@MODELS.register_module()
class HierarchicalDepthwiseSeparableASPPHead(HierarchicalHeadMixin, DepthwiseSeparableASPPHead):
    """DeepLabV3+ head (mmseg's `DepthwiseSeparableASPPHead`) scoring every tree node
    (N, V, h, w); `predict` gives leaf scores (N, L, H, W). HSSN's head on
    PASCAL-Person-Part.

    Args: see `HierarchicalHeadMixin` (hierarchy, inference, embedding_channels) and
    `DepthwiseSeparableASPPHead`.
    """

    def _forward_feature(self, inputs: List[Tensor]) -> Tensor:
        """`DepthwiseSeparableASPPHead.forward` up to `cls_seg` (N, channels, h, w):
        image pooling and the ASPP branches, the bottleneck, then, with the low-level
        feature (`c1_in_channels`), the decoder at its resolution."""
        x = self._transform_inputs(inputs)
        pooled = resize(self.image_pool(x), size=x.shape[2:], mode='bilinear',
                        align_corners=self.align_corners)
        output = self.bottleneck(torch.cat([pooled] + self.aspp_modules(x), dim=1))
        if self.c1_bottleneck is not None:
            c1_output = self.c1_bottleneck(inputs[0])
            output = resize(output, size=c1_output.shape[2:], mode='bilinear',
                            align_corners=self.align_corners)
            output = torch.cat([output, c1_output], dim=1)
        return self.sep_bottleneck(output)
