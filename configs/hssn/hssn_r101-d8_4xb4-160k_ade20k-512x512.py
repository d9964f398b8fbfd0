# HSSN (Li et al., CVPR 2022) with DeepLabV3+ on ResNet-101-D8, ADE20K on mmseg's layout
# (configs/_base_/datasets/ade20k.py: 150 classes, disk id 0 ignored as mmseg's
# reduce_zero_label), with mmseg's and LogicSeg's ADE20K setting: 512x512 crops, 4 GPUs x 4
# images, SGD lr 0.01 poly, 160k iterations (LogicSeg's local_configs/deeplabv3plus/
# deeplabv3plus_r101-d8_512x512_160k_ade20k.py). Tree: LogicSeg's 150 -> 14 -> 3
# (ade20k_logicseg: its groups; the members are placed by meaning, as its code holds index
# ranges over a class order it does not ship). No anchor figure: figures on LogicSeg's own
# assignment would compare only roughly.
# `bash tools/dist_train.sh configs/hssn_ade20k.py 4` (add `--amp` for mixed precision).
_base_ = [
    '../_base_/models/hssn_deeplabv3plus_r101-d8.py', '../_base_/datasets/ade20k.py',
    '../_base_/default_runtime.py', '../../hseg_mm/hierarchies/ade20k_logicseg.yaml',
    '../_base_/schedules/schedule_160k.py'
]
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(data_preprocessor=dict(size={{_base_.crop_size}}))
