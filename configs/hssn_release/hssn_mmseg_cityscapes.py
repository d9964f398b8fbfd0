# Test mmseg projects/hssn's Cityscapes checkpoint (hieraseg_deeplabv3plus_r101-d8_4xb2-80k_
# cityscapes-512x1024_20230112_125023-bc59a3d1.pth; 81.61 mIoU reported, 82.71 with
# multi-scale and flip, `--tta`) by its own rule: raw logits added along the path
# (projects/hssn, sep_aspp_contrast_head.py `predict_by_feat`).
#   python tools/model_converters/hssn2hseg.py SRC.pth hieraseg_cityscapes.pth --dataset cityscapes
#   python tools/test.py configs/hssn_release/hssn_mmseg_cityscapes.py hieraseg_cityscapes.pth
_base_ = [
    '../_base_/models/hssn_release_deeplabv3plus_r101-d8.py', '../_base_/datasets/cityscapes.py',
    '../_base_/default_runtime.py', '../../hseg_mm/hierarchies/cityscapes_hssn.yaml',
    '../_base_/schedules/schedule_80k.py'
]
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(data_preprocessor=dict(size={{_base_.crop_size}}),
             decode_head=dict(inference='hssn_mmseg'))
