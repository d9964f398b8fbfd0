import math
import random

import pytest
import torch
from mmseg.registry import MODELS

from hseg_mm.hierarchy import ClassHierarchy
from hseg_mm.models.losses import FocalTreeMinLoss, focal_tree_min_loss

IGNORE = 255


# ---------------------------------------------------------------- helpers
def random_tree(num_levels: int, seed: int) -> dict:
    """A random tree of exactly `num_levels` levels: fan-out 1..3, some leaves
    higher than the deepest level, label ids shuffled against the tree order."""
    rng = random.Random(seed)
    counter = iter(range(1000))
    leaves = []

    def grow(depth: int, must_reach: bool) -> dict:
        node = {}
        for i in range(rng.randint(1, 3)):
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


def test_focal_tree_min_extreme_logits_finite(person_tree):
    logits = torch.tensor([-200.0, 200.0]).repeat(5).view(1, 10, 1, 1).requires_grad_()
    loss = focal_tree_min_loss(logits, torch.tensor([[[3]]]), person_tree)
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


def test_focal_tree_min_bad_input(person_tree):
    with pytest.raises(ValueError, match='class_weight'):
        FocalTreeMinLoss(hierarchy=person_tree, class_weight=[1.0] * 7)
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
