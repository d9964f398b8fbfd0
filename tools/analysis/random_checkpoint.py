"""Write a checkpoint of a config's model with its initial weights, no training.

    python tools/analysis/random_checkpoint.py CONFIG OUT.pth [--seed 0] [--calibrate 4]
        [--calibrate-size 128 128] [--cfg-options k=v ...]

For what needs a checkpoint but not a trained one: whether a model exports to ONNX and
whether onnxruntime reproduces it (`tools/export_onnx.py`, `tools/check_onnx.py`), speed
and memory figures. The model is built from CONFIG on the CPU with torch's seed `--seed`,
initialised by `init_weights` without pretrained weights (no download), and saved as the
Runner saves (`state_dict`, `meta` with the class tree, which the tools check), so every
weight is there. A random model's predictions mean nothing; its numerics and graph are a
trained model's.

Batch-norm statistics: at their initial values (mean 0, variance 1) a deep random network's
activations grow layer by layer (HRNet-W48's features reach 1e9), its scores saturate, and
a comparison of two engines on it says nothing (a 1e-7 relative rounding of 1e9 flips a
score; saturated scores agree exactly whatever the graph). So the statistics are first
estimated from `--calibrate` forward passes (batch 2, no gradient, dropout off) on random
images of `--calibrate-size`, as a trained model's were from its data; `--calibrate 0`
keeps the initial ones.
"""
import argparse
import os
import os.path as osp
import sys
from typing import Optional, Sequence

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import hseg_mm  # noqa: F401,E402  (shims and registration before mmseg.models)
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

from hseg_mm.engine.launch import load_config, skip_pretrained  # noqa: E402


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('out', help='the .pth file to write')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--calibrate', type=int, default=4,
                        help='forward passes that estimate the batch-norm statistics')
    parser.add_argument('--calibrate-size', type=int, nargs=2, default=(128, 128),
                        metavar=('H', 'W'))
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    return parser.parse_args(argv)


def calibrate_norms(model: nn.Module, passes: int, size: Sequence[int], seed: int) -> int:
    """Batch-norm running statistics (cumulative averages) from `passes` forward passes
    of `model` (a segmentor's inference path) on random images (2, 3, H, W) in 0-255;
    the number of batch-norm layers calibrated. Everything else stays in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if passes <= 0 or not norms:
        return 0
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the passes
        m.train()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _ in range(passes):
            images = torch.rand(2, 3, *size, generator=generator) * 255
            data = model.data_preprocessor({'inputs': list(images)}, False)
            model._forward(data['inputs'])
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()
    # layers of training-only branches (the triplet loss's projection) did not run and
    # keep their initial statistics
    return sum(int(m.num_batches_tracked) > 0 for m in norms)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    from mmengine.model.utils import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    cfg = load_config(args.config, args.cfg_options, check_data=False)
    skip_pretrained(cfg)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    torch.manual_seed(args.seed)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    calibrated = calibrate_norms(model, args.calibrate, args.calibrate_size, args.seed)
    meta = dict(hierarchy=model.hierarchy.to_dict(), config=args.config, seed=args.seed,
                calibrated_norms=calibrated, calibration_passes=args.calibrate,
                note='initial weights, not trained (tools/analysis/random_checkpoint.py)')
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    torch.save(dict(meta=meta, state_dict=model.state_dict()), args.out)
    count = sum(p.numel() for p in model.parameters())
    print(f'{args.out}: {args.config}, {count / 1e6:.1f} M parameters, seed {args.seed}, '
          f'not trained; {calibrated} batch-norm layers calibrated by {args.calibrate} passes')


if __name__ == '__main__':
    main()
