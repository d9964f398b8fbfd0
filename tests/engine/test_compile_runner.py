"""`compile=True` (mmengine's switch) through HierarchicalRunner: training compiles
`train_step` (mmengine), validation and testing `val_step` and `test_step` (ours), and a
run gives what the eager run gives. Dynamo's 'eager' backend runs the captured graphs
with eager's kernels, so the two runs must agree to float rounding; inductor's own code
is compared with eager in tests/models/test_compile.py and tools/analysis/compile_check.py."""
import os.path as osp

import pytest
import torch
import torch._dynamo
from mmengine.config import Config
from mmseg.registry import RUNNERS

from hseg_mm.datasets.synthetic_people import make_synthetic_people

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'configs', 'demo_cpu.py')


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('people'))
    make_synthetic_people(root, num_train=4, num_val=2, size=(64, 64), seed=0)
    return root


def _run(tmp_path, data: str, name: str, compile_cfg):
    cfg = Config.fromfile(DEMO)
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.update(data_root=data, generate=None)
        cfg[f'{split}_dataloader'].num_workers = 0
        cfg[f'{split}_dataloader'].persistent_workers = False
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
    cfg.work_dir = str(tmp_path / name)
    cfg.visualizer.name = f'visualizer_{tmp_path.name}_{name}'
    cfg.randomness = dict(seed=0)
    if compile_cfg is not None:
        cfg.compile = compile_cfg
    runner = RUNNERS.build(cfg)
    runner.train()
    return runner


def test_compile_true_trains_validates_and_tests_as_eager(tmp_path, data):
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled = _run(tmp_path, data, 'compiled', dict(backend='eager'))
    eager = _run(tmp_path, data, 'eager', None)

    model = compiled.model
    for step in ('train_step', 'val_step', 'test_step'):
        # torch.compile's wrapper keeps the function it compiles
        assert hasattr(getattr(model, step), '_torchdynamo_orig_callable'), step
    assert not hasattr(eager.model.test_step, '_torchdynamo_orig_callable')
    # the same losses at both steps; the weights are not compared: dynamo's traced
    # optimiser step rounds a little differently, and AdamW's first steps, about
    # lr * sign(gradient), make that a difference of up to 2 lr where a gradient is near 0
    for key in ('train/loss', 'train/decode.loss_focal_tree_min'):
        got = compiled.message_hub.get_scalar(key).data[0]
        want = eager.message_hub.get_scalar(key).data[0]
        assert len(want) == 2 and got == pytest.approx(want, rel=1e-4), key
    # testing the eager run's weights, compiled and eager: the same metrics
    eager_metrics = eager.test()
    model.load_state_dict(eager.model.state_dict())
    graphs = int(torch._dynamo.utils.counters['stats']['unique_graphs'])
    compiled_metrics = compiled.test()
    assert int(torch._dynamo.utils.counters['stats']['unique_graphs']) > graphs  # test_step's
    assert compiled_metrics.keys() == eager_metrics.keys()
    for key, value in eager_metrics.items():
        assert compiled_metrics[key] == pytest.approx(value, abs=1e-6), key
    torch._dynamo.reset()
