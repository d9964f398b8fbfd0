# HSSN (Li et al., CVPR 2022) with DeepLabV3+ on ResNet-101-D8, Mapillary Vistas 2.0 with the
# Cityscapes schedule (512x1024 crops, 2 images per GPU, 80k iterations). Tree: LogicSeg's
# 124 -> 17 -> 7 (mapillary_vistas_v2_logicseg, from its code), the tree the published
# Vistas 2.0 figures are on (HSSN 40.16, LogicSeg 40.72 leaf mIoU, DeepLabV3+ R-101, with
# LogicSeg's 240k schedule: configs/logicseg_mapillary.py), so a number can be compared.
# The alternative: the 4-level tree the label names themselves give (8, 45, 117, 124 classes;
# Wall under barrier, Trash Can under object), one line in a child config,
# `hierarchy = 'mapillary_vistas_v2'` (or `--cfg-options hierarchy=mapillary_vistas_v2`).
# `bash tools/dist_train.sh configs/hssn_mapillary.py 4` (add `--amp` for mixed precision).
_base_ = [
    '../_base_/models/hssn_deeplabv3plus_r101-d8.py', '../_base_/datasets/mapillary_v2.py',
    '../_base_/default_runtime.py',
    '../../hseg_mm/hierarchies/mapillary_vistas_v2_logicseg.yaml',
    '../_base_/schedules/schedule_80k.py'
]
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(data_preprocessor=dict(size={{_base_.crop_size}}))
