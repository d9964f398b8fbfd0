# Test the HSSN release's LIP checkpoint (58.71 leaf mIoU reported, val):
#   python tools/model_converters/hssn2hseg.py SRC.pth hssn_lip.pth --dataset lip
#   python tools/test.py configs/hssn_release/hssn_release_lip.py hssn_lip.pth
# The tree keeps the release's background channel per level (lip_hssn).
_base_ = [
    '../_base_/models/hssn_release_deeplabv3plus_r101-d8.py', '../_base_/datasets/lip.py',
    '../_base_/default_runtime.py', '../../hseg_mm/hierarchies/lip_hssn.yaml',
    '../_base_/schedules/schedule_160k.py'
]
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(data_preprocessor=dict(size={{_base_.crop_size}}))
# The release tests LIP resized into 1920x480 (keep ratio; its LIP.py test_pipeline), where
# the training recipes here test at 480x480; the metric compares at the original size.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1920, 480), keep_ratio=True),
    dict(type='LoadCheckedAnnotations'),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
