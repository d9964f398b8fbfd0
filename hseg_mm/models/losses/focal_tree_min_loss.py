"""Focal tree-min loss (HSSN, Li et al., CVPR 2022)."""
from functools import lru_cache
from typing import Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor

from ...hierarchy import ClassHierarchy, build_hierarchy
from .utils import as_weight_list, check_inputs, reduce_pixel_loss, safe_labels


@lru_cache(maxsize=32)  # keyed by object identity; bounded for plain-function calls
def _tree_index(hierarchy: ClassHierarchy) -> tuple:
    """Per-depth index lists for `tree_min_max`, built once per hierarchy object.

    Returns (blocks, parent_local, child_local): `blocks[d]` is the [start, end)
    channel range of depth d+1 (channels are ordered by depth); `parent_local[d]`
    the position of each node's parent in the block above (d >= 1);
    `child_local[d]` each node's children in the block below, padded with the
    block size (the position of an appended -inf column).
    """
    blocks, start = [], 0
    for d in range(1, hierarchy.num_levels + 1):
        end = start + sum(1 for x in hierarchy.depths if x == d)
        blocks.append((start, end))
        start = end
    parent_local = [None] + [[hierarchy.parents[v] - blocks[d - 1][0] for v in range(s, e)]
                             for d, (s, e) in enumerate(blocks) if d > 0]
    child_local = []
    for d, (s, e) in enumerate(blocks[:-1]):
        below_start, below_end = blocks[d + 1]
        fan_out = max(len(hierarchy.children[v]) for v in range(s, e))
        rows = []
        for v in range(s, e):
            row = [c - below_start for c in hierarchy.children[v]]
            rows.append(row + [below_end - below_start] * (fan_out - len(row)))
        child_local.append(rows)
    return blocks, parent_local, child_local


def tree_min_max(node_logits: Tensor, hierarchy: ClassHierarchy) -> Tuple[Tensor, Tensor]:
    """Min over ancestors-or-self and max over descendants-or-self of node logits.

    One vectorised op per depth: the min flows down from parents, the max flows
    up from children. sigmoid is monotonic, so sigmoid(min logit) is the min of
    the sigmoid scores (and likewise for max), and the loss can stay in logits.

    Args:
        node_logits: (N, V, ...) in `hierarchy.node_names` order.

    Returns:
        (z_min, z_max), each (N, V, ...).
    """
    device = node_logits.device
    blocks, parent_local, child_local = _tree_index(hierarchy)
    parts = [node_logits[:, s:e] for s, e in blocks]

    mins = [parts[0]]
    for d in range(1, len(blocks)):
        index = torch.as_tensor(parent_local[d], device=device)
        mins.append(torch.minimum(parts[d], mins[-1].index_select(1, index)))

    maxs = [parts[-1]]
    for d in range(len(blocks) - 2, -1, -1):
        index = torch.as_tensor(child_local[d], device=device)  # (n_d, fan_out)
        below = maxs[0]
        filler = below.new_full((below.shape[0], 1, *below.shape[2:]), float('-inf'))
        below = torch.cat([below, filler], dim=1)
        gathered = below.index_select(1, index.flatten()).unflatten(1, index.shape)
        maxs.insert(0, torch.maximum(parts[d], gathered.amax(dim=2)))
    return torch.cat(mins, dim=1), torch.cat(maxs, dim=1)


def focal_tree_min_loss(cls_score: Tensor,
                        label: Tensor,
                        hierarchy: Union[ClassHierarchy, Mapping, str],
                        weight: Optional[Tensor] = None,
                        class_weight: Optional[Sequence[float]] = None,
                        gamma: float = 2.0,
                        reduction: str = 'mean',
                        avg_factor: Optional[float] = None,
                        ignore_index: int = 255) -> Tensor:
    """Focal tree-min loss.

    For node v with target t_v (1 iff v is on the pixel's root-to-leaf path),
    p_min = min of sigmoid scores over v and its ancestors, p_max = max over v
    and its descendants::

        loss_v = -t_v (1 - p_min)^gamma log(p_min) - (1 - t_v) p_max^gamma log(1 - p_max)

    summed over nodes (times `class_weight[v]`), averaged over valid pixels.

    Args:
        cls_score: (N, V, H, W) node logits, `hierarchy.node_names` order.
        label: (N, H, W) leaf ids or `ignore_index`; never modified.
        hierarchy: the class tree.
        weight: optional (N, H, W) pixel weights.
        class_weight: optional V per-node weights.
        gamma: focusing parameter (HSSN: 2).
        reduction: 'mean' (over valid pixels), 'sum' or 'none' ((N, H, W)).
        avg_factor: divisor for 'mean' instead of the number of valid pixels.
        ignore_index: label value that contributes nothing.

    Returns:
        Scalar loss, or (N, H, W) for reduction 'none'.
    """
    hierarchy = build_hierarchy(hierarchy)
    valid = check_inputs(cls_score, label, hierarchy, ignore_index, 'FocalTreeMinLoss')
    # float32 under AMP too: a half-precision sum over every pixel and node overflows
    cls_score = cls_score.float()
    z_min, z_max = tree_min_max(cls_score, hierarchy)
    # (L, V) path mask indexed by leaf id -> (N, H, W, V) -> (N, V, H, W)
    path_mask = torch.as_tensor(hierarchy.path_mask, device=cls_score.device)
    target = path_mask[safe_labels(label, valid)].permute(0, 3, 1, 2)
    # Both terms have the form -(1 - sigmoid(u))^gamma log sigmoid(u): u = z_min
    # on the path, u = -z_max off it (1 - sigmoid(z) = sigmoid(-z)). With
    # log sigmoid(-u) = log sigmoid(u) - u one logsigmoid serves both factors,
    # finite for any logit.
    u = torch.where(target, z_min, -z_max)
    log_p = F.logsigmoid(u)
    node_loss = torch.exp((log_p - u) * gamma) * log_p  # negated once, per pixel, below
    if class_weight is not None:
        node_loss = node_loss * cls_score.new_tensor(class_weight).view(1, -1, 1, 1)
    return reduce_pixel_loss(-node_loss.sum(dim=1), valid, weight, reduction, avg_factor)


@MODELS.register_module()
class FocalTreeMinLoss(nn.Module):
    """Focal tree-min loss on sigmoid node scores (HSSN).

    Args:
        hierarchy: the class tree (nested mapping, preset name or ClassHierarchy).
        gamma: focusing parameter.
        class_weight: optional per-node weights (V values, `node_names` order).
        reduction: 'mean', 'sum' or 'none'.
        loss_weight: multiplier of the loss.
        loss_name: name in the log; must start with 'loss_' to be optimised.
    """

    def __init__(self,
                 hierarchy: Union[ClassHierarchy, Mapping, str],
                 gamma: float = 2.0,
                 class_weight: Optional[Sequence[float]] = None,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_focal_tree_min') -> None:
        super().__init__()
        self.hierarchy = build_hierarchy(hierarchy)
        if gamma < 0:
            raise ValueError(f'FocalTreeMinLoss: gamma must be >= 0, got {gamma}')
        self.gamma = float(gamma)
        self.class_weight = as_weight_list(
            class_weight, self.hierarchy.num_nodes,
            f'FocalTreeMinLoss class_weight (one per node: {self.hierarchy.node_names})')
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError(f"FocalTreeMinLoss: reduction must be 'none', 'mean' or 'sum', "
                             f'got {reduction!r}')
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
        return self.loss_weight * focal_tree_min_loss(
            cls_score, label, self.hierarchy, weight=weight, class_weight=self.class_weight,
            gamma=self.gamma, reduction=reduction_override or self.reduction,
            avg_factor=avg_factor, ignore_index=ignore_index)

    @property
    def loss_name(self) -> str:
        return self._loss_name
