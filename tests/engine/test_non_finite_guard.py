"""NonFiniteGuardHook on a tiny model run by a real mmengine Runner.

The model (`_Tiny`): out = bn(lin(x)); loss_fit = mean((out - 1)^2); loss_reg = 0.01 *
mean(b^2), b a parameter of 2 ones. Batches are two samples; a sample's `kind` poisons
its iteration: 'nan_loss' multiplies loss_reg by nan, 'inf_grad' makes the gradient of b
inf, 'huge_grad' makes it 1e38 (finite), so that b's step (lr 0.1 x lr_mult 100 = 10)
overflows: 10 x 1e38 = 1e39 > 3.4e38, the largest float32.
"""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmseg.registry import HOOKS

from hseg_mm.engine import NonFiniteError, NonFiniteGuardHook, all_finite, find_non_finite

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
NAN, INF = float('nan'), float('inf')


class _SetGrad(torch.autograd.Function):
    """Identity forward; backward gives every element the gradient `value`."""

    @staticmethod
    def forward(ctx, x, value):
        ctx.value = value
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, ctx.value), None


class _Tiny(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.bn = nn.BatchNorm1d(2)
        self.b = nn.Parameter(torch.ones(2))

    def forward(self, inputs, kind, mode='loss'):
        out = self.bn(self.lin(inputs))
        if mode != 'loss':
            return [out.sum()]
        b = self.b
        if 'inf_grad' in kind:
            b = _SetGrad.apply(b, INF)
        if 'huge_grad' in kind:
            b = _SetGrad.apply(b, 1e38)
        reg = 0.01 * (b ** 2).mean()
        if 'nan_loss' in kind:
            reg = reg * NAN
        return dict(loss_fit=((out - 1) ** 2).mean(), loss_reg=reg)


class _Data(torch.utils.data.Dataset):
    """Two samples per iteration; `poison` maps an iteration (from 1) to a kind."""

    def __init__(self, poison: dict, iters: int) -> None:
        self.poison, self.iters = poison, iters
        self.x = torch.randn(2 * iters, 2, generator=torch.Generator().manual_seed(0))

    def __len__(self):
        return 2 * self.iters

    def __getitem__(self, i):
        return dict(inputs=self.x[i], kind=self.poison.get(i // 2 + 1, 'ok'))


class _Counting(BaseMetric):
    """'score' = how many validations ran: each one is the best so far."""

    def __init__(self) -> None:
        super().__init__()
        self.runs = 0

    def process(self, data_batch, data_samples):
        self.results.append(0)

    def compute_metrics(self, results):
        self.runs += 1
        return dict(score=self.runs)


def _train(tmp_path, hook, poison: dict, iters: int = 5, wrapper: str = 'OptimWrapper'):
    data = _Data(poison, iters)
    loader = dict(dataset=data, sampler=dict(type='DefaultSampler', shuffle=False),
                  batch_size=2, num_workers=0, collate_fn=dict(type='default_collate'))
    runner = Runner(
        model=_Tiny(), work_dir=str(tmp_path), experiment_name=f'nfg_{tmp_path.name}',
        train_dataloader=loader, val_dataloader=dict(loader, dataset=_Data({}, 1)),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=1),
        val_cfg=dict(type='ValLoop'), val_evaluator=Evaluator([_Counting()]),
        optim_wrapper=dict(type=wrapper, optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
                           paramwise_cfg=dict(custom_keys={'b': dict(lr_mult=100)})),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False,
                                           save_best='score', rule='greater')),
        custom_hooks=[hook], default_scope='mmseg', log_level='WARNING')
    return runner


def _ckpt(tmp_path, name):
    return torch.load(osp.join(tmp_path, name), map_location='cpu')


def _pths(tmp_path):
    return sorted(f for f in os.listdir(tmp_path) if f.endswith('.pth'))


def _all_saved_finite(tmp_path) -> bool:
    return all(not find_non_finite(_ckpt(tmp_path, f)['state_dict'].items())
               for f in _pths(tmp_path))


def _last_checkpoint(tmp_path) -> str:
    return osp.basename(open(osp.join(tmp_path, 'last_checkpoint')).read().strip())


# ------------------------------------------------------------------ helpers
def test_all_finite_and_find_non_finite():
    a, b = torch.tensor([1.0, NAN, INF]), torch.tensor([2.0, -INF])
    ints = torch.tensor([1, 2])  # not floating: never reported
    assert bool(all_finite([torch.ones(3), torch.tensor(3e38), ints]))  # 3e38 < float32 max
    assert not bool(all_finite([torch.ones(3), b]))
    assert all_finite([ints]) is None
    # nan wins over inf in one tensor; the order of the input is kept; `limit` stops early
    named = [('a', a), ('i', ints), ('ok', torch.zeros(2)), ('b', b)]
    assert find_non_finite(named) == [('a', 'nan'), ('b', 'inf')]
    assert find_non_finite(named, limit=1) == [('a', 'nan')]


def test_registered_and_bad_arguments():
    hook = HOOKS.build(dict(type='NonFiniteGuardHook', action='skip', max_skips=3))
    assert (hook.action, hook.max_skips) == ('skip', 3)
    assert NonFiniteGuardHook().action == 'stop'
    with pytest.raises(ValueError, match="action must be 'stop' or 'skip', got 'ignore'"):
        NonFiniteGuardHook(action='ignore')
    with pytest.raises(ValueError, match='max_skips must be an int >= 0, got -1'):
        NonFiniteGuardHook(max_skips=-1)
    assert issubclass(NonFiniteError, RuntimeError)


# --------------------------------------------------------------------- stop
@pytest.mark.parametrize('wrapper', ['OptimWrapper', 'CPUAmpOptimWrapper'])
def test_stop_at_nan_loss_term(tmp_path, wrapper):
    runner = _train(tmp_path, NonFiniteGuardHook(), {3: 'nan_loss'}, wrapper=wrapper)
    with pytest.raises(NonFiniteError) as err:
        runner.train()
    assert str(err.value) == 'iteration 3: loss term loss_reg is nan'
    # iterations 1 and 2 saved (and each was the best); nothing of iteration 3
    assert _pths(tmp_path) == ['best_score_iter_2.pth', 'iter_1.pth', 'iter_2.pth']
    assert _last_checkpoint(tmp_path) == 'iter_2.pth'
    # the weights in memory are still those of iter_2.pth: no step was taken
    saved = _ckpt(tmp_path, 'iter_2.pth')['state_dict']
    assert all(torch.equal(saved[k], p) for k, p in runner.model.named_parameters())


def test_stop_at_inf_gradient(tmp_path):
    runner = _train(tmp_path, NonFiniteGuardHook(), {3: 'inf_grad'})
    with pytest.raises(NonFiniteError, match=r'^iteration 3: gradient of b is inf$'):
        runner.train()
    assert _last_checkpoint(tmp_path) == 'iter_2.pth' and 'iter_3.pth' not in _pths(tmp_path)
    assert _all_saved_finite(tmp_path)


def test_stop_when_a_finite_gradient_overflows_a_weight(tmp_path):
    # b's gradient 1e38 is finite, its step 10 x 1e38 is not: caught after the step,
    # before the checkpoint and the validation (which would make it the best) of iteration 3
    runner = _train(tmp_path, NonFiniteGuardHook(action='skip'), {3: 'huge_grad'})
    with pytest.raises(NonFiniteError, match=r'^iteration 3: weight b is inf after the '
                                             r'optimizer step \(its gradient was finite'):
        runner.train()
    assert _pths(tmp_path) == ['best_score_iter_2.pth', 'iter_1.pth', 'iter_2.pth']
    assert _last_checkpoint(tmp_path) == 'iter_2.pth' and _all_saved_finite(tmp_path)


def test_no_checkpoint_of_a_non_finite_model(tmp_path):
    class _Runner:
        iter = 7
    hook = NonFiniteGuardHook()
    good = dict(meta=dict(iter=7), state_dict=dict(w=torch.ones(2), n=torch.tensor(3)))
    hook.before_save_checkpoint(_Runner(), good)  # finite: nothing happens
    bad = dict(meta=dict(iter=7), state_dict=dict(w=torch.ones(2), v=torch.tensor([NAN]),
                                                  u=torch.tensor([1.0, INF])))
    with pytest.raises(NonFiniteError, match=r'^iteration 7: refusing to save a checkpoint '
                                             r'whose state_dict is not finite \(v is nan, '
                                             r'u is inf\)$'):
        hook.before_save_checkpoint(_Runner(), bad)


# --------------------------------------------------------------------- skip
def _state(runner):
    """Parameters, buffers (BN statistics) and the SGD momentum buffers, copied."""
    model = {k: v.clone() for k, v in runner.model.state_dict().items()}
    optim = runner.optim_wrapper.optimizer.state
    momentum = {id(p): s['momentum_buffer'].clone() for p, s in optim.items()}
    return model, momentum


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_skip_leaves_model_and_optimizer_unchanged_then_stops(tmp_path):
    # max_skips=2 (counted in a row): iterations 2 and 3 skipped, the 3rd in a row stops
    hook = NonFiniteGuardHook(action='skip', max_skips=2)
    runner = _train(tmp_path, hook, {2: 'nan_loss', 3: 'inf_grad', 4: 'nan_loss'}, iters=6)
    states = {}

    class _Record(Hook):
        priority = 'LOWEST'

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            states[runner.iter + 1] = _state(runner)
            for p in runner.model.parameters():  # zeroed gradients (set to None)
                assert p.grad is None or not p.grad.any()

    runner.register_hook(_Record())
    with pytest.raises(NonFiniteError) as err:
        runner.train()
    assert str(err.value) == ('iteration 4: loss term loss_reg is nan (3 non-finite '
                              'iterations in a row, max_skips=2)')
    assert hook.skipped_iters == [2, 3]
    # after skipped iterations 2 and 3: exactly the state after iteration 1, BN included
    for it in (2, 3):
        assert _same(states[it][0], states[1][0]) and _same(states[it][1], states[1][1])
    assert _same(runner.model.state_dict(), states[1][0])  # 4 stopped before its step
    assert _last_checkpoint(tmp_path) == 'iter_3.pth' and _all_saved_finite(tmp_path)


def test_skip_count_is_in_a_row(tmp_path):
    # max_skips=1: iterations 2 and 4 are each the first in a row, so both are skipped
    hook = NonFiniteGuardHook(action='skip', max_skips=1)
    runner = _train(tmp_path, hook, {2: 'nan_loss', 4: 'inf_grad'}, iters=5)
    runner.train()
    assert hook.skipped_iters == [2, 4] and hook.skips_in_a_row == 0
    assert _last_checkpoint(tmp_path) == 'iter_5.pth' and _all_saved_finite(tmp_path)
    # nothing was patched, and the optimizer's step pre-hook is gone after training: a nan
    # gradient now reaches the update
    assert 'step' not in vars(runner.optim_wrapper) and 'parse_losses' not in vars(runner.model)
    runner.model.b.grad = torch.full_like(runner.model.b, NAN)
    runner.optim_wrapper.optimizer.step()
    assert torch.isnan(runner.model.b).all()


# --------------------------------------------------------------- 2 processes
_DDP_SCRIPT = '''
import os, sys
import torch, torch.distributed as dist
sys.path.insert(0, {root!r}); sys.path.insert(0, {here!r})
import hseg_mm  # noqa
from mmengine.logging import MessageHub
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import OptimWrapper
from hseg_mm.engine import NonFiniteError, NonFiniteGuardHook
from test_non_finite_guard import _Tiny

dist.init_process_group('gloo')
rank = dist.get_rank()
torch.manual_seed(0)
model = MMDistributedDataParallel(_Tiny(), device_ids=None)

class Runner:  # what the hook reads of a runner
    iter = 0
    message_hub = MessageHub.get_current_instance()
runner = Runner()
runner.model = model
runner.optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
hook = NonFiniteGuardHook()
hook.before_train(runner)
x = torch.randn(2, 2)
try:
    for runner.iter in range(3):
        # rank 1 alone has a nan loss term at iteration 2
        kind = ['nan_loss'] * 2 if (rank == 1 and runner.iter == 1) else ['ok'] * 2
        outputs = model.train_step(dict(inputs=x, kind=kind), runner.optim_wrapper)
        hook.after_train_iter(runner, runner.iter, outputs=outputs)
except NonFiniteError as err:
    print(f'rank {{rank}}: {{err}}', flush=True)
dist.barrier()
dist.destroy_process_group()
'''


def test_two_ranks_stop_together(tmp_path):
    # the loss term is nan on rank 1 only; the all-reduced verdict stops both ranks at
    # the same step (no rank left waiting in a collective). Rank 0 names the gradient,
    # which DDP averaged with rank 1's nan one.
    script = tmp_path / 'ddp.py'
    script.write_text(_DDP_SCRIPT.format(root=ROOT, here=osp.dirname(osp.abspath(__file__))))
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE='2', MASTER_ADDR='127.0.0.1',
                   MASTER_PORT=str(port), OMP_NUM_THREADS='1')
        procs.append(subprocess.Popen([sys.executable, str(script)], env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=120)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    assert [p.returncode for p in procs] == [0, 0], outs
    assert 'rank 0: iteration 2: gradient of b is nan' in outs[0], outs[0]
    assert 'rank 1: iteration 2: loss term loss_reg is nan' in outs[1], outs[1]
