"""Send the first validation images of each round, every level drawn, to TensorBoard."""
from typing import Optional, Sequence

import mmcv
import numpy as np
from mmengine.dist import is_main_process
from mmengine.fileio import get as get_file
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from .hierarchical_seg_visualizer import HierarchicalSegVisualizer

__all__ = ['HierarchicalVisualizationHook']


@HOOKS.register_module()
class HierarchicalVisualizationHook(Hook):
    """Draw the first `num_images` validation samples of every validation round.

    Each is rendered by the runner's `HierarchicalSegVisualizer` (input, GT and
    prediction of every level, legend) and added with `add_image` at the current
    training iteration, under the stable name `val_levels_<i>`, so TensorBoard shows
    how the same images evolve. Only the main process draws.

    Args:
        num_images: samples drawn per validation round.
        draw: switch the hook off without removing it from the config.
        backend_args: file backend arguments used to read `img_path`.
    """

    priority = 'NORMAL'

    def __init__(self, num_images: int = 4, draw: bool = True,
                 backend_args: Optional[dict] = None) -> None:
        if num_images < 0:
            raise ValueError(f'num_images must be >= 0, got {num_images}')
        self.num_images = int(num_images)
        self.draw = draw
        self.backend_args = backend_args.copy() if backend_args else None
        self._drawn = 0

    def before_run(self, runner) -> None:
        if self.draw and not isinstance(runner.visualizer, HierarchicalSegVisualizer):
            raise TypeError(
                'HierarchicalVisualizationHook needs visualizer=dict(type='
                "'HierarchicalSegVisualizer', hierarchy=..., vis_backends=...) in the "
                f'config; the runner has {type(runner.visualizer).__name__}')

    def before_val_epoch(self, runner) -> None:
        self._drawn = 0

    def _image(self, sample, data_batch, index: int) -> np.ndarray:
        """(H, W, 3) RGB: the file at img_path, else the batch input (BGR as loaded)."""
        path = sample.get('img_path', None)
        if path:
            return mmcv.imfrombytes(get_file(path, backend_args=self.backend_args),
                                    channel_order='rgb')
        inputs = data_batch['inputs'][index]  # (3, H, W) before the data preprocessor
        return np.ascontiguousarray(inputs.detach().cpu().numpy().transpose(1, 2, 0)[..., ::-1])

    def after_val_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None,
                       outputs: Optional[Sequence] = None) -> None:
        if not self.draw or self._drawn >= self.num_images or not outputs or \
                not is_main_process():
            return
        for index, sample in enumerate(outputs):
            if self._drawn >= self.num_images:
                break
            runner.visualizer.add_datasample(
                f'val_levels_{self._drawn}', self._image(sample, data_batch, index),
                data_sample=sample, step=runner.iter)
            self._drawn += 1
