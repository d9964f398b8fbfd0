"""Write a checkpoint of a config's model with its initial weights, no training.

    python tools/analysis/random_checkpoint.py CONFIG OUT.pth [--seed 0] [--cfg-options k=v ...]

For what needs a checkpoint but not a trained one: whether a model exports to ONNX and
whether onnxruntime reproduces it (`tools/export_onnx.py`, `tools/check_onnx.py`), speed
and memory figures. The model is built from CONFIG on the CPU with torch's seed `--seed`,
initialised by `init_weights` without pretrained weights (no download), and saved as the
Runner saves (`state_dict`, `meta` with the class tree, which the tools check), so every
weight is there. A random model's predictions mean nothing; its numerics and graph are a
trained model's.
"""
import argparse
import os
import os.path as osp
import sys
from typing import Optional, Sequence

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import hseg_mm  # noqa: F401,E402  (shims and registration before mmseg.models)
import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

from hseg_mm.engine.launch import load_config, skip_pretrained  # noqa: E402


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('out', help='the .pth file to write')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    return parser.parse_args(argv)


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
    meta = dict(hierarchy=model.hierarchy.to_dict(), config=args.config, seed=args.seed,
                note='initial weights, not trained (tools/analysis/random_checkpoint.py)')
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    torch.save(dict(meta=meta, state_dict=model.state_dict()), args.out)
    count = sum(p.numel() for p in model.parameters())
    print(f'{args.out}: {args.config}, {count / 1e6:.1f} M parameters, seed {args.seed}, '
          'not trained')


if __name__ == '__main__':
    main()
