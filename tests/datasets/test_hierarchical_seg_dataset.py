"""HierarchicalSegDataset: any folder of images and label maps with any tree.

The tree is conftest's FOUR_LEVEL_TREE, whose leaf ids are shuffled and whose leaves
sit at depths 1 (sky), 2 (road, grass, person), 3 (bike) and 4 (sedan, truck):
    leaf id: 0 road, 1 sedan, 2 person, 3 sky, 4 bike, 5 grass, 6 truck
"""
import os

import numpy as np
import pytest
from dataset_helpers import build, write_gray_png, write_image

# tests/conftest.py's FOUR_LEVEL_TREE (checked in test_metainfo_is_the_tree); a test
# module cannot import that conftest, tests/datasets/conftest.py shadows it.
FOUR_LEVEL_TREE = dict(
    sky=3,
    ground=dict(road=0, grass=5),
    thing=dict(vehicle=dict(car=dict(sedan=1, truck=6), bike=4), person=2))

LEAVES = ['road', 'sedan', 'person', 'sky', 'bike', 'grass', 'truck']

# 4x6 labels in leaf ids, one per image; 255 is unlabelled.
LABELS = {
    'x1': np.array([[3, 3, 3, 3, 3, 3],
                    [1, 1, 6, 6, 4, 4],
                    [2, 2, 0, 0, 5, 5],
                    [0, 0, 0, 255, 5, 5]], np.uint8),
    'x2': np.full((4, 6), 5, np.uint8),
    'nested/x3': np.arange(24, dtype=np.uint8).reshape(4, 6) % 7,
}


@pytest.fixture
def folder(tmp_path):
    """root/images/{x1,x2,nested/x3}.jpg and root/labels/....png (single-channel ids)."""
    root = tmp_path / 'streets'
    for name, lab in LABELS.items():
        write_image(str(root / 'images' / f'{name}.jpg'), *lab.shape)
        write_gray_png(str(root / 'labels' / f'{name}.png'), lab)
    return root


def cfg_of(root, **kwargs):
    cfg = dict(type='HierarchicalSegDataset', hierarchy=FOUR_LEVEL_TREE, data_root=str(root),
               data_prefix=dict(img_path='images', seg_map_path='labels'),
               pipeline=[dict(type='LoadCheckedImageFromFile'),
                         dict(type='LoadCheckedAnnotations')])
    cfg.update(kwargs)
    return cfg


def write_label(root, lab, name='x1'):
    write_gray_png(str(root / 'labels' / f'{name}.png'), np.asarray(lab, np.uint8))
    return str(root / 'labels' / f'{name}.png')


# ------------------------------------------------------------------ listing
def test_lists_the_folder_recursively(folder):
    ds = build(cfg_of(folder))
    # sorted by image path: 'images/nested/x3' < 'images/x1' < 'images/x2' ('n' < 'x')
    assert [ds.get_data_info(i)['img_path'] for i in range(3)] == [
        str(folder / 'images' / n) for n in ('nested/x3.jpg', 'x1.jpg', 'x2.jpg')]
    info = ds.get_data_info(0)
    assert info['seg_map_path'] == str(folder / 'labels' / 'nested' / 'x3.png')
    # the ids on disk are the leaf ids: identity table, one entry per leaf
    assert list(info['layout_to_tree']) == [0, 1, 2, 3, 4, 5, 6]
    assert info['ignore_index'] == 255 and info['label_map'] is None
    assert info['reduce_zero_label'] is False and info['seg_fields'] == []


def test_lists_the_split_file(folder):
    (folder / 'split.txt').write_text('x2\n# a comment\n\nnested/x3\n')
    ds = build(cfg_of(folder, ann_file='split.txt'))  # relative to data_root, as mmseg
    assert [ds.get_data_info(i)['img_path'] for i in range(2)] == [
        str(folder / 'images' / 'x2.jpg'), str(folder / 'images' / 'nested' / 'x3.jpg')]


def test_metainfo_is_the_tree(folder, four_level_tree):
    assert four_level_tree.tree == FOUR_LEVEL_TREE
    ds = build(cfg_of(folder))
    assert ds.metainfo['classes'] == LEAVES
    assert ds.metainfo['hierarchy'] == FOUR_LEVEL_TREE
    assert type(ds.metainfo['hierarchy']['thing']['vehicle']) is dict  # plain, for checkpoints
    assert len(ds.metainfo['palette']) == 7
    assert ds.hierarchy.num_levels == 4 and ds.hierarchy.leaf_names == LEAVES
    with pytest.raises(ValueError, match='the tree decides'):
        build(cfg_of(folder, metainfo=dict(classes=LEAVES[::-1])))


# ------------------------------------------------------ the checked loaders
def test_checked_loader_reads_the_tree_ids(folder):
    ds = build(cfg_of(folder))
    assert type(ds.pipeline.transforms[1]).__name__ == 'LoadCheckedAnnotations'
    out = ds[1]  # x1
    assert out['gt_seg_map'].dtype == np.uint8
    assert np.array_equal(out['gt_seg_map'], LABELS['x1'])


def test_checked_loader_passes_an_image_without_label_through():
    # mmseg's inference_model / MMSegInferencer hand over {'img_path'} or {'img'} only;
    # the loader adds nothing and reads nothing (no layout table is needed either)
    from hseg_mm.datasets.transforms import LoadCheckedAnnotations, LoadNpyAnnotations
    for loader in (LoadCheckedAnnotations(), LoadNpyAnnotations()):
        results = dict(img_path='/nonexistent/x.jpg', seg_fields=[])
        out = loader(dict(results))
        assert out == results  # unchanged: no gt_seg_map, seg_fields still empty


def test_plain_load_annotations_refused_with_the_fix(folder):
    # a config's mmseg LoadAnnotations, also inside TestTimeAug, is refused by name
    plain = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')]
    tta = [dict(type='LoadImageFromFile'),
           dict(type='TestTimeAug', transforms=[
               [dict(type='Resize', scale_factor=1.0, keep_ratio=True)],
               [dict(type='LoadAnnotations')], [dict(type='PackSegInputs')]])]
    for pipeline, test_mode in ((plain, False), (tta, True)):
        with pytest.raises(ValueError, match=r"uses LoadAnnotations, which neither.*"
                                             r"write dict\(type='LoadCheckedAnnotations'\)"):
            build(cfg_of(folder, pipeline=pipeline, test_mode=test_mode))
    # the .npy loader on image labels: the other file type, refused before any read
    with pytest.raises(ValueError, match=r"seg_map_suffix='.png' but the pipeline reads "
                                         r"labels with LoadNpyAnnotations"):
        build(cfg_of(folder, pipeline=[dict(type='LoadNpyAnnotations')]))


def test_load_annotations_arguments(folder):
    # backend_args are the file backend's; reduce_zero_label is refused by the dataset
    ds = build(cfg_of(folder, pipeline=[dict(type='LoadImageFromFile'),
                                        dict(type='LoadCheckedAnnotations',
                                             backend_args=None)]))
    assert np.array_equal(ds[1]['gt_seg_map'], LABELS['x1'])
    with pytest.raises(ValueError, match='reduce_zero_label is not supported'):
        build(cfg_of(folder, reduce_zero_label=True))


def test_test_time_aug_loads_checked(folder):
    tta = [dict(type='LoadImageFromFile'),
           dict(type='TestTimeAug', transforms=[
               [dict(type='Resize', scale_factor=1.0, keep_ratio=True),
                dict(type='Resize', scale_factor=2.0, keep_ratio=True)],
               [dict(type='LoadCheckedAnnotations')],
               [dict(type='PackSegInputs')]])]
    ds = build(cfg_of(folder, pipeline=tta, test_mode=True))
    out = ds[1]  # x1, at scale 1 and 2; labels stay at the original 4x6
    assert len(out['data_samples']) == 2
    for sample in out['data_samples']:
        assert np.array_equal(sample.gt_sem_seg.data[0].numpy(), LABELS['x1'])


def test_built_load_annotations_refused(folder):
    from mmcv.transforms import LoadImageFromFile
    from mmseg.datasets.transforms import LoadAnnotations

    class MyLoader(LoadAnnotations):
        pass

    for loader in (LoadAnnotations(), MyLoader()):
        with pytest.raises(ValueError, match=f'uses {type(loader).__name__}, which neither'):
            build(cfg_of(folder, pipeline=[LoadImageFromFile(), loader]))


# ------------------------------------------------- bad data, the file named
def test_id_outside_tree_named(folder):
    lab = LABELS['x1'].copy()
    lab[0, 0] = 7  # leaves are 0..6
    path = write_label(folder, lab)
    with pytest.raises(ValueError, match=r'label values \[7\] are not layout ids 0\.\.6') as err:
        build(cfg_of(folder))[1]
    assert path in str(err.value)


def test_size_mismatch_named(folder):
    path = write_label(folder, LABELS['x1'][:, :5])
    with pytest.raises(ValueError, match=r'label size \(4, 5\).*image size \(4, 6\)') as err:
        build(cfg_of(folder))[1]
    assert path in str(err.value)


def test_missing_label_named_at_build(folder):
    os.remove(folder / 'labels' / 'x2.png')
    with pytest.raises(FileNotFoundError, match='1 files') as err:
        build(cfg_of(folder))
    assert str(folder / 'labels' / 'x2.png') in str(err.value)


def test_empty_or_missing_folder_and_list_named(folder):
    (folder / 'empty').mkdir()
    with pytest.raises(ValueError, match="no '.jpg' images under .*empty"):
        build(cfg_of(folder, data_prefix=dict(img_path='empty', seg_map_path='labels')))
    with pytest.raises(FileNotFoundError, match='image folder not found.*nope'):
        build(cfg_of(folder, data_prefix=dict(img_path='nope', seg_map_path='labels')))
    (folder / 'split.txt').write_text('# nothing\n')
    with pytest.raises(ValueError, match='split.txt is empty'):
        build(cfg_of(folder, ann_file='split.txt'))


# ------------------------------------------------------- layout_classes
def test_layout_classes_list(folder):
    # disk ids 0..6 name: sky, road, grass, automobile (= sedan by alias), truck, bike, person
    # -> leaf ids          3,   0,    5,     1,                            6,     4,    2
    write_label(folder, [[0, 1, 2, 3, 4, 5]] + [[6] * 6] * 3)
    ds = build(cfg_of(folder, layout_classes=['sky', 'road', 'grass', 'automobile', 'truck',
                                              'bike', 'person'],
                      aliases=dict(automobile='sedan')))
    assert list(ds.get_data_info(1)['layout_to_tree']) == [3, 0, 5, 1, 6, 4, 2]
    gt = ds[1]['gt_seg_map']
    assert gt[0].tolist() == [3, 0, 5, 1, 6, 4] and np.all(gt[1:] == 2)
    assert ds.metainfo['classes'] == LEAVES  # the tree's leaves, not the disk's names


def test_layout_classes_mapping(folder):
    # Cityscapes-like ids; '7' comes as a string (YAML/JSON keys), 3 is ignored,
    # 1 and 0 both are road (merged); ids 2, 4..6, 8..10, 13..19 are not in the layout
    layout = {0: 'road', 1: 'road', 3: None, '7': 'sedan', 11: 'person', 12: 'sky',
              20: 'bike', 21: 'grass', 22: 'truck'}
    write_label(folder, [[0, 1, 3, 7, 11, 12], [20, 21, 22, 255, 0, 0]] + [[0] * 6] * 2)
    ds = build(cfg_of(folder, layout_classes=layout))
    table = ds.get_data_info(1)['layout_to_tree']
    # entry i = leaf id of disk id i: 0 -> 0, 1 -> 0, 3 -> 255, 7 -> 1, 11 -> 2, 12 -> 3,
    # 20 -> 4, 21 -> 5, 22 -> 6, the rest -1
    assert len(table) == 23
    assert {i: t for i, t in enumerate(table) if t != -1} == {
        0: 0, 1: 0, 3: 255, 7: 1, 11: 2, 12: 3, 20: 4, 21: 5, 22: 6}
    assert ds[1]['gt_seg_map'][:2].tolist() == [[0, 0, 255, 1, 2, 3], [4, 5, 6, 255, 0, 0]]
    # disk id 5 is not in the layout: refused, naming the file and the ids it knows
    path = write_label(folder, [[0, 5, 0, 0, 0, 0]] * 4)
    with pytest.raises(ValueError, match=r'values \[5\] are not layout ids '
                                         r'0\.\.1, 3, 7, 11\.\.12, 20\.\.22') as err:
        ds[1]
    assert path in str(err.value)


@pytest.mark.parametrize('layout,error,match', [
    (['road', 'tail'], ValueError, r"\['tail'\] are not leaves"),
    ({0: 'road', 'x': 'sky'}, ValueError, "key 'x'"),
    ({0: 'road', 255: 'sky'}, ValueError, 'ignore index'),
    ({0: None}, ValueError, 'names no leaf'),
    ('road', TypeError, 'list of names or a mapping'),
])
def test_bad_layout_classes_named(folder, layout, error, match):
    with pytest.raises(error, match=match):
        build(cfg_of(folder, layout_classes=layout))


# ------------------------------------------------------------ check_paths
def check(cfg, key='train_dataloader.dataset'):
    from mmseg.registry import DATASETS
    DATASETS.get(cfg['type']).check_paths(cfg, key)


def test_check_paths_passes_on_a_good_config(folder):
    (folder / 'split.txt').write_text('x1\n')
    check(cfg_of(folder))
    check(cfg_of(folder, ann_file='split.txt'))


@pytest.mark.parametrize('change,message', [
    (dict(data_root='{root}/gone'), "train_dataloader.dataset.data_root: no such folder "
                                    "'{root}/gone'"),
    (dict(data_prefix=dict(img_path='imgs', seg_map_path='labels')),
     "train_dataloader.dataset.data_prefix.img_path: no such folder '{root}/imgs'"),
    (dict(data_prefix=dict(img_path='images', seg_map_path='gt')),
     "train_dataloader.dataset.data_prefix.seg_map_path: no such folder '{root}/gt'"),
    (dict(ann_file='val.txt'), "train_dataloader.dataset.ann_file: no such file "
                               "'{root}/val.txt'"),
])
def test_check_paths_names_the_key(folder, change, message):
    root = str(folder)
    change = {k: v.format(root=root) if isinstance(v, str) else v for k, v in change.items()}
    with pytest.raises(FileNotFoundError) as err:
        check(cfg_of(folder, **change))
    assert str(err.value) == message.format(root=root)  # one line, key and path


def test_check_paths_absolute_prefix_and_no_root(folder):
    # an absolute prefix is not joined with data_root (mmengine's rule); without a
    # data_root the prefixes are taken as given
    check(cfg_of(folder, data_prefix=dict(img_path=str(folder / 'images'),
                                          seg_map_path='labels')))
    check(cfg_of(folder, data_root=None, data_prefix=dict(img_path=str(folder / 'images'),
                                                          seg_map_path=str(folder / 'labels'))))


def test_check_paths_of_the_pascal_datasets(tmp_path, standard_root):
    root, _ = standard_root
    ppp = dict(type='PascalPersonPartDataset', hierarchy='pascal_person_part', data_root=root,
               split='train')
    check(ppp)
    with pytest.raises(FileNotFoundError, match=r"^val_dataloader\.dataset\.split: no split "
                                                r"list for split 'test'"):
        check(dict(ppp, split='test'), 'val_dataloader.dataset')
    with pytest.raises(ValueError, match=r'dataset\.split: give `split`'):
        check(dict(ppp, split=''))
    with pytest.raises(FileNotFoundError, match=r"data_prefix\.seg_map_path: no such folder "
                                                r"'.*pascal_person_part_gt'"):
        check(dict(ppp, data_prefix=dict(img_path='JPEGImages',
                                         seg_map_path='pascal_person_part_gt')))
    npy = dict(ppp, type='PascalPartNpyDataset', data_prefix=dict(img_path='JPEGImages',
                                                                  seg_map_path='SegmentationPart'))
    with pytest.raises(FileNotFoundError, match=r"dataset\.classes_file: no such file "
                                                r"'.*classes\.txt'"):
        check(npy)
    # the default data_prefix of the class is checked when the config leaves it out
    with pytest.raises(FileNotFoundError, match=r"data_prefix\.seg_map_path: .*gt_masks'"):
        check({k: v for k, v in npy.items() if k != 'data_prefix'})


def test_check_paths_of_synthetic_people(tmp_path):
    root = tmp_path / 'not_yet'
    cfg = dict(type='SyntheticPeopleDataset', hierarchy='pascal_person_part',
               data_root=str(root), split='train',
               generate=dict(num_train=2, num_val=1, size=(24, 32), seed=0))
    check(cfg)  # generated when built: nothing need exist yet, and nothing is written
    assert not root.exists()
    with pytest.raises(FileNotFoundError, match=r'data_root: no such folder .*not_yet'):
        check({k: v for k, v in cfg.items() if k != 'generate'})


def test_an_unreadable_image_is_named(tmp_path):
    from hseg_mm.datasets.transforms import LoadCheckedImageFromFile
    empty = tmp_path / 'empty.jpg'
    empty.write_bytes(b'')  # OpenCV's own error would not name it
    with pytest.raises(OSError, match=f'cannot read image {empty}: '):
        LoadCheckedImageFromFile()(dict(img_path=str(empty)))
