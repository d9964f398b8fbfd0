# Poincare-ball classifier (Weber et al., CVPR 2024) on the HSSN Swin-B + UPerNet recipe:
# as hyperbolic_r101-d8_4xb4-30k_pascal-person-part-480x480.py (flat rule, leaf
# cross-entropy, c = 1.0, no decay on the class points). Weber et al. train with
# RiemannianSGD; this recipe keeps Swin's AdamW (lr 6e-5, decay 0.01, its no-decay keys,
# warm-up and linear decay) as RiemannianAdamW: geoopt's RiemannianAdam with AdamW's
# decoupled decay (geoopt's own adds the decay to the gradient, as Adam does).
_base_ = ['../hssn/hssn_swin-b-upernet_4xb4-30k_pascal-person-part-480x480.py']
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(decode_head=dict(
    inference='flat', loss_decode=[dict(type='HierarchicalCrossEntropyLoss', levels=[-1])],
    classifier=dict(type='PoincareClassifier', c=1.0)))
optim_wrapper = dict(optimizer=dict(type='RiemannianAdamW'),
                     paramwise_cfg=dict(custom_keys={'classifier.points': dict(decay_mult=0.)}))
