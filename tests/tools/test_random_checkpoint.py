"""tools/analysis/random_checkpoint.py: a checkpoint the export tools load strictly, with
the config's tree, the same weights for the same seed."""
import importlib.util
import os.path as osp

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'configs', 'demo_cpu.py')


def load(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = load('tools/analysis/random_checkpoint.py', 'random_checkpoint')
export_onnx = load('tools/export_onnx.py', 'export_onnx')


def test_export_loads_it_strictly_and_seeds_repeat(tmp_path, capsys):
    paths = [str(tmp_path / f'{name}.pth') for name in ('a', 'b', 'c')]
    for path, seed in zip(paths, (0, 0, 1)):
        tool.main([DEMO, path, '--seed', str(seed)])
    a, b, c = (torch.load(p, map_location='cpu') for p in paths)
    assert a['meta']['hierarchy'] == b['meta']['hierarchy']
    assert all(torch.equal(a['state_dict'][k], b['state_dict'][k]) for k in a['state_dict'])
    conv = 'decode_head.conv_seg.weight'  # drawn by init_weights: another seed, other values
    assert not torch.equal(a['state_dict'][conv], c['state_dict'][conv])
    # load_segmentor is strict and checks the tree: no missing key, no tree warning
    model = export_onnx.load_segmentor(DEMO, paths[0])
    assert 'warning' not in capsys.readouterr().err
    assert torch.equal(model.state_dict()[conv], a['state_dict'][conv])


def test_another_tree_is_refused(tmp_path):
    path = str(tmp_path / 'four.pth')
    tool.main([DEMO, path, '--cfg-options', 'hierarchy=cityscapes'])
    from hseg_mm.engine import ConfigError
    with pytest.raises(ConfigError, match='another tree'):
        export_onnx.load_segmentor(DEMO, path)


def test_batch_norm_statistics_come_from_random_images(tmp_path):
    """`--calibrate 3`: every BN layer has counted 3 batches and moved off its initial
    statistics (mean 0, variance 1); `--calibrate 0` keeps them."""
    paths = [str(tmp_path / 'cal.pth'), str(tmp_path / 'raw.pth')]
    tool.main([DEMO, paths[0], '--calibrate', '3', '--calibrate-size', '64', '64'])
    tool.main([DEMO, paths[1], '--calibrate', '0'])
    cal, raw = (torch.load(p, map_location='cpu') for p in paths)
    counts = {k: int(v) for k, v in cal['state_dict'].items() if k.endswith('num_batches_tracked')
              and int(v) > 0}
    # all but the triplet loss's projection (training only: not on the inference path)
    skipped = [k for k, v in cal['state_dict'].items() if k.endswith('num_batches_tracked')
               and int(v) == 0]
    assert skipped == ['decode_head.projection.0.bn.num_batches_tracked']
    assert len(counts) == 36 and set(counts.values()) == {3}
    assert cal['meta']['calibrated_norms'] == 36
    for key in counts:
        mean = cal['state_dict'][key.replace('num_batches_tracked', 'running_mean')]
        var = raw['state_dict'][key.replace('num_batches_tracked', 'running_var')]
        assert not torch.equal(mean, torch.zeros_like(mean)), key
        assert torch.equal(var, torch.ones_like(var)), key  # the uncalibrated one
    # the learnable weights are init_weights' in both
    conv = 'decode_head.conv_seg.weight'
    assert torch.equal(cal['state_dict'][conv], raw['state_dict'][conv])
