from mmseg.registry import MODELS

from .hierarchical_head_mixin import HierarchicalHeadMixin
from .unet_head import UNetHead


@MODELS.register_module()
class HierarchicalUNetHead(HierarchicalHeadMixin, UNetHead):
    """U-Net decoder (`UNetHead`, segmentation_models_pytorch's Unet, the seeds'
    decoder) scoring every tree node (N, V, H, W) at full resolution; `predict` gives
    leaf scores (N, L, H, W).

    Args: see `HierarchicalHeadMixin` (hierarchy, inference, embedding_channels) and
    `UNetHead` (in_channels, in_index, decoder_channels, ...).
    """
