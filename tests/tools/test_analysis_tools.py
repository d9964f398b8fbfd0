"""tools/analysis/: get_flops.py, confusion_matrix.py, plot_curves.py and amp_error.py.

get_flops runs on the demo config; confusion_matrix on a hand-made 2-image test set with
hand-made predictions (matrices worked out below), then on a real `tools/test.py --out`
run of a 2-iteration demo checkpoint; plot_curves on a hand-written scalars.json.
"""
import csv
import importlib.util
import json
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from hseg_mm.datasets.synthetic_people import make_synthetic_people
from hseg_mm.engine import ConfigError
from hseg_mm.engine.launch import load_config, skip_pretrained
from hseg_mm.evaluation.metrics.hierarchical_iou_metric import confusion_to_metrics
from tool_helpers import demo_options

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'configs', 'demo_cpu.py')


def _load(name: str):
    path = osp.join(ROOT, 'tools', 'analysis', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'hseg_analysis_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(args: list, expect_rc: int = 0, timeout: int = 300) -> str:
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == expect_rc, \
        f'{args}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    return proc.stdout + proc.stderr


# ------------------------------------------------------------------ get_flops.py
def test_get_flops_counts_every_parameter_and_the_node_classifier(capsys):
    get_flops = _load('get_flops')
    result = get_flops.main([DEMO])
    out = capsys.readouterr().out
    assert result['input_shape'] == (128, 128)  # the demo's crop_size
    assert 'Input shape: (128, 128)' in out and f'Flops: {result["flops_str"]}' in out

    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    cfg = load_config(DEMO, check_data=False)
    skip_pretrained(cfg)
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)  # the demo has no auxiliary head: nothing left out
    assert result['params'] == sum(p.numel() for p in model.parameters())
    assert result['auxiliary_params'] == 0
    # projection: ConvModule(64, 64, 1) = 4096 weights (no bias: BN follows) + 2 * 64 BN,
    # then Conv2d(64, 64, 1) = 4096 + 64 bias -> 4224 + 4160 = 8384, run only in training
    assert result['training_only'] == {'decode_head.projection': 8384}
    assert result['flops'] > 0
    assert get_flops.main([DEMO])['flops'] == result['flops']  # deterministic

    # the head's forward is counted up to the node logits: conv_seg scores all 10 tree
    # nodes from 64 channels at 1/4 of 128 x 128: 32 * 32 * 64 * 10 = 655,360 FLOPs
    from mmengine.analysis import FlopAnalyzer
    model, _ = get_flops.build_model(cfg)
    inputs = get_flops.random_inputs(model, (128, 128))
    with torch.no_grad():
        analyzer = FlopAnalyzer(model, inputs)
        assert analyzer.by_module()['decode_head.conv_seg'] == 32 * 32 * 64 * 10
        assert analyzer.total() == result['flops']


def test_get_flops_shape_argument():
    get_flops = _load('get_flops')
    cfg = load_config(DEMO, check_data=False)
    assert get_flops.input_shape(cfg, [96]) == (96, 96)
    assert get_flops.input_shape(cfg, [64, 96]) == (64, 96)
    assert get_flops.input_shape(cfg, None) == (128, 128)
    with pytest.raises(ConfigError, match='--shape takes H W'):
        get_flops.input_shape(cfg, [1, 2, 3])
    cfg.pop('crop_size')
    cfg.model.data_preprocessor.pop('size')
    with pytest.raises(ConfigError, match='no crop_size'):
        get_flops.input_shape(cfg, None)


# ------------------------------------------------------------ confusion_matrix.py
TINY_CONFIG = """
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
hierarchy = dict(background=0, animal=dict(cat=1, dog=2))
test_dataloader = dict(dataset=dict(
    type='HierarchicalSegDataset', data_root={root!r}, img_suffix='.png',
    seg_map_suffix='.png', data_prefix=dict(img_path='images', seg_map_path='labels'),
    pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadCheckedAnnotations'),
              dict(type='PackSegInputs')]))
"""
# Levels of that tree: L1 = [background, animal], L2 = [background, cat, dog].
GT = {'a': [[0, 1, 1], [2, 2, 255]], 'b': [[0, 0, 1], [1, 2, 2]]}  # leaf ids, 255 ignored
PRED_L2 = {'a': [[0, 1, 2], [2, 1, 0]], 'b': [[0, 0, 1], [1, 2, 2]]}
# L1 as a level_argmax model may predict it: a[1][1] is background although L2 says cat.
PRED_L1 = {'a': [[0, 1, 1], [1, 0, 1]], 'b': [[0, 0, 1], [1, 1, 1]]}
# (gt, pred) pairs, a's ignored pixel left out:
# L2: a (0,0) (1,1) (1,2) (2,2) (2,1); b (0,0) (0,0) (1,1) (1,1) (2,2) (2,2)
#     background [3, 0, 0]; cat [0, 1 + 2, 1]; dog [0, 1, 1 + 2]
# L1: a (0,0) (1,1) (1,1) (1,1) (1,0); b (0,0) (0,0) (1,1) (1,1) (1,1) (1,1)
#     background [3, 0]; animal [1, 3 + 4] -> rows 100/0 % and 12.5/87.5 %
# (L1 derived from the L2 map would have been animal [0, 8]: the file is read as given.)
EXPECTED = [np.array([[3, 0], [1, 7]]), np.array([[3, 0, 0], [0, 3, 1], [0, 1, 3]])]


@pytest.fixture
def tiny_test_set(tmp_path):
    """A config, its 2-image test set and a prediction folder as test.py --out writes."""
    for folder in ('images', 'labels', 'pred/L1', 'pred/L2'):
        (tmp_path / folder).mkdir(parents=True)
    for name in GT:
        Image.fromarray(np.full((2, 3, 3), 128, np.uint8)).save(tmp_path / 'images' / f'{name}.png')
        Image.fromarray(np.array(GT[name], np.uint8)).save(tmp_path / 'labels' / f'{name}.png')
        for level, pred in (('L1', PRED_L1), ('L2', PRED_L2)):
            Image.fromarray(np.array(pred[name], np.uint8)).save(
                tmp_path / 'pred' / level / f'{name}.png')
    config = tmp_path / 'tiny.py'
    config.write_text(TINY_CONFIG.format(root=str(tmp_path)))
    return str(config), tmp_path


def test_confusion_matrix_of_a_hand_made_prediction(tiny_test_set, capsys):
    config, root = tiny_test_set
    matrices = _load('confusion_matrix').main([config, str(root / 'pred'), str(root / 'cm')])
    assert [m.tolist() for m in matrices] == [m.tolist() for m in EXPECTED]
    assert sorted(os.listdir(root / 'cm')) == [
        'confusion_matrix_L1.csv', 'confusion_matrix_L1.png',
        'confusion_matrix_L2.csv', 'confusion_matrix_L2.png']
    with open(root / 'cm' / 'confusion_matrix_L2.csv') as f:
        assert list(csv.reader(f)) == [['gt \\ pred', 'background', 'cat', 'dog'],
                                       ['background', '3', '0', '0'], ['cat', '0', '3', '1'],
                                       ['dog', '0', '1', '3']]
    with Image.open(root / 'cm' / 'confusion_matrix_L1.png') as image:
        assert image.format == 'PNG'
    out = capsys.readouterr().out
    # the row-normalised L1, printed
    assert re.search(r'\|\s+animal\s+\|\s+12\.50\s+\|\s+87\.50\s+\|', out)


def test_confusion_matrix_refuses_incomplete_predictions(tiny_test_set):
    config, root = tiny_test_set
    tool = _load('confusion_matrix')
    os.remove(root / 'pred' / 'L2' / 'b.png')
    with pytest.raises(ConfigError, match=r'1 prediction files of the 2 test images are '
                       r'missing, e\.g\. .*L2/b\.png'):
        tool.main([config, str(root / 'pred'), str(root / 'cm')])
    (root / 'pred' / 'L3').mkdir()
    with pytest.raises(ConfigError, match=r"expected one folder per level .*\(L1, L2\).*"
                       r"found \['L1', 'L2', 'L3'\]"):
        tool.main([config, str(root / 'pred'), str(root / 'cm')])


@pytest.fixture(scope='module')
def demo_test_run(tmp_path_factory):
    """tools/test.py --out of a 2-iteration demo checkpoint on 3 generated val images:
    (prediction dir, the test's metrics json, its --cfg-options)."""
    root = tmp_path_factory.mktemp('analysis')
    data = str(root / 'people')
    make_synthetic_people(data, num_train=4, num_val=3, size=(128, 128), seed=2)
    options = demo_options(data, 2)
    work, test = str(root / 'work'), str(root / 'test')
    _run([sys.executable, 'tools/train.py', DEMO, '--work-dir', work,
          '--cfg-options', *options])
    _run([sys.executable, 'tools/test.py', DEMO, osp.join(work, 'iter_2.pth'),
          '--work-dir', test, '--out', str(root / 'pred'), '--cfg-options', *options])
    logs = [osp.join(d, f) for d, _, files in os.walk(test) for f in files
            if f.endswith('.json') and f[:8].isdigit()]
    assert len(logs) == 1
    with open(logs[0]) as f:
        metrics = json.load(f)
    return str(root / 'pred'), metrics, options


def test_confusion_matrix_of_a_test_run_gives_the_metric(demo_test_run, tmp_path):
    pred, metrics, options = demo_test_run
    save = tmp_path / 'cm'
    out = _run([sys.executable, 'tools/analysis/confusion_matrix.py', DEMO, pred, str(save),
                '--cfg-options', *options])
    assert 'L3, % of each ground-truth row (49152 pixels)' in out  # 3 images of 128 x 128
    for k in (1, 2, 3):
        with open(save / f'confusion_matrix_L{k}.csv') as f:
            rows = list(csv.reader(f))[1:]  # after the header row of class names
        counts = torch.tensor([[int(v) for v in row[1:]] for row in rows])
        iou = confusion_to_metrics(counts)['IoU']
        # the same per-level mIoU as HierarchicalIoUMetric's in that test run
        assert round(float(np.nanmean(iou)) * 100, 2) == metrics[f'mIoU_L{k}']
        assert (save / f'confusion_matrix_L{k}.png').is_file()


# ------------------------------------------------------------------ plot_curves.py
SCALARS = [
    dict(lr=0.02, loss=3.0, **{'decode.loss_a': 2.0, 'decode.loss_b': 1.0}, iter=1, step=1),
    dict(lr=0.01, loss=2.0, **{'decode.loss_a': 1.5, 'decode.loss_b': 0.5}, iter=2, step=2),
    dict(mIoU=20.0, mIoU_L1=60.0, mIoU_L1_nobg=40.0, mIoU_L2=20.0, mIoU_L2_nobg=10.0,
         step=2),
    dict(lr=0.005, loss=1.0, **{'decode.loss_a': 0.8, 'decode.loss_b': 0.2}, iter=3, step=3),
]


def _legend(ax) -> list:
    return [t.get_text() for t in ax.get_legend().get_texts()]


@pytest.fixture
def work_dir(tmp_path):
    """A work dir with an older run and the latest one (the hand-written SCALARS)."""
    for run, records in (('20240101_000000', SCALARS[:1]), ('20240102_000000', SCALARS)):
        vis = tmp_path / run / 'vis_data'
        vis.mkdir(parents=True)
        (vis / 'scalars.json').write_text(''.join(json.dumps(r) + '\n' for r in records))
    return tmp_path


def test_plot_curves_default_panels(work_dir, capsys):
    fig = _load('plot_curves').main([str(work_dir)])
    assert 'read ' + str(work_dir / '20240102_000000' / 'vis_data' / 'scalars.json') in \
        capsys.readouterr().out  # the latest run
    losses, levels = fig.axes  # two panels, nothing else
    assert _legend(losses) == ['loss', 'decode.loss_a', 'decode.loss_b']
    assert _legend(levels) == ['mIoU_L1', 'mIoU_L2']  # not mIoU, not the _nobg means
    assert list(losses.lines[0].get_xdata()) == [1, 2, 3]
    assert list(losses.lines[0].get_ydata()) == [3.0, 2.0, 1.0]
    assert list(levels.lines[0].get_xdata()) == [2] and list(levels.lines[0].get_ydata()) == [60]
    with Image.open(work_dir / 'curves.png') as image:
        assert image.size == (800, 600)  # 8 x (3 per panel) inches at 100 dpi


def test_plot_curves_chosen_keys(work_dir):
    scalars = work_dir / '20240102_000000' / 'vis_data' / 'scalars.json'
    out = work_dir / 'chosen.png'
    fig = _load('plot_curves').main([str(scalars), '--keys', 'lr', 'mIoU_L*_nobg,mIoU',
                                     '--out', str(out)])
    assert [_legend(ax) for ax in fig.axes] == [['lr'], ['mIoU_L1_nobg', 'mIoU_L2_nobg', 'mIoU']]
    with Image.open(out) as image:
        assert image.size == (800, 600)


def test_plot_curves_missing_key_is_one_line(work_dir):
    out = _run([sys.executable, 'tools/analysis/plot_curves.py', str(work_dir),
                '--keys', 'loss', 'mIoU_L3'], expect_rc=1, timeout=60)
    scalars = work_dir / '20240102_000000' / 'vis_data' / 'scalars.json'
    assert out.strip().splitlines() == [
        f"error: {scalars}: no scalar 'mIoU_L3'; it logs: decode.loss_a, decode.loss_b, "
        'iter, loss, lr, mIoU, mIoU_L1, mIoU_L1_nobg, mIoU_L2, mIoU_L2_nobg']
    assert not (work_dir / 'curves.png').exists()


# ------------------------------------------------------------------ amp_error.py
def test_amp_error_prints_every_loss_and_float32_repeats_exactly():
    out = _run([sys.executable, 'tools/analysis/amp_error.py', DEMO, '--seeds', '1',
                '--steps', '2', '--shape', '32', '32'])
    assert 'bf16 vs float32 over 1 seeds x 2 steps, 32x32, 1 threads' in out
    rows = dict(re.findall(r'^  (\S*loss\S*) +(\d\.\d+e[+-]\d+) +\S+$', out, re.M))
    # the demo's four losses and their total
    assert set(rows) == {'loss', 'decode.loss_rmi', 'decode.loss_focal_tree_min',
                         'decode.loss_hier_ce', 'decode.loss_tree_triplet'}
    assert 0 < float(rows['loss']) < 5e-3  # bf16 moves it, within test_amp's bound
    # the same float32 run twice gives the same losses to the bit: the tool compares like
    # with like, so what it prints for bf16 is bf16's
    tool = _load('amp_error')
    from hseg_mm.testing import seg_batch
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = load_config(DEMO, check_data=False)
    cfg.model.data_preprocessor.size = (32, 32)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    batch = seg_batch(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8),
                            torch.randint(0, 7, (2, 32, 32)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # threaded CPU scatter-adds (triplet backward) may reorder sums
    try:
        assert tool.train_losses(model, batch, 'OptimWrapper', 2) == \
            tool.train_losses(model, batch, 'OptimWrapper', 2)
    finally:
        torch.set_num_threads(threads)
