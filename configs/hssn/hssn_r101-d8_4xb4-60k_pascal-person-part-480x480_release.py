# HSSN with DeepLabV3+ on ResNet-101-D8, PASCAL-Person-Part: the objective and schedule of
# the HSSN release (qhanghu/HSSN_pytorch, deeplabv3plus_r101-d8_480x480_60k_pascal_person_
# part_hiera_triplet.py and its RMIHieraTripletLoss), which the paper does not describe.
# Anchor: the release reports 73.44 leaf mIoU (val); not reproduced here.
# `bash tools/dist_train.sh configs/hssn_r101_deeplabv3plus_release.py 4` (4 GPUs x 4 images).
#
# Model, data, tree and runtime are those of hssn_r101-d8_4xb4-30k_pascal-person-part-
# 480x480.py, from the same `_base_` files; only the schedule file differs (that recipe
# cannot be a base here: its schedule keys would clash with schedule_60k.py's, and
# mmengine refuses duplicate keys among bases).
_base_ = [
    '../_base_/models/hssn_deeplabv3plus_r101-d8.py', '../_base_/datasets/pascal_person_part.py',
    '../_base_/default_runtime.py',
    '../../hseg_mm/hierarchies/pascal_person_part.yaml', '../_base_/schedules/schedule_60k.py',
    '../_base_/losses/hssn_release.py'
]
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
train_dataloader = dict(batch_size=4)
model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    decode_head=dict(loss_decode={{_base_.hssn_release_loss}}))
