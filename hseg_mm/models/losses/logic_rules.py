"""LogicSeg's logic rules as losses (Li et al., ICCV 2023), for any class tree.

On sigmoid node scores s (one per tree node and pixel), each rule is a set of clauses whose
fuzzy truth is relaxed as in the paper and its code (lingorX/LogicSeg,
mmseg/models/losses/pascal_part.py: `loss_c`, `loss_d`, `loss_e`); a clause's violation is
1 - truth, and a rule's loss is the p-mean of its violations over every pixel and clause,
(mean v^p)^(1/p):

- composition (C, p = 5): a node implies its parent, v -> parent(v). Reichenbach's
  implication has truth 1 - s_v + s_v s_parent; violation s_v - s_v s_parent. One clause per
  node that has a parent (every node below the first level).
- decomposition (D, p = 5): a parent implies one of its children, u -> OR_c c, with max as
  the fuzzy OR; violation s_u - s_u max_c s_c. One clause per node that has children.
- exclusion (E, p = 3): the classes of one level exclude each other, not (i and j);
  violation s_i s_j for every ordered pair i != j. Per level, over the pixels that are not
  already confident at that level (exactly one score > 0.7 and all others < 0.3 leaves a
  pixel out), the p-mean over those pixels and all C_k x C_k pairs, the diagonal counted as
  0 (the code's masked `MCM @ MCM^T`); the levels' p-means are summed with weights
  C_k^2 / sum_j C_j^2 (the code's `factor_A`, `factor_B` for its two levels).

Every pixel of the map counts, void and padding included: the code applies the rules to
the head's un-resized logits (`cls_score_ori`), which have no label to leave any out.
A shallow leaf carried down to deeper levels (hseg-mm's background) is one node here: it is
a class of every level it stands at (as LogicSeg's repeated background channel is), and
has no clause tying it to itself.
"""
from typing import Callable, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from torch import Tensor

from ...hierarchy import ClassHierarchy, build_hierarchy
from ...utils.tree_cache import tree_cached
from .utils import weight_now

__all__ = ['p_mean_root', 'composition_loss', 'decomposition_loss', 'exclusion_loss',
           'ramp_factor', 'check_node_logits', 'LogicRuleLoss', 'CONFIDENT_HIGH',
           'CONFIDENT_LOW']

# The exclusion rule's gate (LogicSeg's `loss_e`): a pixel is confident at a level when
# exactly one class scores above CONFIDENT_HIGH and every other below CONFIDENT_LOW.
CONFIDENT_HIGH = 0.7
CONFIDENT_LOW = 0.3


def check_node_logits(cls_score: Tensor, hierarchy: ClassHierarchy, loss: str) -> None:
    """Raise naming `loss` unless `cls_score` is (N, V, H, W) node logits of the tree."""
    if cls_score.dim() != 4 or cls_score.shape[1] != hierarchy.num_nodes:
        raise ValueError(
            f'{loss}: cls_score must be (N, V, H, W) with V = {hierarchy.num_nodes} '
            f'(one channel per node: {hierarchy.node_names}), got {tuple(cls_score.shape)}')


def p_mean_root(mean_power: Tensor, p: float) -> Tensor:
    """mean_power^(1/p), and 0 with a zero gradient (not NaN) where mean_power is 0.

    The p-th root has an infinite slope at 0, which a prediction that satisfies every
    clause exactly (scores saturated at 0 and 1) reaches.
    """
    positive = mean_power > 0
    safe = torch.where(positive, mean_power, torch.ones_like(mean_power))
    return torch.where(positive, safe.pow(1.0 / p), torch.zeros_like(mean_power))


@tree_cached  # once per tree object; traced as constants under torch.compile
def _rule_index(hierarchy: ClassHierarchy) -> Tuple[List[int], List[int], List[int],
                                                     List[List[int]]]:
    """(children, their parents, inner nodes, each inner node's children padded with V).

    V (= num_nodes) points at an appended -inf column, so a max over a padded row is
    the max over the real children.
    """
    child = [v for v in range(hierarchy.num_nodes) if hierarchy.parents[v] >= 0]
    parent = [hierarchy.parents[v] for v in child]
    inner = [v for v in range(hierarchy.num_nodes) if hierarchy.children[v]]
    # max over a list, not max(generator, default=...): dynamo cannot trace the latter
    fan_out = max([0] + [len(hierarchy.children[v]) for v in inner])
    table = [hierarchy.children[v] + [hierarchy.num_nodes] * (fan_out - len(hierarchy.children[v]))
             for v in inner]
    return child, parent, inner, table


def composition_loss(cls_score: Tensor, hierarchy: ClassHierarchy, p: float = 5.0) -> Tensor:
    """Composition rule C: p-mean over pixels and child nodes v of s_v - s_v s_parent(v).

    Args:
        cls_score: (N, V, H, W) node logits, `hierarchy.node_names` order.
        p: the p-mean's exponent (LogicSeg: 5).

    Returns:
        Scalar; 0 for a tree of one level (no node has a parent).
    """
    child, parent, _, _ = _rule_index(hierarchy)
    if not child:
        return cls_score.sum() * 0
    s = cls_score.float().sigmoid()
    index = torch.as_tensor(child, device=s.device)
    s_child = s.index_select(1, index)
    s_parent = s.index_select(1, torch.as_tensor(parent, device=s.device))
    violation = s_child - s_child * s_parent  # (N, |child|, H, W)
    return p_mean_root(violation.pow(p).mean(), p)


def decomposition_loss(cls_score: Tensor, hierarchy: ClassHierarchy, p: float = 5.0) -> Tensor:
    """Decomposition rule D: p-mean over pixels and inner nodes u of s_u - s_u max_c s_c.

    The max over the children is taken on the logits (sigmoid is monotonic), so the
    gradient reaches the one child that scores highest, as autograd through LogicSeg's
    `max(dim=1)` of the sigmoids does.

    Args:
        cls_score: (N, V, H, W) node logits, `hierarchy.node_names` order.
        p: the p-mean's exponent (LogicSeg: 5).
    """
    _, _, inner, table = _rule_index(hierarchy)
    if not inner:
        return cls_score.sum() * 0
    z = cls_score.float()
    n, _, h, w = z.shape
    padded = torch.cat([z, z.new_full((n, 1, h, w), float('-inf'))], dim=1)
    index = torch.as_tensor(table, device=z.device)  # (|inner|, fan_out)
    z_max = padded.index_select(1, index.flatten()).unflatten(1, index.shape).amax(2)
    s_inner = z.index_select(1, torch.as_tensor(inner, device=z.device)).sigmoid()
    violation = s_inner - s_inner * z_max.sigmoid()
    return p_mean_root(violation.pow(p).mean(), p)


def exclusion_loss(cls_score: Tensor, hierarchy: ClassHierarchy, p: float = 3.0) -> Tensor:
    """Exclusion rule E: per level, the p-mean of s_i s_j (i != j) over the level's
    unconfident pixels; the levels weighted by C_k^2 / sum_j C_j^2.

    The pair sum is never formed as a (C, C) matrix per pixel (108 x 108 for
    Pascal-Part-108): sum_{i != j} (s_i s_j)^p = (sum_i s_i^p)^2 - sum_i s_i^(2p), in
    float64 so that the difference keeps its digits. A level of one class has no pair
    and is left out of the weights. A level where every pixel is confident contributes
    0 (LogicSeg's mean over no pixel is NaN).

    Args:
        cls_score: (N, V, H, W) node logits, `hierarchy.node_names` order.
        p: the p-mean's exponent (LogicSeg: 3).
    """
    s = cls_score.float().sigmoid()
    sizes = [len(m) for m in hierarchy.levels if len(m) > 1]
    if not sizes:
        return cls_score.sum() * 0
    norm = float(sum(c * c for c in sizes))
    total = s.new_zeros(())
    for members in hierarchy.levels:
        c = len(members)
        if c < 2:
            continue
        x = s.index_select(1, torch.as_tensor(members, device=s.device))  # (N, C, H, W)
        confident = ((x > CONFIDENT_HIGH).sum(1) == 1) & ((x < CONFIDENT_LOW).sum(1) == c - 1)
        xp = x.double().pow(p)
        pairs = (xp.sum(1).pow(2) - xp.pow(2).sum(1)).clamp_min(0)  # (N, H, W)
        hard = ~confident
        count = hard.sum()
        mean_power = torch.where(hard, pairs, torch.zeros_like(pairs)).sum() / \
            (count.clamp_min(1) * c * c)
        total = total + p_mean_root(mean_power, p).float() * (c * c / norm)
    return total


def ramp_factor(iteration: int, begin: int, end: int) -> float:
    """LogicSeg's ramp of the rule losses: 0 before `begin`, linear to 1 at `end`, then 1.

    LogicSeg (`HieraLossPascalPart.forward`): begin 20k, end 50k iterations.
    """
    if iteration < begin:
        return 0.0
    if iteration >= end:
        return 1.0
    return (iteration - begin) / (end - begin)


class LogicRuleLoss(nn.Module):
    """What the three rule losses share (not registered; `LogicCompositionLoss`,
    `LogicDecompositionLoss`, `LogicExclusionLoss` are).

    The weight is `loss_weight` times `ramp_factor` at the current iteration when
    `ramp_iters` is given. The iteration comes from the `iteration` keyword of
    `forward`, else mmengine's MessageHub ('iter', set by RuntimeInfoHook before each
    training iteration); without either (no runner, e.g. in unit tests) the ramp's end
    value 1 is used, as `TreeTripletLoss` does with its schedule. At a weight of 0 the
    rule is not computed.

    Args:
        hierarchy: the class tree (nested mapping, preset name or ClassHierarchy).
        p: the p-mean's exponent.
        ramp_iters: None (constant weight) or (begin, end): 0 before `begin`, linear
            to 1 at `end` (LogicSeg: (20000, 50000)).
        loss_resolution: where the head evaluates this loss: 'logits' (LogicSeg: on the
            head's un-resized logits, `cls_score_ori`), 'label' (on logits resized to
            the label), or None (the head's own `loss_resolution`).
        loss_weight: multiplier of the loss.
        loss_name: name in the log; must start with 'loss_' to be optimised.
    """

    # the rule's plain function, a staticmethod of each subclass
    rule: Callable[[Tensor, ClassHierarchy, float], Tensor]

    def __init__(self,
                 hierarchy: Union[ClassHierarchy, Mapping, str],
                 p: float,
                 ramp_iters: Optional[Sequence[int]] = None,
                 loss_resolution: Optional[str] = 'logits',
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_logic') -> None:
        super().__init__()
        name = type(self).__name__
        self.hierarchy = build_hierarchy(hierarchy)
        if not p > 0:
            raise ValueError(f'{name}: p must be > 0, got {p}')
        self.p = float(p)
        if ramp_iters is not None:
            if len(ramp_iters) != 2 or not 0 <= ramp_iters[0] < ramp_iters[1]:
                raise ValueError(f'{name}: ramp_iters must be (begin, end) with '
                                 f'0 <= begin < end, got {ramp_iters!r}')
            ramp_iters = (int(ramp_iters[0]), int(ramp_iters[1]))
        self.ramp_iters = ramp_iters
        if loss_resolution not in (None, 'logits', 'label'):
            raise ValueError(f"{name}: loss_resolution must be None, 'logits' or 'label', "
                             f'got {loss_resolution!r}')
        self.loss_resolution = loss_resolution
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    def current_weight(self, iteration: Optional[int] = None) -> float:
        """loss_weight times the ramp at `iteration` (see the class docstring)."""
        if self.ramp_iters is None:
            return float(self.loss_weight)
        if iteration is None:
            iteration = MessageHub.get_current_instance().get_info('iter')
        if iteration is None:
            return float(self.loss_weight)
        return self.loss_weight * ramp_factor(iteration, *self.ramp_iters)

    def forward(self,
                cls_score: Tensor,
                label: Optional[Tensor] = None,
                weight: Optional[Tensor] = None,
                ignore_index: int = 255,
                iteration: Optional[int] = None,
                **kwargs) -> Tensor:
        """Weighted rule loss of node logits (N, V, H, W).

        The rules read no label: every pixel counts (the module docstring); `label`,
        pixel `weight`, `ignore_index` and other keywords (the head's `embedding`) are
        accepted and not used.
        """
        check_node_logits(cls_score, self.hierarchy, type(self).__name__)
        if self.ramp_iters is None:
            loss_weight, off = self.loss_weight, self.loss_weight == 0
        else:
            off, loss_weight = weight_now(lambda: self.current_weight(iteration), cls_score.device)
        if off:
            return cls_score.sum() * 0  # keeps DDP's view of used parameters stable
        return loss_weight * self.rule(cls_score, self.hierarchy, self.p)

    @property
    def loss_name(self) -> str:
        return self._loss_name
