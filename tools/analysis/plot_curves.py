"""Training curves of a run (losses, per-level mIoU) from its scalars, to a PNG: what mmseg
1.x's analyze_logs.py does for its json logs.

    python tools/analysis/plot_curves.py WORK_DIR_OR_SCALARS_JSON [--keys KEY ...]
        [--out PNG] [--title TITLE]

Reads mmengine's `vis_data/scalars.json` (one JSON record per line; training records
carry the losses at their iteration, validation records the metrics at the iteration
they followed; both under `step`). Given a work dir, the latest run in it
(`<timestamp>/vis_data/scalars.json`) is read.

Panels, one under the other, x axis the iteration:
- default: the losses (`loss` and every `*.loss_*` term, e.g. `decode.loss_focal_tree_min`),
  then the per-level mIoU (`mIoU_L1`, `mIoU_L2`, ...) when the run has validated;
- `--keys A B,C 'mIoU_L*_nobg'`: one panel per argument; an argument holds one key, several
  keys joined by commas or shell-style patterns, drawn together. A key or pattern the run
  does not log stops the tool, naming the file and the keys it has.
Writes `--out` (default: `curves.png` in the work dir, or beside the json file).
"""
import argparse
import fnmatch
import glob
import json
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple

Series = Dict[str, Tuple[List[int], List[float]]]  # key -> (steps, values)


class CurveError(ValueError):
    """A missing file or key, reported as one line."""


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Plot a run\'s losses and per-level mIoU')
    parser.add_argument('source', help='work dir of a run, or its vis_data/scalars.json')
    parser.add_argument('--keys', nargs='+', metavar='KEYS',
                        help='one panel per argument: a key, keys joined by commas, or '
                        'patterns (default: losses, then per-level mIoU)')
    parser.add_argument('--out', help='PNG to write (default: curves.png beside the run)')
    parser.add_argument('--title', help='title of the figure')
    return parser.parse_args(argv)


def find_scalars(source: str) -> str:
    """The scalars.json named, or that of the latest run in a work dir."""
    if osp.isfile(source):
        return source
    if not osp.isdir(source):
        raise CurveError(f'{source}: no such file or work dir')
    found = sorted(glob.glob(osp.join(source, '*', 'vis_data', 'scalars.json')))
    if not found:
        raise CurveError(f'{source}: no <timestamp>/vis_data/scalars.json in it; give the '
                         'work dir of a training run (or the json file itself)')
    return found[-1]  # timestamp folders sort in time order


def load_scalars(path: str) -> Series:
    """Every scalar of a scalars.json as (steps, values), in file order."""
    series: Series = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise CurveError(f'{path}:{number}: not a JSON record ({err.msg})') from None
            step = record.get('step')
            if step is None:
                raise CurveError(f'{path}:{number}: record without "step"')
            for key, value in record.items():
                if key != 'step' and isinstance(value, (int, float)):
                    steps, values = series.setdefault(key, ([], []))
                    steps.append(step)
                    values.append(value)
    if not series:
        raise CurveError(f'{path}: no scalars in it')
    return series


def _level(key: str) -> int:
    return int(key[len('mIoU_L'):])


def default_panels(keys: Sequence[str]) -> List[Tuple[str, List[str]]]:
    """(title, keys) of the losses panel and, if logged, the per-level mIoU panel."""
    losses = [k for k in keys if k == 'loss' or k.startswith('loss_') or '.loss_' in k]
    levels = sorted((k for k in keys if re.fullmatch(r'mIoU_L\d+', k)), key=_level)
    panels = []
    if losses:
        panels.append(('losses', losses))
    if levels:
        panels.append(('mIoU per level (%)', levels))
    if not panels:
        raise CurveError('no losses (loss, *.loss_*) nor per-level mIoU (mIoU_L1, ...) '
                         f'logged; keys: {", ".join(sorted(keys))}')
    return panels


def requested_panels(specs: Sequence[str], keys: Sequence[str],
                     source: str) -> List[Tuple[str, List[str]]]:
    """(title, keys) per `--keys` argument; a key or pattern matching nothing fails."""
    panels = []
    for spec in specs:
        chosen = []
        for part in filter(None, spec.split(',')):
            matched = [k for k in keys if fnmatch.fnmatchcase(k, part)]
            if not matched:
                raise CurveError(f'{source}: no scalar {part!r}; it logs: '
                                 f'{", ".join(sorted(keys))}')
            chosen += [k for k in matched if k not in chosen]
        if not chosen:
            raise CurveError(f'--keys: empty argument {spec!r}')
        panels.append((spec, chosen))
    return panels


def plot_curves(series: Series, panels: Sequence[Tuple[str, Sequence[str]]], out: str,
                title: Optional[str] = None):
    """One panel per (title, keys), stacked; every key a line over its steps.

    Returns:
        the matplotlib figure (saved to `out`).
    """
    import matplotlib
    matplotlib.use('Agg')  # files only: no display needed
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 3 * len(panels)), squeeze=False,
                             sharex=True)
    for ax, (name, keys) in zip(axes[:, 0], panels):
        for key in keys:
            steps, values = series[key]
            # sparse series (validation) get markers, dense ones (training) a thin line
            ax.plot(steps, values, label=key, marker='o' if len(steps) <= 50 else None,
                    linewidth=1 if len(steps) > 50 else 1.5, markersize=3)
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    axes[-1, 0].set_xlabel('iteration')
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, format='png', dpi=100)
    plt.close(fig)
    return fig


def main(argv: Optional[Sequence[str]] = None):
    args = parse_args(argv)
    path = find_scalars(args.source)
    series = load_scalars(path)
    keys = list(series)
    panels = requested_panels(args.keys, keys, path) if args.keys else default_panels(keys)
    out = args.out or osp.join(args.source if osp.isdir(args.source) else
                               osp.dirname(osp.abspath(args.source)), 'curves.png')
    fig = plot_curves(series, panels, out, args.title)
    print(f'read {path}')
    for name, chosen in panels:
        print(f'panel {name}: {", ".join(chosen)}')
    print(f'saved {out}')
    return fig


if __name__ == '__main__':
    try:
        main()
    except CurveError as err:
        raise SystemExit(f'error: {err}') from None
