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
from torch.autograd.function import once_differentiable
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


# Columns per GEMM when the covariance centres the feature: a (C, 1024) block stays in
# cache, where centring a whole image first wrote an image-sized copy.
_CHUNK = 1024


class _MomentsAndPick(torch.autograd.Function):
    """(N, C, h, w) feature, (S,) flat pixel ids into N*h*w -> mean (C,), biased
    covariance (C, C) over the P = N*h*w pixels, and the picked pixels (S, C).

    One function for the three reads of the feature, so that backward writes the
    feature's gradient in one pass per image: sym (x - mean) + g_mean / P, one GEMM
    with the per-channel constant folded in (sym = (G + G^T) / P; the mean inside the
    covariance needs no term, as sum_p (x_p - mean) = 0), then the S picked rows added
    in place. Through autograd the same gradient took four more passes over
    feature-sized tensors (the mean's expanded gradient, the gather's zero-filled
    scatter, and summing the three) and the forward a centred copy of each image.
    """

    @staticmethod
    def forward(ctx, feature: Tensor, index: Tensor):
        ctx.set_materialize_grads(False)
        n, c = feature.shape[:2]
        x = feature.reshape(n, c, -1)
        hw = x.shape[2]
        count = n * hw
        mean = x.sum((0, 2)) / count
        cov = feature.new_zeros(c, c)
        for image in x:
            for block in image.split(_CHUNK, dim=1):
                centred = block - mean[:, None]
                cov.addmm_(centred, centred.t())
        picked = x[index // hw, :, index % hw]  # (S, C)
        ctx.save_for_backward(feature, mean, index)
        return mean, cov / count, picked

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_mean: Optional[Tensor], grad_cov: Optional[Tensor],
                 grad_picked: Optional[Tensor]):
        feature, mean, index = ctx.saved_tensors
        n, c = feature.shape[:2]
        x = feature.reshape(n, c, -1)
        hw = x.shape[2]
        count = n * hw
        shift = feature.new_zeros(c) if grad_mean is None else grad_mean / count
        grad = torch.empty_like(x)
        if grad_cov is None:
            grad.copy_(shift[None, :, None].expand_as(grad))
        else:
            sym = (grad_cov + grad_cov.t()) / count
            shift = shift - sym @ mean
            for image, out in zip(x, grad):
                torch.addmm(shift[:, None], sym, image, out=out)
        if grad_picked is not None:
            # flat offsets (C, S), channel-major so that the adds walk each channel's
            # row in turn; index_add_ on the flat view is several times faster than
            # index_put_(accumulate=True) with the (S, C) picks' own indices
            pixel = (index // hw) * (c * hw) + index % hw
            offsets = pixel[None, :] + torch.arange(c, device=index.device)[:, None] * hw
            grad.view(-1).index_add_(0, offsets.flatten(), grad_picked.t().flatten())
        return grad.view_as(feature), None


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
        self._feature_moments: Optional[tuple] = None  # (mean (C,), cov (C, C))
        self._moments: Optional[tuple] = None  # of the projection's first conv

    def dim(self) -> int:
        return 4

    def gather(self, index: Tensor) -> Tensor:
        """L2-normalised embeddings (*index.shape, E) of flat pixel ids into N*h*w."""
        flat_index = index.reshape(-1)
        if self.statistics == 'all':
            picked = self._pick(flat_index)
        else:
            flat = self.feature.flatten(2)
            hw = flat.shape[2]
            picked = flat[flat_index // hw, :, flat_index % hw]
        # float32: the losses run with autocast off, the projection's weights are float32
        picked = picked.float()  # (S, C)
        # The S picked vectors as one (1, C, S, 1) image, not S images of 1x1: the same
        # 1x1 convolutions and batch-norm statistics, but one GEMM, where oneDNN's
        # backward over S tiny images took several times as long. The projection's
        # modules are called (not their weights used directly), so their hooks run.
        column = picked.t().reshape(1, picked.shape[1], -1, 1)
        if self.statistics == 'all':
            out = self._project_with_full_statistics(column)
        else:
            out = self.projection(column)
        out = out[0, :, :, 0].t()  # (S, E)
        return F.normalize(out.reshape(*index.shape, -1).float(), dim=-1)

    def _pick(self, flat_index: Tensor) -> Tensor:
        """The feature (float32) at `flat_index` (S,), as rows (S, C); the first call
        also takes the feature's mean and covariance, for `_batch_moments`."""
        x = self.feature.float().contiguous()
        if self._feature_moments is None:
            mean, cov, picked = _MomentsAndPick.apply(x, flat_index)
            self._feature_moments = (mean, cov)
            return picked
        flat = x.flatten(2)
        hw = flat.shape[2]
        return flat[flat_index // hw, :, flat_index % hw]

    def _batch_moments(self, conv: nn.Conv2d, bn: _BatchNorm):
        """Mean and biased variance (C',) of conv(feature) over all N*h*w pixels, from
        the feature's mean and covariance; updates `bn`'s running statistics once, as
        its forward over every pixel would."""
        if self._moments is None:
            mean_x, cov_x = self._feature_moments
            count = self.feature.numel() // self.feature.shape[1]
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
