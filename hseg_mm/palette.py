"""Colours of the tree's classes, derived from the tree itself (deterministic): the one
palette of the package (the datasets' `palette` meta, the visualiser's level panels).

Each node owns a band of hues inside its parent's band, so a child's colour is a
variation of its parent's; a leaf carried down to deeper levels keeps its colour.
"""
import colorsys
from typing import List

import numpy as np

from .hierarchy import ClassHierarchy

__all__ = ['node_palette', 'level_palettes', 'leaf_palette']


def node_palette(hierarchy: ClassHierarchy) -> np.ndarray:
    """One RGB colour per tree node.

    Returns:
        (V, 3) uint8, row v = the colour of channel v of `hierarchy.node_names`.
    """
    colors = np.zeros((hierarchy.num_nodes, 3), dtype=np.uint8)
    depth_span = max(hierarchy.num_levels - 1, 1)

    def paint(children: List[int], low: float, width: float) -> None:
        step = width / len(children)
        for i, v in enumerate(children):
            hue = low + (i + 0.5) * step
            depth = (hierarchy.depths[v] - 1) / depth_span  # 0 at the top, 1 deepest
            # deeper nodes are more saturated; siblings alternate in brightness so
            # that neighbouring hues stay apart
            saturation = 0.45 + 0.5 * depth
            value = 0.95 - 0.2 * depth - 0.15 * (i % 2)
            colors[v] = np.round(np.array(colorsys.hsv_to_rgb(hue, saturation, value)) * 255)
            if hierarchy.children[v]:
                paint(hierarchy.children[v], low + i * step, step)

    roots = [v for v, p in enumerate(hierarchy.parents) if p < 0]
    paint(roots, 0.0, 1.0)
    return colors


def level_palettes(hierarchy: ClassHierarchy) -> List[np.ndarray]:
    """The colour of every class of every level.

    Returns:
        num_levels arrays (C_k, 3) uint8, row c = class c of level k.
    """
    colors = node_palette(hierarchy)
    return [colors[members] for members in hierarchy.levels]


def leaf_palette(hierarchy: ClassHierarchy) -> List[List[int]]:
    """Leaf colours by label id, in mmseg's `palette` format (list of [r, g, b])."""
    return node_palette(hierarchy)[hierarchy.leaf_nodes].tolist()
