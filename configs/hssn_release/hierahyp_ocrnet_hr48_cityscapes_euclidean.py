# Test tum-vision/hierahyp's Euclidean OCRNet-HR48 Cityscapes checkpoint (its README, "Models"):
#   python tools/model_converters/hierahyp2hseg.py SRC.pth ocr_eucl.pth --model ocrnet
#   python tools/test.py configs/hssn_release/hierahyp_ocrnet_hr48_cityscapes_euclidean.py \
#       ocr_eucl.pth
# hierahyp's test setting: whole image resized to 2048x1024 (keep ratio), no flip; its rule
# 'hierahyp' (leaf softmax at the original size, levels argmaxed one by one).
_base_ = [
    '../_base_/models/hierahyp_ocrnet_hr48.py', '../_base_/datasets/cityscapes.py',
    '../_base_/default_runtime.py', '../../hseg_mm/hierarchies/cityscapes.yaml',
    '../_base_/schedules/schedule_80k.py'
]
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(data_preprocessor=dict(size={{_base_.crop_size}}))
