# The Poincare-ball classifier on the CPU demo (Weber et al., CVPR 2024: c = 1.0): leaves
# scored by hyperbolic MLR, leaf softmax + leaf cross-entropy, parents summed from children.
# Same model, data and schedule; the demo's AdamW becomes RiemannianAdamW (the same step on
# Euclidean parameters, a Riemannian one on the ball's points), and the class points get no
# weight decay (see configs/hyperbolic/hyperbolic_r101-d8_*.py). One departure from the
# anchor: features are clipped to norm 2 before the ball (clip_r, Guo et al., CVPR 2022).
# Unclipped, this head's features (median norm ~5.5) all land at the ball's edge and the
# demo collapses towards background (README, "Hyperbolic classifier").
_base_ = ['./demo_cpu.py']
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(decode_head=dict(
    inference='flat', loss_decode=[dict(type='HierarchicalCrossEntropyLoss', levels=[-1])],
    classifier=dict(type='PoincareClassifier', c=1.0, clip_r=2.0)))
optim_wrapper = dict(optimizer=dict(type='RiemannianAdamW'),
                     paramwise_cfg=dict(custom_keys={'classifier.points': dict(decay_mult=0.)}))
