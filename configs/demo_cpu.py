# The CPU demo (`make demo`): the HSSN DeepLabV3+ model of configs/hssn_r101_deeplabv3plus.py
# (same head, losses and inference), shrunk to a half-width ResNet-18-D8 with BN, trained
# from scratch on synthetic people at 128x128, batch 8, on a 2-core CPU.
_base_ = [
    './_base_/models/hssn_deeplabv3plus_r18-d8_cpu.py', './_base_/datasets/synthetic_people.py',
    './_base_/default_runtime.py',
    './_base_/hierarchies/pascal_person_part.yaml', './_base_/schedules/schedule_30k.py'
]
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
iters = 1500
model = dict(data_preprocessor=dict(size={{_base_.crop_size}}))
# From scratch, so a larger lr than the fine-tuning recipe, decayed by poly.
optimizer = dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0005)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=iters,
                        by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=500)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500, max_keep_ckpts=2,
                    save_best='mIoU', rule='greater'))
env_cfg = dict(cudnn_benchmark=False)
# Seeded, so the README's demo figures can be rerun.
randomness = dict(seed=0)
