"""What the hierarchical segmentors add to mmseg's: leaf outputs and per-level predictions."""
import copy
import inspect
import json
from collections.abc import Mapping
from typing import Any, List, Optional, Sequence, Union

from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptSampleList, SampleList
import torch
from torch import Tensor, nn

from ...hierarchy import ClassHierarchy, build_hierarchy
from ...utils import config_class
from ..decode_heads.hierarchical_head_mixin import NO_TREE, HierarchicalHeadMixin, loss_class
from ..inference import RULES_AT_ORIGINAL_SIZE, leaf_scores, level_predictions
from .pretrained import named_weight_errors

__all__ = ['HierarchicalSegmentorMixin', 'PendingHeads', 'tree_state']


def _lacks_tree(head_cfgs: Union[None, ConfigType, List[ConfigType]]) -> bool:
    """Whether the last decode head is hierarchical and its config has no tree."""
    if head_cfgs is None:
        return False
    last = head_cfgs[-1] if isinstance(head_cfgs, (list, tuple)) else head_cfgs
    cls = config_class(last, MODELS)
    return cls is not None and issubclass(cls, HierarchicalHeadMixin) and \
        last.get('hierarchy') is None


def tree_state(hierarchy: ClassHierarchy) -> Tensor:
    """The tree as a segmentor's state dict holds it (key `_extra_state`): the JSON of
    `{'hierarchy': tree}` as a uint8 tensor (1-d, one byte each), so that a state dict
    stays all tensors; a checkpoint converter writes the same."""
    text = json.dumps({'hierarchy': hierarchy.to_dict()})
    return torch.tensor(list(text.encode('utf-8')), dtype=torch.uint8)


class PendingHeads:
    """Stands in for the decode head of a segmentor built without its tree: holds the
    head configs until a state dict brings the tree, and refuses to be used before.
    Not a module, so the model's weights, devices and modes leave it alone."""

    def __init__(self, decode_head: Union[ConfigType, List[ConfigType]]) -> None:
        self.decode_head = decode_head
        self.auxiliary_head: Optional[Union[ConfigType, List[ConfigType]]] = None
        last = decode_head[-1] if isinstance(decode_head, (list, tuple)) else decode_head
        self.type_name = last.get('type')

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        raise ValueError(f'{self.type_name}: {NO_TREE}')

    forward = loss = predict = __call__


class HierarchicalSegmentorMixin:
    """Mixed in before `EncoderDecoder` or `CascadeEncoderDecoder`.

    - `hierarchy` given to the segmentor is passed to every hierarchical head
      (decode and auxiliary) whose config leaves it out. A config states the tree once,
      at its top level (`hierarchy = ...`); `apply_hierarchy` writes it into the model.
    - The hierarchy and inference rule are read from the last decode head; the
      segmentor's `num_classes` is the number of LEAVES and `out_channels` the
      channels of what the head's `predict` returns (slide inference allocates them):
      the leaves, or the nodes for a rule applied at the original image size
      (`RULES_AT_ORIGINAL_SIZE`, whose leaf scores `postprocess_result` computes).
    - Plain (non-hierarchical) auxiliary heads get `num_classes` = number of leaves
      when their config leaves it out: the labels are leaf ids.
    - `postprocess_result` also attaches `pred_level_seg`, a `PixelData` whose data is
      (D, H, W) long, level 0 first, from the resized leaf scores by the head's rule.
    - `init_weights` (mmengine's; pretrained weights load there) turns a failed
      download into one error naming the config key (`pretrained.py`).
    - The tree travels in the weights: `get_extra_state` puts it into every state dict
      (key `_extra_state`). A model built from a source config by mmseg's `init_model`
      or `MMSegInferencer` (which build `cfg.model` as it is, without the top-level
      `hierarchy`) has no tree yet: its heads wait (`PendingHeads`) until a state dict
      carrying one is loaded, then are built from their configs and receive their
      weights in the same load (torch loads a module's extra state before its children).
    """

    hierarchy: ClassHierarchy
    weight_references: Sequence[tuple] = ()  # (config key, weight name), set by the segmentor
    _pending_heads: Optional['PendingHeads'] = None

    def init_weights(self) -> None:
        with named_weight_errors(self.weight_references):
            super().init_weights()

    @staticmethod
    def _fill_hierarchy(head_cfgs: Union[None, ConfigType, List[ConfigType]],
                        hierarchy: Union[None, ClassHierarchy, Mapping, str], what: str
                        ) -> Union[None, ConfigType, List[ConfigType]]:
        """Head configs with `hierarchy` filled in where the head is hierarchical."""
        if head_cfgs is None or hierarchy is None:
            return head_cfgs
        is_list = isinstance(head_cfgs, (list, tuple))
        out = []
        for i, cfg in enumerate(head_cfgs if is_list else [head_cfgs]):
            cfg = copy.deepcopy(cfg)
            cls = config_class(cfg, MODELS)
            if cls is not None and issubclass(cls, HierarchicalHeadMixin):
                if cfg.get('hierarchy') is None:
                    cfg['hierarchy'] = hierarchy
                elif not build_hierarchy(cfg['hierarchy']).same_tree(build_hierarchy(hierarchy)):
                    name = f'{what}[{i}]' if is_list else what
                    raise ValueError(f'{name} has another hierarchy than model.hierarchy; '
                                     'leave it out to use the model\'s')
            out.append(cfg)
        return out if is_list else out[0]

    @property
    def hierarchical_head(self) -> HierarchicalHeadMixin:
        """The decode head whose predictions are the segmentor's (the last stage)."""
        heads = self.decode_head
        return heads[-1] if isinstance(heads, nn.ModuleList) else heads

    def _init_decode_head(self, decode_head: Union[ConfigType, List[ConfigType]]) -> None:
        if _lacks_tree(decode_head):
            # built from a source config by mmseg's API: the heads wait for the tree
            self._pending_heads = PendingHeads(decode_head)
            self.decode_head = self._pending_heads
            last = decode_head[-1] if isinstance(decode_head, (list, tuple)) else decode_head
            self.align_corners = last.get('align_corners', False)
            self.num_classes = self.out_channels = None
            return
        super()._init_decode_head(decode_head)
        head = self.hierarchical_head
        if not isinstance(head, HierarchicalHeadMixin):
            raise TypeError(
                f'{type(self).__name__} needs a hierarchical last decode head (e.g. '
                f'HierarchicalDepthwiseSeparableASPPHead), got {type(head).__name__}')
        self.hierarchy = head.hierarchy
        stages = self.decode_head if isinstance(self.decode_head, nn.ModuleList) else []
        for i, stage in enumerate(stages):
            # A stage whose channels feed the next must score the same nodes.
            if isinstance(stage, HierarchicalHeadMixin) and \
                    not stage.hierarchy.same_tree(self.hierarchy):
                raise ValueError(f'decode_head[{i}] has another hierarchy than the last stage')
        self.num_classes = self.hierarchy.num_leaves
        self.out_channels = head.predict_channels

    def _init_auxiliary_head(self, auxiliary_head: Optional[Union[ConfigType, List]]) -> None:
        if self._pending_heads is not None:
            self._pending_heads.auxiliary_head = auxiliary_head
            return
        if auxiliary_head is None:
            return super()._init_auxiliary_head(auxiliary_head)
        cfgs = auxiliary_head if isinstance(auxiliary_head, list) else [auxiliary_head]
        filled = []
        for i, cfg in enumerate(cfgs):
            cfg = copy.deepcopy(cfg)
            if 'hierarchy' not in cfg:  # a plain mmseg head classifies leaf ids
                leaves = self.hierarchy.num_leaves
                if cfg.get('num_classes') is None:
                    cfg['num_classes'] = leaves
                elif cfg['num_classes'] != leaves:
                    raise ValueError(
                        f'auxiliary_head[{i}] ({cfg.get("type")}): num_classes='
                        f'{cfg["num_classes"]} but the hierarchy has {leaves} leaves '
                        f'{self.hierarchy.leaf_names}; leave num_classes out')
                losses = cfg.get('loss_decode') or []
                for j, loss in enumerate(losses if isinstance(losses, list) else [losses]):
                    if 'hierarchy' in inspect.signature(loss_class(loss).__init__).parameters:
                        raise ValueError(
                            f'auxiliary_head[{i}] ({cfg.get("type")}) is a plain head with one '
                            f'channel per leaf, but its loss_decode[{j}] '
                            f'({loss.get("type")}) scores the nodes of the tree; use a '
                            'hierarchical head (e.g. HierarchicalFCNHead) or a leaf loss')
            filled.append(cfg)
        super()._init_auxiliary_head(filled if isinstance(auxiliary_head, list) else filled[0])

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._pending_heads is not None:  # before any size is read (slide inference)
            raise ValueError(f'{self._pending_heads.type_name}: {NO_TREE}')
        return super().forward(*args, **kwargs)

    def get_extra_state(self) -> Tensor:
        """The tree, saved with the weights: its JSON as a uint8 tensor, so that a state
        dict stays all tensors (torch.jit.trace, ONNX export and mmengine's checkpoint
        tools read it so); empty while the tree is pending."""
        if self._pending_heads is not None:
            return torch.zeros(0, dtype=torch.uint8)
        return tree_state(self.hierarchy)

    def set_extra_state(self, state: Any) -> None:
        """Build the pending heads on the tree of the weights being loaded; a model that
        has its tree keeps it (which trees may meet is `HierarchyCheckHook`'s to say)."""
        pending = self._pending_heads
        if pending is None or not isinstance(state, Tensor) or state.numel() == 0:
            return
        tree = json.loads(bytes(state.tolist()).decode('utf-8'))['hierarchy']
        device = next(self.parameters()).device
        self._pending_heads = None
        del self.decode_head
        self._init_decode_head(self._fill_hierarchy(pending.decode_head, tree, 'decode_head'))
        self._init_auxiliary_head(
            self._fill_hierarchy(pending.auxiliary_head, tree, 'auxiliary_head'))
        self.to(device)

    def postprocess_result(self, seg_logits: Tensor,
                           data_samples: OptSampleList = None) -> SampleList:
        """mmseg's results plus `pred_level_seg` (D, H, W) per sample.

        Args:
            seg_logits: leaf scores (N, L, H, W) from `inference`; for a rule in
                `RULES_AT_ORIGINAL_SIZE`, node logits (N, V, H, W), which mmseg's
                `postprocess_result` unpads, unflips and resizes to the original image
                before the rule turns them into leaf scores here (the HSSN release
                resized its logits before its softmax).
            data_samples: as mmseg's `postprocess_result`.
        """
        data_samples = super().postprocess_result(seg_logits, data_samples)
        rule = self.hierarchical_head.inference
        if rule in RULES_AT_ORIGINAL_SIZE:
            for sample in data_samples:
                # mmseg's argmax over the node channels is replaced by the leaf argmax
                leaf = leaf_scores(sample.seg_logits.data.unsqueeze(0), self.hierarchy,
                                   rule, self.hierarchical_head.inference_options)[0]
                sample.set_data({'seg_logits': PixelData(data=leaf),
                                 'pred_sem_seg': PixelData(
                                     data=leaf.argmax(dim=0, keepdim=True))})
        for sample in data_samples:
            # seg_logits is now unpadded, unflipped and at the original size.
            leaf = sample.seg_logits.data.unsqueeze(0)
            levels = level_predictions(leaf, self.hierarchy, rule)[0]
            sample.set_data({'pred_level_seg': PixelData(data=levels)})
            # the metric's calibration reads which probabilities the leaf scores are;
            # a visualiser built without a tree names the levels' classes by this one
            sample.set_metainfo(dict(inference_rule=rule, hierarchy=self.hierarchy))
        return data_samples
