"""Lovász-softmax (Berman et al., CVPR 2018) at chosen levels of the tree.

A convex surrogate of each class's IoU, what the mIoU metric rewards, and the term human
parsing codebases add to cross-entropy (SCHP, Li et al. 2020); it weighs a thin part's
errors by that part's own IoU rather than by its pixel count. A level's class
probabilities are the leaf softmax summed up the tree, as `HierarchicalCrossEntropyLoss`
(`softmax='leaves'`) forms them; `levels=[-1]` is the plain Lovász-softmax on the leaves.
"""
from typing import Mapping, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmseg.registry import MODELS
from torch import Tensor

from ...hierarchy import ClassHierarchy, build_hierarchy
from .hierarchical_cross_entropy_loss import resolve_levels
from .utils import as_weight_list, check_inputs, safe_labels

RESOLUTIONS = (None, 'logits', 'label')


def lovasz_softmax_columns(prob: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Lovász-softmax over the classes present, all classes at once.

    Args:
        prob: (P, C) class probabilities of P pixels.
        target: (P,) class indices (any value where not `valid`).
        valid: (P,) bool; an invalid pixel counts nowhere.

    Returns:
        Scalar: the mean over the classes present among the valid pixels of
        sum_i e_(i) (J_i - J_(i-1)), e sorted descending, J_i the Jaccard loss of the
        i largest errors (mmseg's `lovasz_softmax_flat` with classes='present').

    An invalid pixel gets error 0 and is no class's member, so it sorts after every
    pixel with a positive error and only ever multiplies an error of 0: the value is
    that of the valid pixels alone, with no data-dependent shape (one sort for all C).
    """
    fg = torch.zeros_like(prob).scatter_(1, target.unsqueeze(1), 1.0)
    fg = fg * valid.unsqueeze(1)
    errors = (fg - prob).abs() * valid.unsqueeze(1)
    errors_sorted, order = errors.sort(dim=0, descending=True)
    fg_sorted = fg.gather(0, order)
    total = fg_sorted.sum(dim=0)  # (C,) pixels of each class
    intersection = total - fg_sorted.cumsum(dim=0)
    union = total + (1.0 - fg_sorted).cumsum(dim=0)
    jaccard = 1.0 - intersection / union  # union >= 1 from the first row on
    jaccard = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    per_class = (errors_sorted * jaccard).sum(dim=0)  # (C,)
    present = (total > 0).to(per_class.dtype)
    return (per_class * present).sum() / present.sum().clamp(min=1.0)


def hierarchical_lovasz(cls_score: Tensor,
                        label: Tensor,
                        hierarchy: Union[ClassHierarchy, Mapping, str],
                        levels: Optional[Sequence[int]] = None,
                        level_weights: Optional[Sequence[float]] = None,
                        ignore_index: int = 255) -> Tensor:
    """Weighted sum over `levels` of the Lovász-softmax of each level's probabilities.

    Args:
        cls_score: (N, V, H, W) node logits; only the leaf-node channels are read.
        label: (N, H, W) leaf ids or `ignore_index`.
        hierarchy: the class tree.
        levels: levels to include (0 = coarsest, negative from the deepest); None: all.
        level_weights: one weight per entry of `levels` (default 1 each).
        ignore_index: label value that counts nowhere.

    Returns:
        Scalar loss (the batch's pixels as one set, mmseg's `per_image=False`).
    """
    hierarchy = build_hierarchy(hierarchy)
    valid = check_inputs(cls_score, label, hierarchy, ignore_index, 'HierarchicalLovaszLoss')
    levels = resolve_levels(levels, hierarchy, 'HierarchicalLovaszLoss levels')
    level_weights = as_weight_list(level_weights, len(levels), 'level_weights') \
        or [1.0] * len(levels)
    leaf = safe_labels(label, valid).flatten()  # (P,)
    leaf_index = torch.as_tensor(hierarchy.leaf_nodes, device=cls_score.device)
    # (P, L), channel l = label id l; float32 under AMP too
    prob = cls_score.float().index_select(1, leaf_index).softmax(dim=1) \
        .permute(0, 2, 3, 1).reshape(-1, hierarchy.num_leaves)
    valid = valid.flatten()
    total = cls_score.new_zeros((), dtype=torch.float32)
    for k, weight in zip(levels, level_weights):
        lut = torch.as_tensor(hierarchy.leaf_to_level[k], device=cls_score.device)  # (L,)
        level_prob = prob.new_zeros(prob.shape[0], hierarchy.level_sizes[k]) \
            .index_add_(1, lut, prob)  # a class's probability: its leaves' sum
        total = total + weight * lovasz_softmax_columns(level_prob, lut[leaf], valid)
    return total


@MODELS.register_module()
class HierarchicalLovaszLoss(nn.Module):
    """Lovász-softmax of the leaf softmax summed up the tree, at chosen levels.

    Added to a cross-entropy (it is a surrogate of IoU, not a likelihood). It sorts
    every pixel's error per class, so on a CPU it is cheaper at the head's logits
    (`loss_resolution='logits'`, 1/16 of the pixels of a 1/4 head) than at the label.

    Args:
        hierarchy: the class tree (nested mapping, preset name or ClassHierarchy).
        levels: levels to include (0 = coarsest, negative from the deepest); None: all.
        level_weights: one weight per included level.
        loss_resolution: where the head evaluates this loss: 'logits', 'label', or None
            (the head's own `loss_resolution`).
        loss_weight: multiplier of the loss.
        loss_name: name in the log; must start with 'loss_' to be optimised.
    """

    def __init__(self,
                 hierarchy: Union[ClassHierarchy, Mapping, str],
                 levels: Optional[Sequence[int]] = None,
                 level_weights: Optional[Sequence[float]] = None,
                 loss_resolution: Optional[str] = None,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_lovasz') -> None:
        super().__init__()
        self.hierarchy = build_hierarchy(hierarchy)
        self.levels = resolve_levels(levels, self.hierarchy, 'HierarchicalLovaszLoss levels')
        self.level_weights = as_weight_list(
            level_weights, len(self.levels),
            f'HierarchicalLovaszLoss level_weights (one per level in {self.levels})')
        if loss_resolution not in RESOLUTIONS:
            raise ValueError(f'HierarchicalLovaszLoss: loss_resolution must be one of '
                             f'{RESOLUTIONS}, got {loss_resolution!r}')
        self.loss_resolution = loss_resolution
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    def forward(self,
                cls_score: Tensor,
                label: Tensor,
                weight: Optional[Tensor] = None,
                ignore_index: int = 255,
                **kwargs) -> Tensor:
        """Loss of node logits (N, V, H, W) against leaf labels (N, H, W).

        Extra keywords (e.g. the head's `embedding`) are ignored. Pixel weights are
        refused: the Lovász extension weighs a pixel by its error's rank.
        """
        if weight is not None:
            raise ValueError('HierarchicalLovaszLoss takes no pixel weights (the Lovász '
                             'extension weighs a pixel by its error\'s rank)')
        return self.loss_weight * hierarchical_lovasz(
            cls_score, label, self.hierarchy, levels=self.levels,
            level_weights=self.level_weights, ignore_index=ignore_index)

    @property
    def loss_name(self) -> str:
        return self._loss_name
