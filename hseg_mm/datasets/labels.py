"""Label layouts on disk and their mapping onto the config's class tree.

A layout knows its own id -> name table; its ids are mapped onto the tree's
leaf ids by leaf NAME (never the other way round), so one tree serves every
layout. `decode_label_map` turns a raw label array into tree ids and rejects,
naming the file, anything that would otherwise be trained on as garbage.
"""
import os.path as osp
import re
from numbers import Integral
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from ..hierarchy import ClassHierarchy

# PASCAL-Person-Part, standard ids (DeepLab release, Graphonomy, HSSN, SCHP, CDCL).
STANDARD_CLASSES = ('background', 'head', 'torso', 'upper_arm', 'lower_arm', 'upper_leg',
                    'lower_leg')

# Other spellings of the same parts (the seeds' classes.txt, seed 001's tree).
DEFAULT_ALIASES: Dict[str, str] = {
    'bg': 'background', 'low_hand': 'lower_arm', 'up_hand': 'upper_arm',
    'low_leg': 'lower_leg', 'up_leg': 'upper_leg'}


def voc_colormap(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map (bit interleaving of the index), (n, 3) uint8 RGB."""
    index = np.arange(n)
    cmap = np.zeros((n, 3), dtype=np.int64)
    for shift in range(8):
        for c in range(3):
            bit = (index >> (3 * shift + c)) & 1
            cmap[:, c] |= bit << (7 - shift)
    return cmap.astype(np.uint8)


def voc_brightness_values(num_ids: int) -> List[int]:
    """Grey values a VOC-palette label of ids 0..num_ids-1 (and the 255 border)
    takes when read as grayscale instead of as palette indices.

    Both truncating and rounding luma conversions are covered (PIL rounds,
    others truncate): for the standard 7 classes 0, 38, 75, 113, 14/15, 52/53, 89/90.
    """
    cmap = voc_colormap(256)[list(range(num_ids)) + [255]].astype(np.float64)
    luma = cmap @ np.array([0.299, 0.587, 0.114])
    values = set(np.floor(luma).astype(int).tolist()) | set(np.round(luma).astype(int).tolist())
    return sorted(values)


def canonical_name(name: str, aliases: Mapping[str, str]) -> str:
    return aliases.get(name, name)


def layout_to_tree(layout_classes: Sequence[str], hierarchy: ClassHierarchy,
                   aliases: Optional[Mapping[str, str]] = None,
                   source: str = 'dataset', unique: bool = True) -> List[int]:
    """Tree leaf id of every layout id, matched by (aliased) leaf name.

    Args:
        layout_classes: name of layout id i at position i.
        hierarchy: the config's tree.
        aliases: other spelling -> canonical name, applied to both sides.
        source: what to name in the error (a file or a dataset).
        unique: refuse two layout names that land on the same leaf (off when
            several disk ids are merged into one leaf on purpose).

    Returns:
        list, entry i = tree id of layout id i.
    """
    aliases = DEFAULT_ALIASES if aliases is None else aliases
    tree: Dict[str, List[int]] = {}
    for lid, n in enumerate(hierarchy.leaf_names):
        tree.setdefault(canonical_name(n, aliases), []).append(lid)
    mapping, missing = [], []
    for name in layout_classes:
        key = canonical_name(name, aliases)
        if key not in tree:
            missing.append(name)
        elif len(tree[key]) > 1:  # e.g. leaves 'bg' and 'background' under the default aliases
            raise ValueError(
                f'{source}: layout class {name!r} matches the leaves '
                f'{[hierarchy.leaf_names[i] for i in tree[key]]}, which the aliases '
                f'{dict(aliases)} spell alike; pass `aliases` that tell them apart')
        mapping.append(tree[key][0] if key in tree else -1)
    if missing:
        raise ValueError(
            f'{source}: layout classes {missing} are not leaves of the hierarchy '
            f'(leaves {hierarchy.leaf_names}; aliases {dict(aliases)}). Add them to the tree '
            'or give an alias.')
    if unique and len(set(mapping)) != len(mapping):
        raise ValueError(f'{source}: two layout classes of {list(layout_classes)} map to the '
                         f'same leaf of {hierarchy.leaf_names}')
    return mapping


LayoutClasses = Union[Sequence[Optional[str]], Mapping[Union[int, str], Optional[str]]]


def _disk_id(key: Union[int, str], source: str) -> int:
    # YAML / JSON configs give mapping keys as strings: accept "7" as 7, nothing looser.
    if isinstance(key, Integral) and not isinstance(key, bool) and key >= 0:
        return int(key)
    if isinstance(key, str) and key.strip().isdigit():
        return int(key.strip())
    raise ValueError(f'{source}: layout_classes key {key!r} is not a label id on disk '
                     '(a non-negative integer, or its digits as a string)')


def layout_table(layout_classes: LayoutClasses, hierarchy: ClassHierarchy,
                 aliases: Optional[Mapping[str, str]] = None,
                 source: str = 'dataset') -> List[int]:
    """Look-up table disk id -> tree leaf id, from the names of the disk ids.

    Args:
        layout_classes: a sequence (entry i names disk id i) or a mapping
            {disk id (int or digit string): name}. A name is matched to a leaf
            as in `layout_to_tree`; None ignores that disk id. In a mapping
            several disk ids may name one leaf (they are merged), and disk ids
            it does not list are not part of the layout.
        hierarchy: the config's tree; its ignore index is used for None.
        aliases: other spelling -> canonical name.
        source: what to name in the error.

    Returns:
        list of length max disk id + 1: entry i = tree leaf id of disk id i,
        the ignore index for an ignored id, -1 for an id the mapping lacks
        (`decode_label_map` rejects such a value, naming the file).
    """
    if isinstance(layout_classes, Mapping):
        names = {_disk_id(k, source): v for k, v in layout_classes.items()}
        if len(names) != len(layout_classes):
            raise ValueError(f'{source}: layout_classes gives a disk id twice '
                             f'(as a number and as a string): {dict(layout_classes)}')
    elif isinstance(layout_classes, Sequence) and not isinstance(layout_classes, str):
        names = dict(enumerate(layout_classes))
    else:
        raise TypeError(f'{source}: layout_classes must be a list of names or a mapping '
                        f'{{disk id: name}}, got {layout_classes!r}')
    named = {i: n for i, n in names.items() if n is not None}
    if not named:
        raise ValueError(f'{source}: layout_classes {layout_classes!r} names no leaf')
    wrong = [n for n in named.values() if not isinstance(n, str)]
    if wrong:
        raise TypeError(f'{source}: layout_classes values must be leaf names or None, '
                        f'got {wrong}')
    ignore = hierarchy.ignore_index
    if ignore in named:
        raise ValueError(f'{source}: disk id {ignore} is the ignore index and cannot name a '
                         f'leaf ({named[ignore]!r}); map it to None or use another ignore_index')
    leaf_ids = layout_to_tree(list(named.values()), hierarchy, aliases, source,
                              unique=not isinstance(layout_classes, Mapping))
    table = [-1] * (max(names) + 1)
    for i in names:
        table[i] = ignore
    for i, lid in zip(named, leaf_ids):
        table[i] = lid
    return table


def _id_ranges(ids: Sequence[int]) -> str:
    """'0..3, 5, 7..9' for [0, 1, 2, 3, 5, 7, 8, 9] (sorted input)."""
    parts, start = [], None
    for k, v in enumerate(ids):
        if start is None:
            start = v
        if k + 1 == len(ids) or ids[k + 1] != v + 1:
            parts.append(str(v) if v == start else f'{start}..{v}')
            start = None
    return ', '.join(parts)


_CLASS_LINE = re.compile(r'^\s*(?:(\d+)\s*[:,=\s]\s*([^\s:,=]+)|([^\s:,=]+)\s*[:,=\s]\s*(\d+)|'
                         r'([^\s:,=\d][^\s:,=]*))\s*$')


def read_classes_file(path: str) -> List[str]:
    """Layout class names by id from a classes.txt.

    Accepts lines "0: bg", "0 bg", "bg: 0", "bg 0" or bare names (id = line
    number among non-empty lines). Ids must be exactly 0..n-1.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'classes file not found: {path}')
    with open(path) as f:
        lines = [ln.strip() for ln in f if ln.strip()]
    if not lines:
        raise ValueError(f'{path}: empty classes file')
    names: Dict[int, str] = {}
    for i, line in enumerate(lines):
        m = _CLASS_LINE.match(line)
        if m is None:
            raise ValueError(f'{path}: cannot parse line {line!r}; expected "id: name"')
        if m.group(1) is not None:
            cid, name = int(m.group(1)), m.group(2)
        elif m.group(3) is not None:
            cid, name = int(m.group(4)), m.group(3)
        else:
            cid, name = i, m.group(5)
        if cid in names:
            raise ValueError(f'{path}: class id {cid} given twice ({names[cid]!r}, {name!r})')
        names[cid] = name
    if sorted(names) != list(range(len(names))):
        raise ValueError(f'{path}: class ids must be 0..{len(names) - 1}, got {sorted(names)}')
    return [names[i] for i in range(len(names))]


def _present_values(raw: np.ndarray) -> np.ndarray:
    # bincount is several times faster than np.unique on label-sized arrays.
    if raw.size and raw.dtype.kind in 'ui' and raw.min() >= 0 and raw.max() < 1 << 16:
        return np.flatnonzero(np.bincount(raw.ravel().astype(np.int64)))
    return np.unique(raw)


def voc_colours_to_ids(raw: np.ndarray, num_ids: int, ignore_index: int,
                       source: str) -> np.ndarray:
    """Explicit decoding of a label saved as VOC colours, or as their grey values.

    Args:
        raw: (H, W, 3|4) RGB(A) in the VOC colour map, or (H, W) grey values
            of it (a palette label converted to grayscale).
        num_ids: layout ids 0..num_ids-1; the VOC border colour (224, 224, 192)
            and its grey value become `ignore_index`.

    Returns:
        (H, W) int64 layout ids or the ignore index; an unknown colour or grey
        value raises, naming `source`.
    """
    cmap = voc_colormap(256)[list(range(num_ids)) + [255]].astype(np.int64)
    targets = np.array(list(range(num_ids)) + [ignore_index])
    if raw.ndim == 3 and raw.shape[2] in (3, 4):
        rgb = raw[..., :3].astype(np.int64)
        keys = (cmap[:, 0] << 16) | (cmap[:, 1] << 8) | cmap[:, 2]
        packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        order = np.argsort(keys)
        pos = np.searchsorted(keys[order], packed).clip(0, len(keys) - 1)
        found = keys[order][pos] == packed
        if not found.all():
            colours = np.unique(rgb[~found].reshape(-1, 3), axis=0)[:5].tolist()
            raise ValueError(f'{source}: colours {colours} are not VOC colours of ids 0..'
                             f'{num_ids - 1}')
        return targets[order][pos]
    luma = cmap.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    lut = np.full(256, -1, dtype=np.int64)
    for value, target in zip(luma, targets):  # truncating and rounding converters
        lut[int(np.floor(value))] = lut[int(np.round(value))] = target
    if raw.ndim != 2 or raw.dtype != np.uint8 or (lut[_present_values(raw)] < 0).any():
        bad = sorted(set(_present_values(raw).tolist()) - set(np.flatnonzero(lut >= 0)))
        raise ValueError(f'{source}: not a VOC-colour or VOC-grey label (values {bad[:20]} '
                         'are neither)')
    return lut[raw]


def decode_label_map(raw: np.ndarray, layout_to_tree_ids: Sequence[int], ignore_index: int,
                     source: str, expected_shape: Optional[Sequence[int]] = None,
                     voc_colours: bool = False) -> np.ndarray:
    """Map a raw label array (layout ids) onto tree leaf ids, rejecting garbage.

    Args:
        raw: (H, W) integer layout ids, or the ignore index.
        layout_to_tree_ids: entry i = tree id of layout id i (`layout_table`);
            an entry equal to `ignore_index` ignores that id, -1 rejects it.
        ignore_index: kept as is.
        source: the file, named in every error.
        expected_shape: (H, W) of the image, checked when given.
        voc_colours: decode a colour label, or a label whose values are not
            layout ids but VOC grey values, through the VOC colour map
            (`voc_colours_to_ids`) instead of rejecting it. Off by default.

    Returns:
        (H, W) uint8 tree leaf ids; `raw` is not modified.
    """
    num_ids = len(layout_to_tree_ids)
    if voc_colours and raw.ndim == 3:
        raw = voc_colours_to_ids(raw, num_ids, ignore_index, source)
    elif voc_colours and raw.ndim == 2 and raw.dtype == np.uint8:
        present = _present_values(raw)
        if not all(v < num_ids or v == ignore_index for v in present.tolist()):
            raw = voc_colours_to_ids(raw, num_ids, ignore_index, source)
    if raw.ndim == 3 and raw.shape[2] in (3, 4):
        raise ValueError(
            f'{source}: colour label of shape {raw.shape}; class ids (one channel, or a '
            'palette PNG whose indices are the ids) are expected. Convert colours to ids '
            'first, or decode VOC colours explicitly (LoadCheckedAnnotations(voc_colours=True)); '
            'a colour label is never trained on.')
    if raw.ndim != 2:
        raise ValueError(f'{source}: label of shape {raw.shape}; expected (H, W) class ids')
    if raw.dtype.kind not in 'ui':
        raise ValueError(f'{source}: label dtype {raw.dtype}; expected integer class ids')
    if expected_shape is not None and tuple(raw.shape) != tuple(expected_shape[:2]):
        raise ValueError(f'{source}: label size {tuple(raw.shape)} (H, W) differs from its '
                         f'image size {tuple(expected_shape[:2])}')
    if not 0 <= ignore_index <= 255:
        raise ValueError(f'ignore index {ignore_index} does not fit a uint8 label map')
    lut = np.full(max(len(layout_to_tree_ids), ignore_index + 1), -1, dtype=np.int64)
    lut[:len(layout_to_tree_ids)] = layout_to_tree_ids
    lut[ignore_index] = ignore_index
    present = _present_values(raw)
    bad = [int(v) for v in present if not (0 <= v < len(lut)) or lut[int(v)] < 0]
    if bad:
        hint = ''
        brightness = voc_brightness_values(len(layout_to_tree_ids))
        if set(present.tolist()) <= set(brightness):
            hint = (f' These are the grey values {brightness} of VOC-palette ids read as '
                    'grayscale: save the label as a palette PNG or as ids 0..'
                    f'{len(layout_to_tree_ids) - 1}, or decode them explicitly '
                    '(LoadCheckedAnnotations(voc_colours=True)).')
        known = [i for i, t in enumerate(layout_to_tree_ids) if t >= 0]
        raise ValueError(
            f'{source}: label values {bad[:20]} are not layout ids {_id_ranges(known)} '
            f'nor the ignore index {ignore_index}.{hint}')
    # a uint8 table gathers in one pass and yields mmseg's label dtype directly
    return lut.clip(0).astype(np.uint8)[raw]
