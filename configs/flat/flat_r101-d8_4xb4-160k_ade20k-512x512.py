# Flat baseline ("Flattening the Parent Bias", Weber et al., CVPR 2024): one softmax over
# the leaves trained with leaf cross-entropy, a parent scored as the sum of its children.
# Same model, data and schedule as the HSSN recipe; the one statement below is the switch.
_base_ = ['../hssn/hssn_r101-d8_4xb4-160k_ade20k-512x512.py']
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(decode_head=dict(
    inference='flat', loss_decode=[dict(type='HierarchicalCrossEntropyLoss', levels=[-1])]))
