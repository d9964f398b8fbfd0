import io

import mmengine.fileio as fileio
import numpy as np
from mmseg.registry import TRANSFORMS

from .load_checked_annotations import LoadCheckedAnnotations


@TRANSFORMS.register_module()
class LoadNpyAnnotations(LoadCheckedAnnotations):
    """Load a `.npy` label map (mmseg's `LoadAnnotations` reads only images).

    The array must be integer, shaped (H, W) (a (1, H, W) or (H, W, 1) array is
    squeezed); it is then mapped and checked like `LoadCheckedAnnotations`
    (layout ids -> tree ids, size against the image, ids in the layout).
    Pickled arrays are refused.
    """

    def _read_raw(self, path: str) -> np.ndarray:
        try:
            data = fileio.get(path, backend_args=self.backend_args)
            raw = np.load(io.BytesIO(data), allow_pickle=False)
        except FileNotFoundError:
            raise FileNotFoundError(f'label file not found: {path}') from None
        except Exception as err:  # a truncated file, a pickle, not an .npy at all
            raise ValueError(f'{path}: unreadable .npy label ({err})') from None
        if not isinstance(raw, np.ndarray) or raw.dtype.kind not in 'ui':
            raise ValueError(f'{path}: .npy label of dtype {getattr(raw, "dtype", type(raw))}; '
                             'expected integer class ids (uint8, int32, int64, ...)')
        if raw.ndim == 3 and 1 in (raw.shape[0], raw.shape[2]):
            raw = raw.reshape(raw.shape[1:] if raw.shape[0] == 1 else raw.shape[:2])
        if raw.ndim != 2:
            raise ValueError(f'{path}: .npy label of shape {raw.shape}; expected (H, W)')
        return raw
