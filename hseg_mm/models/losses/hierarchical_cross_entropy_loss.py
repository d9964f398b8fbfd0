"""Cross-entropy at every level of the tree from one leaf softmax (seed 001)."""
from typing import List, Mapping, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor

from ...hierarchy import ClassHierarchy, build_hierarchy
from .utils import as_weight_list, check_inputs, reduce_pixel_loss, safe_labels


def resolve_levels(levels: Optional[Sequence[int]], hierarchy: ClassHierarchy,
                   what: str = 'levels') -> List[int]:
    """0-based level indices from a list that may use negative indices (None: all)."""
    num = hierarchy.num_levels
    if levels is None:
        return list(range(num))
    resolved = []
    for k in levels:
        if not isinstance(k, int) or not -num <= k < num:
            raise ValueError(f'{what}: level {k!r} does not exist; the hierarchy has {num} '
                             f'levels (0..{num - 1}, or -{num}..-1 from the deepest)')
        resolved.append(k % num)
    if len(set(resolved)) != len(resolved) or not resolved:
        raise ValueError(f'{what}: {list(levels)} must name distinct levels, at least one')
    return resolved


def hierarchical_cross_entropy(cls_score: Tensor,
                               label: Tensor,
                               hierarchy: Union[ClassHierarchy, Mapping, str],
                               weight: Optional[Tensor] = None,
                               levels: Optional[Sequence[int]] = None,
                               level_weights: Optional[Sequence[float]] = None,
                               class_weight: Optional[Sequence[Optional[Sequence[float]]]] = None,
                               reduction: str = 'mean',
                               avg_factor: Optional[float] = None,
                               ignore_index: int = 255) -> Tensor:
    """Sum over levels of the cross-entropy of leaf probabilities summed to that level.

    The leaf-node channels get one softmax; the log-probability of a level-k class
    is the logsumexp of its member leaves' log-probabilities (stable, no clamp).
    With `levels=[-1]` this is the plain flat cross-entropy over the leaves.

    Args:
        cls_score: (N, V, H, W) node logits; only the leaf-node channels are used.
        label: (N, H, W) leaf ids or `ignore_index`; never modified.
        hierarchy: the class tree.
        weight: optional (N, H, W) pixel weights.
        levels: levels to include (0 = coarsest, negative from the deepest);
            None: all.
        level_weights: one weight per entry of `levels` (default 1 each).
        class_weight: one entry per entry of `levels`: None or C_k class weights;
            a pixel's loss at level k is scaled by the weight of its level-k class.
        reduction: 'mean' (over valid pixels), 'sum' or 'none' ((N, H, W)).
        avg_factor: divisor for 'mean' instead of the number of valid pixels.
        ignore_index: label value that contributes nothing.

    Returns:
        Scalar loss, or (N, H, W) for reduction 'none'.
    """
    hierarchy = build_hierarchy(hierarchy)
    valid = check_inputs(cls_score, label, hierarchy, ignore_index,
                         'HierarchicalCrossEntropyLoss')
    cls_score = cls_score.float()  # float32 under AMP too, as mmseg's CE does via autocast
    levels = resolve_levels(levels, hierarchy)
    level_weights = as_weight_list(level_weights, len(levels), 'level_weights') \
        or [1.0] * len(levels)
    class_weight = list(class_weight) if class_weight is not None else [None] * len(levels)
    if len(class_weight) != len(levels):
        raise ValueError(f'class_weight needs one entry (None or a list) per level in '
                         f'{levels}, got {len(class_weight)}')
    device = cls_score.device
    leaf_index = torch.as_tensor(hierarchy.leaf_nodes, device=device)
    leaf_logp = F.log_softmax(cls_score.index_select(1, leaf_index), dim=1)  # (N, L, H, W)
    leaf = safe_labels(label, valid)

    total = cls_score.new_zeros(label.shape)
    for k, level_weight, cw in zip(levels, level_weights, class_weight):
        lut = torch.as_tensor(hierarchy.leaf_to_level[k], device=device)  # (L,)
        if len(set(hierarchy.leaf_to_level[k].tolist())) == hierarchy.num_leaves:
            # every class of this level is one leaf (e.g. the deepest level)
            nll = -leaf_logp.gather(1, leaf.unsqueeze(1)).squeeze(1)
        else:
            # member[l', l] = leaves l' and l share their level-k class; the target
            # class's log-probability is a logsumexp over the target's row.
            member = lut.unsqueeze(1) == lut.unsqueeze(0)  # (L, L)
            log_mask = torch.zeros(member.shape, dtype=cls_score.dtype, device=device)
            log_mask = log_mask.masked_fill(~member, float('-inf'))
            # (N, H, W, L) mask of the target's class members -> (N, L, H, W)
            target_mask = log_mask[leaf].permute(0, 3, 1, 2)
            nll = -torch.logsumexp(leaf_logp + target_mask, dim=1)  # (N, H, W)
        if cw is not None:
            size = hierarchy.level_sizes[k]
            cw = as_weight_list(cw, size, f'class_weight of level {k} '
                                f'({hierarchy.level_names(k)})')
            nll = nll * cls_score.new_tensor(cw)[lut[leaf]]
        total = total + level_weight * nll
    return reduce_pixel_loss(total, valid, weight, reduction, avg_factor)


@MODELS.register_module()
class HierarchicalCrossEntropyLoss(nn.Module):
    """Per-level cross-entropy of the leaf softmax summed up the tree.

    `levels=[-1]` gives the flat leaf cross-entropy baseline (Weber et al. 2024)
    as a one-line config change.

    Args:
        hierarchy: the class tree (nested mapping, preset name or ClassHierarchy).
        levels: levels to include (0 = coarsest, negative from the deepest);
            None: all.
        level_weights: one weight per included level.
        class_weight: one entry per included level, each None or that level's
            class weights (seed 001's `HierarchicalLoss`).
        reduction: 'mean', 'sum' or 'none'.
        loss_weight: multiplier of the loss.
        loss_name: name in the log; must start with 'loss_' to be optimised.
    """

    def __init__(self,
                 hierarchy: Union[ClassHierarchy, Mapping, str],
                 levels: Optional[Sequence[int]] = None,
                 level_weights: Optional[Sequence[float]] = None,
                 class_weight: Optional[Sequence[Optional[Sequence[float]]]] = None,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_hier_ce') -> None:
        super().__init__()
        self.hierarchy = build_hierarchy(hierarchy)
        self.levels = resolve_levels(levels, self.hierarchy,
                                     'HierarchicalCrossEntropyLoss levels')
        self.level_weights = as_weight_list(
            level_weights, len(self.levels),
            f'HierarchicalCrossEntropyLoss level_weights (one per level in {self.levels})')
        if class_weight is not None:
            if len(class_weight) != len(self.levels):
                raise ValueError(
                    f'HierarchicalCrossEntropyLoss class_weight needs one entry (None or a '
                    f'list) per level in {self.levels}, got {len(class_weight)}')
            class_weight = [
                as_weight_list(cw, self.hierarchy.level_sizes[k],
                               f'HierarchicalCrossEntropyLoss class_weight of level {k} '
                               f'({self.hierarchy.level_names(k)})')
                for k, cw in zip(self.levels, class_weight)]
        self.class_weight = class_weight
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError(f"HierarchicalCrossEntropyLoss: reduction must be 'none', 'mean' "
                             f'or \'sum\', got {reduction!r}')
        self.reduction = reduction
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    def forward(self,
                cls_score: Tensor,
                label: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                ignore_index: int = 255,
                **kwargs) -> Tensor:
        """Loss of node logits (N, V, H, W) against leaf labels (N, H, W).

        Extra keywords (e.g. the head's `embedding`) are ignored.
        """
        return self.loss_weight * hierarchical_cross_entropy(
            cls_score, label, self.hierarchy, weight=weight, levels=self.levels,
            level_weights=self.level_weights, class_weight=self.class_weight,
            reduction=reduction_override or self.reduction, avg_factor=avg_factor,
            ignore_index=ignore_index)

    @property
    def loss_name(self) -> str:
        return self._loss_name
