"""Segmentors with hierarchical heads: leaf outputs plus per-level predictions."""
from .hierarchical_cascade_encoder_decoder import HierarchicalCascadeEncoderDecoder
from .hierarchical_encoder_decoder import HierarchicalEncoderDecoder
from .hierarchical_seg_tta_model import HierarchicalSegTTAModel
from .hierarchical_segmentor_mixin import HierarchicalSegmentorMixin
from .pretrained import check_pretrained_weights

__all__ = ['HierarchicalEncoderDecoder', 'HierarchicalCascadeEncoderDecoder',
           'HierarchicalSegmentorMixin', 'HierarchicalSegTTAModel', 'check_pretrained_weights']
