"""IoU, pixel accuracy and cross-level consistency for every level of a class tree."""
import logging
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.dist import is_main_process
from mmengine.logging import MMLogger, print_log
from mmengine.utils import mkdir_or_exist
from mmseg.evaluation.metrics import IoUMetric
from mmseg.registry import METRICS
from PIL import Image
from prettytable import PrettyTable
from torch import Tensor

from ...hierarchy import ClassHierarchy, build_hierarchy
from ...structures import pixel_data, sample_level_labels
from .calibration import (PROBABILITY_DESCRIPTIONS, PROBABILITY_MODES, calibration_errors,
                          calibration_sums, leaf_probabilities, scores_mode)

__all__ = ['HierarchicalIoUMetric', 'background_classes', 'confusion_to_metrics',
           'format_level_table']


def background_classes(hierarchy: ClassHierarchy, names: Sequence[str]) -> List[List[int]]:
    """Class indices of each level that count as background.

    A background class is a leaf whose name is in `names` and that is alone under its
    depth-1 ancestor: a leaf directly under the root (carried down to every level), or
    the end of a single-child chain such as the HSSN release's background repeated per
    level (`background_l1 -> background_l2 -> background`). At each level, the class
    holding that leaf and nothing else is background.

    Returns:
        one sorted list of class indices per level.
    """
    matrices = hierarchy.level_matrices()  # (C_k, L) each
    leaves = []
    for name in names:
        node = hierarchy.node_index(name)  # KeyError naming the node if absent
        label = hierarchy.node_label_ids[node]
        # the depth-1 class holding the leaf must hold nothing else
        if label is None or int(matrices[0][matrices[0][:, label].argmax()].sum()) != 1:
            raise ValueError(f'background node {name!r} must be a leaf alone under its '
                             'depth-1 ancestor (directly under the root, or a chain of '
                             'single children)')
        leaves.append(label)
    # class c of level k is background iff the leaves beneath it are one background leaf
    return [sorted(c for c, row in enumerate(matrix)
                   if int(row.sum()) == 1 and any(row[l] == 1 for l in leaves))
            for matrix in matrices]


def confusion_to_metrics(confusion: Tensor,
                         nan_to_num: Optional[int] = None) -> Dict[str, np.ndarray]:
    """Per-class IoU and accuracy from a confusion matrix, through mmseg's helper.

    Args:
        confusion: (C, C), rows ground truth, columns prediction.

    Returns:
        'aAcc' (scalar), 'IoU' (C,), 'Acc' (C,), fractions in [0, 1]; a class absent
        from both ground truth and prediction has NaN IoU (absent from the ground
        truth: NaN Acc), as in mmseg's IoUMetric.
    """
    confusion = confusion.double()
    intersect = confusion.diagonal()
    area_label = confusion.sum(1)
    area_pred = confusion.sum(0)
    union = area_label + area_pred - intersect
    return IoUMetric.total_area_to_metrics(intersect, union, area_pred, area_label,
                                           ['mIoU'], nan_to_num)


def _nanmean(values: np.ndarray) -> float:
    """Mean over non-NaN entries; NaN (without numpy's warning) when there are none."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float('nan')


def format_level_table(hierarchy: ClassHierarchy, level_metrics: Sequence[Mapping],
                       background: Optional[Sequence[Sequence[int]]] = None,
                       consistency: Optional[float] = None,
                       calibration: Optional[Sequence[Tuple[float, float]]] = None,
                       calibration_note: Optional[str] = None) -> str:
    """Every level and class in one table, then a per-level summary.

    Args:
        hierarchy: the class tree.
        level_metrics: per level, `confusion_to_metrics`' dict (fractions).
        background: per level, the class indices left out of the `_nobg` mean.
        consistency: share of consistent pixels in percent, printed under the tables.
        calibration: per level, (ECE, class-wise ECE) as fractions; adds the
            summary columns 'ECE' and 'cwECE' (percent) after the others.
        calibration_note: printed last (how the probabilities were obtained).

    Returns:
        the tables as text.
    """
    background = background or [[] for _ in level_metrics]
    classes = PrettyTable()
    classes.field_names = ['Level', 'Class', 'IoU', 'Acc']
    summary = PrettyTable()
    summary.field_names = ['Level', 'classes', 'mIoU', 'mIoU (no bg)', 'mAcc', 'aAcc'] + \
        (['ECE', 'cwECE'] if calibration is not None else [])
    for k, metrics in enumerate(level_metrics):
        names = hierarchy.level_names(k)
        for c, name in enumerate(names):
            label = f'{name} (bg)' if c in background[k] else name
            classes.add_row([f'L{k + 1}', label, f'{metrics["IoU"][c] * 100:.2f}',
                             f'{metrics["Acc"][c] * 100:.2f}'])
        keep = [c for c in range(len(names)) if c not in background[k]]
        row = [f'L{k + 1}', len(names), f'{_nanmean(metrics["IoU"]) * 100:.2f}',
               f'{_nanmean(metrics["IoU"][keep]) * 100:.2f}',
               f'{_nanmean(metrics["Acc"]) * 100:.2f}', f'{float(metrics["aAcc"]) * 100:.2f}']
        if calibration is not None:
            row += [f'{value * 100:.2f}' for value in calibration[k]]
        summary.add_row(row)
    text = classes.get_string() + '\n' + summary.get_string()
    if consistency is not None:
        text += f'\nconsistent across levels: {consistency:.2f}% of pixels'
    if calibration_note:
        text += f'\n{calibration_note}'
    return text


@METRICS.register_module()
class HierarchicalIoUMetric(BaseMetric):
    """mIoU, pixel accuracy, consistency and calibration of every level of a class tree.

    Per sample, `process` stores one confusion matrix (C_k, C_k) per level plus the
    counts of consistent and evaluated pixels; these are integer counts, so the sum
    over the results that mmengine collects from every rank is exact under DDP.
    When the sample carries leaf scores (`seg_logits`, (L, H, W)), it also stores
    the per-bin sums of `calibration.calibration_sums` (float64; levels x bins x
    classes), from which `compute_metrics` derives the ECEs of the totals.

    Returned keys (percent, rounded to 2 decimals as mmseg does): `mIoU`, `mAcc`,
    `aAcc` of the deepest level with background (so `save_best='mIoU'` works); per
    level k (1-based) `mIoU_Lk`, `mIoU_Lk_nobg`, `aAcc_Lk`; `consistency`, the
    share of evaluated pixels whose level-k prediction is the parent of their
    level-(k+1) prediction for every k. Per-class values are printed as a table.
    Calibration, only when some sample had leaf scores: per level `ECE_Lk`
    (top-label expected calibration error) and `cwECE_Lk` (class-wise ECE),
    percent, over `ece_bins` equal-width bins (formulas in `calibration.py`).
    The probabilities of level k are the leaf probabilities summed up the tree
    (`ClassHierarchy.sum_to_levels`); the binned prediction is the level's
    predicted class (`pred_level_seg`), its confidence that class's probability
    (for derived levels it need not be the level's largest probability).

    The tree is the one its dataset carries in `dataset_meta` (mmengine's loops hand
    the dataset's metainfo to the metric), else the one given here (the tools write
    the config's tree into the metric where the dataset holds none, e.g. mmseg's).

    Args:
        hierarchy: the class tree (nested mapping, preset name or ClassHierarchy),
            or None to take it from `dataset_meta`.
        ignore_index: ground-truth value left out everywhere.
        background: names of depth-1 leaves left out of the `_nobg` means; a name
            the tree lacks is an error unless it is the default 'background'.
        nan_to_num: replace NaN per-class values (classes absent from both ground
            truth and prediction) by this number; by default they are left out of
            the means, as in mmseg.
        output_dir: if set, every level's prediction is saved as
            `output_dir/L<k>/<image name>.png` (class indices of level k; the
            deepest level holds leaf ids), as `tools/test.py --out` asks.
        format_only: only save the predictions (needs `output_dir`); no ground
            truth is read and no metric is computed, as in mmseg's IoUMetric.
        ece_bins: number of equal-width confidence bins of the ECEs (20, as Weber
            et al. 2024); 0 turns calibration off.
        probabilities: how leaf scores become leaf probabilities. 'given': they
            are probabilities (the 'flat', 'level_argmax' and 'hierahyp' rules: softmax);
            'normalised': divided by their per-pixel sum (the 'tree_min' and
            'path_sum' rules, whose sigmoid scores are no distribution, and
            'hssn_release', whose leaf scores carry their ancestors' probabilities);
            'softmax': they are logits (a plain mmseg model, the 'hssn_mmseg' rule). 'auto' (default)
            decides per sample: by its `inference_rule` metainfo if present,
            else 'given' or 'normalised' for a hierarchical segmentor's sample
            (one with `pred_level_seg`) as its scores do or do not sum to 1 per
            pixel, else 'softmax'.
        collect_device / prefix: as in mmengine's BaseMetric.
    """

    def __init__(self,
                 hierarchy: Union[ClassHierarchy, Mapping, str, None] = None,
                 ignore_index: int = 255,
                 background: Sequence[str] = ('background', ),
                 nan_to_num: Optional[int] = None,
                 output_dir: Optional[str] = None,
                 format_only: bool = False,
                 ece_bins: int = 20,
                 probabilities: str = 'auto',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ignore_index = ignore_index
        if isinstance(background, str):
            background = (background, )
        self.background_names = tuple(background)
        self.nan_to_num = nan_to_num
        if format_only and not output_dir:
            raise ValueError('HierarchicalIoUMetric: format_only=True needs output_dir')
        self.output_dir = output_dir
        self.format_only = format_only
        if output_dir and is_main_process():
            mkdir_or_exist(output_dir)
        if isinstance(ece_bins, bool) or not isinstance(ece_bins, int) or ece_bins < 0:
            raise ValueError(f'HierarchicalIoUMetric: ece_bins must be an integer >= 0 '
                             f'(0 = no calibration), got {ece_bins!r}')
        if probabilities not in PROBABILITY_MODES:
            raise ValueError(f'HierarchicalIoUMetric: unknown probabilities={probabilities!r};'
                             f' valid: {", ".join(PROBABILITY_MODES)}')
        self.ece_bins = ece_bins
        self.probabilities = probabilities
        self._modes = PROBABILITY_MODES[1:]  # counted per sample, in this order

        self.level_results: List[Dict[str, np.ndarray]] = []  # of the last evaluation
        self._consistency = float('nan')
        self.calibration_results: Optional[List[Tuple[float, float]]] = None
        self._calibration_note: Optional[str] = None
        self.hierarchy: Optional[ClassHierarchy] = None
        if hierarchy is not None:
            self._adopt(hierarchy)

    def _adopt(self, hierarchy: Union[ClassHierarchy, Mapping, str]) -> None:
        """Take the tree and derive the per-level tables from it."""
        tree = build_hierarchy(hierarchy, ignore_index=self.ignore_index)
        if tree.ignore_index != self.ignore_index:
            raise ValueError(f'the hierarchy uses ignore index {tree.ignore_index}'
                             f' but the metric was given ignore_index={self.ignore_index}')
        names = self.background_names
        if names == ('background', ) and 'background' not in tree.node_names:
            names = ()  # the default on a tree without a background class
        self.background = background_classes(tree, names)
        self.background_names = names
        self.hierarchy = tree
        sizes = tree.level_sizes
        # Offsets of each level's flattened (C_k * C_k) block in one bincount.
        squares = torch.tensor([c * c for c in sizes])
        self._offsets = torch.cumsum(squares, 0) - squares
        self._num_bins = int(squares.sum())
        self._parents = [torch.as_tensor(tree.level_parents(k))
                         for k in range(1, tree.num_levels)]
        # (sum_k C_k, L): row offsets[k] + c adds up the leaves of class c of level k.
        self._level_matrix = torch.cat(tree.level_matrices())
        self._level_rows = [int(o) for o in torch.cumsum(torch.tensor([0] + sizes[:-1]), 0)]

    @property
    def dataset_meta(self) -> Optional[dict]:
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: Optional[dict]) -> None:
        """mmengine's loops set this from the dataset's metainfo: its tree is adopted
        when none was given (a tree that differs is HierarchyCheckHook's to report)."""
        self._dataset_meta = dataset_meta
        if self.hierarchy is None and (dataset_meta or {}).get('hierarchy') is not None:
            self._adopt(dataset_meta['hierarchy'])

    def _tree(self) -> ClassHierarchy:
        if self.hierarchy is None:
            raise ValueError('HierarchicalIoUMetric has no class tree: its dataset carries '
                             'none in dataset_meta; state the tree at the config\'s top level '
                             '(hierarchy = ...), which the tools write into the metric')
        return self.hierarchy

    def confusion(self, gt_levels: Tensor, pred_levels: Tensor) -> Tensor:
        """Counts of one sample: confusion blocks of every level, then 2 counts.

        Args:
            gt_levels: (D, H, W) class indices per level, ignore pixels at ignore_index.
            pred_levels: (D, H, W).

        Returns:
            (sum_k C_k^2 + 2,) int64 on the CPU: for each level its (C_k, C_k)
            confusion matrix (rows ground truth) flattened, then the number of
            consistent pixels and of evaluated pixels.
        """
        device = pred_levels.device
        valid = gt_levels[0] != self.ignore_index  # ignore is ignore at every level
        gt = gt_levels[:, valid]  # (D, P)
        pred = pred_levels[:, valid].to(gt.dtype)
        sizes = torch.as_tensor(self.hierarchy.level_sizes, device=device).view(-1, 1)
        index = self._offsets.to(device).view(-1, 1) + gt * sizes + pred
        counts = torch.bincount(index.flatten(), minlength=self._num_bins)

        consistent = torch.ones(pred.shape[1], dtype=torch.bool, device=device)
        for k, parents in enumerate(self._parents, start=1):
            consistent &= parents.to(device)[pred[k]] == pred[k - 1]
        extra = torch.stack([consistent.sum(), torch.tensor(pred.shape[1], device=device)])
        return torch.cat([counts, extra]).cpu()

    def calibration(self, gt_levels: Tensor, pred_levels: Tensor, scores: Tensor,
                    mode: str) -> Optional[Tensor]:
        """Per-bin sums of one sample (`calibration.calibration_sums`), then 3 counts.

        Args:
            gt_levels: (D, H, W) class indices per level, ignore pixels at ignore_index.
            pred_levels: (D, H, W).
            scores: (L, H, W) leaf scores.
            mode: 'given', 'normalised' or 'softmax' (see `probabilities`).

        Returns:
            float64 on the CPU: the sums, then a one-hot count of `mode` among
            ('given', 'normalised', 'softmax'); None if a probability is NaN or
            infinite (a diverged model): the sample is left out of the ECEs.
        """
        device = scores.device
        gt, pred = gt_levels.to(device).flatten(1), pred_levels.to(device).flatten(1)
        scores = scores.flatten(1)
        valid = gt[0] != self.ignore_index
        if not bool(valid.all()):  # (skips the selection when nothing is ignored)
            keep = valid.nonzero().squeeze(1)
            gt, pred, scores = (t.index_select(1, keep) for t in (gt, pred, scores))
        probs = leaf_probabilities(scores, mode)  # (L, P)
        if not bool(torch.isfinite(probs.sum())):  # one NaN or inf makes the sum so
            return None
        level_probs = self._level_matrix.to(device) @ probs  # (sum_k C_k, P)
        sums = calibration_sums(level_probs, self._level_rows, gt, pred, self.ece_bins)
        modes = torch.tensor([float(mode == m) for m in self._modes], dtype=torch.float64)
        return torch.cat([sums, modes])

    def _leaf_scores(self, sample, gt_levels: Tensor) -> Optional[Tensor]:
        """The sample's `seg_logits` (L, H, W), checked; None if absent or unused."""
        if not self.ece_bins:
            return None
        scores = pixel_data(sample, 'seg_logits')
        if scores is None:
            return None
        source = sample.get('img_path', None) or 'data sample'
        expected = (self.hierarchy.num_leaves, *gt_levels.shape[1:])
        if tuple(scores.shape) != expected:
            raise ValueError(f'{source}: seg_logits must be leaf scores (L, H, W) = '
                             f'{expected} for this hierarchy and ground truth, got '
                             f'{tuple(scores.shape)}; calibration needs them '
                             '(or set ece_bins=0)')
        return scores

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Store the counts of each sample in `self.results` (and save predictions).

        Each result is (confusion counts, calibration sums or None).
        """
        for sample in data_samples:
            gt_levels, pred_levels = sample_level_labels(
                sample, self._tree(), need_gt=not self.format_only)
            if self.output_dir:
                self._save(sample, pred_levels)
            if self.format_only:
                continue
            gt_levels = gt_levels.to(pred_levels.device)
            calibration = None
            scores = self._leaf_scores(sample, gt_levels)
            if scores is not None:
                mode = self.probabilities
                if mode == 'auto':
                    mode = scores_mode(
                        scores, sample.get('inference_rule', None),
                        hierarchical=sample.get('pred_level_seg', None) is not None,
                        source=sample.get('img_path', None) or 'seg_logits')
                calibration = self.calibration(gt_levels, pred_levels, scores, mode)
            self.results.append((self.confusion(gt_levels, pred_levels), calibration))

    def _save(self, sample, pred_levels: Tensor) -> None:
        name = osp.splitext(osp.basename(sample.get('img_path', None) or
                                         f'{len(self.results):06d}'))[0]
        for k, level in enumerate(pred_levels.cpu().numpy().astype(np.uint8)):
            folder = osp.join(self.output_dir, f'L{k + 1}')
            mkdir_or_exist(folder)
            Image.fromarray(level).save(osp.join(folder, f'{name}.png'))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Sum the counts of all samples (all ranks) and derive the metrics."""
        if self.format_only:
            print_log(f'predictions saved to {self.output_dir}', MMLogger.get_current_instance())
            return OrderedDict()
        results = [r if isinstance(r, tuple) else (r, None) for r in results]
        total = torch.stack([counts for counts, _ in results]).sum(0)
        sizes = self.hierarchy.level_sizes
        self.level_results = []
        metrics: Dict[str, float] = OrderedDict()
        for k, c in enumerate(sizes):
            start = int(self._offsets[k])
            level = confusion_to_metrics(total[start:start + c * c].view(c, c),
                                         self.nan_to_num)
            self.level_results.append(level)
            keep = [i for i in range(c) if i not in self.background[k]]
            metrics[f'mIoU_L{k + 1}'] = _nanmean(level['IoU'])
            metrics[f'mIoU_L{k + 1}_nobg'] = _nanmean(level['IoU'][keep])
            metrics[f'aAcc_L{k + 1}'] = float(level['aAcc'])
        deepest = self.level_results[-1]
        leaf = OrderedDict(mIoU=_nanmean(deepest['IoU']), mAcc=_nanmean(deepest['Acc']),
                           aAcc=float(deepest['aAcc']))
        consistent, evaluated = total[-2:].tolist()
        metrics['consistency'] = consistent / evaluated if evaluated else float('nan')
        metrics.update(self._calibration_metrics([c for _, c in results if c is not None],
                                                 len(results)))
        leaf.update(metrics)
        out = OrderedDict((key, round(value * 100, 2)) for key, value in leaf.items())

        self._consistency = out['consistency']
        logger: MMLogger = MMLogger.get_current_instance()
        print_log('per level and class results:', logger)
        print_log('\n' + self.format_table(), logger=logger)
        return out

    def _calibration_metrics(self, sums: List[Tensor], num_samples: int) -> Dict[str, float]:
        """`ECE_Lk` and `cwECE_Lk` (fractions) from the samples' calibration sums."""
        self.calibration_results = self._calibration_note = None
        if not sums:
            return {}
        total = torch.stack(sums).sum(0)
        modes = total[-len(self._modes):].long().tolist()
        errors = calibration_errors(total[:-len(self._modes)], self.hierarchy.level_sizes,
                                    self.ece_bins)
        self.calibration_results = errors
        used = '; '.join(f'{PROBABILITY_DESCRIPTIONS[m]}: {n} image(s)'
                         for m, n in zip(self._modes, modes) if n)
        self._calibration_note = (f'ECE / cwECE: {self.ece_bins} equal-width bins; level '
                                  f'probabilities = leaf probabilities summed up the tree; '
                                  f'{used}')
        if len(sums) < num_samples:
            self._calibration_note += (f'; {num_samples - len(sums)} image(s) without '
                                       '(finite) seg_logits left out')
            print_log(f'HierarchicalIoUMetric: {num_samples - len(sums)} of {num_samples} '
                      'samples have no (finite) seg_logits; ECE is over the others only',
                      MMLogger.get_current_instance(), level=logging.WARNING)
        metrics: Dict[str, float] = OrderedDict()
        for k, (ece, cw_ece) in enumerate(errors):
            metrics[f'ECE_L{k + 1}'] = ece
            metrics[f'cwECE_L{k + 1}'] = cw_ece
        return metrics

    def format_table(self) -> str:
        """The per-level, per-class table of the last `compute_metrics` (for tools)."""
        if not self.level_results:
            raise RuntimeError('no results yet: run evaluate() or compute_metrics() first')
        return format_level_table(self.hierarchy, self.level_results, self.background,
                                  self._consistency, self.calibration_results,
                                  self._calibration_note)
