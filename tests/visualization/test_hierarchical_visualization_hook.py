"""The hook draws the first `num_images` samples of each validation round."""
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmengine.visualization import Visualizer
from mmseg.registry import HOOKS
from mmseg.structures import SegDataSample

from hseg_mm.visualization import HierarchicalSegVisualizer, HierarchicalVisualizationHook


class RecordingVisualizer(HierarchicalSegVisualizer):
    """Renders for real, records what would go to TensorBoard."""

    def __init__(self, name: str, **kwargs):
        super().__init__(name=name, **kwargs)
        self.added = []

    def add_image(self, name, image, step=0):
        self.added.append((name, image.shape, step))


def batch(tmp_path, start: int, size: int = 2, with_path: bool = True):
    """A validation batch: data_batch with (3, 4, 5) inputs, and model outputs."""
    outputs, inputs = [], []
    for i in range(start, start + size):
        gt = torch.full((1, 4, 5), i % 7)
        s = SegDataSample(gt_sem_seg=PixelData(data=gt), pred_sem_seg=PixelData(data=gt))
        img = np.full((4, 5, 3), 10 * i, np.uint8)
        if with_path:
            path = tmp_path / f'img_{i}.png'
            cv2.imwrite(str(path), img)
            s.set_metainfo(dict(img_path=str(path)))
        inputs.append(torch.from_numpy(img).permute(2, 0, 1))
        outputs.append(s)
    return dict(inputs=inputs, data_samples=outputs), outputs


def fake_runner(name: str, iteration: int = 7):
    return SimpleNamespace(iter=iteration, visualizer=RecordingVisualizer(
        name=name, hierarchy='pascal_person_part'))


def test_draws_first_images_of_each_round(tmp_path):
    hook = HOOKS.build(dict(type='HierarchicalVisualizationHook', num_images=3))
    runner = fake_runner('hook_rounds')
    hook.before_run(runner)
    for round_, step in enumerate((7, 14)):
        runner.iter = step
        hook.before_val_epoch(runner)
        for b in range(3):  # 3 batches of 2: only the first 3 samples are drawn
            data_batch, outputs = batch(tmp_path, 2 * b)
            hook.after_val_iter(runner, b, data_batch, outputs)
    names = [name for name, _, _ in runner.visualizer.added]
    steps = [step for _, _, step in runner.visualizer.added]
    assert names == ['val_levels_0', 'val_levels_1', 'val_levels_2'] * 2
    assert steps == [7] * 3 + [14] * 3
    # a panel with GT and prediction rows, 4 tiles of width 5 at least
    shape = runner.visualizer.added[0][1]
    assert shape[0] > 2 * 4 and shape[1] >= 4 * 5 and shape[2] == 3


def test_uses_batch_inputs_without_img_path(tmp_path):
    hook = HierarchicalVisualizationHook(num_images=1)
    runner = fake_runner('hook_no_path')
    data_batch, outputs = batch(tmp_path, 3, with_path=False)
    hook.after_val_iter(runner, 0, data_batch, outputs)
    assert [name for name, _, _ in runner.visualizer.added] == ['val_levels_0']
    # the input tile (below the title strip) is the batch input, value 30 everywhere
    assert (runner.visualizer.get_image()[16:20, :5] == 30).all()


def test_draw_false_draws_nothing(tmp_path):
    hook = HierarchicalVisualizationHook(draw=False)
    runner = fake_runner('hook_off')
    data_batch, outputs = batch(tmp_path, 0)
    hook.after_val_iter(runner, 0, data_batch, outputs)
    assert runner.visualizer.added == []


def test_bad_arguments():
    with pytest.raises(ValueError, match='num_images'):
        HierarchicalVisualizationHook(num_images=-1)
    hook = HierarchicalVisualizationHook()
    with pytest.raises(TypeError, match='HierarchicalSegVisualizer'):
        hook.before_run(SimpleNamespace(visualizer=Visualizer(name='plain_for_hook')))
