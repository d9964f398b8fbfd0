"""tools/check_dataset.py: every bad file named, per-level frequencies and weights."""
import importlib.util
import os
import os.path as osp

import numpy as np
import pytest
from dataset_helpers import write_gray_png, write_image, write_palette_png

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location(
        'check_dataset', osp.join(ROOT, 'tools', 'check_dataset.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_config(tmp_path, root):
    path = tmp_path / 'cfg.py'
    path.write_text(f'''
hierarchy = 'pascal_person_part'
pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadCheckedAnnotations')]
train_dataloader = dict(dataset=dict(type='PascalPersonPartDataset', hierarchy=hierarchy,
                        data_root={str(root)!r}, split='train', pipeline=pipeline))
val_dataloader = dict(dataset=dict(type='PascalPersonPartDataset', hierarchy=hierarchy,
                      data_root={str(root)!r}, split='val', pipeline=pipeline))
test_dataloader = val_dataloader
''')
    return str(path)


def weights_label():
    # 4x8: 16 background, 8 head (1), 8 upper_leg (5)
    lab = np.zeros((4, 8), dtype=np.uint8)
    lab[2:, :4] = 1
    lab[2:, 4:] = 5
    return lab


def test_level_statistics_by_hand(tool, person_tree):
    counts = np.bincount(weights_label().ravel(), minlength=7)  # [16, 8, 0, 0, 0, 8, 0]
    stats = tool.level_statistics(person_tree, counts)
    # level 1: background 16, body 16 -> freq .5/.5 -> inverse 2, 2 -> weights 1, 1
    assert np.allclose(stats[0]['weights'], [1, 1])
    # level 2: .5/.25/.25 -> inverse 2, 4, 4, mean 10/3 -> 0.6, 1.2, 1.2
    assert np.allclose(stats[1]['freq'], [0.5, 0.25, 0.25])
    assert np.allclose(stats[1]['weights'], [0.6, 1.2, 1.2])
    # level 3: the same three classes present, absent ones weigh 0
    assert np.allclose(stats[2]['weights'], [0.6, 1.2, 0, 0, 0, 1.2, 0])


def test_clean_dataset(tool, tmp_path, capsys):
    root = tmp_path / 'ok'
    for split, name in (('train', 'w'), ('val', 'v')):
        write_image(str(root / 'JPEGImages' / f'{name}.jpg'), 4, 8)
        write_palette_png(str(root / 'SegmentationPart' / f'{name}.png'), weights_label())
        (root / f'{split}_id.txt').write_text(name + '\n')
    assert tool.main([write_config(tmp_path, root), '--split', 'train']) == 0
    out = capsys.readouterr().out
    assert 'class_weight=[0.6, 1.2, 1.2]' in out and 'no problems' in out
    assert '== val' not in out


def test_every_bad_file_named(tool, tmp_path, capsys, standard_root):
    root, labels = standard_root  # train a, b; val c
    jpg = osp.join(root, 'JPEGImages')
    seg = osp.join(root, 'SegmentationPart')
    with open(osp.join(jpg, 'a.jpg'), 'wb') as f:  # corrupt image
        f.write(b'garbage')
    grey = np.array([0, 38, 75, 113, 15, 53, 90], dtype=np.uint8)[labels['b']]
    write_gray_png(osp.join(seg, 'b.png'), grey)  # palette read as brightness
    write_palette_png(osp.join(seg, 'c.png'), labels['c'][:-1])  # wrong size
    write_image(osp.join(jpg, 'd.jpg'))
    data = open(osp.join(jpg, 'd.jpg'), 'rb').read()
    with open(osp.join(jpg, 'd.jpg'), 'wb') as f:  # truncated JPEG
        f.write(data[:-2])  # cv2 refuses it (some decoders return a part-grey image)
    write_palette_png(osp.join(seg, 'd.png'), labels['a'])
    os.remove(osp.join(seg, 'a.png'))  # missing label
    with open(osp.join(root, 'val_id.txt'), 'a') as f:
        f.write('d\ne\n')  # e has no files at all
    assert tool.main([write_config(tmp_path, root), '--split', 'all']) == 1
    out = capsys.readouterr().out
    problems = out.split('problems:')[-1]
    for expected in ('a.jpg: corrupt', 'missing file: ' + osp.join(seg, 'a.png'),
                     'b.png: label values', 'grayscale', 'c.png: label size (15, 24)',
                     'd.jpg: ', 'missing file: ' + osp.join(jpg, 'e.jpg'),
                     'missing file: ' + osp.join(seg, 'e.png')):
        assert expected in problems, expected
    assert '7 problems' in out


def test_unbuildable_dataset_reported(tool, tmp_path, capsys):
    assert tool.main([write_config(tmp_path, tmp_path / 'nothing'), '--split', 'val']) == 1
    assert "no split list for split 'val'" in capsys.readouterr().out
