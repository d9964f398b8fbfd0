"""mmseg's Python API on a hseg-mm checkpoint: init_model, inference_model and
MMSegInferencer (with its rendering) on configs/demo_cpu.py trained for 2 iterations
by tools/train.py; and the README's "Python API (mmseg's)" block, run as written."""
import glob
import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmseg.apis import MMSegInferencer, inference_model, init_model

from hseg_mm.datasets.synthetic_people import make_synthetic_people
from hseg_mm.engine import apply_hierarchy, load_config
from hseg_mm.hierarchy import ClassHierarchy
from hseg_mm.visualization import HierarchicalSegVisualizer, render_level_panel

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(ROOT, 'tests', 'tools'))
from tool_helpers import demo_options  # noqa: E402

SOURCE = 'configs/demo_cpu.py'
TREE = ClassHierarchy('pascal_person_part')  # the demo's: levels of 2, 3 and 7 classes
CONFIGS = sorted(osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                                                         recursive=True)
                 if '_base_' not in p.split(osp.sep))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """(dumped config, checkpoint, 3 val images as PNG) of a 2-iteration demo run."""
    root = tmp_path_factory.mktemp('api')
    data = str(root / 'people')
    make_synthetic_people(data, num_train=4, num_val=3, size=(128, 128), seed=1)
    work = str(root / 'work')
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, 'tools/train.py', SOURCE, '--work-dir', work,
                           '--cfg-options', *demo_options(data, 2, val_interval=100)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # PNG inputs, so the inferencer's renderings (named after them) are lossless
    images = []
    for path in sorted(glob.glob(osp.join(data, 'JPEGImages', 'val_*.jpg'))):
        images.append(str(root / (osp.basename(path)[:-4] + '.png')))
        cv2.imwrite(images[-1], cv2.imread(path))
    return osp.join(work, 'demo_cpu.py'), osp.join(work, 'iter_2.pth'), images


def predict(config, checkpoint: str, image):
    return inference_model(init_model(config, checkpoint, device='cpu'), image)


def check_levels(sample, shape=(128, 128)) -> None:
    """Leaf map (1, H, W), level maps (3, H, W), and the levels are the leaves' path
    in the tree (tree_min picks a path: parents are the leaf's ancestors)."""
    leaves, levels = sample.pred_sem_seg.data, sample.pred_level_seg.data
    assert leaves.shape == (1, *shape) and levels.shape == (TREE.num_levels, *shape)
    assert all(a.equal(b) for a, b in zip(TREE.split_labels(leaves[0]), levels))


def test_dumped_config_is_complete(trained):
    config, _, _ = trained
    cfg = Config.fromfile(config)
    tree = TREE.to_dict()
    assert cfg.hierarchy == tree
    # the model and the datasets have it written in: nothing is left to hseg_mm; the
    # metric and the visualiser take it from the datasets' dataset_meta
    for part in (cfg.model, cfg.train_dataloader.dataset, cfg.test_dataloader.dataset):
        assert part.hierarchy == tree, part.type
    assert 'hierarchy' not in cfg.visualizer and 'hierarchy' not in cfg.val_evaluator
    assert cfg.runner_type == 'HierarchicalRunner'
    apply_hierarchy(cfg, check_paths=False)  # fed back to the tools, it is the same tree
    assert cfg.model.hierarchy == tree


def test_init_model_and_inference_model_on_both_forms(trained):
    config, checkpoint, images = trained
    dumped = predict(config, checkpoint, images[0])
    loaded = predict(load_config(osp.join(ROOT, SOURCE), check_data=False), checkpoint,
                     images[0])
    for sample in (dumped, loaded):
        check_levels(sample)
    # the same weights and the same test pipeline: the same prediction
    assert dumped.pred_level_seg.data.equal(loaded.pred_level_seg.data)
    assert dumped.seg_logits.data.equal(loaded.seg_logits.data)
    # a batch of paths, and an image in memory (BGR, as mmcv reads it)
    batch = inference_model(init_model(config, checkpoint, device='cpu'), images[:2])
    assert len(batch) == 2 and batch[0].pred_level_seg.data.equal(dumped.pred_level_seg.data)
    array = predict(config, checkpoint, cv2.imread(images[0]))
    assert array.pred_level_seg.data.equal(dumped.pred_level_seg.data)


def test_source_config_path_takes_the_tree_from_the_checkpoint(trained, tmp_path):
    config, checkpoint, images = trained
    source = osp.join(ROOT, SOURCE)
    expected = predict(config, checkpoint, images[0])
    # the source config's model has no tree; the checkpoint's weights carry it
    model = init_model(source, checkpoint, device='cpu')
    assert model.hierarchy.same_tree(TREE)
    sample = inference_model(model, images[0])
    assert sample.seg_logits.data.equal(expected.seg_logits.data)
    assert sample.pred_level_seg.data.equal(expected.pred_level_seg.data)
    inferencer = MMSegInferencer(model=source, weights=checkpoint, device='cpu')
    out = inferencer(images[0], out_dir=str(tmp_path), return_datasamples=True)
    assert out.pred_level_seg.data.equal(expected.pred_level_seg.data)
    # its rendering names the levels by the tree the samples carry
    rgb = cv2.imread(images[0])[:, :, ::-1]
    drawn = cv2.imread(str(tmp_path / 'vis' / osp.basename(images[0])))[:, :, ::-1]
    assert np.array_equal(drawn, render_level_panel(
        rgb, TREE, pred_levels=expected.pred_level_seg.data, alpha=0.8))


def test_source_config_path_without_weights_names_the_forms_that_work(trained):
    _, _, images = trained
    message = r'no hierarchy.*checkpoint trained by hseg-mm.*work_dirs/NAME/NAME\.py' \
        r'.*load_config\(path, check_data=False\)'
    model = init_model(osp.join(ROOT, SOURCE), device='cpu')  # builds; the heads wait
    with pytest.raises(ValueError, match=message):
        inference_model(model, images[0])


@pytest.mark.parametrize('path', CONFIGS)
def test_test_pipelines_suit_mmseg_inference(path):
    # inference_model reads `test_pipeline`, MMSegInferencer the test dataset's; the
    # inferencer swaps in its loader for the transform named 'LoadImageFromFile', and both
    # keep a checked label loader (only 'LoadAnnotations' is dropped), which passes an
    # image without a label through
    cfg = Config.fromfile(osp.join(ROOT, path))
    for key, pipeline in (('test_pipeline', cfg.test_pipeline),
                          ('test_dataloader.dataset.pipeline',
                           cfg.test_dataloader.dataset.pipeline)):
        types = [t['type'] for t in pipeline]
        assert types[0] == 'LoadImageFromFile', (key, types)
        assert [t for t in types if 'Annotation' in t] in (
            ['LoadCheckedAnnotations'], ['LoadNpyAnnotations']), (key, types)


def test_the_checked_loader_passes_through_in_inference(trained):
    _, checkpoint, images = trained
    cfg = load_config(osp.join(ROOT, SOURCE), check_data=False)
    assert [t.type for t in cfg.test_pipeline if 'Annotation' in t.type] == \
        ['LoadCheckedAnnotations']
    kept = predict(cfg, checkpoint, images[0])
    cfg.test_pipeline = [t for t in cfg.test_pipeline if 'Annotation' not in t.type]
    dropped = predict(cfg, checkpoint, images[0])
    # no label is read or invented: the same prediction, and no ground truth
    assert kept.seg_logits.data.equal(dropped.seg_logits.data)
    assert 'gt_sem_seg' not in kept


def test_inferencer_renders_every_level_and_returns_samples(trained, tmp_path):
    config, checkpoint, images = trained
    expected = [predict(config, checkpoint, image) for image in images[:2]]
    inferencer = MMSegInferencer(model=config, weights=checkpoint, device='cpu')
    assert isinstance(inferencer.visualizer, HierarchicalSegVisualizer)
    out = inferencer(images[:2], out_dir=str(tmp_path), show=False)
    for image, sample, leaves in zip(images, expected, out['predictions']):
        assert np.array_equal(leaves, sample.pred_sem_seg.data[0].numpy())
        # out/vis/<name>: the input beside each level's prediction (mask at the
        # inferencer's opacity 0.8) with the legend, as the visualiser renders it
        rgb = cv2.imread(image)[:, :, ::-1]
        drawn = cv2.imread(str(tmp_path / 'vis' / osp.basename(image)))[:, :, ::-1]
        assert np.array_equal(drawn, render_level_panel(
            rgb, TREE, pred_levels=sample.pred_level_seg.data, alpha=0.8))
    # out/pred/: mmseg's leaf-id PNGs, numbered
    preds = sorted((tmp_path / 'pred').iterdir())
    assert [p.name for p in preds] == ['00000000_pred.png', '00000001_pred.png']
    assert np.array_equal(cv2.imread(str(preds[1]), cv2.IMREAD_UNCHANGED),
                          expected[1].pred_sem_seg.data[0].numpy())

    sample = inferencer(images[0], return_datasamples=True)
    check_levels(sample)
    assert sample.pred_level_seg.data.equal(expected[0].pred_level_seg.data)
    # the weights alone: the checkpoint carries its run's config
    alone = MMSegInferencer(model=None, weights=checkpoint, device='cpu')
    assert alone(images[0], return_datasamples=True).pred_level_seg.data.equal(
        expected[0].pred_level_seg.data)


def readme_block() -> str:
    with open(osp.join(ROOT, 'README.md'), encoding='utf-8') as f:
        text = f.read()
    section = text.split("\n## Python API (mmseg's)\n", 1)[1].split('\n## ', 1)[0]
    return re.search(r'```python\n(.*?)```', section, re.S).group(1)


def test_readme_snippet_runs(trained, tmp_path, monkeypatch):
    config, checkpoint, images = trained
    code = readme_block()
    # the README's paths -> this test's run; each must be there, so an edit that
    # renames one fails here instead of leaving it unchecked
    for old, new in (("'work_dirs/demo_cpu/iter_3000.pth'", repr(checkpoint)),
                     ("'work_dirs/demo_cpu/demo_cpu.py'", repr(config)),
                     ("'photo.jpg'", repr(images[0])),
                     ("out_dir='out'", f'out_dir={str(tmp_path / "out")!r}')):
        assert old in code, old
        code = code.replace(old, new)
    monkeypatch.chdir(ROOT)  # 'configs/demo_cpu.py' as written
    scope = {}
    exec(compile(code, 'README.md', 'exec'), scope)
    check_levels(scope['result'])
    assert scope['leaves'].shape == (1, 128, 128)
    assert scope['levels'].shape == (3, 128, 128)
    assert scope['names'] == [TREE.level_names(k) for k in range(3)]
    assert scope['names'][0] == ['background', 'body']
    check_levels(scope['sample'])
    assert torch.equal(scope['sample'].pred_level_seg.data, scope['levels'])
    assert (tmp_path / 'out' / 'vis' / osp.basename(images[0])).is_file()
    assert (tmp_path / 'out' / 'pred' / '00000000_pred.png').is_file()
