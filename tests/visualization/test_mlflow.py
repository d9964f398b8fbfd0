"""MLflow in one config line (configs/_base_/mlflow.py): 2 iterations of the demo trained
into a local SQLite store hold every scalar the run logged (each loss term, the per-level
metrics), the config, and the validation images as a series over the iterations."""
import glob
import json
import os.path as osp

import pytest
from mmengine.config import Config
from mmseg.registry import RUNNERS

from hseg_mm.datasets.synthetic_people import make_synthetic_people
from hseg_mm.hierarchy import build_hierarchy

mlflow = pytest.importorskip('mlflow', reason='pip install -e .[mlflow] (make setup does)')

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'configs', 'demo_cpu.py')
MLFLOW = osp.join(ROOT, 'configs', '_base_', 'mlflow.py')


def test_two_iterations_reach_the_store(tmp_path):
    data = str(tmp_path / 'people')
    make_synthetic_people(data, num_train=2, num_val=1, size=(64, 64), seed=0)
    child = tmp_path / 'child.py'
    child.write_text(f'_base_ = [{DEMO!r}, {MLFLOW!r}]\n'
                     'visualizer = dict(vis_backends={{_base_.mlflow_vis_backends}})\n')
    cfg = Config.fromfile(str(child))
    # the one line gave the visualizer all three backends
    assert [b['type'] for b in cfg.visualizer.vis_backends] == [
        'LocalVisBackend', 'TensorboardVisBackend', 'MLflowSeriesVisBackend']
    store = f'sqlite:///{tmp_path}/mlflow.db'
    cfg.visualizer.vis_backends[2].update(tracking_uri=store,
                                          artifact_location=str(tmp_path / 'artifacts'))
    cfg.visualizer.name = f'visualizer_{tmp_path.name}'  # one Visualizer per name per process
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.update(data_root=data, generate=None)
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg.update(max_iters=2, val_interval=2)
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(tmp_path / 'work')
    RUNNERS.build(cfg).train()

    client = mlflow.tracking.MlflowClient(tracking_uri=store)
    (run,) = client.search_runs([client.get_experiment_by_name('hseg_mm').experiment_id])
    assert run.info.status == 'FINISHED'
    # every scalar the local backend wrote (2 training lines, 1 validation line), at its
    # step and value, is an MLflow metric
    (local,) = glob.glob(osp.join(cfg.work_dir, '*', 'vis_data', 'scalars.json'))
    lines = [json.loads(line) for line in open(local)]
    assert len(lines) == 3
    for line in lines:
        step = line.pop('step')
        for key, value in line.items():
            # (`time` and `data_time` are logged by training and validation at one step)
            history = client.get_metric_history(run.info.run_id, key)
            assert any(m.step == step and m.value == pytest.approx(value)
                       for m in history), key
    names = set(run.data.metrics)
    # the demo's four loss terms and the metric of every level of its tree (3: person tree)
    assert {'decode.loss_focal_tree_min', 'decode.loss_hier_ce', 'decode.loss_rmi',
            'decode.loss_tree_triplet', 'loss', 'lr'} <= names
    for level in range(1, build_hierarchy(cfg.hierarchy).num_levels + 1):
        assert {f'mIoU_L{level}', f'mIoU_L{level}_nobg', f'ECE_L{level}'} <= names
    # the config: each key a parameter, the text an artifact
    assert run.data.params['train_cfg.max_iters'] == '2'
    assert run.data.params['model.decode_head.inference'] == cfg.model.decode_head.inference
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert 'config.py' in top
    # the first validation image, a series whose step is the iteration
    images = [a.path for a in client.list_artifacts(run.info.run_id, 'images')]
    assert any(p.startswith('images/val_levels_0+step+2+') and p.endswith('.png')
               for p in images), images
