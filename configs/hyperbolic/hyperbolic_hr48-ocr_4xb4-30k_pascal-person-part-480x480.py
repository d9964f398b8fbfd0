# Poincare-ball classifier (Weber et al., CVPR 2024) on the HSSN OCRNet / HRNetV2-W48
# recipe: as hyperbolic_r101-d8_4xb4-30k_pascal-person-part-480x480.py (flat rule, leaf
# cross-entropy, c = 1.0, RiemannianSGD, no decay on the class points). As in Weber et
# al.'s OCR config, only the OCR stage is hyperbolic; the FCN stage (soft object regions)
# keeps its 1x1 classifier, both stages switch to the flat loss and rule with their weights.
_base_ = ['../hssn/hssn_hr48-ocr_4xb4-30k_pascal-person-part-480x480.py']
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(decode_head=[
    dict(_base_.model.decode_head[0], inference='flat', loss_decode=[dict(
        type='HierarchicalCrossEntropyLoss', levels=[-1],
        loss_weight=_base_.model.decode_head[0].loss_decode[0].loss_weight)]),
    dict(_base_.model.decode_head[1], inference='flat', loss_decode=[dict(
        type='HierarchicalCrossEntropyLoss', levels=[-1],
        loss_weight=_base_.model.decode_head[1].loss_decode[0].loss_weight)],
        classifier=dict(type='PoincareClassifier', c=1.0))])
optim_wrapper = dict(optimizer=dict(type='RiemannianSGD'),
                     paramwise_cfg=dict(custom_keys={'classifier.points': dict(decay_mult=0.)}))
