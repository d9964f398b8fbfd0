# The CPU demo (`make demo`): the HSSN DeepLabV3+ model of configs/hssn_r101_deeplabv3plus.py
# shrunk to a half-width ResNet-18-D8 with BN, trained from scratch on synthetic people at
# 128x128, batch 4, on a 2-core CPU.
_base_ = [
    './_base_/models/hssn_deeplabv3plus_r18-d8_cpu.py', './_base_/datasets/synthetic_people.py',
    './_base_/default_runtime.py',
    '../hseg_mm/hierarchies/pascal_person_part.yaml', './_base_/schedules/schedule_30k.py'
]
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
iters = 3000
# HSSN's two losses (focal tree-min, tree-triplet) with the release's weights, and two
# terms of the release's objective (configs/_base_/losses/hssn_release.py) kept on the
# leaves: RMI on the leaf nodes, cross-entropy on the leaf softmax. On this demo the
# release's RMI on every node and CE at every level cost 0.9 / 1.7 / 3.0 mIoU (README,
# "Results": configs/hssn_release_demo_cpu.py).
model = dict(data_preprocessor=dict(size={{_base_.crop_size}}), decode_head=dict(loss_decode=[
    dict(type='RMILoss', nodes='leaves', radius=3, pool='max', pool_size=3, jitter=1e-3,
         loss_weight=0.25),
    dict(type='FocalTreeMinLoss', gamma=2.0, loss_weight=0.5, class_weight='level_mean'),
    dict(type='HierarchicalCrossEntropyLoss', levels=[-1], loss_weight=1.0),
    dict(type='TreeTripletLoss', margin=0.6, max_samples_per_class=200,
         weight_schedule=dict(type='cosine', start=0.0, end=0.5), loss_weight=1.0),
]))
# From scratch, the small model underfits (train accuracy = val accuracy), so what counts is
# progress per second: AdamW and batch 4 x 3,000 steps beat SGD lr 0.02 and batch 8 x 1,500
# in the same time (README, "Results"). `_delete_`: SGD's momentum must not merge into AdamW.
train_dataloader = dict(batch_size=4)
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(_delete_=True, type='AdamW', lr=0.002, weight_decay=0.01))
param_scheduler = [dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=iters,
                        by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=1000)
default_hooks = dict(
    logger=dict(type='RankZeroLoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000, max_keep_ckpts=2,
                    save_best='mIoU', rule='greater'))
env_cfg = dict(cudnn_benchmark=False)
# Seeded, so the README's demo figures can be rerun.
randomness = dict(seed=0)
