from mmseg.models.decode_heads import DepthwiseSeparableASPPHead
from mmseg.registry import MODELS

from .hierarchical_head_mixin import HierarchicalHeadMixin


@MODELS.register_module()
class HierarchicalDepthwiseSeparableASPPHead(HierarchicalHeadMixin, DepthwiseSeparableASPPHead):
    """DeepLabV3+ head (mmseg's `DepthwiseSeparableASPPHead`) scoring every tree node
    (N, V, h, w); `predict` gives leaf scores (N, L, H, W). HSSN's head on
    PASCAL-Person-Part.

    Args: see `HierarchicalHeadMixin` (hierarchy, inference, embedding_channels) and
    `DepthwiseSeparableASPPHead`.
    """
