# The Poincare-ball classifier on the CPU demo (Weber et al., CVPR 2024: c = 1.0,
# RiemannianSGD): leaves scored by hyperbolic MLR, leaf softmax + leaf cross-entropy,
# parents summed from children. Same model, data and schedule (lr 0.02 poly); the class
# points get no weight decay (see configs/hyperbolic/hyperbolic_r101-d8_*.py).
_base_ = ['./demo_cpu.py']
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(decode_head=dict(
    inference='flat', loss_decode=[dict(type='HierarchicalCrossEntropyLoss', levels=[-1])],
    classifier=dict(type='PoincareClassifier', c=1.0)))
optim_wrapper = dict(optimizer=dict(type='RiemannianSGD'),
                     paramwise_cfg=dict(custom_keys={'classifier.points': dict(decay_mult=0.)}))
