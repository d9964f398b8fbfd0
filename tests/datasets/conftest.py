"""Fixtures: tiny on-disk datasets for the dataset tests."""
import os
import os.path as osp
from typing import Dict, Optional, Sequence

import numpy as np
import pytest
from dataset_helpers import tiny_label, write_image, write_palette_png


@pytest.fixture
def standard_root(tmp_path):
    """A Graphonomy-style repack: JPEGImages/, SegmentationPart/ (palette PNGs),
    train_id.txt (a, b), val_id.txt (c). Returns (root, labels by id)."""
    root = str(tmp_path / 'ppp')
    labels: Dict[str, np.ndarray] = {}
    for seed, name in enumerate(['a', 'b', 'c']):
        write_image(osp.join(root, 'JPEGImages', name + '.jpg'), seed=seed)
        labels[name] = tiny_label(seed)
        write_palette_png(osp.join(root, 'SegmentationPart', name + '.png'), labels[name])
    with open(osp.join(root, 'train_id.txt'), 'w') as f:
        f.write('a\nb\n')
    with open(osp.join(root, 'val_id.txt'), 'w') as f:
        f.write('c\n')
    return root, labels


@pytest.fixture
def write_split():
    def write(root: str, name: str, lines: Sequence[str], folder: Optional[str] = None) -> str:
        path = osp.join(root, folder, name) if folder else osp.join(root, name)
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write(''.join(ln + '\n' for ln in lines))
        return path
    return write
