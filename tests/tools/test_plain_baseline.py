"""tools/analysis/plain_baseline.py: the schedule, the crops, and a two-iteration run on
synthetic people, tested again from its checkpoint."""
import json
from pathlib import Path

import numpy as np
import pytest

from hseg_mm.datasets.synthetic_people import make_synthetic_people

from tool_helpers import load_tool as load_tool_at  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def load_tool():
    return load_tool_at('tools/analysis/plain_baseline.py', 'hseg_plain_baseline')


def test_learning_rate_warms_up_then_follows_the_budget():
    tool = load_tool()
    assert tool.learning_rate(1.0, 0, 0.0) == pytest.approx(0.01)
    assert tool.learning_rate(1.0, 50, 0.0) == pytest.approx(0.01 + 0.99 * 0.5)  # 0.505
    # after warm-up, poly over the elapsed share: (1 - 0.5) ** 0.9 = 0.5359
    assert tool.learning_rate(1.0, 200, 0.5) == pytest.approx(0.5 ** 0.9)
    assert tool.learning_rate(1.0, 200, 1.2) == pytest.approx(1e-6)  # floor, past the end


def test_random_crops_pad_with_ignore_and_keep_the_pixels():
    """A 10x12 image at scale 1 in a 16x16 crop: 16*16 - 10*12 = 136 padded label pixels
    (ignore), whatever the mirror; the image's pixels normalised as (x - 127) / 128."""
    tool = load_tool()
    img = np.full((10, 12, 3), 255, np.uint8)
    label = np.ones((10, 12), np.uint8)
    crops = tool.RandomCrops([dict(img=img, gt_seg_map=label)], crop=16,
                             scale_range=(1.0, 1.0), ignore_index=255)
    x, y = crops[0]
    assert tuple(x.shape) == (3, 16, 16) and tuple(y.shape) == (16, 16)
    assert int((y == 255).sum()) == 136 and int((y == 1).sum()) == 120
    inside = (y == 1)
    assert np.allclose(x[:, inside].numpy(), 1.0)  # (255 - 127) / 128
    assert np.allclose(x[:, ~inside].numpy(), -127 / 128)  # padding is 0 before normalising


def test_two_iterations_then_the_same_scores_from_the_checkpoint(tmp_path):
    tool = load_tool()
    make_synthetic_people(str(tmp_path / 'data'), 2, 2, size=(40, 48), seed=0)
    options = []
    for split in ('train', 'val'):
        options += [f'{split}_dataloader.dataset.data_root={tmp_path / "data"}',
                    f'{split}_dataloader.dataset.generate=None']
    common = ['configs/demo_cpu.py', '--work-dir', str(tmp_path / 'run'), '--batch', '2',
              '--crop', '32', '--channels', '8', '--threads', '1', '--cfg-options', *options]
    trained = tool.main(common + ['--max-iters', '2', '--minutes', '5'])
    assert trained['iters'] == 2 and trained['seconds'] > 0
    # per-level scores of the synthetic tree (3 levels), with and without background
    for key in ('mIoU_L1', 'mIoU_L1_nobg', 'mIoU_L3', 'ECE_L3'):
        assert 0.0 <= trained[key] <= 100.0, key
    saved = json.loads((tmp_path / 'run' / 'metrics.json').read_text())
    assert saved['mIoU_L3'] == trained['mIoU_L3'] and saved['flip'] is True
    again = tool.main(common + ['--eval-only'])
    assert again['iters'] == 2
    assert {k: again[k] for k in trained if 'IoU' in k} == \
        {k: trained[k] for k in trained if 'IoU' in k}


def test_several_test_scales_average_each_scales_probabilities():
    """`--test-scale 0.5 1` is the mean of the 0.5x and the 1x passes (each with its
    mirror), resized back to the image; one scale is that scale's pass alone."""
    import torch
    tool = load_tool()
    torch.manual_seed(0)
    model = tool.PlainFPN('lite0', 8, 3).eval()  # random weights: only the averaging counts
    img = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    half, full = tool.predict(model, img, [0.5]), tool.predict(model, img, [1.0])
    both = tool.predict(model, img, [0.5, 1.0])
    assert tuple(both.shape) == (3, 40, 56)
    assert torch.allclose(both, (half + full) / 2, atol=1e-6)
    assert not torch.allclose(half, full, atol=1e-3)  # the scales do differ
    assert torch.allclose(both.sum(0), torch.ones(40, 56), atol=1e-5)  # still probabilities
