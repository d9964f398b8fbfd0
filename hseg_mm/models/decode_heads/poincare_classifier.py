"""Hyperbolic multinomial logistic regression on the Poincare ball (Ganea et al., 2018).

What "Flattening the Parent Bias" (Weber et al., CVPR 2024) puts in place of a head's
1x1 classifier: the head's last feature is mapped into the Poincare ball of curvature
-c by the exponential map at the origin, and class k is scored by its signed,
scaled distance to a hyperbolic hyperplane through a point p_k with normal a_k:

    logit_k(x) = (lambda_{p_k} ||a_k|| / sqrt(c))
                 * asinh(2 sqrt(c) <z_k, a_k> / ((1 - c ||z_k||^2) ||a_k||)),
    z_k = (-p_k) (+)_c x,    lambda_p = 2 / (1 - c ||p||^2),

(+)_c being Moebius addition. `poincare_mlr` is that formula; `PoincareClassifier`
is the module with p_k as geoopt `ManifoldParameter`s on the ball (a Riemannian
optimiser keeps them inside it) and a_k transported from the origin.

Weber et al.'s code (tum-vision/hierahyp, mmseg/layers.py `hyp_mlr_torch`, after Atigh
et al.'s) computes the same logit, with one addition: z_k is projected to norm
(1 - 1e-3) / sqrt(c) (its PROJ_EPS) before the logit is taken. `mobius_eps` does that.
"""
import math
from typing import Optional

import geoopt
import torch
import torch.nn as nn
from mmseg.registry import MODELS
from torch import Tensor

__all__ = ['PoincareClassifier', 'poincare_mlr', 'expmap0_to_ball', 'project_to_ball']

# Floor of the conformal factors (1 - c||.||^2): geoopt's projx keeps float32 points
# at norm <= (1 - 4e-3) / sqrt(c), i.e. factors >= ~8e-3; this floor only guards
# points that reach the model some other way (a checkpoint, a hand-made tensor).
_MIN_CONFORMAL = 1e-5


def _ball_max_norm(c: float, dtype: torch.dtype) -> float:
    """geoopt's `project` bound: points stay at norm <= (1 - eps) / sqrt(c)."""
    eps = 4e-3 if dtype == torch.float32 else 1e-5
    return (1 - eps) / math.sqrt(c)


def project_to_ball(x: Tensor, c: float, dim: int = 1) -> Tensor:
    """geoopt's `PoincareBall.projx`: rescale points outside the bound onto it.

    The same operations as geoopt 0.5.1 (stereographic/math.py, `_project`), equal to
    its values to 1e-6 relative (geoopt stores c rounded: 0.3 as 0.30000007), but with
    the curvature a Python float: geoopt branches on the
    curvature tensor's value (`torch.all(k.isclose(0))`), which neither ONNX exporter
    can trace. Shapes: x any, the point along `dim`.
    """
    max_norm = _ball_max_norm(c, x.dtype)
    norm = x.norm(dim=dim, keepdim=True, p=2).clamp_min(1e-15)
    return torch.where(norm > max_norm, x / norm * max_norm, x)


def expmap0_to_ball(u: Tensor, c: float, dim: int = 1) -> Tensor:
    """geoopt's `PoincareBall.expmap0` (then `projx`), c > 0, with c a Python float.

    exp_0(u) = tanh(sqrt(c) |u|) u / (sqrt(c) |u|); geoopt clamps tanh's argument to
    [-15, 15] and |u| to >= 1e-15, and so does this. Shapes: u any, the vector along `dim`.
    """
    sqrt_c = math.sqrt(c)
    u_norm = u.norm(dim=dim, p=2, keepdim=True).clamp_min(1e-15)
    x = (sqrt_c * u_norm).clamp(-15, 15).tanh() / sqrt_c * (u / u_norm)
    return project_to_ball(x, c, dim)


def poincare_mlr(x: Tensor, points: Tensor, normals: Tensor, c: float = 1.0,
                 mobius_eps: Optional[float] = None) -> Tensor:
    """Ganea's hyperbolic MLR logits.

    Args:
        x: (N, D, ...) points in the Poincare ball (norm < 1/sqrt(c)) along dim 1.
        points: (K, D) the hyperplanes' points p_k in the ball.
        normals: (K, D) the normals a_k (tangent vectors at p_k), non-zero.
        c: the ball's curvature is -c (c > 0).
        mobius_eps: None: the formula as it is. Else z_k is first projected to norm
            <= r = (1 - mobius_eps) / sqrt(c), as hierahyp's `hyp_mlr_torch` does
            (mobius_eps = its PROJ_EPS, 1e-3): where |z_k| > r, <z_k, a_k> is scaled
            by r / |z_k| and 1 - c|z_k|^2 becomes 1 - c r^2. It changes only pixels
            far from p_k (|z_k| -> 1/sqrt(c) as their distance grows), e.g. a feature
            at the float32 boundary (norm 1 - 4e-3) opposite a p_k of norm >~ 0.6.

    Returns:
        (N, K, ...) logits, positive on the side of hyperplane k that a_k points to.

    Moebius addition is not materialised: with u = -p, v = x,
    u (+) v = ((1 + 2c<u,v> + c|v|^2) u + (1 - c|u|^2) v) / den and
    1 - c|u (+) v|^2 = (1 - c|u|^2)(1 - c|v|^2) / den, so den cancels in the ratio:

        <z, a> / (1 - c|z|^2) = ((1 - c|p|^2) <x,a> - (1 - 2c<p,x> + c|x|^2) <p,a>)
                                / ((1 - c|p|^2)(1 - c|x|^2)).

    This needs only <x,a_k> and <x,p_k> per pixel, (N, K, ...), instead of the
    (N, K, D, ...) tensor of z_k (at 4 x 512 x 120 x 120 with K = 7, 825 MB for each
    of its several autograd intermediates), and no 1 - c|z|^2 by cancellation. The
    projection needs |z|, from the same identity: c|z|^2 = 1 - (1 - c|p|^2)(1 - c|x|^2)
    / den, den = 1 - 2c<p,x> + c^2 |p|^2 |x|^2.
    """
    if c <= 0:
        raise ValueError(f'poincare_mlr: the curvature is -c with c > 0, got c={c}')
    if mobius_eps is not None and not 0 < mobius_eps < 1:
        raise ValueError(f'poincare_mlr: mobius_eps must be in (0, 1) or None, got {mobius_eps}')
    if points.shape != normals.shape or points.dim() != 2 or x.shape[1] != points.shape[1]:
        raise ValueError(f'poincare_mlr: x (N, D, ...), points and normals (K, D); got '
                         f'{tuple(x.shape)}, {tuple(points.shape)}, {tuple(normals.shape)}')
    view = (1, -1) + (1, ) * (x.dim() - 2)  # (K,) -> (1, K, 1, ...)
    xa = torch.einsum('nd...,kd->nk...', x, normals)
    px = torch.einsum('nd...,kd->nk...', x, points)
    xx = x.pow(2).sum(dim=1, keepdim=True)  # (N, 1, ...)
    pp = points.pow(2).sum(dim=1).view(view)
    pa = (points * normals).sum(dim=1).view(view)
    a_norm = normals.norm(dim=1).clamp_min(1e-15).view(view)
    one_pp = (1 - c * pp).clamp_min(_MIN_CONFORMAL)
    one_xx = (1 - c * xx).clamp_min(_MIN_CONFORMAL)
    num = one_pp * xa - (1 - 2 * c * px + c * xx) * pa  # <z, a> * den
    sqrt_c = math.sqrt(c)
    arg = 2 * sqrt_c * num / (one_pp * one_xx * a_norm)
    if mobius_eps is not None:
        den = (1 - 2 * c * px + c * c * pp * xx).clamp_min(1e-15)  # > 0 inside the ball
        z_norm = ((1 - one_pp * one_xx / den) / c).clamp_min(0).sqrt()
        bound = (1 - mobius_eps) / sqrt_c
        # <z, a> = num / den, scaled onto the bound; 1 - c|z|^2 at the bound
        projected = 2 * sqrt_c * (num / den) * (bound / z_norm.clamp_min(1e-15)) / \
            ((1 - c * bound * bound) * a_norm)
        arg = torch.where(z_norm > bound, projected, arg)
    lambda_p = 2 / one_pp
    return lambda_p * a_norm / sqrt_c * torch.asinh(arg)


@MODELS.register_module()
class PoincareClassifier(nn.Module):
    """Per-pixel Poincare-ball MLR: (N, in_channels, h, w) -> (N, num_classes, h, w).

    The feature is clipped (optional), mapped into the ball by `expmap0_to_ball`
    (geoopt's expmap0, projected inside, norm <= (1 - 4e-3) / sqrt(c) in float32) and
    scored by `poincare_mlr`. Always computed in float32, autocast or not.

    Parameters: `points` (num_classes, in_channels), the p_k, a geoopt
    `ManifoldParameter` on the ball (start at the origin, as in Weber et al.'s code);
    `tangents` (num_classes, in_channels), a_k at the origin, Euclidean. The normal
    used at p_k is the parallel transport of the tangent from the origin,
    a_k = (lambda_0 / lambda_{p_k}) tangent_k = (1 - c|p_k|^2) tangent_k (Ganea et al.
    eq. 25), so a_k stays a free Euclidean vector whatever p_k does, and
    lambda_{p_k} |a_k| = 2 |tangent_k|: Weber et al.'s code computes this same form,
    their `offsets` being `points` and their `normals` being `tangents`
    (tools/model_converters/hierahyp2hseg.py).
    Neither name contains 'norm' or 'bias', so mmengine's paramwise options meant for
    norm layers and biases do not catch them by accident.

    Args:
        in_channels: feature channels D (the head's `channels`).
        num_classes: K, one logit per class.
        c: the ball's curvature is -c. Weber et al. use c = 1.
        clip_r: if set, features longer than clip_r are scaled to that length before
            `expmap0` ("clipped hyperbolic classifiers", Guo et al., CVPR 2022), which
            keeps them at norm <= tanh(sqrt(c) clip_r) / sqrt(c), off the boundary
            where the radial gradient vanishes. None (Weber et al.): no clipping.
        init_std: std of the tangents' normal initialisation (mmseg's conv_seg uses
            0.01).
        mobius_eps: None: Ganea's logit. 1e-3: Weber et al.'s code's, which projects
            z_k = (-p_k) (+) x to norm (1 - 1e-3) / sqrt(c) first (`poincare_mlr`);
            for their checkpoints (configs/hssn_release/hierahyp_*_hyperbolic.py).
    """

    def __init__(self, in_channels: int, num_classes: int, c: float = 1.0,
                 clip_r: Optional[float] = None, init_std: float = 0.01,
                 mobius_eps: Optional[float] = None) -> None:
        super().__init__()
        if c <= 0:
            raise ValueError(f'PoincareClassifier: c must be > 0 (curvature -c), got {c}')
        if clip_r is not None and clip_r <= 0:
            raise ValueError(f'PoincareClassifier: clip_r must be > 0 or None, got {clip_r}')
        if mobius_eps is not None and not 0 < mobius_eps < 1:
            raise ValueError(f'PoincareClassifier: mobius_eps must be in (0, 1) or None, '
                             f'got {mobius_eps}')
        if in_channels < 1 or num_classes < 1:
            raise ValueError(f'PoincareClassifier: in_channels and num_classes must be >= 1, '
                             f'got {in_channels} and {num_classes}')
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.c = float(c)
        self.clip_r = clip_r
        self.mobius_eps = mobius_eps
        # A submodule, so `.to(device)` moves its curvature tensor with the model;
        # `points` refers to this same object.
        self.ball = geoopt.PoincareBall(c=self.c)
        self.points = geoopt.ManifoldParameter(torch.zeros(num_classes, in_channels),
                                               manifold=self.ball)
        self.tangents = nn.Parameter(torch.randn(num_classes, in_channels) * init_std)

    def forward(self, feat: Tensor) -> Tensor:
        """Logits (N, num_classes, h, w) from features (N, in_channels, h, w), float32."""
        with torch.autocast(device_type=feat.device.type, enabled=False):
            x = feat.float()
            if self.clip_r is not None:
                norm = x.norm(dim=1, keepdim=True).clamp_min(1e-15)
                x = x * (self.clip_r / norm).clamp(max=1.0)
            # geoopt's expmap0 and projx, written with c as a float so the model
            # exports to ONNX (tests compare them with geoopt's, to 1e-6 relative).
            x = expmap0_to_ball(x, self.c, dim=1)  # projected inside the ball
            # The optimiser's retraction keeps `points` inside; projecting again guards
            # points that came from elsewhere (a checkpoint, a plain SGD step).
            points = project_to_ball(self.points.float(), self.c, dim=1)
            tangents = self.tangents.float()
            normals = (1 - self.c * points.pow(2).sum(dim=1, keepdim=True)) * tangents
            return poincare_mlr(x, points, normals, self.c, self.mobius_eps)

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, num_classes={self.num_classes}, '
                f'c={self.c}, clip_r={self.clip_r}, mobius_eps={self.mobius_eps}')
