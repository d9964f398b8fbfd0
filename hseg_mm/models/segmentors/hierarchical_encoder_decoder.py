from typing import Optional

from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType, OptMultiConfig

from .hierarchical_segmentor_mixin import HierarchicalSegmentorMixin
from .pretrained import check_pretrained_weights


@MODELS.register_module()
class HierarchicalEncoderDecoder(HierarchicalSegmentorMixin, EncoderDecoder):
    """mmseg's `EncoderDecoder` with a hierarchical decode head.

    `predict` returns SegDataSamples with `seg_logits` = leaf scores (L, H, W),
    `pred_sem_seg` = leaf ids (1, H, W) and `pred_level_seg` (D, H, W). Pretrained
    weights must be local files (checked here, at build).

    Args: as `EncoderDecoder`.
    """

    def __init__(self, backbone: ConfigType, decode_head: ConfigType,
                 neck: OptConfigType = None, auxiliary_head: OptConfigType = None,
                 train_cfg: OptConfigType = None, test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None, pretrained: Optional[str] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        check_pretrained_weights(pretrained, backbone)
        super().__init__(backbone=backbone, decode_head=decode_head, neck=neck,
                         auxiliary_head=auxiliary_head, train_cfg=train_cfg,
                         test_cfg=test_cfg, data_preprocessor=data_preprocessor,
                         pretrained=pretrained, init_cfg=init_cfg)
