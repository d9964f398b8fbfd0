"""Poincare-ball classifier (hyperbolic MLR), the Riemannian optimisers, and a head using it.

Hand-made 2-D points with the arithmetic in comments; artanh(1/2) = ln(3)/2 and
asinh(4/3) = ln(4/3 + sqrt(16/9 + 1)) = ln(4/3 + 5/3) = ln 3 make the numbers exact.
"""
import math

import hseg_mm  # noqa: F401  (before mmseg.models: installs the shims)
import geoopt
import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS, OPTIMIZERS

from hseg_mm.engine import RiemannianAdamW
from hseg_mm.testing import seg_data_samples
from hseg_mm.models.decode_heads import (PoincareClassifier, expmap0_to_ball, poincare_mlr,
                                        project_to_ball)

init_default_scope('mmseg')
LN3 = math.log(3.0)


def classifier_2d(points, tangents, c=1.0, **kwargs) -> PoincareClassifier:
    m = PoincareClassifier(2, len(points), c=c, **kwargs)
    with torch.no_grad():
        m.points.copy_(torch.tensor(points, dtype=torch.float32))
        m.tangents.copy_(torch.tensor(tangents, dtype=torch.float32))
    return m


def pixel(*xy) -> torch.Tensor:
    """A (1, 2, 1, 1) feature map holding one 2-D vector."""
    return torch.tensor(xy, dtype=torch.float32).view(1, 2, 1, 1)


# ------------------------------------------------------------------ the maths
def test_expmap0_by_hand():
    # expmap0(u) = tanh(sqrt(c)|u|) u / (sqrt(c)|u|).
    # c = 1, u = (ln3/2, 0): tanh(ln3/2) = (3 - 1) / (3 + 1) = 1/2 -> (0.5, 0).
    ball = geoopt.PoincareBall(c=1.0)
    assert torch.allclose(ball.expmap0(torch.tensor([LN3 / 2, 0.])), torch.tensor([0.5, 0.]))
    # c = 4, u = (0, ln3/4): tanh(2 * ln3/4) = 1/2, divided by sqrt(c) = 2 -> (0, 0.25).
    ball = geoopt.PoincareBall(c=4.0)
    assert torch.allclose(ball.expmap0(torch.tensor([0., LN3 / 4])), torch.tensor([0., 0.25]),
                          atol=1e-6)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('c', [1.0, 0.3, 4.0])
def test_expmap0_and_projection_equal_geoopt(c, dtype):
    # Ours take c as a float (so the classifier exports to ONNX); geoopt's branch on the
    # curvature tensor, which it stores rounded (c = 0.3 is held as 0.30000007): the same
    # operations, so equal to 1e-6 relative (bit for bit at c = 1 and 4 in float32), from
    # near 0 (|u| ~ 1e-9) to far outside (|u| = 1e3: tanh saturated, projected onto the
    # bound (1 - eps) / sqrt(c)).
    torch.manual_seed(0)
    ball = geoopt.PoincareBall(c=c).to(dtype)
    scales = torch.tensor([1e-9, 0.1, 1.0, 3.0, 1e3], dtype=dtype).view(5, 1, 1, 1)
    u = torch.randn(5, 8, 3, 4, dtype=dtype) * scales
    u[0, :, 0, 0] = 0  # the zero vector maps to the origin
    assert torch.allclose(expmap0_to_ball(u, c, dim=1), ball.expmap0(u, dim=1), rtol=1e-6,
                          atol=0)
    x = u / 10
    assert torch.allclose(project_to_ball(x, c, dim=1), ball.projx(x, dim=1), rtol=1e-6, atol=0)
    # the bound: float32 (1 - 4e-3) / sqrt(c), float64 (1 - 1e-5) / sqrt(c)
    eps = 4e-3 if dtype == torch.float32 else 1e-5
    assert expmap0_to_ball(u, c, dim=1).norm(dim=1).max().item() == \
        pytest.approx((1 - eps) / math.sqrt(c), rel=1e-6)


def test_mlr_by_hand():
    # c = 1, p = 0, a = (1, 0), x = (0.5, 0): z = (-0) (+) x = x, <z, a> = 0.5,
    # 1 - |z|^2 = 0.75, lambda_0 = 2, |a| = 1:
    # logit = 2 * 1 * asinh(2 * 0.5 / (0.75 * 1)) = 2 asinh(4/3) = 2 ln 3 = 2.1972.
    x = pixel(0.5, 0.)
    zero, a = torch.zeros(1, 2), torch.tensor([[1., 0.]])
    assert poincare_mlr(x, zero, a).item() == pytest.approx(2 * LN3, rel=1e-6)
    # p = (0.5, 0), x = 0: z = -p = (-0.5, 0), <z, a> = -0.5, 1 - |z|^2 = 0.75,
    # lambda_p = 2 / (1 - 0.25) = 8/3: logit = 8/3 * asinh(-4/3) = -8/3 ln 3 = -2.9296.
    p = torch.tensor([[0.5, 0.]])
    assert poincare_mlr(pixel(0., 0.), p, a).item() == pytest.approx(-8 / 3 * LN3, rel=1e-6)
    # x = p lies on the hyperplane through p: z = (-p) (+) p = 0, logit 0.
    assert poincare_mlr(pixel(0.5, 0.), p, a).item() == pytest.approx(0., abs=1e-6)
    # c = 4, p = 0, a = (0, 2), x = (0, 0.25): <z, a> = 0.5, 1 - 4 * 0.0625 = 0.75,
    # logit = 2 * 2 / 2 * asinh(2 * 2 * 0.5 / (0.75 * 2)) = 2 asinh(4/3) = 2 ln 3.
    assert poincare_mlr(pixel(0., 0.25), zero, torch.tensor([[0., 2.]]), c=4.0).item() == \
        pytest.approx(2 * LN3, rel=1e-6)


def test_classifier_by_hand():
    # The feature (ln3/2, 0) maps to (0.5, 0) (test_expmap0_by_hand); with p = 0 and
    # tangent (1, 0) the normal is (1 - 0) * (1, 0): the first logit is 2 ln 3.
    # Second class: p = (0.5, 0), tangent (1, 0): normal a = (1 - 0.25) * (1, 0) =
    # (0.75, 0), lambda_p |a| = 8/3 * 0.75 = 2, and x = p: logit 0.
    # Third: p = 0, tangent (0, 3): <x, a> = 0, logit 0.
    m = classifier_2d([[0., 0.], [0.5, 0.], [0., 0.]], [[1., 0.], [1., 0.], [0., 3.]])
    logits = m(pixel(LN3 / 2, 0.)).flatten()
    assert torch.allclose(logits, torch.tensor([2 * LN3, 0., 0.]), atol=1e-5)
    # The feature 0 sits at the origin: the second class sees z = -p, as in
    # test_mlr_by_hand but with lambda_p |a| = 2: logit 2 asinh(-4/3) = -2 ln 3.
    assert m(pixel(0., 0.)).flatten()[1].item() == pytest.approx(-2 * LN3, rel=1e-5)


def test_mobius_eps_projects_z_as_hierahyp_does():
    # c = 1, p = (0.99, 0), a = (1, 0), x = (-0.99, 0): z = (-p) (+) x is collinear,
    # (-0.99 - 0.99) / (1 + 0.99 * 0.99) = -1.98 / 1.9801 = -0.99995, beyond
    # r = 1 - 1e-3 = 0.999. Ganea's logit: lambda_p |a| asinh(2 <z, a> / (1 - |z|^2)),
    # lambda_p = 2 / (1 - 0.9801) = 100.5, 1 - |z|^2 = 1.01e-4: asinh(-19800) = -10.587,
    # logit -1064.0. hierahyp (mobius_eps = 1e-3) puts z at r first: <z, a> = -0.999,
    # 1 - |z|^2 = 1 - 0.999^2 = 0.001999: asinh(-999.5) = -7.6004, logit -763.9.
    f64 = dict(dtype=torch.float64)  # 0.99 exactly as Python's float: 1 - |z|^2 ~ 1e-4
    x = torch.tensor([-0.99, 0.], **f64).view(1, 2, 1, 1)
    p, a = torch.tensor([[0.99, 0.]], **f64), torch.tensor([[1., 0.]], **f64)
    lam = 2 / (1 - 0.99 ** 2)
    z = -1.98 / (1 + 0.99 * 0.99)
    assert poincare_mlr(x, p, a).item() == pytest.approx(
        lam * math.asinh(2 * z / (1 - z * z)), rel=1e-9)
    assert poincare_mlr(x, p, a, mobius_eps=1e-3).item() == pytest.approx(
        lam * math.asinh(2 * -0.999 / (1 - 0.999 ** 2)), rel=1e-9)
    # x = 0: z = -p, |z| = 0.99 inside r: the projection changes nothing
    origin = torch.zeros(1, 2, 1, 1, **f64)
    assert poincare_mlr(origin, p, a, mobius_eps=1e-3).item() == \
        pytest.approx(poincare_mlr(origin, p, a).item(), rel=1e-12)
    # the classifier passes it on
    m = classifier_2d([[0.5, 0.]], [[1., 0.]], mobius_eps=1e-3)
    assert m.mobius_eps == 1e-3 and 'mobius_eps=0.001' in repr(m)


def test_mlr_matches_geoopt_mobius_add():
    # The closed form (no materialised Moebius sum) against the definition.
    torch.manual_seed(0)
    c = 0.7
    ball = geoopt.PoincareBall(c=c).double()
    x = ball.expmap0(torch.randn(2, 3, 4, 5, dtype=torch.float64) * 0.5).movedim(-1, 1)
    p = ball.expmap0(torch.randn(6, 5, dtype=torch.float64) * 0.5)
    a = torch.randn(6, 5, dtype=torch.float64)
    z = ball.mobius_add(-p, x.movedim(1, -1).unsqueeze(-2))  # (N, h, w, K, D)
    lam = 2 / (1 - c * p.pow(2).sum(-1))
    a_norm = a.norm(dim=-1)
    expected = lam * a_norm / math.sqrt(c) * torch.asinh(
        2 * math.sqrt(c) * (z * a).sum(-1) / ((1 - c * z.pow(2).sum(-1)) * a_norm))
    got = poincare_mlr(x, p, a, c=ball.c.item())
    assert torch.allclose(got, expected.movedim(-1, 1), rtol=1e-6, atol=1e-8)


def test_sign_is_the_side_of_the_hyperplane():
    # x = p (+) (s a) gives z = (-p) (+) p (+) (s a) = s a (left cancellation), so
    # <z, a> = s |a|^2: positive for s > 0, negative for s < 0, and the logit grows
    # with |s| (the distance to the hyperplane). x = p (+) v with v orthogonal to a
    # lies on the hyperplane: logit 0.
    ball = geoopt.PoincareBall(c=1.0)
    p, a = torch.tensor([[0.3, 0.1]]), torch.tensor([[1., 2.]])
    v = torch.tensor([2., -1.])  # <v, a> = 0
    scores = []
    for s in (-0.3, -0.1, 0.1, 0.3):
        x = ball.mobius_add(p[0], s * a[0])
        scores.append(poincare_mlr(x.view(1, 2, 1, 1), p, a).item())
    assert scores[0] < scores[1] < 0 < scores[2] < scores[3]
    on_plane = ball.mobius_add(p[0], 0.2 * v).view(1, 2, 1, 1)
    assert poincare_mlr(on_plane, p, a).item() == pytest.approx(0., abs=1e-5)


@pytest.mark.parametrize('scale', [1., 30., 1e4, 1e15])
@pytest.mark.parametrize('clip_r', [None, 1.0])
def test_gradients_finite_at_the_boundary(scale, clip_r):
    # Features of norm 30+ land on the boundary (tanh(30) = 1 in float32) and are
    # projected to norm 1 - 4e-3; class points pushed to norm 0.9999 are projected too.
    torch.manual_seed(0)
    m = PoincareClassifier(16, 4, clip_r=clip_r)
    with torch.no_grad():
        m.points.copy_(F.normalize(torch.randn(4, 16), dim=1) * 0.9999)
    feat = (torch.randn(2, 16, 3, 3) * scale).requires_grad_()
    logits = m(feat)
    assert torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.randint(0, 4, (2, 3, 3))).backward()
    for t in (feat.grad, m.points.grad, m.tangents.grad):
        assert torch.isfinite(t).all()
    assert m.tangents.grad.abs().sum() > 0


def test_float32_under_autocast():
    m = PoincareClassifier(8, 3)
    feat = torch.randn(1, 8, 2, 2).bfloat16()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = m(feat)
    assert out.dtype == torch.float32
    assert torch.allclose(out, m(feat.float()))


def test_clip_r_bounds_the_norm():
    # clip_r = 1: a feature of norm 5 becomes (1, 0), i.e. x = (tanh 1, 0) in the ball.
    # With p = 0, tangent (1, 0): 2 tanh(1) / (1 - tanh(1)^2) = sinh(2), so
    # logit = 2 asinh(sinh 2) = 4 (= 2 x the hyperbolic distance 2 artanh(tanh 1)).
    m = classifier_2d([[0., 0.]], [[1., 0.]], clip_r=1.0)
    assert m(pixel(5., 0.)).item() == pytest.approx(4.0, rel=1e-5)
    # Without clipping the same feature lands at norm tanh(5) = 0.99991 and is
    # projected to 1 - 4e-3: logit = 2 asinh(2 * 0.996 / (1 - 0.996^2)) = 2 * 6.215.
    m.clip_r = None
    r = 1 - 4e-3
    assert m(pixel(5., 0.)).item() == pytest.approx(2 * math.asinh(2 * r / (1 - r * r)),
                                                    rel=1e-4)


def test_bad_arguments():
    with pytest.raises(ValueError, match='c must be > 0'):
        PoincareClassifier(4, 2, c=0.)
    with pytest.raises(ValueError, match='clip_r'):
        PoincareClassifier(4, 2, clip_r=-1.)
    with pytest.raises(ValueError, match='points and normals'):
        poincare_mlr(torch.zeros(1, 3, 2, 2), torch.zeros(2, 4), torch.ones(2, 4))
    with pytest.raises(ValueError, match='mobius_eps must be in'):
        PoincareClassifier(4, 2, mobius_eps=1.)
    with pytest.raises(ValueError, match='mobius_eps must be in'):
        poincare_mlr(torch.zeros(1, 4, 2, 2), torch.zeros(2, 4), torch.ones(2, 4),
                     mobius_eps=0.)


# -------------------------------------------------------------- optimisers
def test_optimisers_are_registered():
    for name in ('RiemannianSGD', 'RiemannianAdam', 'RiemannianAdamW'):
        assert OPTIMIZERS.get(name) is not None


def test_points_stay_in_the_ball_under_a_large_lr():
    # lr 50 with momentum: Euclidean SGD would throw the points far outside; the
    # Riemannian step rescales the gradient by ((1 - |p|^2) / 2)^2 and retracts
    # with projx, so every point stays at norm < 1 (= 1/sqrt(c)).
    torch.manual_seed(0)
    m = PoincareClassifier(8, 5)
    feat, label = torch.randn(4, 8, 4, 4) * 3, torch.randint(0, 5, (4, 4, 4))
    opt = geoopt.optim.RiemannianSGD(m.parameters(), lr=50., momentum=0.9, stabilize=1)
    for _ in range(10):
        opt.zero_grad()
        F.cross_entropy(m(feat), label).backward()
        opt.step()
        norms = m.points.detach().norm(dim=1)
        assert torch.isfinite(norms).all() and (norms < 1.).all()
    assert norms.max() > 0.5  # they did move


def test_riemannian_adamw_matches_torch_adamw_on_euclidean_parameters():
    torch.manual_seed(0)
    w0 = torch.randn(5, 3)
    ours, ref = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(w0.clone())
    opt_ours = RiemannianAdamW([ours], lr=0.1, weight_decay=0.05)
    opt_ref = torch.optim.AdamW([ref], lr=0.1, weight_decay=0.05)
    for step in range(5):
        target = torch.randn(5, 3)
        for p, opt in ((ours, opt_ours), (ref, opt_ref)):
            opt.zero_grad()
            (p - target).pow(2).sum().backward()
            opt.step()
    assert torch.allclose(ours, ref, atol=1e-6)
    assert opt_ours.param_groups[0]['weight_decay'] == 0.05  # restored after the step


def test_optim_wrapper_from_config_keeps_points_undecayed():
    # What the hyperbolic recipes write: one RiemannianSGD, the ball points without decay.
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1))
    model.classifier = PoincareClassifier(8, 3)
    wrapper = build_optim_wrapper(model, dict(
        type='OptimWrapper',
        optimizer=dict(type='RiemannianSGD', lr=0.01, momentum=0.9, weight_decay=5e-4),
        paramwise_cfg=dict(custom_keys={'classifier.points': dict(decay_mult=0.)})))
    assert isinstance(wrapper.optimizer, geoopt.optim.RiemannianSGD)
    decay = {id(p): g['weight_decay'] for g in wrapper.optimizer.param_groups
             for p in g['params']}
    assert decay[id(model.classifier.points)] == 0.
    assert decay[id(model.classifier.tangents)] == 5e-4
    assert decay[id(model[0].weight)] == 5e-4


# ------------------------------------------------------------ in a head
def _head(tree, **kwargs):
    return MODELS.build(dict(
        type='HierarchicalFCNHead', in_channels=16, channels=16, num_convs=1,
        hierarchy=tree, norm_cfg=dict(type='BN'), inference='flat',
        loss_decode=[dict(type='HierarchicalCrossEntropyLoss', levels=[-1])],
        classifier=dict(type='PoincareClassifier', c=1.0), **kwargs))


def test_head_places_leaves_in_node_channels(four_level_tree):
    # Tree (conftest): ground(road=0, grass=5) | thing(vehicle(car(sedan=1, truck=6),
    # bike=4), person=2) | sky=3. Leaf channels carry the classifier's logits; an inner
    # node carries the logsumexp of its leaves', e.g. car = lse(sedan, truck) and
    # thing = lse(sedan, truck, bike, person).
    tree = four_level_tree
    head = _head(tree).eval()
    assert isinstance(head.conv_seg, torch.nn.Identity)
    assert not any('conv_seg' in k for k in head.state_dict())
    torch.manual_seed(0)
    feat = torch.randn(2, 16, 4, 4)
    nodes = head([feat])
    assert nodes.shape == (2, tree.num_nodes, 4, 4)
    leaves = head.classifier(head._forward_feature([feat]))  # the feature cls_seg gets
    for lid, v in enumerate(tree.leaf_nodes):
        assert torch.allclose(nodes[:, v], leaves[:, lid])
    car, thing = tree.node_index('car'), tree.node_index('thing')
    assert torch.allclose(nodes[:, car], leaves[:, [1, 6]].logsumexp(1), atol=1e-6)
    assert torch.allclose(nodes[:, thing], leaves[:, [1, 6, 4, 2]].logsumexp(1), atol=1e-6)


def test_head_refuses_a_wrong_classifier_size(person_tree):
    with pytest.raises(ValueError, match='classifier num_classes=3'):
        MODELS.build(dict(
            type='HierarchicalFCNHead', in_channels=16, channels=16, num_convs=1,
            hierarchy=person_tree, loss_decode=[dict(type='HierarchicalCrossEntropyLoss')],
            classifier=dict(type='PoincareClassifier', num_classes=3)))


def test_head_with_classifier_trains_and_predicts_a_distribution(person_tree):
    # A fixed tiny batch whose labels a linear map of the features can fit (argmax of a
    # random projection, upsampled 8x8 -> 16x16); no dropout, so the loss is a function
    # of the parameters alone. lr 0.01 as the recipes' 0.007 (at 0.05 the unclipped
    # classifier first climbs: its features sit at the boundary, see the recipes).
    torch.manual_seed(0)
    head = _head(person_tree, dropout_ratio=0)
    feat = torch.randn(2, 16, 8, 8)
    labels = torch.einsum('nchw,kc->nkhw', feat, torch.randn(7, 16)).argmax(1)
    labels = F.interpolate(labels[:, None].float(), size=(16, 16), mode='nearest')[:, 0]
    labels = labels.long()
    labels[:, :2] = 255
    opt = build_optim_wrapper(head, dict(
        type='OptimWrapper',
        optimizer=dict(type='RiemannianSGD', lr=0.01, momentum=0.9, weight_decay=5e-4),
        paramwise_cfg=dict(custom_keys={'classifier.points': dict(decay_mult=0.)})))
    head.train()
    losses = []
    for _ in range(10):
        loss = head.loss([feat], seg_data_samples(labels), train_cfg=dict())
        opt.update_params(loss['loss_hier_ce'])
        losses.append(loss['loss_hier_ce'].item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.9 * losses[0], losses  # measured 1.98 -> 1.62
    assert (head.classifier.points.detach().norm(dim=1) < 1).all()
    assert head.classifier.points.detach().abs().sum() > 0  # the points moved
    head.eval()
    with torch.no_grad():
        scores = head.predict([feat], [s.metainfo for s in seg_data_samples(labels)], dict())
    assert scores.shape == (2, person_tree.num_leaves, 16, 16)
    assert (scores >= 0).all()
    assert torch.allclose(scores.sum(1), torch.ones(2, 16, 16), atol=1e-5)
