"""Convert an HSSN checkpoint (the HSSN release or mmseg projects/hssn) into hseg-mm's layout.

    python tools/model_converters/hssn2hseg.py SRC DST --dataset cityscapes

SRC: a file (or URL) of qhanghu/HSSN_pytorch (mmseg 0.11, DeepLabV3+ on ResNetV1d-101 with
`DepthwiseSeparableASPPContrastHead`, an FCN auxiliary head) or of mmseg's projects/hssn
(same keys and layout). What changes:

- `decode_head.conv_seg` (V, C, 1, 1) and its bias (V,): the release orders its channels
  leaves first by label id, then each parent level from fine to coarse (within a level by
  the smallest label id beneath); hseg-mm orders them by depth, coarse first
  (`ClassHierarchy.node_names`). The rows are permuted into hseg-mm's order, on the
  dataset's `*_hssn` preset, whose single-child chains (repeated background, Cityscapes'
  sky) hold every release channel.
- training-only keys are dropped: `decode_head.proj_head.*` (the triplet loss's projection
  of C5) and `decode_head.step` (the loss's iteration counter), and the optimiser state.
- the tree is written into the checkpoint's meta (`meta['hierarchy']`, `dataset_meta`) and
  into the state dict (`_extra_state`, as an hseg-mm segmentor saves it).

Everything else (backbone, ASPP, decoder, auxiliary head) keeps its name: mmseg 1.x names
these modules as mmseg 0.11 did. A file whose `conv_seg` shapes do not fit the dataset's
tree is refused, naming the key and both shapes; with `--config` every key is checked
against that config's model (e.g. a ResNet-50 file against the ResNet-101 config).

Then test with the matching config (configs/hssn_release/), e.g.
`python tools/test.py configs/hssn_release/hssn_release_cityscapes.py DST`.
"""
import argparse
import os.path as osp
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Mapping

try:
    import hseg_mm  # noqa: F401  (shims and safe globals for checkpoint loading)
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import hseg_mm  # noqa: F401

import torch  # noqa: E402
from mmengine.runner import CheckpointLoader  # noqa: E402
from torch import Tensor  # noqa: E402

from hseg_mm.hierarchy import ClassHierarchy  # noqa: E402
from hseg_mm.models.segmentors.hierarchical_segmentor_mixin import tree_state  # noqa: E402

# --dataset -> the preset holding the release's channels for that dataset
DATASET_TREES = dict(cityscapes='cityscapes_hssn',
                     pascal_person_part='pascal_person_part_hssn', lip='lip_hssn')
# keys of the release's head that only training reads
TRAINING_ONLY_PREFIXES = ('decode_head.proj_head.', )
TRAINING_ONLY_KEYS = ('decode_head.step', )
DECODE_SEG = 'decode_head.conv_seg'
AUX_SEG = 'auxiliary_head.conv_seg'
DEEP_STEM = 'backbone.stem.0.weight'  # ResNetV1d's first stem conv


class ConversionError(ValueError):
    """A checkpoint that is not an HSSN model for the tree; the message names the key."""


def release_channel_order(tree: ClassHierarchy) -> List[int]:
    """The hseg-mm node held by each channel of the release's `conv_seg`.

    The release's channels are the leaves by label id, then each parent level from the
    finest to the coarsest, a level's nodes by the smallest label id beneath them
    (qhanghu/HSSN_pytorch, encoder_decoder.py `simple_test`: Cityscapes' parents are
    channels 19..25 = flat, ..., vehicle; PASCAL-Person-Part's 7..9 = background, upper,
    lower and 10..11 = background, person). `tree.levels[k]` lists level k's nodes in that
    order, so the release's order is the levels from the deepest up.

    Args:
        tree: a tree whose every leaf is at the deepest level (the release repeats a
            shallow class per level; a `*_hssn` preset makes that a single-child chain).

    Returns:
        (V,) list: entry c is the node index (`tree.node_names`) of release channel c.
    """
    shallow = [tree.node_names[v] for v in tree.leaf_nodes
               if tree.depths[v] != tree.num_levels]
    if shallow:
        raise ConversionError(
            f'leaves {shallow} sit above the deepest level; the release gives such a class '
            'one channel per level: use a tree with single-child chains (e.g. the *_hssn '
            'presets)')
    return [v for level in reversed(tree.levels) for v in level]


def _check_shape(state_dict: Mapping[str, Tensor], key: str, expected: tuple,
                 source: str, what: str) -> None:
    """Refuse `key` if absent or if its leading dims differ from `expected`."""
    if key not in state_dict:
        raise ConversionError(f'{source}: no key {key!r}; not an HSSN DeepLabV3+ checkpoint')
    shape = tuple(state_dict[key].shape)
    if shape[:len(expected)] != expected:
        raise ConversionError(
            f'{source}: {key} has shape {shape}, but {what} needs '
            f'{expected + shape[len(expected):]}; wrong --dataset?')


def convert_hssn(state_dict: Mapping[str, Tensor], tree: ClassHierarchy,
                 source: str = 'checkpoint') -> 'OrderedDict[str, Tensor]':
    """An HSSN release / projects/hssn state dict in hseg-mm's layout.

    Args:
        state_dict: the source's `state_dict` (keys `backbone.*`, `decode_head.*`,
            `auxiliary_head.*`).
        tree: the tree whose nodes the release's channels are (`release_channel_order`).
        source: named in errors.

    Returns:
        the state dict of an hseg-mm `HierarchicalEncoderDecoder` (ResNetV1d,
        `HierarchicalDepthwiseSeparableASPPHead` without projection, `FCNHead`), with
        `_extra_state` holding the tree.
    """
    order = release_channel_order(tree)
    what = f'the tree ({tree.num_nodes} nodes, {tree.num_leaves} leaves)'
    if DEEP_STEM not in state_dict:
        raise ConversionError(f'{source}: no key {DEEP_STEM!r}; the HSSN models use '
                              "ResNetV1d's deep stem (backbone.stem.*)")
    _check_shape(state_dict, f'{DECODE_SEG}.weight', (tree.num_nodes, ), source,
                 f'{what}: one channel per node')
    _check_shape(state_dict, f'{DECODE_SEG}.bias', (tree.num_nodes, ), source,
                 f'{what}: one channel per node')
    for suffix in ('weight', 'bias'):
        key = f'{AUX_SEG}.{suffix}'
        if key in state_dict:  # the auxiliary head classifies the leaves by label id
            _check_shape(state_dict, key, (tree.num_leaves, ), source,
                         f'{what}: one channel per leaf')
    # hseg-mm channel v holds release channel inverse[v]
    inverse = torch.as_tensor(order).argsort()
    converted: 'OrderedDict[str, Tensor]' = OrderedDict()
    for key, value in state_dict.items():
        if key in TRAINING_ONLY_KEYS or key.startswith(TRAINING_ONLY_PREFIXES):
            continue
        if key in (f'{DECODE_SEG}.weight', f'{DECODE_SEG}.bias'):
            value = value.index_select(0, inverse)
        converted[key] = value
    converted['_extra_state'] = tree_state(tree)
    return converted


def check_against_model(state_dict: Mapping[str, Tensor], model_state: Mapping[str, Tensor],
                        source: str, config: str) -> None:
    """Refuse a converted state dict that does not load strictly into the config's model.

    Args:
        state_dict: from `convert_hssn`.
        model_state: the state dict of the model the config builds.
        source: the checkpoint, named in errors.
        config: the config, named in errors.
    """
    for key, value in model_state.items():
        if key not in state_dict:
            raise ConversionError(f'{source}: no key {key!r}, which the model of {config} has')
        if key != '_extra_state' and tuple(state_dict[key].shape) != tuple(value.shape):
            raise ConversionError(
                f'{source}: {key} has shape {tuple(state_dict[key].shape)}, but the model of '
                f'{config} needs {tuple(value.shape)}')
    extra = sorted(set(state_dict) - set(model_state))
    if extra:
        raise ConversionError(f'{source}: keys the model of {config} does not have: '
                              f'{extra[:5]}{" ..." if len(extra) > 5 else ""}')


def config_model_state(config: str) -> Dict[str, Tensor]:
    """The state dict of the model `config` builds (its tree applied, no weights read)."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from hseg_mm.engine.launch import load_config, skip_pretrained
    cfg = load_config(config, check_data=False)
    skip_pretrained(cfg)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    return MODELS.build(cfg.model).state_dict()


def convert_checkpoint(checkpoint: Mapping, tree: ClassHierarchy,
                       source: str = 'checkpoint') -> Dict[str, object]:
    """The whole file: converted `state_dict` and a meta naming the tree and the source.

    Args:
        checkpoint: the loaded file, `{'state_dict': ..., 'meta': ...}` (mmcv's and
            mmengine's), or a bare state dict.
        tree: as `convert_hssn`.
        source: the file name, kept in the meta and named in errors.
    """
    state_dict = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state_dict, Mapping):
        raise ConversionError(f'{source}: state_dict is a {type(state_dict).__name__}, '
                              'not a mapping of names to tensors')
    tree_dict = tree.to_dict()
    meta = dict(hierarchy=tree_dict,
                dataset_meta=dict(classes=tuple(tree.leaf_names), hierarchy=tree_dict),
                converted_from=osp.basename(source),
                converter='tools/model_converters/hssn2hseg.py')
    return dict(meta=meta, state_dict=convert_hssn(state_dict, tree, source))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert an HSSN release or mmseg projects/hssn checkpoint to hseg-mm')
    parser.add_argument('src', help='source checkpoint file or URL')
    parser.add_argument('dst', help='file to write')
    parser.add_argument('--dataset', required=True, choices=sorted(DATASET_TREES),
                        help='the dataset the checkpoint was trained on (its tree)')
    parser.add_argument('--config', help='also check every key and shape against the model '
                        'of this config (e.g. configs/hssn_release/hssn_release_cityscapes.py)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    tree = ClassHierarchy(DATASET_TREES[args.dataset])
    checkpoint = CheckpointLoader.load_checkpoint(args.src, map_location='cpu')
    try:
        converted = convert_checkpoint(checkpoint, tree, args.src)
        if args.config:
            check_against_model(converted['state_dict'], config_model_state(args.config),
                                args.src, args.config)
    except ConversionError as err:
        raise SystemExit(f'hssn2hseg: {err}') from None
    dst_dir = osp.dirname(osp.abspath(args.dst))
    if not osp.isdir(dst_dir):
        raise SystemExit(f'hssn2hseg: the folder of {args.dst} does not exist')
    torch.save(converted, args.dst)
    print(f'{args.dst}: {len(converted["state_dict"]) - 1} tensors, tree '
          f'{DATASET_TREES[args.dataset]} ({tree.num_nodes} nodes)')


if __name__ == '__main__':
    main()
