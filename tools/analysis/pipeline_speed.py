"""What the data pipeline and the metric cost per image, against mmseg's plain ones.

    python tools/analysis/pipeline_speed.py [CONFIG] [--num-images 100] [--rounds 3]
        [--metric-shapes 480 480 1024 2048] [--metric-repeats 5] [--model-config CONFIG]
        [--threads 2] [--cfg-options k=v ...]

Two measurements, on one process (one loader worker) of this machine:

1. The training pipeline of CONFIG (default the real PASCAL-Person-Part recipe) on the
   first `--num-images` items of its training set, real files: each transform's time per
   image, and images/s of the whole pipeline, against mmseg's plain pipeline on the same
   items: the same transforms with mmcv's `LoadImageFromFile` for the checked image loader
   and, for the label, mmseg's `LoadAnnotations` (PNG labels, layout ids mapped by mmseg's
   `label_map`) or, for `.npy` labels (which mmseg cannot read), `np.load` and the same
   id table, with no check. The two pipelines run item by item in turn, in an order that
   flips every round, from the same random state, so both crop the same windows and a
   machine whose speed drifts slows both alike. Reported: the checked/plain throughput
   ratio (target at least 0.9).
2. The evaluation per image: `HierarchicalIoUMetric.process` (confusion of every level,
   consistency, and the ECE of every level from the leaf scores) on random predictions of
   the shapes `--metric-shapes` (by default 480x480 on the person tree and Cityscapes'
   1024x2048 on its tree), beside the same metric without ECE (`ece_bins=0`) and mmseg's
   `IoUMetric` on the leaf map, and beside the whole-image `test_step` of
   `--model-config` (default the PASCAL-Person-Part recipe's network, random weights) at
   that shape: the metric's share of testing an image.

Nothing is trained. Times are medians; ratios come from the one run.
"""
import argparse
import copy
import os
import os.path as osp
import random
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import hseg_mm  # noqa: F401,E402  (shims and registration before mmseg.models)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

from hseg_mm.engine.launch import load_config  # noqa: E402
from hseg_mm.utils import describe_machine, keep_freed_memory  # noqa: E402

DEFAULT_CONFIG = 'configs/ppp_cpu/hssn_lite2-fpn_ppp-320_cpu.py'
# (tree, height, width) of each metric measurement unless --metric-shapes says otherwise
METRIC_CASES = (('pascal_person_part', 480, 480), ('cityscapes', 1024, 2048))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG)
    parser.add_argument('--num-images', type=int, default=100, help='training items timed')
    parser.add_argument('--rounds', type=int, default=3, help='passes over the items')
    parser.add_argument('--metric-shapes', type=int, nargs='+', metavar='H W',
                        help='H W pairs; the first on the person tree, the rest on '
                        "Cityscapes' (default 480 480 1024 2048)")
    parser.add_argument('--metric-repeats', type=int, default=5)
    parser.add_argument('--model-config', default=DEFAULT_CONFIG,
                        help="network whose test_step the metric is compared with ('' skips)")
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--skip-pipeline', action='store_true')
    parser.add_argument('--skip-metric', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    return parser.parse_args(argv)


# ------------------------------------------------------------------------ the pipeline
class PlainNpyLabels:
    """`.npy` label -> tree ids by the dataset's table, unchecked: what a plain loader does."""

    def __call__(self, results: dict) -> dict:
        raw = np.load(results['seg_map_path'])
        table = np.asarray(results['layout_to_tree'], dtype=np.int64)
        lut = np.full(256, results.get('ignore_index', 255), dtype=np.uint8)
        lut[:len(table)] = table.clip(0)
        results['gt_seg_map'] = lut[raw]
        results['seg_fields'].append('gt_seg_map')
        return results

    def __repr__(self) -> str:
        return 'np.load + id table (plain)'


def plain_label_map(table: Sequence[int]) -> Dict[int, int]:
    """mmseg's `label_map` (layout id -> tree id) for the ids the table changes."""
    return {i: int(t) for i, t in enumerate(table) if t >= 0 and t != i}


def build_pipelines(cfg) -> Tuple[List, List]:
    """(checked, plain) lists of transform objects for CONFIG's training pipeline."""
    from mmcv.transforms import LoadImageFromFile
    from mmseg.datasets.transforms import LoadAnnotations
    from mmseg.registry import TRANSFORMS
    steps = cfg.train_dataloader.dataset.pipeline
    checked, plain = [], []
    for step in steps:
        kind = step['type']
        checked.append(TRANSFORMS.build(copy.deepcopy(step)))
        if kind == 'LoadCheckedImageFromFile':
            plain.append(LoadImageFromFile())
        elif kind == 'LoadNpyAnnotations':
            plain.append(PlainNpyLabels())
        elif kind == 'LoadCheckedAnnotations':
            plain.append(LoadAnnotations())
        else:
            plain.append(TRANSFORMS.build(copy.deepcopy(step)))
    return checked, plain


def run_timed(transforms: List, info: dict, totals: List[float]) -> None:
    """Apply `transforms` to a copy of `info`, adding each one's seconds to `totals`."""
    results = copy.deepcopy(info)
    for k, transform in enumerate(transforms):
        start = time.perf_counter()
        results = transform(results)
        totals[k] += time.perf_counter() - start


def time_pipelines(cfg, num_images: int, rounds: int,
                   seed: int) -> Tuple[Dict[str, List[float]], Dict[str, List], int]:
    """({'checked': [seconds per image of each transform], 'plain': [...]}, the two
    lists of transforms, the number of items timed)."""
    from mmseg.registry import DATASETS
    dataset_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    dataset_cfg.pipeline = []
    dataset = DATASETS.build(dataset_cfg)
    count = min(num_images, len(dataset))
    infos = [dataset.get_data_info(i) for i in range(count)]
    checked, plain = build_pipelines(cfg)
    for info in infos:  # mmseg's LoadAnnotations reads the mapping from the item
        info['label_map'] = plain_label_map(info['layout_to_tree'])
    pipelines = {'checked': checked, 'plain': plain}
    totals = {name: [0.0] * len(steps) for name, steps in pipelines.items()}
    for name, steps in pipelines.items():  # warm-up: file cache, lazy imports
        run_timed(steps, infos[0], [0.0] * len(steps))
    for r in range(rounds):
        for i, info in enumerate(infos):
            order = ['checked', 'plain'] if (r + i) % 2 == 0 else ['plain', 'checked']
            for name in order:  # the same random state: the same scale, crop and flip
                random.seed(seed + 1000 * r + i)
                np.random.seed(seed + 1000 * r + i)
                run_timed(pipelines[name], info, totals[name])
    per_image = rounds * count
    times = {name: [t / per_image for t in steps] for name, steps in totals.items()}
    return times, pipelines, count


def pipeline_table(times: Dict[str, List[float]], pipelines: Dict[str, List]) -> str:
    rows = ['| transform (checked / plain) | checked ms/image | plain ms/image |',
            '|---|---|---|']
    for k, (a, b) in enumerate(zip(pipelines['checked'], pipelines['plain'])):
        name_a, name_b = type(a).__name__, (repr(b) if isinstance(b, PlainNpyLabels)
                                            else type(b).__name__)
        name = name_a if name_a == name_b else f'{name_a} / {name_b}'
        rows.append(f'| {name} | {1e3 * times["checked"][k]:.2f} | '
                    f'{1e3 * times["plain"][k]:.2f} |')
    total = {name: sum(steps) for name, steps in times.items()}
    rows.append(f'| **whole pipeline** | **{1e3 * total["checked"]:.2f}** | '
                f'**{1e3 * total["plain"]:.2f}** |')
    rows.append(f'| images/s per worker | {1 / total["checked"]:.1f} | '
                f'{1 / total["plain"]:.1f} |')
    return '\n'.join(rows)


# -------------------------------------------------------------------------- the metric
def fake_sample(tree, height: int, width: int, generator: torch.Generator) -> dict:
    """A test output as the segmentor makes it: leaf probabilities, leaf and level maps,
    and a ground truth that agrees with the prediction on about 80 % of the pixels."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    logits = torch.randn(tree.num_leaves, height, width, generator=generator)
    probs = logits.softmax(0)
    pred = probs.argmax(0)
    flip = torch.rand(height, width, generator=generator) < 0.2
    gt = torch.where(flip, torch.randint(0, tree.num_leaves, (height, width),
                                         generator=generator), pred)
    levels = torch.from_numpy(tree.level_luts()).long()[:, pred]  # (D, H, W)
    sample = SegDataSample(gt_sem_seg=PixelData(data=gt[None]),
                           pred_sem_seg=PixelData(data=pred[None]),
                           seg_logits=PixelData(data=probs))
    sample.pred_level_seg = PixelData(data=levels)
    sample.set_metainfo(dict(inference_rule='flat'))
    return sample.to_dict()


def median_seconds(fn: Callable[[], None], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_metric(tree_name: str, height: int, width: int, repeats: int,
                model_config: Optional[str], seed: int) -> Dict[str, float]:
    """Median seconds per image of each metric (and of the model's test_step)."""
    from mmseg.evaluation import IoUMetric
    from hseg_mm.evaluation import HierarchicalIoUMetric
    from hseg_mm.hierarchy import build_hierarchy
    tree = build_hierarchy(tree_name)
    sample = fake_sample(tree, height, width, torch.Generator().manual_seed(seed))
    metrics = {'HierarchicalIoUMetric (ECE)': HierarchicalIoUMetric(hierarchy=tree),
               'HierarchicalIoUMetric, no ECE': HierarchicalIoUMetric(hierarchy=tree,
                                                                      ece_bins=0),
               "mmseg's IoUMetric (leaves)": IoUMetric()}
    metrics["mmseg's IoUMetric (leaves)"].dataset_meta = dict(classes=tree.leaf_names)
    out = {}
    for name, metric in metrics.items():
        def step(metric=metric):
            metric.results.clear()
            metric.process({}, [sample])
        out[name] = median_seconds(step, repeats)
    if model_config:
        out['model test_step'] = time_test_step(model_config, tree_name, height, width,
                                                repeats)
    return out


def time_test_step(config: str, tree_name: str, height: int, width: int,
                   repeats: int) -> float:
    """Median seconds of one whole-image test_step of CONFIG's network (random weights,
    its head rebuilt for `tree_name`) on an image of that size."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'benchmark', osp.join(osp.dirname(osp.abspath(__file__)), 'benchmark.py'))
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    cfg = benchmark.model_config(config, {'hierarchy': tree_name})
    model, _ = benchmark.build(cfg, (height, width), torch.device('cpu'), 'float32')
    model.eval()
    tree = model.hierarchy
    data = benchmark.make_batch(1, (height, width), tree.num_leaves, tree.ignore_index,
                                torch.Generator().manual_seed(0))
    with torch.no_grad():
        return median_seconds(lambda: model.test_step(data), max(1, repeats // 2))


def metric_table(results: List[Tuple[str, int, int, Dict[str, float]]]) -> str:
    names = list(results[0][3])
    rows = ['| measured per image | ' + ' | '.join(
        f'{tree} {h}x{w}' for tree, h, w, _ in results) + ' |',
        '|---|' + '---|' * len(results)]
    for name in names:
        rows.append(f'| {name} | ' + ' | '.join(f'{1e3 * r[name]:.2f} ms'
                                                 for *_, r in results) + ' |')
    if 'model test_step' in names:
        key = 'HierarchicalIoUMetric (ECE)'
        rows.append("| the metric's share of testing an image | " + ' | '.join(
            f'{100 * r[key] / (r[key] + r["model test_step"]):.1f} %'
            for *_, r in results) + ' |')
    return '\n'.join(rows)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    kept = keep_freed_memory()
    print(f'machine: {describe_machine(torch.device("cpu"))}'
          + (', glibc keeps freed memory' if kept else ''))
    if not args.skip_pipeline:
        cfg = load_config(args.config, args.cfg_options)
        times, pipelines, count = time_pipelines(cfg, args.num_images, args.rounds,
                                                 args.seed)
        total = {name: sum(steps) for name, steps in times.items()}
        print(f'\ntraining pipeline of {args.config}: {count} items x {args.rounds} rounds, '
              'one process')
        print(pipeline_table(times, pipelines))
        print(f'checked / plain throughput: {total["plain"] / total["checked"]:.3f} '
              '(target >= 0.9)')
    if not args.skip_metric:
        shapes = args.metric_shapes or [v for _, h, w in METRIC_CASES for v in (h, w)]
        if len(shapes) % 2:
            raise SystemExit('--metric-shapes takes H W pairs')
        pairs = list(zip(shapes[::2], shapes[1::2]))
        # the first pair on the first case's tree, the others on the second's
        trees = [METRIC_CASES[min(i, 1)][0] for i in range(len(pairs))]
        cases = [(tree, h, w) for tree, (h, w) in zip(trees, pairs)]
        results = [(tree, h, w, time_metric(tree, h, w, args.metric_repeats,
                                            args.model_config or None, args.seed))
                   for tree, h, w in cases]
        print(f'\nevaluation per image ({args.metric_repeats} repeats, medians; model: '
              f'{args.model_config or "none"}, random weights, whole image, float32)')
        print(metric_table(results))


if __name__ == '__main__':
    os.environ.setdefault('OMP_NUM_THREADS', '2')
    main()
