"""Models: hierarchical losses, inference rules (and the heads that use them)."""
from . import losses  # noqa: F401
from .inference import INFERENCE_RULES, leaf_scores, level_predictions

__all__ = ['INFERENCE_RULES', 'leaf_scores', 'level_predictions']
