from mmseg.models.decode_heads import FPNHead
from mmseg.registry import MODELS

from .hierarchical_head_mixin import HierarchicalHeadMixin


@MODELS.register_module()
class HierarchicalFPNHead(HierarchicalHeadMixin, FPNHead):
    """Semantic FPN head (mmseg's `FPNHead`, after an `FPN` neck) scoring every tree node
    (N, V, H/4, W/4); `predict` gives leaf scores (N, L, H, W). The light decoder of the
    CPU recipes on EfficientNet-Lite.

    Args: see `HierarchicalHeadMixin` (hierarchy, inference, embedding_channels) and
    `FPNHead` (in_channels, feature_strides, channels, ...).
    """
