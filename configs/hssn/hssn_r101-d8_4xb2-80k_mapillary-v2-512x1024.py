# HSSN (Li et al., CVPR 2022) with DeepLabV3+ on ResNet-101-D8, Mapillary Vistas 2.0: 124
# labels under the tree their own names give (4 levels: 8, 45, 117, 124 classes), with the
# Cityscapes schedule (512x1024 crops, 2 images per GPU, 80k iterations). No anchor figure:
# LogicSeg (ICCV 2023) reports Vistas 2.0 with its own hand-written 3-level tree, which this
# tree does not reproduce, and the HSSN release has no Vistas config.
# `bash tools/dist_train.sh configs/hssn_mapillary.py 4` (add `--amp` for mixed precision).
_base_ = [
    '../_base_/models/hssn_deeplabv3plus_r101-d8.py', '../_base_/datasets/mapillary_v2.py',
    '../_base_/default_runtime.py', '../../hseg_mm/hierarchies/mapillary_vistas_v2.yaml',
    '../_base_/schedules/schedule_80k.py'
]
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(data_preprocessor=dict(size={{_base_.crop_size}}))
