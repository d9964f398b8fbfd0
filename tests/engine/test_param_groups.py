"""Parameter groups as plain dicts (hseg_mm/engine/param_groups.py): what torch.compile
needs to trace the optimiser step of a recipe with a `paramwise_cfg` (the Swin ones)."""
import copy

import torch
import torch.nn as nn
from mmengine.config import ConfigDict
from mmengine.optim import build_optim_wrapper

from hseg_mm.engine import HierarchicalRunner, plain_param_groups

# AdamW with the Swin recipes' kind of paramwise options: norms without weight decay; a
# ConfigDict, as the Runner hands over a config's `optim_wrapper`.
OPTIM = ConfigDict(type='OptimWrapper',
             optimizer=dict(type='AdamW', lr=1e-2, betas=(0.9, 0.999), weight_decay=0.01),
             paramwise_cfg=dict(norm_decay_mult=0.0))


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))


def test_groups_become_plain_dicts_with_the_same_settings():
    model = tiny_model()
    wrapper = build_optim_wrapper(model, copy.deepcopy(OPTIM))
    groups = wrapper.optimizer.param_groups
    # one group per parameter (6: two conv weights and biases, BN weight and bias),
    # each a ConfigDict: mmengine puts the list into its optimizer ConfigDict
    assert len(groups) == 6 and all(isinstance(g, ConfigDict) for g in groups)
    before = [(g['params'], g['lr'], g['weight_decay']) for g in groups]
    assert plain_param_groups(wrapper) == 6
    after = wrapper.optimizer.param_groups
    assert after is groups and all(type(g) is dict for g in after)  # the same list
    assert [(g['params'], g['lr'], g['weight_decay']) for g in after] == before
    assert [g['weight_decay'] for g in after][2:4] == [0.0, 0.0]  # BN: norm_decay_mult 0
    assert plain_param_groups(wrapper) == 0  # nothing left to convert


def test_the_runner_builds_plain_groups():
    runner = HierarchicalRunner.__new__(HierarchicalRunner)  # only `model` is read
    runner.model = tiny_model()
    wrapper = runner.build_optim_wrapper(copy.deepcopy(OPTIM))
    assert len(wrapper.optimizer.param_groups) == 6
    assert all(type(g) is dict for g in wrapper.optimizer.param_groups)


def test_a_compiled_optimiser_step_equals_the_eager_one():
    """Two copies, one AdamW step each on the same gradients: eager, and traced by dynamo
    (backend 'eager': dynamo's tracing, where torch 2.13 failed on ConfigDict groups with
    "'UserDefinedDictVariable' object has no attribute 'items'", without inductor's
    code generation). The weights after the step agree."""
    models = [tiny_model(), tiny_model()]
    wrappers = [build_optim_wrapper(m, copy.deepcopy(OPTIM)) for m in models]
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    for model in models:
        model(x).square().mean().backward()
    plain_param_groups(wrappers[1])
    wrappers[0].step()
    torch._dynamo.reset()
    torch.compile(wrappers[1].step, backend='eager')()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    moved = [not torch.equal(a, b) for a, b in zip(tiny_model().parameters(),
                                                     models[1].parameters())]
    assert all(moved)  # the step did change every parameter
