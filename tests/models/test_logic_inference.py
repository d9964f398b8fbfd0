"""LogicSeg's logic-guided inference ('logic' rule): by hand, against a per-pixel loop of
the message passing, 0 iterations = path_sum, any tree, options, head and metric."""
import math

import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from hseg_mm.evaluation.metrics.calibration import leaf_probabilities
from hseg_mm.hierarchy import ClassHierarchy
from hseg_mm.models.inference import (RULE_PROBABILITIES, check_rule_options, leaf_scores,
                                      level_predictions)
from hseg_mm.models.logic_inference import logic_message_passing
from hseg_mm.testing import seg_data_samples

init_default_scope('mmseg')


def logits_of(probs) -> torch.Tensor:
    """(1, V, 1, 1) logits whose sigmoids are `probs`."""
    return torch.tensor([math.log(p / (1 - p)) for p in probs]).view(1, -1, 1, 1)


def test_messages_change_the_path_by_hand():
    # a (a1=0, a2=1), b (b1=2): levels [a, b] and [a1, a2, b1].
    h = ClassHierarchy(dict(a=dict(a1=0, a2=1), b=dict(b1=2)))
    assert h.node_names == ['a', 'b', 'a1', 'a2', 'b1']
    z = logits_of([0.1, 0.6, 0.9, 0.6, 0.2])
    # Top-scoring path on the sigmoid scores (0 iterations = path_sum):
    # a1 0.1 + 0.9 = 1.0, a2 0.1 + 0.6 = 0.7, b1 0.6 + 0.2 = 0.8 -> a1.
    s0 = leaf_scores(z, h, 'logic', dict(iterations=0)).flatten()
    assert torch.allclose(s0, torch.tensor([1.0, 0.7, 0.8]), atol=1e-6)
    assert torch.equal(s0, leaf_scores(z, h, 'path_sum').flatten())
    # One iteration. Messages (Eq. 16):
    #   C (to the parent): a1 1 - 0.9 + 0.9 * 0.1 = 0.19, a2 1 - 0.6 + 0.06 = 0.46,
    #     b1 1 - 0.2 + 0.2 * 0.6 = 0.92;
    #   D (to the children): a 1 - 0.1 + 0.1 * max(0.9, 0.6) = 0.99,
    #     b 1 - 0.6 + 0.6 * 0.2 = 0.52;
    #   E (to the peers): level [a, b]: a -(1 - 0.1 * 0.6) = -0.94, b -0.94;
    #     level [a1, a2, b1]: a1 -(1 - 0.9 * (0.6 + 0.2) / 2) = -0.64,
    #     a2 -(1 - 0.6 * (0.9 + 0.2) / 2) = -0.67, b1 -(1 - 0.2 * (0.9 + 0.6) / 2) = -0.85.
    # Aggregation (Eq. 17), each message times its sender's score:
    #   a  = 0.1 + (0.9 * 0.19 + 0.6 * 0.46) / 2 + 0.6 * -0.94 = 0.1 + 0.2235 - 0.564 = -0.2405
    #   b  = 0.6 + 0.2 * 0.92 + 0.1 * -0.94 = 0.6 + 0.184 - 0.094 = 0.690
    #   a1 = 0.9 + 0.1 * 0.99 + (0.6 * -0.67 + 0.2 * -0.85) / 2 = 0.9 + 0.099 - 0.286 = 0.713
    #   a2 = 0.6 + 0.099 + (0.9 * -0.64 + 0.2 * -0.85) / 2 = 0.6 + 0.099 - 0.373 = 0.326
    #   b1 = 0.2 + 0.6 * 0.52 + (0.9 * -0.64 + 0.6 * -0.67) / 2 = 0.2 + 0.312 - 0.489 = 0.023
    # Softmax per level: [a, b] = (0.2828, 0.7172); [a1, a2, b1] = e^(0.713, 0.326, 0.023)
    #   / 4.448 = (0.4586, 0.3114, 0.2300).
    s = logic_message_passing(z, h, iterations=1).flatten()
    assert torch.allclose(s, torch.tensor([0.2828, 0.7172, 0.4586, 0.3114, 0.2300]),
                          atol=2e-4)
    # Path sums: a1 0.2828 + 0.4586 = 0.7414, a2 0.5942, b1 0.7172 + 0.2300 = 0.9472:
    # b's confidence (its exclusion message silences a) moves the path to b1.
    s1 = leaf_scores(z, h, 'logic', dict(iterations=1)).flatten()
    assert torch.allclose(s1, torch.tensor([0.7414, 0.5942, 0.9472]), atol=3e-4)
    assert level_predictions(s0.view(1, 3), h, 'logic').tolist() == [[0, 0]]  # a, a1
    assert level_predictions(s1.view(1, 3), h, 'logic').tolist() == [[1, 2]]  # b, b1


def loop_message_passing(z, h, iterations):
    """Per pixel, per entry: the message passing of `logic_message_passing` in loops.

    Entries (k, c): class c of level k; parent (k - 1, level_parents(k)[c]).
    """
    n, _, height, width = z.shape
    sizes = h.level_sizes
    out = torch.zeros(n, sum(sizes), height, width, dtype=torch.float64)
    entries = [(k, c) for k in range(h.num_levels) for c in range(sizes[k])]
    parent = {(k, c): (k - 1, h.level_parents(k)[c]) for k, c in entries if k > 0}
    kids = {e: [f for f in entries if parent.get(f) == e] for e in entries}
    for b in range(n):
        for i in range(height):
            for j in range(width):
                s = {(k, c): torch.sigmoid(z[b, h.levels[k][c], i, j].double()).item()
                     for k, c in entries}
                for _ in range(iterations):
                    h_c = {e: 1 - s[e] + s[e] * s[parent[e]] for e in parent}
                    h_d = {e: 1 - s[e] + s[e] * max(s[f] for f in kids[e])
                           for e in entries if kids[e]}
                    peers = {e: [(e[0], a) for a in range(sizes[e[0]]) if a != e[1]]
                             for e in entries}
                    h_e = {e: -(1 - s[e] * sum(s[a] for a in peers[e]) / len(peers[e]))
                           for e in entries if peers[e]}
                    new = {}
                    for e in entries:
                        value = s[e]
                        if kids[e]:
                            value += sum(s[f] * h_c[f] for f in kids[e]) / len(kids[e])
                        if e in parent:
                            value += s[parent[e]] * h_d[parent[e]]
                        if peers[e]:
                            value += sum(s[a] * h_e[a] for a in peers[e]) / len(peers[e])
                        new[e] = value
                    for k in range(h.num_levels):
                        total = sum(math.exp(new[(k, c)]) for c in range(sizes[k]))
                        for c in range(sizes[k]):
                            s[(k, c)] = math.exp(new[(k, c)]) / total
                out[b, :, i, j] = torch.tensor([s[e] for e in entries])
    return out


@pytest.mark.parametrize('iterations', [1, 3])
def test_matrix_form_equals_loops_on_four_level_tree(iterations, four_level_tree):
    # leaves at depths 1 to 4 (sky carried to every level), ids shuffled
    h = four_level_tree
    g = torch.Generator().manual_seed(iterations)
    z = 3 * torch.randn(2, h.num_nodes, 2, 3, generator=g)
    s = logic_message_passing(z, h, iterations)
    assert s.shape == (2, sum(h.level_sizes), 2, 3)
    assert torch.allclose(s.double(), loop_message_passing(z, h, iterations), atol=1e-5)
    # each level a distribution after any iteration
    for block in s.split(h.level_sizes, dim=1):
        assert torch.allclose(block.sum(1), torch.ones(2, 2, 3), atol=1e-5)


@pytest.mark.parametrize('tree_name', ['person_tree', 'four_level_tree'])
def test_zero_iterations_is_path_sum_and_shapes(tree_name, request):
    h = request.getfixturevalue(tree_name)
    torch.manual_seed(0)
    z = 4 * torch.randn(2, h.num_nodes, 5, 3)
    assert torch.equal(leaf_scores(z, h, 'logic', dict(iterations=0)),
                       leaf_scores(z, h, 'path_sum'))
    for iterations in (1, 2):
        s = leaf_scores(z, h, 'logic', dict(iterations=iterations))
        assert s.shape == (2, h.num_leaves, 5, 3) and torch.isfinite(s).all()
        # a sum of one normalised score per level
        assert (s >= 0).all() and (s <= h.num_levels + 1e-5).all()
        pred = level_predictions(s, h, 'logic')
        assert pred.shape == (2, h.num_levels, 5, 3)
        lut = torch.as_tensor(h.leaf_to_level)
        assert torch.equal(pred, lut[:, s.argmax(1)].movedim(0, 1))  # consistent
    # any trailing dims (the rule is per pixel)
    assert leaf_scores(z[..., 0], h, 'logic').shape == (2, h.num_leaves, 5)
    # the default is 2 iterations
    assert torch.equal(leaf_scores(z, h, 'logic'), leaf_scores(z, h, 'logic',
                                                               dict(iterations=2)))


def test_leaf_scores_fit_the_calibration(person_tree):
    assert RULE_PROBABILITIES['logic'] == 'normalised'
    torch.manual_seed(1)
    s = leaf_scores(8 * torch.randn(1, 10, 4, 4), person_tree, 'logic')[0]
    probs = leaf_probabilities(s, RULE_PROBABILITIES['logic'])
    assert torch.allclose(probs.sum(0), torch.ones(4, 4), atol=1e-5)
    assert torch.equal(probs.argmax(0), s.argmax(0))


def test_options(person_tree):
    assert check_rule_options('logic', dict(iterations=3)) == dict(iterations=3)
    # another rule's setting is dropped, so a config's rule can be switched alone
    assert check_rule_options('tree_min', dict(iterations=3)) == {}
    with pytest.raises(ValueError, match='unknown inference option'):
        check_rule_options('logic', dict(steps=3))
    with pytest.raises(ValueError, match='iterations must be an integer >= 0'):
        check_rule_options('logic', dict(iterations=-1))
    with pytest.raises(ValueError, match='iterations must be an integer >= 0'):
        leaf_scores(torch.zeros(1, 10, 1, 1), person_tree, 'logic', dict(iterations=1.5))


def test_head_predicts_with_logic(person_tree):
    head = MODELS.build(dict(
        type='HierarchicalFCNHead', hierarchy=person_tree, in_channels=8, channels=8,
        num_convs=1, norm_cfg=dict(type='BN'), inference='logic',
        inference_options=dict(iterations=3),
        loss_decode=[dict(type='NodeFocalLoss'), dict(type='LogicDecompositionLoss')]))
    assert head.inference_options == dict(iterations=3)
    head.eval()
    torch.manual_seed(0)
    x = [torch.randn(1, 8, 8, 8)]
    with torch.no_grad():
        scores = head.predict(x, [dict(img_shape=(16, 16))], dict())
        node_logits = head.forward(x)
    assert scores.shape == (1, 7, 16, 16)
    expected = leaf_scores(torch.nn.functional.interpolate(
        node_logits, size=(16, 16), mode='bilinear', align_corners=False),
        person_tree, 'logic', dict(iterations=3))
    assert torch.allclose(scores, expected, atol=1e-6)
    with pytest.raises(ValueError, match='unknown inference option'):
        MODELS.build(dict(type='HierarchicalFCNHead', hierarchy=person_tree, in_channels=8,
                          channels=8, inference='logic', inference_options=dict(k=2),
                          loss_decode=[dict(type='NodeFocalLoss')]))
    head.train()
    labels = torch.randint(0, 7, (1, 16, 16))
    losses = head.loss(x, seg_data_samples(labels), dict())
    assert set(losses) == {'loss_node_focal', 'loss_logic_d', 'acc_seg'}
