"""tools/model_converters/hssn2hseg.py: an HSSN checkpoint, converted and loaded into the
configs/hssn_release/ model, predicts what the release's (and mmseg projects/hssn's) own
code predicts from the same weights.

No release file is downloaded: the reference model is built from mmseg's stock modules
(ResNetV1d, DepthwiseSeparableASPPHead, FCNHead) with random weights in the published
layout (conv_seg channels: leaves by label id, then the parent levels fine to coarse) and
saved as the release saved it (`state_dict` + `meta`, plus its training-only keys). The
converter is depth- and width-agnostic (it permutes conv_seg rows and renames nothing
else), so the model is ResNetV1d-18 with narrow heads instead of ResNetV1d-101: the same
key names, 64 x 64 images, CPU only.
"""
import os.path as osp
import subprocess
import sys

import hseg_mm  # noqa: F401  (before mmseg.models: installs the shims)
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.model.utils import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import nn

from hseg_mm.engine import apply_hierarchy
from hseg_mm.hierarchy import ClassHierarchy
from tool_helpers import load_tool  # noqa: E402  (tests/tools is on the path, as pytest puts it)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = 'tools/model_converters/hssn2hseg.py'
hssn2hseg = load_tool(TOOL, 'hssn2hseg')
init_default_scope('mmseg')

CONFIGS = dict(cityscapes='configs/hssn_release/hssn_release_cityscapes.py',
               pascal_person_part='configs/hssn_release/hssn_release_pascal_person_part.py',
               lip='configs/hssn_release/hssn_release_lip.py')
# (leaves, release channels) of each dataset: Cityscapes 26 = 19 + 7, PPP 12 = 7 + 3 + 2,
# LIP 25 = 20 + 3 + 2 (the release's configs, num_classes).
SIZES = dict(cityscapes=(19, 26), pascal_person_part=(7, 12), lip=(20, 25))

# The release's rule, as its encoder_decoder.py `simple_test` writes it: leaf channels
# [a, b) get the listed parent channels added (``seg_logit[:, 0:2] += seg_logit[:, -7]``,
# ``seg_logit[:, 0:1] = seg_logit[:, 0:1] + seg_logit[:, 7] + seg_logit[:, 10]`` ...);
# projects/hssn's `predict_by_feat` adds the same channels.
RELEASE_GROUPS = dict(
    cityscapes=[(0, 2, [19]), (2, 5, [20]), (5, 8, [21]), (8, 10, [22]), (10, 11, [23]),
                (11, 13, [24]), (13, 19, [25])],
    pascal_person_part=[(0, 1, [7, 10]), (1, 5, [8, 11]), (5, 7, [9, 11])],
    lip=[(0, 1, [20, 23]), (1, 8, [21, 24]), (10, 12, [21, 24]), (13, 16, [21, 24]),
         (8, 10, [22, 24]), (12, 13, [22, 24]), (16, 20, [22, 24])])
# First channel of each parent level, coarsest first: the release's parent channels in the
# groups above, fine to coarse (PPP: 7-9 background / upper / lower, 10-11 background /
# person). A leaf's class at level k is its parent channel there minus this offset.
PARENT_OFFSETS = dict(cityscapes=[19], pascal_person_part=[10, 7], lip=[23, 20])

# Narrow widths of the test model (the R-101 configs: 2048 / 256 / 1024 in, 512 / 48 / 256)
C5, C1, C4 = 512, 64, 256  # ResNetV1d-18's stage outputs read by the heads
HEAD, C1_OUT, AUX = 32, 16, 16


def reference_model(num_leaves: int, num_channels: int) -> nn.Module:
    """The release's model from mmseg's stock modules (names as mmseg 0.11 saved them)."""
    norm = dict(type='BN', requires_grad=True)
    cfg = dict(
        type='EncoderDecoder',
        backbone=dict(type='ResNetV1d', depth=18, num_stages=4, out_indices=(0, 1, 2, 3),
                      dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), norm_cfg=norm,
                      norm_eval=False, style='pytorch', contract_dilation=True),
        decode_head=dict(type='DepthwiseSeparableASPPHead', in_channels=C5, in_index=3,
                         channels=HEAD, dilations=(1, 12, 24, 36), c1_in_channels=C1,
                         c1_channels=C1_OUT, dropout_ratio=0.1, num_classes=num_channels,
                         norm_cfg=norm, align_corners=False),
        auxiliary_head=dict(type='FCNHead', in_channels=C4, in_index=2, channels=AUX,
                            num_convs=1, concat_input=False, dropout_ratio=0.1,
                            num_classes=num_leaves, norm_cfg=norm, align_corners=False),
        test_cfg=dict(mode='whole'))
    model = MODELS.build(cfg)
    torch.manual_seed(num_channels)
    seg = model.decode_head.conv_seg
    seg.weight.data.normal_(0, 1)
    seg.bias.data.normal_(0, 0.5)
    # BN statistics measured on random images (cumulative averages over a few batches), and
    # random affine terms: at mmseg's init with made-up statistics the features come out
    # almost flat across pixels and every pixel gets the same leaf.
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.weight.data.uniform_(0.5, 1.5)
        m.bias.data.normal_(0, 0.1)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model.decode_head(model.extract_feat(torch.randn(2, 3, 64, 64)))
    model.eval()
    # conv_seg scaled so that a probe image's logits vary by about 4 across pixels: maps
    # with many leaves, and room for a softmax over all channels, a sum of logits and a sum
    # of sigmoids to pick different leaves
    with torch.no_grad():
        probe = model.decode_head(model.extract_feat(torch.randn(1, 3, 64, 64))) - \
            seg.bias.view(1, -1, 1, 1)
        seg.weight.data *= 4 / probe.std(dim=(2, 3)).mean()
    return model


def save_as_release(model: nn.Module, path: str) -> None:
    """mmcv 1.x's save_checkpoint layout, with the release head's training-only keys."""
    state_dict = model.state_dict()
    # ProjectionHead(dim_in=C5) 'convmlp': conv, BN, ReLU, conv to 256; `step` buffer
    state_dict['decode_head.proj_head.proj.0.weight'] = torch.randn(C5, C5, 1, 1)
    state_dict['decode_head.proj_head.proj.0.bias'] = torch.randn(C5)
    for name in ('weight', 'bias', 'running_mean', 'running_var'):
        state_dict[f'decode_head.proj_head.proj.1.{name}'] = torch.rand(C5)
    state_dict['decode_head.proj_head.proj.1.num_batches_tracked'] = torch.tensor(80000)
    state_dict['decode_head.proj_head.proj.3.weight'] = torch.randn(256, C5, 1, 1)
    state_dict['decode_head.proj_head.proj.3.bias'] = torch.randn(256)
    state_dict['decode_head.step'] = torch.tensor([80000.0])
    torch.save(dict(meta=dict(mmcv_version='1.3.0', iter=80000, CLASSES=('a', 'b')),
                    state_dict=state_dict,
                    optimizer=dict(state={}, param_groups=[dict(lr=0.01)])), path)


def hseg_model(dataset: str, inference: str = 'hssn_release') -> nn.Module:
    """The configs/hssn_release/ model at the reference's depth and widths."""
    cfg = Config.fromfile(osp.join(ROOT, CONFIGS[dataset]))
    apply_hierarchy(cfg, check_paths=False)
    model_cfg = cfg.model
    model_cfg.backbone.depth = 18
    model_cfg.decode_head.update(in_channels=C5, channels=HEAD, c1_in_channels=C1,
                                 c1_channels=C1_OUT, inference=inference)
    model_cfg.auxiliary_head.update(in_channels=C4, channels=AUX)
    return revert_sync_batchnorm(MODELS.build(model_cfg)).eval()


def release_leaf_scores(ref: nn.Module, x: torch.Tensor, ori_shape: tuple,
                        dataset: str) -> torch.Tensor:
    """The release's test: `whole_inference` (logits resized to the input, then to
    ori_shape), softmax over all channels, `simple_test`'s additions, parents dropped."""
    num_leaves = SIZES[dataset][0]
    logits = ref.encode_decode(x, [dict(img_shape=x.shape[2:])])
    logits = F.interpolate(logits, size=ori_shape, mode='bilinear', align_corners=False)
    probs = logits.softmax(dim=1)
    scores = probs[:, :num_leaves].clone()
    for a, b, parents in RELEASE_GROUPS[dataset]:
        for c in parents:
            scores[:, a:b] += probs[:, c:c + 1]
    return scores


def mmseg_leaf_scores(ref: nn.Module, x: torch.Tensor, ori_shape: tuple,
                      dataset: str) -> torch.Tensor:
    """projects/hssn: raw logits summed at the head's resolution, parents dropped, resized
    to the input (`predict_by_feat`), then to ori_shape (mmseg's `postprocess_result`)."""
    num_leaves = SIZES[dataset][0]
    logits = ref.decode_head(ref.extract_feat(x))
    scores = logits[:, :num_leaves].clone()
    for a, b, parents in RELEASE_GROUPS[dataset]:
        for c in parents:
            scores[:, a:b] += logits[:, c:c + 1]
    scores = F.interpolate(scores, size=x.shape[2:], mode='bilinear', align_corners=False)
    return F.interpolate(scores, size=ori_shape, mode='bilinear', align_corners=False)


def release_levels(leaf: torch.Tensor, dataset: str) -> torch.Tensor:
    """(N, D, H, W) class per level from the release's layout alone: a leaf's parent
    channel at each level minus that level's first channel; the leaf id at the last."""
    num_leaves = SIZES[dataset][0]
    offsets = PARENT_OFFSETS[dataset]
    lut = torch.zeros(len(offsets) + 1, num_leaves, dtype=torch.long)
    lut[-1] = torch.arange(num_leaves)
    for a, b, parents in RELEASE_GROUPS[dataset]:
        for c in parents:
            # the level of channel c: the one whose first channel is the last at or below c
            k = max((off, i) for i, off in enumerate(offsets) if off <= c)[1]
            lut[k, a:b] = c - offsets[k]
    return lut[:, leaf].movedim(0, 1)


def predict(model: nn.Module, x: torch.Tensor, ori_shape: tuple) -> list:
    sample = SegDataSample(metainfo=dict(img_shape=tuple(x.shape[2:]), ori_shape=ori_shape,
                                         pad_shape=tuple(x.shape[2:])))
    with torch.no_grad():
        return model.predict(x, [sample])


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """dataset -> (reference model, path of its converted checkpoint)."""
    out = {}
    folder = tmp_path_factory.mktemp('hssn')
    for dataset, (leaves, channels) in SIZES.items():
        ref = reference_model(leaves, channels)
        src, dst = str(folder / f'{dataset}_release.pth'), str(folder / f'{dataset}.pth')
        save_as_release(ref, src)
        tree = ClassHierarchy(hssn2hseg.DATASET_TREES[dataset])
        checkpoint = torch.load(src, map_location='cpu', weights_only=False)
        torch.save(hssn2hseg.convert_checkpoint(checkpoint, tree, src), dst)
        out[dataset] = ref, dst
    return out


# original sizes: as the input (the test pipeline keeps the size), and a rescaled image
# (the pipeline shrank a 96 x 80 image to the 64 x 64 input)
@pytest.mark.parametrize('ori_shape', [(64, 64), (96, 80)])
@pytest.mark.parametrize('dataset', sorted(SIZES))
def test_converted_release_predicts_as_the_release(dataset, ori_shape, converted):
    ref, path = converted[dataset]
    model = hseg_model(dataset)
    # strict: every key of the hseg-mm model is in the file and no other
    load_checkpoint(model, path, map_location='cpu', strict=True)
    torch.manual_seed(1)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = release_leaf_scores(ref, x, ori_shape, dataset)
    result = predict(model, x, ori_shape)[0]
    assert result.seg_logits.data.shape == expected[0].shape
    assert torch.allclose(result.seg_logits.data, expected[0], atol=1e-5)
    leaf = expected.argmax(dim=1)
    assert torch.equal(result.pred_sem_seg.data, leaf)
    assert torch.equal(result.pred_level_seg.data, release_levels(leaf, dataset)[0])

    # path_sum (per-level sigmoids) on the same weights predicts other leaves somewhere:
    # were hssn_release to drift back to it, the check above would fail
    model.decode_head.inference = 'path_sum'
    other = predict(model, x, ori_shape)[0].pred_sem_seg.data
    assert (other != leaf).any()


@pytest.mark.parametrize('ori_shape', [(64, 64), (96, 80)])
def test_converted_projects_hssn_predicts_as_projects_hssn(ori_shape, converted):
    # mmseg projects/hssn ships Cityscapes only; its file has the release's keys and layout
    ref, path = converted['cityscapes']
    model = hseg_model('cityscapes', inference='hssn_mmseg')
    load_checkpoint(model, path, map_location='cpu', strict=True)
    torch.manual_seed(2)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = mmseg_leaf_scores(ref, x, ori_shape, 'cityscapes')
        release = release_leaf_scores(ref, x, ori_shape, 'cityscapes')
    result = predict(model, x, ori_shape)[0]
    assert torch.allclose(result.seg_logits.data, expected[0], atol=1e-4)
    leaf = expected.argmax(dim=1)
    assert torch.equal(result.pred_sem_seg.data, leaf)
    assert torch.equal(result.pred_level_seg.data, release_levels(leaf, 'cityscapes')[0])
    # the two HSSN rules are different rules: on these weights they part somewhere
    assert (release.argmax(dim=1) != leaf).any()


def test_release_channel_order_by_hand():
    # Cityscapes: release channels 0..18 = leaves by trainId, 19..25 = flat, construction,
    # object, nature, sky's parent, human, vehicle (simple_test's -7 .. -1).
    tree = ClassHierarchy('cityscapes_hssn')
    names = [tree.node_names[v] for v in hssn2hseg.release_channel_order(tree)]
    assert names[:19] == tree.leaf_names
    assert names[19:] == ['flat', 'construction', 'object', 'nature', 'sky_l1', 'human',
                          'vehicle']
    # PASCAL-Person-Part: 7 leaves, 7..9 background / upper / lower, 10..11 background / person
    tree = ClassHierarchy('pascal_person_part_hssn')
    names = [tree.node_names[v] for v in hssn2hseg.release_channel_order(tree)]
    assert names[7:] == ['background_l2', 'upper_body', 'lower_body', 'background_l1', 'body']


def test_refuses_a_tree_with_shallow_leaves():
    # today's person tree has one background node: the release's three background channels
    # would have nowhere to go
    with pytest.raises(hssn2hseg.ConversionError, match=r"leaves \['background'\] sit above"):
        hssn2hseg.release_channel_order(ClassHierarchy('pascal_person_part'))


def test_refuses_shapes_that_do_not_fit(converted):
    # a PASCAL-Person-Part file (12 channels) converted as LIP (25 nodes)
    state_dict = converted['pascal_person_part'][0].state_dict()
    with pytest.raises(hssn2hseg.ConversionError,
                       match=r'ppp.pth: decode_head.conv_seg.weight has shape \(12, 32, 1, 1\), '
                             r'but .* needs \(25, 32, 1, 1\)'):
        hssn2hseg.convert_hssn(state_dict, ClassHierarchy('lip_hssn'), 'ppp.pth')
    del state_dict['backbone.stem.0.weight']
    with pytest.raises(hssn2hseg.ConversionError, match="no key 'backbone.stem.0.weight'"):
        hssn2hseg.convert_hssn(state_dict, ClassHierarchy('pascal_person_part_hssn'), 'x.pth')


def test_command_line(tmp_path):
    # the tool as a command: drops the training-only keys and the optimiser, writes the tree
    ref = reference_model(7, 12)
    src, dst = str(tmp_path / 'release.pth'), str(tmp_path / 'converted.pth')
    save_as_release(ref, src)
    run = subprocess.run([sys.executable, osp.join(ROOT, TOOL), src, dst, '--dataset',
                          'pascal_person_part'], capture_output=True, text=True, timeout=300,
                         cwd=ROOT)
    assert run.returncode == 0, run.stderr
    checkpoint = torch.load(dst, map_location='cpu', weights_only=False)
    assert set(checkpoint) == {'meta', 'state_dict'}
    tree = ClassHierarchy('pascal_person_part_hssn')
    assert ClassHierarchy(checkpoint['meta']['hierarchy']).same_tree(tree)
    keys = set(checkpoint['state_dict'])
    assert not any(k.startswith('decode_head.proj_head') or k == 'decode_head.step' for k in keys)
    # every other key kept, plus the tree
    assert keys == set(ref.state_dict()) | {'_extra_state'}
    run = subprocess.run([sys.executable, osp.join(ROOT, TOOL), src, dst, '--dataset', 'lip'],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode != 0
    assert 'decode_head.conv_seg.weight has shape (12, 32, 1, 1)' in run.stderr
    # --config: this ResNetV1d-18 file does not fit the ResNetV1d-101 config's model; the
    # first key that differs: layer1's first block, a 3x3 basic-block conv here, a 1x1
    # bottleneck conv there
    run = subprocess.run([sys.executable, osp.join(ROOT, TOOL), src, dst, '--dataset',
                          'pascal_person_part', '--config', CONFIGS['pascal_person_part']],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode != 0
    assert ('backbone.layer1.0.conv1.weight has shape (64, 64, 3, 3), but the model of '
            'configs/hssn_release/hssn_release_pascal_person_part.py needs (64, 64, 1, 1)'
            ) in run.stderr
