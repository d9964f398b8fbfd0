from typing import List

from mmseg.models.decode_heads import OCRHead
from mmseg.registry import MODELS
from torch import Tensor

from .hierarchical_head_mixin import HierarchicalHeadMixin


@MODELS.register_module()
class HierarchicalOCRHead(HierarchicalHeadMixin, OCRHead):
    """OCR head (mmseg's `OCRHead`) scoring every tree node (N, V, h, w).

    The second stage of a `HierarchicalCascadeEncoderDecoder`: `forward(inputs,
    prev_output)`, `loss(inputs, prev_output, batch_data_samples, train_cfg)` and
    `predict(inputs, prev_output, batch_img_metas, test_cfg)` as mmseg's cascade
    heads. `prev_output` is the first stage's node logits (N, V, h, w): each tree
    node is one soft object region, so parents gather context over all their parts.
    `predict` gives leaf scores (N, L, H, W).

    Args: see `HierarchicalHeadMixin` (hierarchy, inference, embedding_channels) and
    `OCRHead`.
    """

    def _forward_feature(self, inputs: List[Tensor], prev_output: Tensor) -> Tensor:
        """`OCRHead.forward` up to `cls_seg` (N, channels, h, w): the pixel feature,
        each node's soft region (`prev_output`, (N, V, h, w)) gathered into a context,
        and the object-contextual feature."""
        feats = self.bottleneck(self._transform_inputs(inputs))
        context = self.spatial_gather_module(feats, prev_output)
        return self.object_context_block(feats, context)
