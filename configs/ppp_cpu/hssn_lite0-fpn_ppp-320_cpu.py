# HSSN on real PASCAL-Person-Part on a 2-core CPU: EfficientNet-Lite0 (ImageNet) + FPN,
# 320x320 crops, batch 8, AdamW. README "Real PASCAL-Person-Part" gives its figures.
_base_ = [
    '../_base_/models/hssn_fpn_efficientnet-lite0.py',
    '../_base_/datasets/pascal_part_npy_cpu.py',
    '../_base_/default_runtime.py',
    '../../hseg_mm/hierarchies/pascal_person_part.yaml',
    '../_base_/schedules/schedule_30k.py',
]
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
# 1,600 iterations: HSSN trains in about 45 minutes on 2 cores (flat in about 36)
iters = 1600
model = dict(data_preprocessor=dict(size={{_base_.crop_size}}))
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(_delete_=True, type='AdamW', lr=1e-3, weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='PolyLR', eta_min=1e-6, power=0.9, begin=100, end=iters, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=iters)
default_hooks = dict(
    logger=dict(type='RankZeroLoggerHook', interval=20, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=800, max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
