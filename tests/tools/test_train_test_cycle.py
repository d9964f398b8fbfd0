"""End to end through the real command-line tools, on a handful of generated images.

Slow by the standards of this suite (subprocesses, ~1.5 min in all), so kept few:
train -> checkpoint -> resume -> test -> infer; the same training as 2-process DDP over
gloo (how the distributed path is tested on a CPU-only machine); a checkpoint of another
tree refused by every tool; a user's config error as one line before anything is built.
"""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch

from hseg_mm.datasets.synthetic_people import make_synthetic_people
from hseg_mm.hierarchy import ClassHierarchy
from tool_helpers import demo_options, free_port

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'demo_cpu.py')
TREE = 'pascal_person_part'  # the demo's tree
# the same leaves, lower_arm moved under lower_body
MOVED = ('{"background": 0, "body": {"upper_body": {"head": 1, "torso": 2, "upper_arm": 3}, '
         '"lower_body": {"lower_arm": 4, "upper_leg": 5, "lower_leg": 6}}}')


def _options(data_root: str, iters: int) -> list:
    return demo_options(data_root, iters)


def _run(args: list, expect_rc: int = 0, timeout: int = 120) -> str:
    # PORT: torchrun's rendezvous, not the default 29500 another job may hold
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1', PYTHON=sys.executable,
               PORT=str(free_port()))
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == expect_rc, \
        f'{args}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    return proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def data_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('people'))
    make_synthetic_people(root, num_train=6, num_val=3, size=(128, 128), seed=1)  # config's size
    return root


@pytest.fixture(scope='module')
def trained(data_root, tmp_path_factory) -> str:
    """A work dir with iter_2.pth of the demo config (the person tree)."""
    work = str(tmp_path_factory.mktemp('work'))
    _run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', work,
          '--cfg-options', *_options(data_root, 2)], timeout=300)
    assert osp.isfile(osp.join(work, 'iter_2.pth'))
    return work


def test_train_checkpoint_resume_test_infer(data_root, trained, tmp_path):
    work = str(tmp_path / 'work')
    shutil.copytree(trained, work)
    py = sys.executable

    # resume from the latest checkpoint and go on to iteration 4
    log = _run([py, 'tools/train.py', CONFIG, '--work-dir', work, '--resume',
                '--cfg-options', *_options(data_root, 4)], timeout=300)
    assert 'resumed epoch: 0, iter: 2' in log
    assert osp.isfile(osp.join(work, 'iter_4.pth'))
    meta = torch.load(osp.join(work, 'iter_4.pth'))['meta']  # a weights_only load
    assert meta['iter'] == 4 and meta['hierarchy'] == ClassHierarchy(TREE).to_dict()

    log = _run([py, 'tools/test.py', CONFIG, osp.join(work, 'iter_4.pth'), '--eval', 'mIoU',
                '--work-dir', str(tmp_path / 'test'), '--out', str(tmp_path / 'out'),
                '--cfg-options', *_options(data_root, 4)], timeout=300)
    assert 'mIoU_L1' in log and 'consistency' in log
    # --out: one PNG per val image at every level
    assert [len(list((tmp_path / 'out' / f'L{k}').glob('*.png'))) for k in (1, 2, 3)] == [3] * 3
    tables = [osp.join(d, f) for d, _, files in os.walk(tmp_path / 'test') for f in files
              if f == 'per_level_table.txt']
    assert len(tables) == 1 and 'upper_body' in open(tables[0]).read()

    # mmseg's Python API on the config (its tree handed to the model) and the checkpoint
    from mmseg.apis import inference_model, init_model
    from hseg_mm.engine import load_config
    model = init_model(load_config(CONFIG, check_data=False), osp.join(work, 'iter_4.pth'),
                       device='cpu')
    image = sorted(os.listdir(osp.join(data_root, 'JPEGImages')))[0]
    result = inference_model(model, osp.join(data_root, 'JPEGImages', image))
    assert result.pred_sem_seg.data.shape == (1, 128, 128)
    assert result.pred_level_seg.data.shape == (3, 128, 128)  # every level of the tree

    out = tmp_path / 'renders'
    _run([py, 'tools/infer.py', CONFIG, osp.join(work, 'iter_4.pth'),
          osp.join(data_root, 'JPEGImages'), '--out-dir', str(out)], timeout=300)
    assert len(list(out.glob('*.png'))) == 9  # 6 train + 3 val images


def test_tta_reports_every_level(data_root, trained, tmp_path):
    # `--tta`: the config's tta_pipeline (4 scales x 2 flips) through HierarchicalSegTTAModel
    work = tmp_path / 'tta'
    log = _run([sys.executable, 'tools/test.py', CONFIG, osp.join(trained, 'iter_2.pth'),
                '--tta', '--work-dir', str(work), '--cfg-options', *_options(data_root, 2)],
               timeout=300)
    found = [osp.join(d, f) for d, _, files in os.walk(work) for f in files
             if f.endswith('.json') and osp.basename(d) == f[:-5]]
    assert len(found) == 1, found
    with open(found[0]) as f:
        metrics = json.load(f)
    for k in (1, 2, 3):  # every level of the person tree, with and without background
        assert 0 <= metrics[f'mIoU_L{k}'] <= 100 and f'mIoU_L{k}_nobg' in metrics
    assert metrics['consistency'] == 100.0  # the merged leaf scores give every level
    assert 'ECE_L3' in metrics and 'mIoU_L3' in log


def test_tta_scales_test_a_one_resize_tta_at_each_size(data_root, trained, tmp_path):
    # the PPP CPU recipes' kind of TTA (one resize, two flips) on the demo's network
    child = tmp_path / 'one_resize_tta.py'
    child.write_text(
        f'_base_ = [{CONFIG!r}]\n'
        "tta_pipeline = [dict(type='LoadImageFromFile'), dict(type='TestTimeAug', transforms=[\n"
        "    [dict(type='Resize', scale=(128, 128), keep_ratio=True)],\n"
        "    [dict(type='RandomFlip', prob=0., direction='horizontal'),\n"
        "     dict(type='RandomFlip', prob=1., direction='horizontal')],\n"
        "    [dict(type='LoadCheckedAnnotations')], [dict(type='PackSegInputs')]])]\n")
    work = tmp_path / 'tta_scales'
    _run([sys.executable, 'tools/test.py', str(child), osp.join(trained, 'iter_2.pth'),
          '--tta', '--tta-scales', '0.75', '1.5', '--work-dir', str(work),
          '--cfg-options', *_options(data_root, 2)], timeout=300)
    # the run's own config (mmengine dumps it) tested at 128 x 0.75 = 96 and x 1.5 = 192
    from mmengine.config import Config
    dumped = Config.fromfile(str(work / 'one_resize_tta.py'))
    resizes = dumped.test_dataloader.dataset.pipeline[1]['transforms'][0]
    assert [tuple(t['scale']) for t in resizes] == [(96, 96), (192, 192)]
    found = [osp.join(d, f) for d, _, files in os.walk(work) for f in files
             if f.endswith('.json') and osp.basename(d) == f[:-5]]
    with open(found[0]) as f:
        metrics = json.load(f)
    assert metrics['consistency'] == 100.0 and 'mIoU_L3_nobg' in metrics
    # a TTA that already has its sizes is not scaled again: one line, before any test
    log = _run([sys.executable, 'tools/test.py', CONFIG, osp.join(trained, 'iter_2.pth'),
                '--tta', '--tta-scales', '1', '--work-dir', str(tmp_path / 'refused')],
               expect_rc=1)
    assert 'error: tta_pipeline already tests at 4 sizes' in log


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


def test_amp_trains_in_bfloat16_on_cpu(data_root, tmp_path, monkeypatch):
    # CPU even on a CUDA machine: there --amp would take mmengine's float16 AmpOptimWrapper
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '')
    work = str(tmp_path / 'amp')
    log = _run([sys.executable, 'tools/train.py', CONFIG, '--amp', '--work-dir', work,
                '--cfg-options', *_options(data_root, 2)], timeout=300)
    assert 'CPUAmpOptimWrapper: mixed precision by bfloat16 autocast on the CPU' in log
    assert 'mIoU_L1' in log  # validation at iteration 2 ran too (float32, no autocast)
    state = torch.load(osp.join(work, 'iter_2.pth'))['state_dict']
    floats = [v for v in state.values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in floats)


def _last_line(log: str) -> str:
    return log.strip().splitlines()[-1]


def test_checkpoint_of_another_tree_is_refused(data_root, trained, tmp_path):
    (tmp_path / 'moved.json').write_text(MOVED)
    ckpt = osp.join(trained, 'iter_2.pth')
    py, other = sys.executable, [f'hierarchy={tmp_path / "moved.json"}']
    person, moved = ClassHierarchy(TREE), ClassHierarchy(str(tmp_path / 'moved.json'))
    image = osp.join(data_root, 'JPEGImages')
    commands = {
        'test.py': [py, 'tools/test.py', CONFIG, ckpt, '--work-dir', str(tmp_path / 't')],
        'infer.py': [py, 'tools/infer.py', CONFIG, ckpt, image, '--out-dir', str(tmp_path / 'i')],
        'resume': [py, 'tools/train.py', CONFIG, '--resume', ckpt,
                   '--work-dir', str(tmp_path / 'r')],
    }
    for name, args in commands.items():
        log = _run(args + ['--cfg-options', *_options(data_root, 4), *other], expect_rc=1)
        assert _last_line(log) == (
            f'error: {ckpt} was trained on another tree: checkpoint: {person.describe()}; '
            f'config: {moved.describe()} (load it anyway with --allow-other-tree, e.g. to '
            'fine-tune on a new tree)'), name
    assert not osp.exists(tmp_path / 'r' / 'iter_4.pth')  # refused before training
    # asked for, it loads (same nodes, so every weight fits) and says so
    log = _run(commands['test.py'] + ['--allow-other-tree', '--cfg-options',
                                      *_options(data_root, 4), *other], timeout=300)
    assert 'loading it anyway' in log and 'mIoU_L1' in log


def test_config_errors_are_one_line_before_anything_is_built(tmp_path):
    py = sys.executable
    cases = {
        # a data path: named by its key, before the model build (not when training starts)
        ('train_dataloader.dataset.data_root=/nowhere', 'train_dataloader.dataset.generate=None'):
            "error: train_dataloader.dataset.data_root: no such folder '/nowhere'",
        ('hierarchy=nope', ): "error: hierarchy: unknown hierarchy preset 'nope'",
        ('val_evaluator.hierarchy=pascal_part_seeds', ):
            'error: parts state different trees: hierarchy (stated in ',
    }
    for options, expected in cases.items():
        work = tmp_path / str(len(os.listdir(tmp_path)))
        log = _run([py, 'tools/train.py', CONFIG, '--work-dir', str(work), '--cfg-options',
                    *options], expect_rc=1)
        assert _last_line(log).startswith(expected), log[-2000:]
        assert 'Traceback' not in log and 'custom_imports' not in log  # no trace, no config dump
        assert not work.exists()  # nothing built, nothing written
