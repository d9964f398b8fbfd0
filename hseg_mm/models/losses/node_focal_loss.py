"""Focal binary cross-entropy on every tree node (LogicSeg's data term)."""
from typing import Mapping, Optional, Union

import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor

from ...hierarchy import ClassHierarchy, build_hierarchy
from .utils import check_inputs, reduce_pixel_loss, safe_labels


def node_focal_loss(cls_score: Tensor,
                    label: Tensor,
                    hierarchy: Union[ClassHierarchy, Mapping, str],
                    weight: Optional[Tensor] = None,
                    alpha: float = 0.5,
                    gamma: float = 2.0,
                    reduction: str = 'mean',
                    avg_factor: Optional[float] = None,
                    ignore_index: int = 255) -> Tensor:
    """Sigmoid focal loss of every node against its path target, summed over nodes.

    With p_v = sigmoid(z_v) and t_v = 1 iff node v is on the pixel's root-to-leaf path::

        loss_v = -alpha t_v (1 - p_v)^gamma log p_v - (1 - alpha) (1 - t_v) p_v^gamma log(1 - p_v)

    summed over the nodes and averaged over the valid pixels: LogicSeg's
    `losses_bce_focal` (lingorX/LogicSeg, mmseg/models/losses/pascal_part.py; alpha 0.5,
    gamma 2, void pixels out, divided by the number of valid pixels). Unlike HSSN's
    focal tree-min loss, each node is scored on its own (no min over ancestors or max
    over descendants). The logs come from `logsigmoid`, finite for any logit, where the
    code adds eps = 1e-8 inside log(p) (the two differ only where p < ~1e-6).

    Args:
        cls_score: (N, V, H, W) node logits, `hierarchy.node_names` order.
        label: (N, H, W) leaf ids or `ignore_index`; never modified.
        hierarchy: the class tree.
        weight: optional (N, H, W) pixel weights.
        alpha: weight of the positive term (the negative term gets 1 - alpha).
        gamma: focusing parameter.
        reduction: 'mean' (over valid pixels), 'sum' or 'none' ((N, H, W)).
        avg_factor: divisor for 'mean' instead of the number of valid pixels.
        ignore_index: label value that contributes nothing.

    Returns:
        Scalar loss, or (N, H, W) for reduction 'none'.
    """
    hierarchy = build_hierarchy(hierarchy)
    valid = check_inputs(cls_score, label, hierarchy, ignore_index, 'NodeFocalLoss')
    z = cls_score.float()  # float32 under AMP too, as the other tree losses
    target = hierarchy.node_targets(safe_labels(label, valid))  # (N, V, H, W)
    log_p, log_q = F.logsigmoid(z), F.logsigmoid(-z)
    positive = -alpha * log_q.mul(gamma).exp() * log_p
    negative = -(1 - alpha) * log_p.mul(gamma).exp() * log_q
    pixel_loss = (target * positive + (1 - target) * negative).sum(1)
    return reduce_pixel_loss(pixel_loss, valid, weight, reduction, avg_factor)


@MODELS.register_module()
class NodeFocalLoss(nn.Module):
    """Focal binary cross-entropy on the sigmoid score of every node (LogicSeg's data
    term, `node_focal_loss`).

    Args:
        hierarchy: the class tree (nested mapping, preset name or ClassHierarchy).
        alpha: weight of the positive term (LogicSeg: 0.5).
        gamma: focusing parameter (LogicSeg: 2).
        reduction: 'mean', 'sum' or 'none'.
        loss_weight: multiplier of the loss (LogicSeg: 0.5).
        loss_name: name in the log; must start with 'loss_' to be optimised.
    """

    def __init__(self,
                 hierarchy: Union[ClassHierarchy, Mapping, str],
                 alpha: float = 0.5,
                 gamma: float = 2.0,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_node_focal') -> None:
        super().__init__()
        self.hierarchy = build_hierarchy(hierarchy)
        if not 0 <= alpha <= 1:
            raise ValueError(f'NodeFocalLoss: alpha must be in [0, 1], got {alpha}')
        if gamma < 0:
            raise ValueError(f'NodeFocalLoss: gamma must be >= 0, got {gamma}')
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError(f"NodeFocalLoss: reduction must be 'none', 'mean' or 'sum', "
                             f'got {reduction!r}')
        self.alpha = float(alpha)
        self.gamma = float(gamma)
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
        return self.loss_weight * node_focal_loss(
            cls_score, label, self.hierarchy, weight=weight, alpha=self.alpha,
            gamma=self.gamma, reduction=reduction_override or self.reduction,
            avg_factor=avg_factor, ignore_index=ignore_index)

    @property
    def loss_name(self) -> str:
        return self._loss_name
