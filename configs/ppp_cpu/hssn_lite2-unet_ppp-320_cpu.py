# The seeds' decoder on this recipe (hssn_lite2-fpn_ppp-320_cpu.py: Lite2, bfloat16
# autocast): segmentation_models_pytorch's U-Net decoder (skips at strides 2-16, blocks
# 256-128-64-32-16 up to full resolution) in place of the FPN; same backbone, objective,
# data and optimiser, and the same minutes: its step is 1.24x the FPN's (benchmark,
# README), so 1,500 iterations instead of 1,800.
_base_ = ['./hssn_lite2-fpn_ppp-320_cpu.py']
iters = 1500
model = dict(
    backbone=dict(out_indices=(0, 1, 2, 3, 4)),
    neck=None,
    decode_head=dict(
        _delete_=True,
        type='HierarchicalUNetHead',
        in_channels=[16, 24, 48, 120, 352],  # Lite2 at strides 2-32
        in_index=[0, 1, 2, 3, 4],
        decoder_channels=[256, 128, 64, 32, 16],
        dropout_ratio=0.0,
        norm_cfg=dict(type='BN', requires_grad=True),
        align_corners=False,
        inference='tree_min',
        embedding_channels=64,
        loss_decode={{_base_.model.decode_head.loss_decode}}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='PolyLR', eta_min=1e-6, power=0.9, begin=100, end=iters, by_epoch=False)]
train_cfg = dict(max_iters=iters, val_interval=iters)
default_hooks = dict(checkpoint=dict(interval=iters // 2))
