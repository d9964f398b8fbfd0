# Mapillary Vistas 2.0 on its own layout, as mmseg's mapillary_v2.py reads it (124 labels,
# ids as in the release's config_v2.0.json; the recipes' tree: LogicSeg's,
# hseg_mm/hierarchies/mapillary_vistas_v2_logicseg.yaml, or the one built from the label
# names by tools/build_tree.py, mapillary_vistas_v2.yaml; both have these leaves):
#   data/mapillary/training/images/*.jpg     data/mapillary/training/v2.0/labels/*.png
#   data/mapillary/validation/images/*.jpg   data/mapillary/validation/v2.0/labels/*.png
# The label PNGs are palette images whose indices are the label ids (read as stored).
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)

dataset_type = 'HierarchicalSegDataset'
data_root = 'data/mapillary'
crop_size = (512, 1024)
img_scale = (2048, 1024)
# Arrows that point one way point the other way in a flipped image (label ids of v2.0).
side_pairs = [(39, 41), (42, 43)]  # arrow left/right, split left/right or straight

train_pipeline = [
    dict(type='LoadCheckedImageFromFile'),  # its errors name the file
    dict(type='LoadCheckedAnnotations'),  # checked: ids 0..123 only
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
# `--tta`: scales only; the TTA merge would not swap the arrows' scores of a flipped view.
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale_factor=r, keep_ratio=True) for r in img_ratios],
        [dict(type='LoadCheckedAnnotations')],
        [dict(type='PackSegInputs')],
    ])
]
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='training/images', seg_map_path='training/v2.0/labels'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='validation/images',
                         seg_map_path='validation/v2.0/labels'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='HierarchicalIoUMetric')
test_evaluator = val_evaluator
