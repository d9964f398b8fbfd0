"""Ignored and padded pixels keep the ignore index through mmseg's transforms, and
resizing labels (nearest) creates no new ids."""
import os.path as osp

import numpy as np
import pytest
import torch
from dataset_helpers import build, tiny_label, write_palette_png
from mmengine.config import Config

from hseg_mm.hierarchy import resolve_tree

PASCAL_PERSON_PART = dict(resolve_tree('pascal_person_part'))  # the shipped preset

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def make_transform(cfg):
    from mmseg.registry import TRANSFORMS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    return TRANSFORMS.build(cfg)


def sample(seed=0):
    lab = tiny_label(seed)  # 16x24, ids 0..6
    lab[:, -4:] = 255  # an ignored band, as unlabelled pixels
    img = np.random.default_rng(seed).integers(0, 255, size=lab.shape + (3,), dtype=np.uint8)
    return dict(img=img, gt_seg_map=lab, seg_fields=['gt_seg_map'], img_shape=lab.shape,
                ori_shape=lab.shape)


ALLOWED = set(range(7)) | {255}


@pytest.mark.parametrize('cfg', [
    dict(type='RandomResize', scale=(24, 16), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='Resize', scale=(37, 11), keep_ratio=False),  # odd factors both ways
    dict(type='RandomCrop', crop_size=(8, 8), cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=1.0),
    dict(type='PhotoMetricDistortion'),
])
def test_no_new_ids_and_ignore_kept(cfg):
    transform = make_transform(cfg)
    np.random.seed(0)
    for seed in range(4):
        data = sample(seed)
        before = data['gt_seg_map'].copy()
        out = transform(data)
        values = set(np.unique(out['gt_seg_map']).tolist())
        assert values <= ALLOWED, (cfg['type'], values)
        if cfg['type'] != 'RandomCrop':  # a crop may miss the band
            assert 255 in values
        assert out['gt_seg_map'].shape == out['img'].shape[:2]
        if cfg['type'] == 'RandomFlip':
            assert np.array_equal(out['gt_seg_map'], before[:, ::-1])  # no side to swap


def test_pad_transform_pads_labels_with_ignore():
    out = make_transform(dict(type='Pad', size=(32, 20)))(sample())  # size is (w, h)
    lab = out['gt_seg_map']
    assert lab.shape == (20, 32)
    assert np.all(lab[16:] == 255) and np.all(lab[:, 24:] == 255)
    assert np.array_equal(lab[:16, :24], sample()['gt_seg_map'])


def test_batch_padding_uses_ignore():
    # the data preprocessor's padding (mmseg stack_batch): labels padded with seg_pad_val 255
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    from mmseg.utils import stack_batch
    sample_ = SegDataSample()
    sample_.gt_sem_seg = PixelData(data=torch.zeros(1, 16, 24, dtype=torch.uint8))
    _, samples = stack_batch([torch.zeros(3, 16, 24)], [sample_], size=(20, 32),
                             pad_val=0, seg_pad_val=255)
    padded = samples[0].gt_sem_seg.data[0]
    assert padded.shape == (20, 32)
    assert torch.all(padded[16:] == 255) and torch.all(padded[:, 24:] == 255)
    assert torch.all(padded[:16, :24] == 0)


def test_config_train_pipeline_end_to_end(standard_root):
    # the shipped synthetic train pipeline over a label with an ignored band
    root, labels = standard_root
    lab = labels['a'].copy()
    lab[:, -4:] = 255
    write_palette_png(osp.join(root, 'SegmentationPart', 'a.png'), lab)
    cfg = Config.fromfile(osp.join(ROOT, 'configs/_base_/datasets/synthetic_people.py'))
    ds = build(dict(type='PascalPersonPartDataset', hierarchy=PASCAL_PERSON_PART,
                    data_root=root, split='train', pipeline=cfg.train_pipeline))
    np.random.seed(1)
    seen = set()
    for _ in range(6):
        seg = ds[0]['data_samples'].gt_sem_seg.data
        values = set(seg.unique().tolist())
        assert values <= ALLOWED
        seen |= values
    assert 255 in seen
