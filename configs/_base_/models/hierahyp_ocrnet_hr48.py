# tum-vision/hierahyp's OCRNet (configs/ocrnet/ocrnet_hr48_4xb2-80k_cityscapes-512x1024_
# {euclidean,hyperbolic}.py) for its checkpoints converted by
# tools/model_converters/hierahyp2hseg.py: HRNetV2-W48, a plain FCN stage scoring the 19
# leaves by label id (hierahyp's soft object regions are those 19 classes, not the tree's
# nodes, so this stage is mmseg's FCNHead), then the OCR stage scoring the tree, whole-image
# inference by hierahyp's test (the 'hierahyp' rule). Euclidean: the OCR stage's `conv_seg`
# scores the leaves; the hyperbolic entry config adds the Poincare classifier to it (the
# FCN stage stays Euclidean, as in hierahyp).
_base_ = ['./hssn_ocrnet_hr48.py']
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    pretrained=None,  # the weights come from the converted checkpoint
    decode_head=[
        dict(
            type='FCNHead',
            in_channels=[48, 96, 192, 384],
            channels=sum([48, 96, 192, 384]),
            in_index=(0, 1, 2, 3),
            input_transform='resize_concat',
            kernel_size=1,
            num_convs=1,
            concat_input=False,
            dropout_ratio=-1,
            num_classes=19,  # Cityscapes' leaves: the OCR stage's 19 soft object regions
            norm_cfg=norm_cfg,
            align_corners=False,
            loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
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
            inference='hierahyp',
            embedding_channels=None,  # hierahyp's `proj_head` only trains; the converter drops it
            # leaf cross-entropy, for a fine-tuning run only; testing reads none
            loss_decode=[dict(type='HierarchicalCrossEntropyLoss', levels=[-1])]),
    ])
