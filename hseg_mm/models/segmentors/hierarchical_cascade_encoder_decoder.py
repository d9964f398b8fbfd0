from typing import List, Optional

from mmseg.models.segmentors import CascadeEncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType, OptMultiConfig

from .hierarchical_segmentor_mixin import HierarchicalSegmentorMixin
from .pretrained import check_pretrained_weights


@MODELS.register_module()
class HierarchicalCascadeEncoderDecoder(HierarchicalSegmentorMixin, CascadeEncoderDecoder):
    """mmseg's `CascadeEncoderDecoder` whose last stage is hierarchical (OCR:
    `[HierarchicalFCNHead, HierarchicalOCRHead]`, the first stage's node scores being
    the second's object regions).

    `predict` returns SegDataSamples with `seg_logits` = leaf scores (L, H, W),
    `pred_sem_seg` = leaf ids (1, H, W) and `pred_level_seg` (D, H, W). Pretrained
    weights must be local files (checked here, at build).

    Args: as `CascadeEncoderDecoder`.
    """

    def __init__(self, num_stages: int, backbone: ConfigType, decode_head: List[ConfigType],
                 neck: OptConfigType = None, auxiliary_head: OptConfigType = None,
                 train_cfg: OptConfigType = None, test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None, pretrained: Optional[str] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        check_pretrained_weights(pretrained, backbone)
        super().__init__(num_stages=num_stages, backbone=backbone, decode_head=decode_head,
                         neck=neck, auxiliary_head=auxiliary_head, train_cfg=train_cfg,
                         test_cfg=test_cfg, data_preprocessor=data_preprocessor,
                         pretrained=pretrained, init_cfg=init_cfg)
