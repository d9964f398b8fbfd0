# LIP (Look Into Person) on its own layout (20 ids, 0 background; the tree:
# hseg_mm/hierarchies/lip.yaml), 30,462 train / 10,000 val images:
#   data/LIP/train_images/*.jpg    data/LIP/train_segmentations/*.png
#   data/LIP/val_images/*.jpg      data/LIP/val_segmentations/*.png
# (the release's TrainVal_images/ and TrainVal_parsing_annotations/ folders, flattened).
# Every image in a folder is used; to use the release's id lists instead, add
# `ann_file='train_id.txt'` / `'val_id.txt'` (ids one per line, under data_root).
# The HSSN release's LIP setting: 480x480 crops, 160k iterations.
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)

dataset_type = 'HierarchicalSegDataset'
data_root = 'data/LIP'
crop_size = (480, 480)
img_scale = (480, 480)
# Left and right parts trade places under a horizontal flip (label ids of the LIP tree).
side_pairs = [(14, 15), (16, 17), (18, 19)]  # arms, legs, shoes

train_pipeline = [
    dict(type='LoadCheckedImageFromFile'),  # its errors name the file
    dict(type='LoadCheckedAnnotations'),  # checked: ids 0..19 and 255 only
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5, swap_seg_labels=side_pairs),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),  # the name MMSegInferencer looks for
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadCheckedAnnotations'),
    dict(type='PackSegInputs'),
]
# `--tta`: scales only. A flipped view's left-arm scores belong to the right arm, and the
# TTA merge does not swap channels, so flips would blur the sides.
img_ratios = [0.75, 1.0, 1.25, 1.5]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale_factor=r, keep_ratio=True) for r in img_ratios],
        [dict(type='LoadCheckedAnnotations')],
        [dict(type='PackSegInputs')],
    ])
]
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='train_images', seg_map_path='train_segmentations'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='val_images', seg_map_path='val_segmentations'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='HierarchicalIoUMetric')
test_evaluator = val_evaluator
