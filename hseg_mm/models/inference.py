"""Inference rules: node scores -> leaf scores -> a prediction at every level.

A hierarchical head outputs one logit per tree node, (N, V, H, W), channels in
`hierarchy.node_names` order. `leaf_scores` turns them into one score per leaf
class, (N, L, H, W) with channel l = label id l, so mmseg's metrics and test-time
augmentation work on them unchanged. `level_predictions` turns leaf scores into
class indices for every level, (N, D, H, W).

Rules:

- ``'tree_min'`` (HSSN paper): score of a leaf = min of the sigmoid scores of the
  nodes on its root-to-leaf path.
- ``'path_sum'``: score of a leaf = sum over levels of the sigmoid score of its node
  at that level. A leaf that sits higher than the deepest level (e.g. background)
  counts once per level it is carried down to, so every path has `num_levels` terms.
  This is NOT the HSSN release's rule (that one is ``'hssn_release'``: a softmax over
  all channels, not per-node sigmoids); it is kept as a sigmoid rule of its own.
- ``'hssn_release'`` (qhanghu/HSSN_pytorch): softmax over ALL node channels together,
  at the original image size; score of a leaf = the probability of its channel plus
  those of its ancestors' channels (`hssn_release_scores`).
- ``'hssn_mmseg'`` (mmseg projects/hssn): score of a leaf = the raw logit of its
  channel plus those of its ancestors' channels (`hssn_mmseg_scores`).
- ``'flat'`` (Weber et al. 2024): softmax over the leaf-node channels; a parent's
  score is the sum of its children's.
- ``'level_argmax'``: the same leaf softmax, summed to each level and argmaxed per
  level independently; may be inconsistent across levels (kept to measure that).
- ``'hierahyp'`` (tum-vision/hierahyp, Weber et al.'s code): 'level_argmax' at the
  original image size, i.e. the leaf softmax of node logits already resized to the
  image, each level argmaxed on its own (`hierahyp_scores`).
- ``'logic'`` (LogicSeg, Li et al., ICCV 2023): the sigmoid node scores refined by a few
  rounds of message passing whose messages are the logic rules (composition,
  decomposition, exclusion), each level normalised by a softmax, then the top-scoring
  path: a leaf's score is the sum of its path's refined scores (`logic_leaf_scores`;
  option `iterations`, default 2; 0 iterations is 'path_sum').

All rules but 'level_argmax' and 'hierahyp' derive every level from the leaf argmax, so
a pixel's level-k class is always the ancestor of its leaf class (consistent by
construction).

Where a rule is applied: the head applies it to node logits resized to the network
input, and the segmentor resizes the leaf scores to the original image. 'hssn_mmseg'
is linear in the logits, so for it that order changes nothing. The HSSN release
resized the logits to the original image and then took a softmax over all nodes,
which does not commute with resizing: for 'hssn_release' (`RULES_AT_ORIGINAL_SIZE`)
the head hands on node logits and the segmentor applies the rule after its resize.
hierahyp's test does the same with its leaf softmax, hence 'hierahyp' beside 'flat' and
'level_argmax' (the three agree wherever the test pipeline keeps the image's size).
"""
from typing import List, Mapping, Optional, Union

import torch
from torch import Tensor

from ..hierarchy import ClassHierarchy, build_hierarchy
from .logic_inference import logic_leaf_scores

__all__ = ['INFERENCE_RULES', 'RULE_OPTIONS', 'RULE_PROBABILITIES', 'RULES_AT_ORIGINAL_SIZE',
           'leaf_scores', 'level_predictions', 'check_rule', 'check_rule_options',
           'hssn_release_scores', 'hssn_mmseg_scores', 'hierahyp_scores']

INFERENCE_RULES = ('tree_min', 'path_sum', 'flat', 'level_argmax', 'hssn_release',
                   'hssn_mmseg', 'hierahyp', 'logic')
# The settings a rule takes (`decode_head.inference_options`); the other rules take none.
RULE_OPTIONS = dict(logic=('iterations', ))
# Rules whose leaf scores come from node logits already resized to the original image
# (a softmax, as the HSSN release and hierahyp applied it after the resize): the head's
# `predict` returns node logits for them and the segmentor applies the rule after its
# resize (`HierarchicalSegmentorMixin.postprocess_result`).
RULES_AT_ORIGINAL_SIZE = ('hssn_release', 'hierahyp')
# What each rule's leaf scores stand for, for calibration: 'given' = probabilities
# already (a softmax), 'normalised' = non-negative scores to divide by their
# per-pixel sum (sigmoid rules; 'hssn_release', whose leaf scores are softmax
# probabilities with every ancestor's added, so they sum to more than 1), 'softmax' =
# logits ('hssn_mmseg' sums raw logits). The metric reads it
# (evaluation/metrics/calibration.py).
RULE_PROBABILITIES = dict(flat='given', level_argmax='given', tree_min='normalised',
                          path_sum='normalised', hssn_release='normalised',
                          hssn_mmseg='softmax', hierahyp='given', logic='normalised')

HierarchyLike = Union[ClassHierarchy, Mapping, str]


def check_rule(rule: str) -> str:
    """Return `rule` if it is an inference rule, else raise naming the valid ones."""
    if rule not in INFERENCE_RULES:
        raise ValueError(f'unknown inference rule {rule!r}; valid rules: '
                         f'{", ".join(INFERENCE_RULES)}')
    return rule


def check_rule_options(rule: str, options: Optional[Mapping]) -> dict:
    """The settings in `options` that `rule` takes, as a dict.

    A setting of another rule is dropped, so that a config's rule can be switched alone
    (`--cfg-options model.decode_head.inference=tree_min` on a 'logic' config); a name
    no rule takes raises, naming the valid ones.
    """
    options = dict(options or {})
    known = {name for names in RULE_OPTIONS.values() for name in names}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f'unknown inference option(s) {unknown}; options by rule: '
                         f'{RULE_OPTIONS}')
    options = {k: v for k, v in options.items() if k in RULE_OPTIONS.get(rule, ())}
    iterations = options.get('iterations', 0)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"inference rule {rule!r}: iterations must be an integer >= 0, "
                         f'got {iterations!r}')
    return options


def _leaf_path_index(hierarchy: ClassHierarchy, device: torch.device) -> Tensor:
    """(L, D) node index of each leaf at each level (a carried leaf repeats)."""
    return torch.as_tensor(hierarchy.leaf_paths, dtype=torch.long, device=device)


def hssn_release_scores(node_logits: Tensor, hierarchy: ClassHierarchy) -> Tensor:
    """The HSSN release's leaf scores: softmax over all node channels, each leaf's
    probability plus the probabilities of its ancestors.

    Source: qhanghu/HSSN_pytorch, mmseg/models/segmentors/encoder_decoder.py,
    `EncoderDecoder.inference` (``output = F.softmax(seg_logit, dim=1)`` over all 26 /
    12 / 25 channels, after `whole_inference` resized the logits to ``ori_shape``) and
    `simple_test` (``seg_logit[:, 0:2] += seg_logit[:, -7]`` ...: every leaf channel
    gets its ancestors' channels added, then the parent channels are dropped,
    ``seg_logit[:, :-hiera_num_classes]``, and the argmax taken). The release's
    parent of a single child (Cityscapes' sky, the background repeated per level) is a
    node of its own here (the `*_hssn` presets), so its channel is added as well.

    Args:
        node_logits: (N, V, ...) node logits, at the original image size.
        hierarchy: the class tree.

    Returns:
        (N, L, ...) leaf scores in [0, 1] (a sum of distinct channels of one softmax),
        channel l = label id l; over the leaves they sum to more than 1, as each parent
        counts once per child.
    """
    probs = node_logits.softmax(dim=1).flatten(2)
    mask = hierarchy.path_mask_tensor(node_logits.device, probs.dtype)  # (L, V)
    scores = torch.einsum('lv,nvp->nlp', mask, probs)
    return scores.reshape(node_logits.shape[0], hierarchy.num_leaves, *node_logits.shape[2:])


def hssn_mmseg_scores(node_logits: Tensor, hierarchy: ClassHierarchy) -> Tensor:
    """mmseg projects/hssn's leaf scores: each leaf's logit plus its ancestors' logits.

    Source: open-mmlab/mmsegmentation, projects/hssn/decode_head/sep_aspp_contrast_head.py,
    `DepthwiseSeparableASPPContrastHead.predict_by_feat` (``seg_logit[:, 0:2] +=
    seg_logit[:, -7]`` ... on the raw logits at the head's resolution, parent channels
    dropped, then resized to the input). Bilinear resizing is linear, so summing after
    the resize, as here, gives the same scores.

    Args:
        node_logits: (N, V, ...) node logits.
        hierarchy: the class tree.

    Returns:
        (N, L, ...) leaf scores (sums of logits, unbounded), channel l = label id l.
    """
    flat = node_logits.flatten(2)
    mask = hierarchy.path_mask_tensor(node_logits.device, flat.dtype)  # (L, V)
    scores = torch.einsum('lv,nvp->nlp', mask, flat)
    return scores.reshape(node_logits.shape[0], hierarchy.num_leaves, *node_logits.shape[2:])


def hierahyp_scores(node_logits: Tensor, hierarchy: ClassHierarchy) -> Tensor:
    """hierahyp's leaf scores: the softmax over the leaf channels (the flat rule's).

    Source: tum-vision/hierahyp, whose test (tools/test.py -> mmseg/apis/test.py
    `single_gpu_val`) takes `EncoderDecoder.simple_test`'s logits, which
    `whole_inference` resized to the input and then to ``ori_shape``, and scores them in
    test_helpers/metric_helpers.py, `RunningPredictions`: `pred_childred`
    (``F.softmax(logits[:, 0:19] / self.T, dim=1)``, argmax: the 19 leaves) and
    `infer_parents` (the same softmax summed over each parent's children, argmax: the 7
    parents), with T = 1 (its `--T` default). The levels are therefore argmaxed one by
    one, as 'level_argmax' does (`level_predictions`), and from logits at the original
    image size (`RULES_AT_ORIGINAL_SIZE`).

    Args:
        node_logits: (N, V, ...) node logits, at the original image size; only the leaf
            channels are read (hierahyp's classifier scores the leaves alone).
        hierarchy: the class tree.

    Returns:
        (N, L, ...) leaf probabilities, channel l = label id l.
    """
    leaf_index = torch.as_tensor(hierarchy.leaf_nodes, device=node_logits.device)
    return node_logits.index_select(1, leaf_index).softmax(dim=1)


def leaf_scores(node_logits: Tensor, hierarchy: HierarchyLike, rule: str = 'tree_min',
                options: Optional[Mapping] = None) -> Tensor:
    """Score of every leaf class from the node logits.

    Args:
        node_logits: (N, V, H, W) (any number of trailing dims), one logit per
            tree node in `hierarchy.node_names` order.
        hierarchy: the class tree (or a config value for `build_hierarchy`).
        rule: one of `INFERENCE_RULES`.
        options: the rule's settings (`RULE_OPTIONS`), e.g. dict(iterations=3) for
            'logic'.

    Returns:
        (N, L, H, W), channel l = label id l. Sigmoid-based for 'tree_min'
        (in [0, 1]) and 'path_sum' (in [0, D]); softmax probabilities for
        'flat', 'level_argmax' and 'hierahyp' (give it node logits at the original
        image size); sums of softmax probabilities for 'hssn_release' (likewise); sums
        of logits for 'hssn_mmseg'; sums of one normalised score per level for 'logic'.
    """
    hierarchy = build_hierarchy(hierarchy)
    check_rule(rule)
    options = check_rule_options(rule, options)
    if node_logits.dim() < 2 or node_logits.shape[1] != hierarchy.num_nodes:
        raise ValueError(
            f'node_logits must be (N, V, ...) with V = {hierarchy.num_nodes} channels '
            f'(one per node: {hierarchy.node_names}), got shape {tuple(node_logits.shape)}')
    if rule in ('flat', 'level_argmax'):
        leaf_index = torch.as_tensor(hierarchy.leaf_nodes, device=node_logits.device)
        return node_logits.index_select(1, leaf_index).softmax(dim=1)
    if rule == 'hierahyp':
        return hierahyp_scores(node_logits, hierarchy)
    if rule == 'hssn_release':
        return hssn_release_scores(node_logits, hierarchy)
    if rule == 'hssn_mmseg':
        return hssn_mmseg_scores(node_logits, hierarchy)
    if rule == 'logic':
        return logic_leaf_scores(node_logits, hierarchy, **options)

    paths = _leaf_path_index(hierarchy, node_logits.device)  # (L, D)
    # (N, L*D, ...) -> (N, L, D, ...): a handful of channels, cheap to gather.
    gathered = node_logits.index_select(1, paths.flatten())
    gathered = gathered.unflatten(1, paths.shape)
    if rule == 'tree_min':
        # sigmoid is monotonic: the min of sigmoids is the sigmoid of the min logit.
        return gathered.amin(dim=2).sigmoid()
    return gathered.sigmoid().sum(dim=2)  # path_sum: a sum of per-level sigmoids


def level_predictions(leaf_scores: Tensor, hierarchy: HierarchyLike,
                      rule: str = 'tree_min') -> Tensor:
    """Class index at every level from leaf scores.

    Args:
        leaf_scores: (N, L, H, W) (any number of trailing dims) from
            `leaf_scores` with the same rule (possibly averaged over test-time
            augmentations); for 'level_argmax' and 'hierahyp' they must be
            probabilities.
        hierarchy: the class tree (or a config value for `build_hierarchy`).
        rule: one of `INFERENCE_RULES`.

    Returns:
        (N, D, H, W) long, level 0 (coarsest) first; class indices of each level
        as in `hierarchy.levels`.
    """
    hierarchy = build_hierarchy(hierarchy)
    check_rule(rule)
    if leaf_scores.dim() < 2 or leaf_scores.shape[1] != hierarchy.num_leaves:
        raise ValueError(
            f'leaf_scores must be (N, L, ...) with L = {hierarchy.num_leaves} leaf classes '
            f'({hierarchy.leaf_names}), got shape {tuple(leaf_scores.shape)}')
    if rule in ('level_argmax', 'hierahyp'):
        levels: List[Tensor] = [p.argmax(dim=1) for p in hierarchy.sum_to_levels(leaf_scores)]
        return torch.stack(levels, dim=1)
    leaf = leaf_scores.argmax(dim=1)  # (N, H, W)
    lut = torch.as_tensor(hierarchy.leaf_to_level, dtype=torch.long,
                          device=leaf_scores.device)  # (D, L)
    # lut[:, leaf] is (D, N, H, W); level axis goes second.
    return lut[:, leaf].movedim(0, 1)
