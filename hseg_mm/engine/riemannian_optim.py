"""geoopt's Riemannian optimisers in mmseg's OPTIMIZERS, for the Poincare-ball classifier.

A config then writes, e.g.::

    optim_wrapper = dict(
        optimizer=dict(type='RiemannianSGD', lr=0.007, momentum=0.9, weight_decay=0.0005),
        paramwise_cfg=dict(custom_keys={'classifier.points': dict(decay_mult=0.)}))

One optimiser serves the whole model. geoopt's `RiemannianSGD.step` and
`RiemannianAdam.step` (geoopt 0.5.1, optim/rsgd.py and optim/radam.py) take the manifold
of a `ManifoldParameter` / `ManifoldTensor` and `OptimMixin._default_manifold =
Euclidean()` for every other parameter; on `Euclidean`, `egrad2rgrad` is the identity,
`retr(x, u)` is `x + u` and `retr_transp` leaves the momentum as it is, so an ordinary
parameter gets exactly `torch.optim.SGD`'s (dampening 0) / `Adam`'s update, and only the
ball points follow the ball (Riemannian gradient, retraction projected into the ball).
Weight decay is added to the Euclidean gradient of every parameter, ball points included
(`grad.add_(point, alpha=weight_decay)` before `egrad2rgrad`): see the recipes for why
they get `decay_mult=0`.
"""
from typing import Callable, Optional, Tuple

import torch
from geoopt import ManifoldParameter, ManifoldTensor
from geoopt.optim import RiemannianAdam, RiemannianSGD
from mmseg.registry import OPTIMIZERS

__all__ = ['RiemannianSGD', 'RiemannianAdam', 'RiemannianAdamW']

OPTIMIZERS.register_module(module=RiemannianSGD)
OPTIMIZERS.register_module(module=RiemannianAdam)


@OPTIMIZERS.register_module()
class RiemannianAdamW(RiemannianAdam):
    """`RiemannianAdam` with AdamW's decoupled weight decay (Loshchilov & Hutter, 2019).

    geoopt's `RiemannianAdam` adds `weight_decay * p` to the gradient (Adam's L2), which
    the moments then rescale; the Swin recipe trains with `torch.optim.AdamW`, which
    shrinks the weights by `1 - lr * weight_decay` outside the moments. This does that
    to every Euclidean parameter with a gradient, then takes geoopt's step with no
    decay: on Euclidean parameters it matches `torch.optim.AdamW` (checked in
    tests/models/test_poincare_classifier.py). Manifold parameters are not decayed
    (scaling a point of the ball towards the origin has no geometric meaning).

    Args: as `torch.optim.AdamW`, plus geoopt's `stabilize`.
    """

    def __init__(self, params, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False,
                 stabilize: Optional[int] = None) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, stabilize=stabilize)

    def step(self, closure: Optional[Callable] = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        decays = [group['weight_decay'] for group in self.param_groups]
        try:
            with torch.no_grad():
                for group, decay in zip(self.param_groups, decays):
                    group['weight_decay'] = 0.0
                    for p in group['params']:
                        if p.grad is None or decay == 0 or \
                                isinstance(p, (ManifoldParameter, ManifoldTensor)):
                            continue
                        p.mul_(1 - group['lr'] * decay)
            super().step()
        finally:
            for group, decay in zip(self.param_groups, decays):
                group['weight_decay'] = decay
        return loss
