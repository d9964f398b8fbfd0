"""A diverging run through the real tools: train.py stops at the first non-finite loss
term or gradient and leaves only finite checkpoints; test.py refuses a NaN checkpoint."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

from hseg_mm.datasets.synthetic_people import make_synthetic_people
from hseg_mm.engine import find_non_finite
from tool_helpers import demo_options

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'demo_cpu.py')


def _options(data_root: str, iters: int) -> list:
    return demo_options(data_root, iters)  # as tests/tools/test_train_test_cycle.py


def _run(args: list, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _last_line(proc: subprocess.CompletedProcess) -> str:
    return (proc.stdout + proc.stderr).strip().splitlines()[-1]


@pytest.fixture(scope='module')
def diverged(tmp_path_factory):
    """The demo at lr 1e6 (x50000): finite at iteration 1, nan a couple of iterations on."""
    tmp = tmp_path_factory.mktemp('diverge')
    data_root = str(tmp / 'people')
    make_synthetic_people(data_root, num_train=6, num_val=3, size=(128, 128), seed=1)
    work = str(tmp / 'work')
    # the demo config as shipped: HierarchicalRunner registers the guard by default
    proc = _run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', work,
                 '--cfg-options', *_options(data_root, 8), 'optim_wrapper.optimizer.lr=1e6'])
    return proc, work, data_root


def test_train_stops_at_the_first_non_finite_value(diverged):
    proc, work, _ = diverged
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert 'Traceback' not in proc.stderr  # one line, as every error of the tools
    # e.g. 'iteration 3: loss term decode.loss_focal_tree_min is nan' (here, torch 2.13 CPU)
    found = re.search(r'iteration (\d+): (loss term decode\.loss_\w+|gradient of [\w.]+) '
                      r'is (nan|inf)$', _last_line(proc))
    assert found, (proc.stdout + proc.stderr)[-3000:]
    stopped = int(found.group(1))
    assert 1 < stopped <= 8
    # every checkpoint written is finite, and last_checkpoint is one before the stop
    pths = sorted(f for f in os.listdir(work) if f.endswith('.pth'))
    assert pths, os.listdir(work)
    for name in pths:
        state = torch.load(osp.join(work, name), map_location='cpu')['state_dict']
        assert not find_non_finite(state.items()), name
    last = open(osp.join(work, 'last_checkpoint')).read().strip()
    assert osp.isfile(last) and int(re.search(r'iter_(\d+)\.pth$', last).group(1)) < stopped


def test_test_refuses_a_checkpoint_with_non_finite_weights(diverged, tmp_path):
    _, work, data_root = diverged
    checkpoint = torch.load(open(osp.join(work, 'last_checkpoint')).read().strip(),
                            map_location='cpu')
    state = checkpoint['state_dict']
    floats = [k for k, v in state.items() if v.is_floating_point()]
    first, second = floats[0], floats[5]
    state[first] = torch.full_like(state[first], float('nan'))
    state[second][0] = float('inf')
    path = str(tmp_path / 'nan.pth')
    torch.save(checkpoint, path)
    proc = _run([sys.executable, 'tools/test.py', CONFIG, path, '--work-dir',
                 str(tmp_path / 'test'), '--cfg-options', *_options(data_root, 8)])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert _last_line(proc) == (
        f'error: {path} has non-finite weights ({first} is nan, {second} is inf; 2 of '
        f'{len(state)} tensors): it was saved from a diverged run; test a checkpoint from '
        'before the divergence')
    assert 'Traceback' not in out and 'mIoU' not in out  # refused before testing
