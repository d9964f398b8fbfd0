"""tools/infer.py on a tiny mmseg model (ResNetV1c-18 at 8 base channels + FCNHead).

The model predicts the 7 leaves of the person tree and knows nothing of the tree:
infer.py derives the levels from its leaf prediction.
"""
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.registry import init_default_scope
from mmengine.runner import save_checkpoint
from mmseg.registry import MODELS

from hseg_mm.hierarchy import ClassHierarchy
from hseg_mm.visualization import level_palettes, render_level_panel
from hseg_mm.visualization.hierarchical_seg_visualizer import TITLE_H

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
{hierarchy}
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
                           seg_pad_val=255),
    backbone=dict(type='ResNetV1c', depth=18, stem_channels=8, base_channels=8,
                  out_indices=(3, ), norm_cfg=norm_cfg,
                  # stride 8 (as mmseg's -d8 models): a leaf map of several pixels per image
                  strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4),
                  # never read: the weights come from the checkpoint
                  init_cfg=dict(type='Pretrained', checkpoint='/nonexistent/r18.pth')),
    decode_head=dict(type='FCNHead', in_channels=64, in_index=0, channels=8, num_convs=1,
                     concat_input=False, num_classes=7, norm_cfg=norm_cfg,
                     loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    train_cfg=dict(), test_cfg=dict(mode='whole'))
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                 dict(type='PackSegInputs')]
"""

SIZES = [(24, 32), (40, 30), (33, 33)]  # (H, W) of the 3 input images


def load_infer():
    spec = importlib.util.spec_from_file_location('hseg_infer', ROOT / 'tools' / 'infer.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """A config, a runner-like checkpoint and a folder of 3 PNG images."""
    from mmengine.config import Config
    root = tmp_path_factory.mktemp('infer')
    config = root / 'tiny_fcn.py'
    config.write_text(CONFIG.format(hierarchy="hierarchy = 'pascal_person_part'"))
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(config)).model)
    with torch.no_grad():  # a scorer strong enough that the leaf map is not one class
        model.decode_head.conv_seg.weight.normal_(0, 3.0)
    # what mmengine's Runner saves: state_dict, meta with dataset_meta, and a message
    # hub holding HistoryBuffers (torch >= 2.6 refuses those without hseg_mm.compat)
    hub = MessageHub.get_instance('infer_test_hub')
    hub.update_scalar('train/loss', 1.5)
    leaves = ClassHierarchy('pascal_person_part').leaf_names
    checkpoint = root / 'iter_1.pth'
    save_checkpoint(dict(meta=dict(dataset_meta=dict(classes=leaves, palette=[[0, 0, 0]] * 7),
                                   iter=1),
                         state_dict=model.state_dict(), message_hub=hub.state_dict()),
                    str(checkpoint))
    images = root / 'images'
    images.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(SIZES):
        cv2.imwrite(str(images / f'img_{i}.png'), rng.integers(0, 256, (h, w, 3), np.uint8))
    (images / 'notes.txt').write_text('not an image')
    return config, checkpoint, images, root


def test_folder_gives_one_png_per_image(setup):
    from mmseg.apis import init_model, inference_model
    config, checkpoint, images, root = setup
    model = init_model(str(config), str(checkpoint), device='cpu')
    out_dir = root / 'out'
    written = load_infer().main([str(config), str(checkpoint), str(images),
                                 '--out-dir', str(out_dir), '--device', 'cpu'])
    assert [p.name for p in written] == ['img_0.png', 'img_1.png', 'img_2.png']
    assert sorted(p.name for p in out_dir.iterdir()) == ['img_0.png', 'img_1.png',
                                                         'img_2.png']
    tree = ClassHierarchy('pascal_person_part')
    for i, (h, w) in enumerate(SIZES):
        panel = cv2.imread(str(out_dir / f'img_{i}.png'))
        # the size of a prediction-only panel of an h x w image: one row, the legend
        expected = render_level_panel(np.zeros((h, w, 3), np.uint8), tree,
                                      pred_levels=np.zeros((3, h, w), np.int64))
        assert panel.shape == expected.shape
        # the input tile, below the title strip, is the image itself (both BGR here)
        assert np.array_equal(panel[TITLE_H:TITLE_H + h, :w],
                              cv2.imread(str(images / f'img_{i}.png')))
        # tile k (x from k * w) is level k of mmseg's own leaf prediction, pixel for pixel:
        # the leaf map of `inference_model` sent up the tree by the level look-up table,
        # coloured by the level's palette (opacity 1 by default: the mask alone)
        leaf = inference_model(model, str(images / f'img_{i}.png')).pred_sem_seg.data[0]
        levels = tree.level_luts()[:, leaf.numpy()]  # (3, h, w)
        for k, (level, palette) in enumerate(zip(levels, level_palettes(tree)), start=1):
            tile = panel[TITLE_H:TITLE_H + h, k * w:(k + 1) * w, ::-1]  # BGR -> RGB
            assert np.array_equal(tile, palette[level]), (i, k)
        assert len(np.unique(levels[-1])) > 1  # more than one leaf: a real comparison


def test_single_file_and_glob(setup):
    config, checkpoint, images, root = setup
    infer = load_infer()
    one = infer.main([str(config), str(checkpoint), str(images / 'img_1.png'),
                      '--out-dir', str(root / 'one')])
    assert [p.name for p in one] == ['img_1.png']
    assert [p.name for p in infer.collect_images(str(images / 'img_[02].png'))] == \
        ['img_0.png', 'img_2.png']


def test_hierarchy_from_config_is_the_top_level_tree():
    from mmengine.config import Config
    from hseg_mm.engine import ConfigError
    infer = load_infer()
    tree = dict(a=0, b=dict(c=1, d=2))
    assert infer.hierarchy_from_config(Config(dict(hierarchy=tree))).leaf_names == \
        ['a', 'c', 'd']
    # a part's own tree is no statement of the config's: one tree, at the top level
    with pytest.raises(ConfigError, match=r"no top-level `hierarchy`.*val_evaluator"):
        infer.hierarchy_from_config(Config(dict(val_evaluator=dict(hierarchy=tree))))
    # annotation loaders are dropped from the pipeline, whatever their module
    cfg = Config(dict(test_pipeline=[dict(type='LoadImageFromFile'),
                                     dict(type='LoadNpyAnnotations'),
                                     dict(type='PackSegInputs')]))
    assert [t['type'] for t in infer.inference_pipeline(cfg)] == ['LoadImageFromFile',
                                                                  'PackSegInputs']


def test_bad_input(setup):
    config, checkpoint, images, root = setup
    infer = load_infer()
    with pytest.raises(FileNotFoundError, match='missing.png'):
        infer.collect_images(str(root / 'missing.png'))
    with pytest.raises(FileNotFoundError, match='no images'):
        infer.collect_images(str(root / 'out_empty*'))
    no_tree = root / 'no_tree.py'
    no_tree.write_text(CONFIG.format(hierarchy=''))
    with pytest.raises(ValueError, match='no_tree.py: no top-level `hierarchy`'):
        infer.main([str(no_tree), str(checkpoint), str(images)])
    wrong_tree = root / 'wrong_tree.py'
    wrong_tree.write_text(CONFIG.format(hierarchy='hierarchy = dict(a=0, b=dict(c=1, d=2))'))
    with pytest.raises(ValueError, match='7 classes, the hierarchy has 3 leaves'):
        infer.main([str(wrong_tree), str(checkpoint), str(images / 'img_0.png'),
                    '--out-dir', str(root / 'wrong')])


def test_gt_dir_draws_ground_truth_beside_every_level(setup):
    """With --gt-dir, the panel has a GT row above the prediction row; its level tiles
    are the label map split by the tree, drawn as render_level_panel draws them."""
    from PIL import Image
    config, checkpoint, images, root = setup
    gt_dir = root / 'gt'
    gt_dir.mkdir()
    h, w = SIZES[0]
    label = np.zeros((h, w), np.uint8)
    label[:, w // 2:] = 3  # upper_arm: body / upper_body / upper_arm
    label[0] = 255  # an ignored row
    Image.fromarray(label, mode='L').save(gt_dir / 'img_0.png')
    out_dir = root / 'with_gt'
    written = load_infer().main([str(config), str(checkpoint), str(images / 'img_0.png'),
                                 '--out-dir', str(out_dir), '--gt-dir', str(gt_dir)])
    panel = cv2.imread(str(written[0]))
    tree = ClassHierarchy('pascal_person_part')
    image = cv2.imread(str(images / 'img_0.png'))[..., ::-1]
    gt_levels = torch.stack(tree.split_labels(torch.from_numpy(label.astype(np.int64))))
    # level 3 class of leaf 3 is upper_arm (3), level 2 upper_body (1), level 1 body (1)
    assert gt_levels[:, 1, -1].tolist() == [1, 1, 3]
    pred_only = render_level_panel(image, tree, pred_levels=np.zeros((3, h, w), np.int64))
    both = render_level_panel(image, tree, gt_levels=gt_levels,
                              pred_levels=np.zeros((3, h, w), np.int64))
    assert panel.shape == both.shape and panel.shape[0] > pred_only.shape[0]
    # the GT row (the first row of tiles) is exactly the rendered ground truth
    row = slice(0, TITLE_H + h)
    assert np.array_equal(panel[row], both[row][..., ::-1])
    with pytest.raises(FileNotFoundError, match=r'img_1.png: no label map'):
        load_infer().main([str(config), str(checkpoint), str(images / 'img_1.png'),
                           '--out-dir', str(out_dir), '--gt-dir', str(gt_dir)])
