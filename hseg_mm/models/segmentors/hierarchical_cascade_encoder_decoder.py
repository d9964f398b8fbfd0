from collections.abc import Mapping
from typing import List, Optional, Union

from mmseg.models.segmentors import CascadeEncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType, OptMultiConfig

from ...hierarchy import ClassHierarchy
from .hierarchical_segmentor_mixin import HierarchicalSegmentorMixin
from .pretrained import check_timm_weights, weight_references


@MODELS.register_module()
class HierarchicalCascadeEncoderDecoder(HierarchicalSegmentorMixin, CascadeEncoderDecoder):
    """mmseg's `CascadeEncoderDecoder` whose last stage is hierarchical (OCR:
    `[HierarchicalFCNHead, HierarchicalOCRHead]`, the first stage's node scores being
    the second's object regions).

    `predict` returns SegDataSamples with `seg_logits` = leaf scores (L, H, W),
    `pred_sem_seg` = leaf ids (1, H, W) and `pred_level_seg` (D, H, W). Pretrained
    weights are loaded by mmengine in `init_weights` (`pretrained.py`).

    Args: as `CascadeEncoderDecoder`, and
        hierarchy: the class tree, given to every hierarchical head whose config
            leaves it out (None: each head states its own).
    """

    def __init__(self, num_stages: int, backbone: ConfigType, decode_head: List[ConfigType],
                 neck: OptConfigType = None, auxiliary_head: OptConfigType = None,
                 train_cfg: OptConfigType = None, test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None, pretrained: Optional[str] = None,
                 init_cfg: OptMultiConfig = None,
                 hierarchy: Union[None, ClassHierarchy, Mapping, str] = None) -> None:
        check_timm_weights(pretrained, backbone)  # timm loads its weights while built
        references = weight_references(pretrained, backbone)
        decode_head = self._fill_hierarchy(decode_head, hierarchy, 'decode_head')
        auxiliary_head = self._fill_hierarchy(auxiliary_head, hierarchy, 'auxiliary_head')
        super().__init__(num_stages=num_stages, backbone=backbone, decode_head=decode_head,
                         neck=neck, auxiliary_head=auxiliary_head, train_cfg=train_cfg,
                         test_cfg=test_cfg, data_preprocessor=data_preprocessor,
                         pretrained=pretrained, init_cfg=init_cfg)
        self.weight_references = references  # read by init_weights
