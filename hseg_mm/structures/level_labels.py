"""What several parts read from a data sample: its ground truth and prediction per level.

The metric, the visualiser and the tools all take per-level labels from here, so none
of them imports another (data flows config -> tree -> dataset -> model -> metric ->
visualiser).
"""
from typing import Mapping, Optional, Tuple

import torch
from torch import Tensor

from ..hierarchy import ClassHierarchy

__all__ = ['pixel_data', 'sample_level_labels']


def pixel_data(sample, key: str) -> Optional[Tensor]:
    """`sample[key].data` from a SegDataSample or its dict form, else None."""
    field = sample.get(key, None)
    if field is None:
        return None
    data = field['data'] if isinstance(field, Mapping) else field.data
    return torch.as_tensor(data)


def _leaf_map(data: Tensor, key: str, source: str) -> Tensor:
    """(1, H, W) or (H, W) -> (H, W)."""
    if data.dim() == 3 and data.shape[0] == 1:
        data = data[0]
    if data.dim() != 2:
        raise ValueError(f'{source}: {key} must be (1, H, W) or (H, W), got '
                         f'{tuple(data.shape)}')
    return data


def sample_level_labels(sample, hierarchy: ClassHierarchy, need_gt: bool = True,
                        need_pred: bool = True) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    """Ground truth and prediction of every level for one data sample.

    Predictions come from `pred_level_seg` (D, H, W) when present (the hierarchical
    segmentors attach it), else from the leaf map `pred_sem_seg` through
    `hierarchy.leaf_to_level`, so any mmseg model whose classes are the leaves works.

    Args:
        sample: a SegDataSample or its dict form.
        hierarchy: the class tree.
        need_gt / need_pred: raise if the field is missing instead of returning None.

    Returns:
        gt (D, H, W) long, ignore pixels at `hierarchy.ignore_index`, or None;
        pred (D, H, W) long, or None.
    """
    source = sample.get('img_path', None) or 'data sample'
    num_levels = hierarchy.num_levels

    gt_levels = None
    gt = pixel_data(sample, 'gt_sem_seg')
    if gt is not None:
        gt = _leaf_map(gt, 'gt_sem_seg', source)
        hierarchy.check_labels(gt, source=f'{source} (gt_sem_seg)')
        gt_levels = torch.stack(hierarchy.split_labels(gt, check=False))
    elif need_gt:
        raise KeyError(f'{source}: no gt_sem_seg to evaluate against')

    pred_levels = None
    levels = pixel_data(sample, 'pred_level_seg')
    if levels is not None:
        if levels.dim() != 3 or levels.shape[0] != num_levels:
            raise ValueError(f'{source}: pred_level_seg must be (D={num_levels}, H, W) '
                             f'for this hierarchy, got {tuple(levels.shape)}')
        sizes = torch.as_tensor(hierarchy.level_sizes, device=levels.device).view(-1, 1, 1)
        if ((levels < 0) | (levels >= sizes)).any():
            raise ValueError(f'{source}: pred_level_seg holds class indices outside the '
                             f'levels {hierarchy.level_sizes}')
        pred_levels = levels.long()
    else:
        pred = pixel_data(sample, 'pred_sem_seg')
        if pred is not None:
            pred = _leaf_map(pred, 'pred_sem_seg', source).long()
            if pred.numel() and (pred.min() < 0 or pred.max() >= hierarchy.num_leaves):
                raise ValueError(
                    f'{source}: pred_sem_seg holds ids outside the hierarchy\'s leaves '
                    f'0..{hierarchy.num_leaves - 1}; does the model predict the leaves?')
            lut = torch.as_tensor(hierarchy.leaf_to_level, device=pred.device)  # (D, L)
            pred_levels = lut[:, pred]
        elif need_pred:
            raise KeyError(f'{source}: neither pred_level_seg nor pred_sem_seg found')

    if gt_levels is not None and pred_levels is not None and \
            gt_levels.shape[1:] != pred_levels.shape[1:]:
        raise ValueError(f'{source}: prediction {tuple(pred_levels.shape[1:])} and ground '
                         f'truth {tuple(gt_levels.shape[1:])} differ in size')
    return gt_levels, pred_levels
