"""Region mutual information loss (Zhao et al., NeurIPS 2019) on sigmoid node scores.

The HSSN release adds it to its PASCAL-Person-Part and LIP objective. As there, every
channel is a binary map: the sigmoid of a node logit against "the node lies on the
pixel's root-to-leaf path"; both maps are max-pooled (3x3, stride 3), every 3x3
neighbourhood of the pooled maps is one 9-d vector, and the loss is the log-det of
the covariance of the label vectors given the probability vectors (a lower bound on
minus their mutual information), per channel and image. Unlike the release, pixels
with the ignore label are excluded (it trains them as background).
"""
from typing import Mapping, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor

from ...hierarchy import ClassHierarchy, build_hierarchy
from .utils import check_inputs, safe_labels

NODES = ('all', 'leaves')
POOLS = ('max', 'avg')


def _pool(x: Tensor, pool: str, size: int) -> Tensor:
    """Downsample (N, C, H, W) by `size` (kernel = stride = size, padding size // 2)."""
    if size == 1:
        return x
    if pool == 'max':
        return F.max_pool2d(x, size, stride=size, padding=size // 2)
    return F.avg_pool2d(x, size, stride=size, padding=size // 2)


def _min_pool(mask: Tensor, size: int, stride: int, padding: int = 0) -> Tensor:
    """1 where every input under the window is 1 (padding never counts)."""
    return -F.max_pool2d(-mask, size, stride=stride, padding=padding)


def _region_vectors(x: Tensor, radius: int) -> Tensor:
    """(N, C, h, w) -> (N, C, radius**2, P): one column per radius x radius window.

    Rows are the window's positions in raster order; P = (h - radius + 1)(w - radius + 1).
    """
    n, c, h, w = x.shape
    return F.unfold(x.reshape(n * c, 1, h, w), radius).view(n, c, radius * radius, -1)


def rmi_lower_bound(target: Tensor, prob: Tensor, valid: Tensor, radius: int = 3,
                    jitter: float = 1e-3) -> Tensor:
    """Per-image, per-channel RMI term 0.5 log det(Sigma_{Y|P} + jitter I) / radius**2.

    With Y the radius x radius label vectors and P the probability vectors (columns
    of `_region_vectors`), centred over the valid windows of the image, and the
    unnormalised (summed) covariances as in the RMI and HSSN code::

        Sigma_{Y|P} = S_YY - S_YP (S_PP + jitter I)^-1 S_YP^T

    Computed in float64; `jitter` (the release's 1e-3) keeps both matrices
    positive definite, so the Cholesky factors exist for any input.

    Args:
        target: (N, C, h, w) binary maps (already pooled).
        prob: (N, C, h, w) probabilities (already pooled).
        valid: (N, 1, h, w) 1 where a pooled cell holds no ignored pixel.
        radius: side of the square neighbourhood.
        jitter: added to the diagonal of S_PP and of Sigma_{Y|P}.

    Returns:
        (rmi, count): rmi (N, C) float64; count (N,) valid windows per image.
    """
    d = radius * radius
    # a window is valid when all its cells are: (N, 1, 1, P) weights 0 / 1
    weight = _min_pool(valid.double(), radius, 1).flatten(1)[:, None, None, :]
    count = weight.sum(-1, keepdim=True)  # (N, 1, 1, 1)

    def centred(x: Tensor) -> Tensor:
        v = _region_vectors(x.double(), radius)  # (N, C, d, P)
        mean = (v * weight).sum(-1, keepdim=True) / count.clamp(min=1)
        return (v - mean) * weight

    y, p = centred(target), centred(prob)
    eye = torch.eye(d, dtype=torch.float64, device=prob.device) * jitter
    s_yy = y @ y.transpose(-2, -1)
    s_pp = p @ p.transpose(-2, -1)
    s_yp = y @ p.transpose(-2, -1)
    chol_pp, _ = torch.linalg.cholesky_ex(s_pp + eye)
    cond = s_yy - s_yp @ torch.cholesky_solve(s_yp.transpose(-2, -1), chol_pp)
    cond = (cond + cond.transpose(-2, -1)) / 2 + eye  # symmetric against rounding
    chol, _ = torch.linalg.cholesky_ex(cond)
    log_det = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    return 0.5 * log_det / d, count.flatten()


def rmi_loss(cls_score: Tensor,
             label: Tensor,
             hierarchy: Union[ClassHierarchy, Mapping, str],
             weight: Optional[Tensor] = None,
             nodes: str = 'all',
             radius: int = 3,
             pool: str = 'max',
             pool_size: int = 3,
             jitter: float = 1e-3,
             ignore_index: int = 255) -> Tensor:
    """Region mutual information loss on sigmoid node scores (HSSN release's RMI).

    Each channel c: probability sigmoid(cls_score[:, c]), target 1 where node c is
    on the pixel's path (for a leaf channel: the leaf's one-hot). Both are pooled
    (`pool`, kernel = stride = `pool_size`, padding `pool_size // 2`), then
    `rmi_lower_bound` with `radius`. The loss is the sum over channels of the
    mean over images (images without a valid window left out).

    Ignore pixels are excluded, not trained as anything: a pooled cell with an
    ignored pixel is invalid, and so is every window that contains one; the
    means and covariances run over the valid windows only.

    Args:
        cls_score: (N, V, H, W) node logits, `hierarchy.node_names` order; any
            float dtype (bf16 under AMP): sigmoid and pooling in float32 (float64
            for float64 input), the covariance algebra in float64, autocast off.
        label: (N, H, W) leaf ids or `ignore_index`; never modified.
        hierarchy: the class tree.
        weight: pixel weights are not supported (must be None).
        nodes: 'all' (every node, as the release) or 'leaves' (leaf nodes only).
        radius: neighbourhood side (release: 3).
        pool: 'max' (release) or 'avg'.
        pool_size: downsampling factor (release: 3; 1 = none).
        jitter: diagonal added to both covariances (release: 1e-3).
        ignore_index: label value that is excluded.

    Returns:
        Scalar loss (float32; float64 for float64 input); 0, still connected to
        `cls_score`, without a valid window.
    """
    hierarchy = build_hierarchy(hierarchy)
    if weight is not None:
        raise ValueError('RMILoss: pixel weights are not supported (RMI scores regions)')
    _check_args(nodes, radius, pool, pool_size, jitter)
    valid = check_inputs(cls_score, label, hierarchy, ignore_index, 'RMILoss')
    with torch.autocast(device_type=cls_score.device.type, enabled=False):
        # float32 for half / bf16 / float32 inputs; float64 stays float64
        logits = cls_score if cls_score.dtype == torch.float64 else cls_score.float()
        device = logits.device
        path_mask = torch.as_tensor(hierarchy.path_mask, device=device)  # (L, V)
        if nodes == 'leaves':
            channels = torch.as_tensor(hierarchy.leaf_nodes, device=device)
            logits = logits.index_select(1, channels)
            path_mask = path_mask.index_select(1, channels)
        target = path_mask[safe_labels(label, valid)].permute(0, 3, 1, 2).to(logits.dtype)
        mask = valid.unsqueeze(1)
        # where, not multiply: a non-finite logit at an ignored pixel must not leak
        prob = torch.where(mask, torch.sigmoid(logits), torch.zeros_like(logits))
        target = target * mask
        cell_valid = mask.to(logits.dtype)
        if pool_size > 1:
            cell_valid = _min_pool(cell_valid, pool_size, pool_size, pool_size // 2)
        target, prob = _pool(target, pool, pool_size), _pool(prob, pool, pool_size)
        # 0 connected to the graph (and finite: ignored logits may be anything)
        zero = torch.where(mask, logits, torch.zeros_like(logits)).sum() * 0
        if min(prob.shape[2:]) < radius:
            return zero
        rmi, count = rmi_lower_bound(target, prob, cell_valid, radius, jitter)
        present = (count > 0).double()  # (N,)
        # the mean over images with a valid window, 0 (+ zero, for the graph) without
        # one; no branch on `present`, which would sync and split a compiled graph
        per_channel = (rmi * present[:, None]).sum(0) / present.sum().clamp(min=1)
        return per_channel.sum().to(logits.dtype) + zero


def _check_args(nodes: str, radius: int, pool: str, pool_size: int, jitter: float) -> None:
    if nodes not in NODES:
        raise ValueError(f'RMILoss: nodes must be one of {NODES}, got {nodes!r}')
    if not isinstance(radius, int) or radius < 1:
        raise ValueError(f'RMILoss: radius must be an integer >= 1, got {radius!r}')
    if pool not in POOLS:
        raise ValueError(f'RMILoss: pool must be one of {POOLS}, got {pool!r}')
    if not isinstance(pool_size, int) or pool_size < 1:
        raise ValueError(f'RMILoss: pool_size must be an integer >= 1, got {pool_size!r}')
    if not jitter > 0:
        raise ValueError(f'RMILoss: jitter must be > 0, got {jitter!r}')


@MODELS.register_module()
class RMILoss(nn.Module):
    """Region mutual information loss on sigmoid node scores (the HSSN release's RMI).

    Defaults are the release's: every node, radius 3, 3x3 max-pooling with
    stride 3, jitter 1e-3, and weight 0.5 (its RMI `loss_weight_lambda`; its
    PASCAL-Person-Part objective scales the term by another 0.5, so the
    release recipe sets 0.25).

    Args:
        hierarchy: the class tree (nested mapping, preset name or ClassHierarchy).
        nodes: 'all' (every node) or 'leaves' (the leaf nodes only).
        radius: neighbourhood side.
        pool: 'max' or 'avg' downsampling before the neighbourhoods.
        pool_size: downsampling factor (kernel = stride); 1: none.
        jitter: diagonal added to the covariances.
        loss_weight: multiplier of the loss.
        loss_name: name in the log; must start with 'loss_' to be optimised.
    """

    def __init__(self,
                 hierarchy: Union[ClassHierarchy, Mapping, str],
                 nodes: str = 'all',
                 radius: int = 3,
                 pool: str = 'max',
                 pool_size: int = 3,
                 jitter: float = 1e-3,
                 loss_weight: float = 0.5,
                 loss_name: str = 'loss_rmi') -> None:
        super().__init__()
        self.hierarchy = build_hierarchy(hierarchy)
        _check_args(nodes, radius, pool, pool_size, jitter)
        self.nodes = nodes
        self.radius = radius
        self.pool = pool
        self.pool_size = pool_size
        self.jitter = float(jitter)
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    def forward(self,
                cls_score: Tensor,
                label: Tensor,
                weight: Optional[Tensor] = None,
                ignore_index: int = 255,
                **kwargs) -> Tensor:
        """Loss of node logits (N, V, H, W) against leaf labels (N, H, W).

        Extra keywords (e.g. the head's `embedding`) are ignored.
        """
        return self.loss_weight * rmi_loss(
            cls_score, label, self.hierarchy, weight=weight, nodes=self.nodes,
            radius=self.radius, pool=self.pool, pool_size=self.pool_size,
            jitter=self.jitter, ignore_index=ignore_index)

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def extra_repr(self) -> str:
        return (f'nodes={self.nodes}, radius={self.radius}, pool={self.pool}, '
                f'pool_size={self.pool_size}, jitter={self.jitter}, '
                f'loss_weight={self.loss_weight}')
