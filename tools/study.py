"""Train and test several configs on one dataset, seed and schedule; tabulate and chart them.

    python tools/study.py configs/demo_cpu.py configs/flat_demo_cpu.py \
        configs/hyperbolic_demo_cpu.py configs/flat_demo_cpu.py@level_argmax \
        --work-dir work_dirs/study [--seed 0] [--tta] [--reuse] [--cfg-options k=v ...]

An entry `CONFIG@RULE` tests CONFIG's trained model with another inference rule
(`model.decode_head.inference`, e.g. the level-argmax selector on the flat model), so a
rule costs a test, not a training. Every config is trained once, with the same seed
(`randomness.seed`) and the same options, and must have the same schedule (max_iters,
batch size, data) as the first: a comparison on different schedules is refused.

`--tta` tests with the config's test-time augmentation (`tools/test.py --tta`). `--reuse`
takes a training that has already reached its last iteration in the work dir, and a test
whose metrics are already there, instead of running them again: a study spread over
several sessions resumes where it stopped (a run cut short is trained again, from the
start).

Writes `study.md` (a Markdown table: per-level mIoU with and without background,
consistency, per-level ECE where the metric reports it, training seconds per iteration
and minutes in all, peak memory, the machine) and `study.png` (per-level mIoU and ECE per entry) into the
work dir, and prints the table. Each step is one of the project's own commands, printed
before it runs.
"""
import argparse
import glob
import json
import os
import os.path as osp
import shlex
import statistics
import subprocess
import sys
import threading
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('entries', nargs='+', help='CONFIG or CONFIG@INFERENCE_RULE')
    parser.add_argument('--work-dir', default='work_dirs/study')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='key=value options given to every run (train and test)')
    parser.add_argument('--timeout', type=int, default=None,
                        help='seconds each command may take (default: no limit)')
    parser.add_argument('--tta', action='store_true',
                        help="test with the config's test-time augmentation")
    parser.add_argument('--tta-scales', nargs='+', type=float, default=None, metavar='F',
                        help='with --tta: multi-scale testing, each factor times the '
                        "TTA's one resize (tools/test.py --tta-scales)")
    parser.add_argument('--reuse', action='store_true',
                        help='keep finished trainings and tests found in the work dir')
    return parser.parse_args(argv)


def split_entry(entry: str) -> Tuple[str, Optional[str]]:
    config, _, rule = entry.partition('@')
    return config, rule or None


def tta_protocol(tta: bool, scales: Optional[Sequence[float]]) -> Tuple[List[str], str, str]:
    """tools/test.py's arguments, the test folder's suffix and the table's words for it.

    Each protocol has its own folder, so that --reuse never takes one for another."""
    if scales and not tta:
        raise SystemExit('--tta-scales scales the test-time augmentation: add --tta')
    if not tta:
        return [], '', 'on the whole image'
    if not scales:
        return ['--tta'], '_tta', "with the config's TTA (--tta)"
    factors = [f'{f:g}' for f in scales]
    return (['--tta', '--tta-scales', *factors], '_tta' + ''.join(f'-x{f}' for f in factors),
            f"with the config's TTA at {', '.join(factors)} times its resize (--tta-scales)")


def run(cmd: List[str], timeout: Optional[int]) -> Dict[str, float]:
    """Run a command; return the peak resident memory of its process (MiB)."""
    print('\n$ ' + ' '.join(shlex.quote(c) for c in cmd), flush=True)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    timer = threading.Timer(timeout, proc.kill) if timeout else None
    if timer:
        timer.start()
    try:
        # wait4 reports this child's own peak resident memory (ru_maxrss, KiB on Linux)
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        if timer:
            timer.cancel()
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code  # reaped here, not by Popen
    if code:
        raise SystemExit(f'error: {" ".join(cmd[1:3])} failed (exit {code})')
    return dict(peak_mib=usage.ru_maxrss / 1024)


def merged_config(config: str, options: List[str]):
    """CONFIG with `--cfg-options`-style `key=value` options merged in."""
    from mmengine.config import Config, DictAction
    cfg = Config.fromfile(osp.join(ROOT, config))
    if options:
        parser = argparse.ArgumentParser()
        parser.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(parser.parse_args(['--o', *options]).o)
    return cfg


def check_same_schedule(configs: List[str], options: List[str]) -> int:
    """Refuse configs whose schedule or data differ from the first's; return their
    `train_cfg.max_iters`."""
    keys = ('train_cfg', 'train_dataloader.batch_size', 'train_dataloader.dataset',
            'param_scheduler', 'hierarchy')
    seen = {}
    for config in dict.fromkeys(configs):
        cfg = merged_config(config, options)
        values = {}
        for key in keys:
            value = cfg
            for part in key.split('.'):
                value = value.get(part) if hasattr(value, 'get') else None
            values[key] = value.to_dict() if hasattr(value, 'to_dict') else value
        if seen and values != seen['values']:
            differ = [k for k in keys if values[k] != seen['values'][k]]
            raise SystemExit(f'error: {config} differs from {seen["config"]} in {differ}; a '
                             'study compares configs on one schedule and dataset')
        seen = seen or dict(config=config, values=values)
    return seen['values']['train_cfg']['max_iters']


def logged_iteration_times(work_dir: str) -> List[float]:
    """`time` of every logged training iteration (mmengine logs one per interval)."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    times = []
    for path in files:
        with open(path) as f:
            times += [r['time'] for r in map(json.loads, f) if 'time' in r and 'loss' in r]
    return times


def train_seconds_per_iter(work_dir: str) -> Optional[float]:
    """Median `time` of the logged training iterations (the first logs skipped)."""
    times = logged_iteration_times(work_dir)
    times = times[len(times) // 10:]  # warm-up out
    return statistics.median(times) if times else None


def train_minutes(work_dir: str, max_iters: int) -> Optional[float]:
    """Training time without validation: the mean logged iteration time x iterations."""
    times = logged_iteration_times(work_dir)
    return statistics.fmean(times) * max_iters / 60 if times else None


REUSE_KEYS = ('model', 'optim_wrapper', 'param_scheduler', 'train_cfg', 'train_dataloader',
              'randomness')


def _without_tree(value):
    """A config value with every `hierarchy` entry left out (the runner fills them in)."""
    if hasattr(value, 'items'):
        return {k: _without_tree(v) for k, v in value.items() if k != 'hierarchy'}
    if isinstance(value, (list, tuple)):
        return [_without_tree(v) for v in value]
    return value


def check_reusable(work_dir: str, config: str, options: List[str]) -> None:
    """Refuse to reuse a run whose dumped config trained something else (another model,
    optimiser, schedule, data or seed) than CONFIG with these options does now."""
    from mmengine.config import Config
    dumped = osp.join(work_dir, osp.basename(config))
    if not osp.isfile(dumped):
        raise SystemExit(f'error: --reuse: {work_dir} has no dumped {osp.basename(config)}')
    now = merged_config(config, options)
    then = Config.fromfile(dumped)
    for key in REUSE_KEYS:
        if _without_tree(now.get(key)) != _without_tree(then.get(key)):
            raise SystemExit(f'error: --reuse: {work_dir} was trained with another `{key}` than '
                             f'{config} gives now; move it away or drop --reuse')


def finished_checkpoint(work_dir: str, max_iters: int) -> Optional[str]:
    """The last checkpoint of a training that reached `max_iters`, else None."""
    try:
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            checkpoint = f.read().strip()
    except FileNotFoundError:
        return None
    if not osp.isfile(checkpoint):  # the work dir was moved since: the same file in it
        checkpoint = osp.join(work_dir, osp.basename(checkpoint))
    done = osp.basename(checkpoint) == f'iter_{max_iters}.pth'
    return checkpoint if done and osp.isfile(checkpoint) else None


def test_metrics(test_dir: str) -> Dict[str, float]:
    """The metrics tools/test.py dumped (mmengine's `<timestamp>.json`)."""
    found = sorted(glob.glob(osp.join(test_dir, '*', '*.json')))
    if not found:
        raise SystemExit(f'error: no test metrics under {test_dir}')
    with open(found[-1]) as f:
        return json.load(f)


def levels_of(metrics: Dict[str, float]) -> int:
    return max(int(k[len('mIoU_L'):]) for k in metrics
               if k.startswith('mIoU_L') and k[len('mIoU_L'):].isdigit())


def format_table(rows: List[Dict], machine: str) -> str:
    levels = max(levels_of(r['metrics']) for r in rows)
    has_ece = any('ECE_L1' in r['metrics'] for r in rows)
    head = ['entry'] + [f'mIoU L{k}' for k in range(1, levels + 1)] + \
        [f'no bg L{k}' for k in range(1, levels + 1)] + ['consistency']
    if has_ece:
        head += [f'ECE L{k}' for k in range(1, levels + 1)]
    head += ['s/iter (train)', 'train min', 'peak MiB']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]

    def num(value, fmt='.2f') -> str:
        return '—' if value is None else format(value, fmt)
    for r in rows:
        m = r['metrics']
        cells = [r['entry']] + [num(m.get(f'mIoU_L{k}')) for k in range(1, levels + 1)] + \
            [num(m.get(f'mIoU_L{k}_nobg')) for k in range(1, levels + 1)] + \
            [num(m.get('consistency'))]
        if has_ece:
            cells += [num(m.get(f'ECE_L{k}')) for k in range(1, levels + 1)]
        cells += [num(r['seconds_per_iter'], '.3f'), num(r['train_minutes'], '.1f'),
                  num(r['peak_mib'], '.0f')]
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines.append('')
    lines.append(f'mIoU and ECE in %, on the test split; {machine}.')
    return '\n'.join(lines)


def chart(rows: List[Dict], path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    levels = max(levels_of(r['metrics']) for r in rows)
    has_ece = any('ECE_L1' in r['metrics'] for r in rows)
    fig, axes = plt.subplots(1, 2 if has_ece else 1, figsize=(11 if has_ece else 6, 4),
                             squeeze=False)
    width = 0.8 / len(rows)
    for i, r in enumerate(rows):
        xs = [k + i * width for k in range(levels)]
        axes[0][0].bar(xs, [r['metrics'].get(f'mIoU_L{k + 1}', 0) for k in range(levels)],
                       width, label=r['entry'])
        if has_ece:
            axes[0][1].bar(xs, [r['metrics'].get(f'ECE_L{k + 1}', 0) for k in range(levels)],
                           width, label=r['entry'])
    for ax, title in zip(axes[0], ['mIoU (%)', 'ECE (%)']):
        ax.set_xticks([k + 0.4 - width / 2 for k in range(levels)])
        ax.set_xticklabels([f'L{k + 1}' for k in range(levels)])
        ax.set_title(title)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> str:
    args = parse_args(argv)
    tta_args, test_suffix, test_mode = tta_protocol(args.tta, args.tta_scales)
    entries = [split_entry(e) for e in args.entries]
    configs = [c for c, _ in entries]
    max_iters = check_same_schedule(configs, args.cfg_options)
    options = [f'randomness.seed={args.seed}', *args.cfg_options]
    py = sys.executable
    os.makedirs(osp.join(ROOT, args.work_dir), exist_ok=True)

    trained: Dict[str, Dict] = {}
    for config in dict.fromkeys(configs):
        name = osp.splitext(osp.basename(config))[0]
        work = osp.join(args.work_dir, name)
        checkpoint = finished_checkpoint(osp.join(ROOT, work), max_iters) if args.reuse \
            else None
        if checkpoint:
            check_reusable(osp.join(ROOT, work), config, options)
            print(f'\nreused: {checkpoint}', flush=True)
            usage = dict(peak_mib=None)  # that process is gone
        else:
            usage = run([py, 'tools/train.py', config, '--work-dir', work,
                         '--cfg-options', *options], args.timeout)
            with open(osp.join(ROOT, work, 'last_checkpoint')) as f:
                checkpoint = f.read().strip()
        trained[config] = dict(work=work, checkpoint=checkpoint, peak_mib=usage['peak_mib'],
                               seconds_per_iter=train_seconds_per_iter(osp.join(ROOT, work)),
                               train_minutes=train_minutes(osp.join(ROOT, work), max_iters))

    rows = []
    for (config, rule), entry in zip(entries, args.entries):
        run_info = trained[config]
        test_dir = osp.join(run_info['work'],
                            f'test_{rule or "own"}{test_suffix}')
        extra = [f'model.decode_head.inference={rule}'] if rule else []
        if args.reuse and glob.glob(osp.join(ROOT, test_dir, '*', '*.json')):
            print(f'\nreused: the metrics in {test_dir}', flush=True)
        else:
            run([py, 'tools/test.py', config, run_info['checkpoint'], '--work-dir', test_dir,
                 *tta_args, '--cfg-options', *options, *extra],
                args.timeout)
        rows.append(dict(entry=entry, metrics=test_metrics(osp.join(ROOT, test_dir)),
                         seconds_per_iter=run_info['seconds_per_iter'],
                         train_minutes=run_info['train_minutes'],
                         peak_mib=run_info['peak_mib']))

    # the runs are subprocesses with this environment, so the same thread count
    from hseg_mm.utils import describe_machine
    machine = (f'{describe_machine()}, seed {args.seed}; test {test_mode}; '
               f'{max_iters} iterations; peak MiB = the training process\'s peak resident '
               'memory (— where the training was reused)')
    table = format_table(rows, machine)
    out = osp.join(ROOT, args.work_dir)
    with open(osp.join(out, 'study.md'), 'w') as f:
        f.write(table + '\n')
    chart(rows, osp.join(out, 'study.png'))
    print('\n' + table)
    print(f'\nwritten: {osp.join(args.work_dir, "study.md")}, '
          f'{osp.join(args.work_dir, "study.png")}')
    return table


if __name__ == '__main__':
    main()
