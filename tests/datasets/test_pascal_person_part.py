"""PascalPersonPartDataset: the on-disk variants of the standard layout, and every
bad input failing with the file named (missing files / empty split at build time,
contents when loaded)."""
import os
import os.path as osp
import shutil

import numpy as np
import pytest
from dataset_helpers import H, W, build, pipeline, write_gray_png, write_palette_png

from hseg_mm.hierarchy import ClassHierarchy, resolve_tree
from hseg_mm.palette import leaf_palette

PASCAL_PERSON_PART = dict(resolve_tree('pascal_person_part'))  # the shipped preset


def dataset_cfg(root, **kwargs):
    cfg = dict(type='PascalPersonPartDataset', hierarchy=PASCAL_PERSON_PART, data_root=root,
               split='train', pipeline=pipeline())
    cfg.update(kwargs)
    return cfg


def labels_of(dataset):
    return [dataset[i]['gt_seg_map'] for i in range(len(dataset))]


def test_repack_with_ids_beside(standard_root):
    root, labels = standard_root
    ds = build(dataset_cfg(root))
    assert len(ds) == 2
    assert ds.metainfo['classes'] == ['background', 'head', 'torso', 'upper_arm', 'lower_arm',
                                      'upper_leg', 'lower_leg']
    # the package's one palette (the tree's colours, as the level panels draw them)
    assert ds.metainfo['palette'] == leaf_palette(ClassHierarchy(PASCAL_PERSON_PART))
    assert ds.metainfo['hierarchy'] == PASCAL_PERSON_PART
    # palette PNGs are read as their indices, not colours or brightness
    for got, name in zip(labels_of(ds), 'ab'):
        assert np.array_equal(got, labels[name])
    assert len(build(dataset_cfg(root, split='val'))) == 1


def test_split_lists_in_list_folder_and_single_channel_pngs(standard_root, write_split):
    root, labels = standard_root
    os.remove(osp.join(root, 'train_id.txt'))
    write_split(root, 'train_id.txt', ['a', '', 'b  # comment'], folder='list')
    write_gray_png(osp.join(root, 'SegmentationPart', 'a.png'), labels['a'])  # 'L' mode ids
    got = labels_of(build(dataset_cfg(root)))
    assert np.array_equal(got[0], labels['a']) and np.array_equal(got[1], labels['b'])


def test_deeplab_release_pairs(standard_root, write_split):
    # DeepLab release: labels in pascal_person_part_gt/, lists of "/JPEGImages/x.jpg
    # /SegmentationPart/x.png" pairs whose label folder does not exist on disk
    root, labels = standard_root
    os.remove(osp.join(root, 'train_id.txt'))
    os.rename(osp.join(root, 'SegmentationPart'), osp.join(root, 'pascal_person_part_gt'))
    write_split(root, 'train.txt', ['/JPEGImages/b.jpg /SegmentationPart/b.png'],
                folder='pascal_person_part_trainval_list')
    ds = build(dataset_cfg(root, data_prefix=dict(img_path='JPEGImages',
                                                  seg_map_path='pascal_person_part_gt')))
    assert ds.get_data_info(0)['img_path'] == osp.join(root, 'JPEGImages', 'b.jpg')
    assert ds.get_data_info(0)['seg_map_path'] == osp.join(root, 'pascal_person_part_gt',
                                                           'b.png')
    assert np.array_equal(labels_of(ds)[0], labels['b'])


def test_explicit_ann_file(standard_root, write_split):
    root, labels = standard_root
    write_split(root, 'mine.txt', ['c'])
    ds = build(dataset_cfg(root, ann_file='mine.txt', split=''))
    assert np.array_equal(labels_of(ds)[0], labels['c'])


def test_tree_with_other_ids_is_fed_by_name(standard_root):
    # the same tree with permuted ids: the dataset maps disk ids onto it by name
    root, labels = standard_root
    tree = dict(body=dict(lower_body=dict(lower_leg=0, upper_leg=1),
                          upper_body=dict(lower_arm=2, upper_arm=3, torso=4, head=5)),
                background=6)
    ds = build(dataset_cfg(root, hierarchy=tree))
    standard_to_tree = np.array([6, 5, 4, 3, 2, 1, 0])
    assert np.array_equal(labels_of(ds)[0], standard_to_tree[labels['a']])
    assert ds.metainfo['classes'][0] == 'lower_leg'


def test_m2fp_order_via_layout_classes(standard_root):
    # M2FP stores 1 lower arm, 2 head, 3 upper leg, 4 torso, 5 lower leg, 6 upper arm;
    # standard = M2FP[[0, 4, 1, 5, 2, 6, 3]], i.e. M2FP id m -> standard id below
    root, _ = standard_root
    m2fp = np.array([[0, 1, 2, 3, 4, 5, 6]], dtype=np.uint8).repeat(H, 0)[:, :7]
    m2fp = np.pad(m2fp, ((0, 0), (0, W - 7)))
    write_palette_png(osp.join(root, 'SegmentationPart', 'a.png'), m2fp)
    ds = build(dataset_cfg(root, layout_classes=('background', 'lower_arm', 'head', 'upper_leg',
                                                 'torso', 'lower_leg', 'upper_arm')))
    assert labels_of(ds)[0][0, :7].tolist() == [0, 4, 1, 5, 2, 6, 3]


def test_layout_class_missing_from_tree(standard_root):
    root, _ = standard_root
    tree = dict(background=0, body=dict(head=1, torso=2, arm=3, upper_leg=4, lower_leg=5))
    with pytest.raises(ValueError, match=r"\['upper_arm', 'lower_arm'\]"):
        build(dataset_cfg(root, hierarchy=tree))


def test_missing_files_all_named_at_build(standard_root):
    root, _ = standard_root
    os.remove(osp.join(root, 'JPEGImages', 'a.jpg'))
    os.remove(osp.join(root, 'SegmentationPart', 'b.png'))
    with pytest.raises(FileNotFoundError, match='2 files') as err:
        build(dataset_cfg(root))
    assert err.match('a.jpg') and err.match('b.png')


def test_empty_split_and_missing_split(standard_root, write_split):
    root, _ = standard_root
    write_split(root, 'train_id.txt', ['', '# nothing'])
    with pytest.raises(ValueError, match='train_id.txt is empty'):
        build(dataset_cfg(root))
    with pytest.raises(FileNotFoundError, match="split 'test'"):
        build(dataset_cfg(root, split='test'))
    with pytest.raises(FileNotFoundError, match='nope.txt'):
        build(dataset_cfg(root, ann_file='nope.txt'))
    with pytest.raises(ValueError, match='give `split`'):
        build(dataset_cfg(root, split=''))
    write_split(root, 'train_id.txt', ['a b c'])
    with pytest.raises(ValueError, match='train_id.txt:1'):
        build(dataset_cfg(root))


def test_plain_load_annotations_is_refused(standard_root):
    # mmseg's loader would read palette PNGs unchecked: the config is told what to write
    root, _ = standard_root
    with pytest.raises(ValueError, match=r"uses LoadAnnotations, which neither.*"
                                         r"write dict\(type='LoadCheckedAnnotations'\)"):
        build(dataset_cfg(root, pipeline=pipeline('LoadAnnotations')))


def test_built_load_annotations_is_refused(standard_root):
    from mmcv.transforms import LoadImageFromFile
    from mmseg.datasets.transforms import LoadAnnotations
    root, _ = standard_root
    with pytest.raises(ValueError, match='uses LoadAnnotations.*LoadCheckedAnnotations'):
        build(dataset_cfg(root, pipeline=[LoadImageFromFile(), LoadAnnotations()]))


def test_hierarchy_classes_decide(standard_root):
    root, _ = standard_root
    with pytest.raises(ValueError, match='the tree decides'):
        build(dataset_cfg(root, metainfo=dict(classes=['a', 'b'])))


# ------------------------------------------------------ contents, at load time
def load_a(root):
    return build(dataset_cfg(root))[0]


def test_corrupt_image(standard_root):
    root, _ = standard_root
    path = osp.join(root, 'JPEGImages', 'a.jpg')
    with open(path, 'wb') as f:
        f.write(b'not a jpeg at all')
    with pytest.raises(OSError, match=r'cannot read image .*a\.jpg'):
        load_a(root)


def test_corrupt_label(standard_root):
    root, _ = standard_root
    with open(osp.join(root, 'SegmentationPart', 'a.png'), 'wb') as f:
        f.write(b'\x89PNG broken')
    with pytest.raises(ValueError, match='a.png: unreadable label'):
        load_a(root)


def test_label_of_another_size(standard_root):
    root, labels = standard_root
    write_palette_png(osp.join(root, 'SegmentationPart', 'a.png'), labels['a'][:, :-1])
    with pytest.raises(ValueError, match=r'a.png: label size \(16, 23\)'):
        load_a(root)


def test_label_id_outside_tree(standard_root):
    root, labels = standard_root
    bad = labels['a'].copy()
    bad[0, 0] = 7
    write_palette_png(osp.join(root, 'SegmentationPart', 'a.png'), bad)
    with pytest.raises(ValueError, match=r'a.png: label values \[7\]'):
        load_a(root)


def test_palette_saved_as_brightness(standard_root):
    # what `Image.open(p).convert('L')` of a palette label gives: 38 for head, 75 torso...
    root, labels = standard_root
    grey = np.array([0, 38, 75, 113, 15, 53, 90], dtype=np.uint8)[labels['a']]
    write_gray_png(osp.join(root, 'SegmentationPart', 'a.png'), grey)
    with pytest.raises(ValueError, match='a.png.*read as grayscale'):
        load_a(root)


def test_rgb_label(standard_root):
    root, labels = standard_root
    from PIL import Image
    from hseg_mm.datasets.labels import voc_colormap
    Image.fromarray(voc_colormap(7)[labels['a']]).save(
        osp.join(root, 'SegmentationPart', 'a.png'))
    with pytest.raises(ValueError, match=r'a.png: colour label of shape \(16, 24, 3\)'):
        load_a(root)


def test_label_removed_after_build(standard_root):
    root, _ = standard_root
    ds = build(dataset_cfg(root))
    shutil.rmtree(osp.join(root, 'SegmentationPart'))
    with pytest.raises(FileNotFoundError, match='a.png'):
        ds[0]


def test_rgb_label_decoded_when_asked(standard_root):
    root, labels = standard_root
    from PIL import Image
    from hseg_mm.datasets.labels import voc_colormap
    Image.fromarray(voc_colormap(7)[labels['a']]).save(
        osp.join(root, 'SegmentationPart', 'a.png'))
    ds = build(dataset_cfg(root, pipeline=[dict(type='LoadImageFromFile'),
                                           dict(type='LoadCheckedAnnotations',
                                                voc_colours=True)]))
    assert np.array_equal(ds[0]['gt_seg_map'], labels['a'])
