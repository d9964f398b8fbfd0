"""Hierarchical losses: each a plain function plus a registered module."""
from .focal_tree_min_loss import FocalTreeMinLoss, focal_tree_min_loss, tree_min_max

__all__ = ['FocalTreeMinLoss', 'focal_tree_min_loss', 'tree_min_max']
