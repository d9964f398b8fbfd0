"""HierarchicalLovaszLoss: by hand, against mmseg's Lovász-softmax, on two trees."""
import pytest
import torch
from mmseg.models.losses.lovasz_loss import lovasz_softmax
from mmseg.registry import MODELS

from hseg_mm.hierarchy import ClassHierarchy
from hseg_mm.models.losses import HierarchicalLovaszLoss, hierarchical_lovasz


def test_lovasz_by_hand():
    # two leaves a=0, b=1 (one level); pixel 1 is a with p = (0.8, 0.2), pixel 2 is b
    # with p = (0.4, 0.6). Class a: errors |fg - p_a| = (0.2, 0.4), sorted 0.4 (pixel 2,
    # not a), 0.2 (pixel 1, a); Jaccard losses after 1 and 2 errors: 1 - 1/2 = 0.5 and
    # 1 - 0/2 = 1, steps 0.5, 0.5, so 0.4 * 0.5 + 0.2 * 0.5 = 0.3. Class b: errors
    # (0.2, 0.4), sorted 0.4 (pixel 2, b), 0.2 (pixel 1); Jaccard 1 - 0/1 = 1, then 1,
    # steps 1, 0: 0.4. Mean over the two classes present: 0.35.
    tree = ClassHierarchy(dict(a=0, b=1))
    prob = torch.tensor([[0.8, 0.2], [0.4, 0.6]])
    logits = prob.log().T.reshape(1, 2, 1, 2)  # softmax(log p) = p; (N, V, H, W)
    label = torch.tensor([[[0, 1]]])
    assert hierarchical_lovasz(logits, label, tree).item() == pytest.approx(0.35, abs=1e-6)
    # a third pixel with the ignore label changes nothing, whatever its scores
    logits3 = torch.cat([logits, torch.tensor([5.0, -5.0]).view(1, 2, 1, 1)], dim=3)
    label3 = torch.tensor([[[0, 1, 255]]])
    assert hierarchical_lovasz(logits3, label3, tree).item() == pytest.approx(0.35, abs=1e-6)


def _reference(logits, label, tree, k):
    """mmseg's Lovász-softmax on level k's probabilities, summed from the leaves by hand."""
    leaf_prob = logits[:, tree.leaf_nodes].softmax(dim=1)  # channel l = label id l
    n, _, h, w = logits.shape
    level_prob = torch.zeros(n, tree.level_sizes[k], h, w, dtype=logits.dtype)
    for leaf_id, cls in enumerate(tree.leaf_to_level[k]):
        level_prob[:, cls] += leaf_prob[:, leaf_id]
    lut = torch.as_tensor(list(tree.leaf_to_level[k]) + [255] * (256 - tree.num_leaves))
    level_label = torch.where(label == 255, 255, lut[label.clamp(max=255)])
    return lovasz_softmax(level_prob, level_label, classes='present', per_image=False,
                          ignore_index=255)


@pytest.mark.parametrize('tree_name', ['person_tree', 'four_level_tree'])
def test_every_level_matches_mmsegs_lovasz_softmax(tree_name, request):
    tree = request.getfixturevalue(tree_name)
    g = torch.Generator().manual_seed(0)
    # float32: mmseg's function needs it
    logits = torch.randn(2, tree.num_nodes, 6, 7, generator=g) * 2
    label = torch.randint(0, tree.num_leaves, (2, 6, 7), generator=g)
    label[0, :2] = 255  # ignored pixels
    ours_logits = logits.clone().requires_grad_()
    ref_logits = logits.clone().requires_grad_()
    for k in range(tree.num_levels):
        ours = hierarchical_lovasz(ours_logits, label, tree, levels=[k])
        ref = _reference(ref_logits, label, tree, k)
        assert ours.item() == pytest.approx(ref.item(), abs=1e-6), k
        g_ours, = torch.autograd.grad(ours, ours_logits)
        g_ref, = torch.autograd.grad(ref, ref_logits)
        assert torch.allclose(g_ours, g_ref, atol=1e-6), k
    # levels=None: the sum over levels, each with its weight
    weights = [0.5 * (k + 1) for k in range(tree.num_levels)]
    total = hierarchical_lovasz(logits, label, tree, level_weights=weights)
    expected = sum(w * _reference(logits, label, tree, k).item()
                   for k, w in enumerate(weights))
    assert total.item() == pytest.approx(expected, abs=1e-6)


def test_a_perfect_prediction_costs_nothing_and_all_ignored_is_zero(four_level_tree):
    tree = four_level_tree
    label = torch.tensor([[[0, 1, 2], [3, 4, 5]]])  # ids of road, sedan, person, ...
    logits = torch.full((1, tree.num_nodes, 2, 3), -30.0)
    for leaf_id in range(6):
        i, j = divmod(leaf_id, 3)
        logits[0, tree.leaf_nodes[leaf_id], i, j] = 30.0
    assert hierarchical_lovasz(logits, label, tree).item() == pytest.approx(0.0, abs=1e-6)
    ignored = torch.full_like(label, 255)
    logits.requires_grad_()
    zero = hierarchical_lovasz(logits, ignored, tree)
    zero.backward()  # connected to the graph, gradient 0
    assert zero.item() == 0.0 and logits.grad.abs().max().item() == 0.0


def test_module_built_with_the_tree_and_bad_input(person_tree):
    loss = MODELS.build(dict(type='HierarchicalLovaszLoss', hierarchy=person_tree.tree,
                             levels=[-1], loss_weight=2.0, loss_resolution='logits'))
    assert loss.loss_name == 'loss_lovasz' and loss.loss_resolution == 'logits'
    logits = torch.randn(1, person_tree.num_nodes, 4, 4)
    label = torch.randint(0, 7, (1, 4, 4))
    assert loss(logits, label).item() == pytest.approx(
        2.0 * hierarchical_lovasz(logits, label, person_tree, levels=[-1]).item())
    with pytest.raises(ValueError, match='takes no pixel weights'):
        loss(logits, label, weight=torch.ones(1, 4, 4))
    with pytest.raises(ValueError, match=r'label ids \[9\] are not in the hierarchy'):
        loss(logits, torch.full((1, 4, 4), 9))
    with pytest.raises(ValueError, match="loss_resolution must be one of"):
        HierarchicalLovaszLoss(person_tree, loss_resolution='half')
    with pytest.raises(ValueError, match='level 3 does not exist'):
        HierarchicalLovaszLoss(person_tree, levels=[3])
