import copy
import os.path as osp
from typing import List, Mapping, Optional, Sequence, Tuple, Union

import mmengine.fileio as fileio
from mmseg.datasets import BaseSegDataset
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import DATASETS

from ..hierarchy import ClassHierarchy, build_hierarchy
from .labels import STANDARD_CLASSES, layout_to_tree, leaf_palette
from .transforms import LoadCheckedAnnotations

# Where the split lists of the known on-disk variants live (DESIGN.md section 1):
# Graphonomy-style repacks (beside the folders or in list/), the DeepLab release.
SPLIT_FILE_CANDIDATES = ('{split}_id.txt', 'list/{split}_id.txt', '{split}.txt',
                         'list/{split}.txt', 'pascal_person_part_trainval_list/{split}.txt',
                         'pascal_person_part_trainval_list/{split}_id.txt')


@DATASETS.register_module()
class PascalPersonPartDataset(BaseSegDataset):
    """PASCAL-Person-Part, standard layout, with labels mapped onto a class tree.

    Files: `JPEGImages/<id>.jpg` and `SegmentationPart/<id>.png` (palette PNGs
    read as indices, or single-channel ids) under `data_root`; a split list
    whose lines are either ids (`2008_000003`) or "image label" pairs
    (`/JPEGImages/2008_000003.jpg /SegmentationPart/2008_000003.png`, the
    DeepLab release). A pair's path is taken under `data_root` when it exists
    there, else its file name is looked up in `data_prefix` (the DeepLab
    release keeps labels in `pascal_person_part_gt/`: set
    `data_prefix=dict(img_path='JPEGImages', seg_map_path='pascal_person_part_gt')`).

    Layout ids are mapped onto `hierarchy`'s leaf ids by leaf name (see
    `labels.DEFAULT_ALIASES`); a layout class the tree lacks is an error. Every
    listed file must exist when the dataset is built; label contents are
    checked when loaded, by `LoadCheckedAnnotations` / `LoadNpyAnnotations`
    (mmseg's plain `LoadAnnotations` neither maps nor checks and is refused).

    Args:
        hierarchy: the class tree (nested mapping, preset name or ClassHierarchy).
        split: 'train' / 'val' / ...: the split list is looked up in
            `SPLIT_FILE_CANDIDATES` under `data_root`. Ignored if `ann_file` is given.
        ann_file: explicit split list (relative to `data_root`).
        layout_classes: names of the layout ids on disk, id i at position i;
            default the standard order. E.g. M2FP's order is ('background',
            'lower_arm', 'head', 'upper_leg', 'torso', 'lower_leg', 'upper_arm').
        aliases: other spelling -> tree name, for layout names.
    """
    METAINFO: dict = dict()
    LAYOUT_CLASSES: Sequence[str] = STANDARD_CLASSES

    def __init__(self,
                 hierarchy: Union[ClassHierarchy, Mapping, str],
                 split: str = '',
                 ann_file: str = '',
                 data_prefix: dict = dict(img_path='JPEGImages', seg_map_path='SegmentationPart'),
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png',
                 layout_classes: Optional[Sequence[str]] = None,
                 aliases: Optional[Mapping[str, str]] = None,
                 metainfo: Optional[dict] = None,
                 ignore_index: int = 255,
                 reduce_zero_label: bool = False,
                 **kwargs) -> None:
        self.hierarchy = build_hierarchy(hierarchy, ignore_index=ignore_index)
        if self.hierarchy.ignore_index != ignore_index:
            raise ValueError(f'the hierarchy ignores {self.hierarchy.ignore_index}, the '
                             f'dataset {ignore_index}; they must agree')
        if reduce_zero_label:
            raise ValueError(f'{type(self).__name__}: reduce_zero_label is not supported; '
                             'leave background out of the tree or keep it as a leaf')
        self.split = split
        self.layout_classes = list(layout_classes) if layout_classes else None
        self.aliases = aliases
        metainfo = self._tree_metainfo(metainfo)
        super().__init__(ann_file=ann_file, img_suffix=img_suffix,
                         seg_map_suffix=seg_map_suffix, metainfo=metainfo,
                         data_prefix=copy.copy(data_prefix), ignore_index=ignore_index,
                         reduce_zero_label=False, **kwargs)
        self._refuse_unchecked_loading()

    def _tree_metainfo(self, metainfo: Optional[dict]) -> dict:
        metainfo = dict(metainfo or {})
        leaves = self.hierarchy.leaf_names
        if 'classes' in metainfo and list(metainfo['classes']) != leaves:
            raise ValueError(f'metainfo classes {list(metainfo["classes"])} differ from the '
                             f'hierarchy leaves {leaves}; the tree decides the classes')
        metainfo['classes'] = leaves
        metainfo.setdefault('palette', leaf_palette(self.hierarchy))
        # plain containers so the tree travels in checkpoints' dataset_meta
        metainfo['hierarchy'] = _plain(self.hierarchy.tree)
        return metainfo

    def _refuse_unchecked_loading(self) -> None:
        for t in getattr(self.pipeline, 'transforms', []):
            if isinstance(t, LoadAnnotations) and not isinstance(t, LoadCheckedAnnotations):
                raise ValueError(
                    f'{type(self).__name__}: the pipeline uses {type(t).__name__}, which '
                    'neither maps layout ids onto the tree nor rejects grayscale/RGB or '
                    'out-of-tree labels; use LoadCheckedAnnotations (images) or '
                    'LoadNpyAnnotations (.npy)')

    # ----------------------------------------------------------- layout
    def get_layout_classes(self) -> List[str]:
        """Names of the ids stored on disk, id i at position i."""
        return self.layout_classes or list(self.LAYOUT_CLASSES)

    def _split_file(self) -> str:
        if self.ann_file:
            if not fileio.exists(self.ann_file, backend_args=self.backend_args):
                raise FileNotFoundError(f'split list not found: {self.ann_file}')
            return self.ann_file
        if not self.split:
            raise ValueError(f'{type(self).__name__}: give `split` (e.g. "train") or '
                             '`ann_file` (a list of ids); refusing to train on every image')
        root = self.data_root or ''
        tried = [osp.join(root, c.format(split=self.split)) for c in SPLIT_FILE_CANDIDATES]
        for path in tried:
            if fileio.exists(path, backend_args=self.backend_args):
                return path
        raise FileNotFoundError(f'no split list for split {self.split!r}; tried {tried}')

    def _resolve_pair_path(self, token: str, prefix: str) -> str:
        rel = token.lstrip('/')
        if self.data_root:
            under_root = osp.join(self.data_root, rel)
            if fileio.exists(under_root, backend_args=self.backend_args):
                return under_root
        return osp.join(prefix, osp.basename(rel))

    def list_split(self) -> Tuple[List[dict], List[str], str]:
        """The data infos of the split list, the listed files that do not exist,
        and the split list's path (the dataset tools report all problems)."""
        split_file = self._split_file()
        mapping = layout_to_tree(self.get_layout_classes(), self.hierarchy, self.aliases,
                                 source=type(self).__name__)
        img_dir = self.data_prefix.get('img_path', '')
        ann_dir = self.data_prefix.get('seg_map_path', '')
        text = fileio.get_text(split_file, backend_args=self.backend_args)
        data_list, missing = [], []
        for number, line in enumerate(text.splitlines(), 1):
            tokens = line.split('#', 1)[0].split()
            if not tokens:
                continue
            if len(tokens) == 1:
                img = osp.join(img_dir, tokens[0] + self.img_suffix)
                seg = osp.join(ann_dir, tokens[0] + self.seg_map_suffix)
            elif len(tokens) == 2:
                img = self._resolve_pair_path(tokens[0], img_dir)
                seg = self._resolve_pair_path(tokens[1], ann_dir)
            else:
                raise ValueError(f'{split_file}:{number}: expected an id or an "image label" '
                                 f'pair, got {line.strip()!r}')
            for path in (img, seg):
                if not fileio.exists(path, backend_args=self.backend_args):
                    missing.append(path)
            data_list.append(dict(img_path=img, seg_map_path=seg, label_map=None,
                                  reduce_zero_label=False, seg_fields=[],
                                  layout_to_tree=mapping, ignore_index=self.ignore_index))
        return data_list, missing, split_file

    def load_data_list(self) -> List[dict]:
        """One data info per line of the split list; every file must exist."""
        data_list, missing, split_file = self.list_split()
        if missing:
            shown = '\n  '.join(missing[:20])
            more = f'\n  ... and {len(missing) - 20} more' if len(missing) > 20 else ''
            raise FileNotFoundError(
                f'{len(missing)} files listed in {split_file} are missing:\n  {shown}{more}\n'
                '(tools/check_dataset.py lists every problem)')
        if not data_list:
            raise ValueError(f'split list {split_file} is empty')
        return data_list


def _plain(tree: Mapping) -> dict:
    return {k: _plain(v) if isinstance(v, Mapping) else int(v) for k, v in tree.items()}
