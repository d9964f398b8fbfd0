# Your own data and tree: a folder of images and label PNGs whose pixel values are the
# leaf ids of your tree (255: unlabelled), trained with the CPU demo's model and schedule.
# Any recipe works the same: put configs/hssn_r101_deeplabv3plus.py in `_base_` for GPUs.
_base_ = ['../demo_cpu.py']
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
hierarchy = 'data/my_data/tree.yaml'  # the one statement of the tree (or dict(...), a preset)
data = dict(type='HierarchicalSegDataset', data_root='data/my_data',
            img_suffix='.jpg', seg_map_suffix='.png')  # images/train/x.jpg, labels/train/x.png
train_dataloader = dict(dataset=dict(
    _delete_=True, **data, pipeline={{_base_.train_pipeline}},
    data_prefix=dict(img_path='images/train', seg_map_path='labels/train')))
val_dataloader = dict(dataset=dict(
    _delete_=True, **data, pipeline={{_base_.test_pipeline}},
    data_prefix=dict(img_path='images/val', seg_map_path='labels/val')))
test_dataloader = val_dataloader
