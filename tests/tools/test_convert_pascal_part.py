"""tools/convert_pascal_part.py on tiny hand-made Pascal-Part .mat files.

The .mat files are written with scipy.io.savemat from numpy record arrays, so that
loadmat gives back what the real Annotations_Part files give: `anno` a 1x1 struct,
`anno.objects` a 1xN struct array, `parts` a 1xM struct array (1x0 when empty),
`class_ind` a double, masks (H, W) uint8 0/1.
"""
import importlib.util
import io
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import scipy.io
from PIL import Image

from hseg_mm.datasets.labels import voc_colormap
from hseg_mm.hierarchy import ClassHierarchy

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'convert_pascal_part.py')
PART = [('part_name', 'O'), ('mask', 'O')]
OBJ = [('class', 'O'), ('class_ind', 'O'), ('mask', 'O'), ('parts', 'O')]


def _load_tool():
    spec = importlib.util.spec_from_file_location('convert_pascal_part', TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules['convert_pascal_part'] = module  # picklable workers, as when run as a script
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


def _mask(shape, *regions):
    m = np.zeros(shape, dtype=np.uint8)
    for r in regions:
        m[r] = 1
    return m


def _records(dtype, rows):
    a = np.zeros((1, len(rows)), dtype=dtype)  # MATLAB's 1xN struct array
    for i, row in enumerate(rows):
        a[0, i] = row
    return a


def write_mat(path, objects):
    """objects: [(class, class_ind, mask, [(part_name, mask), ...]), ...]"""
    objs = _records(OBJ, [(c, float(i), m, _records(PART, parts)) for c, i, m, parts in objects])
    anno = _records([('imname', 'O'), ('objects', 'O')],
                    [(osp.splitext(osp.basename(path))[0], objs)])
    scipy.io.savemat(path, {'anno': anno})


S = np.s_
# Image 1, 4x6, three objects: person A, a dog, person B.
#   A: mask rows 0-3 x cols 0-2; hair row 0 cols 0-2 (head 1), torso rows 1-2 cols 0-1 (2),
#      luarm rows 1-2 col 2 (upper arm 3), llleg (3, 0) (lower leg 6); (3, 1), (3, 2) are
#      person without part: background.
#   dog: mask rows 0-1 x cols 3-5, its part 'head' on row 0 cols 3-5: stays background.
#   B (later, over A): rhand rows 1-2 cols 2-3 (lower arm 4) covers A's luarm; ruleg
#      (3, 4:6) (upper leg 5), then rfoot (3, 5) (lower leg 6) over it: later part wins.
LABEL_1 = np.array([[1, 1, 1, 0, 0, 0],
                    [2, 2, 4, 4, 0, 0],
                    [2, 2, 4, 4, 0, 0],
                    [6, 0, 0, 0, 5, 6]], dtype=np.uint8)
# pixels: background 3 + 2 + 2 + 3 = 10, head 3, torso 4, upper arm 0 (covered by B),
# lower arm 4, upper leg 1, lower leg 2 (sum 24 = 4 x 6)


def _image_1(path):
    h, w = 4, 6
    write_mat(path, [
        ('person', 15, _mask((h, w), S[:, 0:3]), [
            ('hair', _mask((h, w), S[0, 0:3])),
            ('torso', _mask((h, w), S[1:3, 0:2])),
            ('luarm', _mask((h, w), S[1:3, 2])),
            ('llleg', _mask((h, w), S[3, 0]))]),
        ('dog', 12, _mask((h, w), S[0:2, 3:6]), [('head', _mask((h, w), S[0, 3:6]))]),
        ('person', 15, _mask((h, w), S[1:4, 2:6]), [
            ('rhand', _mask((h, w), S[1:3, 2:4])),
            ('ruleg', _mask((h, w), S[3, 4:6])),
            ('rfoot', _mask((h, w), S[3, 5]))]),
    ])


@pytest.fixture
def ann_dir(tmp_path):
    """Six files: 1 several objects (LABEL_1); 2 ONE person with ONE part, 'mouth' at
    (0, 0) of 2x3 (head 1, 5 background); 3 a person without parts and a horse with a
    'head' (2x2 background, "with people"); 4 a cat only (2x2 background); 5 random
    bytes; 6 a .mat without `anno`."""
    d = tmp_path / 'Annotations_Part'
    d.mkdir()
    _image_1(str(d / '2008_000001.mat'))
    write_mat(str(d / '2008_000002.mat'),
              [('person', 15, _mask((2, 3), S[:, :2]), [('mouth', _mask((2, 3), S[0, 0]))])])
    write_mat(str(d / '2008_000003.mat'),
              [('person', 15, _mask((2, 2), S[:, 0]), []),
               ('horse', 13, _mask((2, 2), S[:, 1]), [('head', _mask((2, 2), S[0, 1]))])])
    write_mat(str(d / '2008_000004.mat'), [('cat', 8, _mask((2, 2), S[0]), [])])
    (d / '2008_000005.mat').write_bytes(np.random.default_rng(0).bytes(300))
    scipy.io.savemat(str(d / '2008_000006.mat'), {'foo': np.ones((2, 2))})
    return str(d)


def _read(path):
    img = Image.open(path)
    return img.mode, np.array(img), img.getpalette()


def test_fixture_has_the_real_shapes(ann_dir):
    # as the public Pascal-Part readers index the real files (loadmat defaults)
    anno = scipy.io.loadmat(osp.join(ann_dir, '2008_000001.mat'))['anno'][0, 0]
    assert anno['objects'].shape == (1, 3)
    assert anno['objects'][0, 0]['parts'].shape == (1, 4)
    assert anno['objects'][0, 0]['class_ind'].tolist() == [[15.0]]
    one = scipy.io.loadmat(osp.join(ann_dir, '2008_000003.mat'))['anno'][0, 0]
    assert one['objects'][0, 0]['parts'].shape == (1, 0)


def test_convert(ann_dir, tmp_path, capsys):
    out = tmp_path / 'ppp' / 'SegmentationPart'
    assert tool.main([ann_dir, str(out)]) == 1  # two bad files

    mode, lab, palette = _read(out / '2008_000001.png')
    assert mode == 'P'
    np.testing.assert_array_equal(lab, LABEL_1)
    assert palette == voc_colormap(256).ravel().tolist()
    _, lab2, _ = _read(out / '2008_000002.png')
    np.testing.assert_array_equal(lab2, [[1, 0, 0], [0, 0, 0]])
    for i in ('2008_000003', '2008_000004'):  # people without parts / no people
        np.testing.assert_array_equal(_read(out / f'{i}.png')[1], np.zeros((2, 2)))
    assert sorted(os.listdir(out)) == [f'2008_00000{i}.png' for i in (1, 2, 3, 4)]
    # the list is beside SegmentationPart/ (the data root) and names images with parts
    assert (tmp_path / 'ppp' / 'all_id.txt').read_text() == '2008_000001\n2008_000002\n'

    stdout, stderr = capsys.readouterr()
    # files 6, read 4 (not 5, 6), people in 1, 2, 3; parts in 1, 2
    assert '6 .mat files, 4 read, 3 with people, 2 with person parts; 4 labels written' in stdout
    # background 10 + 5 + 4 + 4 = 23, head 3 + 1 = 4, the rest from image 1
    assert ('pixels per class: background 23, head 4, torso 4, upper_arm 0, lower_arm 4, '
            'upper_leg 1, lower_leg 2') in stdout
    assert 'all_id.txt (2 ids)' in stdout
    # ONE error naming both bad files, and why
    assert stderr.count('error:') == 1
    assert '2 .mat file(s) unreadable or malformed' in stderr
    assert '2008_000005.mat: not a readable .mat file' in stderr
    assert "2008_000006.mat: no variable 'anno' (variables: ['foo'])" in stderr


def test_skip_empty(ann_dir, tmp_path):
    out = tmp_path / 'labels'
    s = tool.convert(ann_dir, str(out), skip_empty=True, file=io.StringIO())
    assert sorted(os.listdir(out)) == ['2008_000001.png', '2008_000002.png']
    assert (s['written'], s['skipped'], s['with_people']) == (2, 2, 3)
    assert s['pixels']['background'] == 10 + 5  # images 1 and 2 only
    assert [osp.basename(p) for p, _ in s['bad']] == ['2008_000005.mat', '2008_000006.mat']


def test_split_lists(ann_dir, tmp_path, capsys):
    lists = tmp_path / 'lists'
    lists.mkdir()
    # the DeepLab release's "image label" lines, and a plain id list with a missing id
    (lists / 'train.txt').write_text(
        '/JPEGImages/2008_000001.jpg /SegmentationPart/2008_000001.png\n'
        '/JPEGImages/2008_000003.jpg /SegmentationPart/2008_000003.png\n')
    (lists / 'val_id.txt').write_text('2008_000002\n2008_000009\n')
    out, root = tmp_path / 'labels', tmp_path / 'root'
    rc = tool.main([ann_dir, str(out), '--split-lists', str(lists), '--list-dir', str(root)])
    assert rc == 1  # 2008_000009 has no .mat
    assert sorted(os.listdir(out)) == ['2008_000001.png', '2008_000002.png', '2008_000003.png']
    assert (root / 'train_id.txt').read_text() == '2008_000001\n2008_000003\n'
    assert (root / 'val_id.txt').read_text() == '2008_000002\n'
    assert not (root / 'all_id.txt').exists()
    stdout, stderr = capsys.readouterr()
    assert '3 .mat files, 3 read' in stdout  # only listed ids are converted
    assert 'val: 1 listed ids have no label' in stdout
    assert "2008_000009.mat: listed in ['val'] but missing" in stderr


@pytest.mark.parametrize('objects, reason', [
    ([('person', 15, _mask((2, 2), S[0]), [('lhead', _mask((2, 2), S[0, 0]))])],
     "anno.objects(1).parts(1).part_name 'lhead' is not a person part"),
    ([('person', 15, _mask((2, 2), S[0]), []), ('person', 15, _mask((3, 2), S[0]), [])],
     'anno.objects(2).mask: size (3, 2) differs from the first object mask (2, 2)'),
    ([('person', 12, _mask((2, 2), S[0]), [])],
     "anno.objects(1): class 'person' and class_ind 12 disagree"),
    ([], 'anno.objects is empty'),
])
def test_malformed_annotation_is_reported(tmp_path, objects, reason):
    path = str(tmp_path / 'x.mat')
    write_mat(path, objects)
    r = tool.convert_one((path, str(tmp_path / 'x.png'), False))
    assert r['error'].startswith(reason)
    assert not r['written'] and not osp.exists(tmp_path / 'x.png')  # no silent background


def test_script_nproc_2_matches(ann_dir, tmp_path):
    one, two = tmp_path / 'one' / 'labels', tmp_path / 'two' / 'labels'
    assert tool.convert(ann_dir, str(one), file=io.StringIO())['written'] == 4
    # as a user runs it, from the repo root, 2 workers
    proc = subprocess.run([sys.executable, TOOL, ann_dir, str(two), '--nproc', '2'],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 1, proc.stderr
    assert '2008_000005.mat' in proc.stderr and '2008_000006.mat' in proc.stderr
    assert '4 labels written' in proc.stdout
    assert sorted(os.listdir(one)) == sorted(os.listdir(two))
    for name in os.listdir(one):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    assert (one.parent / 'all_id.txt').read_text() == (two.parent / 'all_id.txt').read_text()


# ---------------------------------------------------------------- Pascal-Part-58 and -108
# Every part name of the Pascal-Part toolkit (part2ind.m), class by class; 'x_#' is x_1,
# x_2, ... (doors, wheels, windows, lights, engines, coaches).
_CAT = 'head leye reye lear rear nose torso neck lfleg lfpa rfleg rfpa lbleg lbpa rbleg rbpa tail'
_COW = ('head leye reye lear rear muzzle lhorn rhorn torso neck lfuleg lflleg rfuleg rflleg '
        'lbuleg lblleg rbuleg rblleg tail')
_BUS = ('frontside leftside rightside backside roofside leftmirror rightmirror fliplate '
        'bliplate door_# wheel_# headlight_# window_#')
TOOLKIT_PARTS = {
    'aeroplane': 'body stern lwing rwing tail engine_# wheel_#',
    'bicycle': 'fwheel bwheel saddle handlebar chainwheel headlight_#',
    'bird': 'head leye reye beak torso neck lwing rwing lleg lfoot rleg rfoot tail',
    'boat': '', 'bottle': 'cap body', 'bus': _BUS, 'car': _BUS, 'cat': _CAT, 'chair': '',
    'cow': _COW, 'diningtable': '', 'dog': _CAT + ' muzzle',
    'horse': _COW.replace('lhorn rhorn ', '') + ' lfho rfho lbho rbho',
    'motorbike': 'fwheel bwheel handlebar saddle headlight_#',
    'person': ('head leye reye lear rear lebrow rebrow nose mouth hair torso neck llarm luarm '
               'lhand rlarm ruarm rhand llleg luleg lfoot rlleg ruleg rfoot'),
    'pottedplant': 'pot plant', 'sheep': _COW, 'sofa': '',
    'train': ('head hfrontside hleftside hrightside hbackside hroofside headlight_# coach_# '
              'cfrontside_# cleftside_# crightside_# cbackside_# croofside_#'),
    'tvmonitor': 'screen'}


@pytest.mark.parametrize('n', ['58', '108'])
def test_part_tables_cover_the_toolkit_and_the_tree(n):
    parts = tool.part_set(n)
    assert parts.classes == ClassHierarchy(f'pascal_part_{n}').leaf_names
    assert sorted(parts.rules) == sorted(TOOLKIT_PARTS) == sorted(tool.VOC_CLASSES)
    produced = {0}  # background: pixels of no object
    for cls, names in TOOLKIT_PARTS.items():
        rest, exact, numbered = parts.rules[cls]
        # every toolkit name is known (numbered ones at any number) ...
        for name in names.split():
            for real in ([name[:-1] + '1', name[:-1] + '20'] if name.endswith('#') else [name]):
                lid = parts.part_id(cls, real)
                assert lid is not None, (cls, real)
                produced.add(lid)
        # ... and the table names nothing else (a typo would never match a real file)
        assert set(exact) | {p + '#' for p in numbered} <= set(names.split()), cls
        if rest is not None:
            produced.add(rest)
        assert parts.part_id(cls, 'no_such_part') is None
    # every leaf is made, 255 aside
    assert produced - {255} == set(range(int(n)))


def test_58_person_is_pascal_person_part():
    # the 58 set's six person parts are PASCAL-Person-Part's classes, merged the same way
    parts = tool.part_set('58')
    for name, ppp in tool.PART_TO_CLASS.items():
        assert parts.classes[parts.part_id('person', name)] == \
            'person_' + tool.STANDARD_CLASSES[ppp], name


def test_108_ignores_what_gmnets_scripts_ignore():
    parts = tool.part_set('108')
    ignored = sorted((cls, name) for cls, names in TOOLKIT_PARTS.items()
                     for name in names.split()
                     if parts.part_id(cls, name.replace('#', '1')) == 255)
    # my_part2ind_gray_103_4_255.m: 255 for these, and only these
    assert ignored == [('aeroplane', 'tail'), ('bicycle', 'headlight_#'), ('bird', 'leye'),
                       ('bird', 'reye'), ('car', 'leftmirror'), ('car', 'rightmirror'),
                       ('cow', 'leye'), ('cow', 'reye'), ('horse', 'leye'), ('horse', 'reye'),
                       ('person', 'lebrow'), ('person', 'rebrow'), ('sheep', 'leye'),
                       ('sheep', 'reye')]


def _image_parts(path):
    """4x6, four objects: a cat (head, left eye, left front leg, right back paw), a boat
    (silhouette), a person (hair, left eyebrow, left upper / lower arm, right hand), then a
    tv monitor (screen) whose silhouette covers (3, 4), a person pixel without a part."""
    h, w = 4, 6
    write_mat(path, [
        ('cat', 8, _mask((h, w), S[0:2, 0:3]), [
            ('head', _mask((h, w), S[0, 0])), ('leye', _mask((h, w), S[0, 1])),
            ('lfleg', _mask((h, w), S[1, 0])), ('rbpa', _mask((h, w), S[1, 1]))]),
        ('boat', 4, _mask((h, w), S[2:4, 0:2]), []),
        ('person', 15, _mask((h, w), S[:, 3:5]), [
            ('hair', _mask((h, w), S[0, 3])), ('lebrow', _mask((h, w), S[0, 4])),
            ('luarm', _mask((h, w), S[1, 3])), ('llarm', _mask((h, w), S[2, 3])),
            ('rhand', _mask((h, w), S[3, 3]))]),
        ('tvmonitor', 20, _mask((h, w), S[1:4, 5], S[3, 4]), [('screen', _mask((h, w), S[2, 5]))]),
    ])


# 108: cat_head 36, cat_eye 37, cat_leg 42, cat_paw 43, boat 18, person_hair 82,
# eyebrow ignored 255, person_arm 85 (upper and lower), person_hand 86, tvmonitor_screen 107;
# pixels of an object that no part covers stay 0 (the cat's (0, 2), (1, 2), the person's
# (1, 4), (2, 4), the tv's (1, 5), (3, 4), (3, 5))
LABEL_108 = np.array([[36, 37, 0, 82, 255, 0],
                      [42, 43, 0, 85, 0, 0],
                      [18, 18, 0, 85, 0, 107],
                      [18, 18, 0, 86, 0, 0]], dtype=np.uint8)
# 58: the cat's silhouette is torso 26 under its parts (head 23 takes the eye, leg 24 the
# paw), boat 12, person_head 43 (hair, eyebrow), upper arm 46, lower arm 45 (with the hand),
# the tv's silhouette frame 57 under its screen 56, over the person's bare pixel (3, 4)
LABEL_58 = np.array([[23, 23, 26, 43, 43, 0],
                     [24, 24, 26, 46, 0, 57],
                     [12, 12, 0, 45, 0, 56],
                     [12, 12, 0, 45, 57, 57]], dtype=np.uint8)
# person (PASCAL-Person-Part): the person's parts only, head 1, upper arm 3, lower arm 4
LABEL_PERSON = np.array([[0, 0, 0, 1, 1, 0],
                         [0, 0, 0, 3, 0, 0],
                         [0, 0, 0, 4, 0, 0],
                         [0, 0, 0, 4, 0, 0]], dtype=np.uint8)


@pytest.mark.parametrize('parts, expected', [('108', LABEL_108), ('58', LABEL_58),
                                             ('person', LABEL_PERSON)])
def test_part_sets_on_several_objects(tmp_path, parts, expected):
    path = str(tmp_path / '2008_000010.mat')
    _image_parts(path)
    png = str(tmp_path / 'x.png')
    r = tool.convert_one((path, png, False, parts))
    assert r['error'] is None and r['written']
    mode, lab, palette = _read(png)
    assert mode == 'P' and palette == voc_colormap(256).ravel().tolist()
    np.testing.assert_array_equal(lab, expected)
    assert r['ignored'] == (1 if parts == '108' else 0)  # the eyebrow


def test_bad_parts_are_named_in_one_error(tmp_path, capsys):
    ann = tmp_path / 'Annotations_Part'
    ann.mkdir()
    _image_parts(str(ann / '2008_000010.mat'))
    # a cat part the set lacks, and a class that is no VOC class
    write_mat(str(ann / '2008_000011.mat'),
              [('cat', 8, _mask((2, 2), S[0]), [('wing', _mask((2, 2), S[0, 0]))])])
    write_mat(str(ann / '2008_000012.mat'), [('unicorn', 21, _mask((2, 2), S[0]), [])])
    write_mat(str(ann / '2008_000013.mat'), [('cat', 12, _mask((2, 2), S[0]), [])])
    out = tmp_path / 'pascal_part' / 'ann108_dir'
    assert tool.main([str(ann), str(out), '--parts', '108']) == 1
    stdout, stderr = capsys.readouterr()
    assert sorted(os.listdir(out)) == ['2008_000010.png']  # the good file is converted
    assert '4 .mat files, 1 read, 1 with parts; 1 labels written' in stdout
    assert 'cat_head 1, cat_eye 1,' in stdout and 'ignored (255) 1' in stdout
    assert stderr.count('error:') == 1
    assert '3 .mat file(s) unreadable or malformed' in stderr
    assert ("2008_000011.mat: anno.objects(1).parts(1).part_name 'wing' is not a cat part of "
            "pascal_part_108") in stderr
    assert "2008_000012.mat: anno.objects(1).class 'unicorn' is not a PASCAL VOC class" in stderr
    assert "2008_000013.mat: anno.objects(1): class 'cat' and class_ind 12 disagree" in stderr


def test_logicseg_layout_in_one_command(tmp_path, capsys):
    ann = tmp_path / 'Annotations_Part'
    ann.mkdir()
    _image_parts(str(ann / '2008_000010.mat'))
    write_mat(str(ann / '2008_000011.mat'), [('chair', 9, _mask((2, 2), S[0]), [])])
    lists, jpegs = tmp_path / 'lists', tmp_path / 'JPEGImages'
    lists.mkdir()
    jpegs.mkdir()
    (lists / 'train_id.txt').write_text('2008_000010\n')
    (lists / 'val_id.txt').write_text('2008_000011\n2008_000012\n')  # 12: no .mat
    for i in ('2008_000010', '2008_000011'):
        (jpegs / f'{i}.jpg').write_bytes(b'jpeg ' + i.encode())
    root = tmp_path / 'pascal_part'
    rc = tool.main([str(ann), str(root / 'ann58_dir'), '--parts', '58', '--split-lists',
                    str(lists), '--split-dirs', '--images', str(jpegs)])
    assert rc == 1  # 2008_000012 is listed without a .mat
    # configs/_base_/datasets/pascal_part_58.py reads img_dir/<split>, ann58_dir/<split>
    np.testing.assert_array_equal(_read(root / 'ann58_dir' / 'train' / '2008_000010.png')[1],
                                  LABEL_58)
    np.testing.assert_array_equal(_read(root / 'ann58_dir' / 'val' / '2008_000011.png')[1],
                                  [[27, 27], [0, 0]])  # the chair's silhouette
    assert (root / 'img_dir' / 'val' / '2008_000011.jpg').read_bytes() == b'jpeg 2008_000011'
    assert sorted(os.listdir(root / 'img_dir' / 'train')) == ['2008_000010.jpg']
    assert (root / 'val_id.txt').read_text() == '2008_000011\n'
    stdout, stderr = capsys.readouterr()
    assert f'images: 2 linked into {root / "img_dir"}' in stdout
    assert "2008_000012.mat: listed in ['val'] but missing" in stderr


def test_gmnet_split_is_shipped():
    splits = tool.read_split_lists(tool.resolve_split_lists('gmnet'))
    # GMNet's 4,998 train / 5,105 val: every image Pascal-Part annotates, once
    assert {k: len(v) for k, v in splits.items()} == {'train': 4998, 'val': 5105}
    assert not set(splits['train']) & set(splits['val'])
    # PASCAL-Person-Part's standard split lies inside it
    from hseg_mm.datasets.pascal_person_part import OFFICIAL_SPLITS
    for split in ('train', 'val'):
        with open(osp.join(OFFICIAL_SPLITS, f'{split}_id.txt')) as f:
            assert set(f.read().split()) <= set(splits[split])
