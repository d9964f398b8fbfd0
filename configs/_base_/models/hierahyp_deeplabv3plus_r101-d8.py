# tum-vision/hierahyp's DeepLabV3+ (configs/deeplabv3plus/deeplabv3plus_r101-d8_512x1024_80k_
# cityscapes_{euclidean,hyperbolic}.py over _base_/models/deeplabv3plus_r50-d8_vd_contrast.py,
# depth=101) for its checkpoints converted by tools/model_converters/hierahyp2hseg.py:
# ResNetV1d-101, the DeepLabV3+ head (its `DepthwiseSeparableASPPContrastHead` without the
# projection that nothing at test reads), an FCN auxiliary head on the leaves, whole-image
# inference by hierahyp's test (the 'hierahyp' rule: leaf softmax at the original image
# size, each level argmaxed on its own). Euclidean: `conv_seg` scores the leaves; the
# hyperbolic entry configs add the Poincare classifier.
_base_ = ['./hssn_release_deeplabv3plus_r101-d8.py']
model = dict(
    decode_head=dict(
        inference='hierahyp',
        # hierahyp trains the leaves with cross-entropy (its focal loss at gamma 0); the
        # loss is for a fine-tuning run only, testing reads none.
        loss_decode=[dict(type='HierarchicalCrossEntropyLoss', levels=[-1])]))
