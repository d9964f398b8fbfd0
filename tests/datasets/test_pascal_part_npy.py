"""PascalPartNpyDataset and LoadNpyAnnotations: the seeds' layout read through its
classes.txt, the same pictures as the standard layout, and every bad .npy named."""
import os
import pickle

import numpy as np
import pytest
from dataset_helpers import build, pipeline

from hseg_mm.datasets.synthetic_people import make_synthetic_people
from hseg_mm.hierarchy import resolve_tree

PASCAL_PERSON_PART = dict(resolve_tree('pascal_person_part'))  # the shipped preset


@pytest.fixture(scope='module')
def both_layouts(tmp_path_factory):
    """The same 3 synthetic pictures (seed 3) in both layouts, 24x32."""
    root = tmp_path_factory.mktemp('layouts')
    for layout in ('standard', 'seeds'):
        make_synthetic_people(str(root / layout), 2, 1, size=(24, 32), seed=3, layout=layout)
    return root


def npy_cfg(root, **kwargs):
    cfg = dict(type='PascalPartNpyDataset', hierarchy=PASCAL_PERSON_PART, data_root=str(root),
               split='train', pipeline=pipeline('LoadNpyAnnotations'))
    cfg.update(kwargs)
    return cfg


def test_seeds_layout_equals_standard_layout(both_layouts):
    # the seeds' ids (0 bg, 1 low_hand, 2 torso, 3 low_leg, 4 head, 5 up_leg, 6 up_hand)
    # mapped by name must reproduce the standard layout's labels pixel for pixel
    npy = build(npy_cfg(both_layouts / 'seeds'))
    std = build(dict(type='PascalPersonPartDataset', hierarchy=PASCAL_PERSON_PART,
                     data_root=str(both_layouts / 'standard'), split='train',
                     pipeline=pipeline()))
    raw = np.load(both_layouts / 'seeds' / 'gt_masks' / 'train_000000.npy')
    assert len(npy) == len(std) == 2
    for i in range(2):
        a, b = npy[i]['gt_seg_map'], std[i]['gt_seg_map']
        assert a.shape == (24, 32) and a.dtype == np.uint8
        assert np.array_equal(a, b)
    assert not np.array_equal(raw, npy[0]['gt_seg_map'])  # the ids really were remapped
    assert npy.metainfo['classes'] == std.metainfo['classes']


def test_a_loader_for_images_is_refused_for_npy(both_layouts):
    # PIL cannot read .npy: the dataset says which loader to write before any file is read
    for loader in ('LoadCheckedAnnotations', 'LoadAnnotations'):
        with pytest.raises(ValueError, match=r"write dict\(type='LoadNpyAnnotations'\)"):
            build(npy_cfg(both_layouts / 'seeds', pipeline=pipeline(loader)))


def test_classes_file_with_unknown_class(both_layouts, tmp_path):
    root = tmp_path / 'seeds'
    root.mkdir()
    os.symlink(both_layouts / 'seeds' / 'JPEGImages', root / 'JPEGImages')
    os.symlink(both_layouts / 'seeds' / 'gt_masks', root / 'gt_masks')
    (root / 'train_id.txt').write_text('train_000000\n')
    (root / 'classes.txt').write_text('0: bg\n1: low_hand\n2: tail\n')
    with pytest.raises(ValueError, match=r"\['tail'\]"):
        build(npy_cfg(root))
    os.remove(root / 'classes.txt')
    with pytest.raises(FileNotFoundError, match='classes.txt'):
        build(npy_cfg(root))


@pytest.fixture
def seeds_copy(both_layouts, tmp_path):
    """A writable copy of the seeds layout (2 train, 1 val, 24x32)."""
    import shutil
    dst = tmp_path / 'seeds'
    shutil.copytree(both_layouts / 'seeds', dst)
    return dst


def write_mask(root, array, name='train_000000'):
    np.save(root / 'gt_masks' / f'{name}.npy', array)
    return str(root / 'gt_masks' / f'{name}.npy')


@pytest.mark.parametrize('array,match', [
    (np.zeros((24, 32), np.float32), 'dtype float32'),
    (np.zeros((24, 32), bool), 'dtype bool'),
    (np.zeros((2, 24, 32), np.uint8), r'shape \(2, 24, 32\)'),
    (np.zeros((24, 31), np.uint8), r'label size \(24, 31\)'),
    (np.full((24, 32), 7, np.int64), r'values \[7\]'),
])
def test_bad_npy_named(seeds_copy, array, match):
    path = write_mask(seeds_copy, array)
    with pytest.raises(ValueError, match=match) as err:
        build(npy_cfg(seeds_copy))[0]
    assert path in str(err.value)


def test_npy_squeezed_and_wide_dtype(seeds_copy):
    write_mask(seeds_copy, np.full((24, 32, 1), 4, np.int64))  # seeds 4 = head = standard 1
    assert np.all(build(npy_cfg(seeds_copy))[0]['gt_seg_map'] == 1)


def test_pickled_and_corrupt_npy(seeds_copy):
    path = write_mask(seeds_copy, np.array([{'a': 1}], dtype=object))
    with pytest.raises(ValueError, match='unreadable .npy') as err:
        build(npy_cfg(seeds_copy))[0]
    assert path in str(err.value)
    with open(path, 'wb') as f:
        f.write(pickle.dumps([1, 2]))
    with pytest.raises(ValueError, match='train_000000.npy: unreadable'):
        build(npy_cfg(seeds_copy))[0]


def test_missing_npy_and_empty_split(seeds_copy):
    os.remove(seeds_copy / 'gt_masks' / 'train_000001.npy')
    with pytest.raises(FileNotFoundError, match='train_000001.npy'):
        build(npy_cfg(seeds_copy))
    (seeds_copy / 'val_id.txt').write_text('\n')
    with pytest.raises(ValueError, match='val_id.txt is empty'):
        build(npy_cfg(seeds_copy, split='val'))
