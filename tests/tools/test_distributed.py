"""The distributed path through the real scripts, on CPU (DDP over gloo): the same
checkpoint tested by 2 processes and by 1 gives the same per-level metrics, digit for
digit; two "nodes" on localhost train the same weights as 2 processes on one node; a
2-process run killed (kill -9) and resumed with `--resume` under 2 processes ends in
the uninterrupted run's weights, bit for bit.

(2-process training on its own is in test_train_test_cycle.py.) Every subprocess has a
timeout, every rendezvous a free port (never 29500, which another job may hold).
"""
import json
import os
import os.path as osp
import subprocess
import sys
from typing import List

import pytest
import torch

from hseg_mm.datasets.synthetic_people import make_synthetic_people
from tool_helpers import demo_options, free_port

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HERE = osp.dirname(osp.abspath(__file__))
CONFIG = osp.join(ROOT, 'configs', 'demo_cpu.py')
ITERS = 4
TIMEOUT = 300  # s per command; a 2-process run takes ~15 s on 2 idle cores


def _options(data_root: str) -> list:
    # checkpoints and validations at 2 and 4; 3 val images: an odd number, so the
    # 2-process sampler pads rank 1 with a repeated image that must not be counted
    return demo_options(data_root, ITERS, max_keep_ckpts=5)


def _config(tmp_path, kill_at: int = 0) -> str:
    """demo_cpu.py, with kill -9 of every rank at the start of iteration `kill_at`."""
    hooks = "[dict(type='HierarchicalVisualizationHook', num_images=2)"
    hooks += f", dict(type='KillAtIterationHook', iteration={kill_at})]" if kill_at else ']'
    path = tmp_path / f'demo_cpu_kill{kill_at}.py'
    path.write_text(f'_base_ = [{CONFIG!r}]\n'
                    "custom_imports = dict(imports=['hseg_mm', 'kill_points'], "
                    'allow_failed_imports=False)\n'
                    f'custom_hooks = {hooks}\n')
    return str(path)


def _env(**extra) -> dict:
    return dict(os.environ, PYTHONPATH=f'{ROOT}:{HERE}', OMP_NUM_THREADS='1',
                PYTHON=sys.executable, **extra)


def _run(args: list, expect_rc: int = 0) -> str:
    proc = subprocess.run(args, cwd=ROOT, env=_env(PORT=str(free_port())),
                          capture_output=True, text=True, timeout=TIMEOUT)
    log = proc.stdout + proc.stderr
    if expect_rc is None:
        assert proc.returncode != 0, f'{args}\n{log[-4000:]}'
    else:
        assert proc.returncode == expect_rc, f'{args}\n{log[-4000:]}'
    return log


def _weights(path: str) -> dict:
    return torch.load(path, map_location='cpu')['state_dict']


def _same_weights(a: str, b: str) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    differ = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not differ, f'{len(differ)} of {len(wa)} tensors differ, e.g. {differ[:3]}'


def _checkpoints(work: str) -> List[str]:
    return sorted(f for f in os.listdir(work) if f.endswith('.pth') or '.tmp-' in f)


def _test_metrics(work: str) -> dict:
    """The metrics a test run dumped (work_dir/<timestamp>/<timestamp>.json)."""
    found = [osp.join(d, f) for d, _, files in os.walk(work) for f in files
             if f.endswith('.json') and osp.basename(d) == f[:-5]]
    assert len(found) == 1, found
    # Written by rank 0 alone (RankZeroLoggerHook): with mmengine's LoggerHook every rank
    # wrote it, and a shorter write over a longer one left invalid JSON.
    with open(found[0]) as f:
        metrics = json.load(f)
    return {k: v for k, v in metrics.items() if k not in ('time', 'data_time')}


@pytest.fixture(scope='module')
def data_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('people'))
    make_synthetic_people(root, num_train=6, num_val=3, size=(128, 128), seed=3)
    return root


@pytest.fixture(scope='module')
def two_process_run(data_root, tmp_path_factory) -> str:
    """The work dir of an uninterrupted 2-process run of ITERS iterations."""
    tmp = tmp_path_factory.mktemp('ddp')
    work = str(tmp / 'work')
    log = _run(['bash', 'tools/dist_train.sh', _config(tmp), '2', '--work-dir', work,
                '--cfg-options', *_options(data_root)])
    assert 'Distributed training: True' in log
    assert osp.isfile(osp.join(work, f'iter_{ITERS}.pth')), _checkpoints(work)
    return work


def test_two_process_test_equals_one_process(tmp_path, data_root, two_process_run):
    ckpt = osp.join(two_process_run, f'iter_{ITERS}.pth')
    config = _config(tmp_path)
    log2 = _run(['bash', 'tools/dist_test.sh', config, ckpt, '2', '--work-dir',
                 str(tmp_path / 'two'), '--out', str(tmp_path / 'out2'),
                 '--cfg-options', *_options(data_root)])
    log1 = _run([sys.executable, 'tools/test.py', config, ckpt, '--work-dir',
                 str(tmp_path / 'one'), '--out', str(tmp_path / 'out1'),
                 '--cfg-options', *_options(data_root)])
    assert 'Distributed training: True' in log2 and 'Distributed training: False' in log1
    two, one = _test_metrics(str(tmp_path / 'two')), _test_metrics(str(tmp_path / 'one'))
    assert {'mIoU_L1', 'mIoU_L2', 'mIoU_L3'} <= set(one), sorted(one)
    assert two == one  # every per-level figure, to the last digit
    # the printed per-level tables too, line for line
    tables = [open(osp.join(d, 'per_level_table.txt')).read()
              for w in ('two', 'one') for d, _, files in os.walk(tmp_path / w)
              if 'per_level_table.txt' in files]
    assert len(tables) == 2 and tables[0] == tables[1]
    # --out: one label map per val image and level, the same bytes (the padded repeat
    # of an image on rank 1 neither adds a file nor changes one)
    maps = [sorted(str(p.relative_to(tmp_path / out)) for p in (tmp_path / out).rglob('*.png'))
            for out in ('out2', 'out1')]
    assert maps[0] == maps[1] and len(maps[1]) == 3 * 3, maps
    for name in maps[1]:
        assert (tmp_path / 'out2' / name).read_bytes() == (tmp_path / 'out1' / name).read_bytes()


def test_two_nodes_on_localhost_train_the_two_process_weights(tmp_path, data_root,
                                                              two_process_run):
    # two torchrun agents, one process each, meeting at 127.0.0.1:PORT (static
    # rendezvous), one work dir on a "shared file system"
    work, port, config = str(tmp_path / 'work'), str(free_port()), _config(tmp_path)
    procs = [subprocess.Popen(['bash', 'tools/dist_train.sh', config, '1', '--work-dir', work,
                               '--cfg-options', *_options(data_root)],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=_env(NNODES='2', NODE_RANK=str(rank), PORT=port,
                                                  MASTER_ADDR='127.0.0.1'))
             for rank in (0, 1)]
    logs = []
    try:
        for proc in procs:
            logs.append(proc.communicate(timeout=TIMEOUT)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for rank, (proc, log) in enumerate(zip(procs, logs)):
        assert proc.returncode == 0, f'node {rank}:\n{log[-4000:]}'
    assert 'Distributed training: True' in logs[0]
    # rank 0 alone wrote each checkpoint, once, completely (no temporary left over)
    assert _checkpoints(work) == _checkpoints(two_process_run)
    assert torch.load(osp.join(work, f'iter_{ITERS}.pth'))['meta']['iter'] == ITERS
    # the same 2 ranks as 2 processes on one node: the same weights, bit for bit
    _same_weights(osp.join(two_process_run, f'iter_{ITERS}.pth'),
                  osp.join(work, f'iter_{ITERS}.pth'))


def test_two_process_kill_and_resume_is_bit_for_bit(tmp_path, data_root, two_process_run):
    cut = str(tmp_path / 'cut')
    # every rank kill -9s itself at the start of iteration 3; torchrun ends the job
    log = _run(['bash', 'tools/dist_train.sh', _config(tmp_path, kill_at=3), '2',
                '--work-dir', cut, '--cfg-options', *_options(data_root)], expect_rc=None)
    assert 'Signal 9 (SIGKILL)' in log, log[-3000:]
    assert osp.isfile(osp.join(cut, 'iter_2.pth'))
    assert not osp.exists(osp.join(cut, f'iter_{ITERS}.pth'))
    # both ranks' random states were saved with iter_2
    assert len(torch.load(osp.join(cut, 'iter_2.pth'))['meta']['random_states']) == 2

    log = _run(['bash', 'tools/dist_train.sh', _config(tmp_path), '2', '--work-dir', cut,
                '--resume', '--cfg-options', *_options(data_root)])
    assert 'resumed epoch: 0, iter: 2' in log
    _same_weights(osp.join(two_process_run, f'iter_{ITERS}.pth'),
                  osp.join(cut, f'iter_{ITERS}.pth'))
