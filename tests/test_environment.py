"""The environment `make` builds: mmseg imports, hseg_mm registers, a model runs on CPU."""
import importlib

import pytest
import torch

from hseg_mm.compat import has_compiled_mmcv_ops


def test_mmseg_models_import():
    import mmseg.models  # noqa: F401  (needs hseg_mm.compat with mmcv-lite)
    from mmseg.models.utils import point_sample  # noqa: F401


def test_no_broken_torchvision():
    try:
        importlib.import_module('torchvision')
    except ModuleNotFoundError:
        return  # the CPU set-up installs none
    except RuntimeError as err:  # a CUDA torchvision next to a CPU torch
        pytest.fail(f'torchvision is installed but broken: {err}')


def test_point_sample_stand_in():
    from hseg_mm.compat import point_sample
    x = torch.arange(4.).view(1, 1, 2, 2)  # [[0, 1], [2, 3]]
    # the centre of pixel (x=1, y=0) is at (0.75, 0.25) in [0, 1] coordinates
    out = point_sample(x, torch.tensor([[[0.75, 0.25], [0.5, 0.5]]]))
    # and the image centre is the mean of the four pixels, 1.5
    assert out.shape == (1, 1, 2)
    assert torch.allclose(out.flatten(), torch.tensor([1.0, 1.5]))


def test_missing_op_says_full_mmcv_is_needed():
    from mmcv.ops import DeformConv2d
    if has_compiled_mmcv_ops():  # full mmcv: the real layer builds
        assert DeformConv2d.__module__ == 'mmcv.ops.deform_conv'
        assert DeformConv2d(3, 3, 3).weight.shape == (3, 3, 3, 3)
        return
    with pytest.raises(RuntimeError, match='needs full mmcv'):
        DeformConv2d(3, 3, 3)


def test_mmcv_ops_stand_in_only_with_mmcv_lite():
    """The stand-in with mmcv-lite; mmcv's own compiled ops with full mmcv (make test-full-mmcv)."""
    import os
    import sys

    import mmcv
    import mmcv.ops
    # mmseg's PointRend and mask utilities call the point_sample this module imported
    from mmseg.models.utils.point_sample import point_sample as mmseg_point_sample
    ops = sys.modules['mmcv.ops']
    assert mmcv.ops is ops
    if not has_compiled_mmcv_ops():
        assert ops.__spec__ is None and ops.__doc__.startswith('hseg_mm stand-in')
        assert ops.point_sample.__module__ == 'hseg_mm.compat'
        assert mmseg_point_sample.__module__ == 'hseg_mm.compat'
        return
    # full mmcv: the package's own mmcv/ops, untouched by hseg_mm.compat
    assert ops.__spec__ is not None and 'stand-in' not in (ops.__doc__ or '')
    assert os.path.dirname(ops.__file__) == os.path.join(os.path.dirname(mmcv.__file__), 'ops')
    assert ops.point_sample.__module__ == 'mmcv.ops.point_sample'
    assert mmseg_point_sample is ops.point_sample
    # a compiled op runs: boxes 0 and 1 overlap with IoU 81 / 119 = 0.68 > 0.5, so NMS
    # drops the lower-scored box 1 and keeps the disjoint box 2
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [20., 20., 30., 30.]])
    dets, keep = ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
    assert keep.tolist() == [0, 2] and dets.shape == (2, 5)


@pytest.mark.skipif(not has_compiled_mmcv_ops(),
                    reason='mmcv-lite: no mmcv ops to compare the stand-in with')
def test_point_sample_matches_full_mmcv():
    from mmcv.ops import point_sample as mmcv_point_sample
    from mmcv.ops import roi_align

    from hseg_mm.compat import point_sample
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 9, 13, generator=gen)
    for points in (torch.rand(2, 50, 2, generator=gen), torch.rand(2, 4, 5, 2, generator=gen)):
        for align_corners in (False, True):
            ours = point_sample(x, points, align_corners=align_corners)
            # mmcv's point_sample is Python too: the same grid_sample of points * 2 - 1
            # (2 * p and p * 2 round alike), so the two agree bit for bit
            assert torch.equal(ours, mmcv_point_sample(x, points, align_corners=align_corners))
    # Against a compiled op: roi_align with a 1x1 output, one sample per bin and aligned=True
    # samples one bilinear point, the box centre, at pixel-index coordinates (c - 0.5); that is
    # point_sample at c / size (align_corners=False). Centres stay between the outermost
    # pixel centres, where neither op pads. Both interpolate values in [0, 1) in float32
    # with different rounding: each differs from the exact value by a few float32 ulps
    # (about 1e-7), so 1e-5 leaves a margin of 100x and still catches a half-pixel shift
    # (about 0.1 on random data).
    h, w = x.shape[2:]
    centres = torch.rand(2, 20, 2, generator=gen) * torch.tensor([w - 1., h - 1.]) + 0.5
    half = torch.rand(2, 20, 2, generator=gen) * 3
    rois = torch.cat([torch.arange(2.).repeat_interleave(20)[:, None],
                      (centres - half).flatten(0, 1), (centres + half).flatten(0, 1)], 1)
    compiled = roi_align(x, rois, (1, 1), 1.0, 1, 'avg', True)  # (40, C, 1, 1)
    ours = point_sample(x, centres / torch.tensor([w, h]))  # (2, C, 20)
    assert torch.allclose(ours.permute(0, 2, 1).flatten(0, 1), compiled.flatten(1), atol=1e-5)


def test_build_mmseg_deeplabv3plus_forward():
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    norm = dict(type='BN', requires_grad=True)
    model = MODELS.build(dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', size=(64, 64)),
        backbone=dict(type='ResNetV1c', depth=18, out_indices=(0, 1, 2, 3),
                      dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), norm_cfg=norm),
        decode_head=dict(type='DepthwiseSeparableASPPHead', in_channels=512, in_index=3,
                         channels=32, dilations=(1, 12, 24, 36), c1_in_channels=64,
                         c1_channels=8, num_classes=7, norm_cfg=norm, align_corners=False,
                         loss_decode=dict(type='CrossEntropyLoss')),
        test_cfg=dict(mode='whole')))
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 64), mode='tensor')
    assert out.shape == (2, 7, 16, 16) and torch.isfinite(out).all()


def test_import_registers_nothing_twice():
    import sys

    import hseg_mm
    from mmseg.registry import MODELS
    ops = sys.modules.get('mmcv.ops')
    models = dict(MODELS.module_dict)
    safe = list(torch.serialization.get_safe_globals())
    importlib.reload(hseg_mm.compat)
    hseg_mm.compat.apply()  # idempotent: a second application changes nothing
    assert sys.modules.get('mmcv.ops') is ops  # the stand-in (or full mmcv's ops) is kept
    assert dict(MODELS.module_dict) == models
    assert len(torch.serialization.get_safe_globals()) == len(safe)
