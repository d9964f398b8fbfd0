# The seeds' decoder on this recipe (hssn_lite2-fpn_ppp-320_cpu.py: Lite2, bfloat16
# autocast, 1,800 iterations): segmentation_models_pytorch's U-Net decoder (skips at
# strides 2-16, blocks 256-128-64-32-16 up to full resolution) in place of the FPN; same
# backbone, objective, data and schedule.
_base_ = ['./hssn_lite2-fpn_ppp-320_cpu.py']
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
