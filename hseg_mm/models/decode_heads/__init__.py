"""Hierarchical decode heads: mmseg heads scoring every tree node, sharing one mixin."""
from .hierarchical_depthwise_separable_aspp_head import HierarchicalDepthwiseSeparableASPPHead
from .hierarchical_fcn_head import HierarchicalFCNHead
from .hierarchical_fpn_head import HierarchicalFPNHead
from .hierarchical_head_mixin import HierarchicalHeadMixin
from .hierarchical_ocr_head import HierarchicalOCRHead
from .hierarchical_unet_head import HierarchicalUNetHead
from .hierarchical_uper_head import HierarchicalUPerHead
from .unet_head import UNetHead
from .poincare_classifier import (PoincareClassifier, expmap0_to_ball, poincare_mlr,
                                  project_to_ball)

__all__ = ['HierarchicalHeadMixin', 'HierarchicalDepthwiseSeparableASPPHead',
           'HierarchicalFCNHead', 'HierarchicalFPNHead', 'HierarchicalOCRHead',
           'HierarchicalUNetHead', 'HierarchicalUPerHead', 'UNetHead',
           'PoincareClassifier', 'poincare_mlr', 'expmap0_to_ball', 'project_to_ball']
