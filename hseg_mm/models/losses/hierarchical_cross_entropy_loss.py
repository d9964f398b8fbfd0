"""Cross-entropy at every level of the tree (seed 001; the HSSN release's form as an option).

Two ways to get a level's class probabilities from the node logits:

- ``'leaves'`` (default): one softmax over the leaf nodes, summed up the tree, so every
  level is a function of the leaf scores (what the 'flat' inference rule predicts from).
- ``'level_nodes'`` (the HSSN release's `ce_loss2`, `ce_loss3`): a softmax over each
  level's own node logits (person tree, level 1: background, body), so parent nodes are
  trained directly. At the deepest level both are the same leaf softmax.
"""
from typing import List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor
from torch.autograd.function import once_differentiable

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


class _HierarchicalCrossEntropy(torch.autograd.Function):
    """Per-pixel sum over levels of the level cross-entropy (N, H, W), gradient by hand.

    With Z = logsumexp of the leaf logits z and T_k the leaves of the pixel's level-k
    class, the level-k loss is Z - logsumexp(z[T_k]) and its gradient
    softmax(z) - [l in T_k] softmax(z[T_k]); both come out of the same exponentials,
    so the backward pass is one multiply (autograd through log_softmax and one
    logsumexp per level records several full-size tensors per level).
    """

    @staticmethod
    def forward(ctx, leaf_logits: Tensor, leaf: Tensor, hierarchy: ClassHierarchy,
                levels: Tuple[int, ...], level_weights: Tuple[float, ...],
                class_weight: Tuple[Optional[List[float]], ...]) -> Tensor:
        z = leaf_logits  # (N, L, H, W), channel l = label id l
        z_max = z.amax(dim=1, keepdim=True)
        prob = (z - z_max).exp_()
        total_exp = prob.sum(dim=1, keepdim=True)
        log_z = (z_max + total_exp.log()).squeeze(1)  # (N, H, W)
        prob.div_(total_exp)
        grad = torch.zeros_like(z)
        total = torch.zeros_like(log_z)
        leaf_ = leaf.unsqueeze(1)
        for k, level_weight, cw in zip(levels, level_weights, class_weight):
            lut = torch.as_tensor(hierarchy.leaf_to_level[k], device=z.device)  # (L,)
            # a pixel's weight at this level: the level weight times its class's weight
            w = torch.full_like(log_z, level_weight) if cw is None else \
                z.new_tensor(cw)[lut[leaf]] * level_weight
            if hierarchy.level_sizes[k] == hierarchy.num_leaves:
                # every class of this level is one leaf (e.g. the deepest level)
                nll = log_z - z.gather(1, leaf_).squeeze(1)
                grad.scatter_add_(1, leaf_, -w.unsqueeze(1))
            else:
                # the target class's members (N, L, H, W), and its logsumexp over them
                member = lut.view(1, -1, 1, 1) == lut[leaf].unsqueeze(1)
                masked = z.masked_fill(~member, float('-inf'))
                m = masked.amax(dim=1, keepdim=True)
                inside = masked.sub_(m).exp_()  # 0 outside the class
                inside_sum = inside.sum(dim=1, keepdim=True)
                nll = log_z - (m + inside_sum.log()).squeeze(1)
                grad.sub_(inside.div_(inside_sum).mul_(w.unsqueeze(1)))
            grad.addcmul_(prob, w.unsqueeze(1))
            total.add_(nll.mul_(w))
        ctx.save_for_backward(grad)
        return total

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_pixel: Tensor):
        grad, = ctx.saved_tensors
        return grad * grad_pixel.unsqueeze(1), None, None, None, None, None


SOFTMAX = ('leaves', 'level_nodes')


def check_softmax(softmax: str) -> str:
    if softmax not in SOFTMAX:
        raise ValueError(f'HierarchicalCrossEntropyLoss: softmax must be one of {SOFTMAX}, '
                         f'got {softmax!r}')
    return softmax


def _level_node_cross_entropy(cls_score: Tensor, leaf: Tensor, hierarchy: ClassHierarchy,
                              levels: Sequence[int], level_weights: Sequence[float],
                              class_weight: Sequence[Optional[List[float]]]) -> Tensor:
    """Per-pixel (N, H, W) weighted sum over `levels` of the CE of a softmax over each
    level's node logits (N, C_k, H, W) against the pixel's level-k class."""
    total = cls_score.new_zeros(leaf.shape)
    for k, level_weight, cw in zip(levels, level_weights, class_weight):
        nodes = torch.as_tensor(hierarchy.levels[k], device=cls_score.device)
        lut = torch.as_tensor(hierarchy.leaf_to_level[k], device=cls_score.device)
        target = lut[leaf]  # (N, H, W) class index at level k
        nll = F.cross_entropy(cls_score.index_select(1, nodes), target, reduction='none')
        w = level_weight if cw is None else cls_score.new_tensor(cw)[target] * level_weight
        total = total + nll * w
    return total


def hierarchical_cross_entropy(cls_score: Tensor,
                               label: Tensor,
                               hierarchy: Union[ClassHierarchy, Mapping, str],
                               weight: Optional[Tensor] = None,
                               levels: Optional[Sequence[int]] = None,
                               level_weights: Optional[Sequence[float]] = None,
                               class_weight: Optional[Sequence[Optional[Sequence[float]]]] = None,
                               reduction: str = 'mean',
                               avg_factor: Optional[float] = None,
                               ignore_index: int = 255,
                               softmax: str = 'leaves') -> Tensor:
    """Sum over levels of the cross-entropy of each level's class probabilities.

    softmax='leaves': the leaf-node channels get one softmax; the log-probability of
    a level-k class is the logsumexp of its member leaves' log-probabilities (stable,
    no clamp). With `levels=[-1]` this is the plain flat cross-entropy over the leaves.
    softmax='level_nodes': level k's classes are its nodes (`hierarchy.levels[k]`), and
    the level gets a softmax over their logits (the HSSN release).

    Args:
        cls_score: (N, V, H, W) node logits; 'leaves' uses only the leaf-node channels.
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
        softmax: 'leaves' or 'level_nodes' (above).

    Returns:
        Scalar loss, or (N, H, W) for reduction 'none'.
    """
    check_softmax(softmax)
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
    leaf = safe_labels(label, valid)
    weights = []
    for k, cw in zip(levels, class_weight):
        if cw is not None:
            cw = as_weight_list(cw, hierarchy.level_sizes[k], f'class_weight of level {k} '
                                f'({hierarchy.level_names(k)})')
        weights.append(cw)
    if softmax == 'level_nodes':
        total = _level_node_cross_entropy(cls_score, leaf, hierarchy, levels, level_weights,
                                          weights)
    else:
        leaf_index = torch.as_tensor(hierarchy.leaf_nodes, device=cls_score.device)
        total = _HierarchicalCrossEntropy.apply(cls_score.index_select(1, leaf_index), leaf,
                                                hierarchy, tuple(levels), tuple(level_weights),
                                                tuple(weights))
    return reduce_pixel_loss(total, valid, weight, reduction, avg_factor)


@MODELS.register_module()
class HierarchicalCrossEntropyLoss(nn.Module):
    """Per-level cross-entropy of the leaf softmax summed up the tree (or, with
    `softmax='level_nodes'`, of a softmax over each level's own node logits).

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
        softmax: 'leaves' (leaf softmax summed up the tree) or 'level_nodes' (a softmax
            over each level's node logits, the HSSN release's level CE).
    """

    def __init__(self,
                 hierarchy: Union[ClassHierarchy, Mapping, str],
                 levels: Optional[Sequence[int]] = None,
                 level_weights: Optional[Sequence[float]] = None,
                 class_weight: Optional[Sequence[Optional[Sequence[float]]]] = None,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_hier_ce',
                 softmax: str = 'leaves') -> None:
        super().__init__()
        self.softmax = check_softmax(softmax)
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
            ignore_index=ignore_index, softmax=self.softmax)

    @property
    def loss_name(self) -> str:
        return self._loss_name
