"""Focal tree-min loss (HSSN, Li et al., CVPR 2022)."""
from typing import List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor
from torch.autograd.function import once_differentiable

from ...hierarchy import ClassHierarchy, build_hierarchy
from ...utils.tree_cache import tree_cached
from .utils import as_weight_list, check_inputs, reduce_pixel_loss, safe_labels


@tree_cached  # once per tree object; traced as constants under torch.compile
def _tree_index(hierarchy: ClassHierarchy) -> tuple:
    """Per-depth index lists for `max_descendants`, built once per hierarchy object.

    Returns (blocks, child_local): `blocks[d]` is the [start, end) channel range of
    depth d+1 (channels are ordered by depth); `child_local[d]` each node's children
    in the block below, padded with the block size (the position of an appended
    -inf column).
    """
    blocks, start = [], 0
    for d in range(1, hierarchy.num_levels + 1):
        end = start + sum(1 for x in hierarchy.depths if x == d)
        blocks.append((start, end))
        start = end
    child_local = []
    for d, (s, e) in enumerate(blocks[:-1]):
        below_start, below_end = blocks[d + 1]
        fan_out = max(len(hierarchy.children[v]) for v in range(s, e))
        rows = []
        for v in range(s, e):
            row = [c - below_start for c in hierarchy.children[v]]
            rows.append(row + [below_end - below_start] * (fan_out - len(row)))
        child_local.append(rows)
    return blocks, child_local


def max_descendants(node_logits: Tensor, hierarchy: ClassHierarchy) -> Tuple[Tensor, Tensor]:
    """Max over descendants-or-self of node logits, and which node attains it.

    Args:
        node_logits: (N, V, H, W) in `hierarchy.node_names` order.

    Returns:
        (z_max, arg): (N, V, H, W) values and (N, V, H, W) long node indices (a node
        that ties with a descendant is its own argmax).
    """
    blocks, child_local = _tree_index(hierarchy)
    n, _, h, w = node_logits.shape
    parts = [node_logits[:, s:e] for s, e in blocks]
    s, e = blocks[-1]
    maxs = [parts[-1]]
    args = [torch.arange(s, e, device=node_logits.device).view(1, -1, 1, 1).expand(n, -1, h, w)]
    for d in range(len(blocks) - 2, -1, -1):
        index = torch.as_tensor(child_local[d], device=node_logits.device)  # (n_d, fan_out)
        below = torch.cat([maxs[0], maxs[0].new_full((n, 1, h, w), float('-inf'))], dim=1)
        below_arg = torch.cat([args[0], args[0].new_zeros((n, 1, h, w))], dim=1)
        best, which = below.index_select(1, index.flatten()).unflatten(1, index.shape).max(2)
        best_arg = below_arg.index_select(1, index.flatten()).unflatten(1, index.shape) \
            .gather(2, which.unsqueeze(2)).squeeze(2)
        s, e = blocks[d]
        own = parts[d] >= best
        maxs.insert(0, torch.where(own, parts[d], best))
        own_arg = torch.arange(s, e, device=node_logits.device).view(1, -1, 1, 1)
        args.insert(0, torch.where(own, own_arg, best_arg))
    return torch.cat(maxs, dim=1), torch.cat(args, dim=1)


class _FocalTreeMin(torch.autograd.Function):
    """Per-pixel focal tree-min loss (N, H, W) with its gradient written by hand.

    Autograd through min/max over the tree, the path gathers and the focal term
    records some 60 full-size tensors per step; the analytic gradient needs two
    (see `focal_tree_min_loss`), which makes the loss about 3x faster on a CPU.
    """

    @staticmethod
    def forward(ctx, cls_score: Tensor, leaf: Tensor, hierarchy: ClassHierarchy, gamma: float,
                class_weight: Optional[Tensor]) -> Tensor:
        z_max, route = max_descendants(cls_score, hierarchy)
        # (N, D, H, W): the pixel's node at every level (a shallow leaf repeats itself).
        paths = torch.as_tensor(hierarchy.leaf_paths, device=cls_score.device)
        path = paths[leaf].permute(0, 3, 1, 2).contiguous()
        # min over ancestors-or-self down the path, and the node attaining it; a loop
        # over the D levels, as torch.cummin over dim 1 is several times slower here.
        on_path = cls_score.gather(1, path)
        z_min, arg_min = [on_path[:, 0]], [path[:, 0]]
        for d in range(1, path.shape[1]):
            own = on_path[:, d] <= z_min[-1]
            z_min.append(torch.where(own, on_path[:, d], z_min[-1]))
            arg_min.append(torch.where(own, path[:, d], arg_min[-1]))
        # u = z_min on the path, -z_max off it; route[v] = the node whose logit u_v is.
        u = z_max.neg_().scatter_(1, path, torch.stack(z_min, dim=1))
        route = route.scatter_(1, path, torch.stack(arg_min, dim=1))
        # f(u) = -sigmoid(-u)^gamma log sigmoid(u) and
        # f'(u) = sigmoid(-u)^gamma (gamma sigmoid(u) log sigmoid(u) - sigmoid(-u)),
        # from one logsigmoid (finite for any u): log sigmoid(-u) = log sigmoid(u) - u.
        # In place where possible: on a CPU, allocating full-size tensors costs as much
        # as the arithmetic.
        log_p = F.logsigmoid(u)
        log_q = u.neg_().add_(log_p)
        q_gamma = log_q.mul(gamma).exp_()
        grad = log_p.exp().mul_(log_p).mul_(gamma).sub_(log_q.exp_()).mul_(q_gamma)
        # the gradient's sign: + on the path (u = z_min), - off it (u = -z_max)
        grad.scatter_(1, path, grad.gather(1, path).neg_()).neg_()
        node_loss = q_gamma.mul_(log_p).neg_()
        if class_weight is not None:
            node_loss.mul_(class_weight)
            grad.mul_(class_weight)
        ctx.save_for_backward(grad, route)
        return node_loss.sum(dim=1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_pixel: Tensor):
        grad, route = ctx.saved_tensors
        grad_score = torch.zeros_like(grad).scatter_add_(1, route, grad * grad_pixel.unsqueeze(1))
        return grad_score, None, None, None, None


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
    Both terms are f(u) = -sigmoid(-u)^gamma log sigmoid(u), with u = min logit on
    the path and u = -max logit off it (sigmoid is monotonic). The gradient of f(u)
    flows to the one node whose logit u is (the argmin ancestor, or the argmax
    descendant; on a tie, the node itself), as autograd through min/max would,
    except that autograd splits a tie between the tied nodes.

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
    weights = None if class_weight is None else \
        cls_score.new_tensor(class_weight).view(1, -1, 1, 1)
    pixel_loss = _FocalTreeMin.apply(cls_score, safe_labels(label, valid), hierarchy,
                                     float(gamma), weights)
    return reduce_pixel_loss(pixel_loss, valid, weight, reduction, avg_factor)


def level_mean_weights(hierarchy: ClassHierarchy) -> List[float]:
    """Per-node weights that turn the node sum into a sum over levels of per-level means.

    The HSSN release averages its tree-min loss over the nodes of each level and sums
    the levels. Node v gets sum over the levels k it stands at of 1 / (classes at level
    k); a shallow leaf carried down stands at every level below its own. Person tree
    (levels of 2, 3 and 7 classes): background 1/2 + 1/3 + 1/7 = 41/42, body 1/2,
    upper/lower body 1/3, each part 1/7.

    Returns:
        V floats in `hierarchy.node_names` order.
    """
    weights = [0.0] * hierarchy.num_nodes
    for members in hierarchy.levels:
        for v in members:
            weights[v] += 1.0 / len(members)
    return weights


@MODELS.register_module()
class FocalTreeMinLoss(nn.Module):
    """Focal tree-min loss on sigmoid node scores (HSSN).

    Args:
        hierarchy: the class tree (nested mapping, preset name or ClassHierarchy).
        gamma: focusing parameter.
        class_weight: optional per-node weights (V values, `node_names` order), or
            'level_mean': the release's mean over each level's nodes, summed over the
            levels, for any tree (`level_mean_weights`).
        reduction: 'mean', 'sum' or 'none'.
        loss_weight: multiplier of the loss.
        loss_name: name in the log; must start with 'loss_' to be optimised.
    """

    def __init__(self,
                 hierarchy: Union[ClassHierarchy, Mapping, str],
                 gamma: float = 2.0,
                 class_weight: Union[Sequence[float], str, None] = None,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_focal_tree_min') -> None:
        super().__init__()
        self.hierarchy = build_hierarchy(hierarchy)
        if gamma < 0:
            raise ValueError(f'FocalTreeMinLoss: gamma must be >= 0, got {gamma}')
        self.gamma = float(gamma)
        if isinstance(class_weight, str):
            if class_weight != 'level_mean':
                raise ValueError(f"FocalTreeMinLoss: class_weight must be V numbers or "
                                 f"'level_mean', got {class_weight!r}")
            class_weight = level_mean_weights(self.hierarchy)
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
