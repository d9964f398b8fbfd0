"""A run killed (kill -9) at an iteration, or in the middle of writing a checkpoint, and
resumed with `--resume` ends in the same weights as the uninterrupted run, bit for bit,
for the HSSN and the flat demo configs; its logs continue the same run."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from hseg_mm.datasets.synthetic_people import make_synthetic_people
from tool_helpers import demo_options

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HERE = osp.dirname(osp.abspath(__file__))
ITERS = 6


def _options(data_root: str) -> list:
    # checkpoints every 2 iterations, validation at 3 and 6 (between checkpoints, so a
    # validation inside the resumed span must not change training either)
    return demo_options(data_root, ITERS, val_interval=3, max_keep_ckpts=5)


def _config(tmp_path, base: str, kill_at: int = 0) -> str:
    hooks = "[dict(type='HierarchicalVisualizationHook', num_images=2)"
    hooks += f", dict(type='KillAtIterationHook', iteration={kill_at})]" if kill_at else ']'
    path = tmp_path / f'{osp.splitext(base)[0]}_{kill_at}.py'
    path.write_text(f"_base_ = [{osp.join(ROOT, 'configs', base)!r}]\n"
                    "custom_imports = dict(imports=['hseg_mm', 'kill_points'], "
                    "allow_failed_imports=False)\n"
                    f"custom_hooks = {hooks}\n")
    return str(path)


def _train(config: str, work: str, data_root: str, *extra, expect_rc: int = 0,
           env: dict = None) -> str:
    env = dict(os.environ, PYTHONPATH=f'{ROOT}:{HERE}', OMP_NUM_THREADS='1', **(env or {}))
    proc = subprocess.run([sys.executable, 'tools/train.py', config, '--work-dir', work,
                           *extra, '--cfg-options', *_options(data_root)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == expect_rc, f'{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}'
    return proc.stdout + proc.stderr


def _weights(path: str) -> dict:
    return torch.load(path, map_location='cpu')['state_dict']


def _same_weights(a: str, b: str) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    differ = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not differ, f'{len(differ)} of {len(wa)} tensors differ, e.g. {differ[:3]}'


@pytest.fixture(scope='module')
def data_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('people'))
    make_synthetic_people(root, num_train=6, num_val=2, size=(128, 128), seed=2)
    return root


@pytest.mark.parametrize('base', ['demo_cpu.py', 'flat_demo_cpu.py'])
def test_kill_and_resume_is_bit_for_bit(tmp_path, data_root, base):
    whole = str(tmp_path / 'whole')
    _train(_config(tmp_path, base), whole, data_root)

    # kill -9 at the start of iteration 5 (the last checkpoint is iter_4), then resume
    cut = str(tmp_path / 'cut')
    _train(_config(tmp_path, base, kill_at=5), cut, data_root, expect_rc=-9)
    assert osp.isfile(osp.join(cut, 'iter_4.pth')) and not osp.exists(osp.join(cut, 'iter_6.pth'))
    log = _train(_config(tmp_path, base), cut, data_root, '--resume')
    assert 'resumed epoch: 0, iter: 4' in log
    _same_weights(osp.join(whole, f'iter_{ITERS}.pth'), osp.join(cut, f'iter_{ITERS}.pth'))

    # the resumed run logs into the killed run's folder, every step once, in order
    runs = [d for d in os.listdir(cut) if osp.isdir(osp.join(cut, d)) and d[:2] == '20']
    assert len(runs) == 1, runs
    with open(osp.join(cut, runs[0], 'vis_data', 'scalars.json')) as f:
        steps = [json.loads(line)['step'] for line in f if 'loss' in line]
    assert steps == list(range(1, ITERS + 1))
    # TensorBoard reads one run: the steps the killed run logged after iter_4 are purged
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(osp.join(cut, runs[0], 'vis_data'))
    events.Reload()
    assert [e.step for e in events.Scalars('loss')] == list(range(1, ITERS + 1))


def test_kill_while_writing_a_checkpoint(tmp_path, data_root):
    whole = str(tmp_path / 'whole')
    _train(_config(tmp_path, 'demo_cpu.py'), whole, data_root)
    cut = str(tmp_path / 'cut')
    _train(_config(tmp_path, 'demo_cpu.py'), cut, data_root, expect_rc=-9,
           env=dict(HSEG_KILL_IN_WRITE='iter_4.pth'))
    # the write never reached iter_4.pth (half of it lies in a temporary file); the last
    # complete checkpoint, iter_3 (mmengine saves one with the best at the validation of
    # iteration 3), is still the latest and loads
    assert not osp.exists(osp.join(cut, 'iter_4.pth'))
    assert any(f.startswith('.iter_4.pth.tmp-') for f in os.listdir(cut))
    with open(osp.join(cut, 'last_checkpoint')) as f:
        assert f.read().strip().endswith('iter_3.pth')
    assert torch.load(osp.join(cut, 'iter_3.pth'))['meta']['iter'] == 3
    log = _train(_config(tmp_path, 'demo_cpu.py'), cut, data_root, '--resume')
    assert 'resumed epoch: 0, iter: 3' in log
    _same_weights(osp.join(whole, f'iter_{ITERS}.pth'), osp.join(cut, f'iter_{ITERS}.pth'))
