# HSSN on UPerNet / Swin-B (window 12, ImageNet-22k 384 pre-training): mmseg's
# SwinTransformer (no timm needed). The class tree comes from the recipe (`model.hierarchy`).
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
    # Swin-B ImageNet-22k 384 in mmseg's key layout, the file mmseg's
    # swin-base-patch4-window12-in22k-384x384 recipe names (there as
    # backbone.init_cfg.checkpoint; here model.pretrained like the other recipes, which
    # mmseg's SwinTransformer turns into the same init_cfg). Downloaded once to torch's
    # hub cache at build; offline, one error names the URL and this key. A local .pth
    # path works too (e.g. Microsoft's release converted by mmseg's
    # tools/model_converters/swin2mmseg.py); None: from scratch.
    pretrained='https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/swin/'
    'swin_base_patch4_window12_384_22k_20220317-e5c09f74.pth',
    backbone=dict(
        type='SwinTransformer',
        pretrain_img_size=384,
        embed_dims=128,
        patch_size=4,
        window_size=12,
        mlp_ratio=4,
        depths=[2, 2, 18, 2],
        num_heads=[4, 8, 16, 32],
        strides=(4, 2, 2, 2),
        out_indices=(0, 1, 2, 3),
        qkv_bias=True,
        qk_scale=None,
        patch_norm=True,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.3,
        use_abs_pos_embed=False,
        act_cfg=dict(type='GELU'),
        norm_cfg=dict(type='LN', requires_grad=True)),
    decode_head=dict(
        type='HierarchicalUPerHead',
        in_channels=[128, 256, 512, 1024],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        norm_cfg=norm_cfg,
        align_corners=False,
        inference='tree_min',
        embedding_channels=256,
        # The HSSN objective as in hssn_deeplabv3plus_r101-d8.py.
        loss_decode=[
            dict(type='FocalTreeMinLoss', gamma=2.0, loss_weight=1.0),
            dict(type='TreeTripletLoss', margin=0.6,
                 weight_schedule=dict(type='cosine', start=0.0, end=0.5)),
            dict(type='HierarchicalCrossEntropyLoss', levels=None, loss_weight=1.0),
        ]),
    # Plain mmseg FCN head on leaf ids, as in hssn_deeplabv3plus_r101-d8.py.
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=512,
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
