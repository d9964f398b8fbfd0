from mmseg.models.decode_heads import UPerHead
from mmseg.registry import MODELS

from .hierarchical_head_mixin import HierarchicalHeadMixin


@MODELS.register_module()
class HierarchicalUPerHead(HierarchicalHeadMixin, UPerHead):
    """UPerNet head (mmseg's `UPerHead`, e.g. on Swin) scoring every tree node
    (N, V, h, w); `predict` gives leaf scores (N, L, H, W).

    Args: see `HierarchicalHeadMixin` (hierarchy, inference, embedding_channels) and
    `UPerHead`.
    """
