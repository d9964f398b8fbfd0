"""Train a hierarchical segmentor: mmseg 1.x's tools/train.py, flags and all.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]
"""
import argparse

import hseg_mm  # noqa: F401  (shims and registration first)
from hseg_mm.engine.launch import (add_launch_args, build_runner, close_process_group,
                                   load_config, prepare_runtime, run_tool, set_local_rank)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a hierarchical segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go')
    parser.add_argument('--resume', nargs='?', const='auto', default=None,
                        help='resume from CKPT, or with no value from the latest '
                        'checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: float16 on CUDA, bfloat16 autocast on a CPU')
    add_launch_args(parser)
    args = parser.parse_args()
    set_local_rank(args.local_rank)
    return args


def main() -> None:
    args = parse_args()
    # the tree is resolved and the data checked once, by build_runner
    # (HierarchicalRunner.from_cfg) before anything is built
    cfg = load_config(args.config, args.cfg_options, args.work_dir, resolve_tree=False)
    cfg = prepare_runtime(cfg, args.launcher, args.amp)
    if args.resume == 'auto':
        cfg.resume = True
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.allow_other_tree:
        cfg.allow_other_tree = True
    runner = build_runner(cfg)
    runner.train()
    del runner  # DDP before its process group
    close_process_group()


if __name__ == '__main__':
    run_tool(main)
