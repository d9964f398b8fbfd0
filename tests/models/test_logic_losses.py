"""LogicSeg's rule losses and focal BCE: by hand, against a transcription of LogicSeg's
2-level code, against per-clause loops on a 4-level tree, gradients, ramp, head wiring."""
import math
import os.path as osp
import random

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from hseg_mm.hierarchy import ClassHierarchy
from hseg_mm.models.losses import (LogicCompositionLoss, LogicDecompositionLoss,
                                   LogicExclusionLoss, NodeFocalLoss, composition_loss,
                                   decomposition_loss, exclusion_loss, node_focal_loss,
                                   ramp_factor)
from hseg_mm.testing import seg_data_samples

init_default_scope('mmseg')
IGNORE = 255
RULES = (composition_loss, decomposition_loss, exclusion_loss)

# a (a1=0, a2=1), b=2: channels a, b (depth 1), a1, a2 (depth 2);
# levels [a, b] and [a1, a2, b] (b carried down).
SMALL_TREE = dict(a=dict(a1=0, a2=1), b=2)


def logits_of(probs) -> torch.Tensor:
    """(1, V, 1, P) logits whose sigmoids are `probs` (P pixels of V values each)."""
    p = torch.tensor(probs, dtype=torch.float64).t()  # (V, P)
    return (p / (1 - p)).log().float().view(1, p.shape[0], 1, p.shape[1])


# ------------------------------------------------------------- by hand
def test_rules_by_hand_one_pixel():
    h = ClassHierarchy(SMALL_TREE)
    assert h.node_names == ['a', 'b', 'a1', 'a2']
    z = logits_of([[0.5, 0.5, 0.8, 0.4]])  # s_a, s_b, s_a1, s_a2
    # C: a1 -> a: 0.8 - 0.8 * 0.5 = 0.4; a2 -> a: 0.4 - 0.4 * 0.5 = 0.2;
    # p = 5: ((0.4^5 + 0.2^5) / 2)^(1/5) = (0.00528)^(1/5) = 0.350370; p = 1: 0.3.
    assert composition_loss(z, h).item() == pytest.approx(0.350370, abs=1e-5)
    assert composition_loss(z, h, p=1).item() == pytest.approx(0.3, abs=1e-6)
    # D: a -> a1 or a2: 0.5 - 0.5 * max(0.8, 0.4) = 0.1, one clause: 0.1 for any p.
    assert decomposition_loss(z, h).item() == pytest.approx(0.1, abs=1e-6)
    # E, level [a, b] = (0.5, 0.5): none > 0.7, so not confident; pairs a.b and b.a:
    # 2 * 0.25^3 = 0.03125 over 2 x 2 entries: (0.0078125)^(1/3) = 0.198425.
    # Level [a1, a2, b] = (0.8, 0.4, 0.5): one > 0.7 but none < 0.3, not confident;
    # pairs 0.32, 0.40, 0.20 each twice: 2 (0.032768 + 0.064 + 0.008) = 0.209536 over
    # 3 x 3: (0.0232818)^(1/3) = 0.285543. Weights 2^2 / 13 and 3^2 / 13:
    # 0.198425 * 4 / 13 + 0.285543 * 9 / 13 = 0.258738.
    assert exclusion_loss(z, h).item() == pytest.approx(0.258738, abs=1e-5)


def test_exclusion_gate_and_what_the_means_count():
    h = ClassHierarchy(SMALL_TREE)
    # pixel 1 as above; pixel 2 confident at both levels: [a, b] = (0.9, 0.1) and
    # [a1, a2, b] = (0.9, 0.1, 0.1): exactly one > 0.7, the others < 0.3.
    z = logits_of([[0.5, 0.5, 0.8, 0.4], [0.9, 0.1, 0.9, 0.1]])
    # E leaves pixel 2 out at both levels: the value of pixel 1 alone.
    assert exclusion_loss(z, h).item() == pytest.approx(0.258738, abs=1e-5)
    # C and D keep every pixel (LogicSeg's means run over all of them):
    # C pixel 2: 0.9 - 0.9 * 0.9 = 0.09, 0.1 - 0.1 * 0.9 = 0.01;
    # ((0.4^5 + 0.2^5 + 0.09^5 + 0.01^5) / 4)^(1/5) = 0.305049.
    assert composition_loss(z, h).item() == pytest.approx(0.305049, abs=1e-5)
    # D pixel 2: 0.9 - 0.9 * 0.9 = 0.09; ((0.1^5 + 0.09^5) / 2)^(1/5) = 0.0880 (p = 5).
    assert decomposition_loss(z, h).item() == pytest.approx(
        ((0.1 ** 5 + 0.09 ** 5) / 2) ** 0.2, abs=1e-5)
    # one level fully confident: pixel 2 only -> every level contributes 0
    assert exclusion_loss(z[..., 1:], h).item() == 0.0


def test_node_focal_by_hand():
    h = ClassHierarchy(SMALL_TREE)
    z = logits_of([[0.5, 0.5, 0.8, 0.4], [0.9, 0.1, 0.9, 0.1]])
    label = torch.tensor([[[0, IGNORE]]])  # pixel 1 is a1: targets a = 1, a1 = 1
    # alpha 0.5, gamma 2: positives -0.5 (1 - p)^2 log p, negatives -0.5 p^2 log(1 - p):
    # a: 0.5 * 0.25 * 0.693147 = 0.086643; b: 0.086643; a1: 0.5 * 0.04 * 0.223144 =
    # 0.004463; a2: 0.5 * 0.16 * 0.510826 = 0.040866; sum 0.218615 over 1 valid pixel.
    assert node_focal_loss(z, label, h).item() == pytest.approx(0.218615, abs=1e-5)


@pytest.mark.parametrize('tree_name', ['person_tree', 'four_level_tree'])
def test_zero_on_a_consistent_one_hot_path(tree_name, request):
    h = request.getfixturevalue(tree_name)
    for lid in range(h.num_leaves):
        path = [h.leaf_nodes[lid]] + h.ancestors[h.leaf_nodes[lid]]
        z = torch.full((1, h.num_nodes, 1, 2), -30.0)
        z[:, path] = 30.0
        z.requires_grad_()
        total = sum(rule(z, h) for rule in RULES)
        total.backward()
        assert total.item() < 1e-6, (lid, [rule(z, h).item() for rule in RULES])
        assert torch.isfinite(z.grad).all()
    # a violated path is not zero: a leaf on without its parent
    z = torch.full((1, h.num_nodes, 1, 1), -30.0)
    z[:, h.leaf_nodes[0]] = 30.0
    if h.ancestors[h.leaf_nodes[0]]:
        assert composition_loss(z, h).item() > 0.1


# ------------------------------------- LogicSeg's 2-level code, transcribed
def random_two_level_tree(seed: int, tops: int = 4) -> dict:
    """Every leaf at depth 2 (one parent has a single child, as LogicSeg's background
    has), label ids shuffled against the tree order."""
    rng = random.Random(seed)
    sizes = [1] + [rng.randint(2, 4) for _ in range(tops - 1)]
    ids = list(range(sum(sizes)))
    rng.shuffle(ids)
    tree, it = {}, iter(ids)
    for t, size in enumerate(sizes):
        tree[f't{t}'] = {f't{t}_{i}': next(it) for i in range(size)}
    return tree


def logicseg_reference(logits, label, h, step):
    """LogicSeg's `HieraLossPascalPart.forward` (lingorX/LogicSeg,
    mmseg/models/losses/pascal_part.py), transcribed for any 2-level tree whose leaves
    are all at depth 2: its channels are the L leaves by label id (`MCMA`) then the T
    parents (`MCMB`); parent t's leaves are a list here, a range of ids there."""
    tops = h.levels[0]
    kids = [[lid for lid in range(h.num_leaves) if h.parents[h.leaf_nodes[lid]] == t]
            for t in tops]
    num_classes, num_top = h.num_leaves, len(tops)
    z = logits[:, h.leaf_nodes + tops]  # LogicSeg's channel order
    # losses_bce_focal on one-hot leaf + one-hot parent targets, void pixels out
    targets = label.clone()
    void = targets == IGNORE
    targets[void] = 0
    top_of = torch.tensor([next(t for t, k in enumerate(kids) if lid in k)
                           for lid in range(num_classes)])
    onehot = torch.cat([F.one_hot(targets, num_classes),
                        F.one_hot(top_of[targets], num_top)], dim=-1).permute(0, 3, 1, 2)
    valid = (~void).unsqueeze(1)
    p = torch.sigmoid(z.float())
    eps, alpha, gamma = 1e-8, 0.5, 2
    bce = ((-alpha * onehot * (1 - p) ** gamma * torch.log(p + eps)
            - (1 - alpha) * (1 - onehot) * p ** gamma * torch.log(1 - p + eps))
           * valid).sum() / valid.sum()
    mcma = p[:, :num_classes].permute(0, 2, 3, 1).flatten(0, 2)
    mcmb = p[:, num_classes:].permute(0, 2, 3, 1).flatten(0, 2)
    # loss_c
    pred = mcma.clone()
    for t in range(num_top):
        pred[:, kids[t]] = mcma[:, kids[t]] - mcma[:, kids[t]] * mcmb[:, t:t + 1]
    c_rule = pred.pow(5).mean().pow(1 / 5)
    # loss_d
    pred = mcmb.clone()
    for t in range(num_top):
        pred[:, t:t + 1] = mcmb[:, t:t + 1] - mcmb[:, t:t + 1] * \
            mcma[:, kids[t]].max(dim=1, keepdim=True)[0]
    d_rule = pred.pow(5).mean().pow(1 / 5)
    # loss_e
    def level(m, c):
        hard = 1 - torch.logical_and((m > 0.7).sum(-1) == 1,
                                     (m < 0.3).sum(-1) == c - 1).float()
        new = m[hard > 0].unsqueeze(-1)
        predicate = (new @ new.transpose(1, 2)) * (1 - torch.eye(c))[None]
        return predicate.pow(3).mean().pow(1 / 3)
    e_rule = level(mcma, num_classes) * num_classes ** 2 / (num_classes ** 2 + num_top ** 2) + \
        level(mcmb, num_top) * num_top ** 2 / (num_classes ** 2 + num_top ** 2)
    factor = 0 if step < 20000 else (step - 20000) / 30000 if step < 50000 else 1.0
    return 0.5 * bce + 0.3 * factor * (c_rule + d_rule + e_rule * 2 / 3), \
        (bce, c_rule, d_rule, e_rule)


def logicseg_losses(h):
    """LogicSeg's objective as hseg-mm's configs state it (configs/logicseg_demo_cpu.py)."""
    ramp = (20000, 50000)
    return [NodeFocalLoss(h, alpha=0.5, gamma=2.0, loss_weight=0.5),
            LogicCompositionLoss(h, p=5, ramp_iters=ramp, loss_weight=0.3),
            LogicDecompositionLoss(h, p=5, ramp_iters=ramp, loss_weight=0.3),
            LogicExclusionLoss(h, p=3, ramp_iters=ramp, loss_weight=0.2)]


@pytest.mark.parametrize('seed', [0, 1])
def test_generic_rules_equal_logicseg_two_level_code(seed):
    h = ClassHierarchy(random_two_level_tree(seed))
    assert h.num_levels == 2 and all(h.depths[v] == 2 for v in h.leaf_nodes)
    g = torch.Generator().manual_seed(seed)
    z = (2 * torch.randn(2, h.num_nodes, 5, 4, generator=g)).requires_grad_()
    label = torch.randint(0, h.num_leaves, (2, 5, 4), generator=g)
    label[:, 0] = IGNORE
    before = label.clone()
    expected, (bce, c_rule, d_rule, e_rule) = logicseg_reference(z, label, h, step=35000)
    assert node_focal_loss(z, label, h).item() == pytest.approx(bce.item(), rel=1e-5)
    assert composition_loss(z, h).item() == pytest.approx(c_rule.item(), rel=1e-5)
    assert decomposition_loss(z, h).item() == pytest.approx(d_rule.item(), rel=1e-5)
    assert exclusion_loss(z, h).item() == pytest.approx(e_rule.item(), rel=1e-5)
    # the whole objective at 35k (ramp 0.5), and its gradient
    total = sum(loss(z, label, iteration=35000) for loss in logicseg_losses(h))
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)
    ours = torch.autograd.grad(total, z)[0]
    ref = torch.autograd.grad(expected, z)[0]
    assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-7)
    assert torch.equal(label, before)  # LogicSeg's code overwrote void labels in place


# ------------------------------------------- any tree, per-clause loops
def loop_reference(z, h, p_c=5.0, p_d=5.0, p_e=3.0):
    """Each rule by a loop over pixels and clauses, straight from the formulas."""
    s = z.double().sigmoid()
    n, _, height, width = s.shape
    pixels = [s[b, :, i, j] for b in range(n) for i in range(height) for j in range(width)]
    c = [(x[v] - x[v] * x[h.parents[v]]) ** p_c for x in pixels
         for v in range(h.num_nodes) if h.parents[v] >= 0]
    d = [(x[u] - x[u] * max(x[k] for k in h.children[u])) ** p_d for x in pixels
         for u in range(h.num_nodes) if h.children[u]]
    sizes = [len(m) for m in h.levels]
    e = 0.0
    for members in h.levels:
        size = len(members)
        terms, count = 0.0, 0
        for x in pixels:
            values = [x[v] for v in members]
            if sum(v > 0.7 for v in values) == 1 and sum(v < 0.3 for v in values) == size - 1:
                continue
            count += 1
            terms = terms + sum((values[i] * values[j]) ** p_e for i in range(size)
                                for j in range(size) if i != j)
        if count:
            e = e + (terms / (count * size * size)) ** (1 / p_e) * size ** 2 / \
                sum(k ** 2 for k in sizes)
    return (sum(c) / len(c)) ** (1 / p_c), (sum(d) / len(d)) ** (1 / p_d), e


def test_four_level_tree_with_shallow_leaves_matches_loops(four_level_tree):
    h = four_level_tree
    # leaves at depths 1 (sky), 2 (road, grass, person), 3 (bike) and 4 (sedan, truck),
    # label ids shuffled against the tree order
    assert sorted({h.depths[v] for v in h.leaf_nodes}) == [1, 2, 3, 4]
    g = torch.Generator().manual_seed(3)
    z = (2 * torch.randn(2, h.num_nodes, 3, 4, generator=g)).requires_grad_()
    z.data[0, :, 0, 0] = -6.0  # one pixel confident at every level: sky alone on
    z.data[0, h.leaf_nodes[3], 0, 0] = 6.0
    expected = loop_reference(z, h, 4.0, 5.0, 3.0)
    got = (composition_loss(z, h, 4.0), decomposition_loss(z, h), exclusion_loss(z, h))
    for ours, ref in zip(got, expected):
        assert ours.item() == pytest.approx(ref.item(), rel=1e-5)
        grad, = torch.autograd.grad(ours, z)
        grad_ref, = torch.autograd.grad(ref, z, retain_graph=True)
        assert torch.allclose(grad, grad_ref.float(), rtol=1e-4, atol=1e-8)


def test_gradients_finite_for_extreme_and_random_logits(four_level_tree, person_tree):
    for h in (four_level_tree, person_tree):
        for scale in (1.0, 50.0):
            g = torch.Generator().manual_seed(int(scale))
            z = (scale * torch.randn(2, h.num_nodes, 4, 4, generator=g)).requires_grad_()
            label = torch.randint(0, h.num_leaves, (2, 4, 4), generator=g)
            total = sum(loss(z, label) for loss in logicseg_losses(h))
            total.backward()
            assert torch.isfinite(total) and torch.isfinite(z.grad).all()


# ----------------------------------------------------------------- ramp
def test_ramp_and_module_weights(person_tree):
    # 0 before 20k, linear to 1 at 50k: 0, 0, 0.5, 1, 1
    assert [ramp_factor(i, 20000, 50000) for i in (0, 20000, 35000, 50000, 60000)] == \
        pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])
    loss = LogicCompositionLoss(person_tree, ramp_iters=(20000, 50000), loss_weight=0.3)
    assert [loss.current_weight(i) for i in (0, 20000, 35000, 50000, 60000)] == \
        pytest.approx([0.0, 0.0, 0.15, 0.3, 0.3])
    hub = MessageHub.get_instance('test_logic_ramp')
    try:
        assert loss.current_weight() == pytest.approx(0.3)  # no iteration known: the end
        hub.update_info('iter', 35000)
        assert loss.current_weight() == pytest.approx(0.15)
        assert loss.current_weight(50000) == pytest.approx(0.3)  # the keyword wins
        hub.update_info('iter', 10)
        z = torch.randn(1, 10, 2, 2, requires_grad=True)
        value = loss(z, torch.zeros(1, 2, 2, dtype=torch.long))
        value.backward()
        assert value.item() == 0 and z.grad is not None  # weight 0: connected, no rule
    finally:
        MessageHub.get_instance('test_logic_ramp_clean')
    assert LogicExclusionLoss(person_tree, loss_weight=2.0).current_weight(0) == 2.0


def test_modules_registered_and_bad_arguments(person_tree):
    names = [MODELS.build(dict(type=t, hierarchy='pascal_person_part')).loss_name
             for t in ('LogicCompositionLoss', 'LogicDecompositionLoss', 'LogicExclusionLoss',
                       'NodeFocalLoss')]
    assert names == ['loss_logic_c', 'loss_logic_d', 'loss_logic_e', 'loss_node_focal']
    assert [LogicCompositionLoss(person_tree).p, LogicDecompositionLoss(person_tree).p,
            LogicExclusionLoss(person_tree).p] == [5.0, 5.0, 3.0]
    with pytest.raises(ValueError, match='p must be > 0'):
        LogicCompositionLoss(person_tree, p=0)
    with pytest.raises(ValueError, match='ramp_iters'):
        LogicExclusionLoss(person_tree, ramp_iters=(50000, 20000))
    with pytest.raises(ValueError, match='loss_resolution'):
        LogicDecompositionLoss(person_tree, loss_resolution='image')
    with pytest.raises(ValueError, match='alpha'):
        NodeFocalLoss(person_tree, alpha=1.5)
    with pytest.raises(ValueError, match=r'V = 10'):
        LogicCompositionLoss(person_tree)(torch.zeros(1, 7, 2, 2))
    with pytest.raises(ValueError, match=r'label ids \[9\]'):
        NodeFocalLoss(person_tree)(torch.zeros(1, 10, 2, 2), torch.full((1, 2, 2), 9))


# ------------------------------------------------------------ head wiring
def test_head_gives_the_rules_its_own_logits(person_tree):
    # LogicSeg: focal BCE on logits resized to the label, the rules on the head's own
    # (8x8) logits; the head's loss_resolution stays 'label' for the other losses.
    losses = [dict(type='NodeFocalLoss', loss_weight=0.5),
              dict(type='LogicCompositionLoss', loss_weight=0.3),
              dict(type='LogicExclusionLoss', loss_weight=0.2, loss_resolution='label')]
    head = MODELS.build(dict(type='HierarchicalFCNHead', hierarchy=person_tree,
                             in_channels=8, channels=8, num_convs=1, loss_decode=losses,
                             norm_cfg=dict(type='BN'), inference='logic'))
    torch.manual_seed(0)
    logits = torch.randn(2, 10, 8, 8)
    labels = torch.randint(0, 7, (2, 32, 32))
    labels[:, :2] = IGNORE
    out = head.loss_by_feat(logits, seg_data_samples(labels))
    big = F.interpolate(logits, size=(32, 32), mode='bilinear', align_corners=False)
    assert out['loss_node_focal'].item() == pytest.approx(
        0.5 * node_focal_loss(big, labels, person_tree).item(), rel=1e-5)
    assert out['loss_logic_c'].item() == pytest.approx(
        0.3 * composition_loss(logits, person_tree).item(), rel=1e-5)
    assert out['loss_logic_e'].item() == pytest.approx(
        0.2 * exclusion_loss(big, person_tree).item(), rel=1e-5)
    assert 0 <= out['acc_seg'].item() <= 100
    assert not math.isnan(out['acc_seg'].item())


@pytest.mark.parametrize('config, ramp', [
    # the demo: the ramp at LogicSeg's fractions (20k, 50k of 60k) of its 3,000 iterations
    ('logicseg_demo_cpu.py', (1000, 2500)),
    # LogicSeg's own schedule: 20k to 50k of 60k
    ('logicseg/logicseg_r101-d8_4xb4-60k_pascal-part-108-512x512.py', (20000, 50000)),
    # the same iterations on Mapillary's 240k (LogicSeg's Mapillary loss has no rules on)
    ('logicseg/logicseg_r101-d8_4xb2-240k_mapillary-v2-512x1024.py', (20000, 50000))])
def test_configs_state_logicsegs_objective(person_tree, config, ramp):
    # 0.5 focal BCE + 0.3 f (C + D) + 0.3 * 2/3 f E, the rules at the head's own logits
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg = Config.fromfile(osp.join(root, 'configs', config))
    head = cfg.model.decode_head
    assert head.inference == 'logic' and head.inference_options == dict(iterations=2)
    built = [MODELS.build(dict(c, hierarchy=person_tree)) for c in head.loss_decode]
    expected = logicseg_losses(person_tree)
    assert [type(m) for m in built] == [type(m) for m in expected]
    assert [m.loss_weight for m in built] == pytest.approx([0.5, 0.3, 0.3, 0.3 * 2 / 3])
    assert [m.p for m in built[1:]] == [5.0, 5.0, 3.0]
    for m in built[1:]:
        assert m.ramp_iters == ramp
        assert m.loss_resolution == 'logits'
