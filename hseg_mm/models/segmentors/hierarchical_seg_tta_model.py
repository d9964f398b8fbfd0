from typing import List

import torch
from mmengine.structures import PixelData
from mmseg.models.segmentors import SegTTAModel
from mmseg.registry import MODELS
from mmseg.utils import SampleList

from ..inference import level_predictions


@MODELS.register_module()
class HierarchicalSegTTAModel(SegTTAModel):
    """Test-time augmentation for hierarchical segmentors, merging every level.

    mmseg's `SegTTAModel` merges only `pred_sem_seg` and leaves the last view's
    `pred_level_seg` behind, so levels and leaves could disagree. Here the views'
    leaf scores (L, H, W) are averaged as they are (they are already probabilities or
    sigmoid scores), and `seg_logits`, `pred_sem_seg` (1, H, W) and `pred_level_seg`
    (D, H, W) all come from the average, by the wrapped segmentor's inference rule.
    """

    def merge_preds(self, data_samples_list: List[SampleList]) -> SampleList:
        segmentor = self.module
        rule = segmentor.hierarchical_head.inference
        merged = []
        for views in data_samples_list:
            scores = torch.stack([v.seg_logits.data for v in views]).mean(dim=0)  # (L, H, W)
            sample = views[0].new()
            sample.set_data({
                'seg_logits': PixelData(data=scores),
                'pred_sem_seg': PixelData(data=scores.argmax(dim=0, keepdim=True)),
                'pred_level_seg': PixelData(
                    data=level_predictions(scores[None], segmentor.hierarchy, rule)[0]),
            })
            merged.append(sample)
        return merged
