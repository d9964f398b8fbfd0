"""Datasets with a class tree (any data, and PASCAL-Person-Part in both layouts),
checked label loading, synthetic people."""
from .hierarchical_seg_dataset import HierarchicalSegDataset
from .labels import DEFAULT_ALIASES, STANDARD_CLASSES, decode_label_map, layout_to_tree
from .pascal_part_npy import PascalPartNpyDataset
from .pascal_person_part import PascalPersonPartDataset
from .synthetic_people import make_synthetic_people
from .synthetic_people_dataset import SyntheticPeopleDataset
from .transforms import LoadCheckedAnnotations, LoadNpyAnnotations

__all__ = ['HierarchicalSegDataset', 'PascalPartNpyDataset', 'PascalPersonPartDataset',
           'SyntheticPeopleDataset', 'DEFAULT_ALIASES', 'STANDARD_CLASSES', 'decode_label_map',
           'layout_to_tree', 'make_synthetic_people', 'LoadCheckedAnnotations',
           'LoadNpyAnnotations']
