"""tools/analysis/pipeline_speed.py: its plain pipeline is mmseg's loading of the same
items (the same images and labels out, so the ratio compares like with like), and its
tables add up."""
import importlib.util
import os.path as osp
import re

import numpy as np
import pytest
import torch

from hseg_mm.datasets.synthetic_people import make_synthetic_people
from hseg_mm.engine.launch import load_config
from hseg_mm.hierarchy import build_hierarchy

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
spec = importlib.util.spec_from_file_location(
    'pipeline_speed', osp.join(ROOT, 'tools', 'analysis', 'pipeline_speed.py'))
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)

DEMO = osp.join(ROOT, 'configs', 'demo_cpu.py')  # PNG labels: LoadCheckedAnnotations
PPP = osp.join(ROOT, 'configs', 'ppp_cpu', 'hssn_lite2-fpn_ppp-320_cpu.py')  # .npy labels


def data_options(root: str, npy: bool) -> dict:
    options = {}
    for split in ('train', 'val', 'test'):
        options[f'{split}_dataloader.dataset.data_root'] = root
        options[f'{split}_dataloader.dataset.' + ('split_lists' if npy else 'generate')] = \
            'data_root' if npy else None
    return options


@pytest.fixture(scope='module')
def layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp('speed')
    for layout in ('standard', 'seeds'):
        make_synthetic_people(str(root / layout), 3, 1, size=(96, 128), seed=5, layout=layout)
    return root


@pytest.mark.parametrize('config,layout', [(DEMO, 'standard'), (PPP, 'seeds')])
def test_plain_pipeline_gives_the_same_sample(layouts, config, layout):
    cfg = load_config(config, data_options(str(layouts / layout), layout == 'seeds'))
    from mmseg.registry import DATASETS
    dataset_cfg = cfg.train_dataloader.dataset.copy()
    dataset_cfg.pipeline = []
    info = DATASETS.build(dataset_cfg).get_data_info(1)
    info['label_map'] = tool.plain_label_map(info['layout_to_tree'])
    checked, plain = tool.build_pipelines(cfg)
    # only the loaders differ: mmcv's image loader, mmseg's (or np.load's) label loader
    assert [type(t).__name__ for t in checked][:2] != [type(t).__name__ for t in plain][:2]
    assert [type(t).__name__ for t in checked][2:] == [type(t).__name__ for t in plain][2:]
    out = []
    for steps in (checked, plain):
        np.random.seed(7)
        results = info.copy()
        results['seg_fields'] = []
        for step in steps:
            results = step(results)
        out.append(results)
    # the same random crop of the same pixels, labels as tree ids
    assert torch.equal(out[0]['inputs'], out[1]['inputs'])
    a, b = (o['data_samples'].gt_sem_seg.data for o in out)
    assert torch.equal(a, b) and len(torch.unique(a)) >= 2


def test_plain_label_map_lists_only_changed_ids():
    # layout ids 0..3 -> tree ids 0, 2, 1, 3 (and 4 rejected): mmseg's label_map moves 1, 2
    assert tool.plain_label_map([0, 2, 1, 3, -1]) == {1: 2, 2: 1}


def test_fake_sample_levels_follow_the_leaves():
    tree = build_hierarchy('pascal_person_part')
    sample = tool.fake_sample(tree, 8, 10, torch.Generator().manual_seed(0))
    leaves = sample['pred_sem_seg']['data'][0]
    levels = sample['pred_level_seg']['data']
    assert levels.shape == (tree.num_levels, 8, 10)
    assert torch.equal(levels[-1], leaves)  # the deepest level holds the leaf ids
    assert torch.allclose(sample['seg_logits']['data'].sum(0), torch.ones(8, 10))


def test_main_tables_add_up(layouts, capsys):
    options = [f'{k}={v}' for k, v in data_options(str(layouts / 'standard'), False).items()]
    tool.main(['--num-images', '2', '--rounds', '1', '--metric-shapes', '24', '32', '16', '32',
               '--metric-repeats', '1', '--threads', '1', DEMO, '--cfg-options', *options])
    text = capsys.readouterr().out
    rows = re.findall(r'^\| (.+?) \| ([\d.]+) \| ([\d.]+) \|$', text, re.M)
    steps = [r for r in rows if not r[0].startswith('images/s')]
    assert len(steps) == 7  # the demo's 7 transforms
    whole = re.search(r'\| \*\*whole pipeline\*\* \| \*\*([\d.]+)\*\* \| \*\*([\d.]+)\*\* \|',
                      text)
    for col in (0, 1):  # the whole is the sum of its transforms (each rounded to 0.01 ms)
        assert float(whole.group(col + 1)) == pytest.approx(
            sum(float(r[col + 1]) for r in steps), abs=0.01 * len(steps))
    ratio = float(re.search(r'checked / plain throughput: ([\d.]+)', text).group(1))
    # throughput ratio = plain time / checked time
    assert ratio == pytest.approx(float(whole.group(2)) / float(whole.group(1)), rel=0.01)
    assert 'person_part 24x32' in text and 'cityscapes 16x32' in text
    share = re.search(r"share of testing an image \| ([\d.]+) % \| ([\d.]+) % \|", text)
    metric = re.search(r'\| HierarchicalIoUMetric \(ECE\) \| ([\d.]+) ms \| ([\d.]+) ms \|', text)
    model = re.search(r'\| model test_step \| ([\d.]+) ms \| ([\d.]+) ms \|', text)
    for col in (1, 2):  # share = metric / (metric + model), the times printed to 0.01 ms
        m, t = float(metric.group(col)), float(model.group(col))
        low = 100 * (m - 0.005) / (m - 0.005 + t + 0.005)
        high = 100 * (m + 0.005) / (m + 0.005 + t - 0.005)
        assert low - 0.05 <= float(share.group(col)) <= high + 0.05
