"""The hand-written gradients of FocalTreeMinLoss and HierarchicalCrossEntropyLoss
against autograd through the losses' formulas written the plain way.

The losses compute their gradient analytically (one full-size tensor instead of the
dozens autograd records); these references are the textbook formulas, differentiated
by autograd. Same values and gradients up to float32 rounding, on the person tree,
the 4-level tree with shuffled ids and leaves at several depths, and Mapillary's
124-leaf tree; with class weights, level weights, gamma 0 and 2, ignore pixels.
"""
import pytest
import torch
import torch.nn.functional as F

from hseg_mm.hierarchy import ClassHierarchy
from hseg_mm.models.losses import focal_tree_min_loss, hierarchical_cross_entropy

IGNORE = 255
TREES = ['person_tree', 'four_level_tree', 'mapillary_tree']  # fixtures


@pytest.fixture
def mapillary_tree() -> ClassHierarchy:
    return ClassHierarchy('mapillary_vistas_v2')


def reference_focal(logits, label, tree, gamma, class_weight):
    """HSSN's focal tree-min loss, node by node (tree.ancestors / tree.descendants)."""
    valid = label != IGNORE
    leaf = torch.where(valid, label, torch.zeros_like(label))
    p = logits.sigmoid()
    total = torch.zeros(label.shape, dtype=logits.dtype)
    for v in range(tree.num_nodes):
        p_min = torch.stack([p[:, a] for a in [v] + tree.ancestors[v]]).amin(0)
        p_max = torch.stack([p[:, d] for d in [v] + tree.descendants[v]]).amax(0)
        target = torch.as_tensor(tree.path_mask[:, v])[leaf]
        on = -(1 - p_min) ** gamma * torch.log(p_min)
        off = -p_max ** gamma * torch.log(1 - p_max)
        total = total + class_weight[v] * torch.where(target, on, off)
    return total[valid].mean()


def reference_ce(logits, label, tree, level_weights, class_weights):
    """Per-level cross-entropy of leaf probabilities summed to each level's classes."""
    valid = label != IGNORE
    leaf = torch.where(valid, label, torch.zeros_like(label))
    probs = logits[:, tree.leaf_nodes].softmax(1)
    total = torch.zeros(label.shape, dtype=logits.dtype)
    for k, (w, cw) in enumerate(zip(level_weights, class_weights)):
        lut = torch.as_tensor(tree.leaf_to_level[k])
        level_probs = torch.zeros(probs.shape[0], tree.level_sizes[k], *probs.shape[2:],
                                  dtype=probs.dtype).index_add(1, lut, probs)
        target = lut[leaf]
        nll = -level_probs.gather(1, target.unsqueeze(1)).squeeze(1).log()
        total = total + w * torch.as_tensor(cw, dtype=logits.dtype)[target] * nll
    return total[valid].mean()


def _inputs(tree: ClassHierarchy, seed: int):
    g = torch.Generator().manual_seed(seed)
    # logits of a few units (no saturated probabilities, where the references lose
    # precision), distinct, so no min/max ties (the one place the two may differ:
    # autograd splits a tie's gradient, the losses give it to one node)
    logits = torch.randn(2, tree.num_nodes, 5, 6, generator=g, dtype=torch.float64) * 2
    label = torch.randint(0, tree.num_leaves, (2, 5, 6), generator=g)
    label[0, 0] = IGNORE
    return logits, label


@pytest.mark.parametrize('tree_name', TREES)
@pytest.mark.parametrize('gamma', [0.0, 2.0])
def test_focal_tree_min_matches_reference(tree_name, gamma, request):
    tree = request.getfixturevalue(tree_name)
    logits, label = _inputs(tree, seed=int(gamma))
    class_weight = [1.0 + (v % 3) for v in range(tree.num_nodes)]  # 1, 2, 3, 1, ...
    x = logits.float().requires_grad_()
    loss = focal_tree_min_loss(x, label, tree, gamma=gamma, class_weight=class_weight)
    grad, = torch.autograd.grad(loss, x)
    x_ref = logits.clone().requires_grad_()
    expected = reference_focal(x_ref, label, tree, gamma, class_weight)
    grad_ref, = torch.autograd.grad(expected, x_ref)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    torch.testing.assert_close(grad.double(), grad_ref, rtol=1e-4, atol=1e-6)
    assert not grad[0, :, 0].any()  # ignore pixels get no gradient


@pytest.mark.parametrize('tree_name', TREES)
def test_hierarchical_ce_matches_reference(tree_name, request):
    tree = request.getfixturevalue(tree_name)
    logits, label = _inputs(tree, seed=3)
    levels = list(range(tree.num_levels))
    level_weights = [1.0 + 0.5 * k for k in levels]  # 1, 1.5, 2, ...
    class_weights = [[1.0 + (c % 3) for c in range(tree.level_sizes[k])] for k in levels]
    x = logits.float().requires_grad_()
    loss = hierarchical_cross_entropy(x, label, tree, level_weights=level_weights,
                                      class_weight=class_weights)
    grad, = torch.autograd.grad(loss, x)
    x_ref = logits.clone().requires_grad_()
    expected = reference_ce(x_ref, label, tree, level_weights, class_weights)
    grad_ref, = torch.autograd.grad(expected, x_ref)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    torch.testing.assert_close(grad.double(), grad_ref, rtol=1e-4, atol=1e-6)
    # inner-node channels are not read by the cross-entropy: no gradient there
    inner = [v for v in range(tree.num_nodes) if v not in tree.leaf_nodes]
    assert not grad[:, inner].any()


def test_hierarchical_ce_leaf_level_is_plain_cross_entropy(person_tree):
    """levels=[-1] is F.cross_entropy on the leaf channels, value and gradient."""
    logits, label = _inputs(person_tree, seed=4)
    x = logits.float().requires_grad_()
    loss = hierarchical_cross_entropy(x, label, person_tree, levels=[-1])
    grad, = torch.autograd.grad(loss, x)
    x_ref = logits.float().requires_grad_()
    expected = F.cross_entropy(x_ref[:, person_tree.leaf_nodes], label, ignore_index=IGNORE)
    grad_ref, = torch.autograd.grad(expected, x_ref)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-5, atol=1e-7)


def test_losses_stay_finite_for_extreme_logits(person_tree):
    """Logits of +-1e4 (a diverging run): finite values and gradients, as before the
    hand-written gradients (logsigmoid and logsumexp, never log of a probability)."""
    logits, label = _inputs(person_tree, seed=5)
    x = (logits.float().sign() * 1e4).requires_grad_()
    for loss_fn in (focal_tree_min_loss, hierarchical_cross_entropy):
        loss = loss_fn(x, label, person_tree)
        grad, = torch.autograd.grad(loss, x)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
