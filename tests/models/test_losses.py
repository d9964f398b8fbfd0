import math
import random

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmseg.registry import MODELS

from hseg_mm.hierarchy import ClassHierarchy
from hseg_mm.models.losses import (FocalTreeMinLoss, HierarchicalCrossEntropyLoss,
                                   level_mean_weights,
                                   TreeTripletLoss, focal_tree_min_loss,
                                   hierarchical_cross_entropy, sample_triplets, scheduled_weight,
                                   tree_triplet_loss)

IGNORE = 255


# ---------------------------------------------------------------- helpers
def random_tree(num_levels: int, seed: int) -> dict:
    """A random tree of exactly `num_levels` levels: fan-out 2..3 under the root
    and 1..3 below (single-child nodes happen), some leaves higher than the
    deepest level, label ids shuffled against the tree order."""
    rng = random.Random(seed)
    counter = iter(range(1000))
    leaves = []

    def grow(depth: int, must_reach: bool) -> dict:
        node = {}
        for i in range(rng.randint(2 if depth == 1 else 1, 3)):
            name = f'n{next(counter)}'
            if depth == num_levels or (not (must_reach and i == 0) and rng.random() < 0.3):
                node[name] = None  # leaf, id assigned below
                leaves.append((node, name))
            else:
                node[name] = grow(depth + 1, must_reach and i == 0)
        return node

    tree = grow(1, True)
    ids = list(range(len(leaves)))
    rng.shuffle(ids)
    for (parent, name), lid in zip(leaves, ids):
        parent[name] = lid
    return tree


def random_inputs(h: ClassHierarchy, seed: int, n=2, height=4, width=3, ignore_frac=0.2):
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(n, h.num_nodes, height, width, generator=g)
    label = torch.randint(0, h.num_leaves, (n, height, width), generator=g)
    label[torch.rand(n, height, width, generator=g) < ignore_frac] = IGNORE
    return logits.requires_grad_(), label


TREES = [ClassHierarchy(random_tree(3, s)) for s in (0, 1)] + \
        [ClassHierarchy(random_tree(4, s)) for s in (2, 3)]


def test_random_trees_have_requested_depth():
    assert [t.num_levels for t in TREES] == [3, 3, 4, 4]


# ----------------------------------------------------- focal tree-min loss
def focal_tree_min_reference(logits, label, h, gamma=2.0, class_weight=None):
    """Per-pixel, per-node Python loop straight from the formula."""
    n, _, height, width = logits.shape
    total, count = 0.0, 0
    for b in range(n):
        for i in range(height):
            for j in range(width):
                lid = int(label[b, i, j])
                if lid == IGNORE:
                    continue
                count += 1
                p = torch.sigmoid(logits[b, :, i, j].double()).tolist()
                path = set([h.leaf_nodes[lid]] + h.ancestors[h.leaf_nodes[lid]])
                for v in range(h.num_nodes):
                    p_min = min(p[u] for u in [v] + h.ancestors[v])
                    p_max = max(p[u] for u in [v] + h.descendants[v])
                    if v in path:
                        loss = -(1 - p_min) ** gamma * math.log(p_min)
                    else:
                        loss = -p_max ** gamma * math.log(1 - p_max)
                    total += loss * (class_weight[v] if class_weight else 1.0)
    return total / max(count, 1)


@pytest.mark.parametrize('tree_id', range(len(TREES)))
def test_focal_tree_min_matches_loop(tree_id):
    h = TREES[tree_id]
    logits, label = random_inputs(h, seed=tree_id)
    weights = [0.5 + 0.1 * v for v in range(h.num_nodes)]
    for gamma, cw in ((2.0, None), (0.0, None), (1.5, weights)):
        loss = focal_tree_min_loss(logits, label, h, gamma=gamma, class_weight=cw)
        expected = focal_tree_min_reference(logits.detach(), label, h, gamma, cw)
        assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_focal_tree_min_by_hand():
    # Tree p(a=0, b=1): channels p, a, b. Logits p 0, a ln 3, b -ln 3, i.e.
    # sigmoid scores 0.5, 0.75, 0.25; gamma 2.
    h = ClassHierarchy(dict(p=dict(a=0, b=1)))
    z = torch.tensor([0.0, math.log(3), -math.log(3)]).view(1, 3, 1, 1).expand(1, 3, 1, 3)
    label = torch.tensor([[[0, 1, IGNORE]]])
    # pixel a: p on path, p_min 0.5: 0.5^2 * ln 2 = 0.173287
    #          a on path, p_min = min(0.75, parent 0.5) = 0.5: 0.173287
    #          b off path, p_max 0.25: 0.25^2 * -ln 0.75 = 0.017980    -> 0.364555
    # pixel b: p 0.173287; a off path, p_max 0.75: 0.75^2 * ln 4 = 0.779791;
    #          b on path, p_min = min(0.25, 0.5) = 0.25: 0.75^2 * ln 4 = 0.779791
    #                                                                  -> 1.732869
    # ignore pixel: nothing. mean over the 2 valid pixels: 1.048712
    loss = focal_tree_min_loss(z, label, h)
    assert loss.item() == pytest.approx(1.048712, abs=1e-5)
    per_pixel = focal_tree_min_loss(z, label, h, reduction='none')
    assert per_pixel.flatten().tolist() == pytest.approx([0.364555, 1.732869, 0.0], abs=1e-5)


def test_focal_tree_min_ignore_and_gradients(person_tree):
    logits, label = random_inputs(person_tree, seed=5, ignore_frac=0.4)
    label_before = label.clone()
    loss = focal_tree_min_loss(logits, label, person_tree)
    loss.backward()
    grad = logits.grad.clone()
    assert torch.equal(label, label_before)  # never modified in place
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    ignored = (label == IGNORE).unsqueeze(1).expand_as(logits)
    assert (grad[ignored] == 0).all()
    # other logits at ignored pixels change neither the loss nor the gradient
    other = (logits.detach() + 50 * torch.randn_like(logits) * ignored).requires_grad_()
    loss2 = focal_tree_min_loss(other, label, person_tree)
    loss2.backward()
    assert loss2.item() == pytest.approx(loss.item(), rel=1e-6)
    assert torch.allclose(other.grad, grad)


@pytest.mark.parametrize('loss_fn', [focal_tree_min_loss, hierarchical_cross_entropy])
def test_extreme_logits_finite(loss_fn, person_tree):
    # +-200 saturates sigmoid/softmax in float32; log-space maths stays finite
    logits = torch.tensor([-200.0, 200.0]).repeat(5).view(1, 10, 1, 1).requires_grad_()
    loss = loss_fn(logits, torch.tensor([[[3]]]), person_tree)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_focal_tree_min_all_ignored_is_zero_and_connected(person_tree):
    logits = torch.randn(1, 10, 2, 2, requires_grad=True)
    loss = focal_tree_min_loss(logits, torch.full((1, 2, 2), IGNORE), person_tree)
    loss.backward()
    assert loss.item() == 0 and (logits.grad == 0).all()


def test_focal_tree_min_module(person_tree):
    loss_fn = MODELS.build(dict(type='FocalTreeMinLoss', hierarchy='pascal_person_part',
                                loss_weight=0.5))
    assert isinstance(loss_fn, FocalTreeMinLoss) and loss_fn.loss_name == 'loss_focal_tree_min'
    logits, label = random_inputs(person_tree, seed=3)
    expected = 0.5 * focal_tree_min_loss(logits, label, person_tree)
    # the head passes the embedding to every loss; this one ignores it
    got = loss_fn(logits, label, ignore_index=IGNORE, embedding=torch.zeros(2, 4, 2, 2))
    assert got.item() == pytest.approx(expected.item())


def test_level_mean_weights_by_hand(person_tree, four_level_tree):
    # person levels: {bg, body} | {bg, upper, lower} | {bg, 6 parts}; the release's
    # weights: bg 1/2 + 1/3 + 1/7 = 41/42, body 1/2, upper/lower 1/3, parts 1/7
    assert level_mean_weights(person_tree) == pytest.approx(
        [41 / 42, 1 / 2, 1 / 3, 1 / 3] + [1 / 7] * 6)
    # 4-level tree, levels {sky, ground, thing} | {sky, road, grass, vehicle, person} |
    # {sky, road, grass, car, bike, person} | {sky, road, grass, sedan, truck, bike, person}
    by_name = dict(zip(four_level_tree.node_names, level_mean_weights(four_level_tree)))
    expected = dict(sky=1 / 3 + 1 / 5 + 1 / 6 + 1 / 7, ground=1 / 3, thing=1 / 3,
                    road=1 / 5 + 1 / 6 + 1 / 7, grass=1 / 5 + 1 / 6 + 1 / 7,
                    person=1 / 5 + 1 / 6 + 1 / 7, vehicle=1 / 5, car=1 / 6,
                    bike=1 / 6 + 1 / 7, sedan=1 / 7, truck=1 / 7)
    assert by_name == pytest.approx(expected)
    # every level's weights add up to 1, so the loss is a sum of 4 per-level means
    assert sum(by_name.values()) == pytest.approx(4.0)


def test_focal_tree_min_level_mean_option(four_level_tree):
    loss_fn = FocalTreeMinLoss(hierarchy=four_level_tree, class_weight='level_mean')
    assert loss_fn.class_weight == pytest.approx(level_mean_weights(four_level_tree))
    logits, label = random_inputs(four_level_tree, seed=5)
    expected = focal_tree_min_loss(logits, label, four_level_tree,
                                   class_weight=level_mean_weights(four_level_tree))
    assert loss_fn(logits, label, ignore_index=IGNORE).item() == pytest.approx(expected.item())


def test_focal_tree_min_bad_input(person_tree):
    with pytest.raises(ValueError, match='class_weight'):
        FocalTreeMinLoss(hierarchy=person_tree, class_weight=[1.0] * 7)
    with pytest.raises(ValueError, match="'level_mean', got 'mean'"):
        FocalTreeMinLoss(hierarchy=person_tree, class_weight='mean')
    with pytest.raises(ValueError, match='gamma'):
        FocalTreeMinLoss(hierarchy=person_tree, gamma=-1)
    with pytest.raises(ValueError, match='reduction'):
        FocalTreeMinLoss(hierarchy=person_tree, reduction='avg')
    loss_fn = FocalTreeMinLoss(hierarchy=person_tree)
    with pytest.raises(ValueError, match='V = 10'):
        loss_fn(torch.zeros(1, 7, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r'label must be \(N, H, W\)'):
        loss_fn(torch.zeros(1, 10, 2, 2), torch.zeros(1, 3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r'label ids \[7\] are not in the hierarchy'):
        loss_fn(torch.zeros(1, 10, 1, 1), torch.tensor([[[7]]]))


# ------------------------------------------------- hierarchical cross-entropy
def hier_ce_reference(logits, label, h, levels, level_weights, class_weight):
    n, _, height, width = logits.shape
    total, count = 0.0, 0
    for b in range(n):
        for i in range(height):
            for j in range(width):
                lid = int(label[b, i, j])
                if lid == IGNORE:
                    continue
                count += 1
                p = torch.softmax(logits[b, h.leaf_nodes, i, j].double(), 0).tolist()
                for k, lw, cw in zip(levels, level_weights, class_weight):
                    lut = h.leaf_to_level[k]
                    prob = sum(p[m] for m in range(h.num_leaves) if lut[m] == lut[lid])
                    total += lw * (cw[lut[lid]] if cw else 1.0) * -math.log(prob)
    return total / max(count, 1)


@pytest.mark.parametrize('tree_id', range(len(TREES)))
def test_hier_ce_matches_loop(tree_id):
    h = TREES[tree_id]
    logits, label = random_inputs(h, seed=10 + tree_id)
    all_levels = list(range(h.num_levels))
    # all levels, unit weights
    loss = hierarchical_cross_entropy(logits, label, h)
    expected = hier_ce_reference(logits.detach(), label, h, all_levels,
                                 [1.0] * h.num_levels, [None] * h.num_levels)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # levels 0 and the deepest (negative index), level and class weights
    cw = [[1.0 + c for c in range(h.level_sizes[0])], None]
    loss = hierarchical_cross_entropy(logits, label, h, levels=[0, -1], level_weights=[2.0, 0.5],
                                      class_weight=cw)
    expected = hier_ce_reference(logits.detach(), label, h, [0, h.num_levels - 1], [2.0, 0.5], cw)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_hier_ce_by_hand():
    # Tree p(a=0, b=1), c=2: level 0 {p, c}, level 1 {a, b, c}. Leaf logits
    # a ln 2, b 0, c 0 -> softmax 2/4, 1/4, 1/4.
    h = ClassHierarchy(dict(p=dict(a=0, b=1), c=2))
    z = torch.zeros(1, h.num_nodes, 1, 3)
    z[0, h.node_index('a')] = math.log(2)
    label = torch.tensor([[[1, 2, IGNORE]]])
    # pixel b: level 0 p = 0.75: -ln 0.75 = 0.287682; level 1 b: ln 4 = 1.386294 -> 1.673976
    # pixel c: ln 4 at both levels -> 2.772589. mean of 2 valid pixels: 2.223282
    assert hierarchical_cross_entropy(z, label, h).item() == pytest.approx(2.223282, abs=1e-5)
    # levels=[-1] is the flat leaf CE: (1.386294 + 1.386294) / 2
    assert hierarchical_cross_entropy(z, label, h, levels=[-1]).item() == \
        pytest.approx(1.386294, abs=1e-5)
    # level weights 2, 1 at pixel b: 2 * 0.287682 + 1.386294 = 1.961658; c: 3 * 1.386294
    per_pixel = hierarchical_cross_entropy(z, label, h, level_weights=[2, 1], reduction='none')
    assert per_pixel.flatten().tolist() == pytest.approx([1.961658, 4.158883, 0.0], abs=1e-5)


def test_hier_ce_level_nodes_by_hand():
    # The HSSN release's level CE: a softmax over each level's own node logits.
    # Tree p(a=0, b=1), c=2: level 0 nodes {p, c}, level 1 {a, b, c}.
    # Logits p ln 3, a ln 2, others 0. Pixel b: level 0 p: softmax(ln 3, 0) -> 3/4,
    # -ln 0.75 = 0.287682; level 1 b: softmax(ln 2, 0, 0) -> 1/4, ln 4 = 1.386294.
    # Pixel c: level 0 1/4 -> 1.386294, level 1 ln 4 -> 1.386294. Mean: (1.673976 +
    # 2.772589) / 2 = 2.223282 (p's own logit stands where the leaf sum stood above).
    h = ClassHierarchy(dict(p=dict(a=0, b=1), c=2))
    z = torch.zeros(1, h.num_nodes, 1, 3)
    z[0, h.node_index('p')] = math.log(3)
    z[0, h.node_index('a')] = math.log(2)
    label = torch.tensor([[[1, 2, IGNORE]]])
    assert hierarchical_cross_entropy(z, label, h, softmax='level_nodes').item() == \
        pytest.approx(2.223282, abs=1e-5)
    # With p's logit 0, level 0 is softmax(0, 0) at both pixels: ln 2 = 0.693147, plus
    # ln 4 at level 1: 2.079442 each (the leaf-sum form still has p = 3/4 from a and b).
    z[0, h.node_index('p')] = 0
    per_pixel = hierarchical_cross_entropy(z, label, h, softmax='level_nodes', reduction='none')
    assert per_pixel.flatten().tolist() == pytest.approx([2.079442, 2.079442, 0.0], abs=1e-5)


def test_hier_ce_level_nodes_against_a_loop(four_level_tree):
    # 4 levels, shuffled ids, leaves at depths 1, 3 and 4: F.cross_entropy per level
    # on that level's node channels, one level at a time, with weights.
    h = four_level_tree
    logits, label = random_inputs(h, seed=12, ignore_frac=0.3)
    valid = label != IGNORE
    safe = torch.where(valid, label, torch.zeros_like(label))
    expected = 0
    for k, lw in zip(range(h.num_levels), [1.0, 0.5, 2.0, 1.0]):
        target = torch.as_tensor(h.leaf_to_level[k])[safe]
        nll = F.cross_entropy(logits[:, h.levels[k]], target, reduction='none')
        expected = expected + lw * nll[valid].mean()
    loss = hierarchical_cross_entropy(logits, label, h, level_weights=[1.0, 0.5, 2.0, 1.0],
                                      softmax='level_nodes')
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    # every node is some level's class, so every channel is trained (the leaf form trains
    # the leaf channels only), and ignored pixels get nothing
    assert (logits.grad.abs().sum(dim=(0, 2, 3)) > 0).all()
    assert (logits.grad.permute(1, 0, 2, 3)[:, label == IGNORE] == 0).all()
    # at the deepest level alone both forms are the leaf softmax's CE
    assert hierarchical_cross_entropy(logits, label, h, levels=[-1], softmax='level_nodes') \
        .item() == pytest.approx(hierarchical_cross_entropy(logits, label, h, levels=[-1]).item(),
                                 rel=1e-6)
    with pytest.raises(ValueError, match="softmax must be one of"):
        HierarchicalCrossEntropyLoss(h, softmax='nodes')


def test_hier_ce_flat_equals_torch_ce(person_tree):
    logits, label = random_inputs(person_tree, seed=4)
    loss = MODELS.build(dict(type='HierarchicalCrossEntropyLoss', hierarchy='pascal_person_part',
                             levels=[-1]))(logits, label, ignore_index=IGNORE)
    leaf = logits[:, person_tree.leaf_nodes]
    assert loss.item() == pytest.approx(F.cross_entropy(leaf, label, ignore_index=IGNORE).item(),
                                        rel=1e-6)


def test_hier_ce_ignore_and_gradients(four_level_tree):
    h = four_level_tree
    logits, label = random_inputs(h, seed=6, ignore_frac=0.4)
    label_before = label.clone()
    loss = hierarchical_cross_entropy(logits, label, h)
    loss.backward()
    assert torch.equal(label, label_before)
    grad = logits.grad.clone()
    ignored = (label == IGNORE).unsqueeze(1).expand_as(logits)
    assert torch.isfinite(grad).all() and (grad[ignored] == 0).all()
    other = (logits.detach() + 50 * torch.randn_like(logits) * ignored).requires_grad_()
    loss2 = hierarchical_cross_entropy(other, label, h)
    loss2.backward()
    assert loss2.item() == pytest.approx(loss.item(), rel=1e-6)
    assert torch.allclose(other.grad, grad)
    # inner-node channels get no gradient: only the leaf softmax is used
    inner = [v for v in range(h.num_nodes) if v not in h.leaf_nodes]
    assert (grad[:, inner] == 0).all()


def test_hier_ce_module_and_bad_input(person_tree):
    loss_fn = HierarchicalCrossEntropyLoss(person_tree, levels=[0, -1], loss_weight=2.0)
    assert loss_fn.levels == [0, 2] and loss_fn.loss_name == 'loss_hier_ce'
    logits, label = random_inputs(person_tree, seed=8)
    expected = 2 * hierarchical_cross_entropy(logits, label, person_tree, levels=[0, 2])
    assert loss_fn(logits, label, embedding=None).item() == pytest.approx(expected.item())
    with pytest.raises(ValueError, match='level 3 does not exist; the hierarchy has 3 levels'):
        HierarchicalCrossEntropyLoss(person_tree, levels=[3])
    with pytest.raises(ValueError, match='distinct levels'):
        HierarchicalCrossEntropyLoss(person_tree, levels=[2, -1])
    with pytest.raises(ValueError, match='level_weights'):
        HierarchicalCrossEntropyLoss(person_tree, level_weights=[1, 1])
    with pytest.raises(ValueError, match="class_weight of level 1 .*'upper_body'"):
        HierarchicalCrossEntropyLoss(person_tree, class_weight=[None, [1, 2], None])
    with pytest.raises(ValueError, match='one entry'):
        HierarchicalCrossEntropyLoss(person_tree, class_weight=[[1, 2]])
    with pytest.raises(ValueError, match=r'label ids \[9\]'):
        loss_fn(torch.zeros(1, 10, 1, 1), torch.tensor([[[9]]]))


# ---------------------------------------------------------- tree triplet
def check_triplets(label, h, k, anchor, positive, negative, use):
    """Loop check of the sampling contract; returns the triplets as a list."""
    flat = label.flatten().tolist()
    parent = [h.parents[v] for v in h.leaf_nodes]
    triplets = []
    for c in range(h.num_leaves):
        pools = ([i for i, x in enumerate(flat) if x == c],
                 [i for i, x in enumerate(flat) if x != IGNORE and x != c
                  and parent[x] == parent[c]],
                 [i for i, x in enumerate(flat) if x != IGNORE and parent[x] != parent[c]])
        n = min(min(len(p) for p in pools), k)
        assert int(use[c].sum()) == n and use[c, :n].all()
        for role, pool in zip((anchor, positive, negative), pools):
            picked = role[c, :n].tolist()
            assert set(picked) <= set(pool) and len(set(picked)) == n  # no repeats
        triplets += list(zip(anchor[c, :n].tolist(), positive[c, :n].tolist(),
                             negative[c, :n].tolist()))
    return triplets


@pytest.mark.parametrize('tree_id', range(len(TREES)))
def test_triplet_sampling_and_loss_match_loop(tree_id):
    h = TREES[tree_id]
    g = torch.Generator().manual_seed(tree_id)
    label = torch.randint(0, h.num_leaves, (2, 6, 5), generator=g)
    label[torch.rand(2, 6, 5, generator=g) < 0.2] = IGNORE
    emb = F.normalize(torch.randn(2, 8, 6, 5, generator=g), dim=1).requires_grad_()
    k = 3
    sampled = sample_triplets(label, h, k, generator=torch.Generator().manual_seed(1))
    triplets = check_triplets(label, h, k, *sampled)
    assert triplets  # random labels over the tree give at least one sibling pair
    feats = emb.detach().permute(0, 2, 3, 1).reshape(-1, 8).double()
    hinge = [max(float((1 - feats[a] @ feats[p]) - (1 - feats[a] @ feats[n])) + 0.6, 0.0)
             for a, p, n in triplets]
    loss = tree_triplet_loss(emb, label, h, k, generator=torch.Generator().manual_seed(1))
    assert loss.item() == pytest.approx(sum(hinge) / len(hinge), rel=1e-5)
    loss.backward()
    assert torch.isfinite(emb.grad).all()


def test_triplet_by_hand():
    # Tree p(a=0, b=1), c=2; one pixel each: a (1, 0), b (0, 1), c (1, 0).
    # class a: d(a, b) = 1, d(a, c) = 0 -> 1 - 0 + 0.6 = 1.6
    # class b: d(b, a) = 1, d(b, c) = 1 -> 0.6
    # class c: under the root with no leaf sibling -> no triplet. mean 1.1
    h = ClassHierarchy(dict(p=dict(a=0, b=1), c=2))
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]).t().reshape(1, 2, 1, 3)
    label = torch.tensor([[[0, 1, 2]]])
    assert tree_triplet_loss(emb, label, h).item() == pytest.approx(1.1)


def test_triplet_random_not_raster_and_bounded(person_tree):
    # 200 pixels per leaf class, bound 20: two seeds pick different pixels, and
    # not the first 20 in raster order.
    label = torch.arange(7).repeat_interleave(200).view(1, 28, 50)
    k = 20
    a1, p1, n1, use1 = sample_triplets(label, person_tree, k,
                                       generator=torch.Generator().manual_seed(0))
    a2, *_ = sample_triplets(label, person_tree, k, generator=torch.Generator().manual_seed(1))
    check_triplets(label, person_tree, k, a1, p1, n1, use1)
    head = 1  # rows of classes with siblings hold exactly k triplets
    assert int(use1[head].sum()) == k and int(use1[0].sum()) == 0  # background: no sibling
    assert set(a1[head].tolist()) != set(a2[head].tolist())
    assert sorted(a1[head].tolist()) != list(range(200, 220))


def test_triplet_zero_when_one_class_and_connected(person_tree):
    emb = F.normalize(torch.randn(1, 4, 3, 3), dim=1).requires_grad_()
    for value in (2, IGNORE):
        loss = tree_triplet_loss(emb, torch.full((1, 3, 3), value), person_tree)
        loss.backward()
        assert loss.item() == 0 and (emb.grad == 0).all()


def test_triplet_labels_downsampled_not_modified(person_tree):
    label = torch.randint(0, 7, (2, 16, 16))
    label[:, :2] = IGNORE
    before = label.clone()
    emb = F.normalize(torch.randn(2, 4, 4, 4), dim=1).requires_grad_()
    loss = TreeTripletLoss(person_tree)(None, label, embedding=emb)
    loss.backward()
    assert torch.equal(label, before) and torch.isfinite(emb.grad).all()


def test_triplet_schedule():
    # cosine from 0 to 0.5: 0 at iter 0, 0.25 half way, 0.5 at the end and beyond
    cos = dict(type='cosine', start=0.0, end=0.5)
    assert [scheduled_weight(cos, i, 100) for i in (0, 50, 100, 150)] == \
        pytest.approx([0.0, 0.25, 0.5, 0.5])
    # quarter way: 0.5 * (1 - cos(pi / 4)) / 2 = 0.073223
    assert scheduled_weight(cos, 25, 100) == pytest.approx(0.073223, abs=1e-6)
    lin = dict(type='linear', start=1.0, end=0.0)
    assert scheduled_weight(lin, 25, 100) == pytest.approx(0.75)
    assert scheduled_weight(cos, None, 100) == 0.5  # no iteration: end value
    assert scheduled_weight(None, 3, 10) == 1.0


@pytest.fixture
def message_hub():
    hub = MessageHub.get_instance('test_tree_triplet_schedule')
    yield hub
    MessageHub.get_instance('test_tree_triplet_clean')  # leave an empty current hub


def test_triplet_weight_from_message_hub(person_tree, message_hub):
    loss_fn = TreeTripletLoss(person_tree, loss_weight=2.0,
                              weight_schedule=dict(type='cosine', start=0.0, end=0.5))
    assert loss_fn.current_weight() == 1.0  # no runtime info: 2 * end value
    message_hub.update_info('max_iters', 100)
    message_hub.update_info('iter', 50)
    assert loss_fn.current_weight() == pytest.approx(0.5)  # 2 * 0.25
    assert loss_fn.current_weight(iteration=100) == pytest.approx(1.0)  # keyword wins
    message_hub.update_info('iter', 0)
    emb = F.normalize(torch.randn(1, 4, 3, 3), dim=1).requires_grad_()
    label = torch.randint(0, 7, (1, 3, 3))
    loss = loss_fn(None, label, embedding=emb)  # weight 0 at iter 0: nothing sampled
    loss.backward()
    assert loss.item() == 0 and emb.grad is not None


def test_triplet_module_and_bad_input(person_tree):
    loss_fn = MODELS.build(dict(type='TreeTripletLoss', hierarchy='pascal_person_part',
                                max_samples_per_class=5))
    assert loss_fn.loss_name == 'loss_tree_triplet' and loss_fn.margin == 0.6
    label = torch.randint(0, 7, (1, 4, 4))
    with pytest.raises(ValueError, match='keyword `embedding`'):
        loss_fn(torch.zeros(1, 10, 4, 4), label)
    with pytest.raises(ValueError, match='weight_schedule'):
        TreeTripletLoss(person_tree, weight_schedule=dict(type='step', start=0, end=1))
    with pytest.raises(ValueError, match='max_samples_per_class'):
        TreeTripletLoss(person_tree, max_samples_per_class=0)
    with pytest.raises(ValueError, match=r'embedding must be \(N, E, h, w\)'):
        loss_fn(None, label, embedding=torch.zeros(4, 4, 4))
    with pytest.raises(ValueError, match=r'label ids \[8\]'):
        loss_fn(None, torch.full((1, 4, 4), 8), embedding=torch.zeros(1, 4, 4, 4))


def test_triplet_needs_no_process_group(person_tree, monkeypatch):
    # No collective may run: without a process group it would raise, and under
    # DDP ranks that sample different counts would hang in it.
    def forbidden(*args, **kwargs):
        raise AssertionError('TreeTripletLoss called a torch.distributed collective')

    for name in ('all_reduce', 'all_gather', 'broadcast', 'barrier', 'reduce'):
        monkeypatch.setattr(torch.distributed, name, forbidden)
    emb = F.normalize(torch.randn(2, 4, 4, 4), dim=1).requires_grad_()
    loss = TreeTripletLoss(person_tree)(None, torch.randint(0, 7, (2, 4, 4)), embedding=emb)
    loss.backward()
    assert torch.isfinite(loss) and not torch.distributed.is_initialized()


def test_losses_half_precision_inputs(person_tree):
    # under AMP the head's outputs may be half; the losses compute in float32
    logits, label = random_inputs(person_tree, seed=9)
    for loss_fn in (focal_tree_min_loss, hierarchical_cross_entropy):
        full = loss_fn(logits, label, person_tree)
        half = loss_fn(logits.detach().half(), label, person_tree)
        assert half.dtype == torch.float32
        assert half.item() == pytest.approx(full.item(), rel=1e-2)
