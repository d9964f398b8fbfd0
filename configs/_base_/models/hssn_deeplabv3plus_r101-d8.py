# HSSN on DeepLabV3+ / ResNet-101-D8 (the paper's PASCAL-Person-Part model). The class
# tree comes from the recipe (`model.hierarchy`); heads and losses read it from there.
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='HierarchicalEncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255),
    # ImageNet ResNet-101-V1c, as mmseg's DeepLabV3+ recipes name it: downloaded once to
    # torch's hub cache at build; offline, one error names the URL and this key.
    # A local .pth path works too; None: from scratch.
    pretrained='open-mmlab://resnet101_v1c',
    backbone=dict(
        type='ResNetV1c',
        depth=101,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        dilations=(1, 1, 2, 4),
        strides=(1, 2, 1, 1),
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        contract_dilation=True),
    decode_head=dict(
        type='HierarchicalDepthwiseSeparableASPPHead',
        in_channels=2048,
        in_index=3,
        channels=512,
        dilations=(1, 12, 24, 36),
        c1_in_channels=256,
        c1_channels=48,
        dropout_ratio=0.1,
        norm_cfg=norm_cfg,
        align_corners=False,
        inference='tree_min',
        embedding_channels=256,
        # The terms of the HSSN release's objective, without its RMI term and at unit
        # weights (its exact weights: the _release recipe): focal tree-min on the
        # sigmoid node scores, the tree-triplet loss on the 256-d embedding with its
        # weight ramped 0 -> 0.5 by a cosine over the whole run, and cross-entropy at
        # every level (leaf softmax summed to each level).
        loss_decode=[
            dict(type='FocalTreeMinLoss', gamma=2.0, loss_weight=1.0),
            dict(type='TreeTripletLoss', margin=0.6,
                 weight_schedule=dict(type='cosine', start=0.0, end=0.5)),
            dict(type='HierarchicalCrossEntropyLoss', levels=None, loss_weight=1.0),
        ]),
    # A plain mmseg FCN head on leaf ids (num_classes = number of leaves, filled in by
    # the segmentor): it only regularises the backbone, and leaf CE is what it needs.
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=1024,
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
