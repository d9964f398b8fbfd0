"""The README's "Your own data and tree", end to end: a folder of images and label PNGs
holding the leaf ids of a 4-level tree with shuffled ids, a tree file, the shipped
config configs/examples/own_data_cpu.py, and the two commands (train, then test).
"""
import os
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image

from hseg_mm.datasets.labels import STANDARD_CLASSES
from hseg_mm.datasets.synthetic_people import make_synthetic_people
from hseg_mm.hierarchy import ClassHierarchy

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'examples', 'own_data_cpu.py')
# 4 levels; leaves at depths 1, 3 and 4; ids in no tree order
TREE_YAML = """\
background: 3
person:
  upper:
    head: 6
    trunk: {torso: 0}
    arm: {upper_arm: 5, lower_arm: 1}
  lower:
    leg: {upper_leg: 2, lower_leg: 4}
"""


def _my_data(root: str) -> None:
    """Synthetic people rewritten as a user's folder: images/{train,val}/*.jpg and
    labels/{train,val}/*.png holding the tree's own leaf ids."""
    people = osp.join(root, 'people')
    make_synthetic_people(people, num_train=4, num_val=2, size=(128, 128), seed=5)
    tree = ClassHierarchy(osp.join(root, 'tree.yaml'))
    lut = np.full(256, 255, dtype=np.uint8)  # standard id -> this tree's id, 255 kept
    lut[:len(STANDARD_CLASSES)] = [tree.leaf_names.index(n) for n in STANDARD_CLASSES]
    for split in ('train', 'val'):
        os.makedirs(osp.join(root, 'images', split))
        os.makedirs(osp.join(root, 'labels', split))
        with open(osp.join(people, f'{split}_id.txt')) as f:
            for name in f.read().split():
                shutil.copy(osp.join(people, 'JPEGImages', name + '.jpg'),
                            osp.join(root, 'images', split, name + '.jpg'))
                label = np.array(Image.open(osp.join(people, 'SegmentationPart', name + '.png')))
                Image.fromarray(lut[label]).save(osp.join(root, 'labels', split, name + '.png'))


def _run(args: list) -> str:
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, f'{args}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    return proc.stdout + proc.stderr


def test_own_data_and_tree_train_and_test(tmp_path):
    root = str(tmp_path / 'my_data')
    os.makedirs(root)
    with open(osp.join(root, 'tree.yaml'), 'w') as f:
        f.write(TREE_YAML)
    _my_data(root)
    options = [f'hierarchy={root}/tree.yaml', 'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
               'param_scheduler.0.end=2', 'default_hooks.checkpoint.interval=2',
               'train_dataloader.batch_size=2']
    for split in ('train', 'val', 'test'):
        options += [f'{split}_dataloader.dataset.data_root={root}',
                    f'{split}_dataloader.num_workers=0',
                    f'{split}_dataloader.persistent_workers=False']
    work = str(tmp_path / 'work')
    _run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', work,
          '--cfg-options', *options])
    log = _run([sys.executable, 'tools/test.py', CONFIG, osp.join(work, 'iter_2.pth'),
                '--work-dir', str(tmp_path / 'test'), '--cfg-options', *options])
    # every level of the 4-level tree is measured, and the deepest level names its leaves
    assert all(f'mIoU_L{k}' in log for k in (1, 2, 3, 4)) and 'mIoU_L5' not in log
    assert 'lower_arm' in log and 'trunk' in log
