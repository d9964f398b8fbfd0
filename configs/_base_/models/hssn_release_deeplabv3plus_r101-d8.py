# The HSSN release's model (qhanghu/HSSN_pytorch, configs/_base_/models/deeplabv3plus_r50-d8_
# vd_contrast.py with depth=101) for its checkpoints converted by
# tools/model_converters/hssn2hseg.py: DeepLabV3+ on ResNetV1d-101 (deep stem, average-pool
# downsampling), an FCN auxiliary head on the leaves, whole-image inference by the release's
# rule (softmax over all node channels at the original size, ancestors' probabilities added).
_base_ = ['./hssn_deeplabv3plus_r101-d8.py']
model = dict(
    # the weights come from the converted checkpoint
    pretrained=None,
    backbone=dict(type='ResNetV1d'),
    decode_head=dict(
        inference='hssn_release',
        # The release's projection (`proj_head`) reads C5 and only trains; the converter
        # drops it, so the head builds none: no loss here takes the embedding. The loss
        # is for a fine-tuning run only; testing reads none.
        embedding_channels=None,
        loss_decode=[dict(type='FocalTreeMinLoss', gamma=2.0, loss_weight=1.0)]),
    test_cfg=dict(mode='whole'))
