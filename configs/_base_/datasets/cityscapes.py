# Cityscapes on its own layout, as mmseg's cityscapes.py reads it (19 classes by trainId,
# 255 ignored; the tree: hseg_mm/hierarchies/cityscapes.yaml):
#   data/cityscapes/leftImg8bit/{train,val}/<city>/*_leftImg8bit.png
#   data/cityscapes/gtFine/{train,val}/<city>/*_gtFine_labelTrainIds.png
# The download has *_gtFine_labelIds.png; make the trainId maps once with cityscapesscripts:
#   pip install cityscapesscripts
#   CITYSCAPES_DATASET=data/cityscapes csCreateTrainIdLabelImgs
# (or mmseg's tools/dataset_converters/cityscapes.py, which writes the same files).
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)

dataset_type = 'HierarchicalSegDataset'
data_root = 'data/cityscapes'
img_suffix, seg_map_suffix = '_leftImg8bit.png', '_gtFine_labelTrainIds.png'
crop_size = (512, 1024)
img_scale = (2048, 1024)

train_pipeline = [
    dict(type='LoadCheckedImageFromFile'),  # its errors name the file
    dict(type='LoadCheckedAnnotations'),  # checked: trainIds and 255 only
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),  # no class has a side
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),  # the name MMSegInferencer looks for
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadCheckedAnnotations'),
    dict(type='PackSegInputs'),
]
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale_factor=r, keep_ratio=True) for r in img_ratios],
        [dict(type='RandomFlip', prob=0., direction='horizontal'),
         dict(type='RandomFlip', prob=1., direction='horizontal')],
        [dict(type='LoadCheckedAnnotations')],
        [dict(type='PackSegInputs')],
    ])
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
        img_suffix=img_suffix,
        seg_map_suffix=seg_map_suffix,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
        img_suffix=img_suffix,
        seg_map_suffix=seg_map_suffix,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='HierarchicalIoUMetric')
test_evaluator = val_evaluator
