"""Parameters and FLOPs of a config's model at one input size: mmseg 1.x's get_flops.py.

    python tools/analysis/get_flops.py CONFIG [--shape H [W]] [--table] [--cfg-options k=v ...]

The model is built on the CPU from the config alone (no pretrained or trained weights:
they change no count), SyncBN as BN, and run once in eval mode on a random image through
mmseg's tensor forward, which is backbone, neck and decode head up to the head's logits:
for a hierarchical head the node logits (N, V, H/s, W/s), so its classifier over every
tree node is counted. The inference rule, the resize to the input size and the losses
are not (mmseg's tool counts the same forward). Counter: mmengine's
`get_model_complexity_info`, where one multiply-add is one FLOP (fvcore's convention).

Params, as in mmseg's tool, leave the auxiliary head out; they include the hierarchical
head's projection branch (built for the tree-triplet loss, run only in training), and a
line says how many parameters are training-only. `--table` adds mmengine's per-module
table.
"""
import argparse
import copy
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

try:
    import hseg_mm  # noqa: F401  (before mmseg.models: installs the version shims)
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import hseg_mm  # noqa: F401

import torch  # noqa: E402
from mmengine.analysis import get_model_complexity_info  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from hseg_mm.engine import ConfigError  # noqa: E402
from hseg_mm.engine.launch import load_config, run_tool, skip_pretrained  # noqa: E402

SPLIT_LINE = '=' * 30


def _format_size(n: float) -> str:
    """A count as mmengine's complexity table writes it: 1234567 -> '1.235M' (3 decimals,
    trailing zeros dropped; a unit once the count passes a tenth of it)."""
    for limit, unit, suffix in ((1e14, 1e15, 'P'), (1e11, 1e12, 'T'), (1e8, 1e9, 'G'),
                                (1e5, 1e6, 'M'), (1e2, 1e3, 'K')):
        if abs(n) > limit:
            return f'{n / unit:.3f}'.rstrip('0').rstrip('.') + suffix
    return str(n)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Get the params and FLOPs of a segmentor')
    parser.add_argument('config', help='model config file')
    parser.add_argument('--shape', type=int, nargs='+', metavar='SIZE',
                        help='input H W (one number: square); default: the config\'s '
                        'crop_size')
    parser.add_argument('--table', action='store_true',
                        help='also print mmengine\'s per-module table')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, key=value')
    return parser.parse_args(argv)


def input_shape(cfg: Config, shape: Optional[Sequence[int]] = None) -> Tuple[int, int]:
    """(H, W): `shape` (1 number: square), else `crop_size`, else the preprocessor's size."""
    if shape:
        if len(shape) not in (1, 2) or min(shape) < 1:
            raise ConfigError(f'--shape takes H W or one size, got {list(shape)}')
        return (shape[0], shape[-1])
    size = cfg.get('crop_size') or cfg.model.get('data_preprocessor', {}).get('size')
    if size is None:
        raise ConfigError(f'{cfg.filename}: no crop_size (nor model.data_preprocessor.size); '
                          'give --shape H W')
    return tuple(size)


def build_model(cfg: Config) -> Tuple[nn.Module, int]:
    """The config's segmentor on the CPU, random init, BN for SyncBN, in eval mode,
    without its auxiliary head; and the auxiliary head's parameter count."""
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    cfg = copy.deepcopy(cfg)
    skip_pretrained(cfg)  # weights change no count; nothing is read or downloaded
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    auxiliary_params = 0
    if getattr(model, 'auxiliary_head', None) is not None:
        auxiliary_params = sum(p.numel() for p in model.auxiliary_head.parameters())
        model.auxiliary_head = None  # training only; mmseg's get_flops drops it too
    return model.eval(), auxiliary_params


def random_inputs(model: nn.Module, shape: Tuple[int, int], seed: int = 0) -> Tensor:
    """One random image through the model's data preprocessor: (1, 3, H, W) float."""
    from mmseg.structures import SegDataSample
    generator = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (3, *shape), dtype=torch.uint8, generator=generator)
    meta = dict(ori_shape=shape, img_shape=shape, pad_shape=shape)
    data = model.data_preprocessor(
        dict(inputs=[image], data_samples=[SegDataSample(metainfo=meta)]), False)
    return data['inputs']


def training_only_params(model: nn.Module) -> Dict[str, int]:
    """The hierarchical heads' projection branches (built for a loss, never run by
    the tensor forward): {module name: parameter count}."""
    from hseg_mm.models.decode_heads.hierarchical_head_mixin import HierarchicalHeadMixin
    return {f'{name}.projection': sum(p.numel() for p in module.projection.parameters())
            for name, module in model.named_modules()
            if isinstance(module, HierarchicalHeadMixin) and module.projection is not None}


def model_complexity(cfg: Config, shape: Tuple[int, int], table: bool = False) -> dict:
    """Params and FLOPs of `cfg`'s model on one (1, 3, H, W) input.

    Returns:
        mmengine's `get_model_complexity_info` dict ('flops', 'params', 'flops_str',
        'params_str', 'activations', 'out_table', ...) plus 'input_shape' (H, W),
        'training_only' ({module: params}) and 'auxiliary_params' (left out of 'params').
    """
    model, auxiliary_params = build_model(cfg)
    inputs = random_inputs(model, shape)
    with torch.no_grad():
        result = get_model_complexity_info(model, inputs=inputs, show_table=table,
                                           show_arch=False)
    result.update(input_shape=tuple(inputs.shape[-2:]),
                  training_only=training_only_params(model),
                  auxiliary_params=auxiliary_params)
    return result


def format_result(result: dict) -> str:
    """mmseg's get_flops block, plus the training-only parameters."""
    h, w = result['input_shape']
    lines = [SPLIT_LINE, 'Compute type: direct: randomly generate a picture',
             f'Input shape: ({h}, {w})', f'Flops: {result["flops_str"]}',
             f'Params: {result["params_str"]}']
    notes = [f'{name} {_format_size(n)}' for name, n in result['training_only'].items()]
    if notes:
        lines.append(f'of which training-only (no FLOPs): {", ".join(notes)}')
    if result['auxiliary_params']:
        lines.append('auxiliary head left out (training-only): '
                     f'{_format_size(result["auxiliary_params"])} params')
    lines.append(SPLIT_LINE)
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, check_data=False)
    result = model_complexity(cfg, input_shape(cfg, args.shape), table=args.table)
    if args.table:
        print(result['out_table'])
    print(format_result(result))
    print('!!!Please be cautious if you use the results in papers. You may need to check '
          'if all ops are supported and verify that the flops computation is correct.')
    return result


if __name__ == '__main__':
    run_tool(main)
