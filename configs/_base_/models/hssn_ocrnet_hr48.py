# HSSN on OCRNet / HRNetV2-W48: mmseg's two-stage cascade, both stages hierarchical.
# The FCN stage's node scores are the OCR stage's soft object regions (one region per
# tree node). The class tree comes from the recipe (`model.hierarchy`).
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='HierarchicalCascadeEncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255),
    num_stages=2,
    # ImageNet HRNetV2-W48, as mmseg's OCRNet recipes name it: downloaded once to torch's
    # hub cache at build; offline, one error names the URL and this key.
    # A local .pth path works too; None: from scratch.
    pretrained='open-mmlab://msra/hrnetv2_w48',
    backbone=dict(
        type='HRNet',
        norm_cfg=norm_cfg,
        norm_eval=False,
        extra=dict(
            stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK',
                        num_blocks=(4, ), num_channels=(64, )),
            stage2=dict(num_modules=1, num_branches=2, block='BASIC',
                        num_blocks=(4, 4), num_channels=(48, 96)),
            stage3=dict(num_modules=4, num_branches=3, block='BASIC',
                        num_blocks=(4, 4, 4), num_channels=(48, 96, 192)),
            stage4=dict(num_modules=3, num_branches=4, block='BASIC',
                        num_blocks=(4, 4, 4, 4), num_channels=(48, 96, 192, 384)))),
    decode_head=[
        dict(
            type='HierarchicalFCNHead',
            in_channels=[48, 96, 192, 384],
            channels=sum([48, 96, 192, 384]),
            in_index=(0, 1, 2, 3),
            input_transform='resize_concat',
            kernel_size=1,
            num_convs=1,
            concat_input=False,
            dropout_ratio=-1,
            norm_cfg=norm_cfg,
            align_corners=False,
            # Object regions need only sensible node scores: focal tree-min at
            # mmseg's 0.4 weight for this stage, no embedding.
            loss_decode=[dict(type='FocalTreeMinLoss', gamma=2.0, loss_weight=0.4)]),
        dict(
            type='HierarchicalOCRHead',
            in_channels=[48, 96, 192, 384],
            in_index=(0, 1, 2, 3),
            input_transform='resize_concat',
            channels=512,
            ocr_channels=256,
            dropout_ratio=-1,
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
    ],
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
