"""The trees the papers report on, shipped as presets, checked against their sources.

The reference data below is written out from the sources (read there, not imported):
- GMNet (LTTM/GMNet, Deeplab/research/deeplab/utils/general_utils.py): `list_parts_names`
  (the part names of the 58 and 108 sets, by label id) and `map_parts_to_classes(21, n)`
  (each object's id range);
- LogicSeg (lingorX/LogicSeg): mmseg/models/losses/pascal_part.py, mapillary.py and ade20k.py,
  the `hiera` index ranges.
"""
import numpy as np
import pytest

from hseg_mm.hierarchy import ClassHierarchy, preset_names  # hseg_mm first: its mmcv shims

OBJECTS = ['background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat',
           'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant',
           'sheep', 'sofa', 'train', 'tvmonitor']

# GMNet's part names, object by object in id order: (GMNet's object prefix, its parts);
# '' is an object that is one class ('boat'), a name is '<prefix>_<part>'.
GMNET_108 = [
    ('background', ''), ('aeroplane', 'body stern rwing engine wheel'),
    ('bicycle', 'fwheel saddle handlebar chainwheel'),
    ('birds', 'head beak torso neck rwing rleg rfoot tail'), ('boat', ''),
    ('bottle', 'cap body'),
    ('bus', 'rightside roofside rightmirror fliplate door wheel headlight window'),
    ('car', 'rightside roofside fliplate door wheel headlight window'),
    ('cat', 'head reye rear nose torso neck rfleg rfpa tail'), ('chair', ''),
    ('cow', 'head rear muzzle rhorn torso neck rfuleg tail'), ('dining_table', ''),
    ('dog', 'head reye rear nose torso neck rfleg rfpa tail muzzle'),
    ('horse', 'head rear muzzle torso neck rfuleg tail rfho'),
    ('motorbike', 'fwheel handlebar saddle headlight'),
    ('person', 'head reye rear nose mouth hair torso neck ruarm rhand ruleg rfoot'),
    ('pottedplant', 'pot plant'), ('sheep', 'head rear muzzle rhorn torso neck rfuleg tail'),
    ('sofa', ''), ('train', 'head hrightside hroofside headlight coach crightside croofside'),
    ('tvmonitor', 'screen')]
GMNET_58 = [
    ('background', ''), ('aeroplane', 'body engine wing stern wheel'), ('bycicle', 'wheel body'),
    ('bird', 'head wing leg torso'), ('boat', ''), ('bottle', 'cap body'),
    ('bus', 'window wheel body'), ('car', 'window wheel light plate body'),
    ('cat', 'head leg tail torso'), ('chair', ''), ('cow', 'head tail leg torso'),
    ('dining_table', ''), ('dog', 'head leg tail torso'), ('horse', 'head tail leg torso'),
    ('motorbike', 'wheel body'), ('person', 'head torso larm uarm lleg uleg'),
    ('pottedplant', 'pot plant'), ('sheep', 'head leg torso'), ('sofa', ''), ('train', ''),
    ('tvmonitor', 'screen frame')]
# hseg-mm's spelling of GMNet's names, every difference: object prefixes, and the side that a
# merged part's name carries in GMNet's list ('rfleg' = every leg of a cat).
OBJECT_SPELLING = {'birds': 'bird', 'bycicle': 'bicycle', 'dining_table': 'diningtable'}
PART_SPELLING = {
    'rwing': 'wing', 'fwheel': 'wheel', 'rleg': 'leg', 'rfoot': 'foot', 'rightside': 'side',
    'roofside': 'roof', 'rightmirror': 'mirror', 'fliplate': 'plate', 'reye': 'eye',
    'rear': 'ear', 'rfleg': 'leg', 'rfpa': 'paw', 'rhorn': 'horn', 'rfuleg': 'leg',
    'rfho': 'hoof', 'ruarm': 'arm', 'rhand': 'hand', 'ruleg': 'leg', 'hrightside': 'head_side',
    'hroofside': 'head_roof', 'crightside': 'coach_side', 'croofside': 'coach_roof',
    'larm': 'lower_arm', 'uarm': 'upper_arm', 'lleg': 'lower_leg', 'uleg': 'upper_leg'}

# map_parts_to_classes(21, n): [start, end) of each object's ids, background first
GMNET_RANGES = {
    58: [0, 1, 6, 8, 12, 13, 15, 18, 23, 27, 28, 32, 33, 37, 41, 43, 49, 51, 54, 55, 56, 58],
    108: [0, 1, 6, 10, 18, 19, 21, 29, 36, 45, 46, 54, 55, 65, 73, 77, 89, 91, 99, 100, 107,
          108]}
# LogicSeg pascal_part.py, hiera['hiera_high'] (as [start, end) pairs), in its key order
LOGICSEG_108 = [[0, 1], [1, 6], [6, 10], [10, 18], [18, 19], [19, 21], [21, 29], [29, 36],
                [36, 45], [45, 46], [46, 54], [54, 55], [55, 65], [65, 73], [73, 77], [77, 89],
                [89, 91], [91, 99], [99, 100], [100, 107], [107, 108]]


def _gmnet_names(table):
    names = []
    for obj, parts in table:
        obj = OBJECT_SPELLING.get(obj, obj)
        names += [obj] if not parts else \
            [f'{obj}_{PART_SPELLING.get(p, p)}' for p in parts.split()]
    return names


def _leaves_by_level1(tree):
    """Label ids beneath each level-1 class, in class order."""
    return [sorted(np.flatnonzero(tree.leaf_to_level[0] == c).tolist())
            for c in range(tree.level_sizes[0])]


def _parent(tree, name):
    return tree.node_names[tree.parents[tree.node_index(name)]]


def test_new_presets_are_shipped():
    assert {'pascal_part_58', 'pascal_part_108', 'mapillary_vistas_v2_logicseg',
            'ade20k_logicseg'} <= set(preset_names())


@pytest.mark.parametrize('n', [58, 108])
def test_pascal_part_sizes_and_ranges(n):
    tree = ClassHierarchy(f'pascal_part_{n}')
    # 21 objects with background over n parts, every part exactly one level below its object
    assert tree.num_leaves == n and tree.level_sizes == [21, n]
    assert tree.num_nodes == 21 + n  # LogicSeg's 108 + 21 = 129 channels for the 108 set
    assert {tree.depths[v] for v in tree.leaf_nodes} == {2}
    assert [name.replace('_l1', '') for name in tree.level_names(0)] == OBJECTS
    # each object holds exactly GMNet's id range ...
    starts = GMNET_RANGES[n]
    assert _leaves_by_level1(tree) == [list(range(a, b)) for a, b in zip(starts, starts[1:])]
    # ... under GMNet's name for each id
    assert tree.leaf_names == _gmnet_names(GMNET_58 if n == 58 else GMNET_108)


def test_pascal_part_108_agrees_with_logicseg():
    tree = ClassHierarchy('pascal_part_108')
    assert _leaves_by_level1(tree) == [list(range(a, b)) for a, b in LOGICSEG_108]


@pytest.mark.parametrize('n, child, parent, label', [
    (108, 'cat_paw', 'cat', 43),                 # GMNet 'cat_rfpa'
    (108, 'person_hair', 'person', 82),
    (108, 'horse_hoof', 'horse', 72),            # GMNet 'horse_rfho'
    (108, 'train_coach_roof', 'train', 106),     # GMNet 'train_croofside'
    (108, 'tvmonitor_screen', 'tvmonitor', 107),
    (108, 'boat', 'boat_l1', 18),                # one class of its own: a chain
    (58, 'person_lower_arm', 'person', 45),      # GMNet 'person_larm'
    (58, 'tvmonitor_frame', 'tvmonitor', 57),
    (58, 'train', 'train_l1', 55),               # whole in 58, 7 parts in 108
    (58, 'bicycle_body', 'bicycle', 7),          # GMNet 'bycicle_body'
])
def test_pascal_part_parent_child(n, child, parent, label):
    tree = ClassHierarchy(f'pascal_part_{n}')
    assert _parent(tree, child) == parent
    assert tree.leaf_names[label] == child


# LogicSeg mapillary.py: hiera['hiera_middle'] and hiera['hiera_high'] starts (each range ends
# where the next starts; the last ends at 123, and label 123 falls to void by its fallback)
LOGICSEG_MAPILLARY_MIDDLE = [0, 2, 12, 26, 30, 32, 35, 38, 55, 59, 66, 78, 84, 90, 96, 105, 117]
LOGICSEG_MAPILLARY_HIGH = [0, 2, 30, 35, 59, 66, 117]


def _ranges(starts, end=124):
    return [list(range(a, b)) for a, b in zip(starts, starts[1:] + [end])]


def test_mapillary_logicseg_tree():
    tree = ClassHierarchy('mapillary_vistas_v2_logicseg')
    assert tree.level_sizes == [7, 17, 124] and tree.num_nodes == 148  # LogicSeg's channels
    # the same leaves, by id, as the tree the label names give (config_v2.0.json)
    assert tree.leaf_names == ClassHierarchy('mapillary_vistas_v2').leaf_names
    for level, starts in ((0, LOGICSEG_MAPILLARY_HIGH), (1, LOGICSEG_MAPILLARY_MIDDLE)):
        by_class = [sorted(np.flatnonzero(tree.leaf_to_level[level] == c).tolist())
                    for c in range(tree.level_sizes[level])]
        assert by_class == _ranges(starts), level
    assert tree.level_names(0) == ['animal', 'construction', 'human', 'marking', 'nature',
                                   'object', 'void']
    # LogicSeg's ranges, not the label names: Wall under flat, Trash Can under traffic_sign
    assert _parent(tree, 'construction--barrier--wall') == 'flat'
    assert _parent(tree, 'object--trash-can') == 'traffic_sign'
    assert _parent(tree, 'construction--flat--road') == 'flat'
    assert _parent(tree, 'flat') == 'construction'


def test_ade20k_logicseg_tree():
    from mmseg.datasets import ADE20KDataset
    tree = ClassHierarchy('ade20k_logicseg')
    # leaves: mmseg's 150 classes in its order (the ids after reduce_zero_label)
    assert tree.leaf_names == [c.strip() for c in ADE20KDataset.METAINFO['classes']]
    assert tree.level_sizes == [3, 14, 150] and tree.num_nodes == 167
    # LogicSeg's groups, and its assignment of the middle groups to the top ones
    top = {'construction': ['flat', 'structure', 'barrier'],
           'object': ['sign', 'furniture', 'vehicle', 'support', 'device', 'container',
                      'fabric', 'other_objects', 'living_things'],
           'nature': ['plants', 'nature_l2']}
    for parent, children in top.items():
        assert sorted(tree.node_names[v] for v in tree.children[tree.node_index(parent)]) == \
            sorted(children), parent
    for child, parent in (('person', 'living_things'), ('animal', 'living_things'),
                          ('tree', 'plants'), ('wall', 'barrier'), ('road', 'flat'),
                          ('sky', 'nature_l2'), ('car', 'vehicle')):
        assert _parent(tree, child) == parent, child
