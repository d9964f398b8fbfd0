"""The tree losses under torch.compile (#24 item 2): each is traced as one graph, a
scheduled weight neither breaks the loss's graph nor recompiles it, a label outside the
tree still fails in a compiled graph, and inductor's code gives eager's values and
gradients."""
import hseg_mm  # noqa: F401  (before mmseg.models: installs the shims)
import pytest
import torch
import torch._dynamo
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from torch._dynamo.testing import CompileCounter

init_default_scope('mmseg')

# every tree loss hseg-mm registers, in a configuration without a schedule
LOSSES = [dict(type='FocalTreeMinLoss'), dict(type='HierarchicalCrossEntropyLoss'),
          dict(type='RMILoss'), dict(type='TreeTripletLoss', max_samples_per_class=20),
          dict(type='NodeFocalLoss'), dict(type='LogicCompositionLoss'),
          dict(type='LogicDecompositionLoss'), dict(type='LogicExclusionLoss'),
          dict(type='HierarchicalLovaszLoss')]


def _inputs(tree, seed: int = 0, size: int = 12):
    """Node logits (2, V, s, s), labels (2, s, s) with an ignored band, embedding (2, 8, s, s)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, tree.num_nodes, size, size, generator=g)
    label = torch.randint(0, tree.num_leaves, (2, size, size), generator=g)
    label[:, :2] = 255
    embedding = F.normalize(torch.randn(2, 8, size, size, generator=g), dim=1)
    return logits, label, embedding


def _call(loss, logits, label, embedding):
    return loss(logits, label, embedding=embedding)


@pytest.mark.parametrize('tree_name', ['person_tree', 'four_level_tree'])
@pytest.mark.parametrize('cfg', LOSSES, ids=[c['type'] for c in LOSSES])
def test_each_tree_loss_is_one_graph(cfg, tree_name, request):
    tree = request.getfixturevalue(tree_name)
    loss = MODELS.build(dict(cfg, hierarchy=tree.tree))
    explained = torch._dynamo.explain(_call)(loss, *_inputs(tree))
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), \
        explained.break_reasons


@pytest.mark.parametrize('cfg', [
    dict(type='TreeTripletLoss', max_samples_per_class=20,
         weight_schedule=dict(type='cosine', start=0.0, end=0.5)),
    dict(type='LogicExclusionLoss', ramp_iters=(0, 100))])
def test_a_scheduled_weight_does_not_recompile(cfg, person_tree):
    hub = MessageHub.get_instance('test_compile_schedule')
    hub.update_info('max_iters', 100)
    loss = MODELS.build(dict(cfg, hierarchy='pascal_person_part'))
    counter = CompileCounter()
    compiled = torch.compile(_call, backend=counter)
    inputs = _inputs(person_tree)
    values, frames = [], []
    for it in (10, 20, 30):  # the weight changes every call
        hub.update_info('iter', it)
        torch.manual_seed(it)  # the triplets' sampling draws from the global generator
        values.append(compiled(loss, *inputs))
        # eager at the same iteration: the same value (the weight is read, not frozen)
        torch.manual_seed(it)
        assert torch.allclose(values[-1], _call(loss, *inputs), rtol=1e-5)
        frames.append(counter.frame_count)
    # the graphs around the eager schedule read (at most 2), compiled at the first call
    # only: no recompile as the weight changes
    assert frames[0] in (1, 2) and frames == [frames[0]] * 3, frames
    assert len({round(float(v), 6) for v in values}) == 3
    torch._dynamo.reset()


def test_a_label_outside_the_tree_fails_in_a_compiled_graph(person_tree):
    loss = MODELS.build(dict(type='FocalTreeMinLoss', hierarchy='pascal_person_part'))
    logits, label, embedding = _inputs(person_tree)
    compiled = torch.compile(_call, backend='aot_eager', fullgraph=True)
    compiled(loss, logits, label, embedding)  # a good label passes
    label[0, 5, 5] = 7  # the person tree's leaves are 0..6
    with pytest.raises(RuntimeError, match=r'FocalTreeMinLoss: label ids not in the hierarchy '
                                           r'\(leaves 0\.\.6, ignore index 255\)'):
        compiled(loss, logits, label, embedding)
    with pytest.raises(ValueError, match=r'label ids \[7\]'):  # eager names the ids
        _call(loss, logits, label, embedding)
    torch._dynamo.reset()


def test_inductor_gives_eagers_values_and_gradients(four_level_tree):
    # HSSN's objective (focal tree-min + leaf CE + RMI) on the 4-level tree, compiled by
    # inductor (the C++ backend on a CPU): value and gradient as eager's within float32
    # rounding (relative 1e-5)
    losses = [MODELS.build(dict(type=t, hierarchy=four_level_tree.tree))
              for t in ('FocalTreeMinLoss', 'HierarchicalCrossEntropyLoss', 'RMILoss')]

    def total(logits, label):
        return sum(loss(logits, label) for loss in losses)

    logits, label, _ = _inputs(four_level_tree, seed=1)
    results = []
    for fn in (total, torch.compile(total, fullgraph=True)):
        x = logits.clone().requires_grad_()
        value = fn(x, label)
        value.backward()
        results.append((value.detach(), x.grad))
    (v_eager, g_eager), (v_comp, g_comp) = results
    assert torch.allclose(v_comp, v_eager, rtol=1e-5)
    assert (g_comp - g_eager).abs().max() <= 1e-5 * g_eager.abs().max()
    torch._dynamo.reset()


def test_a_compiled_head_loss_gives_eagers_gradients(person_tree):
    # The CPU demo's head (DeepLabV3+'s, dropout 0.1) as the flat twin has it, its whole
    # `loss` (features -> node logits -> leaf CE -> acc_seg) compiled by inductor, the same
    # dropout mask drawn (fallback_random). Regression: with acc_seg traced into that graph,
    # every parameter got a zero gradient (torch 2.13); acc_seg now runs outside the graph.
    import copy
    import os.path as osp
    from mmengine.config import Config
    from torch._inductor import config as inductor_config
    from hseg_mm.testing import seg_data_samples
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg = copy.deepcopy(Config.fromfile(osp.join(root, 'configs', 'demo_cpu.py')).model.decode_head)
    assert cfg.dropout_ratio > 0 and cfg.in_index == 3  # c1 features: inputs[0]
    cfg.update(hierarchy=person_tree.tree, norm_cfg=dict(type='BN'), inference='flat',
               loss_decode=[dict(type='HierarchicalCrossEntropyLoss', levels=[-1])])
    torch.manual_seed(0)
    head = MODELS.build(cfg)
    head.train()
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(2, cfg.c1_in_channels, 16, 16, generator=g), None, None,
             torch.randn(2, cfg.in_channels, 8, 8, generator=g)]
    samples = seg_data_samples(torch.randint(0, 7, (2, 64, 64), generator=g))
    grads = []
    for fn in (head.loss, torch.compile(head.loss)):
        head.zero_grad()
        torch.manual_seed(3)
        with inductor_config.patch(fallback_random=True):  # undone when the block ends
            losses = fn(feats, samples, None)
        losses['loss_hier_ce'].backward()
        grads.append({n: p.grad.clone() for n, p in head.named_parameters()
                      if p.grad is not None})
        assert 0 < losses['acc_seg'].item() < 100
    eager, compiled = grads
    assert eager.keys() == compiled.keys() and len(eager) > 20
    for name, grad in eager.items():
        # float32 rounding: 1e-3 of the parameter's largest gradient, and 1e-7 for the
        # batch-norm weights' near-cancelling sums (largest about 4e-6 here); the bug
        # made every one of them 0 (the classifier's largest: 0.06)
        assert grad.abs().max() > 0, name
        assert (compiled[name] - grad).abs().max() <= 1e-3 * grad.abs().max() + 1e-7, name
    torch._dynamo.reset()


def test_compile_losses_compiles_each_loss_and_keeps_values(person_tree):
    # The demo head with HSSN's losses and compile_losses (here AOT autograd without code
    # generation, for speed; True means inductor): each loss module is compiled, the
    # state dict's keys are eager's, and the losses and the head's gradients are eager's.
    import copy
    import os.path as osp
    from mmengine.config import Config
    from hseg_mm.testing import seg_data_samples
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg = copy.deepcopy(Config.fromfile(osp.join(root, 'configs', 'demo_cpu.py')).model.decode_head)
    cfg.update(hierarchy=person_tree.tree, norm_cfg=dict(type='BN'), dropout_ratio=0.0)
    heads = []
    for option in (False, dict(backend='aot_eager')):
        torch.manual_seed(0)
        heads.append(MODELS.build(dict(cfg, compile_losses=option)).train())
    eager, compiled = heads
    assert all(m._compiled_call_impl is None for m in eager.loss_decode)
    assert len(compiled.loss_decode) == 4  # RMI, focal tree-min, hierarchical CE, triplet
    assert all(m._compiled_call_impl is not None for m in compiled.loss_decode)
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(2, cfg.c1_in_channels, 16, 16, generator=g), None, None,
             torch.randn(2, cfg.in_channels, 8, 8, generator=g)]
    samples = seg_data_samples(torch.randint(0, 7, (2, 64, 64), generator=g))
    results = []
    for head in heads:
        torch.manual_seed(3)  # the triplet loss samples pixels
        losses = head.loss(feats, samples, None)
        sum(v for k, v in losses.items() if k.startswith('loss')).backward()
        results.append(({k: v.detach() for k, v in losses.items()},
                        {n: p.grad for n, p in head.named_parameters() if p.grad is not None}))
    (v_eager, g_eager), (v_comp, g_comp) = results
    assert v_eager.keys() == v_comp.keys() and len(v_eager) == 5  # four losses + acc_seg
    for name, value in v_eager.items():
        assert torch.allclose(v_comp[name], value, rtol=1e-5, atol=1e-7), name
    assert g_eager.keys() == g_comp.keys()
    for name, grad in g_eager.items():
        assert (g_comp[name] - grad).abs().max() <= 1e-4 * grad.abs().max() + 1e-8, name
    torch._dynamo.reset()
