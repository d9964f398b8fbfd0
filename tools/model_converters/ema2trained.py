"""The trained weights of a checkpoint saved with mmengine's EMAHook, as a checkpoint.

    python tools/model_converters/ema2trained.py SRC DST

With `EMAHook` in `custom_hooks`, a checkpoint's `state_dict` holds the moving average of
the weights (what tools/test.py, infer and export read), and `ema_state_dict` the weights
the optimiser trained, each key prefixed `module.`, beside the average's step count
`steps`: mmengine's `EMAHook.before_save_checkpoint` swaps the two so that the average is
what gets deployed. DST holds the trained weights as its `state_dict` (the buffers too),
the same `meta`, and neither `ema_state_dict` nor the optimiser, so one training is tested
both ways by the same tools: the average from SRC, the trained weights from DST.
"""
import argparse
import os.path as osp
import sys
from pathlib import Path

try:
    import hseg_mm  # noqa: F401  (safe globals: a training's checkpoint keeps its message hub)
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import hseg_mm  # noqa: F401

import torch  # noqa: E402
from mmengine.runner import CheckpointLoader  # noqa: E402

PREFIX = 'module.'


def trained_checkpoint(checkpoint: dict, source: str = 'the checkpoint') -> dict:
    """{'meta', 'state_dict'} with the trained weights of an EMAHook checkpoint.

    Raises ValueError naming `source` where there is no `ema_state_dict`, or where its
    keys are not the `state_dict`'s (then the two are not one model's).
    """
    if 'ema_state_dict' not in checkpoint:
        raise ValueError(f'{source} has no ema_state_dict: it was not saved with EMAHook')
    averaged = checkpoint['state_dict']
    trained = {key[len(PREFIX):]: value for key, value in checkpoint['ema_state_dict'].items()
               if key.startswith(PREFIX)}
    if set(trained) != set(averaged):
        missing = sorted(set(averaged) ^ set(trained))[:3]
        raise ValueError(f'{source}: ema_state_dict and state_dict hold different keys '
                         f'(e.g. {missing})')
    return dict(meta=checkpoint.get('meta', {}), state_dict=trained)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='a checkpoint saved with EMAHook')
    parser.add_argument('dst', help='file to write')
    args = parser.parse_args()
    checkpoint = CheckpointLoader.load_checkpoint(args.src, map_location='cpu')
    try:
        converted = trained_checkpoint(checkpoint, args.src)
    except ValueError as err:
        raise SystemExit(f'ema2trained: {err}') from None
    if not osp.isdir(osp.dirname(osp.abspath(args.dst))):
        raise SystemExit(f'ema2trained: the folder of {args.dst} does not exist')
    torch.save(converted, args.dst)
    print(f'{args.dst}: the trained weights ({len(converted["state_dict"])} tensors) of '
          f'{args.src}')


if __name__ == '__main__':
    main()
