"""Validation images with the ground truth and several models' predictions, every level.

    python tools/analysis/compare_predictions.py \\
        NAME=CONFIG:CHECKPOINT NAME=CONFIG:CHECKPOINT [...] --out compare.png \\
        [--indices 0 5 9 | --num-images 4] [--width 1000] [--cfg-options k=v ...]

Images and ground truth come from the first config's test dataset (its pipeline, its
label mapping, `--cfg-options` applied to every config, e.g. the split); each model
predicts them through mmseg's `test_step` (whole image, its own inference rule), as
tools/test.py does without `--tta`. One panel per image: `GT` then one row per model,
each `input | L1 | ... | LD`, and one legend at the bottom. All models must share the
first config's tree.
"""
import argparse
import copy
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import hseg_mm  # noqa: F401,E402  (shims and registration before mmseg.models)
import mmcv  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402

from hseg_mm.engine import apply_hierarchy  # noqa: E402
from hseg_mm.engine.launch import run_tool, skip_pretrained  # noqa: E402
from hseg_mm.structures import sample_level_labels  # noqa: E402
from hseg_mm.visualization import render_level_panel  # noqa: E402


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('models', nargs='+', help='NAME=CONFIG:CHECKPOINT, one per model')
    parser.add_argument('--out', default='work_dirs/compare_predictions.png')
    parser.add_argument('--indices', type=int, nargs='+',
                        help='dataset indices of the images (default: evenly spaced)')
    parser.add_argument('--num-images', type=int, default=4)
    parser.add_argument('--width', type=int,
                        help='scale the picture to this many pixels wide (default: as drawn)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='key=value options given to every config')
    return parser.parse_args(argv)


def split_model(spec: str) -> Tuple[str, str, str]:
    name, sep, rest = spec.partition('=')
    config, sep2, checkpoint = rest.rpartition(':')
    if not (sep and sep2 and name and config and checkpoint):
        raise SystemExit(f'error: {spec!r}: expected NAME=CONFIG:CHECKPOINT')
    for path in (config, checkpoint):
        if not osp.isfile(path):
            raise SystemExit(f'error: {spec!r}: no such file {path}')
    return name, config, checkpoint


def load_cfg(path: str, options: Dict):
    """The config with the options merged and its tree handed to its parts, and the tree."""
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(options)
    return cfg, apply_hierarchy(cfg, check_paths=False)


def build_model(cfg: Config, checkpoint: str):
    from mmseg.apis import init_model
    cfg = copy.deepcopy(cfg)
    skip_pretrained(cfg)  # every weight comes from the checkpoint
    return init_model(cfg, checkpoint, device='cpu')


def main(argv: Optional[Sequence[str]] = None) -> str:
    args = parse_args(argv)
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    models = [split_model(m) for m in args.models]
    loaded = [load_cfg(config, args.cfg_options) for _, config, _ in models]
    cfgs = [cfg for cfg, _ in loaded]
    dataset = DATASETS.build(cfgs[0].test_dataloader.dataset)
    tree = dataset.hierarchy
    for (name, config, _), (_, model_tree) in zip(models, loaded):
        if not model_tree.same_tree(tree):
            raise SystemExit(f'error: {name} ({config}) has another tree than {models[0][1]}')
    indices = args.indices or np.linspace(0, len(dataset) - 1, args.num_images).round() \
        .astype(int).tolist()
    nets = [build_model(cfg, ckpt) for cfg, (_, _, ckpt) in zip(cfgs, models)]

    panels: List[np.ndarray] = []
    for n, index in enumerate(indices):
        data = dataset[index]
        batch = dict(inputs=[data['inputs']], data_samples=[data['data_samples']])
        preds = {}
        gt = None
        for (name, _, _), net in zip(models, nets):
            with torch.no_grad():
                result = net.test_step(copy.deepcopy(batch))[0]
            gt, preds[name] = sample_level_labels(result, tree)
        image = mmcv.imread(data['data_samples'].img_path, channel_order='rgb')
        panels.append(render_level_panel(image, tree, gt_levels=gt, pred_levels=preds,
                                         legend=n == len(indices) - 1))
    width = max(p.shape[1] for p in panels)
    canvas = np.concatenate([np.pad(p, ((0, 8), (0, width - p.shape[1]), (0, 0)),
                                    constant_values=255) for p in panels])
    if args.width:
        canvas = mmcv.imrescale(canvas, args.width / canvas.shape[1], interpolation='area')
    mmcv.imwrite(mmcv.rgb2bgr(canvas), args.out)
    print(f'{len(indices)} images ({", ".join(map(str, indices))}) written to {args.out}')
    return args.out


if __name__ == '__main__':
    run_tool(main)
