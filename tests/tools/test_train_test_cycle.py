"""End to end through the real command-line tools, on a handful of generated images.

Slow by the standards of this suite (subprocesses, ~1 min in all), so kept to two tests:
train -> checkpoint -> resume -> test -> infer, and the same training as 2-process DDP
over gloo (how the distributed path is tested on a CPU-only machine).
"""
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch

from hseg_mm.datasets.synthetic_people import make_synthetic_people

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'demo_cpu.py')


def _options(data_root: str, iters: int) -> list:
    loader = dict(num_workers=0, persistent_workers=False)
    options = [f'train_cfg.max_iters={iters}', 'train_cfg.val_interval=2',
               f'param_scheduler.0.end={iters}', 'default_hooks.logger.interval=1',
               'default_hooks.checkpoint.interval=2', 'train_dataloader.batch_size=2']
    for split in ('train', 'val', 'test'):
        options += [f'{split}_dataloader.dataset.data_root={data_root}',
                    f'{split}_dataloader.dataset.generate=None']
        options += [f'{split}_dataloader.{k}={v}' for k, v in loader.items()]
    return options


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _run(args: list, **kwargs) -> str:
    # PORT: torchrun's rendezvous, not the default 29500 another job may hold
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1', PYTHON=sys.executable,
               PORT=str(_free_port()))
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, f'{args}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    return proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def data_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('people'))
    make_synthetic_people(root, num_train=6, num_val=3, size=(128, 128), seed=1)  # config's size
    return root


def test_train_checkpoint_resume_test_infer(data_root, tmp_path):
    work = str(tmp_path / 'work')
    py = sys.executable
    _run([py, 'tools/train.py', CONFIG, '--work-dir', work,
          '--cfg-options', *_options(data_root, 2)])
    assert osp.isfile(osp.join(work, 'iter_2.pth'))

    # resume from the latest checkpoint and go on to iteration 4
    log = _run([py, 'tools/train.py', CONFIG, '--work-dir', work, '--resume',
                '--cfg-options', *_options(data_root, 4)])
    assert 'resumed epoch: 0, iter: 2' in log
    assert osp.isfile(osp.join(work, 'iter_4.pth'))
    assert torch.load(osp.join(work, 'iter_4.pth'))['meta']['iter'] == 4  # weights_only load

    log = _run([py, 'tools/test.py', CONFIG, osp.join(work, 'iter_4.pth'), '--eval', 'mIoU',
                '--work-dir', str(tmp_path / 'test'), '--out', str(tmp_path / 'out'),
                '--cfg-options', *_options(data_root, 4)])
    assert 'mIoU_L1' in log and 'consistency' in log
    # --out: one PNG per val image at every level
    assert [len(list((tmp_path / 'out' / f'L{k}').glob('*.png'))) for k in (1, 2, 3)] == [3] * 3
    tables = [osp.join(d, f) for d, _, files in os.walk(tmp_path / 'test') for f in files
              if f == 'per_level_table.txt']
    assert len(tables) == 1 and 'upper_body' in open(tables[0]).read()

    out = tmp_path / 'renders'
    _run([py, 'tools/infer.py', CONFIG, osp.join(work, 'iter_4.pth'),
          osp.join(data_root, 'JPEGImages'), '--out-dir', str(out)])
    assert len(list(out.glob('*.png'))) == 9  # 6 train + 3 val images


def test_two_process_gloo_training(data_root, tmp_path):
    work = str(tmp_path / 'ddp')
    log = _run(['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', work,
                '--cfg-options', *_options(data_root, 2)], timeout=300)
    assert 'Distributed training: True' in log
    assert osp.isfile(osp.join(work, 'iter_2.pth'))
    # both ranks evaluated their half of the 3 val images; rank 0 logs the merged metric
    scalars = [osp.join(d, f) for d, _, files in os.walk(work) for f in files
               if f == 'scalars.json']
    records = [json.loads(line) for line in open(scalars[0])]
    assert any('mIoU_L1' in r for r in records)


def test_amp_on_cpu_stops_with_a_message(tmp_path):
    if torch.cuda.is_available():
        pytest.skip('CUDA machine: --amp is valid here')
    proc = subprocess.run([sys.executable, 'tools/train.py', CONFIG, '--amp', '--work-dir',
                           str(tmp_path)], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                          capture_output=True, text=True)
    assert proc.returncode != 0 and '--amp needs a CUDA GPU' in proc.stderr
