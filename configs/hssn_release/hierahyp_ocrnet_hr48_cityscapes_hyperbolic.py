# Test tum-vision/hierahyp's hyperbolic OCRNet-HR48 Cityscapes checkpoint (its README, "Models"):
#   python tools/model_converters/hierahyp2hseg.py SRC.pth ocr_hyp.pth --model ocrnet
#   python tools/test.py configs/hssn_release/hierahyp_ocrnet_hr48_cityscapes_hyperbolic.py \
#       ocr_hyp.pth
# As the Euclidean config, but the OCR stage scores the leaves in the Poincare ball
# (hierahyp's expmap0 at c = 1, its hyperbolic MLR with the Moebius sum projected to norm
# 1 - 1e-3); the FCN stage stays Euclidean, as in hierahyp. The optimiser is for a
# fine-tuning run only (the class points on the ball).
_base_ = ['./hierahyp_ocrnet_hr48_cityscapes_euclidean.py']
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(decode_head=[
    _base_.model.decode_head[0],
    dict(_base_.model.decode_head[1],
         classifier=dict(type='PoincareClassifier', c=1.0, mobius_eps=1e-3))])
optim_wrapper = dict(optimizer=dict(type='RiemannianSGD'),
                     paramwise_cfg=dict(custom_keys={'classifier.points': dict(decay_mult=0.)}))
