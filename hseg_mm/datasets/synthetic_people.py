"""Synthetic people: articulated figures whose parts only context tells apart.

Each image holds several figures (head, torso, upper and lower arms, upper and
lower legs) in random poses and scales, drawn far to near so the nearer person's
labels win, over a textured background with distractor shapes, some of them
limb- and head-like in the people's own colours (labelled background). Colours
never give a part away: sleeves share the torso's colour, skin shows on the head
and the lower arms, trousers cover both leg parts; telling an upper arm from a
lower arm, or a head from a skin-coloured blob, takes spatial context.

Written in the standard PASCAL-Person-Part layout (`JPEGImages/<id>.jpg`,
`SegmentationPart/<id>.png` palette PNGs of the standard ids, `train_id.txt`,
`val_id.txt`) or in the seeds' layout (`gt_masks/<id>.npy`, `classes.txt`).
Each image is drawn from its own generator seeded by (seed, index), so output
is deterministic for a seed and independent of the order of generation.
"""
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

from .labels import STANDARD_CLASSES, voc_colormap

__all__ = ['make_synthetic_people', 'draw_synthetic_people', 'SEEDS_CLASSES',
           'sample_grid']

# The seeds' classes.txt order (docs/architecture.md, "Datasets and label layouts").
SEEDS_CLASSES = ('bg', 'low_hand', 'torso', 'low_leg', 'head', 'up_leg', 'up_hand')
_SEEDS_OF_STANDARD = np.array([0, 4, 2, 6, 1, 5, 3], dtype=np.uint8)  # standard id -> seeds id
_ID: Dict[str, int] = {name: i for i, name in enumerate(STANDARD_CLASSES)}

# RGB; skin tones from light to dark, and plausible hair colours.
_SKIN = np.array([[255, 219, 172], [241, 194, 125], [224, 172, 105], [198, 134, 66],
                  [141, 85, 36], [94, 58, 38]], dtype=np.float64)
_HAIR = np.array([[20, 15, 10], [60, 40, 20], [110, 70, 30], [200, 170, 90], [130, 130, 130],
                  [170, 60, 20]], dtype=np.float64)

_SHIFT = 4  # sub-pixel bits for cv2 drawing
_ONE = 1 << _SHIFT


def _pt(p: np.ndarray) -> Tuple[int, int]:
    return int(round(p[0] * _ONE)), int(round(p[1] * _ONE))


def _rot(v: np.ndarray, a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _colour(c: np.ndarray) -> Tuple[int, int, int]:
    return tuple(int(x) for x in np.clip(c, 0, 255))


class _Canvas:
    """An RGB image and its label map, drawn on together (painter's order)."""

    def __init__(self, img: np.ndarray, lab: np.ndarray) -> None:
        self.img, self.lab = img, lab

    def capsule(self, a, b, width: float, colour, label: int) -> None:
        w = max(int(round(width)), 1)
        cv2.line(self.img, _pt(a), _pt(b), _colour(colour), w, cv2.LINE_AA, _SHIFT)
        cv2.line(self.lab, _pt(a), _pt(b), label, w, cv2.LINE_8, _SHIFT)

    def disc(self, c, radius: float, colour, label: Optional[int]) -> None:
        r = max(int(round(radius * _ONE)), _ONE // 2)
        cv2.circle(self.img, _pt(c), r, _colour(colour), -1, cv2.LINE_AA, _SHIFT)
        if label is not None:
            cv2.circle(self.lab, _pt(c), r, label, -1, cv2.LINE_8, _SHIFT)

    def poly(self, points: Sequence[np.ndarray], colour, label: int) -> None:
        pts = np.array([_pt(p) for p in points], dtype=np.int32)
        cv2.fillConvexPoly(self.img, pts, _colour(colour), cv2.LINE_AA, _SHIFT)
        cv2.fillConvexPoly(self.lab, pts, label, cv2.LINE_8, _SHIFT)


def _clothing(rng: np.random.Generator) -> np.ndarray:
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(40, 256), rng.integers(40, 240)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float64)


def _draw_person(canvas: _Canvas, rng: np.random.Generator, hip: np.ndarray, height: float,
                 skin, shirt, trousers, hair, shoes) -> None:
    """One figure, hips at `hip`, about `height` pixels tall; pose drawn from `rng`."""
    h = height
    lean = rng.normal(0.0, 0.15) + (rng.uniform(-0.9, 0.9) if rng.random() < 0.15 else 0.0)
    up = np.array([np.sin(lean), -np.cos(lean)])
    right = np.array([np.cos(lean), np.sin(lean)])
    down = -up
    facing = 1.0 if rng.random() < 0.5 else -1.0
    neck = hip + up * 0.30 * h
    sh_w, hip_w = rng.uniform(0.085, 0.11) * h, rng.uniform(0.065, 0.085) * h

    def arm(side: float) -> None:
        shoulder = neck + right * side * sh_w * 0.85 + down * 0.03 * h
        raise_ = rng.uniform(-0.4, 2.8) if rng.random() < 0.7 else rng.uniform(-0.4, 0.5)
        d_up = _rot(down, side * raise_)
        elbow = shoulder + d_up * rng.uniform(0.13, 0.16) * h
        bend = rng.uniform(0.0, 2.4) * (1 if rng.random() < 0.5 else -1)
        d_low = _rot(d_up, bend)
        wrist = elbow + d_low * rng.uniform(0.12, 0.15) * h
        canvas.capsule(shoulder, elbow, 0.06 * h, shirt, _ID['upper_arm'])  # sleeve
        canvas.capsule(elbow, wrist, 0.045 * h, skin, _ID['lower_arm'])
        canvas.disc(wrist + d_low * 0.015 * h, 0.028 * h, skin, _ID['lower_arm'])  # hand

    def leg(side: float) -> None:
        top = hip + right * side * hip_w * 0.55
        swing = rng.uniform(-0.5, 0.5) + (facing * rng.uniform(0.8, 1.5)
                                          if rng.random() < 0.15 else 0.0)  # sitting
        d_up = _rot(down, side * 0.08 + swing)
        knee = top + d_up * rng.uniform(0.2, 0.24) * h
        d_low = _rot(d_up, -facing * rng.uniform(0.0, 1.4))  # knees bend backwards
        ankle = knee + d_low * rng.uniform(0.2, 0.24) * h
        canvas.capsule(top, knee, 0.08 * h, trousers, _ID['upper_leg'])
        canvas.capsule(knee, ankle, 0.065 * h, trousers, _ID['lower_leg'])
        foot = ankle + _rot(d_low, facing * 1.5) * 0.05 * h
        canvas.capsule(ankle, foot, 0.045 * h, shoes, _ID['lower_leg'])  # shoe

    back_arms = [s for s in (-1.0, 1.0) if rng.random() < 0.3]
    for side in back_arms:
        arm(side)
    for side in (-1.0, 1.0):
        leg(side)
    canvas.poly([hip - right * hip_w, hip + right * hip_w, neck + right * sh_w,
                 neck - right * sh_w], shirt, _ID['torso'])
    head_dir = _rot(up, rng.normal(0.0, 0.2))
    radius = rng.uniform(0.065, 0.08) * h
    centre = neck + head_dir * (0.02 * h + radius)
    canvas.capsule(neck, centre, 0.04 * h, skin, _ID['head'])  # neck counts as head
    canvas.disc(centre, radius, skin, _ID['head'])
    # hair: a cap over the top of the head (labelled head)
    cap = centre + head_dir * radius * 0.35
    canvas.disc(cap, radius * 0.8, hair, _ID['head'])
    canvas.disc(centre - head_dir * radius * 0.2, radius * 0.75, skin, None)  # face
    for side in (-1.0, 1.0):
        if side not in back_arms:
            arm(side)


def _background(rng: np.random.Generator, h: int, w: int, grid: Tuple[np.ndarray, np.ndarray]
                ) -> np.ndarray:
    """A textured (H, W, 3) float RGB background: smooth colour field + a pattern."""
    cells = (int(rng.integers(2, 6)), int(rng.integers(2, 6)))
    field = rng.uniform(0, 255, size=(cells[0], cells[1], 3)).astype(np.float32)
    # pulled towards grey: cubic upsampling of uniform colours is garish
    field = 0.6 * field + 0.4 * field.mean(axis=2, keepdims=True)
    img = cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)
    yy, xx = grid
    kind = rng.integers(0, 3)
    if kind == 0:  # stripes or a wave pattern
        angle, period = rng.uniform(0, np.pi), rng.uniform(4, 24)
        wave = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * (2 * np.pi / period))
        img += (wave * rng.uniform(15, 50))[..., None] * rng.uniform(0.3, 1.0, size=3)
    elif kind == 1:  # checks / tiles
        size = rng.uniform(5, 20)
        checks = ((xx // size + yy // size) % 2 - 0.5).astype(np.float32)
        img += (checks * rng.uniform(20, 70))[..., None] * rng.uniform(0.3, 1.0, size=3)
    return img


def _distractors(canvas: _Canvas, rng: np.random.Generator, h: int, w: int,
                 people_colours: List[np.ndarray], count: int) -> None:
    """Shapes labelled background; some limb- or head-like, in people's colours."""
    scale = min(h, w)
    for _ in range(count):
        kind = rng.integers(0, 5)
        centre = rng.uniform([0, 0], [w, h])
        if kind >= 3 and people_colours:  # a limb or a blob in a person's colour
            colour = people_colours[rng.integers(len(people_colours))]
            if kind == 3:
                a = centre
                b = a + _rot(np.array([0.0, 1.0]), rng.uniform(0, 2 * np.pi)) * \
                    rng.uniform(0.08, 0.2) * scale
                canvas.capsule(a, b, rng.uniform(0.03, 0.07) * scale, colour, 0)
                if rng.random() < 0.5:  # a jointed "arm"
                    c = b + _rot(b - a, rng.uniform(-2, 2))
                    canvas.capsule(b, c, rng.uniform(0.03, 0.05) * scale, colour, 0)
            else:
                canvas.disc(centre, rng.uniform(0.03, 0.07) * scale, colour, 0)
            continue
        colour = rng.uniform(0, 255, size=3)
        size = rng.uniform(0.04, 0.25, size=2) * scale
        if kind == 0:
            canvas.poly([centre + _rot(np.array([sx, sy]) * size, rng.uniform(0, np.pi))
                         for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))], colour, 0)
        elif kind == 1:
            canvas.disc(centre, size[0] * 0.7, colour, 0)
        else:
            canvas.capsule(centre, centre + rng.uniform(-1, 1, size=2) * size * 2,
                           rng.uniform(1, 0.03 * scale + 1), colour, 0)


def draw_synthetic_people(rng: np.random.Generator, size: Tuple[int, int] = (128, 128),
                          max_people: int = 4, _grid=None) -> Tuple[np.ndarray, np.ndarray]:
    """One image and its label map.

    Args:
        rng: the image's own generator.
        size: (H, W).
        max_people: at most this many figures (at least one).

    Returns:
        image (H, W, 3) uint8 RGB, label (H, W) uint8 standard ids (0 background,
        1 head, 2 torso, 3 upper_arm, 4 lower_arm, 5 upper_leg, 6 lower_leg).
    """
    h, w = size
    grid = _grid if _grid is not None else np.mgrid[0:h, 0:w].astype(np.float32)
    img = _background(rng, h, w, grid)
    lab = np.zeros((h, w), dtype=np.uint8)
    canvas = _Canvas(img, lab)
    n = int(rng.integers(1, max_people + 1))
    # far to near: smaller figures first, so nearer (larger) ones occlude them
    heights = np.sort(rng.uniform(0.35, 1.0, size=n)) * h
    people = []
    for height in heights:
        people.append(dict(height=height, hip=rng.uniform([0.1 * w, 0.3 * h], [0.9 * w, 0.8 * h]),
                           skin=_SKIN[rng.integers(len(_SKIN))] + rng.normal(0, 8, size=3),
                           shirt=_clothing(rng), trousers=_clothing(rng),
                           hair=_HAIR[rng.integers(len(_HAIR))], shoes=_clothing(rng) * 0.4))
    colours = [c for p in people for c in (p['skin'], p['shirt'], p['trousers'])]
    _distractors(canvas, rng, h, w, colours, int(rng.integers(3, 9)))
    for p in people:
        _draw_person(canvas, rng, p['hip'], p['height'], p['skin'], p['shirt'], p['trousers'],
                     p['hair'], p['shoes'])
    if rng.random() < 0.3:  # something in front of the people
        _distractors(canvas, rng, h, w, colours, 1)
    # lighting gradient and sensor noise, so flat colours do not survive as a cue
    yy, xx = grid
    gx, gy = rng.uniform(-0.4, 0.4, size=2)
    light = 1.0 + (gx * (xx / w - 0.5) + gy * (yy / h - 0.5))
    img *= light[..., None]
    img += rng.normal(0, rng.uniform(2, 10), size=img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        out = cv2.GaussianBlur(out, (3, 3), 0)
    return out, lab


def make_synthetic_people(out_dir: str, num_train: int, num_val: int,
                          size: Tuple[int, int] = (128, 128), seed: int = 0,
                          layout: str = 'standard', max_people: int = 4,
                          jpeg_quality: int = 92) -> Dict[str, float]:
    """Write a synthetic people dataset in one of the two layouts.

    Args:
        out_dir: created if missing; existing files of the same ids are overwritten.
        num_train, num_val: images per split (ids `train_000000`, `val_000000`, ...).
        size: (H, W) of every image.
        seed: the same seed gives the same files.
        layout: 'standard' (palette PNGs of the standard ids) or 'seeds'
            (.npy of the seeds' ids and classes.txt).
        max_people: figures per image, 1..max_people.

    Returns:
        dict(images=..., seconds=..., images_per_s=...).
    """
    if layout not in ('standard', 'seeds'):
        raise ValueError(f"layout must be 'standard' or 'seeds', got {layout!r}")
    if num_train < 0 or num_val < 0 or num_train + num_val == 0:
        raise ValueError(f'need at least one image, got num_train={num_train}, '
                         f'num_val={num_val}')
    h, w = int(size[0]), int(size[1])
    img_dir = osp.join(out_dir, 'JPEGImages')
    lab_dir = osp.join(out_dir, 'SegmentationPart' if layout == 'standard' else 'gt_masks')
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(lab_dir, exist_ok=True)
    palette = voc_colormap(256).ravel().tolist()
    grid = np.mgrid[0:h, 0:w].astype(np.float32)
    start = time.perf_counter()
    index = 0
    for split, count in (('train', num_train), ('val', num_val)):
        ids = [f'{split}_{i:06d}' for i in range(count)]
        for name in ids:
            rng = np.random.default_rng([seed, index])
            index += 1
            img, lab = draw_synthetic_people(rng, (h, w), max_people, _grid=grid)
            cv2.imwrite(osp.join(img_dir, name + '.jpg'), img[..., ::-1],
                        [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            if layout == 'standard':
                png = Image.fromarray(lab, mode='L')
                png.putpalette(palette)  # a palette PNG, as the DeepLab release
                png.save(osp.join(lab_dir, name + '.png'))
            else:
                np.save(osp.join(lab_dir, name + '.npy'), _SEEDS_OF_STANDARD[lab])
        with open(osp.join(out_dir, f'{split}_id.txt'), 'w') as f:
            f.write(''.join(i + '\n' for i in ids))
    if layout == 'seeds':
        with open(osp.join(out_dir, 'classes.txt'), 'w') as f:
            f.write(''.join(f'{i}: {n}\n' for i, n in enumerate(SEEDS_CLASSES)))
    seconds = time.perf_counter() - start
    return dict(images=float(index), seconds=seconds, images_per_s=index / max(seconds, 1e-9))


def sample_grid(images: Sequence[np.ndarray], labels: Sequence[np.ndarray],
                palette: np.ndarray, columns: int = 4) -> np.ndarray:
    """Images beside their colour label maps, tiled.

    Args:
        images: (H, W, 3) uint8 RGB each, all one size.
        labels: (H, W) ids each; palette[id] is its colour ((K, 3) uint8).
        columns: image/label pairs per row.

    Returns:
        (rows * H, columns * 2 * W, 3) uint8 RGB; empty cells are white.
    """
    h, w = images[0].shape[:2]
    rows = -(-len(images) // columns)
    grid = np.full((rows * h, columns * 2 * w, 3), 255, dtype=np.uint8)
    for k, (img, lab) in enumerate(zip(images, labels)):
        r, c = divmod(k, columns)
        grid[r * h:(r + 1) * h, 2 * c * w:(2 * c + 1) * w] = img
        grid[r * h:(r + 1) * h, (2 * c + 1) * w:(2 * c + 2) * w] = palette[lab]
    return grid
