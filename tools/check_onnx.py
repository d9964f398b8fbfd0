"""Check an ONNX file from tools/export_onnx.py against the PyTorch model, and time both.

    python tools/check_onnx.py CONFIG CHECKPOINT MODEL.onnx [--images DIR_OR_GLOB ...]
        [--threads N] [--rounds 3] [--tol 1e-4] [--json OUT.json] [--cfg-options k=v ...]

The images are `--images` (files, folders, quoted globs), else the config's validation
split. Each is read as the test pipeline's LoadImageFromFile reads it and goes, at its own
size and batch 1, to the segmentor's `test_step` in torch (data preprocessor, whole
inference, `pred_level_seg`) and to the ONNX graph in onnxruntime (CPU). Then each engine
runs alone over all images, timed, with the same number of threads, in `--rounds`
alternating rounds (the best counts). Prints, per level, the pixels whose class differs,
the largest absolute leaf-score difference and both engines' images/s with the machine
named; exits 1 if a pixel differs or the score difference exceeds --tol.
"""
import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from math import inf
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))  # export_onnx, infer beside it
from export_onnx import INPUT_NAME, OUTPUT_NAMES, load_segmentor  # noqa: E402
from infer import collect_images  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402

from hseg_mm.engine import ConfigError  # noqa: E402
from hseg_mm.engine.launch import load_config, run_tool  # noqa: E402


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('onnx', help='the .onnx file written by tools/export_onnx.py')
    parser.add_argument('--images', nargs='+', metavar='DIR_OR_GLOB',
                        help='images, folders or quoted globs (default: the config\'s '
                        'validation split)')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads(),
                        help='threads for both torch and onnxruntime (default: torch\'s)')
    parser.add_argument('--rounds', type=int, default=3,
                        help='timed passes of each engine over the images; the best counts')
    parser.add_argument('--tol', type=float, default=1e-4,
                        help='largest allowed absolute leaf-score difference')
    parser.add_argument('--json', help='also write the figures to this JSON file')
    parser.add_argument('--allow-other-tree', action='store_true',
                        help='use a checkpoint trained on another class tree anyway')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    args = parser.parse_args(argv)
    for name in ('threads', 'rounds'):
        if getattr(args, name) < 1:
            parser.error(f'--{name} {getattr(args, name)}: must be at least 1')
    return args


def machine() -> str:
    """E.g. 'Intel(R) Xeon(R) CPU @ 2.20GHz, 2 cores, torch 2.13.0+cpu, onnxruntime 1.32.0'."""
    import onnxruntime as ort
    name = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            name = next(line.split(':', 1)[1].strip() for line in f
                        if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    return f'{name}, {cores} cores, torch {torch.__version__}, onnxruntime {ort.__version__}'


def validation_images(cfg: Config) -> List[str]:
    """Image paths of the config's validation dataset."""
    from mmseg.registry import DATASETS
    dataset_cfg = cfg.get('val_dataloader', {}).get('dataset')
    if dataset_cfg is None:
        raise ConfigError('val_dataloader.dataset: not in the config; pass --images')
    dataset = DATASETS.build(dataset_cfg)
    return [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]


def open_session(path: str, threads: int):
    import onnxruntime as ort
    if not os.path.isfile(path):
        raise ConfigError(f'ONNX file not found: {path}')
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle onnxruntime threads spin by default and starve torch's threads on a small
    # shared CPU (torch 15x slower here with both engines in one process); off, as
    # torch's threads sleep too.
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if inputs != [INPUT_NAME] or outputs != list(OUTPUT_NAMES):
        raise ConfigError(f'{path}: inputs {inputs}, outputs {outputs}; expected '
                          f'[{INPUT_NAME!r}] and {list(OUTPUT_NAMES)} (tools/export_onnx.py)')
    return session


class Inputs:
    """One image as both engines take it: read as the test pipeline reads it."""

    def __init__(self, cfg: Config, session, onnx_path: str) -> None:
        from mmcv.transforms import Compose
        pipeline = cfg.get('test_pipeline') or []
        load = next((dict(t) for t in pipeline if 'LoadImage' in str(t.get('type'))),
                    dict(type='LoadImageFromFile'))
        self.load = Compose([load, dict(type='PackSegInputs')])
        # a size the graph was exported for, per axis (None: dynamic)
        self.fixed = [d if isinstance(d, int) else None for d in session.get_inputs()[0].shape[2:]]
        self.onnx_path = onnx_path

    def __call__(self, path: str) -> Tuple[dict, np.ndarray]:
        """The torch batch (mmseg's test_step input) and the ONNX input, (1, 3, H, W)
        float32 BGR 0-255, of the image at `path`."""
        data = self.load(dict(img_path=path))
        image = data['inputs'][None].numpy().astype(np.float32)
        h, w = image.shape[2:]
        if any(f is not None and f != s for f, s in zip(self.fixed, (h, w))):
            raise ConfigError(f'{path} is {h}x{w}; {self.onnx_path} was exported for '
                              f'{self.fixed[0]}x{self.fixed[1]} only (export without --shape '
                              'for any size)')
        return dict(inputs=[data['inputs']], data_samples=[data['data_samples']]), image


def run_torch(model, batch: dict):
    """The segmentor's test_step: one SegDataSample with seg_logits and pred_level_seg."""
    with torch.no_grad():
        return model.test_step(batch)[0]


def run_onnx(session, image: np.ndarray) -> List[np.ndarray]:
    """Leaf scores (N, L, H, W) and level labels (N, D, H, W) from onnxruntime."""
    return session.run(list(OUTPUT_NAMES), {INPUT_NAME: image})


def compare(model, session, paths: Sequence[str], inputs: Inputs) -> Dict:
    """Both engines on every image: differing pixels per level, score differences."""
    differing = np.zeros(model.hierarchy.num_levels, dtype=np.int64)
    pixels, max_diff, max_gap, sizes = 0, 0.0, 0.0, set()
    for path in paths:
        batch, image = inputs(path)
        sample = run_torch(model, batch)
        leaf, levels = run_onnx(session, image)
        torch_leaf = sample.seg_logits.data.numpy()  # (L, H, W)
        torch_levels = sample.pred_level_seg.data.numpy()  # (D, H, W)
        if leaf.shape[1:] != torch_leaf.shape or levels.shape[1:] != torch_levels.shape:
            raise ConfigError(f'{path}: onnxruntime gave {leaf.shape[1:]} / {levels.shape[1:]}, '
                              f'torch {torch_leaf.shape} / {torch_levels.shape}')
        differing += (levels[0] != torch_levels).reshape(len(differing), -1).sum(axis=1)
        max_diff = max(max_diff, float(np.abs(leaf[0] - torch_leaf).max()))
        # where the leaf argmax differs: how much higher torch scores its leaf than onnx's
        mine, theirs = torch_leaf.argmax(0), leaf[0].argmax(0)
        if (mine != theirs).any():
            gap = (np.take_along_axis(torch_leaf, mine[None], 0)
                   - np.take_along_axis(torch_leaf, theirs[None], 0))[0][mine != theirs]
            max_gap = max(max_gap, float(gap.max()))
        pixels += image.shape[2] * image.shape[3]
        sizes.add(f'{image.shape[2]}x{image.shape[3]}')
    return dict(images=len(paths), sizes=sorted(sizes), pixels_per_level=pixels,
                differing_pixels=differing.tolist(), max_abs_score_diff=max_diff,
                max_tie_gap=max_gap)


def images_per_second(model, session, paths: Sequence[str], inputs: Inputs,
                      rounds: int) -> Dict[str, float]:
    """Each engine alone over every image (reading an image is not timed), in
    alternating rounds; the best round counts, as timeit's, since other processes on
    a shared machine only ever slow a round down."""
    seconds = dict(torch=inf, onnxruntime=inf)
    for _ in range(rounds):
        for engine in seconds:
            total = 0.0
            for path in paths:
                batch, image = inputs(path)
                start = time.perf_counter()
                if engine == 'torch':
                    run_torch(model, batch)
                else:
                    run_onnx(session, image)
                total += time.perf_counter() - start
            seconds[engine] = min(seconds[engine], total)
    return {engine: len(paths) / total for engine, total in seconds.items()}


def check(args: argparse.Namespace) -> Dict:
    """Compare, then time, both engines on every image; the figures as a dict."""
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    torch.set_num_threads(args.threads)
    model = load_segmentor(args.config, args.checkpoint, args.cfg_options,
                           args.allow_other_tree)
    session = open_session(args.onnx, args.threads)
    exported_tree = session.get_modelmeta().custom_metadata_map.get('hierarchy')
    if exported_tree is not None and json.loads(exported_tree) != model.hierarchy.to_dict():
        raise ConfigError(f'{args.onnx} was exported with another tree than {args.config}\'s: '
                          f'{exported_tree}')
    if args.images:
        paths = sorted({str(p) for spec in args.images for p in collect_images(spec)})
    else:
        paths = validation_images(load_config(args.config, args.cfg_options, check_data=True))
    if not paths:
        raise ConfigError('no images to check')
    inputs = Inputs(model.cfg, session, args.onnx)

    figures = dict(onnx=args.onnx, config=args.config, checkpoint=args.checkpoint,
                   **compare(model, session, paths, inputs), tol=args.tol,
                   threads=args.threads, rounds=args.rounds, machine=machine())
    figures['images_per_s'] = images_per_second(model, session, paths, inputs, args.rounds)
    figures['ok'] = not any(figures['differing_pixels']) and \
        figures['max_abs_score_diff'] <= args.tol
    return figures


def report(figures: Dict) -> str:
    speed = figures['images_per_s']
    lines = [f'{figures["images"]} images ({", ".join(figures["sizes"])}), batch 1',
             'level  differing pixels (of {:,})'.format(figures['pixels_per_level'])]
    lines += [f'L{k + 1:<5d}{n:,}' for k, n in enumerate(figures['differing_pixels'])]
    lines += [f'max |leaf score difference|: {figures["max_abs_score_diff"]:.2e} '
              f'(tolerance {figures["tol"]:.0e})',
              f'images/s (best of {figures["rounds"]} rounds), {figures["threads"]} thread(s), '
              f'{figures["machine"]}:',
              f'  onnxruntime {speed["onnxruntime"]:.1f}, torch {speed["torch"]:.1f} '
              f'(onnxruntime / torch = {speed["onnxruntime"] / speed["torch"]:.2f}x)',
              'OK: same predictions at every level, scores within the tolerance'
              if figures['ok'] else
              f'FAILED: {sum(figures["differing_pixels"]):,} level pixels differ, largest score '
              f'difference {figures["max_abs_score_diff"]:.2e} (tolerance {figures["tol"]:.0e})']
    if figures['max_tie_gap'] > 0:
        lines.insert(-1, 'where the leaf differs, torch scores its leaf at most '
                     f'{figures["max_tie_gap"]:.2e} above onnxruntime\'s (a near tie if that '
                     'is within the score difference)')
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = parse_args(argv)
    figures = check(args)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(figures, f, indent=2)
    print(report(figures))  # last, so that FAILED is the last line
    if not figures['ok']:
        raise SystemExit(1)
    return figures


if __name__ == '__main__':
    run_tool(main)
