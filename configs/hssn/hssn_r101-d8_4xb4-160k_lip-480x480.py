# HSSN (Li et al., CVPR 2022) with DeepLabV3+ on ResNet-101-D8, LIP (20 classes, 3 levels),
# the HSSN release's setting: 480x480 crops, 160k iterations (4 images per GPU, as its
# PASCAL-Person-Part recipe). Anchor: the HSSN release reports 58.71 mIoU (leaf level, val).
# `bash tools/dist_train.sh configs/hssn_lip.py 4` (add `--amp` for mixed precision).
_base_ = [
    '../_base_/models/hssn_deeplabv3plus_r101-d8.py', '../_base_/datasets/lip.py',
    '../_base_/default_runtime.py', '../../hseg_mm/hierarchies/lip.yaml',
    '../_base_/schedules/schedule_160k.py'
]
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(data_preprocessor=dict(size={{_base_.crop_size}}))
