"""Helpers writing tiny on-disk datasets (16x24 images) for the dataset tests."""
import os
import os.path as osp

import cv2
import numpy as np
from PIL import Image

from hseg_mm.datasets.labels import voc_colormap

H, W = 16, 24  # small and not square, so a transposed label shows


def tiny_label(seed: int) -> np.ndarray:
    """(H, W) standard ids: background and a 3x2 block of each part id 1..6,
    placed by `seed`."""
    lab = np.zeros((H, W), dtype=np.uint8)
    for k in range(1, 7):
        lab[(seed + k) % 4 * 4:(seed + k) % 4 * 4 + 3, 3 * k:3 * k + 2] = k
    return lab


def write_image(path: str, h: int = H, w: int = W, seed: int = 0) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 255, size=(h, w, 3), dtype=np.uint8)
    cv2.imwrite(path, img)


def write_palette_png(path: str, lab: np.ndarray) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    png = Image.fromarray(lab, mode='L')
    png.putpalette(voc_colormap(256).ravel().tolist())
    png.save(path)


def write_gray_png(path: str, lab: np.ndarray) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(lab, mode='L').save(path)


def pipeline(loader: str = 'LoadCheckedAnnotations') -> list:
    return [dict(type='LoadCheckedImageFromFile'), dict(type=loader)]


def build(cfg: dict):
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)  # as the Runner does
    return DATASETS.build(cfg)
