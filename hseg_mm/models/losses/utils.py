"""Helpers shared by the hierarchical losses and heads (input checks, reduction, label resizing)."""
from typing import Callable, Optional, Sequence, Tuple, Union

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
    check_leaf_ids(label, valid, hierarchy, ignore_index, loss)
    return valid


def check_leaf_ids(label: Tensor, valid: Tensor, hierarchy: ClassHierarchy,
                   ignore_index: int, loss: str) -> None:
    """Refuse a valid pixel (`valid`, label's shape, bool) whose id is not a leaf.

    A label outside the tree would otherwise index out of range deep inside a
    gather, or worse, be trained on as another class. Eager: one host sync, and the
    error names the bad ids. Under torch.compile a sync would split the graph, so
    the check is an assertion inside it, raised (RuntimeError) when the graph runs,
    naming the leaf range instead.
    """
    bad = valid & ((label < 0) | (label >= hierarchy.num_leaves))
    where = (f'not in the hierarchy (leaves 0..{hierarchy.num_leaves - 1}, ignore index '
             f'{ignore_index})')
    if torch.compiler.is_compiling():
        torch._assert_async(~bad.any(), f'{loss}: label ids {where}')
    elif bool(bad.any()):
        raise ValueError(f'{loss}: label ids {label[bad].unique().tolist()} are {where}')


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


@torch.compiler.disable
def weight_now(current_weight: Callable[[], float],
               device: torch.device) -> Tuple[bool, Tensor]:
    """A scheduled loss weight: (it is 0, it as a 0-d float32 tensor on `device`).

    Run eagerly, outside a torch.compile graph (a deliberate break: the schedule
    reads the iteration from mmengine's MessageHub); as a tensor, a weight that
    changes every iteration does not recompile the graph, as a Python float would.
    A 0-d tensor does not change the dtype of the loss it multiplies.
    """
    weight = float(current_weight())
    return weight == 0, torch.tensor(weight, dtype=torch.float32, device=device)
