"""Calibration (ECE, class-wise ECE) of every level in HierarchicalIoUMetric, by hand.

Bins: with B bins, bin b = (b/B, (b+1)/B], 0 in bin 0. With B = 4 the edges are
0.25, 0.5, 0.75, and no probability below sits on one. Per level, N valid pixels:
  ECE   = (1/N) sum_b |sum_{i in b} correct_i - sum_{i in b} conf_i|  (bins over conf)
  cwECE = (1/C) sum_c (1/N) sum_b |sum_{i in b} 1[y_i = c] - sum_{i in b} p_c,i|

Person tree: L1 [background, body]; L2 [background, upper_body, lower_body];
L3 leaves 0 bg, 1 head, 2 torso, 3 upper_arm, 4 lower_arm, 5 upper_leg, 6 lower_leg.
"""
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from hseg_mm.evaluation.metrics import HierarchicalIoUMetric
from hseg_mm.evaluation.metrics.calibration import (calibration_errors, calibration_sums,
                                                    leaf_probabilities)
from hseg_mm.models.inference import (INFERENCE_RULES, RULE_PROBABILITIES, leaf_scores,
                                      level_predictions)


def probs_map(pixels, num_leaves=7, shape=None) -> torch.Tensor:
    """(L, H, W) from a list of {leaf id: score} per pixel (raster order)."""
    scores = torch.zeros(num_leaves, len(pixels))
    for i, pixel in enumerate(pixels):
        for leaf, value in pixel.items():
            scores[leaf, i] = value
    return scores.view(num_leaves, *(shape or (1, len(pixels))))


def sample(gt, scores, hierarchy, rule=None, levels=True, level_rule='flat') -> dict:
    """A dict-form data sample with leaf scores; predictions from the scores by
    `level_rule` (leaf argmax; ties go to the smaller leaf id)."""
    gt = torch.tensor(gt)
    s = SegDataSample(gt_sem_seg=PixelData(data=gt.view(1, *scores.shape[1:])),
                      seg_logits=PixelData(data=scores),
                      pred_sem_seg=PixelData(data=scores.argmax(0, keepdim=True)))
    if levels:
        s.pred_level_seg = PixelData(data=level_predictions(scores[None], hierarchy,
                                                            level_rule)[0])
    if rule is not None:
        s.set_metainfo(dict(inference_rule=rule))
    return s.to_dict()


def evaluate(metric, samples) -> dict:
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


# Four pixels, leaf probabilities of the 'flat' rule (they sum to 1):
#   gt        head             torso               bg                 upper_leg
#   probs     head .6 torso .4 torso .9 u_leg .1   bg .3 u_leg .7     u_leg .8 l_leg .2
#   pred L3   head             torso               upper_leg          upper_leg
#   pred L2   upper            upper               lower              lower
#   pred L1   body x 4
HAND_GT = [0 + 1, 2, 0, 5]
HAND_PROBS = [{1: .6, 2: .4}, {2: .9, 5: .1}, {0: .3, 5: .7}, {5: .8, 6: .2}]
# Top-label, N = 4:
#   L1 conf 1, 1, .7, 1; correct 1, 1, 0, 1: bin (.75,1] |3 - 3| = 0, bin (.5,.75] |0 - .7|
#      -> ECE = .7/4 = 17.5%
#   L2 conf 1, .9, .7, 1; correct 1, 1, 0, 1: (.75,1] |3 - 2.9| = .1, (.5,.75] .7 -> .8/4 = 20%
#   L3 conf .6, .9, .7, .8; correct 1, 1, 0, 1: (.5,.75] |1 - 1.3| = .3, (.75,1] |2 - 1.7| = .3
#      -> .6/4 = 15%
# Class-wise:
#   L1 bg p 0,0,.3,0 y 0,0,1,0: |1 - .3| = .7; body p 1,1,.7,1 y 1,1,0,1: .7
#      -> (.7 + .7) / 2 / 4 = 17.5%
#   L2 bg .7; upper p 1,.9,0,0 y 1,1,0,0: (.75,1] |2 - 1.9| = .1;
#      lower p 0,.1,.7,1 y 0,0,0,1: [0,.25] .1 + (.5,.75] .7 + (.75,1] 0 = .8
#      -> (.7 + .1 + .8) / 3 / 4 = 13.33%
#   L3 bg .7; head p .6 y 1: .4; torso p .4 (y 0), .9 (y 1): .4 + .1 = .5; upper/lower arm 0;
#      upper_leg p 0,.1 (y 0) .1 + .7 (y 0) .7 + .8 (y 1) .2 = 1.0; lower_leg p .2 (y 0): .2
#      -> 2.8 / 7 / 4 = 10%
HAND_EXPECTED = [(.175, .175), (.2, 1.6 / 12), (.15, .1)]


def test_hand_made_person_tree(person_tree):
    metric = HierarchicalIoUMetric(hierarchy=person_tree, ece_bins=4)
    result = evaluate(metric, [sample([HAND_GT], probs_map(HAND_PROBS), person_tree,
                                      rule='flat')])
    for k, (ece, cw_ece) in enumerate(HAND_EXPECTED):
        assert metric.calibration_results[k] == pytest.approx((ece, cw_ece), abs=1e-6)
        assert result[f'ECE_L{k + 1}'] == round(ece * 100, 2)
        assert result[f'cwECE_L{k + 1}'] == round(cw_ece * 100, 2)
    assert result['cwECE_L2'] == 13.33
    # the other keys are unchanged: L3 aAcc 3/4
    assert result['aAcc_L3'] == 75.0 and 'mIoU_L1_nobg' in result


def test_hand_made_four_level_tree(four_level_tree):
    # Levels (by smallest leaf id): L1 [ground, thing, sky]; L2 [road, vehicle, person,
    # sky, grass]; L3 [road, car, person, sky, bike, grass]; L4 leaf ids
    # 0 road, 1 sedan, 2 person, 3 sky, 4 bike, 5 grass, 6 truck.
    # pixel 1: gt truck, probs sedan .3 truck .6 bike .1 -> pred truck / car / vehicle / thing
    # pixel 2: gt bike,  probs sedan .7 bike .2 person .1 -> pred sedan / car / vehicle / thing
    # Top-label, N = 2:
    #   L4 conf .6 (right), .7 (wrong), both (.5,.75]: |1 - 1.3| = .3 -> .15
    #   L3 car .9 (right, (.75,1]) .1; car .7 (wrong, gt bike) .7 -> .8/2 = .4
    #   L2 vehicle 1 and .9, both right, (.75,1]: |2 - 1.9| = .1 -> .05
    #   L1 thing 1 and 1, both right -> 0
    # Class-wise:
    #   L4 sedan p .3 (y 0) + .7 (y 0) = 1.0; person .1; bike p .1 (y 0), .2 (y 1) both in
    #      [0,.25]: |1 - .3| = .7; truck p .6 (y 1) .4 -> 2.2 / 7 / 2 = 15.71%
    #   L3 car .9 (y 1) .1 + .7 (y 0) .7 = .8; person .1; bike .7 -> 1.6 / 6 / 2 = 13.33%
    #   L2 vehicle 1, .9 (y 1, 1) .1; person .1 -> .2 / 5 / 2 = 2%
    #   L1 0
    scores = probs_map([{1: .3, 6: .6, 4: .1}, {1: .7, 4: .2, 2: .1}])
    metric = HierarchicalIoUMetric(hierarchy=four_level_tree, ece_bins=4)
    result = evaluate(metric, [sample([[6, 4]], scores, four_level_tree, rule='flat')])
    expected = [(0, 0), (.05, .02), (.4, 1.6 / 12), (.15, 2.2 / 14)]
    for k, pair in enumerate(expected):
        assert metric.calibration_results[k] == pytest.approx(pair, abs=1e-6)
    assert [result[f'ECE_L{k}'] for k in (1, 2, 3, 4)] == [0, 5.0, 40.0, 15.0]
    assert [result[f'cwECE_L{k}'] for k in (1, 2, 3, 4)] == [0, 2.0, 13.33, 15.71]


def test_perfectly_calibrated_is_zero(person_tree):
    # Two pixels, both head .5 / upper_leg .5 (tie -> head), gt head and upper_leg:
    # L3 conf .5, 1 of 2 right; head and upper_leg p .5 with y in half the pixels;
    # L2 upper .5 / lower .5 the same; L1 body 1, right twice. Every bin: acc = conf.
    # A one-hot right prediction is calibrated too.
    scores = probs_map([{1: .5, 5: .5}, {1: .5, 5: .5}])
    one_hot = probs_map([{0: 1.}, {6: 1.}])
    metric = HierarchicalIoUMetric(hierarchy=person_tree)
    result = evaluate(metric, [sample([[1, 5]], scores, person_tree, rule='flat'),
                               sample([[0, 6]], one_hot, person_tree, rule='flat')])
    for k in (1, 2, 3):
        assert result[f'ECE_L{k}'] == 0.0 and result[f'cwECE_L{k}'] == 0.0


def test_ignore_pixels_are_excluded(person_tree):
    # A fifth pixel, gt 255, confidently wrong: the hand-made numbers do not change.
    gt = [HAND_GT + [255]]
    scores = probs_map(HAND_PROBS + [{3: .95, 4: .05}])
    metric = HierarchicalIoUMetric(hierarchy=person_tree, ece_bins=4)
    evaluate(metric, [sample(gt, scores, person_tree, rule='flat')])
    for k, pair in enumerate(HAND_EXPECTED):
        assert metric.calibration_results[k] == pytest.approx(pair, abs=1e-6)


def random_samples(hierarchy, count=6, rule='flat', seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        logits = torch.randn(1, hierarchy.num_nodes, 5, 6, generator=g) * 3
        scores = leaf_scores(logits, hierarchy, rule)[0]
        gt = torch.randint(0, hierarchy.num_leaves, (5, 6), generator=g)
        gt[0, :2] = 255
        out.append(sample(gt.tolist(), scores, hierarchy, rule=rule, level_rule=rule))
    return out


@pytest.mark.parametrize('rule', ['flat', 'tree_min'])
def test_two_ranks_sum_to_one(person_tree, rule):
    samples = random_samples(person_tree, rule=rule)
    one = HierarchicalIoUMetric(hierarchy=person_tree)
    one.process({}, samples)
    rank0 = HierarchicalIoUMetric(hierarchy=person_tree)
    rank1 = HierarchicalIoUMetric(hierarchy=person_tree)
    rank0.process({}, samples[:4])
    rank1.process({}, samples[4:])
    whole = one.compute_metrics(one.results)
    assert whole == rank0.compute_metrics(rank0.results + rank1.results)
    assert np.ravel(one.calibration_results) == pytest.approx(
        np.ravel(rank0.calibration_results), abs=1e-12)
    assert 0 < whole['ECE_L3'] < 100


def reference_errors(probs: np.ndarray, gt: np.ndarray, pred: np.ndarray, bins: int):
    """Loop version: probs (C, P), gt / pred (P,) of one level."""
    edges = np.linspace(0, 1, bins + 1)

    def binned(values, hits):
        total = 0.
        for b in range(bins):
            inside = (values > edges[b]) & (values <= edges[b + 1])
            if b == 0:
                inside |= values == 0
            total += abs(hits[inside].sum() - values[inside].sum())
        return total / len(values)

    conf = probs[pred, np.arange(len(pred))]
    ece = binned(conf, (pred == gt).astype(float))
    cw = np.mean([binned(probs[c], (gt == c).astype(float)) for c in range(len(probs))])
    return ece, cw


def test_matches_a_loop_reference_with_20_bins(person_tree):
    samples = random_samples(person_tree, count=3, seed=1)
    metric = HierarchicalIoUMetric(hierarchy=person_tree)
    evaluate(metric, samples)
    gts, preds, probs = [], [], []
    for s in samples:
        gt = s['gt_sem_seg']['data'][0].flatten()
        valid = gt != 255
        gts.append(torch.as_tensor(person_tree.leaf_to_level)[:, gt[valid]])
        preds.append(s['pred_level_seg']['data'].flatten(1)[:, valid])
        probs.append(s['seg_logits']['data'].flatten(1)[:, valid])
    gt, pred, leaf = torch.cat(gts, 1), torch.cat(preds, 1), torch.cat(probs, 1)
    for k, level in enumerate(person_tree.sum_to_levels(leaf[None].double())):
        expected = reference_errors(level[0].clamp(0, 1).numpy(), gt[k].numpy(),
                                    pred[k].numpy(), 20)
        assert metric.calibration_results[k] == pytest.approx(expected, abs=1e-6)


# Non-distribution rule ('tree_min'), two pixels; auto normalises the leaf scores:
#   pixel 1 gt head:      head .8 torso .4 (sum 1.2)       -> head 2/3, torso 1/3
#   pixel 2 gt lower_leg: u_leg .4 l_leg .2 bg .1 (sum .7) -> u_leg 4/7, l_leg 2/7, bg 1/7
#   pred L3 head, upper_leg (wrong); L2 upper, lower (right); L1 body, body (right)
#   L3 conf 2/3 (right), 4/7 (wrong), both (.5,.75]: |1 - 26/21| = 5/21 -> 5/42 = 11.90%
#   L2 conf 1, 6/7, both right, (.75,1]: |2 - 13/7| = 1/7 -> 1/14 = 7.14%
#   L1 the same, 7.14%; cwECE L1: bg p 0, 1/7 (y 0) -> 1/7; body 1, 6/7 (y 1) -> 1/7
#      -> (2/7) / 2 / 2 = 7.14%
#   Used as they are ('given'), L3 would be: .8 (right) .2 + .4 (wrong) .4 -> 30%.
TREE_MIN_SCORES = [{1: .8, 2: .4}, {5: .4, 6: .2, 0: .1}]


@pytest.mark.parametrize('rule', [None, 'tree_min', 'path_sum'])
def test_non_distribution_scores_are_normalised(person_tree, rule):
    s = sample([[1, 6]], probs_map(TREE_MIN_SCORES), person_tree, rule=rule,
               level_rule='tree_min')
    metric = HierarchicalIoUMetric(hierarchy=person_tree, ece_bins=4)
    result = evaluate(metric, [s])
    assert metric.calibration_results[2][0] == pytest.approx(5 / 42)
    assert metric.calibration_results[1][0] == pytest.approx(1 / 14)
    assert metric.calibration_results[0] == pytest.approx((1 / 14, 1 / 14))
    assert (result['ECE_L3'], result['ECE_L2'], result['cwECE_L1']) == (11.9, 7.14, 7.14)
    assert 'divided by their per-pixel sum' in metric.format_table()
    given = HierarchicalIoUMetric(hierarchy=person_tree, ece_bins=4, probabilities='given')
    assert evaluate(given, [s])['ECE_L3'] == 30.0


def test_plain_model_logits_get_a_softmax(person_tree):
    # No pred_level_seg and no rule: a plain mmseg model, whose seg_logits are logits.
    logits = torch.randn(7, 2, 3, generator=torch.Generator().manual_seed(0))
    plain = sample(torch.randint(0, 7, (2, 3)).tolist(), logits, person_tree, levels=False)
    as_probs = dict(plain, seg_logits=dict(data=logits.softmax(0)), inference_rule='flat')
    auto = evaluate(HierarchicalIoUMetric(hierarchy=person_tree), [plain])
    assert auto == evaluate(HierarchicalIoUMetric(hierarchy=person_tree), [as_probs])
    forced = evaluate(HierarchicalIoUMetric(hierarchy=person_tree, probabilities='softmax'),
                      [plain])
    assert forced == auto


def test_every_rule_has_probabilities():
    assert set(RULE_PROBABILITIES) == set(INFERENCE_RULES)


def test_table_and_keys(person_tree):
    metric = HierarchicalIoUMetric(hierarchy=person_tree, ece_bins=4)
    result = evaluate(metric, [sample([HAND_GT], probs_map(HAND_PROBS), person_tree,
                                      rule='flat')])
    assert [k for k in result if 'ECE' in k] == [
        'ECE_L1', 'cwECE_L1', 'ECE_L2', 'cwECE_L2', 'ECE_L3', 'cwECE_L3']
    table = metric.format_table()
    header = next(line for line in table.splitlines() if 'mIoU (no bg)' in line)
    assert [c.strip() for c in header.split('|')[1:-1]] == [
        'Level', 'classes', 'mIoU', 'mIoU (no bg)', 'mAcc', 'aAcc', 'ECE', 'cwECE']
    assert '| 17.50 | 17.50 |' in table and '4 equal-width bins' in table
    assert 'leaf scores used as probabilities (softmax rules): 1 image(s)' in table


def test_no_scores_no_calibration(person_tree):
    s = SegDataSample(gt_sem_seg=PixelData(data=torch.tensor([[[0, 1]]])),
                      pred_sem_seg=PixelData(data=torch.tensor([[[0, 1]]]))).to_dict()
    metric = HierarchicalIoUMetric(hierarchy=person_tree)
    result = evaluate(metric, [s])
    assert not any('ECE' in k for k in result) and 'ECE' not in metric.format_table()
    # off by argument even with scores
    scored = sample([HAND_GT], probs_map(HAND_PROBS), person_tree, rule='flat')
    assert not any('ECE' in k for k in evaluate(
        HierarchicalIoUMetric(hierarchy=person_tree, ece_bins=0), [scored]))
    # mixed: ECE over the scored samples only, said in the table
    metric = HierarchicalIoUMetric(hierarchy=person_tree, ece_bins=4)
    evaluate(metric, [scored, s])
    assert metric.calibration_results[0] == pytest.approx(HAND_EXPECTED[0])
    assert '1 image(s) without (finite) seg_logits left out' in metric.format_table()
    # a diverged model's NaN scores: left out the same way, mIoU still computed
    nan = sample([HAND_GT], probs_map(HAND_PROBS) * float('nan'), person_tree, rule='flat')
    metric = HierarchicalIoUMetric(hierarchy=person_tree, ece_bins=4)
    result = evaluate(metric, [scored, nan])
    assert metric.calibration_results[0] == pytest.approx(HAND_EXPECTED[0])
    assert 'mIoU' in result and '1 image(s) without (finite)' in metric.format_table()


def test_bad_arguments_and_scores(person_tree):
    for bins in (-1, 2.5, True):
        with pytest.raises(ValueError, match='ece_bins'):
            HierarchicalIoUMetric(hierarchy=person_tree, ece_bins=bins)
    with pytest.raises(ValueError, match='probabilities'):
        HierarchicalIoUMetric(hierarchy=person_tree, probabilities='sigmoid')
    metric = HierarchicalIoUMetric(hierarchy=person_tree)
    with pytest.raises(ValueError, match=r'\(L, H, W\)'):  # 6 channels for 7 leaves
        metric.process({}, [sample([[0, 1]], torch.rand(6, 1, 2), person_tree, levels=False)])
    with pytest.raises(ValueError, match='unknown inference_rule'):
        metric.process({}, [sample([[0, 1]], torch.rand(7, 1, 2), person_tree, rule='best')])
    with pytest.raises(ValueError, match='negative'):
        HierarchicalIoUMetric(hierarchy=person_tree, probabilities='normalised').process(
            {}, [sample([[0, 1]], torch.randn(7, 1, 2) - 5, person_tree)])
    with pytest.raises(ValueError, match='unknown probabilities'):
        leaf_probabilities(torch.rand(7, 2), 'auto')


def test_functions_directly():
    # one level of 2 classes, 2 pixels, 2 bins: p = (.3, .7) and (.9, .1), gt 1, 0;
    # pred 1, 0 (right, right): conf .7, .9 both in (.5, 1] -> |2 - 1.6| / 2 = .2
    # class 0: p .3 (y 0, bin 0), .9 (y 1, bin 1) -> (.3 + .1) / 2; class 1: .7 (y 1) .3,
    # .1 (y 0) .1 -> (.3 + .1) / 2; cwECE = .2
    probs = torch.tensor([[.3, .9], [.7, .1]])
    sums = calibration_sums(probs, [0], torch.tensor([[1, 0]]), torch.tensor([[1, 0]]), 2)
    assert sums.dtype == torch.float64 and sums.shape == (1 * 2 * 3 + 2 * 2 * 3, )
    assert calibration_errors(sums, [2], 2) == [pytest.approx((.2, .2))]
    assert np.isnan(calibration_errors(torch.zeros_like(sums), [2], 2)[0][0])
