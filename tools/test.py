"""Test (and evaluate) a hierarchical segmentor: mmseg 1.x's tools/test.py.

    python tools/test.py CONFIG CHECKPOINT [--eval mIoU] [--work-dir DIR] [--out DIR]
        [--show-dir DIR] [--tta [--tta-scales F ...]] [--cfg-options k=v ...] [--launcher ...]

The metric is the config's `test_evaluator` (the per-level HierarchicalIoUMetric);
`--eval mIoU` is accepted for mmseg 0.x habits. A per-level table is printed.
"""
import argparse
import os.path as osp

import hseg_mm  # noqa: F401  (shims and registration first)
from hseg_mm.engine.launch import (add_launch_args, build_runner, check_eval_metrics,
                                   close_process_group, load_config, prepare_runtime,
                                   run_tool, set_local_rank, skip_pretrained)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a hierarchical segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where the metrics are dumped as json')
    parser.add_argument('--out', help='directory for the predicted label maps')
    parser.add_argument('--eval', nargs='+', default=None, metavar='METRIC',
                        help='0.x habit: mIoU (the metric comes from test_evaluator)')
    parser.add_argument('--show', action='store_true', help='show predictions')
    parser.add_argument('--show-dir', help='directory for images of the predictions')
    parser.add_argument('--wait-time', type=float, default=2, help='--show interval (s)')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation')
    parser.add_argument('--tta-scales', nargs='+', type=float, default=None, metavar='F',
                        help="with --tta: test at each factor times the TTA's one resize "
                        '(multi-scale testing without a new config; e.g. 0.667 1 1.333)')
    add_launch_args(parser)
    args = parser.parse_args()
    set_local_rank(args.local_rank)
    return args


def main() -> None:
    args = parse_args()
    if args.eval:
        check_eval_metrics(args.eval)
    # the tree is resolved and the data checked once, by build_runner
    # (HierarchicalRunner.from_cfg) before anything is built
    cfg = load_config(args.config, args.cfg_options, args.work_dir, resolve_tree=False)
    cfg = prepare_runtime(cfg, args.launcher)
    cfg.load_from = args.checkpoint
    refuse_non_finite_checkpoint(args.checkpoint)
    if args.allow_other_tree:
        cfg.allow_other_tree = True
    skip_pretrained(cfg)

    if args.show or args.show_dir:
        hook = cfg.default_hooks.get('visualization')
        if hook is None:
            raise SystemExit('--show/--show-dir need default_hooks.visualization in the config')
        hook['draw'] = True
        if args.show:
            hook['show'], hook['wait_time'] = True, args.wait_time
        if args.show_dir:
            cfg.visualizer['save_dir'] = args.show_dir
    if args.tta_scales and not args.tta:
        raise SystemExit('--tta-scales scales the test-time augmentation: add --tta')
    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise SystemExit('--tta needs tta_model and tta_pipeline in the config')
        pipeline = cfg.tta_pipeline
        if args.tta_scales:
            from hseg_mm.engine.tta import multi_scale_tta
            pipeline = multi_scale_tta(pipeline, args.tta_scales)
        cfg.test_dataloader.dataset.pipeline = pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out is not None:
        cfg.test_evaluator['output_dir'] = args.out

    runner = build_runner(cfg)
    runner.test()
    save_level_table(runner)
    del runner  # DDP before its process group
    close_process_group()


def refuse_non_finite_checkpoint(path: str, shown: int = 3) -> None:
    """A checkpoint of a diverged run (nan/inf weights) is refused before testing:
    its predictions are meaningless, yet look like a result (an mIoU, consistent)."""
    if not osp.isfile(path):
        return  # a URL or a missing file: the runner's loader reports it
    from mmengine.runner.checkpoint import CheckpointLoader
    from hseg_mm.engine import ConfigError, find_non_finite
    checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else {}
    found = find_non_finite(state.items())
    if found:
        names = ', '.join(f'{name} is {kind}' for name, kind in found[:shown])
        more = f' and {len(found) - shown} more' if len(found) > shown else ''
        raise ConfigError(f'{path} has non-finite weights ({names}{more}; {len(found)} of '
                          f'{len(state)} tensors): it was saved from a diverged run; test a '
                          'checkpoint from before the divergence')


def save_level_table(runner) -> None:
    """Write the per-level table of the hierarchical metric to the run's log dir."""
    from hseg_mm.evaluation.metrics import HierarchicalIoUMetric
    for metric in runner.test_evaluator.metrics:
        if isinstance(metric, HierarchicalIoUMetric) and metric.level_results:
            path = osp.join(runner.log_dir, 'per_level_table.txt')
            with open(path, 'w') as f:
                f.write(metric.format_table() + '\n')
            print(f'per-level table: {path}')


if __name__ == '__main__':
    run_tool(main)
