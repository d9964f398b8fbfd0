"""Hand-made inputs for mmseg's model API (as `mmseg.testing`): tests and tools build them.

A sample carries its leaf labels as `gt_sem_seg` and the image, original and padded shapes
the decode heads and metrics read; no file is behind it.
"""
from typing import List

import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

__all__ = ['seg_data_samples', 'seg_batch']


def seg_data_samples(labels: torch.Tensor, with_paths: bool = False) -> List[SegDataSample]:
    """One SegDataSample per label map of `labels` (N, H, W), shapes (H, W); with
    `with_paths`, also `img_path='image_<i>.jpg'` (for code that names its images)."""
    samples = []
    for i, label in enumerate(labels):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=label[None])
        shape = tuple(label.shape)
        meta = dict(img_shape=shape, ori_shape=shape, pad_shape=shape)
        if with_paths:
            meta['img_path'] = f'image_{i}.jpg'
        sample.set_metainfo(meta)
        samples.append(sample)
    return samples


def seg_batch(images: torch.Tensor, labels: torch.Tensor) -> dict:
    """`train_step` / `test_step` input: images (N, 3, H, W), leaf labels (N, H, W)."""
    return dict(inputs=list(images), data_samples=seg_data_samples(labels))
