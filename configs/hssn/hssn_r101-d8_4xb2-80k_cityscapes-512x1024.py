# HSSN (Li et al., CVPR 2022) with DeepLabV3+ on ResNet-101-D8, Cityscapes (19 classes under
# 7 parents), the HSSN release's setting: 512x1024 crops, 2 images per GPU, 80k iterations.
# Anchor: the HSSN release reports 81.62 mIoU (leaf level, val) for this setting.
# `bash tools/dist_train.sh configs/hssn_cityscapes.py 4` (add `--amp` for mixed precision).
_base_ = [
    '../_base_/models/hssn_deeplabv3plus_r101-d8.py', '../_base_/datasets/cityscapes.py',
    '../_base_/default_runtime.py', '../../hseg_mm/hierarchies/cityscapes.yaml',
    '../_base_/schedules/schedule_80k.py'
]
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(data_preprocessor=dict(size={{_base_.crop_size}}))
