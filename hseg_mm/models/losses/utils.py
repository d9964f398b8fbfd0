"""Helpers shared by the hierarchical losses and heads (input checks, reduction, label resizing)."""
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from ...hierarchy import ClassHierarchy


def check_inputs(cls_score: Tensor, label: Tensor, hierarchy: ClassHierarchy,
                 ignore_index: int, loss: str) -> Tensor:
    """Check shapes and label ids; return the valid-pixel mask (N, H, W) bool.

    Args:
        cls_score: (N, V, H, W) node logits.
        label: (N, H, W) leaf ids or `ignore_index`.
    """
    if cls_score.dim() != 4 or cls_score.shape[1] != hierarchy.num_nodes:
        raise ValueError(
            f'{loss}: cls_score must be (N, V, H, W) with V = {hierarchy.num_nodes} '
            f'(one channel per node: {hierarchy.node_names}), got {tuple(cls_score.shape)}')
    if label.shape != (cls_score.shape[0], *cls_score.shape[2:]):
        raise ValueError(f'{loss}: label must be (N, H, W) = '
                         f'{(cls_score.shape[0], *cls_score.shape[2:])}, got {tuple(label.shape)}')
    valid = label != ignore_index
    # One sync per call; a label outside the tree would otherwise index out of
    # range deep inside a gather, or worse, be trained on as another class.
    bad = valid & ((label < 0) | (label >= hierarchy.num_leaves))
    if bool(bad.any()):
        values = label[bad].unique().tolist()
        raise ValueError(f'{loss}: label ids {values} are not in the hierarchy (leaves '
                         f'0..{hierarchy.num_leaves - 1}, ignore index {ignore_index})')
    return valid


def safe_labels(label: Tensor, valid: Tensor) -> Tensor:
    """Leaf ids with ignore pixels replaced by 0 in a NEW tensor (long), for indexing."""
    return torch.where(valid, label, torch.zeros_like(label)).long()


def reduce_pixel_loss(loss: Tensor, valid: Tensor, weight: Optional[Tensor],
                      reduction: str, avg_factor: Optional[float]) -> Tensor:
    """Reduce a per-pixel loss (N, H, W); ignore pixels contribute exactly 0.

    'mean' divides by the number of valid pixels (or `avg_factor`), so batches
    with much padding are not down-weighted; no valid pixel gives 0, still
    connected to the graph.
    """
    if weight is not None:
        if weight.shape != loss.shape:
            raise ValueError(f'weight must be (N, H, W) = {tuple(loss.shape)}, '
                             f'got {tuple(weight.shape)}')
        loss = loss * weight
    # where, not multiply: a non-finite value at an ignored pixel must not leak.
    loss = torch.where(valid, loss, torch.zeros_like(loss))
    if reduction == 'none':
        return loss
    if reduction == 'sum':
        return loss.sum()
    if reduction != 'mean':
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    if avg_factor is None:
        avg_factor = valid.sum().clamp(min=1)
    return loss.sum() / avg_factor


def as_weight_list(values: Union[Sequence[float], None], size: int, what: str) -> Optional[list]:
    """Validate an optional list of `size` floats, naming `what` on error."""
    if values is None:
        return None
    values = [float(v) for v in values]
    if len(values) != size:
        raise ValueError(f'{what} needs {size} values, got {len(values)}')
    return values


def resize_labels(label: Tensor, size) -> Tensor:
    """(N, H, W) labels at `size` = (h, w), nearest; the input is never written to."""
    if tuple(label.shape[1:]) == tuple(size):
        return label
    return F.interpolate(label.unsqueeze(1).float(), size=tuple(size),
                         mode='nearest').squeeze(1).long()
