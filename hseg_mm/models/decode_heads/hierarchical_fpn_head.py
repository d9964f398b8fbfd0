from typing import List

from mmseg.models.decode_heads import FPNHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from torch import Tensor

from .hierarchical_head_mixin import HierarchicalHeadMixin


@MODELS.register_module()
class HierarchicalFPNHead(HierarchicalHeadMixin, FPNHead):
    """Semantic FPN head (mmseg's `FPNHead`, after an `FPN` neck) scoring every tree node
    (N, V, H/4, W/4); `predict` gives leaf scores (N, L, H, W). The light decoder of the
    CPU recipes on EfficientNet-Lite.

    Args: see `HierarchicalHeadMixin` (hierarchy, inference, embedding_channels) and
    `FPNHead` (in_channels, feature_strides, channels, ...).
    """

    def _forward_feature(self, inputs: List[Tensor]) -> Tensor:
        """`FPNHead.forward` up to `cls_seg`: every level's scale head, summed at the
        finest level's size (N, channels, h, w)."""
        x = self._transform_inputs(inputs)
        output = self.scale_heads[0](x[0])
        for i in range(1, len(self.feature_strides)):
            output = output + resize(self.scale_heads[i](x[i]), size=output.shape[2:],
                                     mode='bilinear', align_corners=self.align_corners)
        return output
