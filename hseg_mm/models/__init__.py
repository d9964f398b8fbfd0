"""Models: hierarchical losses, inference rules, decode heads and segmentors."""
from . import backbones, losses  # noqa: F401
from .inference import INFERENCE_RULES, leaf_scores, level_predictions
from . import decode_heads  # noqa: F401,E402  (heads import losses' registry and inference)
from . import segmentors  # noqa: F401,E402

__all__ = ['INFERENCE_RULES', 'leaf_scores', 'level_predictions']
