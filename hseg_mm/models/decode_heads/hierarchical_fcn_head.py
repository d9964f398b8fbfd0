from mmseg.models.decode_heads import FCNHead
from mmseg.registry import MODELS

from .hierarchical_head_mixin import HierarchicalHeadMixin


@MODELS.register_module()
class HierarchicalFCNHead(HierarchicalHeadMixin, FCNHead):
    """mmseg's `FCNHead` scoring every tree node (N, V, h, w); `predict` gives leaf
    scores (N, L, H, W). In an OCR cascade it is the first stage, whose node scores
    are the soft object regions of `HierarchicalOCRHead`.

    Args: see `HierarchicalHeadMixin` (hierarchy, inference, embedding_channels) and
    `FCNHead`.
    """
