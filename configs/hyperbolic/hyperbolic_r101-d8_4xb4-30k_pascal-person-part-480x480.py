# Poincare-ball classifier ("Flattening the Parent Bias", Weber et al., CVPR 2024): the
# head's last feature is mapped into the ball (expmap0) and the leaves are scored by
# hyperbolic MLR (Ganea et al., 2018); one softmax over the leaves trained with leaf
# cross-entropy, a parent scored as the sum of its children (the flat rule). Same model,
# data and lr schedule as the HSSN recipe. Weber et al.'s code (tum-vision/hierahyp):
# geoopt PoincareBall with c = 1.0 on the 512-d head feature, class points at the origin,
# RiemannianSGD for the points, no feature clipping; so c=1.0 and clip_r=None here.
_base_ = ['../hssn/hssn_r101-d8_4xb4-30k_pascal-person-part-480x480.py']
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(decode_head=dict(
    inference='flat', loss_decode=[dict(type='HierarchicalCrossEntropyLoss', levels=[-1])],
    classifier=dict(type='PoincareClassifier', c=1.0)))
# One RiemannianSGD for the whole model, the recipe's lr 0.007, momentum, decay and poly
# schedule: it takes Euclidean steps on every ordinary parameter (hseg_mm/engine/
# riemannian_optim.py) and Riemannian steps on the class points, kept inside the ball.
# The points get no weight decay: decay adds wd * p to their Euclidean gradient, pulling
# the hyperplanes' anchor points towards the origin by their coordinates, which means
# nothing on the ball (Weber et al. do not decay them either).
optim_wrapper = dict(optimizer=dict(type='RiemannianSGD'),
                     paramwise_cfg=dict(custom_keys={'classifier.points': dict(decay_mult=0.)}))
