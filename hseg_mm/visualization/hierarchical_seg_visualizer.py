"""Ground truth and prediction of every level side by side, with a legend."""
from typing import List, Mapping, Optional, Sequence, Union

import cv2
import mmcv
import numpy as np
from mmengine.dist import master_only
from mmseg.registry import VISUALIZERS
from mmseg.visualization import SegLocalVisualizer
from torch import Tensor

from ..structures import sample_level_labels
from ..hierarchy import ClassHierarchy, build_hierarchy
from ..palette import leaf_palette, level_palettes

__all__ = ['HierarchicalSegVisualizer', 'render_level_panel', 'TITLE_H']

# Layout in pixels: a title strip above every row of tiles and a legend below.
TITLE_H = 16
_ROW_H = 16
_SWATCH = 12
_PAD = 4
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.4
_TEXT = (0, 0, 0)
_PAPER = 255


def _text_width(text: str) -> int:
    return cv2.getTextSize(text, _FONT, _FONT_SCALE, 1)[0][0]


def _put_text(canvas: np.ndarray, text: str, x: int, y_top: int) -> None:
    # cv2 places text by its baseline; centre it in a strip of _ROW_H pixels
    cv2.putText(canvas, text, (x, y_top + _ROW_H - 5), _FONT, _FONT_SCALE, _TEXT, 1,
                cv2.LINE_AA)


def _as_numpy_levels(levels: Union[Tensor, np.ndarray, None]) -> Optional[np.ndarray]:
    if levels is None:
        return None
    if isinstance(levels, Tensor):
        levels = levels.detach().cpu().numpy()
    return np.asarray(levels).astype(np.int64, copy=False)


def _color_levels(levels: np.ndarray, palettes: Sequence[np.ndarray], ignore_index: int,
                  source: str) -> List[np.ndarray]:
    """(D, H, W) class indices -> D colour masks (H, W, 3); ignore pixels black."""
    masks = []
    for k, (level, palette) in enumerate(zip(levels, palettes)):
        ignore = level == ignore_index
        bad = (~ignore) & ((level < 0) | (level >= len(palette)))
        if bad.any():
            raise ValueError(f'{source} level {k + 1}: class indices '
                             f'{np.unique(level[bad]).tolist()} outside 0..{len(palette) - 1}')
        mask = palette[np.where(ignore, 0, level)]
        mask[ignore] = 0
        masks.append(mask)
    return masks


def render_level_panel(image: np.ndarray,
                       hierarchy: ClassHierarchy,
                       gt_levels: Union[Tensor, np.ndarray, None] = None,
                       pred_levels: Union[Tensor, np.ndarray, None,
                                          Mapping[str, Union[Tensor, np.ndarray]]] = None,
                       alpha: float = 1.0,
                       palettes: Optional[Sequence[np.ndarray]] = None,
                       legend: bool = True) -> np.ndarray:
    """One image showing the input and every level's masks, with a legend.

    Layout: a row for the ground truth and a row for the prediction (whichever are
    given), each `input | L1 | L2 | ... | LD` with a title strip of `TITLE_H` pixels
    above it ('GT' / 'pred' over the input when both rows are drawn, else 'input';
    then the level names); tile j of a row starts at x = j * W. Below, a legend with one column per
    level listing its classes and colours. Paper is white; ignore pixels are black.

    Args:
        image: (H, W, 3) RGB.
        hierarchy: the class tree.
        gt_levels / pred_levels: (D, H, W) class indices of every level; pred_levels
            may also be {row title: (D, H, W)}, one row per model (e.g. HSSN beside flat).
        alpha: weight of the colour mask over the image in the level tiles (1: mask only).
        palettes: per level (C_k, 3) uint8 colours; default `level_palettes(hierarchy)`.
        legend: draw the legend (off to stack several panels under one legend).

    Returns:
        (H_out, W_out, 3) uint8 RGB, W_out >= (D + 1) * W.
    """
    if gt_levels is None and pred_levels is None:
        raise ValueError('render_level_panel needs gt_levels or pred_levels')
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'image must be (H, W, 3) RGB, got {image.shape}')
    image = image.astype(np.uint8, copy=False)
    height, width = image.shape[:2]
    num_levels = hierarchy.num_levels
    palettes = level_palettes(hierarchy) if palettes is None else palettes

    rows = []
    preds = list(pred_levels.items()) if isinstance(pred_levels, Mapping) \
        else [('pred', pred_levels)]
    given = [(t, lv) for t, lv in [('GT', gt_levels)] + preds if lv is not None]
    both = len(given) > 1
    for title, levels in given:
        levels = _as_numpy_levels(levels)
        if levels.shape != (num_levels, height, width):
            raise ValueError(f'{title} levels must be (D={num_levels}, H={height}, '
                             f'W={width}) like the image, got {levels.shape}')
        masks = _color_levels(levels, palettes, hierarchy.ignore_index, title)
        tiles = [image] + [(image * (1 - alpha) + mask * alpha).round().astype(np.uint8)
                           for mask in masks]
        names = [title if both else 'input'] + [f'L{k + 1}' for k in range(num_levels)]
        rows.append((names, np.concatenate(tiles, axis=1)))

    # Legend: per level, a header and one swatch + name per class.
    columns = []
    for k in range(num_levels):
        names = hierarchy.level_names(k)
        text_w = max(_text_width(n) for n in names + [f'L{k + 1}'])
        columns.append((k, names, _PAD + _SWATCH + _PAD + text_w + 2 * _PAD))
    legend_w = sum(w for _, _, w in columns)
    legend_h = _ROW_H + max(len(n) for _, n, _ in columns) * _ROW_H + _PAD if legend else 0
    grid_w = (num_levels + 1) * width

    out_w = max(grid_w, legend_w)
    out_h = len(rows) * (TITLE_H + height) + legend_h
    canvas = np.full((out_h, out_w, 3), _PAPER, dtype=np.uint8)
    y = 0
    for names, strip in rows:
        for j, name in enumerate(names):
            # drawn on a tile-wide strip so that a long title is clipped, not overlapping
            title_strip = np.full((TITLE_H, width, 3), _PAPER, dtype=np.uint8)
            _put_text(title_strip, name, _PAD, 0)
            canvas[y:y + TITLE_H, j * width:(j + 1) * width] = title_strip
        canvas[y + TITLE_H:y + TITLE_H + height, :grid_w] = strip
        y += TITLE_H + height
    x = 0
    for k, names, column_w in columns if legend else []:
        _put_text(canvas, f'L{k + 1}', x + _PAD, y)
        for c, name in enumerate(names):
            top = y + _ROW_H * (c + 1)
            sy = top + (_ROW_H - _SWATCH) // 2
            canvas[sy:sy + _SWATCH, x + _PAD:x + _PAD + _SWATCH] = palettes[k][c]
            _put_text(canvas, name, x + 2 * _PAD + _SWATCH, top)
        x += column_w
    return canvas


@VISUALIZERS.register_module()
class HierarchicalSegVisualizer(SegLocalVisualizer):
    """mmseg's visualiser drawing ground truth and prediction of every tree level.

    `add_datasample` renders `render_level_panel` (GT row, prediction row, legend)
    and sends it to every backend (TensorBoard: `TensorboardVisBackend`). Prediction
    levels come from `pred_level_seg` when present, else from `pred_sem_seg`.

    The tree is the config's (`hierarchy`), else the one `dataset_meta` brings (mmengine's
    loops hand it the dataset's metainfo), else each predicted sample's metainfo (the
    segmentor names it there): MMSegInferencer builds the visualiser from a source
    config, which leaves the tree out.

    Args:
        hierarchy: the class tree (nested mapping, preset name or ClassHierarchy), or
            None to take it from `dataset_meta` or the samples.
        name, image, vis_backends, save_dir: as in mmengine's Visualizer.
        alpha: weight of the colour masks over the image.
        ignore_index: ground-truth value drawn black.
    """

    def __init__(self,
                 hierarchy: Union[ClassHierarchy, Mapping, str, None] = None,
                 name: str = 'visualizer',
                 image: Optional[np.ndarray] = None,
                 vis_backends: Optional[List[dict]] = None,
                 save_dir: Optional[str] = None,
                 alpha: float = 0.8,
                 ignore_index: int = 255,
                 **kwargs) -> None:
        self.ignore_index = ignore_index
        self.hierarchy: Optional[ClassHierarchy] = None
        if hierarchy is not None:
            self._adopt(hierarchy)
        super().__init__(name=name, image=image, vis_backends=vis_backends,
                         save_dir=save_dir, alpha=alpha, **kwargs)

    def _adopt(self, hierarchy: Union[ClassHierarchy, Mapping, str]) -> None:
        self.hierarchy = build_hierarchy(hierarchy, ignore_index=self.ignore_index)
        self.level_palettes = level_palettes(self.hierarchy)

    @property  # type: ignore[override]
    def dataset_meta(self) -> Optional[dict]:
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: Optional[dict]) -> None:
        # a visualiser without a tree of its own takes the dataset's
        if self.hierarchy is None and (dataset_meta or {}).get('hierarchy') is not None:
            self._adopt(dataset_meta['hierarchy'])
        self._dataset_meta = dataset_meta

    def set_dataset_meta(self, classes: Optional[List] = None,
                         palette: Optional[List] = None,
                         dataset_name: Optional[str] = None) -> None:
        # The tree, not a dataset name, decides classes and colours (leaves, for mmseg
        # code that reads dataset_meta); mmseg's __init__ also swaps the arguments.
        if self.hierarchy is None:
            self._dataset_meta = {'classes': classes, 'palette': palette}
            return
        self.dataset_meta = {'classes': self.hierarchy.leaf_names,
                             'palette': leaf_palette(self.hierarchy),
                             'hierarchy': self.hierarchy.to_dict()}

    def draw_levels(self, image: np.ndarray, data_sample=None, draw_gt: bool = True,
                    draw_pred: bool = True) -> np.ndarray:
        """Render the panel of one sample; the image is resized to the masks if needed.

        Args:
            image: (H, W, 3) RGB.
            data_sample: SegDataSample with gt_sem_seg and/or pred_level_seg /
                pred_sem_seg.

        Returns:
            (H_out, W_out, 3) uint8 RGB.
        """
        if self.hierarchy is None:
            tree = getattr(data_sample, 'metainfo', {}).get('hierarchy')
            if tree is None:
                raise ValueError(
                    'HierarchicalSegVisualizer: no tree to name the levels by: give it '
                    '`hierarchy`, a dataset_meta holding one, or samples predicted by a '
                    'hierarchical segmentor')
            self._adopt(tree)
        gt, pred = sample_level_labels(data_sample, self.hierarchy, need_gt=False,
                                       need_pred=False)
        gt = gt if draw_gt else None
        pred = pred if draw_pred else None
        present = gt if gt is not None else pred
        if present is None:
            raise ValueError('nothing to draw: the sample has no gt_sem_seg, '
                             'pred_level_seg or pred_sem_seg (or both are switched off)')
        size = tuple(present.shape[1:])
        if tuple(image.shape[:2]) != size:
            # the pipeline may have resized the image; masks are at their own size
            image = cv2.resize(np.ascontiguousarray(image), size[::-1],
                               interpolation=cv2.INTER_LINEAR)
        return render_level_panel(image, self.hierarchy, gt, pred, self.alpha,
                                  self.level_palettes)

    @master_only
    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample=None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: Optional[str] = None,
                       step: int = 0,
                       with_labels: Optional[bool] = True) -> None:
        """Draw a sample's levels and send the image to the backends (or a file).

        Same arguments as mmseg's SegLocalVisualizer; `with_labels` is unused (the
        legend names every class).
        """
        drawn = self.draw_levels(image, data_sample, draw_gt, draw_pred)
        self.set_image(drawn)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            mmcv.imwrite(mmcv.rgb2bgr(drawn), out_file)
        else:
            self.add_image(name, drawn, step)
