# The seeds' "Pascal-part" repack: JPEGImages/*.jpg, gt_masks/*.npy, train_id.txt,
# val_id.txt, classes.txt (0 bg, 1 low_hand, 2 torso, 3 low_leg, 4 head, 5 up_leg,
# 6 up_hand). Its ids are mapped onto the config's tree by name (bg -> background,
# low_hand -> lower_arm, ...), so the standard tree serves; same recipe as
# pascal_person_part.py.
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)

dataset_type = 'PascalPartNpyDataset'
data_root = 'data/pascal_part'
data_prefix = dict(img_path='JPEGImages', seg_map_path='gt_masks')
img_scale = (1920, 480)
crop_size = (480, 480)

train_pipeline = [
    dict(type='LoadCheckedImageFromFile'),  # its errors name the file
    dict(type='LoadNpyAnnotations'),  # .npy labels, ids checked against the tree
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),  # the name MMSegInferencer looks for
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadNpyAnnotations'),
    dict(type='PackSegInputs'),
]
# `tools/test.py --tta`: multi-scale + flip, leaf scores averaged over the views.
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale_factor=r, keep_ratio=True) for r in img_ratios],
        [dict(type='RandomFlip', prob=0., direction='horizontal'),
         dict(type='RandomFlip', prob=1., direction='horizontal')],
        [dict(type='LoadNpyAnnotations')],
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
        data_prefix=data_prefix,
        split='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=data_prefix,
        split='val',
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# The tree comes from the config's top-level `hierarchy`, as for the datasets.
val_evaluator = dict(type='HierarchicalIoUMetric')
test_evaluator = val_evaluator
