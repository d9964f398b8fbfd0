# Synthetic people (hseg_mm/datasets/synthetic_people.py) for CPU demos and smoke
# tests: 128x128 images in the standard layout, generated into data_root on first
# use (about 2 s for 500 images), then read like PASCAL-Person-Part.
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)

dataset_type = 'SyntheticPeopleDataset'
data_root = 'work_dirs/data/synthetic_people'
generate = dict(num_train=400, num_val=100, size=(128, 128), seed=0)
img_scale = (128, 128)
crop_size = (128, 128)

train_pipeline = [
    dict(type='LoadCheckedImageFromFile'),  # its errors name the file
    dict(type='LoadCheckedAnnotations'),
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),  # the name MMSegInferencer looks for
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadCheckedAnnotations'),
    dict(type='PackSegInputs'),
]
# `tools/test.py --tta`: multi-scale + flip, leaf scores averaged over the views.
img_ratios = [0.75, 1.0, 1.25, 1.5]
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
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        generate=generate,
        split='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        generate=generate,
        split='val',
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# The tree comes from the config's top-level `hierarchy`, as for the datasets.
val_evaluator = dict(type='HierarchicalIoUMetric')
test_evaluator = val_evaluator
