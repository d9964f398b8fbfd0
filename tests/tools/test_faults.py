"""Faults of the data and of the processes, each through tools/train.py (or
tools/dist_train.sh), each bounded by a timeout: what happens, and that nothing bad is
left behind. A corrupt image mid-epoch and a missing label stop the run naming the
file; a DataLoader worker killed, or a DDP rank killed, ends the run with an error
instead of a hang. (kill -9 of the whole run, mid-step or mid-save, is in
test_exact_resume.py; a full disk in tests/engine/test_atomic_local_backend.py.)
"""
import os
import os.path as osp
import shutil
import subprocess
import sys
import time

import pytest
import torch

from hseg_mm.datasets.synthetic_people import make_synthetic_people
from tool_helpers import demo_options, free_port

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HERE = osp.dirname(osp.abspath(__file__))
CONFIG = osp.join(ROOT, 'configs', 'demo_cpu.py')
ITERS = 6  # 6 train images, batch 2: two epochs
TIMEOUT = 300  # s; a hang (gloo's default timeout is 30 min) fails the test here


def _options(data_root: str, num_workers: int = 0) -> list:
    return demo_options(data_root, ITERS, val_interval=ITERS, checkpoint_interval=1,
                        max_keep_ckpts=10, train_workers=num_workers)


def _config(tmp_path, body: str) -> str:
    path = tmp_path / 'faulty.py'
    path.write_text(f'_base_ = [{CONFIG!r}]\n'
                    "custom_imports = dict(imports=['hseg_mm', 'kill_points'], "
                    'allow_failed_imports=False)\n' + body)
    return str(path)


def _train(args: list, data_root: str, num_workers: int = 0):
    """(return code, stdout, stderr, seconds) of a training command."""
    env = dict(os.environ, PYTHONPATH=f'{ROOT}:{HERE}', OMP_NUM_THREADS='1',
               PYTHON=sys.executable, PORT=str(free_port()))
    start = time.monotonic()
    proc = subprocess.run(args + ['--cfg-options', *_options(data_root, num_workers)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def _trained_iters(log: str) -> int:
    """How many iterations the run logged (logger interval 1)."""
    return log.count('Iter(train) [')


def _only_complete_checkpoints(work: str, before: int) -> None:
    """Every checkpoint in `work` loads and is of an iteration before `before`, and
    `last_checkpoint` (what `--resume` loads) names one of them. (A process killed
    mid-save may leave a `.NAME.tmp-PID` file: never read as a checkpoint.)"""
    names = [n for n in os.listdir(work) if n.endswith('.pth')] if osp.isdir(work) else []
    for name in names:
        assert torch.load(osp.join(work, name))['meta']['iter'] < before, name
    if names:
        with open(osp.join(work, 'last_checkpoint')) as f:
            assert osp.basename(f.read().strip()) in names


@pytest.fixture(scope='module')
def pristine(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('people'))
    make_synthetic_people(root, num_train=6, num_val=1, size=(128, 128), seed=4)
    return root


@pytest.fixture
def data_root(pristine, tmp_path) -> str:
    """A copy of the data this test may damage."""
    return shutil.copytree(pristine, str(tmp_path / 'data'))


@pytest.mark.parametrize('keep', [0.5, 0.0], ids=['truncated', 'empty'])
def test_corrupt_image_mid_epoch_stops_naming_it(tmp_path, data_root, keep):
    # the image is listed (and exists) when the dataset is built; at the start of
    # iteration 2 it is cut short. Every image is read once per epoch (3 iterations),
    # so a later iteration reads it.
    image = osp.join(data_root, 'JPEGImages', 'train_000003.jpg')
    config = _config(tmp_path, "custom_hooks = [dict(type='CorruptFileAtIterationHook', "
                               f'iteration=2, path={image!r}, keep={keep})]\n')
    work = str(tmp_path / 'work')
    rc, out, err, _ = _train([sys.executable, 'tools/train.py', config, '--work-dir', work],
                             data_root)
    assert rc == 1, err[-3000:]
    trained = _trained_iters(out + err)
    assert 2 <= trained < ITERS, trained  # it stopped there: no silent skip
    # the checkpoints written before are whole; none after the failure
    _only_complete_checkpoints(work, before=trained + 1)
    assert not osp.exists(osp.join(work, f'iter_{ITERS}.pth'))
    # the run's last words name the file: "OSError: cannot read image <path>: ..."
    assert f'OSError: cannot read image {image}: ' in _last_line(err), err[-3000:]


def test_missing_label_is_reported_before_training(tmp_path, data_root):
    label = osp.join(data_root, 'SegmentationPart', 'train_000002.png')
    os.remove(label)
    work = str(tmp_path / 'work')
    rc, out, err, _ = _train([sys.executable, 'tools/train.py', CONFIG, '--work-dir', work],
                             data_root)
    assert rc == 1, err[-3000:]
    # one line, naming the config key, the split list and the file, before the runner
    # (model, datasets, work dir) is built
    split = osp.join(data_root, 'train_id.txt')
    assert _last_line(err) == (
        f'error: train_dataloader.dataset: 1 files listed in {split} are missing, e.g. '
        f'{label} (tools/check_dataset.py lists every problem)'), err[-3000:]
    assert _trained_iters(out + err) == 0 and 'Traceback' not in err
    assert not osp.exists(work)  # nothing built, nothing written


def test_dataloader_worker_killed_stops_training(tmp_path, data_root):
    # num_workers=1: the worker SIGKILLs itself (as the OOM killer would) when it
    # loads train_000001.jpg, which the first epoch reads
    pipeline = ("[dict(type='LoadImageFromFile'), "
                "dict(type='KillWorkerOnImage', name='train_000001.jpg'), "
                "dict(type='LoadCheckedAnnotations'), dict(type='PackSegInputs')]")
    config = _config(tmp_path, f'train_dataloader = dict(dataset=dict(pipeline={pipeline}))\n')
    work = str(tmp_path / 'work')
    rc, out, err, seconds = _train([sys.executable, 'tools/train.py', config, '--work-dir',
                                    work], data_root, num_workers=1)
    assert rc == 1, err[-3000:]
    assert _last_line(err).startswith('RuntimeError: DataLoader worker (pid ') and \
        _last_line(err).endswith('is killed by signal: Killed.'), err[-3000:]
    trained = _trained_iters(out + err)
    assert trained < 3, trained
    _only_complete_checkpoints(work, before=trained + 1)
    print(f'worker crash: stopped after {seconds:.0f} s')


def test_rank_killed_in_ddp_ends_the_job(tmp_path, data_root):
    # rank 1 kill -9s itself at the start of iteration 3; rank 0 lives on (and waits
    # for rank 1's gradients); torchrun's agent must end the job
    config = _config(tmp_path, "custom_hooks = [dict(type='KillAtIterationHook', "
                               'iteration=3, rank=1)]\n')
    work = str(tmp_path / 'work')
    rc, out, err, seconds = _train(['bash', 'tools/dist_train.sh', config, '2', '--work-dir',
                                    work], data_root)
    assert rc == 1, (out + err)[-3000:]
    # torchrun's summary names the rank that died first and how
    failure = err[err.index('Root Cause (first observed failure):'):]
    assert 'rank      : 1 (local_rank: 1)' in failure and 'exitcode  : -9' in failure, failure
    assert 'Signal 9 (SIGKILL) received by PID' in failure
    assert seconds < 120  # ~11 s on 2 idle cores, start-up included
    # iter_1 is saved; iter_2 only if rank 0 finished writing it before torchrun's
    # SIGTERM (rank 1 dies right after the collective that precedes that save); any
    # checkpoint there is whole, and none is later
    _only_complete_checkpoints(work, before=3)
    assert osp.isfile(osp.join(work, 'iter_1.pth'))
    print(f'rank death: job ended after {seconds:.0f} s')
