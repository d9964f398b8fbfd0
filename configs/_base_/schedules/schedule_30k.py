# HSSN's PASCAL-Person-Part optimiser (SGD, lr 0.007, poly), shortened from 60k to 30k
# iterations, with mmseg's weight decay 5e-4 and poly floor 1e-4 (the release uses 5e-5 for
# both: schedule_60k.py). The optimizer wrapper stays a plain OptimWrapper: `tools/train.py
# --amp` switches it to mixed precision, so the same config runs in fp32 or mixed precision.
optimizer = dict(type='SGD', lr=0.007, momentum=0.9, weight_decay=0.0005)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=30000, by_epoch=False)
]
# Validation and checkpoints every 3k iterations: ten points on the curve, and one
# pass over the 1,817 val images costs ~ 1-2 min on 4 GPUs, a few % of the run.
train_cfg = dict(type='IterBasedTrainLoop', max_iters=30000, val_interval=3000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    # mmengine's LoggerHook, but the test metrics JSON is written by rank 0 alone
    logger=dict(type='RankZeroLoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # `mIoU` (leaf level) is reported by mmseg's IoUMetric and HierarchicalIoUMetric alike.
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=3000, max_keep_ckpts=3,
                    save_best='mIoU', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
