"""tools/analysis/compare_predictions.py: GT and two models' levels, one panel per image."""
from pathlib import Path

import cv2
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import save_checkpoint
from mmseg.registry import MODELS

from hseg_mm.datasets.synthetic_people import make_synthetic_people
from hseg_mm.engine import apply_hierarchy
from hseg_mm.engine.launch import skip_pretrained
from hseg_mm.visualization.hierarchical_seg_visualizer import TITLE_H

from tool_helpers import load_tool as load_tool_at  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SIZE = (40, 48)  # (H, W) of the generated images


def load_tool():
    return load_tool_at('tools/analysis/compare_predictions.py', 'hseg_compare')


@pytest.fixture(scope='module')
def two_models(tmp_path_factory):
    """The demo config's HSSN and flat models, random weights, as checkpoints."""
    root = tmp_path_factory.mktemp('compare')
    make_synthetic_people(str(root / 'data'), 1, 3, size=SIZE, seed=0)
    init_default_scope('mmseg')
    out = []
    for name in ('demo_cpu', 'flat_demo_cpu'):
        cfg = Config.fromfile(str(ROOT / 'configs' / f'{name}.py'))
        apply_hierarchy(cfg, check_paths=False)
        skip_pretrained(cfg)
        torch.manual_seed(len(out))
        path = root / f'{name}.pth'
        save_checkpoint({'state_dict': MODELS.build(cfg.model).state_dict(), 'meta': {}},
                        str(path))
        out.append(f'{name}=configs/{name}.py:{path}')
    options = [f'test_dataloader.dataset.data_root={root / "data"}',
               'test_dataloader.dataset.generate=None', 'test_dataloader.num_workers=0',
               'test_dataloader.persistent_workers=False']
    return root, out, options


def test_panel_per_image_with_a_row_per_model(two_models, monkeypatch):
    root, models, options = two_models
    monkeypatch.chdir(ROOT)
    out = root / 'compare.png'
    load_tool().main([*models, '--out', str(out), '--indices', '0', '2',
                      '--cfg-options', *options])
    image = cv2.imread(str(out))
    # 2 images x (GT + 2 models) rows of TITLE_H + 40 px, 8 px apart, then one legend;
    # 4 tiles (input, L1, L2, L3) of 48 px at least
    rows = 2 * (3 * (TITLE_H + SIZE[0]) + 8)
    assert image.shape[0] > rows and image.shape[1] >= 4 * SIZE[1]
    # --width scales the whole picture: 100 px wide, the height in proportion
    load_tool().main([*models, '--out', str(out), '--indices', '0', '2', '--width', '100',
                      '--cfg-options', *options])
    small = cv2.imread(str(out))
    assert small.shape[1] == 100
    assert abs(small.shape[0] - image.shape[0] * 100 / image.shape[1]) <= 1


def test_bad_model_spec(two_models):
    with pytest.raises(SystemExit, match='NAME=CONFIG:CHECKPOINT'):
        load_tool().main(['configs/demo_cpu.py'])
    with pytest.raises(SystemExit, match='no such file'):
        load_tool().main(['a=configs/demo_cpu.py:/nonexistent.pth'])
