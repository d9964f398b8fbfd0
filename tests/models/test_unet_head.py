"""UNetHead: segmentation_models_pytorch's U-Net decoder as an mmseg head."""
import hseg_mm  # noqa: F401  (before mmseg.models: installs the shims)
import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

init_default_scope('mmseg')

# EfficientNet-Lite0's five features for a 64x64 input: strides 2, 4, 8, 16, 32
CHANNELS = [16, 24, 40, 112, 320]


def lite0_feats(h: int = 64, w: int = 64):
    torch.manual_seed(0)
    # ceil, as 'same' padding gives: 75 -> 38 -> 19 -> 10 -> 5 -> 3
    sizes, size = [], (h, w)
    for _ in CHANNELS:
        size = tuple(-(-s // 2) for s in size)
        sizes.append(size)
    return [torch.randn(2, c, *s) for c, s in zip(CHANNELS, sizes)]


def unet(**kwargs):
    cfg = dict(type='UNetHead', in_channels=CHANNELS, in_index=[0, 1, 2, 3, 4], num_classes=7,
               norm_cfg=dict(type='BN'))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def test_smp_default_layout_reaches_full_resolution():
    head = unet()
    # smp's Unet on a 5-stage encoder: blocks 320+112 -> 256, 256+40 -> 128, 128+24 -> 64,
    # 64+16 -> 32, 32 (no skip) -> 16; a 3x3 scorer on 16 channels
    assert [b.conv1.conv.in_channels for b in head.blocks] == [432, 296, 152, 80, 32]
    assert [b.conv2.conv.out_channels for b in head.blocks] == [256, 128, 64, 32, 16]
    assert head.channels == 16 and head.conv_seg.kernel_size == (3, 3)
    assert head(lite0_feats()).shape == (2, 7, 64, 64)


def test_odd_input_follows_the_skips():
    # 75x101: features 38x51 ... 3x4; each block takes its skip's size, the last doubles
    out = unet()(lite0_feats(75, 101))
    assert out.shape == (2, 7, 76, 102)


def test_one_by_one_scorer_and_fewer_blocks():
    head = unet(in_channels=CHANNELS[1:], in_index=[1, 2, 3, 4],
                decoder_channels=[64, 32, 16], cls_kernel_size=1)
    # strides 4..32 and three blocks, one per skip: output at stride 4 (64 / 4 = 16)
    assert head(lite0_feats()).shape == (2, 7, 16, 16)
    assert head.conv_seg.kernel_size == (1, 1)


def test_bad_arguments():
    with pytest.raises(ValueError, match='at least'):
        unet(decoder_channels=[64, 32, 16])  # 4 skips, 3 blocks
    with pytest.raises(ValueError, match='last decoder width'):
        unet(channels=32)


def test_hierarchical_unet_scores_every_node(person_tree):
    head = MODELS.build(dict(
        type='HierarchicalUNetHead', hierarchy=person_tree, in_channels=CHANNELS,
        in_index=[0, 1, 2, 3, 4], norm_cfg=dict(type='BN'), embedding_channels=None,
        loss_decode=[dict(type='FocalTreeMinLoss')]))
    # person tree: 10 nodes, scored at full resolution by the 3x3 scorer
    assert head(lite0_feats()).shape == (2, 10, 64, 64)
    assert head.conv_seg.out_channels == 10
