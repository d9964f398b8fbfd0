"""What the hierarchical segmentors add to mmseg's: leaf outputs and per-level predictions."""
import copy
from typing import List, Optional, Union

from mmengine.structures import PixelData
from mmseg.utils import ConfigType, OptSampleList, SampleList
from torch import Tensor, nn

from ...hierarchy import ClassHierarchy
from ..decode_heads.hierarchical_head_mixin import HierarchicalHeadMixin
from ..decode_heads.hierarchical_head_mixin import _same_tree
from ..inference import level_predictions

__all__ = ['HierarchicalSegmentorMixin']


class HierarchicalSegmentorMixin:
    """Mixed in before `EncoderDecoder` or `CascadeEncoderDecoder`.

    - The hierarchy and inference rule are read from the last decode head; the
      segmentor's `num_classes` / `out_channels` are the number of LEAVES, the
      channels of what the head's `predict` returns (slide inference allocates them).
    - Plain (non-hierarchical) auxiliary heads get `num_classes` = number of leaves
      when their config leaves it out: the labels are leaf ids.
    - `postprocess_result` also attaches `pred_level_seg`, a `PixelData` whose data is
      (D, H, W) long, level 0 first, from the resized leaf scores by the head's rule.
    """

    hierarchy: ClassHierarchy

    @property
    def hierarchical_head(self) -> HierarchicalHeadMixin:
        """The decode head whose predictions are the segmentor's (the last stage)."""
        heads = self.decode_head
        return heads[-1] if isinstance(heads, nn.ModuleList) else heads

    def _init_decode_head(self, decode_head: Union[ConfigType, List[ConfigType]]) -> None:
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
                    not _same_tree(stage.hierarchy, self.hierarchy):
                raise ValueError(f'decode_head[{i}] has another hierarchy than the last stage')
        self.num_classes = self.out_channels = self.hierarchy.num_leaves

    def _init_auxiliary_head(self, auxiliary_head: Optional[Union[ConfigType, List]]) -> None:
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
            filled.append(cfg)
        super()._init_auxiliary_head(filled if isinstance(auxiliary_head, list) else filled[0])

    def postprocess_result(self, seg_logits: Tensor,
                           data_samples: OptSampleList = None) -> SampleList:
        """mmseg's results plus `pred_level_seg` (D, H, W) per sample.

        Args:
            seg_logits: leaf scores (N, L, H, W) from `inference`.
            data_samples: as mmseg's `postprocess_result`.
        """
        data_samples = super().postprocess_result(seg_logits, data_samples)
        rule = self.hierarchical_head.inference
        for sample in data_samples:
            # seg_logits is now unpadded, unflipped and at the original size.
            leaf = sample.seg_logits.data.unsqueeze(0)
            levels = level_predictions(leaf, self.hierarchy, rule)[0]
            sample.set_data({'pred_level_seg': PixelData(data=levels)})
        return data_samples
