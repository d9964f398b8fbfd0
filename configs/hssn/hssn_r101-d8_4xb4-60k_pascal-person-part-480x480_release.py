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
    '../_base_/hierarchies/pascal_person_part.yaml', '../_base_/schedules/schedule_60k.py'
]
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
train_dataloader = dict(batch_size=4)
# The release's loss: 0.5 * rmi + 0.5 * tree-min + ce(leaves) + ce(middle) + ce(top) + triplet.
model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    decode_head=dict(loss_decode=[
        # Its RMI module returns 0.5 (lambda) x the RMI bound, scaled by 0.5 once more:
        # 0.25 on the sigmoid of every node, radius 3, 3x3/3 max-pooling, jitter 1e-3.
        dict(type='RMILoss', nodes='all', radius=3, pool='max', pool_size=3, jitter=1e-3,
             loss_weight=0.25),
        # Its tree-min loss is the mean over the nodes of each level, summed over the 3
        # levels, weighted 0.5. Our loss sums over nodes, so each node gets 1 / (nodes of
        # its level): node order background, body, upper_body, lower_body, head, torso,
        # upper_arm, lower_arm, upper_leg, lower_leg; background stands at every level
        # (1/7 + 1/3 + 1/2 = 41/42: the release gives it one channel per level).
        dict(type='FocalTreeMinLoss', gamma=2.0, loss_weight=0.5,
             class_weight=[41 / 42, 1 / 2, 1 / 3, 1 / 3] + [1 / 7] * 6),
        # Cross-entropy on the leaves and on both parent levels, weight 1 each.
        dict(type='HierarchicalCrossEntropyLoss', levels=None, loss_weight=1.0),
        # Tree-triplet: margin 0.6, <= 200 samples per class, weight 0 -> 0.5 by a cosine
        # over the 60k iterations.
        dict(type='TreeTripletLoss', margin=0.6, max_samples_per_class=200,
             weight_schedule=dict(type='cosine', start=0.0, end=0.5), loss_weight=1.0),
    ]))
