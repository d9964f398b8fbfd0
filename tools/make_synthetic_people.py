"""Write a synthetic people dataset (either layout) and optionally a sample grid.

    python tools/make_synthetic_people.py work_dirs/data/synthetic_people \
        --num-train 400 --num-val 100 --size 128 128 --seed 0 [--layout seeds] \
        [--grid tools/assets/synthetic_people_grid.jpg]

Prints the generation speed (images/s, OpenCV on one thread).
"""
import argparse
import os
import os.path as osp
import sys

import cv2
import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from hseg_mm.datasets.labels import voc_colormap  # noqa: E402
from hseg_mm.datasets.synthetic_people import (draw_synthetic_people,  # noqa: E402
                                               make_synthetic_people, sample_grid)


def write_sample_grid(path: str, num: int = 8, size=(128, 128), seed: int = 0,
                      columns: int = 4, quality: int = 85) -> int:
    """Draw `num` images (generator seeds (seed, 0..num-1), as the dataset's first
    train ids) beside their colour label maps; returns the file size in bytes."""
    pairs = [draw_synthetic_people(np.random.default_rng([seed, i]), tuple(size))
             for i in range(num)]
    grid = sample_grid([p[0] for p in pairs], [p[1] for p in pairs], voc_colormap(256),
                       columns=columns)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    cv2.imwrite(path, grid[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return osp.getsize(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out_dir')
    parser.add_argument('--num-train', type=int, default=400)
    parser.add_argument('--num-val', type=int, default=100)
    parser.add_argument('--size', type=int, nargs=2, default=(128, 128), metavar=('H', 'W'))
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--layout', choices=('standard', 'seeds'), default='standard')
    parser.add_argument('--max-people', type=int, default=4)
    parser.add_argument('--grid', help='also write a sample grid image here')
    args = parser.parse_args()
    cv2.setNumThreads(1)  # the speed figure is for one core
    stats = make_synthetic_people(args.out_dir, args.num_train, args.num_val,
                                  size=tuple(args.size), seed=args.seed, layout=args.layout,
                                  max_people=args.max_people)
    print(f'wrote {int(stats["images"])} images ({args.layout} layout, '
          f'{args.size[0]}x{args.size[1]}) to {args.out_dir} in {stats["seconds"]:.2f} s: '
          f'{stats["images_per_s"]:.0f} images/s on one thread')
    if args.grid:
        nbytes = write_sample_grid(args.grid, size=args.size, seed=args.seed)
        print(f'sample grid: {args.grid} ({nbytes / 1024:.0f} KB)')


if __name__ == '__main__':
    main()
