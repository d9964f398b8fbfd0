"""One confusion matrix per level of the tree from a test run's predictions: mmseg 1.x's
confusion_matrix.py.

    python tools/test.py CONFIG CKPT --out PRED_DIR
    python tools/analysis/confusion_matrix.py CONFIG PRED_DIR SAVE_DIR [--show]
        [--title TITLE] [--color-theme OrRd] [--cfg-options k=v ...]

PRED_DIR holds what `tools/test.py --out` writes: `L<k>/<image name>.png` with the class
indices of level k for every test image (HierarchicalIoUMetric's `output_dir`). Each
level is read as predicted, so the matrices are those of the model's own level maps for
every inference rule, `level_argmax` included (whose parent levels need not be the
ancestors of its leaf prediction). The ground truth is the config's test dataset
(`test_dataloader.dataset`), read through its pipeline as the metric reads it, and split
into levels by the config's tree; its ignore pixels are left out. Predictions are matched
to images by file name.

Writes, per level k, to SAVE_DIR: `confusion_matrix_L<k>.png` (rows ground truth,
columns prediction, each row normalised to 100%, the level's class names) and
`confusion_matrix_L<k>.csv` (the pixel counts); the row-normalised matrices are printed.
"""
import argparse
import csv
import os
import os.path as osp
import sys
from pathlib import Path
from typing import List, Optional, Sequence

try:
    import hseg_mm  # noqa: F401  (before mmseg.models: installs the version shims)
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import hseg_mm  # noqa: F401

import numpy as np  # noqa: E402
from mmengine.config import DictAction  # noqa: E402
from PIL import Image  # noqa: E402
from prettytable import PrettyTable  # noqa: E402

from hseg_mm.engine import ConfigError  # noqa: E402
from hseg_mm.engine.launch import load_config, run_tool  # noqa: E402
from hseg_mm.hierarchy import ClassHierarchy, build_hierarchy  # noqa: E402

# Cell values are written into the squares up to this many classes; beyond, colours only.
MAX_ANNOTATED = 30


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Per-level confusion matrices from a test run\'s predictions')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('prediction_path',
                        help='what tools/test.py --out wrote (L1/, L2/, ... of PNGs)')
    parser.add_argument('save_dir', help='where the matrices (PNG, CSV) are saved')
    parser.add_argument('--show', action='store_true', help='show the matrices')
    parser.add_argument('--color-theme', default='OrRd', help='matplotlib colour map')
    parser.add_argument('--title', default='Normalized Confusion Matrix',
                        help='title of the plots (the level is appended)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, key=value')
    return parser.parse_args(argv)


def level_folders(prediction_path: str, num_levels: int) -> List[str]:
    """PRED_DIR/L1 .. L<D>, checked against the tree's number of levels."""
    if not osp.isdir(prediction_path):
        raise ConfigError(f'{prediction_path}: no such folder')
    found = sorted((name for name in os.listdir(prediction_path)
                    if name[:1] == 'L' and name[1:].isdigit()
                    and osp.isdir(osp.join(prediction_path, name))), key=lambda n: int(n[1:]))
    expected = [f'L{k + 1}' for k in range(num_levels)]
    if found != expected:
        raise ConfigError(
            f'{prediction_path}: expected one folder per level of the config\'s tree '
            f'({", ".join(expected)}), as `tools/test.py CONFIG CKPT --out DIR` writes them; '
            f'found {found or "none"}')
    return [osp.join(prediction_path, name) for name in expected]


def _read_prediction(path: str, num_classes: int, shape: tuple) -> np.ndarray:
    pred = np.asarray(Image.open(path))
    if pred.shape != shape:
        raise ConfigError(f'{path}: prediction of size {pred.shape}, ground truth {shape}')
    if pred.size and int(pred.max()) >= num_classes:
        raise ConfigError(f'{path}: class index {int(pred.max())} outside the level\'s '
                          f'{num_classes} classes; written with another tree?')
    return pred.astype(np.int64)


def calculate_confusion_matrices(dataset, tree: ClassHierarchy,
                                 prediction_path: str) -> List[np.ndarray]:
    """Pixel counts (C_k, C_k) per level, rows ground truth, columns prediction.

    Args:
        dataset: the test dataset (its samples carry `gt_sem_seg`, leaf ids).
        tree: the class tree; its ignore index marks the pixels left out.
        prediction_path: PRED_DIR with L1/ .. L<D>/.

    Returns:
        num_levels int64 arrays.
    """
    folders = level_folders(prediction_path, tree.num_levels)
    names = [osp.splitext(osp.basename(dataset.get_data_info(i)['img_path']))[0]
             for i in range(len(dataset))]
    if len(set(names)) < len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f'test images share file names ({", ".join(twice[:3])}): their '
                          'predictions overwrite each other in --out')
    missing = [osp.join(folder, f'{name}.png') for name in names for folder in folders
               if not osp.isfile(osp.join(folder, f'{name}.png'))]
    if missing:
        raise ConfigError(f'{len(missing)} prediction files of the {len(names)} test images '
                          f'are missing, e.g. {missing[0]}; were they written by '
                          'tools/test.py --out with this config?')

    sizes = tree.level_sizes
    matrices = [np.zeros((c, c), dtype=np.int64) for c in sizes]
    from mmengine.utils import ProgressBar
    progress = ProgressBar(len(dataset))
    for index, name in enumerate(names):
        gt = dataset[index]['data_samples'].gt_sem_seg.data
        gt_levels = [g.squeeze(0).numpy() for g in tree.split_labels(gt)]
        valid = gt_levels[0] != tree.ignore_index  # ignored at one level, at all levels
        for k, (folder, c) in enumerate(zip(folders, sizes)):
            pred = _read_prediction(osp.join(folder, f'{name}.png'), c, valid.shape)
            matrices[k] += np.bincount(c * gt_levels[k][valid] + pred[valid],
                                       minlength=c * c).reshape(c, c)
        progress.update()
    print()
    return matrices


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row in percent of its sum; NaN where a class has no ground-truth pixel."""
    sums = matrix.sum(axis=1, keepdims=True).astype(np.float64)
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(sums > 0, matrix / sums * 100, np.nan)


def plot_confusion_matrix(matrix: np.ndarray, labels: Sequence[str], path: str,
                          title: str = 'Normalized Confusion Matrix',
                          color_theme: str = 'OrRd'):
    """Draw the row-normalised matrix (in %) to `path`, as mmseg's tool draws it.

    Args:
        matrix: (C, C) pixel counts, rows ground truth.
        labels: C class names.

    Returns:
        the matplotlib figure.
    """
    import matplotlib.pyplot as plt
    percent = normalise_rows(matrix)
    n = len(labels)
    side = max(4.0, 0.9 * n + 2.0)
    fig, ax = plt.subplots(figsize=(side + 1.5, side), dpi=100)
    image = ax.imshow(np.nan_to_num(percent), cmap=plt.get_cmap(color_theme), vmin=0,
                      vmax=100)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)  # as tall as the matrix
    ax.set_title(title, fontweight='bold')
    ax.set_ylabel('Ground Truth Label')
    ax.set_xlabel('Prediction Label')
    ax.set_xticks(np.arange(n))
    ax.set_yticks(np.arange(n))
    ax.set_xticklabels(labels)
    ax.set_yticklabels(labels)
    ax.tick_params(axis='x', bottom=False, top=True, labelbottom=False, labeltop=True)
    plt.setp(ax.get_xticklabels(), rotation=45, ha='left', rotation_mode='anchor')
    ax.set_xticks(np.arange(n + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(n + 1) - 0.5, minor=True)
    ax.grid(True, which='minor', linestyle='-', color='w')
    ax.tick_params(which='minor', length=0)
    if n <= MAX_ANNOTATED:
        for i in range(n):
            for j in range(n):
                value = percent[i, j]
                ax.text(j, i, '-' if np.isnan(value) else f'{value:.1f}%', ha='center',
                        va='center', color='w' if value > 60 else 'k', fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format='png')
    return fig


def save_csv(matrix: np.ndarray, labels: Sequence[str], path: str) -> None:
    """Pixel counts with the class names as header row and first column."""
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['gt \\ pred'] + list(labels))
        for name, row in zip(labels, matrix):
            writer.writerow([name] + [int(v) for v in row])


def format_matrix(matrix: np.ndarray, labels: Sequence[str]) -> str:
    """The row-normalised matrix as a text table (percent, '-' for an absent class)."""
    table = PrettyTable()
    table.field_names = ['gt \\ pred'] + list(labels)
    for name, row in zip(labels, normalise_rows(matrix)):
        table.add_row([name] + ['-' if np.isnan(v) else f'{v:.2f}' for v in row])
    return table.get_string()


def main(argv: Optional[Sequence[str]] = None) -> List[np.ndarray]:
    args = parse_args(argv)
    import matplotlib
    if not args.show:
        matplotlib.use('Agg')  # files only: no display needed
    import matplotlib.pyplot as plt
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    # the test data is read below; train and val data are not needed here
    cfg = load_config(args.config, args.cfg_options, check_data=False)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    # load_config left the tree in `cfg.hierarchy` as plain dicts
    tree = build_hierarchy(cfg.hierarchy, ignore_index=dataset.ignore_index)
    matrices = calculate_confusion_matrices(dataset, tree, args.prediction_path)

    os.makedirs(args.save_dir, exist_ok=True)
    for k, matrix in enumerate(matrices):
        labels = tree.level_names(k)
        stem = osp.join(args.save_dir, f'confusion_matrix_L{k + 1}')
        plot_confusion_matrix(matrix, labels, stem + '.png', f'{args.title} (L{k + 1})',
                              args.color_theme)
        save_csv(matrix, labels, stem + '.csv')
        print(f'L{k + 1}, % of each ground-truth row ({int(matrix.sum())} pixels): '
              f'{stem}.png, counts in {stem}.csv')
        print(format_matrix(matrix, labels))
    if args.show:
        plt.show()
    plt.close('all')
    return matrices


if __name__ == '__main__':
    run_tool(main)
