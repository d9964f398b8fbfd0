"""The synthetic people generator (both layouts) and SyntheticPeopleDataset."""
import os

import numpy as np
import pytest
from dataset_helpers import build, pipeline
from PIL import Image

from hseg_mm.datasets.synthetic_people import (SEEDS_CLASSES, draw_synthetic_people,
                                               make_synthetic_people)
from hseg_mm.hierarchy import resolve_tree

PASCAL_PERSON_PART = dict(resolve_tree('pascal_person_part'))  # the shipped preset


def read_dir(root):
    return {os.path.relpath(os.path.join(d, f), root): open(os.path.join(d, f), 'rb').read()
            for d, _, files in os.walk(root) for f in files}


def test_deterministic_and_seed_dependent(tmp_path):
    for name, seed in (('a', 0), ('b', 0), ('c', 1)):
        make_synthetic_people(str(tmp_path / name), 3, 2, size=(32, 48), seed=seed)
    a, b, c = (read_dir(tmp_path / n) for n in 'abc')
    assert sorted(a) == sorted(
        ['train_id.txt', 'val_id.txt'] +
        [f'JPEGImages/{s}_{i:06d}.jpg' for s, n in (('train', 3), ('val', 2)) for i in range(n)] +
        [f'SegmentationPart/{s}_{i:06d}.png' for s, n in (('train', 3), ('val', 2))
         for i in range(n)])
    assert a == b
    assert a['SegmentationPart/train_000000.png'] != c['SegmentationPart/train_000000.png']
    assert a['train_id.txt'] == b'train_000000\ntrain_000001\ntrain_000002\n'


def test_files_are_the_per_index_drawings(tmp_path):
    # image k (train first, then val) is drawn from default_rng([seed, k]), whatever the order
    make_synthetic_people(str(tmp_path), 2, 1, size=(40, 56), seed=7)
    _, lab = draw_synthetic_people(np.random.default_rng([7, 2]), (40, 56))
    png = Image.open(tmp_path / 'SegmentationPart' / 'val_000000.png')
    assert png.mode == 'P'  # a palette PNG, as the DeepLab release
    assert np.array_equal(np.array(png), lab)
    img = np.array(Image.open(tmp_path / 'JPEGImages' / 'val_000000.jpg'))
    assert img.shape == (40, 56, 3)


def test_seeds_layout_files(tmp_path):
    make_synthetic_people(str(tmp_path), 1, 1, size=(24, 24), seed=0, layout='seeds')
    assert (tmp_path / 'classes.txt').read_text().splitlines()[:2] == ['0: bg', '1: low_hand']
    assert len((tmp_path / 'classes.txt').read_text().splitlines()) == len(SEEDS_CLASSES)
    mask = np.load(tmp_path / 'gt_masks' / 'val_000000.npy')
    _, lab = draw_synthetic_people(np.random.default_rng([0, 1]), (24, 24))
    # standard -> seeds: 1 head -> 4, 3 upper_arm -> 6, 4 lower_arm -> 1, 6 lower_leg -> 3
    assert np.array_equal(mask, np.array([0, 4, 2, 6, 1, 5, 3])[lab])


def test_every_part_appears_and_colours_do_not_tell_parts():
    seen = set()
    for i in range(12):
        img, lab = draw_synthetic_people(np.random.default_rng([5, i]), (128, 128),
                                         max_people=1)
        seen |= set(np.unique(lab).tolist())
        median = {k: np.median(img[lab == k].astype(float), axis=0) for k in (2, 3, 5, 6)
                  if (lab == k).sum() > 20}
        if 2 in median and 3 in median:  # sleeves share the shirt's colour
            assert np.abs(median[2] - median[3]).max() < 40, i
        if 5 in median and 6 in median:  # trousers cover both leg parts (shoes are darker)
            assert np.abs(median[5] - median[6]).max() < 60, i
    assert seen == set(range(7))


def test_several_people_per_image():
    # separate heads are separate connected components of the head label (id 1)
    import cv2
    heads = [cv2.connectedComponents((draw_synthetic_people(np.random.default_rng([1, i]),
                                                            (96, 96))[1] == 1).astype(np.uint8))[0]
             - 1 for i in range(10)]
    assert min(heads) >= 0 and max(heads) >= 3


@pytest.mark.parametrize('kwargs,match', [(dict(layout='voc'), 'layout'),
                                          (dict(num_train=0, num_val=0), 'at least one')])
def test_generator_errors(tmp_path, kwargs, match):
    args = dict(num_train=1, num_val=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        make_synthetic_people(str(tmp_path), **args)


def test_dataset_generates_once_and_refuses_other_settings(tmp_path):
    root = str(tmp_path / 'sp')
    cfg = dict(type='SyntheticPeopleDataset', hierarchy=PASCAL_PERSON_PART, data_root=root,
               generate=dict(num_train=3, num_val=1, size=(24, 32), seed=0), split='train',
               pipeline=pipeline())
    ds = build(cfg)
    assert len(ds) == 3 and ds[0]['gt_seg_map'].shape == (24, 32)
    assert sorted(os.listdir(tmp_path)) == ['sp']  # no temporary folder left behind
    assert len(build(dict(cfg, split='val'))) == 1  # found, not regenerated
    with pytest.raises(ValueError, match='delete the folder'):
        build(dict(cfg, generate=dict(num_train=5, num_val=1, size=(24, 32), seed=0)))
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'x.txt').write_text('mine')
    with pytest.raises(ValueError, match='not empty'):
        build(dict(cfg, data_root=str(other)))


def test_dataset_palette_is_the_visualisers(tmp_path):
    from hseg_mm.hierarchy import ClassHierarchy
    from hseg_mm.visualization import leaf_palette, level_palettes
    # 4 levels, shuffled ids, leaves at depths 1, 3 and 4 (the person tree's leaf names)
    four = dict(background=3, person=dict(
        upper=dict(head=6, trunk=dict(torso=0), arm=dict(upper_arm=5, lower_arm=1)),
        lower=dict(leg=dict(upper_leg=2, lower_leg=4))))
    ds = build(dict(type='SyntheticPeopleDataset', hierarchy=four, data_root=str(tmp_path),
                    generate=dict(num_train=1, num_val=1, size=(16, 16), seed=0),
                    split='train', pipeline=pipeline()))
    tree = ClassHierarchy(four)
    # leaf id i is drawn in the colour the level panels give it at the deepest level
    assert ds.metainfo['palette'] == leaf_palette(tree) == level_palettes(tree)[-1].tolist()
    assert len({tuple(c) for c in ds.metainfo['palette']}) == 7
