"""The CPU demo: synthetic people -> train -> test -> render, in minutes.

    python tools/demo.py [--config configs/demo_cpu.py] [--iters N] [--work-dir DIR]

`make demo` runs it. Every step is one of the project's own commands, printed
before it runs, so each can be rerun by hand.
"""
import argparse
import glob
import os
import os.path as osp
import shlex
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='hseg-mm CPU demo')
    parser.add_argument('--config', default='configs/demo_cpu.py')
    parser.add_argument('--work-dir', default=None,
                        help='default: work_dirs/<config name>')
    parser.add_argument('--data-root', default='work_dirs/data/synthetic_people')
    parser.add_argument('--num-train', type=int, default=400)
    parser.add_argument('--num-val', type=int, default=100)
    parser.add_argument('--iters', type=int, default=None,
                        help='training iterations (default: the config\'s)')
    parser.add_argument('--num-render', type=int, default=8,
                        help='validation images rendered with every level')
    return parser.parse_args()


def run(cmd: list) -> None:
    print('\n$ ' + ' '.join(shlex.quote(c) for c in cmd), flush=True)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def main() -> None:
    args = parse_args()
    start = time.time()
    name = osp.splitext(osp.basename(args.config))[0]
    work_dir = args.work_dir or osp.join('work_dirs', name)
    py = sys.executable

    if not osp.isfile(osp.join(ROOT, args.data_root, 'val_id.txt')):
        run([py, 'tools/make_synthetic_people.py', args.data_root,
             '--num-train', str(args.num_train), '--num-val', str(args.num_val)])
    else:
        print(f'synthetic data found in {args.data_root}', flush=True)

    options = [f'train_dataloader.dataset.data_root={args.data_root}',
               f'val_dataloader.dataset.data_root={args.data_root}',
               f'test_dataloader.dataset.data_root={args.data_root}']
    if args.iters:
        options += [f'train_cfg.max_iters={args.iters}', f'param_scheduler.0.end={args.iters}']
    run([py, 'tools/train.py', args.config, '--work-dir', work_dir, '--cfg-options', *options])

    checkpoint = open(osp.join(ROOT, work_dir, 'last_checkpoint')).read().strip()
    test_dir = osp.join(work_dir, 'test')
    run([py, 'tools/test.py', args.config, checkpoint, '--eval', 'mIoU',
         '--work-dir', test_dir, '--cfg-options', *options[2:]])

    images = sorted(glob.glob(osp.join(ROOT, args.data_root, 'JPEGImages', '*.jpg')))
    val_ids = open(osp.join(ROOT, args.data_root, 'val_id.txt')).read().split()
    picked = [osp.join(args.data_root, 'JPEGImages', f'{i}.jpg')
              for i in val_ids[:args.num_render]] if images else []
    render_dir = osp.join(work_dir, 'predictions')
    run([py, 'tools/infer.py', args.config, checkpoint, *picked, '--out-dir', render_dir])

    print(f'\nDemo finished in {(time.time() - start) / 60:.1f} min.')
    print(f'  checkpoint:   {checkpoint}')
    print(f'  predictions:  {render_dir}/ (input and every level, with a legend)')
    print(f'  test metrics: {test_dir}/')
    print(f'  TensorBoard:  tensorboard --logdir {work_dir}')


if __name__ == '__main__':
    main()
