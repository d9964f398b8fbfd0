import math

import pytest
import torch

from hseg_mm.models.inference import INFERENCE_RULES, leaf_scores, level_predictions

# person tree channels: 0 background, 1 body, 2 upper_body, 3 lower_body, 4 head,
# 5 torso, 6 upper_arm, 7 lower_arm, 8 upper_leg, 9 lower_leg.


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def node_logits_from_probs(probs) -> torch.Tensor:
    """(1, V, 1, 1) logits whose sigmoids are `probs`."""
    return torch.tensor([logit(p) for p in probs]).view(1, -1, 1, 1)


def test_tree_min_and_path_sum_disagree(person_tree):
    # sigmoid scores: background 0.6; body 0.9, upper_body 0.9, head 0.5; rest 0.1.
    probs = [0.6, 0.9, 0.9, 0.1, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1]
    z = node_logits_from_probs(probs)
    # tree_min: background min(0.6) = 0.6, head min(0.9, 0.9, 0.5) = 0.5,
    # torso min(0.9, 0.9, 0.1) = 0.1, legs min(0.9, 0.1, 0.1) = 0.1 -> background.
    s = leaf_scores(z, person_tree, 'tree_min')
    expected = torch.tensor([0.6, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1])
    assert torch.allclose(s.flatten(), expected, atol=1e-6)
    assert level_predictions(s, person_tree, 'tree_min').flatten().tolist() == [0, 0, 0]
    # path_sum: background is carried to all 3 levels: 3 * 0.6 = 1.8; head
    # 0.9 + 0.9 + 0.5 = 2.3; torso 0.9 + 0.9 + 0.1 = 1.9; upper_leg 0.9 + 0.1 + 0.1 = 1.1
    # -> head: body (1) / upper_body (1) / head (1).
    s = leaf_scores(z, person_tree, 'path_sum')
    expected = torch.tensor([1.8, 2.3, 1.9, 1.9, 1.9, 1.1, 1.1])
    assert torch.allclose(s.flatten(), expected, atol=1e-6)
    assert level_predictions(s, person_tree, 'path_sum').flatten().tolist() == [1, 1, 1]


def test_level_argmax_can_be_inconsistent_flat_cannot(person_tree):
    # leaf softmax (label id order bg, head, torso, u_arm, l_arm, u_leg, l_leg):
    leaf_p = [0.35, 0.15, 0.15, 0.05, 0.05, 0.15, 0.10]
    z = torch.zeros(1, 10, 1, 1)
    z[0, person_tree.leaf_nodes, 0, 0] = torch.tensor(leaf_p).log()
    s = leaf_scores(z, person_tree, 'level_argmax')
    assert torch.allclose(s.flatten(), torch.tensor(leaf_p), atol=1e-6)
    # level 1: bg 0.35 vs body 0.65 -> body (1); level 2: bg 0.35, upper 0.40,
    # lower 0.25 -> upper_body (1); level 3: bg 0.35 is the largest leaf -> 0.
    # upper_body at level 2 but background at level 3: inconsistent.
    assert level_predictions(s, person_tree, 'level_argmax').flatten().tolist() == [1, 1, 0]
    # flat takes the same leaf softmax but derives parents from the leaf argmax.
    s = leaf_scores(z, person_tree, 'flat')
    assert level_predictions(s, person_tree, 'flat').flatten().tolist() == [0, 0, 0]


def test_hierahyp_argmaxes_each_level_of_the_leaf_softmax(person_tree):
    # hierahyp's test (metric_helpers.py `pred_childred`, `infer_parents`): the softmax over
    # the leaf logits, its argmax for the leaves and, for the parents, the argmax of each
    # parent's summed children. On the leaf softmax of the test above: the same scores and
    # the levels of 'level_argmax', [1, 1, 0]. The inner nodes' channels are not read:
    # set to 5 (more than any leaf), they change nothing ('hssn_release' would add them).
    leaf_p = [0.35, 0.15, 0.15, 0.05, 0.05, 0.15, 0.10]
    z = torch.full((1, 10, 1, 1), 5.0)
    z[0, person_tree.leaf_nodes, 0, 0] = torch.tensor(leaf_p).log()
    s = leaf_scores(z, person_tree, 'hierahyp')
    assert torch.allclose(s.flatten(), torch.tensor(leaf_p), atol=1e-6)
    assert level_predictions(s, person_tree, 'hierahyp').flatten().tolist() == [1, 1, 0]


@pytest.mark.parametrize('rule', ['tree_min', 'path_sum', 'flat', 'hssn_release', 'hssn_mmseg',
                                  'logic'])
def test_consistent_rules_agree_with_leaf_argmax(rule, four_level_tree):
    h = four_level_tree
    torch.manual_seed(0)
    z = torch.randn(2, h.num_nodes, 6, 5)
    s = leaf_scores(z, h, rule)
    assert s.shape == (2, h.num_leaves, 6, 5)
    pred = level_predictions(s, h, rule)
    assert pred.shape == (2, h.num_levels, 6, 5) and pred.dtype == torch.long
    leaf = s.argmax(1)
    assert torch.equal(pred[:, -1], leaf)  # deepest level index = label id
    for k in range(h.num_levels):
        assert torch.equal(pred[:, k], torch.as_tensor(h.leaf_to_level[k])[leaf])


def test_tree_min_matches_loop(four_level_tree):
    h = four_level_tree
    torch.manual_seed(1)
    z = torch.randn(1, h.num_nodes, 3, 2)
    s = leaf_scores(z, h, 'tree_min')
    for lid, v in enumerate(h.leaf_nodes):
        path = [v] + h.ancestors[v]
        assert torch.allclose(s[:, lid], z[:, path].sigmoid().amin(1))


def test_bad_rule_and_bad_shapes(person_tree):
    z = torch.zeros(1, 10, 2, 2)
    with pytest.raises(ValueError, match='valid rules: tree_min, path_sum, flat, level_argmax, '
                                         'hssn_release, hssn_mmseg, hierahyp, logic'):
        leaf_scores(z, person_tree, 'argmax')
    with pytest.raises(ValueError, match='valid rules'):
        level_predictions(torch.zeros(1, 7, 2, 2), person_tree, 'min')
    with pytest.raises(ValueError, match='V = 10'):
        leaf_scores(torch.zeros(1, 7, 2, 2), person_tree, 'tree_min')
    with pytest.raises(ValueError, match='L = 7'):
        level_predictions(z, person_tree, 'tree_min')
    assert INFERENCE_RULES == ('tree_min', 'path_sum', 'flat', 'level_argmax', 'hssn_release',
                               'hssn_mmseg', 'hierahyp', 'logic')


def test_accepts_config_value():
    # a 2-leaf tree given as a mapping: channels a (0), b (1).
    z = torch.tensor([1.0, -1.0]).view(1, 2, 1, 1)
    s = leaf_scores(z, dict(a=0, b=1), 'flat')
    assert level_predictions(s, dict(a=0, b=1), 'flat').flatten().tolist() == [0]


def test_hssn_rules_by_hand_and_path_sum_differs(person_tree):
    # Node logits log(p) with p summing to 1, so the softmax over all 10 channels is p:
    # background 0.30, body 0.25, upper_body 0.05, lower_body 0.05, head 0.05,
    # torso 0.10, upper_arm, lower_arm, upper_leg, lower_leg 0.05 each.
    p = [0.30, 0.25, 0.05, 0.05, 0.05, 0.10, 0.05, 0.05, 0.05, 0.05]
    z = torch.tensor(p).log().view(1, -1, 1, 1)
    # hssn_release: a leaf's probability plus its ancestors' (the release's simple_test):
    # background 0.30 (no ancestor); head 0.05 + 0.05 + 0.25 = 0.35; torso 0.10 + 0.05 +
    # 0.25 = 0.40; the arms 0.35; the legs 0.05 + 0.05 + 0.25 = 0.35 -> torso (id 2):
    # body (1) / upper_body (1) / torso (2).
    s = leaf_scores(z, person_tree, 'hssn_release')
    expected = torch.tensor([0.30, 0.35, 0.40, 0.35, 0.35, 0.35, 0.35])
    assert torch.allclose(s.flatten(), expected, atol=1e-6)
    assert level_predictions(s, person_tree, 'hssn_release').flatten().tolist() == [1, 1, 2]
    # path_sum on the same logits (a sum of per-level sigmoids, sigmoid(log p) = p / (1 + p)):
    # background carried to 3 levels 3 * 0.3 / 1.3 = 0.692; torso 0.25 / 1.25 + 0.05 / 1.05
    # + 0.10 / 1.10 = 0.339 -> background: path_sum is not the release's rule.
    s = leaf_scores(z, person_tree, 'path_sum')
    assert s.flatten()[0] == pytest.approx(3 * 0.3 / 1.3, abs=1e-6)
    assert s.flatten()[2] == pytest.approx(0.25 / 1.25 + 0.05 / 1.05 + 0.10 / 1.10, abs=1e-6)
    assert level_predictions(s, person_tree, 'path_sum').flatten().tolist() == [0, 0, 0]
    # hssn_mmseg adds raw logits along the path: background log 0.3 = -1.20; torso
    # log 0.25 + log 0.05 + log 0.10 = -6.68 -> background.
    s = leaf_scores(z, person_tree, 'hssn_mmseg')
    assert s.flatten()[0] == pytest.approx(math.log(0.3), abs=1e-6)
    assert s.flatten()[2] == pytest.approx(math.log(0.25 * 0.05 * 0.10), abs=1e-5)
    assert level_predictions(s, person_tree, 'hssn_mmseg').flatten().tolist() == [0, 0, 0]


@pytest.mark.parametrize('rule', ['hssn_release', 'hssn_mmseg'])
def test_hssn_rules_match_loop(rule, four_level_tree):
    # any tree, a shallow leaf (sky) included: the leaf's channel plus every ancestor's,
    # of the softmax over all nodes (release) or of the raw logits (mmseg projects/hssn)
    h = four_level_tree
    torch.manual_seed(2)
    z = torch.randn(2, h.num_nodes, 3, 4) * 4
    s = leaf_scores(z, h, rule)
    values = z.softmax(1) if rule == 'hssn_release' else z
    for lid, v in enumerate(h.leaf_nodes):
        assert torch.allclose(s[:, lid], values[:, [v] + h.ancestors[v]].sum(1), atol=1e-6)
