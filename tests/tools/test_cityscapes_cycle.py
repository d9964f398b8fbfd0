"""The Cityscapes recipe itself (ResNet-101-D8 DeepLabV3+, the HSSN tree) trains two
iterations and is tested by the command-line tools on a tiny set written in Cityscapes'
own layout; only sizes are shrunk (64x96 images, no pretrained weights)."""
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
from PIL import Image

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'hssn_cityscapes.py')
H, W = 64, 96


def _write(root: str, split: str, city: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    stem = f'{city}_{seed:06d}_000019'
    img_dir, gt_dir = (osp.join(root, d, split, city) for d in ('leftImg8bit', 'gtFine'))
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(gt_dir, exist_ok=True)
    # sky above buildings above road, a car on the road: ids the colours tell apart
    label = np.full((H, W), 10, dtype=np.uint8)
    label[H // 3:] = 2
    label[2 * H // 3:] = 0
    x = int(rng.integers(0, W - 30))
    label[H // 2:H - 4, x:x + 30] = 13
    label[:2] = 255
    colours = np.zeros((256, 3), dtype=np.uint8)
    colours[[10, 2, 0, 13]] = [(180, 130, 70), (70, 70, 70), (128, 64, 128), (142, 0, 0)]
    image = colours[label] + rng.integers(0, 20, (H, W, 3), dtype=np.uint8)
    cv2.imwrite(osp.join(img_dir, f'{stem}_leftImg8bit.png'), image)
    Image.fromarray(label).save(osp.join(gt_dir, f'{stem}_gtFine_labelTrainIds.png'))


def _run(args: list) -> str:
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=400,
                          env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='2'))
    assert proc.returncode == 0, f'{args}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    return proc.stdout + proc.stderr


def test_cityscapes_recipe_trains_and_tests(tmp_path):
    root = str(tmp_path / 'cityscapes')
    for seed, (split, city) in enumerate([('train', 'aachen'), ('train', 'bremen'),
                                          ('val', 'lindau')]):
        _write(root, split, city, seed)
    options = ['model.pretrained=None', f'model.data_preprocessor.size=({H},{W})',
               'train_dataloader.dataset.pipeline.2.scale=(96,64)',
               f'train_dataloader.dataset.pipeline.3.crop_size=({H},{W})',
               'val_dataloader.dataset.pipeline.1.scale=(96,64)',
               'test_dataloader.dataset.pipeline.1.scale=(96,64)',
               'train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'param_scheduler.0.end=2',
               'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1']
    for split in ('train', 'val', 'test'):
        options += [f'{split}_dataloader.dataset.data_root={root}',
                    f'{split}_dataloader.num_workers=0',
                    f'{split}_dataloader.persistent_workers=False']
    work = str(tmp_path / 'work')
    log = _run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', work,
                '--cfg-options', *options])
    assert 'Iter(train) [2/2]' in log
    log = _run([sys.executable, 'tools/test.py', CONFIG, osp.join(work, 'iter_2.pth'),
                '--work-dir', str(tmp_path / 'test'), '--cfg-options', *options])
    # both levels of the Cityscapes tree: 7 parents, then the 19 classes
    assert 'mIoU_L1' in log and 'mIoU_L2' in log and 'mIoU_L3' not in log
    assert 'vehicle' in log and 'traffic sign' in log
