"""Check a dataset config's data before training on it, and suggest class weights.

    python tools/check_dataset.py CONFIG [--split train|val|all] [--cfg-options k=v ...]

For every listed id: the image and the label exist, the image decodes (a JPEG
must end with its end-of-image marker: a truncated file decodes partly grey),
the label has the image's size and holds only layout ids (mapped onto the tree)
or the ignore index. Every problem is collected and every bad file named; the
exit status is 1 if there was any. Then per level of the tree: pixel counts,
frequencies and inverse-frequency class weights normalised to average 1 over
the classes present (seed 001's weighting).
"""
import argparse
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import hseg_mm  # noqa: E402,F401  (registers the datasets; before mmseg.models)
import mmcv  # noqa: E402
import mmengine.fileio as fileio  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmseg.registry import DATASETS  # noqa: E402
from mmseg.utils import register_all_modules  # noqa: E402

from hseg_mm.datasets.labels import decode_label_map  # noqa: E402
from hseg_mm.datasets.transforms import (LoadCheckedAnnotations,  # noqa: E402
                                         LoadNpyAnnotations)
from hseg_mm.engine import apply_hierarchy  # noqa: E402
from hseg_mm.engine.launch import run_tool  # noqa: E402
from hseg_mm.hierarchy import ClassHierarchy  # noqa: E402

_LOADERS = {'train': 'train_dataloader', 'val': 'val_dataloader', 'test': 'test_dataloader'}


def _label_reader(dataset) -> LoadCheckedAnnotations:
    for t in getattr(dataset.pipeline, 'transforms', []):
        if isinstance(t, LoadCheckedAnnotations):
            return t
    return LoadNpyAnnotations() if dataset.seg_map_suffix == '.npy' else LoadCheckedAnnotations()


def _check_image(path: str, backend_args) -> Tuple[Optional[Tuple[int, int]], Optional[str]]:
    try:
        data = fileio.get(path, backend_args=backend_args)
    except Exception as err:
        return None, f'{path}: unreadable image ({err})'
    img = mmcv.imfrombytes(data, flag='color', backend='cv2')
    if img is None:
        return None, f'{path}: corrupt or unreadable image'
    if path.lower().endswith(('.jpg', '.jpeg')) and \
            not data.rstrip(b'\x00\r\n ').endswith(b'\xff\xd9'):
        return None, f'{path}: truncated JPEG (no end-of-image marker)'
    return img.shape[:2], None


def check_split(dataset, name: str) -> Tuple[np.ndarray, int, List[str], int]:
    """Check every item of `dataset` (built with lazy_init=True).

    Returns:
        leaf pixel counts (L,), ignored pixel count, problems, items listed.
    """
    hierarchy: ClassHierarchy = dataset.hierarchy
    counts = np.zeros(hierarchy.num_leaves, dtype=np.int64)
    ignored, problems = 0, []
    try:
        data_list, missing, split_file = dataset.list_split()
    except Exception as err:
        return counts, ignored, [f'[{name}] {err}'], 0
    problems += [f'[{name}] missing file: {p}' for p in missing]
    if not data_list:
        problems.append(f'[{name}] split list {split_file} is empty')
    reader = _label_reader(dataset)
    missing_set = set(missing)
    for k, info in enumerate(data_list):
        if k and k % 500 == 0:
            print(f'  [{name}] {k}/{len(data_list)}', flush=True)
        img_path, seg_path = info['img_path'], info['seg_map_path']
        shape = None
        if img_path not in missing_set:
            shape, problem = _check_image(img_path, dataset.backend_args)
            if problem:
                problems.append(f'[{name}] {problem}')
        if seg_path in missing_set:
            continue
        try:
            raw = reader._read_raw(seg_path)
            label = decode_label_map(raw, info['layout_to_tree'], info['ignore_index'],
                                     seg_path, expected_shape=shape,
                                     voc_colours=getattr(reader, 'voc_colours', False))
        except Exception as err:
            problems.append(f'[{name}] {err}')
            continue
        hist = np.bincount(label.ravel(), minlength=256)
        counts += hist[:hierarchy.num_leaves]
        ignored += int(hist[hierarchy.ignore_index])
    return counts, ignored, problems, len(data_list)


def level_statistics(hierarchy: ClassHierarchy, leaf_counts: np.ndarray
                     ) -> List[Dict[str, np.ndarray]]:
    """Per level: pixel counts, frequencies and class weights.

    Weights are 1 / frequency, normalised to average 1 over the classes that
    occur; a class with no pixels gets weight 0.

    Returns:
        one dict(names, counts, freq, weights) per level, level 0 first.
    """
    stats = []
    for k in range(hierarchy.num_levels):
        counts = np.bincount(hierarchy.leaf_to_level[k], weights=leaf_counts.astype(np.float64),
                             minlength=hierarchy.level_sizes[k])
        total = counts.sum()
        freq = counts / total if total else np.zeros_like(counts)
        present = counts > 0
        weights = np.zeros_like(counts)
        if present.any():
            inv = 1.0 / freq[present]
            weights[present] = inv / inv.mean()
        stats.append(dict(names=hierarchy.level_names(k), counts=counts, freq=freq,
                          weights=weights))
    return stats


def _dataset_cfgs(cfg: Config, split: str) -> List[Tuple[str, dict]]:
    names = ['train', 'val', 'test'] if split == 'all' else [split]
    out, seen = [], []
    for name in names:
        loader = cfg.get(_LOADERS[name])
        if loader is None:
            if split != 'all':
                raise KeyError(f'the config has no {_LOADERS[name]}')
            continue
        ds = loader['dataset']
        if ds in seen:  # test_dataloader = val_dataloader
            continue
        seen.append(ds)
        out.append((name, ds))
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description='Check a dataset config.')
    parser.add_argument('config')
    parser.add_argument('--split', choices=('train', 'val', 'test', 'all'), default='all')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    register_all_modules(init_default_scope=True)
    apply_hierarchy(cfg, check_paths=False)  # every problem is listed below instead

    problems: List[str] = []
    for name, ds_cfg in _dataset_cfgs(cfg, args.split):
        ds_cfg = dict(ds_cfg, lazy_init=True)
        try:
            dataset = DATASETS.build(ds_cfg)
        except Exception as err:
            problems.append(f'[{name}] cannot build the dataset: {err}')
            continue
        counts, ignored, found, num = check_split(dataset, name)
        problems += found
        hierarchy = dataset.hierarchy
        print(f'== {name}: {num} items, {len(found)} problems; '
              f'{int(counts.sum())} labelled pixels, {ignored} ignored')
        for k, st in enumerate(level_statistics(hierarchy, counts)):
            print(f'level {k + 1}:')
            for c, cname in enumerate(st['names']):
                note = '' if st['counts'][c] else '   (absent)'
                print(f'  {cname:<16} {int(st["counts"][c]):>12d} px  {st["freq"][c]:7.2%}  '
                      f'weight {st["weights"][c]:.3f}{note}')
            print(f'  class_weight={np.round(st["weights"], 4).tolist()}')
    if problems:
        print(f'\n{len(problems)} problems:')
        for p in problems:
            print(f'  {p}')
        return 1
    print('\nno problems found')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
