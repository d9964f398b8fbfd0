"""The class tree as data: every other module reads it, none hard-codes it.

A tree is a nested mapping whose leaves are label ids (docs/architecture.md,
"The class tree")::

    dict(background=0,
         body=dict(upper_body=dict(head=1, torso=2, upper_arm=3, lower_arm=4),
                   lower_body=dict(upper_leg=5, lower_leg=6)))

Conventions, used throughout the package:

- Nodes are every key of the mapping (the root is implicit and has no channel).
  `node_names` is the channel order of a hierarchical score map: by depth, and
  within a depth by the smallest label id beneath each node.
- Level `k` (0-based here, "level k+1" for users) holds the nodes at depth `k+1`
  plus the shallower leaves carried down unchanged. Classes of a level are ordered
  by the smallest label id beneath them, so the deepest level's class index equals
  the label id.
- Label ids are the leaf classes: they must be exactly 0..L-1 (any order in the
  tree), as mmseg's `classes` are indices. `ignore_index` passes through unchanged.

A config states its tree once, as the top-level `hierarchy`: this mapping, a preset
name (a file in hseg_mm/hierarchies/, shipped inside the package) or a YAML/JSON tree
file;
`hseg_mm.engine.apply_hierarchy` hands it to every part.
"""
import os.path as osp
from collections.abc import Mapping
from importlib import resources
from numbers import Integral
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

__all__ = ['ClassHierarchy', 'HierarchyError', 'HIERARCHY_DIR', 'build_hierarchy',
           'load_tree_file', 'preset_names', 'resolve_tree', 'tree_from_paths']

# The shipped trees, one file each, with their sources: package data (setup.py), so an
# installed wheel has them. A preset name is a file name there without its suffix.
HIERARCHY_DIR = resources.files('hseg_mm') / 'hierarchies'
TREE_FILE_SUFFIXES = ('.yaml', '.yml', '.json')


def preset_names() -> List[str]:
    """Names of the shipped trees (`hseg_mm/hierarchies/<name>.yaml`)."""
    return sorted(Path(p.name).stem for p in HIERARCHY_DIR.iterdir()
                  if p.name.endswith(TREE_FILE_SUFFIXES))


def tree_from_paths(names: Sequence[str], separator: str = '--',
                    source: str = 'label names') -> dict:
    """A tree from label names that are paths, as Mapillary Vistas names its labels
    (`construction--flat--road`, `object--vehicle--car`).

    Name i is the leaf of label id i; every proper prefix of a name is an inner
    node. A node is named by its whole path, so equal last parts under different
    parents (`marking--continuous--dashed`, `marking-only--continuous--dashed`)
    stay apart.

    Returns:
        the nested mapping, children in the order the names first reach them.
    """
    tree: dict = {}
    for label, name in enumerate(names):
        parts = name.split(separator)
        if not name or not all(parts):
            raise HierarchyError(f'{source}: label {label} {name!r} is not a path of '
                                 f'non-empty parts joined by {separator!r}')
        node = tree
        for depth in range(1, len(parts)):
            key = separator.join(parts[:depth])
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise HierarchyError(f'{source}: {key!r} is a label (id {child}) and also the '
                                     f'parent of label {label} {name!r}')
            node = child
        if name in node:
            raise HierarchyError(f'{source}: label {label} {name!r} is given twice, or is '
                                 'also the parent of another label')
        node[name] = label
    return tree


def _is_label_list(content: object) -> bool:
    # Mapillary Vistas' config_v*.json: {"labels": [{"name": "animal--bird", ...}, ...]}
    return isinstance(content, Mapping) and isinstance(content.get('labels'), list) and \
        all(isinstance(x, Mapping) and 'name' in x for x in content['labels'])


def load_tree_file(path: Union[str, Path]) -> dict:
    """The nested mapping of a tree file (YAML or JSON).

    The file holds the tree itself; or, as the shipped files do (so that a config
    may also list one in `_base_`), a mapping whose only key is `hierarchy`; or, as
    Mapillary Vistas' `config_v2.0.json` does, a `labels` list whose `name`s are
    `--` paths, label id = position (the tree is built by `tree_from_paths`).
    """
    import mmengine.fileio
    path = str(path)
    if not osp.isfile(path):
        raise HierarchyError(f'tree file not found: {path}')
    try:
        tree = mmengine.fileio.load(path)
    except Exception as err:  # yaml and json raise their own types
        raise HierarchyError(f'{path}: unreadable tree file ({err})') from None
    if isinstance(tree, Mapping) and list(tree) == ['hierarchy'] and \
            isinstance(tree['hierarchy'], Mapping):
        tree = tree['hierarchy']
    elif _is_label_list(tree):
        tree = tree_from_paths([x['name'] for x in tree['labels']], source=path)
    if not isinstance(tree, Mapping):
        raise HierarchyError(f'{path}: a tree file holds a nested mapping of names to label '
                             f'ids, got {type(tree).__name__}')
    return dict(tree)


def resolve_tree(spec: Union[Mapping, str], base_dir: Optional[str] = None) -> Mapping:
    """The nested mapping a config value states: itself, a tree file, or a preset.

    Args:
        spec: a nested mapping; a path ending in .yaml/.yml/.json, looked up as
            given (absolute or from the working directory), then under `base_dir`
            (the directory of the config that names it); or a preset name
            (`preset_names()`).
        base_dir: directory of the config file that states `spec`, if known.
    """
    if not isinstance(spec, str):
        return spec
    if spec.endswith(TREE_FILE_SUFFIXES) or '/' in spec or osp.sep in spec:
        candidates = [spec]
        if not osp.isabs(spec) and base_dir:
            candidates.append(osp.join(base_dir, spec))
        for path in candidates:
            if osp.isfile(path):
                return load_tree_file(path)
        raise HierarchyError(f'tree file not found: {spec!r} (looked for {candidates})')
    names = preset_names()
    if spec not in names:
        raise HierarchyError(f'unknown hierarchy preset {spec!r}; presets: {names} (files in '
                             f'{HIERARCHY_DIR}), or give a path to a .yaml/.json tree file')
    for suffix in TREE_FILE_SUFFIXES:
        preset = HIERARCHY_DIR / (spec + suffix)
        if preset.is_file():
            with resources.as_file(preset) as path:
                return load_tree_file(path)
    raise AssertionError(spec)  # preset_names() lists only existing files


class HierarchyError(ValueError):
    """A malformed class tree; the message names the node or id at fault."""


class ClassHierarchy:
    """A class tree with its levels, node order and label look-up tables.

    Args:
        tree: nested mapping, leaves are integer label ids; or a preset name
            or a tree file path (`resolve_tree`).
        ignore_index: label value that is never a class and passes through
            every look-up table unchanged.
        base_dir: directory a relative tree file path is also looked up in.
    """

    def __init__(self, tree: Union[Mapping, str], ignore_index: int = 255,
                 base_dir: Optional[str] = None) -> None:
        tree = resolve_tree(tree, base_dir)
        if not isinstance(tree, Mapping) or not tree:
            raise HierarchyError(
                f'the hierarchy must be a non-empty mapping of names to label ids or '
                f'sub-mappings, got {tree!r}')
        self.tree = tree
        self.ignore_index = int(ignore_index)

        paths, parents, label_ids = [], [], []  # in depth-first (mapping) order
        seen_names: Dict[str, str] = {}
        seen_ids: Dict[int, str] = {}

        def visit(mapping: Mapping, parent: int, prefix: str) -> None:
            for name, value in mapping.items():
                path = f'{prefix}{name}'
                if not isinstance(name, str) or not name:
                    raise HierarchyError(f'node {path!r}: names must be non-empty strings')
                if name in seen_names:
                    raise HierarchyError(
                        f'node name {name!r} is used twice ({seen_names[name]!r} and '
                        f'{path!r}); node names must be unique')
                seen_names[name] = path
                index = len(paths)
                paths.append(path)
                parents.append(parent)
                if isinstance(value, Mapping):
                    if not value:
                        raise HierarchyError(f'node {path!r} is empty: give it children '
                                             'or make it a leaf with a label id')
                    label_ids.append(None)
                    visit(value, index, path + '/')
                elif isinstance(value, Integral) and not isinstance(value, bool):
                    label = int(value)
                    if label < 0:
                        raise HierarchyError(f'leaf {path!r} has negative label id {label}')
                    if label == self.ignore_index:
                        raise HierarchyError(f'leaf {path!r} uses the ignore index '
                                             f'{label} as its label id')
                    if label in seen_ids:
                        raise HierarchyError(f'label id {label} is used by both '
                                             f'{seen_ids[label]!r} and {path!r}')
                    seen_ids[label] = path
                    label_ids.append(label)
                else:
                    raise HierarchyError(
                        f'leaf {path!r} has {value!r} ({type(value).__name__}); a leaf must '
                        'be an integer label id and an inner node a non-empty mapping')

        visit(tree, -1, '')
        num_leaves = len(seen_ids)
        missing = sorted(set(range(num_leaves)) - set(seen_ids))
        if missing:
            raise HierarchyError(
                f'label ids must be 0..{num_leaves - 1} (one per leaf, any order); '
                f'missing {missing}, extra {sorted(set(seen_ids) - set(range(num_leaves)))}. '
                'Map other ids with the dataset, not the tree.')

        # Depth and the smallest label id beneath each node (children come after
        # their parent in depth-first order, so one reverse sweep suffices).
        n = len(paths)
        depth = [0] * n
        for i in range(n):
            depth[i] = 1 if parents[i] < 0 else depth[parents[i]] + 1
        min_leaf = [lid if lid is not None else num_leaves for lid in label_ids]
        for i in reversed(range(n)):
            if parents[i] >= 0:
                min_leaf[parents[i]] = min(min_leaf[parents[i]], min_leaf[i])

        # Channel order: by depth, then by the smallest label id beneath.
        order = sorted(range(n), key=lambda i: (depth[i], min_leaf[i]))
        new_index = {old: new for new, old in enumerate(order)}
        self.node_names: List[str] = [paths[i].rsplit('/', 1)[-1] for i in order]
        self.node_paths: List[str] = [paths[i] for i in order]
        self.parents: List[int] = [new_index[parents[i]] if parents[i] >= 0 else -1
                                   for i in order]
        self.depths: List[int] = [depth[i] for i in order]
        self.node_label_ids: List[Optional[int]] = [label_ids[i] for i in order]
        self._min_leaf = [min_leaf[i] for i in order]

        self.num_nodes = n
        self.num_leaves = num_leaves
        self.num_levels = max(self.depths)
        # leaf_nodes[label id] -> node index
        self.leaf_nodes: List[int] = [0] * num_leaves
        for v, lid in enumerate(self.node_label_ids):
            if lid is not None:
                self.leaf_nodes[lid] = v
        self.children: List[List[int]] = [[] for _ in range(n)]
        for v, p in enumerate(self.parents):
            if p >= 0:
                self.children[p].append(v)
        self.ancestors: List[List[int]] = []  # strict ancestors, nearest first
        for v in range(n):
            chain, p = [], self.parents[v]
            while p >= 0:
                chain.append(p)
                p = self.parents[p]
            self.ancestors.append(chain)
        self.descendants: List[List[int]] = [[] for _ in range(n)]  # strict, channel order
        for v in range(n):
            for a in self.ancestors[v]:
                self.descendants[a].append(v)

        # Levels: nodes at depth k+1 and the shallower leaves, by smallest label id.
        self.levels: List[List[int]] = []
        for k in range(self.num_levels):
            members = [v for v in range(n) if self.depths[v] == k + 1 or
                       (self.depths[v] <= k and self.node_label_ids[v] is not None)]
            self.levels.append(sorted(members, key=lambda v: self._min_leaf[v]))

        # leaf_paths[l, k] = node of leaf l at level k (a carried leaf repeats).
        self.leaf_paths = np.zeros((num_leaves, self.num_levels), dtype=np.int64)
        for lid, v in enumerate(self.leaf_nodes):
            chain = [v] + self.ancestors[v]  # leaf up to depth 1
            for k in range(self.num_levels):
                self.leaf_paths[lid, k] = chain[max(len(chain) - 1 - k, 0)]
        # leaf_to_level[k, l] = class index of leaf l at level k.
        self.leaf_to_level = np.zeros((self.num_levels, num_leaves), dtype=np.int64)
        for k, members in enumerate(self.levels):
            position = {v: c for c, v in enumerate(members)}
            self.leaf_to_level[k] = [position[v] for v in self.leaf_paths[:, k]]
        # path_mask[l, v] = node v lies on the root-to-leaf path of leaf l.
        self.path_mask = np.zeros((num_leaves, n), dtype=bool)
        for lid, v in enumerate(self.leaf_nodes):
            self.path_mask[lid, [v] + self.ancestors[v]] = True

    # ------------------------------------------------------------------ names
    @property
    def leaf_names(self) -> List[str]:
        """Leaf names by label id: mmseg's `classes`."""
        return [self.node_names[v] for v in self.leaf_nodes]

    @property
    def level_sizes(self) -> List[int]:
        return [len(m) for m in self.levels]

    def level_names(self, level: int) -> List[str]:
        """Class names of a level (0-based), in class-index order."""
        return [self.node_names[v] for v in self.levels[level]]

    def node_index(self, name: str) -> int:
        """Channel of the node called `name`."""
        try:
            return self.node_names.index(name)
        except ValueError:
            raise KeyError(f'no node {name!r} in the hierarchy; nodes: {self.node_names}')

    def level_parents(self, level: int) -> List[int]:
        """For each class of `level` (>= 1), its class index at `level - 1`."""
        previous = {v: c for c, v in enumerate(self.levels[level - 1])}
        return [previous[v] if v in previous else previous[self.parents[v]]
                for v in self.levels[level]]

    def to_dict(self) -> dict:
        """The tree as plain nested dicts and ints (for configs, metainfo, checkpoints)."""
        def plain(mapping: Mapping) -> dict:
            return {k: plain(v) if isinstance(v, Mapping) else int(v)
                    for k, v in mapping.items()}
        return plain(self.tree)

    def same_tree(self, other: 'ClassHierarchy') -> bool:
        """Same nodes under the same parents with the same label ids (order aside)."""
        return (self.node_paths == other.node_paths
                and self.node_label_ids == other.node_label_ids)

    def describe(self) -> str:
        """The tree on one line, e.g. `background=0, body(upper_body(head=1), ...)`."""
        def text(mapping: Mapping) -> str:
            return ', '.join(f'{k}({text(v)})' if isinstance(v, Mapping) else f'{k}={int(v)}'
                             for k, v in mapping.items())
        return text(self.tree)

    def __repr__(self) -> str:
        return (f'ClassHierarchy({self.num_leaves} leaves, {self.num_nodes} nodes, '
                f'levels {self.level_sizes}, nodes {self.node_names})')

    # ------------------------------------------------------- look-up tables
    def level_luts(self) -> np.ndarray:
        """Look-up tables label id -> class index at each level.

        Returns:
            (num_levels, max(num_leaves, ignore_index + 1)) int64; the ignore
            index maps to itself, any other id outside the tree to -1.
        """
        size = max(self.num_leaves, self.ignore_index + 1)
        lut = np.full((self.num_levels, size), -1, dtype=np.int64)
        lut[:, :self.num_leaves] = self.leaf_to_level
        lut[:, self.ignore_index] = self.ignore_index
        return lut

    def check_labels(self, label: Union[np.ndarray, Tensor], source: str = 'label') -> None:
        """Raise ValueError naming `source` if `label` holds ids outside the tree."""
        values = torch.as_tensor(label).unique().tolist()
        bad = [v for v in values if not (0 <= v < self.num_leaves or v == self.ignore_index)]
        if bad:
            raise ValueError(
                f'{source}: label ids {bad} are not in the hierarchy (leaves 0..'
                f'{self.num_leaves - 1}, ignore index {self.ignore_index})')

    def split_labels(self, label: Tensor, check: bool = True) -> List[Tensor]:
        """Split a leaf label map into one label map per level.

        Args:
            label: (N, H, W) or any shape, integer leaf ids or the ignore index.
            check: raise if an id is outside the tree (costs one device sync).

        Returns:
            num_levels tensors shaped like `label`, class indices of each level,
            ignore pixels kept at the ignore index.
        """
        if check:
            self.check_labels(label)
        lut = torch.as_tensor(self.level_luts(), device=label.device)
        index = label.long().clamp(0, lut.shape[1] - 1)
        return [lut[k][index] for k in range(self.num_levels)]

    # ----------------------------------------------------- probabilities
    def level_matrices(self, device=None, dtype=torch.float32) -> List[Tensor]:
        """One-hot membership (C_k, L) of each leaf in each class of level k."""
        eye = torch.eye(self.num_leaves, dtype=dtype, device=device)
        return [torch.zeros(len(m), self.num_leaves, dtype=dtype, device=device)
                .index_add_(0, torch.as_tensor(self.leaf_to_level[k], device=device), eye)
                for k, m in enumerate(self.levels)]

    def sum_to_levels(self, leaf_probs: Tensor) -> List[Tensor]:
        """Sum leaf probabilities (or any additive leaf quantity) into every level.

        Args:
            leaf_probs: (N, L, ...) with channel l = label id l.

        Returns:
            num_levels tensors (N, C_k, ...).
        """
        mats = self.level_matrices(leaf_probs.device, leaf_probs.dtype)
        flat = leaf_probs.flatten(2)
        return [torch.einsum('cl,nlp->ncp', m, flat).reshape(
            leaf_probs.shape[0], m.shape[0], *leaf_probs.shape[2:]) for m in mats]

    def path_mask_tensor(self, device=None, dtype=torch.float32) -> Tensor:
        """`path_mask` (L, V) as a tensor: 1 where node v is on leaf l's path."""
        return torch.as_tensor(self.path_mask, dtype=dtype, device=device)

    def node_targets(self, label: Tensor) -> Tensor:
        """Binary target of every node per pixel.

        Args:
            label: (N, H, W) leaf ids; ignore pixels give all-zero targets.

        Returns:
            (N, V, H, W) float, 1 where the node is on the pixel's path.
        """
        valid = label != self.ignore_index
        mask = self.path_mask_tensor(label.device)
        targets = mask[torch.where(valid, label, torch.zeros_like(label)).long()]
        targets = targets * valid.unsqueeze(-1)
        return targets.permute(0, 3, 1, 2)


def build_hierarchy(cfg: Union['ClassHierarchy', Mapping, str],
                    ignore_index: int = 255, base_dir: Optional[str] = None) -> ClassHierarchy:
    """A `ClassHierarchy` from a config value (tree, preset name, tree file, or one built)."""
    if isinstance(cfg, ClassHierarchy):
        return cfg
    return ClassHierarchy(cfg, ignore_index=ignore_index, base_dir=base_dir)
