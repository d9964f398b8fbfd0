"""Convert a tum-vision/hierahyp checkpoint (Weber et al., CVPR 2024) into hseg-mm's layout.

    python tools/model_converters/hierahyp2hseg.py SRC DST --model deeplabv3plus

SRC: a Cityscapes file of tum-vision/hierahyp (mmseg 0.x; its README, "Models"): DeepLabV3+
on ResNetV1d-101 (`DepthwiseSeparableASPPContrastHead`, an FCN auxiliary head) or OCRNet on
HRNetV2-W48 (an FCN stage, then the OCR stage), Euclidean or hyperbolic (Poincare ball).
The head that classifies (`decode_head`; OCRNet: `decode_head.1`) scores the 19 leaves by
trainId from its 512-d last feature: Euclidean by its `conv_seg`; hyperbolic by the
segmentor's `offsets` and `normals` (19 x 512), after geoopt's `expmap0` at c = 1
(mmseg/layers.py `hyp_mlr_torch`). Every file holds `offsets` and `normals`, whatever the
head (`BaseSegmentor` makes them), so which classifier was trained is read from their
values (`detect_space`): a Euclidean run never updates them (`offsets` stay zero, `normals`
at their 1e-5 initial scale).

What changes:

- Euclidean: the classifying head's `conv_seg` (19, C, 1, 1) and bias (19,) become the leaf
  rows of hseg-mm's `conv_seg` (one row per node of the `cityscapes` tree, in
  `ClassHierarchy.node_names` order); the 6 parent rows are zero: hierahyp has no parent
  classifier, and the rules its configs use ('hierahyp', 'flat') read the leaf rows only.
  `offsets` and `normals` are dropped.
- hyperbolic: `offsets` -> `<head>.classifier.points`, `normals` -> `<head>.classifier.tangents`
  of a `PoincareClassifier(c=1.0, mobius_eps=1e-3)`, and the classifier's curvature.
  hierahyp's logit 2 |A| / sqrt(c) asinh(sqrt(c) lambda_z <z, A / |A|>), z = (-P) (+) x, is
  Ganea's with the normal a = (1 - c |P|^2) A, which is how `PoincareClassifier` transports
  its tangent: lambda_P |a| = 2 |A| and a / |a| = A / |A|. So the values are copied as
  they are; `mobius_eps=1e-3` is hierahyp's projection of z (its PROJ_EPS). The head's
  `conv_seg`, which the hyperbolic forward never calls, is dropped.
- training-only keys are dropped: each head's `proj_head.*` (a projection of the features
  that no output reads) and `step` (a forward counter), the segmentor's `ball.*` (its
  PoincareBall; the heads use c = 1 written into their forward) and `curvature` if
  present, and the optimiser state.
- the tree is written into the checkpoint's meta (`meta['hierarchy']`, `dataset_meta`) and
  into the state dict (`_extra_state`, as an hseg-mm segmentor saves it).

Everything else keeps its name: mmseg 1.x names ResNetV1d, HRNet, the DeepLabV3+, FCN and
OCR heads' modules as mmseg 0.x did. A file whose classifier shapes do not fit the tree
(19 leaves, offsets/normals as wide as `conv_seg`'s input) is refused, naming the key and
both shapes; with `--config` every key is checked against that config's model.

Then test with the matching config (configs/hssn_release/hierahyp_*.py), e.g.
`python tools/test.py configs/hssn_release/hierahyp_deeplabv3plus_cityscapes_hyperbolic.py DST`.
"""
import argparse
import os.path as osp
import sys
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Dict, Mapping, Optional

try:
    import hseg_mm  # noqa: F401  (shims and safe globals for checkpoint loading)
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import hseg_mm  # noqa: F401

import torch  # noqa: E402
from mmengine.runner import CheckpointLoader  # noqa: E402
from torch import Tensor  # noqa: E402

from hseg_mm.hierarchy import ClassHierarchy  # noqa: E402
from hseg_mm.models.decode_heads import PoincareClassifier, project_to_ball  # noqa: E402
from hseg_mm.models.segmentors.hierarchical_segmentor_mixin import tree_state  # noqa: E402

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # the sibling converter
from hssn2hseg import (ConversionError, check_against_model,  # noqa: E402
                       config_model_state)

__all__ = ['ConversionError', 'convert_hierahyp', 'convert_checkpoint', 'detect_space']

TREE = 'cityscapes'  # hierahyp's 19 trainIds under its 7 parents (`infer_parents`)
# --model -> the head that classifies the leaves, and every head that has the
# training-only `proj_head` and `step` (hierahyp's DeepLabV3+, FCN and OCR heads all build them)
CLASSIFYING_HEAD = dict(deeplabv3plus='decode_head', ocrnet='decode_head.1')
HEADS = dict(deeplabv3plus=('decode_head', 'auxiliary_head'),
             ocrnet=('decode_head.0', 'decode_head.1'))
# heads that score the leaves by label id with a conv_seg of their own, kept as they are
LEAF_CONV_HEADS = dict(deeplabv3plus=('auxiliary_head', ), ocrnet=('decode_head.0', ))
DEEP_STEM = 'backbone.stem.0.weight'  # ResNetV1d's first stem conv (DeepLabV3+ only)
# the segmentor's own keys: the hyperbolic classifier, and its PoincareBall / curvature
OFFSETS, NORMALS = 'offsets', 'normals'
SEGMENTOR_TRAINING_ONLY = ('ball.', 'curvature')
# hierahyp's BaseSegmentor: normals_ = expmap0(randn(19, 512) * 1e-5), rows of norm
# ~1e-5 sqrt(512) = 2.3e-4; a trained hyperbolic classifier's normals are far longer (its
# logits scale with |A|). Below this the normals are taken to be untouched.
INITIAL_NORMALS_MAX = 1e-3
C = 1.0  # hierahyp's heads: gt.PoincareBall(c=1.0) and run_log_torch(..., 1.0)
MOBIUS_EPS = 1e-3  # mmseg/layers.py PROJ_EPS


def detect_space(state_dict: Mapping[str, Tensor], source: str = 'checkpoint') -> str:
    """'euclidean' or 'hyperbolic': which classifier the file's run trained.

    A Euclidean run never updates the segmentor's `offsets` (zeros at init, moved only by
    their own RiemannianSGD, which skips a parameter without gradient) nor its `normals`
    (plain SGD without decay): both stay as `BaseSegmentor` made them. A hyperbolic run
    moves both.

    Args:
        state_dict: the source's state dict (`offsets`, `normals` at the top level).
        source: named in errors.
    """
    for key in (OFFSETS, NORMALS):
        if key not in state_dict:
            raise ConversionError(f'{source}: no key {key!r}; every hierahyp checkpoint has '
                                  'the segmentor\'s offsets and normals (give --space to '
                                  'convert a file without them)')
    untouched = bool((state_dict[OFFSETS] == 0).all()) and \
        float(state_dict[NORMALS].float().norm(dim=-1).max()) < INITIAL_NORMALS_MAX
    return 'euclidean' if untouched else 'hyperbolic'


def _check_shape(state_dict: Mapping[str, Tensor], key: str, expected: tuple, source: str,
                 model: str, what: str, exact: bool = False) -> None:
    """Refuse `key` if absent or if its leading dims (`exact`: its shape) differ from
    `expected`; `what` names what needs that shape."""
    if key not in state_dict:
        raise ConversionError(f'{source}: no key {key!r}; not a hierahyp {model} checkpoint '
                              '(wrong --model?)')
    shape = tuple(state_dict[key].shape)
    if shape[:len(expected)] != expected or (exact and shape != expected):
        needed = expected if exact else expected + shape[len(expected):]
        raise ConversionError(f'{source}: {key} has shape {shape}, but {what} needs {needed}')


def convert_hierahyp(state_dict: Mapping[str, Tensor], tree: ClassHierarchy, model: str,
                     space: Optional[str] = None,
                     source: str = 'checkpoint') -> 'OrderedDict[str, Tensor]':
    """A hierahyp state dict in hseg-mm's layout.

    Args:
        state_dict: the source's `state_dict` (keys `backbone.*`, `decode_head.*`,
            `auxiliary_head.*` (DeepLabV3+), `offsets`, `normals`, `ball.*`).
        tree: the tree whose leaves, by label id, are hierahyp's 19 classes.
        model: 'deeplabv3plus' or 'ocrnet'.
        space: 'euclidean', 'hyperbolic', or None to read it from the file (`detect_space`).
        source: named in errors.

    Returns:
        the state dict of an hseg-mm segmentor of configs/hssn_release/hierahyp_*.py
        (Euclidean: the classifying head's `conv_seg` with one row per node; hyperbolic:
        its `classifier.*`), with `_extra_state` holding the tree.
    """
    if model not in CLASSIFYING_HEAD:
        raise ValueError(f'model must be one of {sorted(CLASSIFYING_HEAD)}, got {model!r}')
    if space is None:
        space = detect_space(state_dict, source)
    if space not in ('euclidean', 'hyperbolic'):
        raise ValueError(f"space must be 'euclidean' or 'hyperbolic', got {space!r}")
    what = f'{model} on the tree ({tree.num_leaves} leaves)'
    if model == 'deeplabv3plus' and DEEP_STEM not in state_dict:
        raise ConversionError(f'{source}: no key {DEEP_STEM!r}; hierahyp\'s DeepLabV3+ uses '
                              "ResNetV1d's deep stem (backbone.stem.*) (wrong --model?)")
    head = CLASSIFYING_HEAD[model]
    seg = f'{head}.conv_seg'
    for key in (f'{seg}.weight', f'{seg}.bias') + tuple(
            f'{other}.conv_seg.{suffix}' for other in LEAF_CONV_HEADS[model]
            for suffix in ('weight', 'bias')):
        _check_shape(state_dict, key, (tree.num_leaves, ), source, model, what)
    channels = state_dict[f'{seg}.weight'].shape[1]  # the head's feature width
    if space == 'hyperbolic':
        for key in (OFFSETS, NORMALS):
            # one point / normal per leaf, in the space of the head's last feature
            _check_shape(state_dict, key, (tree.num_leaves, channels), source, model,
                         f'{what}: one per leaf, as wide as {seg}\'s input', exact=True)
        offsets = state_dict[OFFSETS].float()
        if not torch.equal(project_to_ball(offsets, C, dim=1), offsets):
            # geoopt's retraction (RiemannianSGD) kept hierahyp's offsets within geoopt's
            # float32 bound; hierahyp's forward does not project them, PoincareClassifier's
            # does: an offset beyond it would score differently.
            warnings.warn(f'{source}: an offset has norm '
                          f'{float(offsets.norm(dim=1).max()):.6f}, beyond the bound '
                          'PoincareClassifier projects its points onto (1 - 4e-3); its '
                          'logits will differ from hierahyp\'s')

    heads = HEADS[model]
    converted: 'OrderedDict[str, Tensor]' = OrderedDict()
    for key, value in state_dict.items():
        if key in (OFFSETS, NORMALS) or key.startswith(SEGMENTOR_TRAINING_ONLY):
            continue
        if any(key.startswith(f'{h}.proj_head.') or key == f'{h}.step' for h in heads):
            continue
        if key in (f'{seg}.weight', f'{seg}.bias'):
            if space == 'hyperbolic':
                continue  # never called by the hyperbolic forward; hseg-mm's is an identity
            rows = value.new_zeros((tree.num_nodes, ) + tuple(value.shape[1:]))
            rows[torch.as_tensor(tree.leaf_nodes)] = value  # leaf l's node gets row l
            value = rows
        converted[key] = value
    if space == 'hyperbolic':
        classifier = PoincareClassifier(channels, tree.num_leaves, c=C, mobius_eps=MOBIUS_EPS)
        for name, value in classifier.state_dict().items():
            if name.startswith('ball.'):  # the classifier's curvature parameter
                converted[f'{head}.classifier.{name}'] = value
        converted[f'{head}.classifier.points'] = state_dict[OFFSETS].float().clone()
        converted[f'{head}.classifier.tangents'] = state_dict[NORMALS].float().clone()
    converted['_extra_state'] = tree_state(tree)
    return converted


def convert_checkpoint(checkpoint: Mapping, tree: ClassHierarchy, model: str,
                       space: Optional[str] = None,
                       source: str = 'checkpoint') -> Dict[str, object]:
    """The whole file: converted `state_dict` and a meta naming the tree and the source.

    Args:
        checkpoint: the loaded file, `{'meta': ..., 'state_dict': ..., 'optimizer': ...}`
            (hierahyp's mmcv `save_checkpoint`), or a bare state dict.
        tree, model, space, source: as `convert_hierahyp`.
    """
    state_dict = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state_dict, Mapping):
        raise ConversionError(f'{source}: state_dict is a {type(state_dict).__name__}, '
                              'not a mapping of names to tensors')
    if space is None:
        space = detect_space(state_dict, source)
    tree_dict = tree.to_dict()
    meta = dict(hierarchy=tree_dict,
                dataset_meta=dict(classes=tuple(tree.leaf_names), hierarchy=tree_dict),
                converted_from=osp.basename(source), hierahyp_model=model,
                hierahyp_space=space, converter='tools/model_converters/hierahyp2hseg.py')
    return dict(meta=meta,
                state_dict=convert_hierahyp(state_dict, tree, model, space, source))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert a tum-vision/hierahyp Cityscapes checkpoint to hseg-mm')
    parser.add_argument('src', help='source checkpoint file or URL')
    parser.add_argument('dst', help='file to write')
    parser.add_argument('--model', required=True, choices=sorted(CLASSIFYING_HEAD),
                        help='the architecture of the checkpoint')
    parser.add_argument('--space', choices=('euclidean', 'hyperbolic'),
                        help='the classifier the run trained (default: read from the file)')
    parser.add_argument('--config', help='also check every key and shape against the model '
                        'of this config (e.g. configs/hssn_release/'
                        'hierahyp_deeplabv3plus_cityscapes_hyperbolic.py)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    tree = ClassHierarchy(TREE)
    checkpoint = CheckpointLoader.load_checkpoint(args.src, map_location='cpu')
    try:
        converted = convert_checkpoint(checkpoint, tree, args.model, args.space, args.src)
        if args.config:
            check_against_model(converted['state_dict'], config_model_state(args.config),
                                args.src, args.config)
    except ConversionError as err:
        raise SystemExit(f'hierahyp2hseg: {err}') from None
    dst_dir = osp.dirname(osp.abspath(args.dst))
    if not osp.isdir(dst_dir):
        raise SystemExit(f'hierahyp2hseg: the folder of {args.dst} does not exist')
    torch.save(converted, args.dst)
    space = converted['meta']['hierahyp_space']
    print(f'{args.dst}: {len(converted["state_dict"]) - 1} tensors, {args.model}, {space}, '
          f'tree {TREE} ({tree.num_nodes} nodes); test with configs/hssn_release/'
          f'hierahyp_{"ocrnet_hr48" if args.model == "ocrnet" else args.model}_cityscapes_'
          f'{space}.py')


if __name__ == '__main__':
    main()
