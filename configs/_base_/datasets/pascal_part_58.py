# Pascal-Part-58 (BSANet, Zhao et al., ICCV 2019; GMNet, ECCV 2020) on LogicSeg's layout, as
# pascal_part_108.py with the 58-part labels beside the 108 ones:
#   data/pascal_part/img_dir/{train,val}/<id>.jpg
#   data/pascal_part/ann58_dir/{train,val}/<id>.png
# GMNet's split, 4,998 train / 5,105 val images. Labels: the ids of hseg_mm/hierarchies/
# pascal_part_58.yaml (0 background, 1..57 parts), from the public annotations:
#   python tools/convert_pascal_part.py data/Annotations_Part data/pascal_part/ann58_dir \
#       --parts 58 --split-lists gmnet --split-dirs --images data/VOC2010/JPEGImages
_base_ = ['./pascal_part_108.py']
train_dataloader = dict(dataset=dict(data_prefix=dict(seg_map_path='ann58_dir/train')))
val_dataloader = dict(dataset=dict(data_prefix=dict(seg_map_path='ann58_dir/val')))
test_dataloader = val_dataloader
