import io
from typing import Optional

import mmengine.fileio as fileio
import numpy as np
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS
from PIL import Image

from ..labels import decode_label_map


@TRANSFORMS.register_module()
class LoadCheckedAnnotations(LoadAnnotations):
    """mmseg's `LoadAnnotations` that maps layout ids onto the tree and checks them.

    Reads a label image as stored (a palette PNG gives its indices, never its
    colours or brightness), maps the layout ids onto the config tree's leaf ids
    with the table the dataset put in `results['layout_to_tree']`, and raises
    one error naming the file for: an unreadable file, a colour (RGB) label,
    grey values of a VOC palette read as grayscale, an id outside the layout,
    or a label whose size differs from its image (`ori_shape`). Nothing is
    mapped to background.

    Configs name it (or `LoadNpyAnnotations` for `.npy` labels) in every pipeline.
    Data without a `seg_map_path` (an image without a label, as mmseg's
    `inference_model` and `MMSegInferencer` pass it; they drop only a transform named
    exactly 'LoadAnnotations') passes through unchanged, so a test pipeline serves
    both testing and inference. `HierarchicalSegDataset` always sets `seg_map_path`
    and has checked that every label file exists, so no training data passes through.

    Args:
        voc_colours: decode labels saved as VOC colours (RGB) or as their grey
            values (a palette label converted to grayscale) back to ids, instead
            of rejecting them; an unknown colour is still an error.
        backend_args: mmengine file backend arguments.

    Required keys, when `seg_map_path` is there: layout_to_tree, ignore_index,
    seg_fields; ori_shape when an image was loaded before.
    Added keys: gt_seg_map, (H, W) uint8 tree leaf ids or the ignore index (none
    without `seg_map_path`).
    """

    def __init__(self, voc_colours: bool = False, backend_args: Optional[dict] = None) -> None:
        super().__init__(backend_args=backend_args)
        self.voc_colours = voc_colours

    def _read_raw(self, path: str) -> np.ndarray:
        """The stored label array of `path`, unchanged."""
        try:
            data = fileio.get(path, backend_args=self.backend_args)
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                return np.array(img)
        except FileNotFoundError:
            raise FileNotFoundError(f'label file not found: {path}') from None
        except Exception as err:  # PIL raises several types for broken files
            raise ValueError(f'{path}: unreadable label image ({err})') from None

    def _load_seg_map(self, results: dict) -> None:
        if results.get('seg_map_path') is None:
            return  # an image without a label: inference (see the class docstring)
        path = results['seg_map_path']
        if 'layout_to_tree' not in results:
            raise KeyError(f'{type(self).__name__} needs `layout_to_tree` in the data info '
                           f'(set by HierarchicalSegDataset and its subclasses) for {path}')
        if results.get('reduce_zero_label', False):
            raise ValueError(f'{type(self).__name__}: reduce_zero_label is not supported; '
                             'give the tree a background leaf instead')
        raw = self._read_raw(path)
        results['gt_seg_map'] = decode_label_map(
            raw, results['layout_to_tree'], results.get('ignore_index', 255), path,
            expected_shape=results.get('ori_shape'), voc_colours=self.voc_colours)
        results['seg_fields'].append('gt_seg_map')

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(voc_colours={self.voc_colours}, '
                f'backend_args={self.backend_args})')
