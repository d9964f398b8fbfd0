"""How far bfloat16 autocast (`--amp` on a CPU) moves a config's losses from float32.

    python tools/analysis/amp_error.py CONFIG [--seeds 10] [--steps 3] [--shape 64 64]
        [--cfg-options k=v ...]

For each seed s: the model is built with torch's seed s and initialised by `init_weights`
(as the Runner does), a batch of 2 random images and random leaf labels is drawn from a
generator seeded s, and `--steps` train_steps run from the same weights twice: with
mmengine's OptimWrapper (float32) and with CPUAmpOptimWrapper (bfloat16 autocast), SGD
lr 0.01 momentum 0.9, dropout and the triplet sampling seeded alike. Printed: for every
logged loss, the worst relative difference |bf16 - float32| / |float32| over all seeds and
steps, and the least that one float32 step moves it (a bound below that catches a lost or
doubled step). Then the predictions (eval mode, the head's classifier weights scaled by
1000 so that the logits of a fresh model have the O(1) size of a trained one's): the worst
max |bf16 - float32| of the leaf scores and the least share of pixels whose leaf is kept.
tests/engine/test_amp.py's bounds are about 3x what this prints for configs/demo_cpu.py;
the README's AMP figures are its total loss and its leaf scores.
"""
import argparse
import copy
import os.path as osp
import sys
from typing import Dict, List, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import hseg_mm  # noqa: F401,E402  (shims and registration before mmseg.models)
import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402

from hseg_mm.engine import load_config  # noqa: E402
from hseg_mm.testing import seg_batch  # noqa: E402

OPTIMIZER = dict(type='SGD', lr=0.01, momentum=0.9)


def train_losses(model: torch.nn.Module, batch: dict, wrapper: str,
                 steps: int) -> List[Dict[str, float]]:
    """The logged losses of `steps` train_steps on a copy of `model`."""
    model = copy.deepcopy(model)
    optim_wrapper = build_optim_wrapper(model, dict(type=wrapper, optimizer=OPTIMIZER))
    torch.manual_seed(1)  # dropout and the triplet sampling draw the same in both runs
    logs = [model.train_step(batch, optim_wrapper) for _ in range(steps)]
    return [{k: v.item() for k, v in log.items() if 'loss' in k} for log in logs]


def prediction_error(model: torch.nn.Module, batch: dict) -> Tuple[float, float]:
    """(max |bf16 - float32| of the leaf scores, share of pixels keeping their leaf) of
    `model`'s predictions under bfloat16 autocast against float32."""
    model = copy.deepcopy(model).eval()
    with torch.no_grad():  # logits of ~0.01 (fresh classifier, std 0.01) -> O(1)
        model.decode_head.conv_seg.weight.mul_(1000)

    def predict(autocast: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        data = model.data_preprocessor(batch, False)
        with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
            results = model.predict(data['inputs'], data['data_samples'])
        return (torch.stack([r.seg_logits.data for r in results]),
                torch.stack([r.pred_sem_seg.data for r in results]))

    (ref_scores, ref_pred), (scores, pred) = predict(False), predict(True)
    return ((scores - ref_scores).abs().max().item(),
            (pred == ref_pred).float().mean().item())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--seeds', type=int, default=10)
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--shape', type=int, nargs=2, default=[64, 64], metavar=('H', 'W'))
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    init_default_scope('mmseg')
    cfg = load_config(args.config, args.cfg_options, check_data=False)
    cfg.model.data_preprocessor.size = tuple(args.shape)
    worst: Dict[str, float] = {}
    moved: Dict[str, float] = {}
    score_diff, kept = 0.0, 1.0
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        model = MODELS.build(cfg.model)
        model.init_weights()
        g = torch.Generator().manual_seed(seed)
        images = torch.randint(0, 256, (2, 3, *args.shape), generator=g, dtype=torch.uint8)
        labels = torch.randint(0, model.hierarchy.num_leaves, (2, *args.shape), generator=g)
        batch = seg_batch(images, labels)
        ref = train_losses(model, batch, 'OptimWrapper', args.steps)
        amp = train_losses(model, batch, 'CPUAmpOptimWrapper', args.steps)
        for step, (r, a) in enumerate(zip(ref, amp)):
            for key in r:
                worst[key] = max(worst.get(key, 0.0), abs(a[key] - r[key]) / abs(r[key]))
                if step:
                    change = abs(r[key] - ref[step - 1][key]) / abs(ref[step - 1][key])
                    moved[key] = min(moved.get(key, float('inf')), change)
        diff, same = prediction_error(model, batch)
        score_diff, kept = max(score_diff, diff), min(kept, same)
    print(f'{args.config}: bf16 vs float32 over {args.seeds} seeds x {args.steps} steps, '
          f'{args.shape[0]}x{args.shape[1]}, {torch.get_num_threads()} threads')
    print(f'  {"loss":<36} {"worst relative diff":>20} {"smallest step change":>20}')
    for key in worst:
        print(f'  {key:<36} {worst[key]:>20.2e} {moved.get(key, float("nan")):>20.2e}')
    print(f'  leaf scores: worst max |difference| {score_diff:.2e}; pixels keeping their '
          f'leaf: at least {100 * kept:.2f} %')


if __name__ == '__main__':
    main()
