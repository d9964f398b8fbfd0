"""Tree-triplet loss on the projection embedding (HSSN, Li et al., CVPR 2022)."""
import math
from typing import Mapping, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmseg.registry import MODELS
from torch import Tensor

from ...hierarchy import ClassHierarchy, build_hierarchy
from ..utils import SampledEmbedding
from .utils import check_leaf_ids, resize_labels, weight_now

SCHEDULES = ('constant', 'linear', 'cosine')


def _sample_pools(masks: Tensor, keys: Tensor, k: int) -> Tensor:
    """For each row of `masks` (C, P), the indices of up to `k` random members.

    Members are ranked by the random `keys` (P,), so the first `n` indices of a
    row are `n` pixels drawn uniformly without replacement from that pool (an
    index past the pool size points at a non-member and must be masked).
    """
    ranked = torch.where(masks, keys.unsqueeze(0), torch.full_like(keys, float('inf')))
    return ranked.topk(k, dim=1, largest=False).indices  # (C, k)


def sample_triplets(label: Tensor,
                    hierarchy: Union[ClassHierarchy, Mapping, str],
                    max_samples_per_class: int = 200,
                    ignore_index: int = 255,
                    generator: Optional[torch.Generator] = None) -> Tuple[Tensor, ...]:
    """Random (anchor, positive, negative) pixels for every leaf class.

    At the deepest level, for an anchor pixel of leaf class c: a positive is a
    pixel of another leaf with the same parent node as c (a sibling class), a
    negative a pixel of a leaf whose parent differs (leaves directly under the
    root share the root as parent). Class c gets n_c = min(#anchor pool,
    #positive pool, #negative pool, max_samples_per_class) triplets, each role
    drawn uniformly at random from the whole batch without replacement,
    independently per role (not the first pixels in raster order). No Python
    loop; the only device sync is the label check.

    Args:
        label: (N, h, w) leaf ids or `ignore_index`, at the embedding's size.

    Returns:
        anchor, positive, negative: (L, k) flat pixel indices into N*h*w, and
        use: (L, k) bool, True for the n_c real triplets of each class.
    """
    hierarchy = build_hierarchy(hierarchy)
    if max_samples_per_class < 1:
        raise ValueError(f'TreeTripletLoss: max_samples_per_class must be >= 1, '
                         f'got {max_samples_per_class}')
    device = label.device
    label = label.flatten()  # (P,), a view or a new tensor: never written to
    valid = label != ignore_index
    check_leaf_ids(label, valid, hierarchy, ignore_index, 'TreeTripletLoss')
    num_leaves = hierarchy.num_leaves
    parent = torch.as_tensor([hierarchy.parents[v] for v in hierarchy.leaf_nodes], device=device)
    same_parent = parent.unsqueeze(1) == parent.unsqueeze(0)  # (L, L)
    eye = torch.eye(num_leaves, dtype=torch.bool, device=device)
    safe = torch.where(valid, label, torch.zeros_like(label))
    classes = torch.arange(num_leaves, device=device)
    # (L, P) pools of each anchor class c: its pixels, its siblings', the rest.
    anchor_pool = (safe.unsqueeze(0) == classes.unsqueeze(1)) & valid
    pos_pool = (same_parent & ~eye)[:, safe] & valid
    neg_pool = (~same_parent)[:, safe] & valid
    counts = torch.stack([anchor_pool.sum(1), pos_pool.sum(1), neg_pool.sum(1)])
    num = counts.amin(0).clamp(max=max_samples_per_class)  # (L,)

    k = min(max_samples_per_class, label.numel())
    keys = torch.rand(3, label.numel(), device=device, generator=generator)
    anchor, positive, negative = (_sample_pools(pool, keys[i], k) for i, pool in
                                  enumerate((anchor_pool, pos_pool, neg_pool)))
    use = torch.arange(k, device=device).unsqueeze(0) < num.unsqueeze(1)
    return anchor, positive, negative, use


def tree_triplet_loss(embedding: Tensor,
                      label: Tensor,
                      hierarchy: Union[ClassHierarchy, Mapping, str],
                      max_samples_per_class: int = 200,
                      margin: float = 0.6,
                      ignore_index: int = 255,
                      generator: Optional[torch.Generator] = None) -> Tensor:
    """Tree-triplet loss: sibling classes closer to the anchor than the others.

    Triplets come from `sample_triplets`; with cosine distance d = 1 - cos::

        loss = mean over triplets of max(d(a, p) - d(a, n) + margin, 0)

    No collective op: under DDP each rank averages its own triplets, so ranks
    that sample different counts cannot hang.

    Args:
        embedding: (N, E, h, w) projection embedding (L2-normalised by the head;
            the sampled vectors are normalised again, which is a no-op then), or a
            `SampledEmbedding` that projects only the sampled pixels.
        label: (N, H, W) leaf ids or `ignore_index`; resized to (h, w) with
            nearest into a new tensor, never modified.
        hierarchy: the class tree.
        max_samples_per_class: bound on triplets per anchor class and batch.
        margin: triplet margin (HSSN: 0.6).
        ignore_index: label value never sampled.
        generator: optional torch.Generator for the sampling (default: global RNG).

    Returns:
        Scalar loss; 0 (still connected to `embedding`) without a valid triplet.
    """
    if embedding.dim() != 4 or label.dim() != 3 or label.shape[0] != embedding.shape[0]:
        raise ValueError(f'TreeTripletLoss: embedding must be (N, E, h, w) and label (N, H, W) '
                         f'with the same N, got {tuple(embedding.shape)} and {tuple(label.shape)}')
    label = resize_labels(label, embedding.shape[2:])
    anchor, positive, negative, use = sample_triplets(
        label, hierarchy, max_samples_per_class, ignore_index, generator)
    index = torch.stack([anchor, positive, negative])  # (3, L, k) flat pixel ids
    if isinstance(embedding, SampledEmbedding):
        feats = embedding.gather(index)  # (3, L, k, E)
    else:
        # One gather straight from (N, E, h*w): no permuted copy of the embedding,
        # and one (not three) embedding-sized gradient buffer in backward.
        flat = embedding.flatten(2)
        hw = flat.shape[2]
        feats = F.normalize(flat[index // hw, :, index % hw].float(), dim=-1)
    a, p, n = feats.unbind(0)
    d_pos = 1 - (a * p).sum(-1)  # (L, k)
    d_neg = 1 - (a * n).sum(-1)
    # where, not multiply: padding slots may point at ignored pixels
    hinge = torch.where(use, F.relu(d_pos - d_neg + margin), torch.zeros_like(d_pos))
    return hinge.sum() / use.sum().clamp(min=1)


def scheduled_weight(schedule: Optional[dict], iteration: Optional[int],
                     max_iters: Optional[int]) -> float:
    """Value of a weight schedule at `iteration` of `max_iters`.

    `schedule`: None (weight 1) or dict(type='constant'|'linear'|'cosine',
    start=..., end=...). 'cosine' rises as start + (end - start) (1 - cos(pi t)) / 2,
    t = iteration / max_iters clipped to [0, 1] (HSSN: 0 -> 0.5). Without an
    iteration or max_iters the end value is used.
    """
    if schedule is None:
        return 1.0
    kind, start, end = schedule['type'], float(schedule['start']), float(schedule['end'])
    if kind == 'constant' or iteration is None or not max_iters:
        return end
    t = min(max(iteration / max_iters, 0.0), 1.0)
    if kind == 'linear':
        return start + (end - start) * t
    return start + (end - start) * (1 - math.cos(math.pi * t)) / 2


@MODELS.register_module()
class TreeTripletLoss(nn.Module):
    """Tree-triplet loss on the head's projection embedding (HSSN).

    The head passes its L2-normalised embedding (N, E, h, w) as the keyword
    `embedding`; `cls_score` is not used.

    The weight is `loss_weight` times the schedule value at the current
    iteration. The iteration comes, in order, from the `iteration` keyword of
    `forward`, else mmengine's MessageHub ('iter', updated by RuntimeInfoHook
    before each training iteration); `max_iters` from the keyword, else this
    module's `max_iters`, else the MessageHub ('max_iters'). When either is
    unknown (no runner, e.g. in unit tests) the schedule's end value is used.
    At a weight of 0 no triplet is sampled.

    Args:
        hierarchy: the class tree (nested mapping, preset name or ClassHierarchy).
        margin: triplet margin (HSSN: 0.6).
        max_samples_per_class: bound on triplets per anchor class and batch.
        weight_schedule: None (constant `loss_weight`) or
            dict(type='constant'|'linear'|'cosine', start=..., end=...);
            HSSN: dict(type='cosine', start=0.0, end=0.5).
        max_iters: schedule length if it should not come from the runner.
        loss_weight: multiplier of the loss (and of the schedule).
        loss_name: name in the log; must start with 'loss_' to be optimised.
    """

    def __init__(self,
                 hierarchy: Union[ClassHierarchy, Mapping, str],
                 margin: float = 0.6,
                 max_samples_per_class: int = 200,
                 weight_schedule: Optional[dict] = None,
                 max_iters: Optional[int] = None,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_tree_triplet') -> None:
        super().__init__()
        self.hierarchy = build_hierarchy(hierarchy)
        if max_samples_per_class < 1:
            raise ValueError(f'TreeTripletLoss: max_samples_per_class must be >= 1, '
                             f'got {max_samples_per_class}')
        if weight_schedule is not None:
            if not isinstance(weight_schedule, Mapping) or \
                    weight_schedule.get('type') not in SCHEDULES or \
                    set(weight_schedule) != {'type', 'start', 'end'}:
                raise ValueError(
                    f'TreeTripletLoss: weight_schedule must be dict(type=one of {SCHEDULES}, '
                    f'start=..., end=...), got {weight_schedule!r}')
            weight_schedule = dict(weight_schedule)
        self.weight_schedule = weight_schedule
        self.margin = float(margin)
        self.max_samples_per_class = int(max_samples_per_class)
        self.max_iters = max_iters
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    def current_weight(self, iteration: Optional[int] = None,
                       max_iters: Optional[int] = None) -> float:
        """loss_weight times the schedule value (see the class docstring)."""
        if self.weight_schedule is None:
            return float(self.loss_weight)
        hub = MessageHub.get_current_instance()
        if iteration is None:
            iteration = hub.get_info('iter')
        if max_iters is None:
            max_iters = self.max_iters if self.max_iters is not None \
                else hub.get_info('max_iters')
        return self.loss_weight * scheduled_weight(self.weight_schedule, iteration, max_iters)

    def forward(self,
                cls_score: Tensor,
                label: Tensor,
                weight: Optional[Tensor] = None,
                ignore_index: int = 255,
                embedding: Optional[Tensor] = None,
                iteration: Optional[int] = None,
                max_iters: Optional[int] = None,
                **kwargs) -> Tensor:
        """Weighted loss of the embedding (N, E, h, w) against labels (N, H, W).

        `cls_score` and pixel `weight` are not used.
        """
        if embedding is None:
            raise ValueError('TreeTripletLoss needs the projection embedding passed as the '
                             'keyword `embedding` (N, E, h, w); use it with a hierarchical '
                             'head that has a projection branch')
        if self.weight_schedule is None:
            loss_weight, off = self.loss_weight, self.loss_weight == 0
        else:
            off, loss_weight = weight_now(lambda: self.current_weight(iteration, max_iters),
                                          label.device)
        if off:
            return embedding.sum() * 0  # keeps DDP's view of used parameters stable
        return loss_weight * tree_triplet_loss(
            embedding, label, self.hierarchy, self.max_samples_per_class, self.margin,
            ignore_index)

    @property
    def loss_name(self) -> str:
        return self._loss_name
