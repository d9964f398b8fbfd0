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
