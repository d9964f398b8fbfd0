"""The shipped dataset configs build and run their pipelines on synthetic data."""
import os.path as osp

import numpy as np
import pytest
from dataset_helpers import build
from mmengine.config import Config

from hseg_mm.datasets.synthetic_people import make_synthetic_people

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.mark.parametrize('name,layout,crop', [('pascal_person_part', 'standard', (480, 480)),
                                              ('pascal_part_npy', 'seeds', (480, 480)),
                                              ('synthetic_people', None, (128, 128))])
def test_config_builds_and_loads(tmp_path, name, layout, crop):
    cfg = Config.fromfile(osp.join(ROOT, 'configs/_base_/datasets', name + '.py'))
    assert cfg.crop_size == crop
    assert cfg.val_evaluator.type == 'HierarchicalIoUMetric'
    root = str(tmp_path / name)
    if layout:
        make_synthetic_people(root, 2, 1, size=(40, 60), seed=0, layout=layout)
    for loader in ('train_dataloader', 'val_dataloader'):
        ds_cfg = cfg[loader].dataset.to_dict()
        ds_cfg['data_root'] = root
        # the tree is the config's top-level one, handed over by HierarchicalRunner
        ds_cfg.setdefault('hierarchy', 'pascal_person_part')
        if 'generate' in ds_cfg:
            ds_cfg['generate'] = dict(num_train=2, num_val=1, size=(40, 60), seed=0)
        ds = build(ds_cfg)
        assert len(ds) == (2 if loader == 'train_dataloader' else 1)
        out = ds[0]
        seg = out['data_samples'].gt_sem_seg.data
        values = set(np.unique(seg.numpy()).tolist())
        assert values <= set(range(7)) | {255}
        # a person on background: at least background and one part (an all-255 map, or a
        # map of one class, would mean the labels were lost on the way)
        assert len(values - {255}) >= 2, values
        if loader == 'val_dataloader':  # labels stay at the original size, unpadded
            assert 255 not in values
            assert tuple(seg.shape[-2:]) == (40, 60)
            assert out['inputs'].shape[-2:] != seg.shape[-2:]  # the image was resized
