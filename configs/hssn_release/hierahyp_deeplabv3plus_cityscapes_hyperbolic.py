# Test tum-vision/hierahyp's hyperbolic DeepLabV3+ Cityscapes checkpoint (its README, "Models"):
#   python tools/model_converters/hierahyp2hseg.py SRC.pth deeplab_hyp.pth --model deeplabv3plus
#   python tools/test.py configs/hssn_release/hierahyp_deeplabv3plus_cityscapes_hyperbolic.py \
#       deeplab_hyp.pth
# As the Euclidean config, but the leaves are scored in the Poincare ball: hierahyp's
# expmap0 at c = 1 and its hyperbolic MLR, whose Moebius sum it projects to norm 1 - 1e-3
# (mobius_eps). The optimiser is for a fine-tuning run only (the class points on the ball).
_base_ = [
    '../_base_/models/hierahyp_deeplabv3plus_r101-d8.py', '../_base_/datasets/cityscapes.py',
    '../_base_/default_runtime.py', '../../hseg_mm/hierarchies/cityscapes.yaml',
    '../_base_/schedules/schedule_80k.py'
]
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(data_preprocessor=dict(size={{_base_.crop_size}}),
             decode_head=dict(classifier=dict(type='PoincareClassifier', c=1.0,
                                              mobius_eps=1e-3)))
optim_wrapper = dict(optimizer=dict(type='RiemannianSGD'),
                     paramwise_cfg=dict(custom_keys={'classifier.points': dict(decay_mult=0.)}))
