"""Segment images and save, per image, the input beside every level's colour mask.

    python tools/infer.py CONFIG CHECKPOINT INPUT [INPUT ...] [--out-dir DIR] [--device cpu]
        [--gt-dir DIR]

Each INPUT is an image, a folder (its images, not recursive) or a quoted glob. Works with
any mmseg model whose classes are the tree's leaves: levels come from the model's
`pred_level_seg` when it attaches one, else from its leaf prediction. The tree is the
config's top-level `hierarchy`; a checkpoint trained on another tree is refused unless
`--allow-other-tree` is given. With `--gt-dir`, an image's label map `<gt-dir>/<stem>.png`
(leaf ids, 255 ignored) is drawn as a ground-truth row above the predictions.
"""
import argparse
import copy
import glob
import sys
from pathlib import Path
from typing import List, Optional, Sequence

try:
    import hseg_mm  # noqa: F401  (before mmseg.models: installs the version shims)
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import hseg_mm  # noqa: F401

import mmcv  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmengine.utils import ProgressBar  # noqa: E402

from hseg_mm.engine import apply_hierarchy, check_checkpoint_tree  # noqa: E402
from hseg_mm.engine.launch import run_tool, skip_pretrained  # noqa: E402
from hseg_mm.structures import sample_level_labels  # noqa: E402
from hseg_mm.hierarchy import ClassHierarchy  # noqa: E402
from hseg_mm.visualization import render_level_panel  # noqa: E402

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('input', nargs='+',
                        help='images, folders of images or quoted globs')
    parser.add_argument('--out-dir', default='work_dirs/infer', help='where PNGs go')
    parser.add_argument('--device', default='cpu', help="e.g. 'cpu' or 'cuda:0'")
    parser.add_argument('--opacity', type=float, default=1.0,
                        help='weight of the masks over the image (1: masks only)')
    parser.add_argument('--gt-dir', help='folder of label maps <image stem>.png (leaf ids): '
                        'drawn beside the predictions, level by level')
    parser.add_argument('--allow-other-tree', action='store_true',
                        help='use a checkpoint trained on another class tree anyway')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args(argv)


def collect_images(spec: str) -> List[Path]:
    """The image files named by a path, a folder or a glob, sorted."""
    path = Path(spec)
    if path.is_dir():
        files = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    elif path.is_file():
        files = [path]
    elif glob.has_magic(spec):
        files = [Path(p) for p in glob.glob(spec, recursive=True)
                 if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_SUFFIXES]
    else:
        raise FileNotFoundError(f'{spec}: no such image, folder or glob')
    if not files:
        raise FileNotFoundError(f'{spec}: no images ({", ".join(IMAGE_SUFFIXES)}) found')
    return sorted(files)


def hierarchy_from_config(cfg: Config) -> ClassHierarchy:
    """The config's one tree (its top-level `hierarchy`), handed to the model."""
    return apply_hierarchy(cfg, check_paths=False)  # no dataset is read here


def inference_pipeline(cfg: Config) -> list:
    """The test pipeline without annotation loading (there is no ground truth)."""
    pipeline = cfg.get('test_pipeline')
    if pipeline is None:
        pipeline = cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline')
    if pipeline is None:
        pipeline = [dict(type='LoadImageFromFile'), dict(type='PackSegInputs')]
    return [copy.deepcopy(t) for t in pipeline if 'Annotation' not in str(t.get('type'))]


def build_model(cfg: Config, checkpoint: str, device: str):
    from mmseg.apis import init_model
    cfg = copy.deepcopy(cfg)
    # the weights come from the checkpoint: never fetch a backbone's pre-trained ones
    skip_pretrained(cfg)
    cfg.test_pipeline = inference_pipeline(cfg)
    return init_model(cfg, checkpoint, device=device)


def read_label(gt_dir: Path, image: Path) -> torch.Tensor:
    """The label map (1, H, W) long of `image` from `gt_dir/<stem>.png`, as stored."""
    path = gt_dir / f'{image.stem}.png'
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no label map for {image} (--gt-dir)')
    label = mmcv.imread(str(path), flag='unchanged', backend='pillow')  # palette indices
    if label is None or label.ndim != 2:
        raise ValueError(f'{path}: not a single-channel label map of leaf ids')
    return torch.from_numpy(label.astype('int64'))[None]


def main(argv: Optional[Sequence[str]] = None) -> List[Path]:
    """Run the tool; returns the PNGs written."""
    args = parse_args(argv)
    from mmseg.apis import inference_model

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    hierarchy = hierarchy_from_config(cfg)
    images = sorted({p for spec in args.input for p in collect_images(spec)})
    from mmengine.runner.checkpoint import CheckpointLoader
    checkpoint = CheckpointLoader.load_checkpoint(args.checkpoint, map_location='cpu')
    warning = check_checkpoint_tree(checkpoint,
                                    hierarchy, args.checkpoint, args.allow_other_tree)
    if warning:
        print(f'warning: {warning}', file=sys.stderr)
    model = build_model(cfg, args.checkpoint, args.device)

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: List[Path] = []
    used = set()
    progress = ProgressBar(len(images)) if len(images) > 1 else None
    for path in images:
        result = inference_model(model, str(path))
        logits = result.get('seg_logits', None)
        if logits is not None and logits.data.shape[0] != hierarchy.num_leaves:
            raise ValueError(
                f'{args.config}: the model predicts {logits.data.shape[0]} classes, the '
                f'hierarchy has {hierarchy.num_leaves} leaves; they must be the same')
        if args.gt_dir:
            result.gt_sem_seg = PixelData(data=read_label(Path(args.gt_dir), path))
        gt_levels, levels = sample_level_labels(result, hierarchy, need_gt=False)
        image = mmcv.imread(str(path), channel_order='rgb')
        panel = render_level_panel(image, hierarchy, gt_levels=gt_levels, pred_levels=levels,
                                   alpha=args.opacity)
        name, n = path.stem, 1
        while name in used:  # the same file name in two folders of a glob
            name, n = f'{path.stem}_{n}', n + 1
        used.add(name)
        out = out_dir / f'{name}.png'
        mmcv.imwrite(mmcv.rgb2bgr(panel), str(out))
        written.append(out)
        if progress is not None:
            progress.update()
    if progress is not None:
        print()
    print(f'{len(written)} image(s) written to {out_dir}')
    return written


if __name__ == '__main__':
    run_tool(main)
