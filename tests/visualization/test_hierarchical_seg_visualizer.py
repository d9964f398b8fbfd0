"""Palette, panel rendering and the visualiser on tiny images of the person tree."""
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import VISUALIZERS
from mmseg.structures import SegDataSample

from hseg_mm.hierarchy import ClassHierarchy
from hseg_mm.visualization import (HierarchicalSegVisualizer, leaf_palette, level_palettes,
                                   render_level_panel)
from hseg_mm.visualization.hierarchical_seg_visualizer import TITLE_H

H, W = 6, 8
# leaf ids: left half background, right half head / upper_leg, bottom row ignored
GT = torch.tensor([[0] * 4 + [1] * 4] * 3 + [[0] * 4 + [5] * 4] * 2 + [[255] * 8])


def image() -> np.ndarray:
    return np.arange(H * W * 3, dtype=np.uint8).reshape(H, W, 3)


def sample(pred=GT.clamp(max=6), levels=None) -> SegDataSample:
    s = SegDataSample(gt_sem_seg=PixelData(data=GT[None]),
                      pred_sem_seg=PixelData(data=pred[None]))
    if levels is not None:
        s.pred_level_seg = PixelData(data=levels)
    return s


@pytest.mark.parametrize('tree', ['pascal_person_part', 'four_level'])
def test_palette_deterministic_and_distinct(tree, four_level_tree):
    hierarchy = four_level_tree if tree == 'four_level' else ClassHierarchy(tree)
    again = ClassHierarchy(hierarchy.tree)
    first, second = level_palettes(hierarchy), level_palettes(again)
    for k, (a, b) in enumerate(zip(first, second)):
        assert a.dtype == np.uint8 and a.shape == (hierarchy.level_sizes[k], 3)
        assert np.array_equal(a, b)  # same tree, same colours
        assert len({tuple(c) for c in a.tolist()}) == len(a)  # distinct within a level
    # a leaf carried down keeps its colour: the deepest level's leaves in every level
    assert leaf_palette(hierarchy) == first[-1].tolist()


def test_carried_background_keeps_its_colour(person_tree):
    palettes = level_palettes(person_tree)
    assert all(np.array_equal(p[0], palettes[0][0]) for p in palettes)  # class 0 = bg


def test_panel_layout_and_colours(person_tree):
    gt = torch.stack(person_tree.split_labels(GT))  # (3, H, W)
    pred = gt.clone()
    pred[:, 5] = 0  # the ignored row predicted as background
    palettes = level_palettes(person_tree)
    out = render_level_panel(image(), person_tree, gt, pred, alpha=1.0)
    assert out.dtype == np.uint8 and out.shape[2] == 3
    # 2 rows of (title + H); width at least input + 3 levels
    assert out.shape[0] > 2 * (TITLE_H + H) and out.shape[1] >= 4 * W
    y_gt, y_pred = TITLE_H, 2 * TITLE_H + H
    assert np.array_equal(out[y_gt:y_gt + H, :W], image())
    assert np.array_equal(out[y_pred:y_pred + H, :W], image())
    for k in range(3):
        x = (k + 1) * W
        gt_tile = out[y_gt:y_gt + H, x:x + W]
        # top-right pixel is head: L1 body (1), L2 upper_body (1), L3 head (1)
        assert np.array_equal(gt_tile[0, -1], palettes[k][1])
        assert np.array_equal(gt_tile[0, 0], palettes[k][0])  # background
        assert np.array_equal(gt_tile[5], np.zeros((W, 3)))  # ignore pixels are black
        assert np.array_equal(out[y_pred + 5, x:x + W], np.tile(palettes[k][0], (W, 1)))
    # the legend (below both rows) holds a 12x12 swatch of every class of every level
    legend = out[2 * (TITLE_H + H):]
    for palette in palettes:
        for color in palette:
            assert (legend == color).all(-1).sum() >= 12 * 12


def test_panel_with_prediction_only_is_shorter(person_tree):
    gt = torch.stack(person_tree.split_labels(GT))
    both = render_level_panel(image(), person_tree, gt, gt)
    one = render_level_panel(image(), person_tree, pred_levels=gt)
    assert one.shape[0] == both.shape[0] - (TITLE_H + H) and one.shape[1] == both.shape[1]


def test_panel_bad_input(person_tree):
    gt = torch.stack(person_tree.split_labels(GT))
    with pytest.raises(ValueError, match='needs gt_levels or pred_levels'):
        render_level_panel(image(), person_tree)
    with pytest.raises(ValueError, match='like the image'):
        render_level_panel(image(), person_tree, gt[:2])
    with pytest.raises(ValueError, match='RGB'):
        render_level_panel(image()[..., 0], person_tree, gt)
    bad = gt.clone()
    bad[0, 0, 0] = 2  # level 1 has classes 0..1
    with pytest.raises(ValueError, match='level 1'):
        render_level_panel(image(), person_tree, bad)


def test_visualizer_writes_to_backend(tmp_path):
    vis = VISUALIZERS.build(dict(type='HierarchicalSegVisualizer', name='vis_backend_test',
                                 hierarchy='pascal_person_part', save_dir=str(tmp_path),
                                 vis_backends=[dict(type='LocalVisBackend')]))
    assert isinstance(vis, HierarchicalSegVisualizer)
    assert vis.dataset_meta['classes'][1] == 'head'
    # a twice larger image than the masks is resized to them
    vis.add_datasample('val_levels_0', np.zeros((2 * H, 2 * W, 3), np.uint8), sample(),
                       step=3)
    files = list(tmp_path.rglob('*.png'))
    assert [f.name for f in files] == ['val_levels_0_3.png']
    assert vis.get_image().shape[1] >= 4 * W


def test_visualizer_prefers_level_predictions(person_tree):
    vis = HierarchicalSegVisualizer(hierarchy=person_tree, name='vis_levels_test', alpha=1.0)
    levels = torch.stack(person_tree.split_labels(GT)).clamp(max=1)  # ignore row -> 1
    levels[0] = 1  # level 1 says body everywhere, pred_sem_seg says background on the left
    out = vis.draw_levels(image(), sample(levels=levels), draw_gt=False)
    palettes = level_palettes(person_tree)
    assert np.array_equal(out[TITLE_H, W], palettes[0][1])  # L1 tile, pixel (0, 0): body


def test_visualizer_without_a_tree_takes_the_datasets_or_the_samples(four_level_tree):
    # built from a source config (MMSegInferencer), a visualiser has no tree of its own
    vis = HierarchicalSegVisualizer(name='vis_no_tree')
    with pytest.raises(ValueError, match='no tree to name the levels by'):
        vis.draw_levels(image(), sample())
    expected = HierarchicalSegVisualizer(hierarchy=four_level_tree, name='vis_tree')
    # mmengine's loops hand it the dataset's metainfo, which carries the tree
    vis.dataset_meta = dict(classes=four_level_tree.leaf_names,
                            hierarchy=four_level_tree.to_dict())
    assert vis.hierarchy.same_tree(four_level_tree)
    # or the segmentor names it in each predicted sample's metainfo
    from_sample = HierarchicalSegVisualizer(name='vis_sample_tree')
    labelled = sample(pred=torch.zeros_like(GT))
    labelled.set_metainfo(dict(hierarchy=four_level_tree))
    drawn = from_sample.draw_levels(image(), labelled)
    assert from_sample.hierarchy.same_tree(four_level_tree)
    assert np.array_equal(drawn, expected.draw_levels(image(), labelled))
