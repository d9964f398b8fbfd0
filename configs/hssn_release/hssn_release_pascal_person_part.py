# Test the HSSN release's PASCAL-Person-Part checkpoint (73.44 leaf mIoU reported, val):
#   python tools/model_converters/hssn2hseg.py SRC.pth hssn_ppp.pth --dataset pascal_person_part
#   python tools/test.py configs/hssn_release/hssn_release_pascal_person_part.py hssn_ppp.pth
# The release's test setting: whole image resized into 1920x480 (keep ratio), no flip.
# The tree keeps the release's background channel per level (pascal_person_part_hssn).
_base_ = [
    '../_base_/models/hssn_release_deeplabv3plus_r101-d8.py',
    '../_base_/datasets/pascal_person_part.py', '../_base_/default_runtime.py',
    '../../hseg_mm/hierarchies/pascal_person_part_hssn.yaml', '../_base_/schedules/schedule_60k.py'
]
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(data_preprocessor=dict(size={{_base_.crop_size}}))
