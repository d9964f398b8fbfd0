import copy
import inspect
import os.path as osp
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple, Union

import mmengine.fileio as fileio
from mmcv.transforms import LoadAnnotations
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from ..hierarchy import ClassHierarchy, build_hierarchy
from ..palette import leaf_palette
from .labels import LayoutClasses, layout_table
from .transforms import LoadCheckedAnnotations, LoadNpyAnnotations


@DATASETS.register_module()
class HierarchicalSegDataset(BaseSegDataset):
    """Your own data with your own tree: images, label maps and a class tree.

    Files follow mmseg's `BaseSegDataset`: `data_prefix['img_path']/<id><img_suffix>`
    and `data_prefix['seg_map_path']/<id><seg_map_suffix>`, both under `data_root`.
    The ids are the lines of `ann_file` (one id per line, blank lines and
    `# comments` skipped) or, without it, every image under `img_path`
    (recursively, sorted). Every listed image and label file must exist when
    the dataset is built; a missing one, or an empty list or folder, is an
    error naming it.

    The label maps hold the tree's leaf ids, or, with `layout_classes`, ids of
    the dataset's own layout mapped onto the leaves by name. Label contents are
    mapped and checked at load time by `LoadCheckedAnnotations` (or
    `LoadNpyAnnotations` for `.npy`): an unreadable file, an id outside the
    layout, a colour label or a label of another size than its image raises an
    error naming the file; nothing is trained on as background. The pipeline
    names that loader; mmseg's `LoadAnnotations` (which would skip the checks), or
    the loader of the other file type, is refused when the dataset is built.

    Example::

        dataset = dict(
            type='HierarchicalSegDataset', data_root='data/streets',
            data_prefix=dict(img_path='images/train', seg_map_path='labels/train'),
            hierarchy=dict(sky=0, ground=dict(road=1, grass=2), thing=dict(car=3, person=4)),
            layout_classes={0: 'road', 1: 'grass', 7: 'car', 11: 'person', 12: 'sky',
                            255: None},
            pipeline=[dict(type='LoadCheckedImageFromFile'),
                      dict(type='LoadCheckedAnnotations'), ...])

    Args:
        hierarchy: the class tree (a nested mapping whose leaves are label ids,
            a preset name, a tree file or a `ClassHierarchy`), as `build_hierarchy`
            takes it; a config's runner hands over its top-level tree.
        ann_file: a split list of ids, relative to `data_root`; '' lists every
            image under `img_path`.
        data_prefix: `img_path` and `seg_map_path` folders, relative to `data_root`.
        img_suffix: image file ending.
        seg_map_suffix: label file ending; '.npy' labels are read by
            `LoadNpyAnnotations`.
        layout_classes: the names of the ids on disk when they are not the
            tree's leaf ids: a list (entry i names disk id i) or a mapping
            {disk id (int or digit string): leaf name or None}. None ignores that
            disk id (it becomes `ignore_index`); a disk id the mapping lacks is
            an error at load time. Names are matched to leaf names through
            `aliases`; a name that is no leaf is an error. Default: the class's
            `LAYOUT_CLASSES`, and if that is None the ids on disk are the leaf ids.
        aliases: other spelling -> leaf name, for `layout_classes` (default
            `labels.DEFAULT_ALIASES`).
        metainfo: extra meta information; `classes` must equal the tree's leaves.
        pipeline: processing pipeline, mmseg's.
        ignore_index: label value of unlabelled pixels, kept through every mapping.
        reduce_zero_label: not supported (give the tree a background leaf).
        **kwargs: other `BaseSegDataset` arguments (data_root, test_mode,
            lazy_init, backend_args, ...).

    Meta information: `classes` (leaf names by leaf id), `palette` (one RGB per
    leaf, the tree's colours: `hseg_mm.palette`), `hierarchy` (the tree as plain nested dicts of ints, so checkpoints'
    `dataset_meta` carry it). Every data info holds `img_path`, `seg_map_path`,
    `layout_to_tree` (entry i = tree leaf id of disk id i), `ignore_index`,
    `label_map=None`, `reduce_zero_label=False`, `seg_fields=[]`.
    """
    METAINFO: dict = dict()
    # Names of the disk ids when the config gives no `layout_classes`; None: leaf ids.
    LAYOUT_CLASSES: Optional[LayoutClasses] = None

    def __init__(self,
                 hierarchy: Union[ClassHierarchy, Mapping, str],
                 ann_file: str = '',
                 data_prefix: dict = dict(img_path='', seg_map_path=''),
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png',
                 layout_classes: Optional[LayoutClasses] = None,
                 aliases: Optional[Mapping[str, str]] = None,
                 metainfo: Optional[dict] = None,
                 pipeline: Sequence[Union[dict, Callable]] = (),
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
        if isinstance(layout_classes, Mapping):
            layout_classes = dict(layout_classes)
        elif layout_classes is not None and not isinstance(layout_classes, str):
            layout_classes = list(layout_classes)
        self.layout_classes = layout_classes
        self.aliases = aliases
        metainfo = self._tree_metainfo(metainfo)
        super().__init__(ann_file=ann_file, img_suffix=img_suffix,
                         seg_map_suffix=seg_map_suffix, metainfo=metainfo,
                         data_prefix=copy.copy(data_prefix), pipeline=pipeline,
                         ignore_index=ignore_index, reduce_zero_label=False, **kwargs)
        self._refuse_unchecked_loading(seg_map_suffix)

    # ------------------------------------------------------------- metainfo
    def _tree_metainfo(self, metainfo: Optional[dict]) -> dict:
        metainfo = dict(metainfo or {})
        leaves = self.hierarchy.leaf_names
        if 'classes' in metainfo and list(metainfo['classes']) != leaves:
            raise ValueError(f'metainfo classes {list(metainfo["classes"])} differ from the '
                             f'hierarchy leaves {leaves}; the tree decides the classes')
        tree = self.hierarchy.to_dict()
        if isinstance(metainfo.get('hierarchy'), Mapping) and not build_hierarchy(
                metainfo['hierarchy'], self.hierarchy.ignore_index).same_tree(self.hierarchy):
            raise ValueError(f'metainfo hierarchy {metainfo["hierarchy"]} differs from the '
                             f'dataset hierarchy {tree}')
        metainfo['classes'] = leaves
        metainfo.setdefault('palette', leaf_palette(self.hierarchy))
        # plain containers so the tree travels in checkpoints' dataset_meta
        metainfo['hierarchy'] = tree
        return metainfo

    # ------------------------------------------------------------- pipeline
    def _refuse_unchecked_loading(self, seg_map_suffix: str) -> None:
        """Every label loader of the built pipeline checks labels and reads this
        dataset's file type (`.npy`: `LoadNpyAnnotations`; images:
        `LoadCheckedAnnotations`); anything else is refused, naming the fix."""
        npy = seg_map_suffix.endswith('.npy')
        wanted = 'LoadNpyAnnotations' if npy else 'LoadCheckedAnnotations'
        seen = set()

        def visit(transform: Any) -> None:
            if id(transform) in seen:
                return
            seen.add(id(transform))
            if isinstance(transform, LoadAnnotations):
                name = type(transform).__name__
                if not isinstance(transform, LoadCheckedAnnotations):
                    raise ValueError(
                        f'{type(self).__name__}: the pipeline uses {name}, which neither '
                        'maps layout ids onto the tree nor rejects grayscale/RGB or '
                        f"out-of-tree labels; write dict(type='{wanted}') there "
                        "(LoadCheckedAnnotations reads label images, LoadNpyAnnotations "
                        '.npy arrays)')
                if isinstance(transform, LoadNpyAnnotations) != npy:
                    raise ValueError(
                        f"{type(self).__name__}: seg_map_suffix='{seg_map_suffix}' but the "
                        f"pipeline reads labels with {name}; write dict(type='{wanted}')")
            # Compose / RandomChoice hold `transforms`, TestTimeAug `subroutines`
            for attr in ('transforms', 'subroutines'):
                inner = getattr(transform, attr, None)
                if isinstance(inner, (list, tuple)):
                    for t in inner:
                        visit(t)
                elif inner is not None and not isinstance(inner, (str, Mapping)):
                    visit(inner)  # RandomApply holds one Compose

        visit(self.pipeline)

    # ----------------------------------------------------------- layout
    def get_layout_classes(self) -> Optional[LayoutClasses]:
        """Names of the ids stored on disk (list or {id: name}); None: leaf ids."""
        return self.layout_classes if self.layout_classes is not None else self.LAYOUT_CLASSES

    def get_layout_to_tree(self) -> List[int]:
        """Entry i = tree leaf id of disk id i (ignore index: ignored, -1: refused)."""
        layout = self.get_layout_classes()
        if layout is None:
            return list(range(self.hierarchy.num_leaves))
        return layout_table(layout, self.hierarchy, self.aliases, source=type(self).__name__)

    # ----------------------------------------------------------- listing
    def _split_file(self) -> Optional[str]:
        """The split list to read, or None to list the image folder."""
        if not self.ann_file:
            return None
        if not fileio.exists(self.ann_file, backend_args=self.backend_args):
            raise FileNotFoundError(f'split list not found: {self.ann_file}')
        return self.ann_file

    def _parse_split_line(self, entry: str, img_dir: str, ann_dir: str,
                          where: str) -> Tuple[str, str]:
        """(image path, label path) of one split-list entry (comment stripped)."""
        return (osp.join(img_dir, entry + self.img_suffix),
                osp.join(ann_dir, entry + self.seg_map_suffix))

    def _scan_images(self, img_dir: str, ann_dir: str) -> List[Tuple[str, str]]:
        # as mmseg's BaseSegDataset.load_data_list, but a missing or empty folder is named
        if not fileio.isdir(img_dir or '.', backend_args=self.backend_args):
            raise FileNotFoundError(f'image folder not found: {img_dir!r}')
        images = fileio.list_dir_or_file(img_dir or '.', list_dir=False,
                                         suffix=self.img_suffix, recursive=True,
                                         backend_args=self.backend_args)
        stem = len(self.img_suffix)
        pairs = sorted((osp.join(img_dir, img), osp.join(ann_dir, img[:-stem] +
                                                         self.seg_map_suffix))
                       for img in images)
        if not pairs:
            raise ValueError(f'no {self.img_suffix!r} images under {img_dir!r} (and no '
                             '`ann_file`)')
        return pairs

    def list_split(self) -> Tuple[List[dict], List[str], str]:
        """The data infos, the listed files that do not exist, and what listed
        them (the split list's path, or the image folder). Used by
        `load_data_list` and by tools/check_dataset.py, which reports all
        problems at once."""
        table = self.get_layout_to_tree()
        img_dir = self.data_prefix.get('img_path') or ''
        ann_dir = self.data_prefix.get('seg_map_path') or ''
        split_file = self._split_file()
        if split_file is None:
            pairs, source = self._scan_images(img_dir, ann_dir), img_dir
        else:
            text = fileio.get_text(split_file, backend_args=self.backend_args)
            pairs, source = [], split_file
            for number, line in enumerate(text.splitlines(), 1):
                entry = line.split('#', 1)[0].strip()
                if entry:
                    pairs.append(self._parse_split_line(entry, img_dir, ann_dir,
                                                        f'{split_file}:{number}'))
        missing = [path for pair in pairs for path in pair
                   if not fileio.exists(path, backend_args=self.backend_args)]
        data_list = [dict(img_path=img, seg_map_path=seg, label_map=None,
                          reduce_zero_label=False, seg_fields=[], layout_to_tree=table,
                          ignore_index=self.ignore_index) for img, seg in pairs]
        return data_list, missing, source

    def load_data_list(self) -> List[dict]:
        """One data info per listed image; every file must exist."""
        data_list, missing, source = self.list_split()
        if missing:
            shown = '\n  '.join(missing[:20])
            more = f'\n  ... and {len(missing) - 20} more' if len(missing) > 20 else ''
            raise FileNotFoundError(
                f'{len(missing)} files listed in {source} are missing:\n  {shown}{more}\n'
                '(tools/check_dataset.py lists every problem)')
        if not data_list:
            raise ValueError(f'split list {source} is empty')
        return data_list

    # ------------------------------------------------------ config checks
    @classmethod
    def check_paths(cls, cfg: Mapping, key: str) -> None:
        """Check that a dataset config's paths exist, without building it.

        Checks `data_root` (if given), `ann_file` (if given) and the
        `data_prefix` folders, joined with `data_root` as mmengine does, with
        the class's defaults for what the config leaves out. Only stats a few
        paths; remote (URI) paths are not checked.

        Args:
            cfg: the dataset config (`type`, `data_root`, `data_prefix`, ...).
            key: where the config sits, named in the error, e.g.
                'train_dataloader.dataset'.

        Raises:
            FileNotFoundError: one line naming the config key and the path,
                e.g. "train_dataloader.dataset.data_prefix.img_path: no such
                folder 'data/x/images/train'".
        """
        for field, path, kind in cls._config_paths(cfg):
            _require(f'{key}.{field}', path, kind)

    @classmethod
    def _config_paths(cls, cfg: Mapping) -> List[Tuple[str, str, str]]:
        """(config field, path as the dataset will look for it, 'folder' or
        'file'), in the order they are checked: the root first."""
        data_root = cfg.get('data_root')
        paths = []
        if data_root:
            paths.append(('data_root', data_root, 'folder'))
        ann_file = cfg.get('ann_file', init_default(cls, 'ann_file'))
        if ann_file:
            paths.append(('ann_file', join_root(data_root, ann_file), 'file'))
        prefix = cfg.get('data_prefix', init_default(cls, 'data_prefix')) or {}
        for name in ('img_path', 'seg_map_path'):
            if prefix.get(name):
                paths.append((f'data_prefix.{name}', join_root(data_root, prefix[name]), 'folder'))
        return paths


def init_default(cls: type, name: str) -> Any:
    """Default of `name` in the nearest `__init__` of `cls`'s MRO that declares it."""
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        param = inspect.signature(init).parameters.get(name)
        if param is not None and param.default is not inspect.Parameter.empty:
            return param.default
    return None


def join_root(data_root: Optional[str], path: str) -> str:
    # as mmengine's BaseDataset._join_prefix
    return osp.join(data_root, path) if data_root and not osp.isabs(path) else path


def _require(field: str, path: str, kind: str) -> None:
    if '://' in path:  # a remote backend: not checkable in milliseconds
        return
    exists = osp.isdir(path) if kind == 'folder' else osp.isfile(path)
    if not exists:
        raise FileNotFoundError(f'{field}: no such {kind} {path!r}')
