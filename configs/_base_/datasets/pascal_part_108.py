# Pascal-Part-108 (GMNet, Michieli et al., ECCV 2020) on LogicSeg's layout (lingorX/LogicSeg,
# local_configs/_base_/datasets/pascal_part108.py with its PascalPart108 dataset):
#   data/pascal_part/img_dir/{train,val}/<id>.jpg
#   data/pascal_part/ann108_dir/{train,val}/<id>.png
# GMNet's split, 4,998 train / 5,105 val images (VOC2010's train / val, every image that
# Pascal-Part annotates). Labels: palette PNGs of the ids of hseg_mm/hierarchies/
# pascal_part_108.yaml (0 background, 1..107 parts), 255 ignored. From the public
# annotations (Annotations_Part/*.mat and VOC2010 JPEGImages/), one command:
#   python tools/convert_pascal_part.py data/Annotations_Part data/pascal_part/ann108_dir \
#       --parts 108 --split-lists gmnet --split-dirs --images data/VOC2010/JPEGImages
# (GMNet's and LogicSeg's own copies hold the images as .png: set img_suffix='.png'.)
# The pipeline is LogicSeg's: images resized to (2048, 512) x [0.5, 2.0], 512x512 crops,
# flips (no part has a side: left and right parts are one class), photometric distortion;
# tested at (2048, 512). 4 images per GPU, as LogicSeg trains it.
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)

dataset_type = 'HierarchicalSegDataset'
data_root = 'data/pascal_part'
img_suffix = '.jpg'
crop_size = (512, 512)
img_scale = (2048, 512)

train_pipeline = [
    dict(type='LoadCheckedImageFromFile'),  # its errors name the file
    dict(type='LoadCheckedAnnotations'),  # checked: the tree's ids and 255 only
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.5, 2.0), keep_ratio=True),
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
        data_prefix=dict(img_path='img_dir/train', seg_map_path='ann108_dir/train'),
        img_suffix=img_suffix,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann108_dir/val'),
        img_suffix=img_suffix,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='HierarchicalIoUMetric')
test_evaluator = val_evaluator
