# The CPU demo (`make demo`): HSSN on a narrow DeepLabV3+ / ResNet-18-D8 (half width),
# trained from scratch on synthetic people at 128x128, batch 8, on a 2-core CPU.
# Same head, losses and inference as configs/hssn_r101_deeplabv3plus.py, only smaller.
_base_ = [
    './_base_/datasets/synthetic_people.py', './_base_/default_runtime.py',
    './_base_/schedules/schedule_30k.py'
]
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
iters = 1500
visualizer = dict(hierarchy={{_base_.hierarchy}})
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='HierarchicalEncoderDecoder',
    hierarchy={{_base_.hierarchy}},
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        size={{_base_.crop_size}},
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255),
    pretrained=None,  # nothing to download: trained from scratch
    backbone=dict(
        type='ResNetV1c',
        depth=18,
        stem_channels=32,
        base_channels=32,
        out_indices=(0, 1, 2, 3),
        dilations=(1, 1, 2, 4),
        strides=(1, 2, 1, 1),
        norm_cfg=norm_cfg,
        contract_dilation=True),
    decode_head=dict(
        type='HierarchicalDepthwiseSeparableASPPHead',
        in_channels=256,
        in_index=3,
        channels=64,
        dilations=(1, 6, 12, 18),
        c1_in_channels=32,
        c1_channels=16,
        dropout_ratio=0.1,
        norm_cfg=norm_cfg,
        align_corners=False,
        inference='tree_min',
        embedding_channels=64,
        loss_decode=[
            dict(type='FocalTreeMinLoss', gamma=2.0, loss_weight=1.0),
            dict(type='TreeTripletLoss', margin=0.6,
                 weight_schedule=dict(type='cosine', start=0.0, end=0.5)),
            dict(type='HierarchicalCrossEntropyLoss', loss_weight=1.0),
        ]),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
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
