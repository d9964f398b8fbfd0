from typing import List, Mapping, Tuple, Union

from mmseg.registry import DATASETS

from ..hierarchy import ClassHierarchy
from .hierarchical_seg_dataset import init_default, join_root
from .labels import read_classes_file
from .pascal_person_part import PascalPersonPartDataset


@DATASETS.register_module()
class PascalPartNpyDataset(PascalPersonPartDataset):
    """The seeds' "Pascal-part" repack: `.npy` label maps and a classes.txt.

    Files under `data_root`: `JPEGImages/<id>.jpg`, `gt_masks/<id>.npy`,
    `train_id.txt`, `val_id.txt`, `classes.txt` ("0: bg", "1: low_hand", ...).
    The layout's ids are those of classes.txt, mapped onto the tree's leaves by
    name (bg -> background, low_hand -> lower_arm, up_hand -> upper_arm, ...).
    Load labels with `LoadNpyAnnotations`.

    Args:
        classes_file: the id -> name table, relative to `data_root`.
        Others as `PascalPersonPartDataset`.
    """

    def __init__(self,
                 hierarchy: Union[ClassHierarchy, Mapping, str],
                 data_prefix: dict = dict(img_path='JPEGImages', seg_map_path='gt_masks'),
                 seg_map_suffix: str = '.npy',
                 classes_file: str = 'classes.txt',
                 **kwargs) -> None:
        self.classes_file = classes_file
        super().__init__(hierarchy=hierarchy, data_prefix=data_prefix,
                         seg_map_suffix=seg_map_suffix, **kwargs)

    def get_layout_classes(self) -> List[str]:
        if self.layout_classes is not None:
            return self.layout_classes
        return read_classes_file(join_root(self.data_root, self.classes_file))

    @classmethod
    def _config_paths(cls, cfg: Mapping) -> List[Tuple[str, str, str]]:
        paths = super()._config_paths(cfg)
        if cfg.get('layout_classes') is None:  # the layout comes from classes.txt
            classes_file = cfg.get('classes_file', init_default(cls, 'classes_file'))
            paths.append(('classes_file', join_root(cfg.get('data_root'), classes_file), 'file'))
        return paths
