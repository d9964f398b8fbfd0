"""RMILoss: against a plain numpy reference, ignore handling, AMP inputs, the release recipe."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmseg.registry import MODELS

from hseg_mm.hierarchy import ClassHierarchy
from hseg_mm.models.losses import RMILoss, rmi_loss

IGNORE = 255
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def reference_rmi(logits: np.ndarray, label: np.ndarray, tree: ClassHierarchy, nodes='all',
                  radius=3, pool_size=3, jitter=1e-3) -> float:
    """RMI written out pixel by pixel (max-pooling), numpy float64 throughout."""
    n, v, h, w = logits.shape
    channels = list(range(v)) if nodes == 'all' else list(tree.leaf_nodes)
    valid = label != IGNORE
    prob = 1 / (1 + np.exp(-logits.astype(np.float64)))
    # pooling: cell (i, j) covers rows pool_size*i - pad .. + pool_size - 1 (inside the image)
    pad = pool_size // 2
    ph, pw = (h + 2 * pad - pool_size) // pool_size + 1, (w + 2 * pad - pool_size) // pool_size + 1
    per_image = []  # (C,) RMI terms of the images that have a valid window
    for b in range(n):
        p_pool = np.zeros((len(channels), ph, pw))
        y_pool = np.zeros((len(channels), ph, pw))
        cell_ok = np.zeros((ph, pw), dtype=bool)
        for i in range(ph):
            for j in range(pw):
                rows = range(max(pool_size * i - pad, 0), min(pool_size * i - pad + pool_size, h))
                cols = range(max(pool_size * j - pad, 0), min(pool_size * j - pad + pool_size, w))
                cell_ok[i, j] = all(valid[b, r, c] for r in rows for c in cols)
                for k, ch in enumerate(channels):
                    p_pool[k, i, j] = max(prob[b, ch, r, c] for r in rows for c in cols)
                    y_pool[k, i, j] = max(
                        float(valid[b, r, c] and tree.path_mask[label[b, r, c], ch])
                        for r in rows for c in cols)
        terms = []
        for k in range(len(channels)):
            ys, ps = [], []  # one radius*radius vector per window, rows in raster order
            for i in range(ph - radius + 1):
                for j in range(pw - radius + 1):
                    if cell_ok[i:i + radius, j:j + radius].all():
                        ys.append(y_pool[k, i:i + radius, j:j + radius].reshape(-1))
                        ps.append(p_pool[k, i:i + radius, j:j + radius].reshape(-1))
            if not ys:
                break
            d, count = radius * radius, len(ys)
            # joint covariance of (Y, P), unnormalised sums as in the RMI code
            joint = np.cov(np.concatenate([np.array(ys).T, np.array(ps).T]), bias=True) * count
            s_yy, s_yp, s_pp = joint[:d, :d], joint[:d, d:], joint[d:, d:]
            cond = s_yy - s_yp @ np.linalg.inv(s_pp + jitter * np.eye(d)) @ s_yp.T
            sign, log_det = np.linalg.slogdet(cond + jitter * np.eye(d))
            assert sign > 0
            terms.append(0.5 * log_det / d)
        if terms:
            per_image.append(terms)
    if not per_image:
        return 0.0
    return float(np.sum(np.mean(per_image, axis=0)))


def _inputs(tree, n=2, h=17, w=20, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, tree.num_nodes, h, w, generator=g, dtype=torch.float64) * scale
    label = torch.randint(0, tree.num_leaves, (n, h, w), generator=g)
    # blocky labels so that the pooled targets vary smoothly
    label[:, :8, :10] = 1
    label[:, 9:, 12:] = 5
    return logits, label


@pytest.mark.parametrize('nodes', ['all', 'leaves'])
@pytest.mark.parametrize('case', ['clean', 'ignore', 'one_image_ignored'])
def test_matches_plain_reference(person_tree, nodes, case):
    logits, label = _inputs(person_tree)
    if case == 'ignore':
        label[:, :4] = IGNORE        # padding rows
        label[0, 10, 3:7] = IGNORE   # an ignored stroke inside the image
    elif case == 'one_image_ignored':
        label[1] = IGNORE            # image 1 left out of the mean
    expected = reference_rmi(logits.numpy(), label.numpy(), person_tree, nodes)
    got = rmi_loss(logits.float(), label, person_tree, nodes=nodes)
    # float32 logits and sigmoid, float64 algebra: agreement to ~1e-6 relative
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_no_pooling_and_other_radius_match_reference(person_tree):
    logits, label = _inputs(person_tree, h=9, w=8)
    expected = reference_rmi(logits.numpy(), label.numpy(), person_tree, 'all', radius=2,
                             pool_size=1)
    got = rmi_loss(logits.float(), label, person_tree, radius=2, pool_size=1)
    assert got.item() == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_ignore_pixels_are_excluded(person_tree):
    logits, label = _inputs(person_tree)
    label[:, :6] = IGNORE
    logits.requires_grad_(True)
    loss = rmi_loss(logits.float(), label, person_tree)
    loss.backward()
    # rows 0..5 are ignored; pooled cell rows 0..2 cover label rows <= 7 and are dropped
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad[:, :, :6] == 0).all()
    # whatever the ignored pixels hold (here NaN and inf), the loss does not change
    wild = logits.detach().clone()
    wild[:, :, :3] = float('nan')
    wild[:, :, 3:6] = float('inf')
    assert rmi_loss(wild.float(), label, person_tree).item() == pytest.approx(loss.item())


def test_all_ignore_batch_is_zero_with_gradient(person_tree):
    logits, label = _inputs(person_tree)
    label[:] = IGNORE
    logits = logits.float().requires_grad_(True)
    loss = RMILoss(person_tree)(logits, label)
    loss.backward()
    assert loss.item() == 0 and logits.grad is not None
    assert (logits.grad == 0).all()
    # too small to hold one 3x3 neighbourhood of pooled cells: 0 as well
    tiny = torch.zeros(1, person_tree.num_nodes, 4, 4, requires_grad=True)
    assert rmi_loss(tiny, torch.zeros(1, 4, 4, dtype=torch.long), person_tree).item() == 0


def test_near_one_hot_probabilities_are_finite(person_tree):
    logits, label = _inputs(person_tree, h=30, w=30)
    path = torch.as_tensor(person_tree.path_mask)[label].permute(0, 3, 1, 2)
    # sigmoid(+-30) is 1 - 9e-14 / 9e-14: a perfect, saturated prediction
    perfect = (torch.where(path, 30.0, -30.0)).requires_grad_(True)
    loss = rmi_loss(perfect, label, person_tree)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(perfect.grad).all()
    # constant maps (no variance at all) too
    flat = torch.zeros_like(perfect, requires_grad=True)
    const = rmi_loss(flat, torch.zeros_like(label), person_tree)
    const.backward()
    assert torch.isfinite(const) and torch.isfinite(flat.grad).all()
    # the perfect prediction scores lower (better) than a random one
    assert loss.item() < rmi_loss(logits.float(), label, person_tree).item()


def test_bf16_inputs_give_float32_loss(person_tree):
    logits, label = _inputs(person_tree, h=40, w=40)
    label[:, :5] = IGNORE
    path = torch.as_tensor(person_tree.path_mask)[label.clamp(max=6)].permute(0, 3, 1, 2)
    informative = 3 * (2 * path.double() - 1) + logits  # logits that follow the labels
    for x in (logits, informative):
        full = rmi_loss(x.float(), label, person_tree)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            half = rmi_loss(x.bfloat16(), label, person_tree)
        assert half.dtype == torch.float32
        # bf16 keeps 8 bits of each logit (relative rounding <= 2^-9); measured here at
        # most 1.6e-4 relative (5 seeds, 40x40), 2.6e-5 at 120x120
        assert half.item() == pytest.approx(full.item(), rel=2e-3)


def test_gradient_matches_finite_differences(person_tree):
    logits, label = _inputs(person_tree, n=1, h=12, w=12)
    label[:, :2] = IGNORE
    logits = logits.requires_grad_(True)  # float64 throughout

    def f(x):
        return rmi_loss(x, label, person_tree, pool_size=1, radius=2).double()

    assert torch.autograd.gradcheck(f, (logits,), eps=1e-6, atol=1e-5, rtol=1e-3)


def test_bad_arguments(person_tree):
    logits, label = _inputs(person_tree)
    for kwargs, message in ((dict(nodes='parents'), 'nodes must be one of'),
                            (dict(radius=0), 'radius must be'), (dict(pool='median'), 'pool must'),
                            (dict(pool_size=0), 'pool_size must'), (dict(jitter=0.0), 'jitter')):
        with pytest.raises(ValueError, match=message):
            RMILoss(person_tree, **kwargs)
    with pytest.raises(ValueError, match='pixel weights'):
        rmi_loss(logits, label, person_tree, weight=torch.ones_like(label, dtype=torch.float))
    with pytest.raises(ValueError, match='cls_score'):
        rmi_loss(logits[:, :7], label, person_tree)
    bad = label.clone()
    bad[0, 0, 0] = 7
    with pytest.raises(ValueError, match='not in the hierarchy'):
        rmi_loss(logits, bad, person_tree)


def test_registered_with_release_defaults(person_tree):
    loss = MODELS.build(dict(type='RMILoss', hierarchy='pascal_person_part'))
    assert isinstance(loss, RMILoss) and loss.loss_name == 'loss_rmi'
    assert (loss.nodes, loss.radius, loss.pool, loss.pool_size, loss.jitter,
            loss.loss_weight) == ('all', 3, 'max', 3, 1e-3, 0.5)
    logits, label = _inputs(person_tree)
    assert loss(logits.float(), label, embedding=None).item() == pytest.approx(
        0.5 * rmi_loss(logits.float(), label, person_tree).item())


def test_release_recipe_loss_list_is_the_releases():
    cfg = Config.fromfile(osp.join(
        ROOT, 'configs/hssn/hssn_r101-d8_4xb4-60k_pascal-person-part-480x480_release.py'))
    losses = {loss.type: loss for loss in cfg.model.decode_head.loss_decode}
    assert list(losses) == ['RMILoss', 'FocalTreeMinLoss', 'HierarchicalCrossEntropyLoss',
                            'TreeTripletLoss']
    # 0.5 * (RMI module = 0.5 lambda * RMI) = 0.25; sigmoid of every node, radius 3, 3x3 max pool
    rmi = losses['RMILoss']
    assert (rmi.loss_weight, rmi.nodes, rmi.radius, rmi.pool, rmi.pool_size, rmi.jitter) == \
        (0.25, 'all', 3, 'max', 3, 1e-3)
    # 0.5 * (sum over levels of the mean over that level's nodes), gamma 2
    tree = ClassHierarchy('pascal_person_part')
    per_level_mean = [sum(1 / len(level) for level in tree.levels if v in level)
                      for v in range(tree.num_nodes)]
    focal = losses['FocalTreeMinLoss']
    assert focal.loss_weight == 0.5 and focal.gamma == 2.0
    built = MODELS.build(dict(focal, hierarchy=tree))
    assert built.class_weight == pytest.approx(per_level_mean)
    ce = losses['HierarchicalCrossEntropyLoss']
    # leaves and both parent levels, each a softmax over its own node logits
    assert ce.levels is None and ce.loss_weight == 1.0 and ce.softmax == 'level_nodes'
    triplet = losses['TreeTripletLoss']
    assert (triplet.margin, triplet.max_samples_per_class, triplet.loss_weight) == (0.6, 200, 1.0)
    assert triplet.weight_schedule == dict(type='cosine', start=0.0, end=0.5)
    # 60k iterations, SGD lr 0.007 poly, 4 images per GPU; the rest as the 30k recipe
    assert cfg.train_cfg.max_iters == 60000 and cfg.param_scheduler[0].end == 60000
    assert cfg.optim_wrapper.optimizer.type == 'SGD' and cfg.optim_wrapper.optimizer.lr == 0.007
    assert cfg.param_scheduler[0].type == 'PolyLR' and cfg.train_dataloader.batch_size == 4
    base = Config.fromfile(osp.join(
        ROOT, 'configs/hssn/hssn_r101-d8_4xb4-30k_pascal-person-part-480x480.py'))
    for key in ('backbone', 'auxiliary_head', 'data_preprocessor', 'pretrained'):
        assert cfg.model[key] == base.model[key], key
    assert {k: v for k, v in cfg.model.decode_head.items() if k != 'loss_decode'} == \
        {k: v for k, v in base.model.decode_head.items() if k != 'loss_decode'}
    assert cfg.train_dataloader == base.train_dataloader and cfg.hierarchy == base.hierarchy
