"""Cityscapes, LIP, Mapillary Vistas 2.0, Pascal-Part-58/108 (LogicSeg's layout) and ADE20K
(mmseg's) through their recipes, on tiny real files in each benchmark's own layout: labels
load unchanged (ADE20K's shifted down by one, 0 ignored, as mmseg's reduce_zero_label),
levels come out right, flips swap the classes that have a side; and the tree builder on a
config_v2.0.json-shaped file.
"""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from dataset_helpers import build, write_gray_png, write_image, write_palette_png
from mmengine.config import Config
from mmengine.dataset import Compose

from hseg_mm.engine import apply_hierarchy
from hseg_mm.hierarchy import ClassHierarchy, HierarchyError, tree_from_paths

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
H, W = 16, 24


def _label(ids, seed: int) -> np.ndarray:
    """(H, W) uint8: vertical stripes of `ids`, 255 in the first row (unlabelled)."""
    rng = np.random.default_rng(seed)
    lab = np.asarray(ids, dtype=np.uint8)[np.arange(W) * len(ids) // W][None].repeat(H, 0)
    lab[0] = 255
    return lab[:, rng.permutation(W)] if seed else lab


def _recipe(name: str, data_root: str) -> Config:
    cfg = Config.fromfile(osp.join(ROOT, 'configs', name))
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = data_root
    apply_hierarchy(cfg)  # the paths exist: checked
    return cfg


def _gt(dataset, index: int) -> np.ndarray:
    return dataset[index]['data_samples'].gt_sem_seg.data[0].numpy()


def _check_split(cfg: Config, split: str, labels: dict, tree: ClassHierarchy) -> None:
    ds_cfg = cfg[f'{split}_dataloader'].dataset.to_dict()
    ds_cfg['pipeline'] = [dict(type='LoadImageFromFile'), dict(type='LoadCheckedAnnotations'),
                          dict(type='PackSegInputs')]
    dataset = build(ds_cfg)
    assert len(dataset) == len(labels)
    for i, info in enumerate(dataset.load_data_list()):
        stem = [k for k in labels if k in info['seg_map_path']]
        assert len(stem) == 1, info
        assert np.array_equal(_gt(dataset, i), labels[stem[0]])  # ids on disk = leaf ids
    assert dataset.metainfo['classes'] == tree.leaf_names


def test_cityscapes_layout(tmp_path):
    root = str(tmp_path / 'cityscapes')
    labels = {}
    for split, cities in (('train', ('aachen', 'bochum')), ('val', ('frankfurt', ))):
        for seed, city in enumerate(cities):
            stem = f'{city}_000000_000019'
            write_image(f'{root}/leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png', H, W, seed)
            labels[stem] = _label([0, 8, 10, 11, 13, 18], seed)  # road ... bicycle
            write_gray_png(f'{root}/gtFine/{split}/{city}/{stem}_gtFine_labelTrainIds.png',
                           labels[stem])
            # the download's other label maps lie beside them and must not be listed
            write_gray_png(f'{root}/gtFine/{split}/{city}/{stem}_gtFine_labelIds.png',
                           labels[stem] + 7)
    cfg = _recipe('hssn_cityscapes.py', root)
    tree = ClassHierarchy(cfg.hierarchy)
    assert tree.level_sizes == [7, 19]
    _check_split(cfg, 'train', {k: v for k, v in labels.items() if 'frankfurt' not in k}, tree)
    _check_split(cfg, 'val', {k: v for k, v in labels.items() if 'frankfurt' in k}, tree)
    # levels: car (13) is a vehicle, sky (10) a top-level leaf carried down
    level1 = tree.split_labels(torch.tensor([13, 10, 255]))[0].tolist()
    assert [tree.level_names(0)[c] for c in level1[:2]] == ['vehicle', 'sky']
    assert level1[2] == 255


def _lip(tmp_path) -> tuple:
    root = str(tmp_path / 'LIP')
    labels = {}
    for split, names in (('train', ('100034_483681', '10005_205677')), ('val', ('100064_10', ))):
        for seed, name in enumerate(names):
            write_image(f'{root}/{split}_images/{name}.jpg', H, W, seed)
            labels[name] = _label([0, 2, 5, 9, 14, 15, 16, 17, 18, 19], seed)
            write_gray_png(f'{root}/{split}_segmentations/{name}.png', labels[name])
    return root, labels


def test_lip_layout_and_flip(tmp_path):
    root, labels = _lip(tmp_path)
    cfg = _recipe('hssn_lip.py', root)
    tree = ClassHierarchy(cfg.hierarchy)
    assert tree.level_sizes == [2, 3, 20]
    _check_split(cfg, 'train', {k: labels[k] for k in ('100034_483681', '10005_205677')}, tree)
    _check_split(cfg, 'val', {'100064_10': labels['100064_10']}, tree)
    # the train pipeline's flip, made certain: the label is mirrored AND left and right
    # trade ids (14 left arm <-> 15 right arm, 16 <-> 17 legs, 18 <-> 19 shoes)
    flip = [t for t in cfg.train_pipeline if t['type'] == 'RandomFlip'][0]
    assert flip['swap_seg_labels'] == [(14, 15), (16, 17), (18, 19)]
    pipeline = Compose([dict(type='LoadImageFromFile'), dict(type='LoadCheckedAnnotations'),
                        dict(flip, prob=1.0)])
    ds_cfg = dict(cfg.train_dataloader.dataset.to_dict(), pipeline=[], lazy_init=True)
    info = build(ds_cfg).get_data_info(0)
    flipped = pipeline(info)['gt_seg_map']
    original = labels[osp.splitext(osp.basename(info['seg_map_path']))[0]]
    swap = np.arange(256, dtype=np.uint8)
    swap[[14, 15, 16, 17, 18, 19]] = [15, 14, 17, 16, 19, 18]
    assert np.array_equal(flipped, swap[original[:, ::-1]])
    assert (flipped == 14).any() and (original == 14).any()  # a real swap was exercised


# A config_v2.0.json as Mapillary ships it, cut to six labels (ids = positions).
VISTAS_LABELS = ['construction--barrier--wall', 'construction--flat--road',
                 'marking--discrete--arrow--left', 'marking--discrete--arrow--right',
                 'object--trash-can', 'void--unlabeled']


def test_tree_builder_on_a_vistas_config(tmp_path):
    path = tmp_path / 'config_v2.0.json'
    path.write_text(json.dumps({'labels': [{'name': n, 'readable': n, 'color': [0, 0, 0]}
                                           for n in VISTAS_LABELS], 'version': '2.0'}))
    tree = ClassHierarchy(str(path))  # what `hierarchy = '.../config_v2.0.json'` does
    # nodes by their whole path: wall under construction--barrier (not flat), the trash
    # can under object (not under a traffic sign), the arrows two levels down
    assert tree.to_dict() == {
        'construction': {'construction--barrier': {'construction--barrier--wall': 0},
                         'construction--flat': {'construction--flat--road': 1}},
        'marking': {'marking--discrete': {'marking--discrete--arrow': {
            'marking--discrete--arrow--left': 2, 'marking--discrete--arrow--right': 3}}},
        'object': {'object--trash-can': 4},
        'void': {'void--unlabeled': 5}}
    # level 2: barrier, flat, discrete and the leaves trash-can, unlabeled; level 3: wall,
    # road, arrow and those two carried; level 4: the 6 leaves
    assert tree.level_sizes == [4, 5, 5, 6]
    with pytest.raises(HierarchyError, match="'a--b' is a label .* and also the parent"):
        tree_from_paths(['a--b', 'a--b--c'])
    with pytest.raises(HierarchyError, match="label 1 'a--' is not a path"):
        tree_from_paths(['a--b', 'a--'])


def test_shipped_vistas_tree_is_the_builders_output():
    shipped = ClassHierarchy('mapillary_vistas_v2')
    assert shipped.num_leaves == 124 and shipped.level_sizes == [8, 45, 117, 124]
    assert ClassHierarchy(tree_from_paths(shipped.leaf_names)).same_tree(shipped)
    parent = {shipped.node_names[v]: shipped.node_names[shipped.parents[v]]
              for v in range(shipped.num_nodes) if shipped.parents[v] >= 0}
    assert parent['construction--barrier--wall'] == 'construction--barrier'
    assert parent['object--trash-can'] == 'object'


def test_mapillary_layout_and_flip(tmp_path):
    root = str(tmp_path / 'mapillary')
    labels = {}
    for split, names in (('training', ('a1', 'b2')), ('validation', ('c3', ))):
        for seed, name in enumerate(names):
            write_image(f'{root}/{split}/images/{name}.jpg', H, W, seed)
            labels[name] = _label([21, 39, 41, 42, 43, 110, 123], seed)
            write_palette_png(f'{root}/{split}/v2.0/labels/{name}.png', labels[name])
    cfg = _recipe('hssn_mapillary.py', root)
    tree = ClassHierarchy(cfg.hierarchy)
    _check_split(cfg, 'train', {k: labels[k] for k in ('a1', 'b2')}, tree)
    _check_split(cfg, 'val', {'c3': labels['c3']}, tree)
    assert tree.leaf_names[21] == 'construction--flat--road'
    flip = [t for t in cfg.train_pipeline if t['type'] == 'RandomFlip'][0]
    # arrows that point left point right in the mirror image
    assert [(tree.leaf_names[a], tree.leaf_names[b]) for a, b in flip['swap_seg_labels']] == [
        ('marking--discrete--arrow--left', 'marking--discrete--arrow--right'),
        ('marking--discrete--arrow--split-left-or-straight',
         'marking--discrete--arrow--split-right-or-straight')]


def _pascal_part(tmp_path, ann_dir: str, ids) -> tuple:
    """LogicSeg's layout: img_dir/{train,val}/<id>.jpg, <ann_dir>/{train,val}/<id>.png."""
    root = str(tmp_path / 'pascal_part')
    labels = {}
    for split, names in (('train', ('2008_000008', '2008_000015')), ('val', ('2008_000002', ))):
        for seed, name in enumerate(names):
            write_image(f'{root}/img_dir/{split}/{name}.jpg', H, W, seed)
            labels[name] = _label(ids, seed)
            write_palette_png(f'{root}/{ann_dir}/{split}/{name}.png', labels[name])
    return root, labels


def test_pascal_part_108_layout(tmp_path):
    # background, boat, cat_paw, person_head, tvmonitor_screen
    root, labels = _pascal_part(tmp_path, 'ann108_dir', [0, 18, 43, 77, 107])
    cfg = _recipe('logicseg_pascal_part108.py', root)
    tree = ClassHierarchy(cfg.hierarchy)
    assert tree.level_sizes == [21, 108]
    _check_split(cfg, 'train', {k: labels[k] for k in ('2008_000008', '2008_000015')}, tree)
    _check_split(cfg, 'val', {'2008_000002': labels['2008_000002']}, tree)
    level1 = tree.split_labels(torch.tensor([43, 18, 0]))[0].tolist()
    assert [tree.level_names(0)[c] for c in level1] == ['cat', 'boat_l1', 'background_l1']


def test_pascal_part_58_layout(tmp_path):
    # background, boat, person_lower_arm, tvmonitor_frame: ann58_dir beside ann108_dir
    root, labels = _pascal_part(tmp_path, 'ann58_dir', [0, 12, 45, 57])
    cfg = Config.fromfile(osp.join(ROOT, 'configs/_base_/datasets/pascal_part_58.py'))
    tree = ClassHierarchy('pascal_part_58')
    for split, names in (('train', ('2008_000008', '2008_000015')), ('val', ('2008_000002', ))):
        ds_cfg = dict(cfg[f'{split}_dataloader'].dataset.to_dict(), data_root=root,
                      hierarchy='pascal_part_58')
        assert ds_cfg['data_prefix'] == dict(img_path=f'img_dir/{split}',
                                             seg_map_path=f'ann58_dir/{split}')
        ds_cfg['pipeline'] = [dict(type='LoadImageFromFile'),
                              dict(type='LoadCheckedAnnotations'), dict(type='PackSegInputs')]
        dataset = build(ds_cfg)
        assert [osp.basename(i['img_path']) for i in dataset.load_data_list()] == \
            [n + '.jpg' for n in names]
        for i, name in enumerate(names):
            assert np.array_equal(_gt(dataset, i), labels[name])
        assert dataset.metainfo['classes'] == tree.leaf_names


def test_ade20k_layout_reduces_zero(tmp_path):
    from mmseg.datasets import ADE20KDataset
    root = str(tmp_path / 'ADEChallengeData2016')
    disk = {}
    for split, names in (('training', ('ADE_train_00000001', )),
                         ('validation', ('ADE_val_00000001', ))):
        for seed, name in enumerate(names):
            write_image(f'{root}/images/{split}/{name}.jpg', H, W, seed)
            disk[name] = _label([0, 1, 13, 127, 150], seed)  # 0: "other"; 255 in row 0
            write_gray_png(f'{root}/annotations/{split}/{name}.png', disk[name])
    cfg = _recipe('hssn_ade20k.py', root)
    tree = ClassHierarchy(cfg.hierarchy)
    assert tree.level_sizes == [3, 14, 150]
    # the layout is mmseg's classes by disk id, after id 0
    assert cfg.train_dataloader.dataset.layout_classes == \
        [None] + [c.strip() for c in ADE20KDataset.METAINFO['classes']]
    for split, name in (('train', 'ADE_train_00000001'), ('val', 'ADE_val_00000001')):
        ds_cfg = cfg[f'{split}_dataloader'].dataset.to_dict()
        ds_cfg['pipeline'] = [dict(type='LoadImageFromFile'),
                              dict(type='LoadCheckedAnnotations'), dict(type='PackSegInputs')]
        gt = _gt(build(ds_cfg), 0)
        # as mmseg's reduce_zero_label: 0 -> 255, i -> i - 1, 255 stays 255
        expected = np.where(disk[name] == 0, 255,
                            np.where(disk[name] == 255, 255, disk[name].astype(int) - 1))
        assert np.array_equal(gt, expected)
        assert [tree.leaf_names[i] for i in (0, 12, 126, 149)] == ['wall', 'person', 'animal',
                                                                  'flag']
    # an id above 150 is no ADE20K class: refused, the file named
    bad = disk['ADE_val_00000001'].copy()
    bad[1, 0] = 151
    write_gray_png(f'{root}/annotations/validation/ADE_val_00000001.png', bad)
    ds_cfg = cfg.val_dataloader.dataset.to_dict()
    ds_cfg['pipeline'] = [dict(type='LoadImageFromFile'), dict(type='LoadCheckedAnnotations')]
    with pytest.raises(ValueError, match=r'ADE_val_00000001.png: label values \[151\]'):
        build(ds_cfg)[0]
