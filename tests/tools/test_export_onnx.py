"""tools/export_onnx.py and tools/check_onnx.py on the demo config, through the real tools.

The demo config is trained 2 iterations on 4 generated images, exported once with
dynamic height and width, and checked on the 3 validation images at 128x128 (the
config's split) and resized to 96x160 (a folder): onnxruntime must give the same class
at every pixel of every level as torch, and leaf scores within 1e-4. A 4-level tree with
shuffled ids (tests/tools/test_own_data.py's) is exported from a freshly initialised
model: predictions need no training to be compared. ~2 min on 2 CPU cores.
"""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import onnx
import pytest
import torch
from torch import nn

from hseg_mm.datasets.synthetic_people import make_synthetic_people
from tool_helpers import demo_options

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'demo_cpu.py')
OTHER_SIZE = (96, 160)  # (H, W); the demo trains and tests at 128x128
# 4 levels; leaves at depths 1, 3 and 4; ids in no tree order (as test_own_data.py)
TREE_YAML = """\
background: 3
person:
  upper:
    head: 6
    trunk: {torso: 0}
    arm: {upper_arm: 5, lower_arm: 1}
  lower:
    leg: {upper_leg: 2, lower_leg: 4}
"""


def _run(args: list, expect_rc: int = 0) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1'))
    assert proc.returncode == expect_rc, f'{args}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    return proc.stdout + proc.stderr


def _check(onnx_path: str, checkpoint: str, json_path: str, *extra: str) -> dict:
    _run(['tools/check_onnx.py', CONFIG, checkpoint, onnx_path, '--threads', '1',
          '--rounds', '1', '--json', json_path, *extra])
    with open(json_path) as f:
        return json.load(f)


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'hseg_export_onnx', osp.join(ROOT, 'tools', 'export_onnx.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _input_dims(path: str) -> list:
    dims = onnx.load(path).graph.input[0].type.tensor_type.shape.dim
    return [d.dim_param or d.dim_value for d in dims]


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> dict:
    """Synthetic people (4 train, 3 val at 128x128) and the val images at OTHER_SIZE."""
    root = str(tmp_path_factory.mktemp('people'))
    make_synthetic_people(root, num_train=4, num_val=3, size=(128, 128), seed=1)
    resized = osp.join(root, 'val_resized')
    os.makedirs(resized)
    with open(osp.join(root, 'val_id.txt')) as f:
        names = f.read().split()
    for name in names:
        image = cv2.imread(osp.join(root, 'JPEGImages', name + '.jpg'))
        # PNG: no JPEG re-encoding between what the two engines read
        cv2.imwrite(osp.join(resized, name + '.png'),
                    cv2.resize(image, OTHER_SIZE[::-1], interpolation=cv2.INTER_LINEAR))
    return dict(root=root, resized=resized)


@pytest.fixture(scope='module')
def exported(data, tmp_path_factory) -> dict:
    """The demo config trained 2 iterations (iter_2.pth) and exported with dynamic H, W."""
    work = str(tmp_path_factory.mktemp('work'))
    _run(['tools/train.py', CONFIG, '--work-dir', work,
          '--cfg-options', *demo_options(data['root'], 2)])
    checkpoint = osp.join(work, 'iter_2.pth')
    out = osp.join(work, 'demo.onnx')
    log = _run(['tools/export_onnx.py', CONFIG, checkpoint, out])
    assert 'output level_labels: int64 (batch, 3, height, width)' in log
    return dict(checkpoint=checkpoint, onnx=out, work=work)


def test_dynamic_export_matches_torch_at_two_sizes(data, exported):
    assert _input_dims(exported['onnx']) == ['batch', 3, 'height', 'width']
    meta = {p.key: p.value for p in onnx.load(exported['onnx']).metadata_props}
    assert meta['inference_rule'] == 'tree_min'
    assert json.loads(meta['level_names'])[1] == ['background', 'upper_body', 'lower_body']

    # the config's validation split (3 images, 128x128)
    figures = _check(exported['onnx'], exported['checkpoint'],
                     osp.join(exported['work'], 'val.json'),
                     '--cfg-options', *demo_options(data['root'], 2))
    assert figures['images'] == 3 and figures['sizes'] == ['128x128']
    assert figures['pixels_per_level'] == 3 * 128 * 128
    assert figures['differing_pixels'] == [0, 0, 0]  # L1, L2, L3
    assert figures['max_abs_score_diff'] <= 1e-4 and figures['ok']

    # the same graph on another size
    figures = _check(exported['onnx'], exported['checkpoint'],
                     osp.join(exported['work'], 'resized.json'), '--images', data['resized'])
    assert figures['sizes'] == ['96x160'] and figures['pixels_per_level'] == 3 * 96 * 160
    assert figures['differing_pixels'] == [0, 0, 0]
    assert figures['max_abs_score_diff'] <= 1e-4
    assert set(figures['images_per_s']) == {'torch', 'onnxruntime'}


def test_fixed_size_export(data, exported, tmp_path):
    out = str(tmp_path / 'fixed.onnx')
    _run(['tools/export_onnx.py', CONFIG, exported['checkpoint'], out,
          '--shape', str(OTHER_SIZE[0]), str(OTHER_SIZE[1]), '--batch', '1'])
    assert _input_dims(out) == [1, 3, 96, 160]
    figures = _check(out, exported['checkpoint'], str(tmp_path / 'fixed.json'),
                     '--images', data['resized'])
    assert figures['differing_pixels'] == [0, 0, 0]
    # a 128x128 image does not fit: one line naming the image and the exported size
    image = osp.join(data['root'], 'JPEGImages', sorted(os.listdir(data['resized']))[0][:-4]
                     + '.jpg')
    log = _run(['tools/check_onnx.py', CONFIG, exported['checkpoint'], out, '--images', image],
               expect_rc=1)
    assert 'is 128x128' in log and 'exported for 96x160 only' in log


def _untrained_checkpoint(path: str, cfg_options: dict, config: str = CONFIG) -> str:
    """A checkpoint of a model as built (seed 0), naming its tree as training does.

    A Poincare-ball classifier's hyperplane points start at the origin, where the Moebius
    terms vanish; they are moved to random points in the ball, so the check covers them.
    """
    import torch
    from mmengine.registry import init_default_scope
    from mmengine.runner import save_checkpoint
    from mmseg.registry import MODELS

    from hseg_mm.engine import load_config
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(load_config(config, cfg_options, check_data=False).model)
    classifier = getattr(model.decode_head, 'classifier', None)
    if classifier is not None:
        with torch.no_grad():
            classifier.points.normal_(0, 0.1)  # norm ~0.1 sqrt(64) = 0.8: inside the ball
    save_checkpoint(dict(meta=dict(hierarchy=model.hierarchy.to_dict()),
                         state_dict=model.state_dict()), path)
    return path


def test_check_fails_on_other_weights(data, exported, tmp_path):
    # the trained model's graph against untrained weights of the same tree
    checkpoint = _untrained_checkpoint(str(tmp_path / 'init.pth'), {})
    json_path = str(tmp_path / 'other.json')
    log = _run(['tools/check_onnx.py', CONFIG, checkpoint, exported['onnx'], '--images',
                data['resized'], '--rounds', '1', '--json', json_path], expect_rc=1)
    assert 'FAILED: ' in log
    with open(json_path) as f:
        figures = json.load(f)
    assert figures['max_abs_score_diff'] > 1e-4 and not figures['ok']


def test_four_level_tree_with_shuffled_ids(data, tmp_path):
    tree = tmp_path / 'tree.yaml'
    tree.write_text(TREE_YAML)
    checkpoint = _untrained_checkpoint(str(tmp_path / 'init.pth'), dict(hierarchy=str(tree)))

    out = str(tmp_path / 'tree4.onnx')
    log = _run(['tools/export_onnx.py', CONFIG, checkpoint, out,
                '--cfg-options', f'hierarchy={tree}'])
    # 7 leaves; levels: background, person / background, upper, lower / ... / leaves
    assert 'output leaf_scores: float32 (batch, 7, height, width)' in log
    assert 'output level_labels: int64 (batch, 4, height, width)' in log
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    # leaf names by label id: torso=0, lower_arm=1, upper_leg=2, background=3, ...
    assert json.loads(meta['leaf_names']) == ['torso', 'lower_arm', 'upper_leg', 'background',
                                              'lower_leg', 'upper_arm', 'head']
    figures = _check(out, checkpoint, str(tmp_path / 'tree4.json'), '--images', data['resized'],
                     '--cfg-options', f'hierarchy={tree}')
    assert figures['differing_pixels'] == [0, 0, 0, 0]  # L1..L4
    assert figures['max_abs_score_diff'] <= 1e-4

    # the person-tree config refuses this checkpoint before exporting anything
    log = _run(['tools/export_onnx.py', CONFIG, checkpoint, str(tmp_path / 'no.onnx')],
               expect_rc=1)
    assert 'was trained on another tree' in log
    assert not osp.exists(tmp_path / 'no.onnx')


def test_poincare_classifier_exports(data, tmp_path):
    # The hyperbolic demo (flat rule, Poincare-ball classifier): the classifier maps into
    # the ball with c as a Python float, so nothing branches on a tensor's value.
    config = osp.join(ROOT, 'configs', 'hyperbolic_demo_cpu.py')
    checkpoint = _untrained_checkpoint(str(tmp_path / 'init.pth'), {}, config)
    out = str(tmp_path / 'hyperbolic.onnx')
    log = _run(['tools/export_onnx.py', config, checkpoint, out])
    assert 'flat rule' in log
    _run(['tools/check_onnx.py', config, checkpoint, out, '--images', data['resized'],
          '--threads', '1', '--rounds', '1', '--json', str(tmp_path / 'h.json')])
    with open(tmp_path / 'h.json') as f:
        figures = json.load(f)
    assert figures['differing_pixels'] == [0, 0, 0]
    assert figures['max_abs_score_diff'] <= 1e-4 and figures['ok']


class _Upsampler(nn.Module):
    """mmseg's Upsample x2 (HRNet's fuse layers), then back to the input size."""

    def __init__(self) -> None:
        super().__init__()
        from mmseg.models.utils import Upsample
        self.up = Upsample(scale_factor=2, mode='bilinear', align_corners=False)

    def forward(self, image):
        from mmseg.models.utils import resize
        return (resize(self.up(image), size=image.shape[2:], mode='bilinear',
                       align_corners=False), )


def test_upsample_exports_for_every_size(tmp_path):
    tool = _load_tool()
    from torch.export import Dim
    from mmseg.models.utils import Upsample
    model = _Upsampler().eval()
    dynamic = {'image': {0: Dim('batch'), 2: Dim('height', min=2), 3: Dim('width', min=2)}}
    example = torch.rand(2, 3, 16, 16)
    # Upsample sizes its output int(16 * 2.0): torch.export refuses to fix that at 32
    with pytest.raises(Exception, match='Constraints violated'):
        torch.export.export(model, (example, ), dynamic_shapes=dynamic, strict=False)
    # with the integer product (what OnnxSegmentor installs) it holds for every size,
    # and gives what mmseg's forward gives, bit for bit
    image = torch.rand(1, 3, 5, 7)
    expected = Upsample.forward(model.up, image)
    model.up.forward = tool._symbolic_upsample_forward.__get__(model.up)
    assert torch.equal(model.up(image), expected) and expected.shape[2:] == (10, 14)
    program = torch.export.export(model, (example, ), dynamic_shapes=dynamic, strict=False)
    path = str(tmp_path / 'up.onnx')
    torch.onnx.export(program, f=None, dynamo=True, input_names=['image'],
                      output_names=['leaf_scores']).save(path)
    assert tool.verify(model, path, [(12, 20), (7, 9)]) <= 1e-4


def test_verify_refuses_a_graph_fixed_at_the_example_size(tmp_path):
    tool = _load_tool()
    model = _Upsampler().eval()
    path = str(tmp_path / 'fixed.onnx')
    # what torch.onnx.export's own capture does with Upsample: the int() guard becomes a
    # runtime assertion, dropped, so the x2 image is always 32x32
    with torch.no_grad():
        torch.onnx.export(model, (torch.rand(2, 3, 16, 16), ), f=None, dynamo=True,
                          input_names=['image'], output_names=['leaf_scores'],
                          dynamic_shapes={'image': {0: 'batch', 2: 'height', 3: 'width'}}
                          ).save(path)
    assert tool.verify(model, path, [(16, 16)]) <= 1e-4  # right at the example's size
    with pytest.raises(tool.ExportError, match='wrong at 12x20'):
        tool.verify(model, path, [(12, 20)])


@pytest.mark.parametrize('rule', ['hssn_release', 'hierahyp'])
def test_release_rule_is_applied_in_the_graph_function(rule):
    # Both rules are applied after the resize to the original image, so the head's
    # encode_decode hands on the 12 node logits; the graph's input is the original image,
    # and the graph function applies the rule itself: it returns what predict returns.
    from mmengine.config import ConfigDict
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    tool = _load_tool()
    norm = dict(type='BN')
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(
        type='HierarchicalEncoderDecoder', hierarchy='pascal_person_part_hssn',
        backbone=dict(type='ResNetV1d', depth=18, out_indices=(0, 1, 2, 3),
                      dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), norm_cfg=norm),
        decode_head=dict(type='HierarchicalDepthwiseSeparableASPPHead', in_channels=512,
                         in_index=3, channels=16, dilations=(1, 6), c1_in_channels=64,
                         c1_channels=8, norm_cfg=norm, inference=rule,
                         embedding_channels=None,
                         loss_decode=[dict(type='FocalTreeMinLoss')]),
        test_cfg=dict(mode='whole'))).eval()
    image = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        leaf, levels = tool.OnnxSegmentor(model)(image)
        sample = model.predict(image)[0]  # no data sample: the input is the original size
    assert leaf.shape == (1, 7, 64, 64)  # 7 leaves, not the 12 node channels
    assert torch.allclose(leaf[0], sample.seg_logits.data, atol=1e-6)
    assert torch.equal(levels[0], sample.pred_level_seg.data)
