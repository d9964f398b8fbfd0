"""The environment `make` builds: mmseg imports, hseg_mm registers, a model runs on CPU."""
import importlib

import pytest
import torch


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
    from hseg_mm.compat import has_compiled_mmcv_ops
    if has_compiled_mmcv_ops():
        pytest.skip('full mmcv installed: no stand-in')
    from mmcv.ops import DeformConv2d
    with pytest.raises(RuntimeError, match='needs full mmcv'):
        DeformConv2d(3, 3, 3)


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
