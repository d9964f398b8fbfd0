"""torch.compile (mmengine's `compile=True`) against eager, per config: same outputs, speed.

    python tools/analysis/compile_check.py CONFIG [CONFIG ...] [--flat] [--batch 2]
        [--shape H W] [--steps 3] [--repeats 5] [--backend inductor] [--cfg-options k=v]

For each config (and with `--flat` its flat twin, derived as benchmark.py derives it)
two copies of one randomly initialised model are built (SyncBN as BN, no pretrained
weights, the config's optimiser in float32); one runs mmengine's `train_step` eagerly,
the other through `torch.compile` as the Runner compiles it with `compile=True`. Both
get the same batch (benchmark.py's random images and block labels) and the same random
state before every step (inductor is told to draw random numbers as eager does), so:

- training: every loss term of each of `--steps` steps, eager against compiled, as the
  largest relative difference (step 1 starts from identical weights; later steps show
  that the compiled backward and optimiser step moved the weights alike: AdamW's first
  steps, about lr * sign(gradient), make a rounding difference in a near-0 gradient a
  weight difference of up to 2 lr);
- gradients: one backward pass of the losses at equal weights, no optimiser step, the
  largest difference relative to the model's largest gradient, and for the worst
  parameter relative to that parameter's largest gradient; with `--float64` also both
  against a float64 copy of the network, to tell rounding from error;
- testing: `test_step`, compiled as HierarchicalRunner compiles it, on the compiled
  model's weights copied from the eager one: the largest difference of the leaf scores
  (`seg_logits`, after softmax as the metric reads them) and the share of pixels whose
  predicted class differs at any level;
- speed: median step time of each, eager and compiled alternating (benchmark.py's
  interleaved rounds), and the ratio compiled / eager; the first compiled call's
  seconds (the compile time) and dynamo's graph and graph-break counts.
"""
import argparse
import copy
import os
import os.path as osp
import statistics
import sys
import time
from typing import Dict, List, Optional

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import torch  # noqa: E402
import torch._dynamo  # noqa: E402
from torch._inductor import config as inductor_config  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

from benchmark import (build, flat_twin, interleaved_times, make_batch,  # noqa: E402
                       model_config, pop_compile_losses)
from hseg_mm.utils import describe_machine, keep_freed_memory  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--flat', action='store_true', help='also each config\'s flat twin')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help="image size (default: the config's crop_size)")
    parser.add_argument('--steps', type=int, default=3, help='training steps compared')
    parser.add_argument('--repeats', type=int, default=5, help='timed rounds (0: none)')
    parser.add_argument('--backend', default='inductor',
                        help="torch.compile's backend (aot_eager: tracing without codegen)")
    parser.add_argument('--float64', action='store_true',
                        help='also the gradients of a float64 copy of the network: eager '
                        "float32's and the compiled model's distance from them")
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


def _loss_terms(log_vars: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {k: v for k, v in log_vars.items() if 'loss' in k}


def _loss_of(model, data: dict, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """train_step's forward and loss sum, without the optimiser."""
    data = model.data_preprocessor(data, True)
    return model.parse_losses(model(data['inputs'].to(dtype), data['data_samples'],
                                    mode='loss'))[0]


def _model_relative(grads: Dict[str, torch.Tensor], ref: Dict[str, torch.Tensor]) -> float:
    """The largest gradient difference over the model / its largest reference gradient."""
    return max(float((grads[n].double() - g.double()).abs().max()) for n, g in ref.items()) / \
        max(float(g.abs().max()) for g in ref.values())


def check_config(cfg, name: str, args: argparse.Namespace) -> dict:
    """The comparison and timing of one config (see the module docstring)."""
    device = torch.device('cpu')
    shape = tuple(args.shape or cfg.get('crop_size') or (512, 512))
    torch.manual_seed(args.seed)
    eager, eager_optim = build(cfg, shape, device, 'float32')
    torch.manual_seed(args.seed)  # the same initial weights
    twin, twin_optim = build(cfg, shape, device, 'float32')
    for (key, a), b in zip(eager.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(a, b), f'{name}: two builds differ at {key}'
    tree = eager.hierarchy
    data = make_batch(args.batch, shape, tree.num_leaves, tree.ignore_index,
                      torch.Generator().manual_seed(args.seed))
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled_train = torch.compile(twin.train_step, backend=args.backend)

    eager.train()
    twin.train()
    loss_diff: List[float] = []
    compile_s = None
    for step in range(args.steps):
        torch.manual_seed(args.seed + step)
        expected = _loss_terms(eager.train_step(data, eager_optim))
        torch.manual_seed(args.seed + step)
        start = time.perf_counter()
        got = _loss_terms(compiled_train(data, twin_optim))
        if compile_s is None:
            compile_s = time.perf_counter() - start
        if set(got) != set(expected):
            raise RuntimeError(f'{name}: compiled loss terms {sorted(got)} != eager '
                               f'{sorted(expected)}')
        loss_diff.append(max(_relative(got[k], expected[k]) for k in expected))

    # one backward pass at equal weights, no optimiser step: each parameter's largest
    # gradient difference relative to its largest gradient (the worst parameter), and
    # the model's largest difference relative to its largest gradient
    twin.load_state_dict(eager.state_dict())
    grads = []
    for model, fn in ((eager, _loss_of), (twin, torch.compile(_loss_of, backend=args.backend))):
        model.zero_grad()
        torch.manual_seed(args.seed + args.steps)
        fn(model, data).backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    worst_name = max(grads[0], key=lambda n: _relative(grads[1][n], grads[0][n]))
    grad_worst = _relative(grads[1][worst_name], grads[0][worst_name])
    grad_model = _model_relative(grads[1], grads[0])
    # how large the worst parameter's gradient is against the model's largest: a
    # parameter whose true gradient is about 0 compares rounding noise with noise
    worst_scale = float(grads[0][worst_name].abs().max()) / \
        max(float(g.abs().max()) for g in grads[0].values())
    reference = {}
    if args.float64:
        # the same pass by a float64 copy of the network (the losses still reduce in
        # float32, as the heads run them): how far float32 itself is, eager or compiled
        wide = copy.deepcopy(eager).double()
        wide.zero_grad()
        torch.manual_seed(args.seed + args.steps)
        try:
            _loss_of(wide, data, torch.float64).backward()
        except RuntimeError as error:  # a part that computes in float32 on purpose
            print(f'{name}: no float64 reference ({str(error).splitlines()[0]})')
        else:
            g64 = {n: p.grad for n, p in wide.named_parameters() if p.grad is not None}
            reference = dict(eager_vs_64=_model_relative(grads[0], g64),
                             compiled_vs_64=_model_relative(grads[1], g64))

    eager.eval()
    twin.eval()
    twin.load_state_dict(eager.state_dict())
    compiled_test = torch.compile(twin.test_step, backend=args.backend)
    with torch.no_grad():
        want = eager.test_step(data)
        start = time.perf_counter()
        got = compiled_test(data)
        test_compile_s = time.perf_counter() - start
    score_diff = max(float((g.seg_logits.data.softmax(0) - w.seg_logits.data.softmax(0))
                           .abs().max()) for g, w in zip(got, want))
    changed = sum(int((g.pred_level_seg.data != w.pred_level_seg.data).any(0).sum())
                  for g, w in zip(got, want)) / sum(w.pred_level_seg.data[0].numel()
                                                    for w in want)
    counters = torch._dynamo.utils.counters
    result = dict(
        name=name, shape=f'{args.batch} x {shape[0]}x{shape[1]}', loss_step1=loss_diff[0],
        loss_later=max(loss_diff[1:], default=0.0), grad_model=grad_model, grad_worst=grad_worst,
        worst_parameter=worst_name, worst_scale=worst_scale,
        score=score_diff, changed=changed, compile_s=compile_s, test_compile_s=test_compile_s,
        **reference,
        graphs=int(counters['stats']['unique_graphs']),
        breaks=int(sum(counters['graph_break'].values())))
    if args.repeats > 0:
        eager.train()
        twin.train()
        times = interleaved_times(
            {'eager': lambda: eager.train_step(data, eager_optim),
             'compiled': lambda: compiled_train(data, twin_optim)},
            args.repeats, 1, device)
        result['train_ms'] = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        result['train_ratio'] = statistics.median(
            c / e for c, e in zip(times['compiled'], times['eager']))
        eager.eval()
        twin.eval()
        with torch.no_grad():
            times = interleaved_times({'eager': lambda: eager.test_step(data),
                                       'compiled': lambda: compiled_test(data)},
                                      args.repeats, 1, device)
        result['test_ms'] = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        result['test_ratio'] = statistics.median(
            c / e for c, e in zip(times['compiled'], times['eager']))
    return result


def format_row(r: dict) -> str:
    speed = (f" | {r['train_ms']['eager']:.0f} / {r['train_ms']['compiled']:.0f} ms, "
             f"{r['train_ratio']:.3f}x | {r['test_ms']['eager']:.0f} / "
             f"{r['test_ms']['compiled']:.0f} ms, {r['test_ratio']:.3f}x"
             if 'train_ms' in r else ' | | ')
    return (f"| {r['name']}, {r['shape']} | {r['loss_step1']:.1e} / {r['loss_later']:.1e} | "
            f"{r['grad_model']:.1e} / {r['grad_worst']:.1e} | "
            f"{r['score']:.1e}, {100 * r['changed']:.2f} % | {r['graphs']} / {r['breaks']} | "
            f"{r['compile_s']:.0f} + {r['test_compile_s']:.0f} s" + speed + ' |')


def main(argv: Optional[List[str]] = None) -> List[dict]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    inductor_config.fallback_random = True  # dropout draws as eager does
    kept = keep_freed_memory()
    print(f'machine: {describe_machine(torch.device("cpu"))}'
          + (', glibc keeps freed memory' if kept else '') + '; '
          f'backend {args.backend}; batch {args.batch}, '
          + (f'{args.shape[0]}x{args.shape[1]}' if args.shape else "the configs' crops") + ', '
          f'float32, {args.steps} training steps compared, {args.repeats} timed rounds')
    print('| model | loss rel. diff, step 1 / later | gradient diff, model / worst parameter | '
          'test: score diff, pixels changed | '
          'graphs / breaks | compile (train + test) | train step eager / compiled | '
          'test step eager / compiled |')
    print('|---|---|---|---|---|---|---|---|')
    results = []
    for path in args.configs:
        cfg = model_config(path, args.cfg_options)
        pop_compile_losses(cfg)  # the eager reference runs its losses eagerly too
        pairs = [(osp.basename(path), cfg)]
        if args.flat:
            pairs.append((osp.basename(path) + ' (flat twin)', flat_twin(cfg)))
        for name, one in pairs:
            results.append(check_config(one, name, args))
            print(format_row(results[-1]), flush=True)
    if args.float64:
        print('\ngradients against the float64 network (model-wide, relative to its largest):')
        for r in (r for r in results if 'eager_vs_64' in r):
            print(f"  {r['name']}: eager float32 {r['eager_vs_64']:.1e}, compiled "
                  f"{r['compiled_vs_64']:.1e}")
    print('\nworst parameter, its largest eager gradient / the model\'s largest:')
    for r in results:
        print(f"  {r['name']}: {r['worst_parameter']}, {r['worst_scale']:.1e}")
    return results


if __name__ == '__main__':
    os.environ.setdefault('OMP_NUM_THREADS', '2')
    main()
