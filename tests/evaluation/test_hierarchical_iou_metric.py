"""HierarchicalIoUMetric on 2x2 images of the person tree, worked out by hand.

Person tree (conftest): level 1 = [background, body]; level 2 = [background,
upper_body, lower_body]; level 3 = leaves by id: 0 background, 1 head, 2 torso,
3 upper_arm, 4 lower_arm, 5 upper_leg, 6 lower_leg.
"""
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import METRICS
from mmseg.structures import SegDataSample

from hseg_mm.evaluation.metrics import (HierarchicalIoUMetric, background_classes,
                                        format_level_table)
from hseg_mm.hierarchy import ClassHierarchy


def sample(gt, pred=None, levels=None) -> dict:
    """A data sample in the dict form mmengine's Evaluator hands to `process`."""
    s = SegDataSample(gt_sem_seg=PixelData(data=torch.tensor(gt)[None]))
    if pred is not None:
        s.pred_sem_seg = PixelData(data=torch.tensor(pred)[None])
    if levels is not None:
        s.pred_level_seg = PixelData(data=torch.tensor(levels))
    return s.to_dict()


def evaluate(metric, samples) -> dict:
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def test_registered():
    metric = METRICS.build(dict(type='HierarchicalIoUMetric', hierarchy='pascal_person_part'))
    assert isinstance(metric, HierarchicalIoUMetric)


def test_perfect_prediction_is_100_everywhere():
    # every leaf occurs, so no class is NaN; 255 is ignored.
    gt = [[0, 1, 2, 3], [4, 5, 6, 255]]
    pred = [[0, 1, 2, 3], [4, 5, 6, 0]]
    result = evaluate(HierarchicalIoUMetric(hierarchy='pascal_person_part'),
                      [sample(gt, pred)] * 2)
    expected = ['mIoU', 'mAcc', 'aAcc', 'consistency'] + [
        f'{m}_L{k}{s}' for k in (1, 2, 3) for m, s in
        (('mIoU', ''), ('mIoU', '_nobg'), ('aAcc', ''))]
    assert sorted(result) == sorted(expected)
    assert all(value == 100.0 for value in result.values()), result


def test_one_wrong_leaf_within_its_parent():
    # gt [[bg, head], [torso, upper_leg]], pred: torso -> upper_arm (same parent).
    # L1 and L2 are right: 100. L3: bg 1, head 1, torso 0/1, upper_arm 0/1,
    # upper_leg 1, lower_arm and lower_leg absent (NaN, left out).
    # mIoU = 3/5 = 60; no bg = 2/4 = 50; aAcc = 3/4 = 75;
    # mAcc over gt classes bg, head, torso, upper_leg = (1+1+0+1)/4 = 75.
    result = evaluate(HierarchicalIoUMetric(hierarchy='pascal_person_part'),
                      [sample([[0, 1], [2, 5]], [[0, 1], [3, 5]])])
    assert result['mIoU_L1'] == result['mIoU_L1_nobg'] == result['aAcc_L1'] == 100
    assert result['mIoU_L2'] == result['mIoU_L2_nobg'] == result['aAcc_L2'] == 100
    assert result['mIoU_L3'] == result['mIoU'] == 60.0
    assert result['mIoU_L3_nobg'] == 50.0
    assert result['aAcc_L3'] == result['aAcc'] == result['mAcc'] == 75.0
    assert result['consistency'] == 100.0  # leaf-derived levels are consistent


def test_one_wrong_leaf_across_parents():
    # gt [[bg, head], [torso, upper_leg]], pred: upper_leg -> upper_arm.
    # L1: all body right -> 100.
    # L2: gt [bg, U, U, L], pred [bg, U, U, U]: bg 1/1, U 2/(2+3-2) = 2/3, L 0/1.
    #     mIoU = (1 + 2/3 + 0)/3 = 55.56; no bg = (2/3 + 0)/2 = 33.33; aAcc 3/4.
    # L3: bg 1, head 1, torso 1, upper_arm 0/1, upper_leg 0/1 -> 3/5 = 60, no bg 2/4.
    result = evaluate(HierarchicalIoUMetric(hierarchy='pascal_person_part'),
                      [sample([[0, 1], [2, 5]], [[0, 1], [2, 3]])])
    assert result['mIoU_L1'] == 100.0
    assert result['mIoU_L2'] == 55.56
    assert result['mIoU_L2_nobg'] == 33.33
    assert result['aAcc_L2'] == 75.0
    assert result['mIoU_L3'] == 60.0
    assert result['mIoU_L3_nobg'] == 50.0


def test_ignore_pixels_are_excluded():
    # the wrong pixel (gt 255) does not count: perfect at every level.
    gt = torch.tensor([[0, 1], [2, 255]])
    result = evaluate(HierarchicalIoUMetric(hierarchy='pascal_person_part'),
                      [sample(gt.tolist(), [[0, 1], [2, 6]])])
    assert all(value == 100.0 for value in result.values()), result


def test_input_not_modified():
    s = sample([[0, 1], [2, 255]], [[0, 1], [2, 6]])
    before = s['gt_sem_seg']['data'].clone()
    HierarchicalIoUMetric(hierarchy='pascal_person_part').process({}, [s])
    assert torch.equal(s['gt_sem_seg']['data'], before)


def test_level_predictions_and_consistency():
    # gt [[bg, head], [torso, upper_leg]]; pred_level_seg (D=3, 2, 2) is used, not
    # pred_sem_seg (which is perfect here):
    #   L1 [[body, body], [body, body]]    pixel 0: L1 body but L2 bg     -> inconsistent
    #   L2 [[bg, U], [U, U]]               pixel 3: L2 U but L3 upper_leg -> inconsistent
    #   L3 [[bg, head], [torso, upper_leg]]
    # consistency = 2/4 = 50.
    # L1: gt [bg, body x3]: bg 0/1, body 3/4 -> mIoU 37.5, no bg 75, aAcc 75.
    # L2: gt [bg, U, U, L]: bg 1/1, U 2/3, L 0/1 -> mIoU 55.56; L3 perfect -> 100.
    levels = [[[1, 1], [1, 1]], [[0, 1], [1, 1]], [[0, 1], [2, 5]]]
    result = evaluate(HierarchicalIoUMetric(hierarchy='pascal_person_part'),
                      [sample([[0, 1], [2, 5]], [[0, 1], [2, 5]], levels)])
    assert result['consistency'] == 50.0
    assert result['mIoU_L1'] == 37.5
    assert result['mIoU_L1_nobg'] == 75.0
    assert result['aAcc_L1'] == 75.0
    assert result['mIoU_L2'] == 55.56
    assert result['mIoU'] == 100.0


def test_two_ranks_sum_to_one():
    # mmengine concatenates the results of every rank; counts add up exactly.
    g = torch.Generator().manual_seed(0)
    samples = [sample(torch.randint(0, 7, (5, 6), generator=g).tolist(),
                      torch.randint(0, 7, (5, 6), generator=g).tolist()) for _ in range(6)]
    one = HierarchicalIoUMetric(hierarchy='pascal_person_part')
    one.process({}, samples)
    rank0 = HierarchicalIoUMetric(hierarchy='pascal_person_part')
    rank1 = HierarchicalIoUMetric(hierarchy='pascal_person_part')
    rank0.process({}, samples[:4])
    rank1.process({}, samples[4:])
    assert one.compute_metrics(one.results) == \
        rank0.compute_metrics(rank0.results + rank1.results)
    # the whole BaseMetric path (collect_results without DDP, then reset)
    assert one.evaluate(len(samples))['mIoU'] < 100


def test_background_by_name(four_level_tree):
    # four-level tree: sky=3 is a depth-1 leaf. Level classes by smallest leaf id:
    # L1 [ground, thing, sky] -> 2; L2 [road, vehicle, person, sky, grass] -> 3;
    # L3 [road, car, person, sky, bike, grass] -> 3; L4 = leaf ids -> 3.
    assert background_classes(four_level_tree, ['sky']) == [[2], [3], [3], [3]]
    # the default 'background' is tolerated on a tree without one: no class left out
    metric = HierarchicalIoUMetric(hierarchy=four_level_tree)
    assert metric.background == [[], [], [], []]


def test_background_as_a_chain_of_single_children():
    # the HSSN release's layout: background repeated per level as a chain. Level 1 =
    # [background_l1, body] -> 0; level 2 = [background_l2, upper_body, lower_body] -> 0;
    # level 3 = leaves by id -> 0 (background).
    tree = ClassHierarchy('pascal_person_part_hssn')
    assert background_classes(tree, ['background']) == [[0], [0], [0]]
    metric = HierarchicalIoUMetric(hierarchy=tree)  # the default background name
    assert metric.background == [[0], [0], [0]]


def test_table_lists_every_level_and_class(person_tree):
    metric = HierarchicalIoUMetric(hierarchy=person_tree)
    evaluate(metric, [sample([[0, 1], [2, 5]], [[0, 1], [3, 5]])])
    table = format_level_table(person_tree, metric.level_results, metric.background, 100.0)
    for k in range(person_tree.num_levels):
        assert f'L{k + 1}' in table
        for name in person_tree.level_names(k):
            assert name in table
    assert 'background (bg)' in table
    assert metric.format_table().startswith(table.split('consistent')[0])
    with pytest.raises(RuntimeError, match='no results yet'):
        HierarchicalIoUMetric(hierarchy=person_tree).format_table()


def test_the_tree_from_dataset_meta(four_level_tree):
    # as mmengine's loops do: metric.dataset_meta = dataset.metainfo, which carries the tree
    metric = HierarchicalIoUMetric()
    metric.dataset_meta = dict(classes=four_level_tree.leaf_names,
                               hierarchy=four_level_tree.to_dict())
    assert metric.hierarchy.same_tree(four_level_tree)
    assert metric.background == [[], [], [], []]  # no 'background' node: none left out
    # a tree given to the metric stays; the hook reports a dataset's other tree
    given = HierarchicalIoUMetric(hierarchy='pascal_person_part')
    given.dataset_meta = dict(hierarchy=four_level_tree.to_dict())
    assert given.hierarchy.num_levels == 3


def test_bad_arguments(person_tree):
    with pytest.raises(ValueError, match='has no class tree: its dataset carries none'):
        HierarchicalIoUMetric().process({}, [sample([[0, 1]], [[0, 1]])])
    with pytest.raises(KeyError, match='sky'):
        HierarchicalIoUMetric(hierarchy=person_tree, background=('sky', ))
    with pytest.raises(ValueError, match='head'):
        HierarchicalIoUMetric(hierarchy=person_tree, background=('head', ))
    with pytest.raises(ValueError, match='ignore'):
        HierarchicalIoUMetric(hierarchy=ClassHierarchy('pascal_person_part', 0 + 254))


def test_bad_samples():
    metric = HierarchicalIoUMetric(hierarchy='pascal_person_part')
    with pytest.raises(ValueError, match='not in the hierarchy'):  # gt id 7
        metric.process({}, [sample([[0, 7]], [[0, 1]])])
    with pytest.raises(ValueError, match='leaves'):  # a 9-class model
        metric.process({}, [sample([[0, 1]], [[0, 8]])])
    with pytest.raises(ValueError, match='D=3'):
        metric.process({}, [sample([[0, 1]], None, [[[0, 1]], [[0, 1]]])])
    with pytest.raises(ValueError, match='outside'):  # level 1 has 2 classes
        metric.process({}, [sample([[0, 1]], None, [[[0, 2]], [[0, 1]], [[0, 1]]])])
    with pytest.raises(ValueError, match='differ in size'):
        metric.process({}, [sample([[0, 1]], [[0, 1, 1]])])
    with pytest.raises(KeyError, match='neither'):
        metric.process({}, [sample([[0, 1]])])


def test_output_dir_saves_every_level(tmp_path):
    from PIL import Image
    s = sample([[0, 6]], [[0, 6]])
    s['img_path'] = 'somewhere/2008_000003.jpg'
    metric = HierarchicalIoUMetric(hierarchy='pascal_person_part', output_dir=str(tmp_path))
    evaluate(metric, [s])
    # lower_leg (6) is body (1) at L1, lower_body (2) at L2, leaf id 6 at L3
    saved = [np.array(Image.open(tmp_path / f'L{k}' / '2008_000003.png')).tolist()
             for k in (1, 2, 3)]
    assert saved == [[[0, 1]], [[0, 2]], [[0, 6]]]


def test_format_only_needs_no_ground_truth(tmp_path):
    s = SegDataSample(pred_sem_seg=PixelData(data=torch.tensor([[[1, 2]]]))).to_dict()
    metric = HierarchicalIoUMetric(hierarchy='pascal_person_part', output_dir=str(tmp_path),
                                   format_only=True)
    assert evaluate(metric, [s]) == {}
    assert len(list(tmp_path.glob('L*/*.png'))) == 3
    with pytest.raises(ValueError, match='format_only=True needs output_dir'):
        HierarchicalIoUMetric(hierarchy='pascal_person_part', format_only=True)
