import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from hseg_mm.structures import sample_level_labels


def _sample(**fields) -> SegDataSample:
    sample = SegDataSample()
    for key, data in fields.items():
        setattr(sample, key, PixelData(data=torch.tensor(data)))
    return sample


def test_levels_from_the_leaf_map_on_the_four_level_tree(four_level_tree):
    # Classes of each level, ordered by the smallest label id beneath (conftest's picture):
    #   L0 ground 0, thing 1, sky 2;  L1 road 0, vehicle 1, person 2, sky 3, grass 4;
    #   L2 road 0, car 1, person 2, sky 3, bike 4, grass 5;  L3 = label ids.
    # bike (4): thing, vehicle, bike, 4; truck (6): thing, vehicle, car, 6;
    # grass (5): ground, grass, grass, 5 (a leaf at depth 2 carried down); 255 stays.
    sample = _sample(pred_sem_seg=[[[4, 6]]], gt_sem_seg=[[[5, 255]]])
    gt, pred = sample_level_labels(sample, four_level_tree)
    assert pred.tolist() == [[[1, 1]], [[1, 1]], [[4, 1]], [[4, 6]]]
    assert gt.tolist() == [[[0, 255]], [[4, 255]], [[5, 255]], [[5, 255]]]


def test_pred_level_seg_is_taken_as_given_and_checked(four_level_tree):
    # a level-argmax prediction may be inconsistent (L0 ground over an L3 truck): kept
    given = [[[0]], [[1]], [[1]], [[6]]]
    _, pred = sample_level_labels(_sample(pred_level_seg=given), four_level_tree,
                                  need_gt=False)
    assert pred.tolist() == given
    with pytest.raises(ValueError, match='outside the levels'):
        sample_level_labels(_sample(pred_level_seg=[[[3]], [[0]], [[0]], [[0]]]),
                            four_level_tree, need_gt=False)  # L0 has 3 classes


def test_a_missing_field_is_named(four_level_tree):
    with pytest.raises(KeyError, match='no gt_sem_seg'):
        sample_level_labels(_sample(pred_sem_seg=[[[0]]]), four_level_tree)
    gt, pred = sample_level_labels(_sample(gt_sem_seg=[[[0]]]), four_level_tree,
                                   need_pred=False)
    assert pred is None and gt.shape == (4, 1, 1)
