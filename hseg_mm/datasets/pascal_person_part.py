import os.path as osp
from typing import List, Mapping, Optional, Sequence, Tuple, Union

import mmengine.fileio as fileio
from mmseg.registry import DATASETS

from ..hierarchy import ClassHierarchy
from .hierarchical_seg_dataset import HierarchicalSegDataset
from .labels import STANDARD_CLASSES

# Where the split lists of the known on-disk variants live (docs/architecture.md,
# "Datasets and label layouts"):
# Graphonomy-style repacks (beside the folders or in list/), the DeepLab release.
SPLIT_FILE_CANDIDATES = ('{split}_id.txt', 'list/{split}_id.txt', '{split}.txt',
                         'list/{split}.txt', 'pascal_person_part_trainval_list/{split}.txt',
                         'pascal_person_part_trainval_list/{split}_id.txt')
# The standard split (1,716 train / 1,817 val VOC2010 ids, as DeepLab, Graphonomy and HSSN
# use it; copied from hlzhu09/Hierarchical-Human-Parsing dataset/Pascal/), shipped so that
# a repack with another split beside it (the seeds') can still be measured on this one.
OFFICIAL_SPLITS = osp.join(osp.dirname(osp.abspath(__file__)), 'splits', 'pascal_person_part')
# Pascal-Part-58 / -108's split as GMNet (ECCV 2020) uses it: 4,998 train / 5,105 val, every
# image Pascal-Part annotates (VOC2010's train / val); copied from the lists of L. Rossi's
# scripts for GMNet (LcRss/Matlab-Pascal-Part, train_val_list.txt and test.txt). The standard
# PASCAL-Person-Part split above lies inside it (its train in train, its val in val).
PASCAL_PART_SPLITS = osp.join(osp.dirname(osp.abspath(__file__)), 'splits', 'pascal_part')
SPLIT_LISTS = ('data_root', 'official')


@DATASETS.register_module()
class PascalPersonPartDataset(HierarchicalSegDataset):
    """PASCAL-Person-Part, standard layout, with labels mapped onto a class tree.

    Files: `JPEGImages/<id>.jpg` and `SegmentationPart/<id>.png` (palette PNGs
    read as indices, or single-channel ids) under `data_root`; a split list
    whose lines are either ids (`2008_000003`) or "image label" pairs
    (`/JPEGImages/2008_000003.jpg /SegmentationPart/2008_000003.png`, the
    DeepLab release). A pair's path is taken under `data_root` when it exists
    there, else its file name is looked up in `data_prefix` (the DeepLab
    release keeps labels in `pascal_person_part_gt/`: set
    `data_prefix=dict(img_path='JPEGImages', seg_map_path='pascal_person_part_gt')`).

    The disk ids are the standard ones (`LAYOUT_CLASSES`: 0 background,
    1 head, 2 torso, 3 upper arm, 4 lower arm, 5 upper leg, 6 lower leg),
    mapped onto `hierarchy`'s leaf ids by leaf name (see `labels.DEFAULT_ALIASES`),
    so a tree with other ids or spellings still reads them. Everything else,
    checks included, is `HierarchicalSegDataset`.

    Args:
        hierarchy: the class tree (nested mapping, preset name or ClassHierarchy).
        split: 'train' / 'val' / ...: the split list is looked up in
            `SPLIT_FILE_CANDIDATES` under `data_root`. Ignored if `ann_file` is given.
        split_lists: where `split`'s list comes from: 'data_root' (the lists beside
            the data, as above) or 'official' (the standard 1,716 / 1,817 lists shipped
            in hseg_mm, `OFFICIAL_SPLITS/{train,val}_id.txt`, whatever the data folder
            holds).
        ann_file: explicit split list (relative to `data_root`).
        data_prefix: image and label folders, relative to `data_root`.
        **kwargs: `HierarchicalSegDataset` arguments; e.g. `layout_classes`
            for another order on disk, M2FP's being ('background', 'lower_arm',
            'head', 'upper_leg', 'torso', 'lower_leg', 'upper_arm').
    """
    LAYOUT_CLASSES: Sequence[str] = STANDARD_CLASSES

    def __init__(self,
                 hierarchy: Union[ClassHierarchy, Mapping, str],
                 split: str = '',
                 ann_file: str = '',
                 data_prefix: dict = dict(img_path='JPEGImages', seg_map_path='SegmentationPart'),
                 split_lists: str = 'data_root',
                 **kwargs) -> None:
        self._check_split_lists(split_lists, split, type(self).__name__)
        self.split = split
        self.split_lists = split_lists
        super().__init__(hierarchy=hierarchy, ann_file=ann_file, data_prefix=data_prefix,
                         **kwargs)

    def _split_file(self) -> str:
        if self.ann_file:
            return super()._split_file()
        if not self.split:
            raise ValueError(f'{type(self).__name__}: give `split` (e.g. "train") or '
                             '`ann_file` (a list of ids); refusing to train on every image')
        tried = self._split_candidates(self.data_root, self.split, self.split_lists)
        for path in tried:
            if fileio.exists(path, backend_args=self.backend_args):
                return path
        raise FileNotFoundError(f'no split list for split {self.split!r}; tried {tried}')

    @staticmethod
    def _check_split_lists(split_lists: str, split: str, where: str) -> None:
        if split_lists not in SPLIT_LISTS:
            raise ValueError(f'{where}: split_lists must be one of {SPLIT_LISTS}, got '
                             f'{split_lists!r}')
        if split_lists == 'official' and split and not osp.isfile(
                osp.join(OFFICIAL_SPLITS, f'{split}_id.txt')):
            raise ValueError(f"{where}: the official split has 'train' and 'val', not "
                             f'{split!r}')

    @staticmethod
    def _split_candidates(data_root: Optional[str], split: str,
                          split_lists: str = 'data_root') -> List[str]:
        if split_lists == 'official':
            return [osp.join(OFFICIAL_SPLITS, f'{split}_id.txt')]
        return [osp.join(data_root or '', c.format(split=split)) for c in SPLIT_FILE_CANDIDATES]

    def _parse_split_line(self, entry: str, img_dir: str, ann_dir: str,
                          where: str) -> Tuple[str, str]:
        tokens = entry.split()
        if len(tokens) == 1:
            return super()._parse_split_line(tokens[0], img_dir, ann_dir, where)
        if len(tokens) == 2:  # the DeepLab release's "image label" pairs
            return (self._resolve_pair_path(tokens[0], img_dir),
                    self._resolve_pair_path(tokens[1], ann_dir))
        raise ValueError(f'{where}: expected an id or an "image label" pair, got {entry!r}')

    def _resolve_pair_path(self, token: str, prefix: str) -> str:
        rel = token.lstrip('/')
        if self.data_root:
            under_root = osp.join(self.data_root, rel)
            if fileio.exists(under_root, backend_args=self.backend_args):
                return under_root
        return osp.join(prefix, osp.basename(rel))

    @classmethod
    def check_paths(cls, cfg: Mapping, key: str) -> None:
        """As `HierarchicalSegDataset.check_paths`; without `ann_file`, also a
        split list of `split` among `SPLIT_FILE_CANDIDATES`.

        Raises:
            FileNotFoundError: one line naming the config key and the path(s).
            ValueError: neither `split` nor `ann_file` is given.
        """
        super().check_paths(cfg, key)
        if cfg.get('ann_file'):
            return
        split = cfg.get('split', '')
        if not split:
            raise ValueError(f'{key}.split: give `split` (e.g. "train") or `ann_file`')
        split_lists = cfg.get('split_lists', 'data_root')
        cls._check_split_lists(split_lists, split, f'{key}.split_lists')
        tried = cls._split_candidates(cfg.get('data_root'), split, split_lists)
        if not any('://' in p or osp.isfile(p) for p in tried):
            raise FileNotFoundError(f'{key}.split: no split list for split {split!r}; '
                                    f'tried {tried}')

