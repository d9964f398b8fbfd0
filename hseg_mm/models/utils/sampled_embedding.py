"""The projection embedding evaluated only at the pixels a loss samples.

The tree-triplet loss reads the embedding at about 3 x 200 pixels per leaf class and
batch; projecting every pixel of a (N, 512, 120, 120) head feature through a 512 -> 512
-> 256 MLP only to read a few thousand of them is most of what the hierarchy costs a
ResNet-101 step. The one thing the other pixels contribute is the batch-norm statistics
of the projection's first layer, and those are linear in the feature's moments: for
y = W x (a 1x1 convolution), mean(y) = W mean(x) and var(y)_j = w_j^T cov(x) w_j. So
`statistics='all'` gets the same embedding (and the same gradients, through the moments)
from one (C, C) covariance of the feature, a third of the work of the projection's
convolutions at every pixel and none of their full-size activations.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm


def _moment_parts(projection: nn.Module):
    """(conv, bn, act, tail) when `projection` is ConvModule(1x1 conv, a single-process
    BatchNorm in training, activation) followed by more layers; else None.

    SyncBN (statistics across ranks), other norms, or a BN on running statistics take
    the plain path: they have no per-batch moments to reproduce here.
    """
    if not isinstance(projection, nn.Sequential) or len(projection) < 2:
        return None
    first = projection[0]
    if getattr(first, 'order', None) != ('conv', 'norm', 'act') or not first.with_norm:
        return None
    conv, bn = first.conv, first.norm
    if not (isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and conv.groups == 1
            and conv.stride == (1, 1) and conv.padding == (0, 0)):
        return None
    # nn.BatchNorm2d, or mmengine's _BatchNormXd (what revert_sync_batchnorm makes of
    # SyncBN in a single process); not SyncBN itself, whose statistics span ranks
    if not isinstance(bn, _BatchNorm) or 'Sync' in type(bn).__name__ or not bn.training:
        return None
    act = first.activate if first.with_activation else nn.Identity()
    return conv, bn, act, projection[1:]


def full_statistics_supported(projection: nn.Module) -> bool:
    """Whether `statistics='all'` can reproduce this projection's batch norm."""
    return _moment_parts(projection) is not None


class _PixelCovariance(torch.autograd.Function):
    """cov = sum over pixels of (x - mean)(x - mean)^T / P: (N, C, h, w), (C,) -> (C, C).

    `mean` must be the feature's own mean over its P = N*h*w pixels, and is treated as a
    constant: at that point d cov / d mean = -2/P sum(x - mean) = 0, so the gradient is
    exact. One GEMM each way per image, where autograd through `xc @ xc.T` runs two in
    backward and keeps a centred copy of the feature alive.
    """

    @staticmethod
    def forward(ctx, feature: Tensor, mean: Tensor) -> Tensor:
        n, c = feature.shape[:2]
        count = feature.numel() // c
        cov = feature.new_zeros(c, c)
        for x in feature.reshape(n, c, -1):
            centred = x - mean[:, None]
            cov.addmm_(centred, centred.t())
        ctx.save_for_backward(feature, mean)
        return cov / count

    @staticmethod
    def backward(ctx, grad: Tensor):
        feature, mean = ctx.saved_tensors
        n, c = feature.shape[:2]
        sym = (grad + grad.t()) / (feature.numel() // c)
        grad_feature = torch.empty_like(feature)
        for x, out in zip(feature.reshape(n, c, -1), grad_feature.view(n, c, -1)):
            torch.mm(sym, x - mean[:, None], out=out)
        return grad_feature, None


class SampledEmbedding:
    """The head's projection embedding, computed only at the pixels the losses gather.

    A hierarchical head hands this to the losses in place of the (N, E, h, w) embedding.

    Args:
        feature: (N, C, h, w) the feature the head's classifier reads.
        projection: 1x1 convolutions mapping (1, C, S, 1) to (1, E, S, 1); the head's
            is ConvModule(C -> C, BN, ReLU) then Conv2d(C -> E).
        channels: E, the embedding width.
        statistics: where the projection's batch norm (in training) takes its
            statistics from:
            - 'sampled': the gathered pixels (class-balanced); another normalisation
              than projecting every pixel;
            - 'all': every pixel of `feature`, from its mean and covariance: the same
              embedding and gradients as projecting every pixel and then sampling
              (up to floating-point order), including the running-statistics update.
              Needs `full_statistics_supported(projection)`.
    """

    def __init__(self, feature: Tensor, projection: nn.Module, channels: int,
                 statistics: str = 'sampled') -> None:
        if statistics not in ('sampled', 'all'):
            raise ValueError(f"statistics must be 'sampled' or 'all', got {statistics!r}")
        # (conv, bn, act, tail) of the projection, found once per embedding
        self._parts = _moment_parts(projection) if statistics == 'all' else None
        if statistics == 'all' and self._parts is None:
            raise ValueError('statistics=\'all\' needs a projection that starts with a 1x1 '
                             'convolution and a (non-sync) BatchNorm in training mode')
        self.feature = feature
        self.projection = projection
        self.statistics = statistics
        n, _, h, w = feature.shape
        self.shape = torch.Size((n, channels, h, w))
        self._moments: Optional[tuple] = None

    def dim(self) -> int:
        return 4

    def gather(self, index: Tensor) -> Tensor:
        """L2-normalised embeddings (*index.shape, E) of flat pixel ids into N*h*w."""
        flat = self.feature.flatten(2)
        hw = flat.shape[2]
        # float32: the losses run with autocast off, the projection's weights are float32
        picked = flat[index // hw, :, index % hw].float()  # (*index.shape, C)
        # The S picked vectors as one (1, C, S, 1) image, not S images of 1x1: the same
        # 1x1 convolutions and batch-norm statistics, but one GEMM, where oneDNN's
        # backward over S tiny images took several times as long.
        column = picked.reshape(-1, picked.shape[-1]).t().reshape(1, picked.shape[-1], -1, 1)
        if self.statistics == 'all':
            out = self._project_with_full_statistics(column)
        else:
            out = self.projection(column)
        out = out[0, :, :, 0].t()  # (S, E)
        return F.normalize(out.reshape(*index.shape, -1).float(), dim=-1)

    def _batch_moments(self, conv: nn.Conv2d, bn: _BatchNorm):
        """Mean and biased variance (C',) of conv(feature) over all N*h*w pixels, from
        the feature's mean and covariance; updates `bn`'s running statistics once, as
        its forward over every pixel would."""
        if self._moments is None:
            x = self.feature.float().contiguous()  # (N, C, h, w)
            count = x.numel() // x.shape[1]
            mean_x = x.mean((0, 2, 3))
            # (C, C), biased as BN's normalisation
            cov_x = _PixelCovariance.apply(x, mean_x.detach())
            weight = conv.weight.flatten(1)  # (C', C)
            mean = weight @ mean_x + (conv.bias if conv.bias is not None else 0)
            var = ((weight @ cov_x) * weight).sum(1)
            if bn.track_running_stats:
                with torch.no_grad():
                    bn.num_batches_tracked.add_(1)
                    momentum = (1.0 / float(bn.num_batches_tracked)
                                if bn.momentum is None else bn.momentum)
                    unbiased = var * count / max(count - 1, 1)
                    bn.running_mean.mul_(1 - momentum).add_(momentum * mean)
                    bn.running_var.mul_(1 - momentum).add_(momentum * unbiased)
            self._moments = (mean, var)
        return self._moments

    def _project_with_full_statistics(self, column: Tensor) -> Tensor:
        """The projection of (1, C, S, 1) with its BN normalised by every pixel's
        statistics: conv -> (y - mean) / sqrt(var + eps) * gamma + beta -> act -> rest."""
        conv, bn, act, tail = self._parts
        mean, var = self._batch_moments(conv, bn)
        y = conv(column)
        y = (y - mean[None, :, None, None]) * torch.rsqrt(var + bn.eps)[None, :, None, None]
        if bn.affine:
            y = y * bn.weight[None, :, None, None] + bn.bias[None, :, None, None]
        return tail(act(y))

    def sum(self) -> Tensor:
        """A zero connected to the feature and every projection weight (for DDP)."""
        return sum(p.sum() for p in self.projection.parameters()) * 0 + self.feature.sum() * 0
