"""SampledEmbedding: the projection evaluated at sampled pixels only, with the batch
norm's statistics from every pixel ('all') or from the sampled ones ('sampled')."""
import copy

import hseg_mm  # noqa: F401  (before mmseg.models: installs the shims)
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model.utils import revert_sync_batchnorm

from hseg_mm.models.utils.sampled_embedding import (SampledEmbedding, _MomentsAndPick,
                                                      full_statistics_supported)


def projection(channels: int = 6, out: int = 4, norm: dict = dict(type='BN'),
               tail: str = 'conv') -> nn.Sequential:
    """The head's projection: ConvModule(1x1, norm, ReLU) then a 1x1 conv ('conv'), or
    then a 1x1 conv, a ReLU and a 1x1 conv ('mlp': a tail not made of 1x1 convs only)."""
    layers = [nn.Conv2d(channels, out, 1)] if tail == 'conv' else \
        [nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, out, 1)]
    return nn.Sequential(ConvModule(channels, channels, 1, norm_cfg=norm), *layers)


def test_full_statistics_by_hand():
    # One channel, pixels x = 1, 2, 3, 4 and conv weight 2 (no bias): y = 2, 4, 6, 8,
    # mean 5, biased variance (9 + 1 + 1 + 9) / 4 = 5. Pixel 0 normalises to
    # (2 - 5) / sqrt(5) < 0 -> ReLU 0; pixel 3 to 3 / sqrt(5) -> ReLU 1.342; the tail
    # (weight 1, bias 0.5) gives 0.5 and 1.842, each L2-normalised (one channel) to 1.
    proj = projection(1, 1)
    proj[0].conv.weight.data.fill_(2.0)
    proj[1].weight.data.fill_(1.0)
    proj[1].bias.data.fill_(0.5)
    proj[0].norm.eps = 0.0
    feature = torch.tensor([1., 2., 3., 4.]).reshape(1, 1, 2, 2)
    emb = SampledEmbedding(feature, proj, 1, statistics='all')
    torch.testing.assert_close(emb.gather(torch.tensor([0, 3])), torch.ones(2, 1))
    mean, var = emb._moments  # of the first conv, taken at the first gather
    torch.testing.assert_close(mean, torch.tensor([5.0]))
    torch.testing.assert_close(var, torch.tensor([5.0]))
    # running statistics, momentum 0.1, unbiased variance 5 * 4 / 3 = 6.667:
    # mean 0.9 * 0 + 0.1 * 5 = 0.5, var 0.9 * 1 + 0.1 * 6.667 = 1.5667, once per embedding
    emb.gather(torch.tensor([1]))
    bn = proj[0].norm
    torch.testing.assert_close(bn.running_mean, torch.tensor([0.5]))
    torch.testing.assert_close(bn.running_var, torch.tensor([0.9 + 0.1 * 20 / 3]))
    assert int(bn.num_batches_tracked) == 1


@pytest.mark.parametrize('tail', ['conv', 'mlp'])
def test_full_statistics_equal_projecting_every_pixel(tail):
    """'all' gives what projecting every pixel (BN in training) and then sampling gives:
    embeddings, gradients to the feature and to every weight, running statistics; with
    the head's tail (one 1x1 conv) and a longer one."""
    torch.manual_seed(0)
    proj_ref = projection(tail=tail)
    proj_new = copy.deepcopy(proj_ref)
    feature = (torch.randn(2, 6, 5, 7) * 3 + 1).requires_grad_()
    feat_new = feature.detach().clone().requires_grad_()
    index = torch.randint(0, 2 * 5 * 7, (3, 4, 5))  # (roles, classes, k), repeats allowed
    upstream = torch.randn(3, 4, 5, 4)

    emb = F.normalize(proj_ref(feature), dim=1).flatten(2)
    ref = emb[index // 35, :, index % 35]  # (3, 4, 5, E)
    new = SampledEmbedding(feat_new, proj_new, 4, statistics='all').gather(index)
    torch.testing.assert_close(new, ref)
    (ref * upstream).sum().backward()
    (new * upstream).sum().backward()
    torch.testing.assert_close(feat_new.grad, feature.grad)
    for (name, a), b in zip(proj_ref.named_parameters(), proj_new.parameters()):
        torch.testing.assert_close(b.grad, a.grad, msg=name)
    for (name, a), b in zip(proj_ref.named_buffers(), proj_new.buffers()):
        torch.testing.assert_close(b, a, msg=name)


def test_moments_and_pick_gradient():
    """The hand-written backward of mean, covariance and pick (repeated and unused pixels
    among the picks) against finite differences, in float64; and with only some of the
    outputs used, as a second gather of the same embedding uses only the pick."""
    torch.manual_seed(0)
    feature = (torch.randn(2, 3, 2, 3, dtype=torch.float64) + 2).requires_grad_()
    index = torch.tensor([0, 5, 5, 11, 7])  # pixel 5 twice; pixels 1-4, 6, 8-10 never
    assert torch.autograd.gradcheck(_MomentsAndPick.apply, (feature, index))
    assert torch.autograd.gradcheck(lambda f: _MomentsAndPick.apply(f, index)[2], (feature, ))
    assert torch.autograd.gradcheck(lambda f: _MomentsAndPick.apply(f, index)[1], (feature, ))


def test_sampled_statistics_differ_and_need_no_moments():
    torch.manual_seed(0)
    proj = projection()
    feature = torch.randn(2, 6, 5, 7) * 3 + 1
    index = torch.arange(10)
    sampled = SampledEmbedding(feature, proj, 4).gather(index)
    full = SampledEmbedding(feature, copy.deepcopy(proj), 4, statistics='all').gather(index)
    assert sampled.shape == full.shape == (10, 4)
    assert not torch.allclose(sampled, full)  # BN over 10 pixels, not 70


def test_full_statistics_only_where_reproducible():
    assert full_statistics_supported(projection())
    # SyncBN in one process, as the tools and benchmark.py revert it (mmengine's _BatchNormXd)
    assert full_statistics_supported(revert_sync_batchnorm(projection(norm=dict(type='SyncBN'))))
    assert not full_statistics_supported(projection().eval())  # running statistics
    assert not full_statistics_supported(projection(norm=dict(type='GN', num_groups=2)))
    assert not full_statistics_supported(projection(norm=dict(type='SyncBN')))
    assert not full_statistics_supported(nn.Conv2d(6, 4, 1))
    with pytest.raises(ValueError, match="statistics='all' needs"):
        SampledEmbedding(torch.zeros(1, 6, 2, 2), projection().eval(), 4, statistics='all')
    with pytest.raises(ValueError, match="statistics must be 'sampled' or 'all'"):
        SampledEmbedding(torch.zeros(1, 6, 2, 2), projection(), 4, statistics='some')
