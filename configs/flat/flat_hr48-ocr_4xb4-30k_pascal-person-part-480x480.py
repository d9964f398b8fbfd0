# Flat baseline ("Flattening the Parent Bias", Weber et al., CVPR 2024): one softmax over
# the leaves trained with leaf cross-entropy, a parent scored as the sum of its children.
# Same model, data and schedule as the HSSN recipe; the one statement below is the switch,
# applied to both cascade stages (mmengine replaces lists whole, so it maps over the
# inherited stages and keeps each stage's loss weight).
_base_ = ['../hssn/hssn_hr48-ocr_4xb4-30k_pascal-person-part-480x480.py']
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(decode_head=[
    dict(stage, inference='flat', loss_decode=[dict(
        type='HierarchicalCrossEntropyLoss', levels=[-1],
        loss_weight=stage.loss_decode[0].loss_weight)])
    for stage in _base_.model.decode_head])
