# Test the HSSN release's Cityscapes checkpoint (81.62 leaf mIoU reported, val):
#   python tools/model_converters/hssn2hseg.py SRC.pth hssn_cityscapes.pth --dataset cityscapes
#   python tools/test.py configs/hssn_release/hssn_release_cityscapes.py hssn_cityscapes.pth
# The release's test setting: whole image resized to 2048x1024 (keep ratio), no flip.
# The tree keeps sky's own parent channel (cityscapes_hssn).
_base_ = [
    '../_base_/models/hssn_release_deeplabv3plus_r101-d8.py', '../_base_/datasets/cityscapes.py',
    '../_base_/default_runtime.py', '../../hseg_mm/hierarchies/cityscapes_hssn.yaml',
    '../_base_/schedules/schedule_80k.py'
]
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(data_preprocessor=dict(size={{_base_.crop_size}}))
