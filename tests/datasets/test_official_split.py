"""The standard PASCAL-Person-Part split shipped in hseg_mm, selected by `split_lists`
over a data folder that carries another split (the seeds' repack)."""
import os

import numpy as np
import pytest
from dataset_helpers import build, pipeline, tiny_label, write_image

from hseg_mm.datasets.pascal_part_npy import PascalPartNpyDataset
from hseg_mm.datasets.pascal_person_part import OFFICIAL_SPLITS
from hseg_mm.hierarchy import resolve_tree

PASCAL_PERSON_PART = dict(resolve_tree('pascal_person_part'))  # the shipped preset


def official_ids(split):
    with open(os.path.join(OFFICIAL_SPLITS, f'{split}_id.txt')) as f:
        return f.read().split()


def test_official_lists():
    train, val = official_ids('train'), official_ids('val')
    # DeepLab / Graphonomy / HSSN: 1,716 train and 1,817 val VOC ids, no overlap
    assert (len(train), len(val)) == (1716, 1817)
    assert len(set(train)) == 1716 and not set(train) & set(val)
    assert all(len(i) == 11 and i[4] == '_' for i in train + val)  # 2008_000003


@pytest.fixture(scope='module')
def repack(tmp_path_factory):
    """A seeds-layout folder holding the official val ids' files (tiny) and, beside
    them, its own 3-id split lists."""
    root = tmp_path_factory.mktemp('repack')
    ids = official_ids('val')
    for k, i in enumerate(ids):
        write_image(str(root / 'JPEGImages' / f'{i}.jpg'), seed=k)
        os.makedirs(root / 'gt_masks', exist_ok=True)
        np.save(root / 'gt_masks' / f'{i}.npy', tiny_label(k))
    (root / 'val_id.txt').write_text('\n'.join(ids[:3]) + '\n')
    (root / 'classes.txt').write_text('0: bg\n1: low_hand\n2: torso\n3: low_leg\n4: head\n'
                                      '5: up_leg\n6: up_hand\n')
    return root


def cfg(root, **kwargs):
    out = dict(type='PascalPartNpyDataset', hierarchy=PASCAL_PERSON_PART, data_root=str(root),
               split='val', pipeline=pipeline('LoadNpyAnnotations'))
    out.update(kwargs)
    return out


def test_split_lists_picks_the_list(repack):
    assert len(build(cfg(repack))) == 3  # default: the lists beside the data
    official = build(cfg(repack, split_lists='official'))
    assert len(official) == 1817
    assert official[0]['img_path'].endswith('2008_000003.jpg')
    PascalPartNpyDataset.check_paths(cfg(repack, split_lists='official'), 'val_dataloader')


def test_bad_split_lists(repack):
    with pytest.raises(ValueError, match="split_lists must be one of"):
        build(cfg(repack, split_lists='seeds'))
    with pytest.raises(ValueError, match="'train' and 'val', not 'test'"):
        build(cfg(repack, split='test', split_lists='official'))
    with pytest.raises(ValueError, match='val_dataloader.split_lists'):
        PascalPartNpyDataset.check_paths(cfg(repack, split_lists='x'), 'val_dataloader')
