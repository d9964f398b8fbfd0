# PASCAL-Person-Part, standard layout (1,716 train / 1,817 val), the HSSN recipe's
# data pipeline: 480x480 crops of images resized to (1920, 480) x [0.5, 2.0].
# Layouts on disk this reads (set data_prefix / split for yours):
#   Graphonomy-style repack: JPEGImages/, SegmentationPart/, train_id.txt, val_id.txt
#       (beside the folders or in list/);
#   DeepLab release (+ VOC2010 JPEGImages/): pascal_person_part_gt/ and
#       pascal_person_part_trainval_list/{train,val}.txt ("/JPEGImages/x.jpg
#       /SegmentationPart/x.png" pairs): set seg_map_path='pascal_person_part_gt'.
# Label ids on disk are mapped onto the config's tree (its top-level `hierarchy`, handed
# to the datasets by HierarchicalRunner) by leaf name.
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)

dataset_type = 'PascalPersonPartDataset'
data_root = 'data/pascal_person_part'
data_prefix = dict(img_path='JPEGImages', seg_map_path='SegmentationPart')
img_scale = (1920, 480)
crop_size = (480, 480)

train_pipeline = [
    dict(type='LoadCheckedImageFromFile'),  # its errors name the file
    # palette PNGs read as ids, ids checked against the tree, the file named in
    # every error; without a label (mmseg's inference) it passes through
    dict(type='LoadCheckedAnnotations'),
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),  # no class has a side: no label swap
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),  # the name MMSegInferencer looks for
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    # annotations after Resize: metrics are computed at the original size
    dict(type='LoadCheckedAnnotations'),
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
