"""Export a hierarchical segmentor to ONNX: leaf scores and every level's label map.

    python tools/export_onnx.py CONFIG CHECKPOINT OUT.onnx [--shape H W] [--batch N]
        [--opset 18] [--cfg-options k=v ...] [--allow-other-tree]

The graph holds the whole of mmseg's whole-image inference, so it needs no config to run:

- input ``image``: (N, 3, H, W) float32, BGR as OpenCV / mmcv read it, values 0-255,
  at the size the network should see (resize first, as the config's test pipeline
  does). The data preprocessor's channel flip and mean / std normalisation are in
  the graph. N, H and W are dynamic (H, W >= 64); ``--shape H W`` fixes H and W,
  ``--batch N`` the batch size.
- output ``leaf_scores``: (N, L, H, W) float32, channel l = leaf label id l, by the
  head's inference rule (what mmseg's ``seg_logits`` holds).
- output ``level_labels``: (N, D, H, W) int64, level 0 (coarsest) first, class
  indices of each level as in the tree's levels (``pred_level_seg``).

The model's metadata (``metadata_props``) names the tree, every level's classes, the
rule, mean, std and channel order.

Captured by torch.export (the ``dynamo=True`` exporter's front end), called on its own
with its default guards: sizes stay symbolic and code that holds only for some sizes
is an error naming the condition (``--shape`` / ``--batch`` then export one size). The TorchScript
tracer would turn Python arithmetic on sizes into constants without a word, and
torch.onnx.export's own capture turns such conditions into runtime assertions that
the ONNX graph drops. mmseg's ``Upsample`` (HRNet) sizes its output ``int(size *
2.0)``, which torch.export cannot keep symbolic: an integer product stands in for it
here (the same sizes and call). Last, the graph is run in onnxruntime at two sizes
other than the example's and kept only if it matches torch. Check it on real images
with ``tools/check_onnx.py``.
"""
import argparse
import json
import os
import os.path as osp
import sys
import types
from math import inf
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

try:
    import hseg_mm  # noqa: F401  (before mmseg.models: installs the version shims)
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import hseg_mm  # noqa: F401

import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmseg.models.utils import Upsample, resize  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from hseg_mm.engine import ConfigError, check_checkpoint_tree  # noqa: E402
from hseg_mm.engine.launch import load_config, run_tool, skip_pretrained  # noqa: E402
from hseg_mm.models.inference import (RULES_AT_ORIGINAL_SIZE, leaf_scores,  # noqa: E402
                                      level_predictions)
from hseg_mm.models.segmentors import HierarchicalSegmentorMixin  # noqa: E402

INPUT_NAME = 'image'
OUTPUT_NAMES = ('leaf_scores', 'level_labels')
# Smallest dynamic H and W: below it some networks hold only for some sizes (HRNet's
# lowest branch must be wider than one pixel: H, W > 32).
MIN_SIZE = 64


class OnnxSegmentor(nn.Module):
    """A hierarchical segmentor as one tensor function: raw image -> leaf scores, levels.

    Does what the segmentor's `test_step` does for a batch of images of one size
    with no padding and whole-image inference: the data preprocessor's channel flip
    and normalisation, `encode_decode` (node logits resized to the input, then leaf
    scores by the head's rule; for 'hssn_release' and 'hierahyp' the rule after it, as
    the input is the original image), and `level_predictions` by the same rule.
    """

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        if not isinstance(segmentor, HierarchicalSegmentorMixin):
            raise ConfigError(f'model.type: {type(segmentor).__name__} is not a hierarchical '
                              'segmentor (e.g. HierarchicalEncoderDecoder); nothing to export')
        mode = (segmentor.test_cfg or {}).get('mode', 'whole')
        if mode != 'whole':
            raise ConfigError(f'model.test_cfg.mode={mode!r}: the ONNX graph does whole-image '
                              "inference; export with --cfg-options model.test_cfg.mode=whole")
        pre = segmentor.data_preprocessor
        if getattr(pre, 'test_cfg', None):
            raise ConfigError(f'model.data_preprocessor.test_cfg={dict(pre.test_cfg)}: test-time '
                              'padding is not in the ONNX graph; pad the images yourself and '
                              'remove this key to export')
        self.segmentor = segmentor
        # in place, same sizes and values: `int(size * 2.0)` does not export for every size
        for module in segmentor.modules():
            if isinstance(module, Upsample):
                module.forward = types.MethodType(_symbolic_upsample_forward, module)
        self.channel_flip = bool(getattr(pre, 'channel_conversion', False))
        self.normalize = bool(getattr(pre, '_enable_normalize', False))
        if self.normalize:
            self.register_buffer('mean', pre.mean.detach().clone(), persistent=False)
            self.register_buffer('std', pre.std.detach().clone(), persistent=False)

    @property
    def rule(self) -> str:
        return self.segmentor.hierarchical_head.inference

    def forward(self, image: Tensor) -> Tuple[Tensor, Tensor]:
        """(N, 3, H, W) float BGR 0-255 -> leaf scores (N, L, H, W), levels (N, D, H, W)."""
        x = image[:, [2, 1, 0]] if self.channel_flip else image
        if self.normalize:
            x = (x - self.mean) / self.std
        # img_shape is the input's own (symbolic) size: the scores come back at it
        leaf = self.segmentor.encode_decode(x, [dict(img_shape=image.shape[2:])])
        if self.rule in RULES_AT_ORIGINAL_SIZE:
            # the head handed on node logits; the input is the original image here
            leaf = leaf_scores(leaf, self.segmentor.hierarchy, self.rule)
        return leaf, level_predictions(leaf, self.segmentor.hierarchy, self.rule)

    def metadata(self) -> Dict[str, str]:
        """What a user of the .onnx file needs to read its outputs (string values)."""
        tree = self.segmentor.hierarchy
        meta = dict(
            input=f'{INPUT_NAME}: (N, 3, H, W) float32, H and W >= {MIN_SIZE} unless fixed, '
                  f'{"BGR" if self.channel_flip else "RGB"} channel order, values 0-255, '
                  'normalised inside the graph',
            outputs='leaf_scores: (N, L, H, W) float32, channel = leaf label id; '
                    'level_labels: (N, D, H, W) int64, level 0 (coarsest) first',
            inference_rule=self.rule,
            hierarchy=json.dumps(tree.to_dict()),
            leaf_names=json.dumps(tree.leaf_names),
            level_names=json.dumps([tree.level_names(k) for k in range(tree.num_levels)]))
        if self.normalize:
            meta['mean'] = json.dumps(self.mean.flatten().tolist())
            meta['std'] = json.dumps(self.std.flatten().tolist())
        return meta


def _symbolic_upsample_forward(self: Upsample, x: Tensor) -> Tensor:
    """mmseg's `Upsample.forward`, the same sizes and call, with an integer scale factor
    multiplying the size: `int(size * 2.0)` would become the example's constant."""
    factor = self.scale_factor
    if self.size or isinstance(factor, tuple) or not float(factor).is_integer():
        return Upsample.forward(self, x)
    size = [t * int(factor) for t in x.shape[-2:]]
    return resize(x, size, None, self.mode, self.align_corners)


def load_segmentor(config: str, checkpoint: str, cfg_options: Optional[dict] = None,
                   allow_other_tree: bool = False) -> nn.Module:
    """The config's segmentor (its tree injected) with the checkpoint's weights, on CPU,
    in eval mode. No pretrained backbone file is read: the checkpoint holds every weight,
    and every weight must be there (strict), so nothing is exported half initialised."""
    from mmengine.runner.checkpoint import CheckpointLoader, load_state_dict
    from mmseg.apis import init_model
    if not osp.isfile(checkpoint):
        raise ConfigError(f'checkpoint not found: {checkpoint}')
    cfg = load_config(config, cfg_options, check_data=False)
    skip_pretrained(cfg)
    model = init_model(cfg, None, device='cpu')
    if not isinstance(model, HierarchicalSegmentorMixin):
        raise ConfigError(f'{config}: model.type {type(model).__name__} is not a hierarchical '
                          'segmentor (e.g. HierarchicalEncoderDecoder)')
    weights = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    warning = check_checkpoint_tree(weights, model.hierarchy, checkpoint, allow_other_tree)
    if warning:
        print(f'warning: {warning}', file=sys.stderr)
    state = weights.get('state_dict', weights)
    # keys as a DDP run may have saved them ('module.' first), as mmengine's loader strips
    load_state_dict(model, {k[len('module.'):] if k.startswith('module.') else k: v
                            for k, v in state.items()}, strict=True)
    return model.eval()


def example_shape(cfg: Config, shape: Optional[Sequence[int]]) -> Tuple[int, int]:
    """(H, W) of the example input: --shape, else the config's crop size, else 512."""
    if shape is not None:
        return int(shape[0]), int(shape[1])
    crop = cfg.get('crop_size') or (512, 512)
    return int(crop[0]), int(crop[1])


def export(module: OnnxSegmentor, out: str, size: Tuple[int, int], dynamic_hw: bool,
           batch: Optional[int] = None, opset: int = 18) -> None:
    """Write `module` to `out` (one file; weights beside it only past protobuf's 2 GB).

    Args:
        size: (H, W) of the example input; the graph's H and W unless `dynamic_hw`.
        batch: the graph's batch size; None: dynamic.

    torch.export runs first, on its own: with its default guards, code that holds only
    for some sizes is an error here. torch.onnx.export's own capture would turn such a
    guard into a runtime assertion and then drop it, fixing the example's branch.
    """
    from torch.export import Dim
    torch.manual_seed(0)
    # a dynamic batch is traced at 2: torch.export fixes sizes 0 and 1
    example = torch.rand(batch or 2, 3, *size) * 255
    dims = {} if batch else {0: Dim('batch')}
    if dynamic_hw:
        dims.update({2: Dim('height', min=MIN_SIZE), 3: Dim('width', min=MIN_SIZE)})
    try:
        with torch.no_grad():
            program = torch.export.export(module, (example, ), strict=False,
                                          dynamic_shapes={INPUT_NAME: dims} if dims else None)
    except Exception as err:  # torch.export raises several types: keep the summary
        raise ExportError(f'torch.export could not capture the model: {_summary(err)}') \
            from err
    # the axes by name: only renames torch.export's symbols (s0, s1, ...) in the file
    names = dict(zip((0, 2, 3), ('batch', 'height', 'width')))
    axes = {axis: names[axis] for axis in dims}
    onnx_program = torch.onnx.export(program, f=None, dynamo=True, opset_version=opset,
                                     input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                                     dynamic_shapes={INPUT_NAME: axes} if axes else None)
    onnx_program.model.metadata_props.update(module.metadata())
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    onnx_program.save(out)


def verify(module: OnnxSegmentor, path: str, sizes: Sequence[Tuple[int, int]],
           batch: int = 2, tol: float = 1e-4) -> float:
    """Run the file in onnxruntime and `module` in torch on a batch of random images of
    each size; raise ExportError if onnxruntime fails or a leaf score differs by more
    than `tol`. Returns the largest difference.
    """
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    generator = torch.Generator().manual_seed(1)
    worst = 0.0
    for h, w in sizes:
        image = torch.rand(batch, 3, h, w, generator=generator) * 255
        with torch.no_grad():
            leaf = module(image)[0].numpy()
        try:
            onnx_leaf = session.run([OUTPUT_NAMES[0]], {INPUT_NAME: image.numpy()})[0]
        except Exception as err:  # onnxruntime's errors have no common public base
            raise ExportError(f'the exported graph fails at {h}x{w} in onnxruntime: '
                              f'{str(err)[:300]}') from err
        diff = float(abs(onnx_leaf - leaf).max()) if onnx_leaf.shape == leaf.shape else inf
        if not diff <= tol:
            raise ExportError(f'the exported graph is wrong at {h}x{w}: leaf scores '
                              f'{onnx_leaf.shape} differ from torch\'s {leaf.shape} by '
                              f'{diff:.2e} (> {tol:.0e})')
        worst = max(worst, diff)
    return worst


def check_sizes(size: Tuple[int, int], dynamic_hw: bool) -> List[Tuple[int, int]]:
    """The example size, or for a dynamic graph two others that no stride divides."""
    h, w = size
    if not dynamic_hw:
        return [size]
    return [(max(h * 3 // 4 + 5, MIN_SIZE + 1), max(w // 2 + 11, MIN_SIZE + 3)),
            (max(h // 2 + 13, MIN_SIZE + 5), max(w * 3 // 4 + 3, MIN_SIZE + 7))]


class ExportError(RuntimeError):
    """The model did not export, or its graph disagrees with torch: one line for the
    user, the details chained."""


def _summary(err: BaseException) -> str:
    """torch.export's long message cut to what went wrong, where, and what to do."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if any('data-dependent' in line for line in lines):
        where = next((lines[i + 1:i + 3] for i, line in enumerate(lines)
                      if line.startswith('The following call raised this error')), [])
        return ('the model branches on tensor values' + (f' at {" ".join(where)}' if where
                                                           else f': {lines[0]}')
                + '; such code does not export')
    keep = [line for line in lines if line.startswith('- ')][:2] or lines[:1]
    return (' '.join(keep)[:600] or type(err).__name__) + \
        '; fix the sizes it names with --shape H W or --batch N'


def describe(path: str) -> List[str]:
    """Input and output names, types and shapes of an ONNX file, one line each."""
    import onnx
    model = onnx.load(path, load_external_data=False)
    types = {onnx.TensorProto.FLOAT: 'float32', onnx.TensorProto.INT64: 'int64'}
    lines = []
    for kind, values in (('input', model.graph.input), ('output', model.graph.output)):
        for v in values:
            dims = [d.dim_param or str(d.dim_value) for d in v.type.tensor_type.shape.dim]
            dtype = types.get(v.type.tensor_type.elem_type, str(v.type.tensor_type.elem_type))
            lines.append(f'{kind} {v.name}: {dtype} ({", ".join(dims)})')
    return lines


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('out', help='the .onnx file to write')
    parser.add_argument('--shape', nargs=2, type=int, metavar=('H', 'W'),
                        help='fix the input height and width (default: dynamic)')
    parser.add_argument('--batch', type=int,
                        help='fix the batch size (default: dynamic)')
    parser.add_argument('--opset', type=int, default=18, help='ONNX opset version')
    parser.add_argument('--allow-other-tree', action='store_true',
                        help='use a checkpoint trained on another class tree anyway')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    args = parser.parse_args(argv)
    if args.shape is not None and min(args.shape) < 1:
        parser.error(f'--shape {args.shape[0]} {args.shape[1]}: H and W must be positive')
    if args.batch is not None and args.batch < 1:
        parser.error(f'--batch {args.batch}: must be positive')
    return args


def main(argv: Optional[Sequence[str]] = None) -> str:
    """Run the tool; returns the path written."""
    args = parse_args(argv)
    segmentor = load_segmentor(args.config, args.checkpoint, args.cfg_options,
                               args.allow_other_tree)
    module = OnnxSegmentor(segmentor).eval()
    size = example_shape(segmentor.cfg, args.shape)  # init_model keeps the config
    sizes = check_sizes(size, dynamic_hw=args.shape is None)
    batch = args.batch or 2
    try:
        export(module, args.out, size, args.shape is None, args.batch, args.opset)
        try:
            diff = verify(module, args.out, sizes, batch)
        except ExportError as err:
            os.remove(args.out)  # a graph that is wrong at some size is not handed out
            raise ExportError(f'{err}; {args.out} was removed')
    except ExportError as err:
        raise SystemExit(f'error: {err}') from None
    print(f'wrote {args.out} (opset {args.opset}, {module.rule} rule, '
          f'{segmentor.hierarchy.num_levels} levels); onnxruntime matches torch within '
          f'{diff:.1e} at {", ".join(f"{h}x{w}" for h, w in sizes)} (batch {batch}, '
          'random pixels)')
    for line in describe(args.out):
        print('  ' + line)
    return args.out


if __name__ == '__main__':
    run_tool(main)
