"""Time forward + backward of the hierarchical losses on CPU (or another device).

Default case (issue 4): FocalTreeMinLoss + TreeTripletLoss at batch 4, the
PASCAL-Person-Part tree (|V| = 10 node channels), node logits and labels at
120 x 120, a 256-d embedding at 120 x 120: a 480 x 480 crop seen by a head at
1/4 resolution (DeepLabV3+ decoder, HSSN's projection branch). mmseg upsamples
the logits to the label size before the loss, so `--label-size 480` times what
a training step really computes (the embedding stays at 1/4).

    PYTHONPATH=. python tools/benchmark_losses.py [--threads 2] [--label-size 480]
    PYTHONPATH=. python tools/benchmark_losses.py --model-config CONFIG [--crop 480]

With `--model-config`, the model of an mmseg config is built and one full
`train_step` (data preprocessor, forward, losses, backward, optimiser step) is
timed on random images of the crop size, and the losses' share of it printed.
"""
import argparse
import os
import statistics
import sys
import time
from typing import Callable, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import hseg_mm  # noqa: F401,E402  (shims before mmseg.models)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from hseg_mm.engine import apply_hierarchy  # noqa: E402
from hseg_mm.hierarchy import build_hierarchy  # noqa: E402
from hseg_mm.utils import describe_machine  # noqa: E402
from hseg_mm.models.losses import (FocalTreeMinLoss, HierarchicalCrossEntropyLoss,  # noqa: E402
                                   TreeTripletLoss)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--hierarchy', default='pascal_person_part', help='preset name')
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--label-size', type=int, default=None,
                        help='side of the node logits and labels the loss sees (default 120; '
                        'with --model-config the crop, as mmseg resizes logits to the labels)')
    parser.add_argument('--embed-size', type=int, default=None,
                        help='side of the projection embedding (default 120; with '
                        '--model-config a quarter of the crop)')
    parser.add_argument('--embed-dim', type=int, default=256)
    parser.add_argument('--max-samples-per-class', type=int, default=200)
    parser.add_argument('--threads', type=int, default=2,
                        help='torch.set_num_threads; on a machine shared with other jobs, 1 '
                        'gives stable timings (2 threads on 2 busy cores wait on each other)')
    parser.add_argument('--repeats', type=int, default=7, help='timed runs (median reported)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--model-config', help='also time one train_step of this config')
    parser.add_argument('--crop', type=int, default=None,
                        help='image side for --model-config (default: the config\'s crop_size)')
    return parser.parse_args()


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def median_time(fn: Callable[[], None], repeats: int, device: torch.device) -> List[float]:
    fn()  # warm-up (allocations, lazy init)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def describe(times: List[float]) -> str:
    return (f'median {statistics.median(times) * 1e3:8.1f} ms  '
            f'(min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}, n={len(times)})')


def time_losses(args: argparse.Namespace, device: torch.device) -> float:
    hierarchy = build_hierarchy(args.hierarchy)
    n, s, e = args.batch, args.label_size, args.embed_size
    logits = torch.randn(n, hierarchy.num_nodes, s, s, device=device, requires_grad=True)
    label = torch.randint(0, hierarchy.num_leaves, (n, s, s), device=device)
    label[:, :, -s // 10:] = hierarchy.ignore_index  # some padding, as after a crop
    # the head L2-normalises the embedding; that is the head's cost, not timed here
    embedding = F.normalize(torch.randn(n, args.embed_dim, e, e, device=device), dim=1)
    embedding.requires_grad_()
    focal = FocalTreeMinLoss(hierarchy)
    triplet = TreeTripletLoss(hierarchy, max_samples_per_class=args.max_samples_per_class)
    hier_ce = HierarchicalCrossEntropyLoss(hierarchy)

    def run(*losses) -> Callable[[], None]:
        def step() -> None:
            logits.grad = embedding.grad = None
            total = sum(loss(logits, label, embedding=embedding) for loss in losses)
            total.backward()
        return step

    print(f'losses at batch {n}, |V| = {hierarchy.num_nodes}, logits/labels {s}x{s}, '
          f'embedding {args.embed_dim}x{e}x{e}, forward + backward:')
    results = {}
    for name, losses in (('FocalTreeMinLoss', (focal, )), ('TreeTripletLoss', (triplet, )),
                         ('HierarchicalCrossEntropyLoss', (hier_ce, )),
                         ('FocalTreeMinLoss + TreeTripletLoss', (focal, triplet))):
        times = median_time(run(*losses), args.repeats, device)
        results[name] = statistics.median(times)
        print(f'  {name:38s} {describe(times)}')
    return results['FocalTreeMinLoss + TreeTripletLoss']


def time_train_step(args: argparse.Namespace, device: torch.device) -> float:
    """Median time of one `train_step` of the config's model on random data."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(args.model_config)
    apply_hierarchy(cfg, check_paths=False)  # the config's tree into its model; no data read
    crop = args.crop
    model_cfg = cfg.model
    model_cfg.pop('pretrained', None)
    backbone_init = model_cfg.get('backbone', {}).get('init_cfg')
    if backbone_init and backbone_init.get('type') == 'Pretrained':
        model_cfg.backbone.init_cfg = None  # timing needs no weights, and none are here
    if 'data_preprocessor' in model_cfg:
        model_cfg.data_preprocessor.size = (crop, crop)
    model = MODELS.build(model_cfg).to(device)
    model.train()  # random init is enough for timing: no init_weights (and no log spam)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    num_classes = build_hierarchy(args.hierarchy).num_leaves

    def batch() -> dict:
        inputs, samples = [], []
        for _ in range(args.batch):
            inputs.append(torch.randint(0, 256, (3, crop, crop), dtype=torch.uint8))
            sample = SegDataSample()
            sample.gt_sem_seg = PixelData(
                data=torch.randint(0, num_classes, (1, crop, crop), dtype=torch.long))
            sample.set_metainfo(dict(img_shape=(crop, crop), ori_shape=(crop, crop),
                                     pad_shape=(crop, crop)))
            samples.append(sample)
        return dict(inputs=inputs, data_samples=samples)

    data = batch()
    times = median_time(lambda: model.train_step(data, optim_wrapper), args.repeats, device)
    print(f'train_step of {args.model_config} at batch {args.batch}, {crop}x{crop}: '
          f'{describe(times)}')
    return statistics.median(times)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f'machine: {describe_machine(device)}')
    crop = None
    if args.model_config:
        from mmengine.config import Config
        cfg = Config.fromfile(args.model_config)
        crop = args.crop = args.crop or (cfg.get('crop_size') or (512, 512))[0]
    args.label_size = args.label_size or crop or 120
    args.embed_size = args.embed_size or (crop // 4 if crop else 120)
    loss_time = time_losses(args, device)
    if args.model_config:
        step_time = time_train_step(args, device)
        print(f'FocalTreeMinLoss + TreeTripletLoss = {100 * loss_time / step_time:.1f}% '
              f'of a training step (target < 5%)')


if __name__ == '__main__':
    main()
