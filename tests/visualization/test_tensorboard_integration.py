"""A tiny mmengine Runner: what reaches TensorBoard, save_best='mIoU', and infer.py.

2 training iterations of a plain mmseg model (ResNetV1c-18 at 8 base channels +
FCNHead with two loss terms) on four 32x32 images, one validation round with
HierarchicalIoUMetric, HierarchicalSegVisualizer and HierarchicalVisualizationHook.
"""
import glob
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from hseg_mm.hierarchy import ClassHierarchy

pytest.importorskip('tensorboard')

CONFIG = """
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
default_scope = 'mmseg'
hierarchy = 'pascal_person_part'
norm_cfg = dict(type='BN', requires_grad=True)
dataset = dict(type='BaseSegDataset', data_root='{root}',
               data_prefix=dict(img_path='img', seg_map_path='ann'), img_suffix='.png',
               seg_map_suffix='.png', metainfo=dict(classes={leaves}, palette=[[0, 0, 0]] * 7),
               pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                         dict(type='PackSegInputs')])
test_pipeline = dataset['pipeline']
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, size=(32, 32)),
    backbone=dict(type='ResNetV1c', depth=18, stem_channels=8, base_channels=8,
                  out_indices=(3, ), norm_cfg=norm_cfg),
    decode_head=dict(type='FCNHead', in_channels=64, in_index=0, channels=8, num_convs=1,
                     concat_input=False, num_classes=7, norm_cfg=norm_cfg,
                     loss_decode=[dict(type='CrossEntropyLoss', loss_name='loss_ce'),
                                  dict(type='DiceLoss', loss_weight=0.5,
                                       loss_name='loss_dice')]),
    train_cfg=dict(), test_cfg=dict(mode='whole'))
train_dataloader = dict(batch_size=2, num_workers=0, dataset=dataset,
                        sampler=dict(type='InfiniteSampler', shuffle=True))
val_dataloader = dict(batch_size=2, num_workers=0, dataset=dataset,
                      sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='HierarchicalIoUMetric', hierarchy=hierarchy)
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
val_cfg = dict(type='ValLoop')
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=2,
                        by_epoch=False)]
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2, save_best='mIoU'))
custom_hooks = [dict(type='HierarchicalVisualizationHook', num_images=3)]
visualizer = dict(type='HierarchicalSegVisualizer', hierarchy=hierarchy,
                  vis_backends=[dict(type='TensorboardVisBackend')])
log_processor = dict(by_epoch=False)
log_level = 'WARNING'
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork'),
               dist_cfg=dict(backend='gloo'))
"""


def test_runner_logs_losses_lr_metrics_and_level_images(tmp_path):
    from mmengine.config import Config
    from mmengine.runner import Runner
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rng = np.random.default_rng(0)
    for sub in ('img', 'ann'):
        (tmp_path / sub).mkdir()
    for i in range(4):
        cv2.imwrite(str(tmp_path / 'img' / f'{i}.png'), rng.integers(0, 256, (32, 32, 3),
                                                                     np.uint8))
        label = np.zeros((32, 32), np.uint8)
        label[8:24, 8:24] = i + 1  # head, torso, upper_arm, lower_arm
        cv2.imwrite(str(tmp_path / 'ann' / f'{i}.png'), label)
    leaves = ClassHierarchy('pascal_person_part').leaf_names
    config = tmp_path / 'tiny.py'
    config.write_text(CONFIG.format(root=tmp_path, leaves=leaves))
    cfg = Config.fromfile(str(config))
    cfg.work_dir = str(tmp_path / 'work')
    Runner.from_cfg(cfg).train()

    events = glob.glob(str(tmp_path / 'work' / '*' / 'vis_data' / 'events*'))
    assert len(events) == 1
    acc = EventAccumulator(events[0])
    acc.Reload()
    scalars = set(acc.Tags()['scalars'])
    # every loss term and the learning rate (LoggerHook, every training iteration)
    assert {'loss', 'decode.loss_ce', 'decode.loss_dice', 'lr'} <= scalars
    # every metric key of the validation round
    assert {'mIoU', 'mAcc', 'aAcc', 'consistency', 'mIoU_L1', 'mIoU_L1_nobg', 'aAcc_L1',
            'mIoU_L3_nobg'} <= scalars
    # the first 3 validation images, at the training step of the round
    assert sorted(acc.Tags()['images']) == ['val_levels_0', 'val_levels_1', 'val_levels_2']
    assert [e.step for e in acc.Images('val_levels_0')] == [2]
    best = list((tmp_path / 'work').glob('best_mIoU_iter_2.pth'))
    assert len(best) == 1

    # a Runner checkpoint (optimizer, message hub) loads in infer.py under torch >= 2.6
    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location('hseg_infer', root / 'tools' / 'infer.py')
    infer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(infer)
    written = infer.main([str(config), str(tmp_path / 'work' / 'iter_2.pth'),
                          str(tmp_path / 'img'), '--out-dir', str(tmp_path / 'out')])
    assert [p.name for p in written] == ['0.png', '1.png', '2.png', '3.png']
