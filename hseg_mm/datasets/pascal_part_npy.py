import os.path as osp
from typing import List, Mapping, Union

from mmseg.registry import DATASETS

from ..hierarchy import ClassHierarchy
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
        if self.layout_classes:
            return self.layout_classes
        path = self.classes_file
        if self.data_root and not osp.isabs(path):
            path = osp.join(self.data_root, path)
        return read_classes_file(path)
