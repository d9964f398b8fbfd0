# HSSN (Li et al., CVPR 2022) with DeepLabV3+ on ResNet-101-D8, the paper's recipe (SGD 0.007 poly).
# PASCAL-Person-Part, 480x480 crops, 4 GPUs x 4 images, SyncBN, 30k iterations
# `bash tools/dist_train.sh configs/hssn_r101_deeplabv3plus.py 4` (add `--amp` for mixed precision).
_base_ = [
    '../_base_/models/hssn_deeplabv3plus_r101-d8.py', '../_base_/datasets/pascal_person_part.py',
    '../_base_/default_runtime.py',
    '../../hseg_mm/hierarchies/pascal_person_part.yaml', '../_base_/schedules/schedule_30k.py'
]
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(data_preprocessor=dict(size={{_base_.crop_size}}))
train_dataloader = dict(batch_size=4)
