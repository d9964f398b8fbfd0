"""Training and inference speed of a hierarchical config and of its flat twin, in one run.

    python tools/analysis/benchmark.py CONFIG [--flat FLAT_CONFIG] [--batch 2]
        [--shape H W] [--repeats 10] [--threads 2] [--profile]
        [--compile {config,none,losses,step}]
        [--also-eager] [--compile-backend inductor]
        [--cfg-options k=v ...]

Both models are built from their configs (SyncBN as BN, no pretrained weights, random
init), fed the same random batch (images, and labels in blocks of every leaf class with
a strip of ignore pixels, as after a crop), and timed alternately, one step of each per
round in an order that flips every round, so that a machine whose speed drifts (other
jobs) slows both alike and neither always runs second. A training
step is mmengine's `train_step` (data preprocessor, forward, losses, backward, optimiser
step); an inference step is `test_step` (whole-image predict, leaf scores, per-level
maps). Reported: images/s from the median step time of each model, and the ratio
hierarchical / flat of the median per-round time ratios.

The flat twin is `--flat`, or else derived from CONFIG by the statement of the shipped
flat configs (configs/flat_demo_cpu.py): every hierarchical decode head gets
`inference='flat'` and leaf cross-entropy as its only loss (so no projection branch).
`--profile` also prints the operators that take each training step's time, and
`--modes head` times the decode head alone on fixed backbone features (forward, losses,
backward) for the flat twin, the hierarchical head, and the hierarchical head with each of
its losses alone: where the hierarchy's share of a step goes.
Training steps run in the configs' precision (`--precision float32` or `amp` to
override: on a CPU `amp` is bfloat16 autocast, `CPUAmpOptimWrapper`).
`--cfg-options` changes both configs alike (before the twin is derived), e.g.
`model.decode_head.loss_resolution=logits`. `--compile losses` compiles (inductor) every
loss module of both models, `--compile step` their whole steps as `compile=True` does,
`--compile none` neither; the default, `config`, compiles the losses of both models where
the config's heads set `compile_losses` and nothing otherwise. The warm-up rounds include
the compilation. `--also-eager` times eager copies of both models (the same weights) in
the same rounds, four models interleaved, and reports the hierarchical/flat ratio
compiled and eager, and each model's compiled/eager ratio, from one run: whether
compiling changes the ratio, on one machine at one time.
"""
import argparse
import copy
import os
import os.path as osp
import statistics
import sys
import time
from typing import Callable, Dict, Iterable, List, Optional, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import hseg_mm  # noqa: F401,E402  (shims and registration before mmseg.models)
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402

from hseg_mm.engine import apply_hierarchy  # noqa: E402
from hseg_mm.engine.launch import skip_pretrained  # noqa: E402
from hseg_mm.utils import describe_machine, keep_freed_memory  # noqa: E402

FLAT_LOSS = [dict(type='HierarchicalCrossEntropyLoss', levels=[-1])]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='hierarchical config')
    parser.add_argument('--flat', help='its flat twin (default: derived from CONFIG)')
    parser.add_argument('--batch', type=int, default=2, help='images per step')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='image size (default: the config\'s crop_size)')
    parser.add_argument('--repeats', type=int, default=10, help='timed rounds')
    parser.add_argument('--warmup', type=int, default=2, help='untimed rounds first')
    parser.add_argument('--threads', type=int, default=2, help='torch.set_num_threads')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--modes', nargs='+', choices=['train', 'inference', 'head'],
                        default=['train', 'inference'],
                        help="'head': the decode head alone, with each loss alone too")
    parser.add_argument('--profile', action='store_true',
                        help='also profile one training step of each model')
    parser.add_argument('--precision', choices=['config', 'float32', 'amp'], default='config',
                        help="training steps' precision: the configs' optim_wrapper "
                        "(default), float32, or mixed (bfloat16 autocast on a CPU)")
    parser.add_argument('--compile', choices=['config', 'none', 'losses', 'step'],
                        default='config',
                        help="torch.compile (inductor) in both models: 'losses', each "
                        "decode head's loss modules; 'step', the whole train/test step, as "
                        "compile=True does; 'config' (default): 'losses' where the config's "
                        "heads set compile_losses, else 'none' (warm-up rounds compile)")
    parser.add_argument('--compile-backend', default='inductor',
                        help="torch.compile's backend (e.g. 'aot_eager': traced, no code "
                        'generated)')
    parser.add_argument('--also-eager', action='store_true',
                        help='with --compile: also time eager copies of both models in the '
                        'same rounds and report the ratios compiled and eager')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of both configs, key=value')
    return parser.parse_args()


def compile_losses(model: torch.nn.Module, **options) -> int:
    """Compile every decode head's loss modules in place (`nn.Module.compile`, with
    torch.compile's `options`); the number compiled."""
    heads = model.decode_head if isinstance(model.decode_head, torch.nn.ModuleList) \
        else [model.decode_head]
    count = 0
    for head in heads:
        losses = head.loss_decode if isinstance(head.loss_decode, torch.nn.ModuleList) \
            else [head.loss_decode]
        for loss in losses:
            loss.compile(**options)
            count += 1
    return count


def pop_compile_losses(cfg: Config) -> bool:
    """Take `compile_losses` out of every decode head of `cfg`, so that its model runs its
    losses eagerly; whether any head had it on. The tools here compile the losses
    themselves (`--compile`), so that an eager model stays eager."""
    heads = cfg.model.decode_head
    # a list, not a generator: any() would stop at the first head that had it on
    return any([bool(head.pop('compile_losses', False))
                for head in (heads if isinstance(heads, list) else [heads])])


def model_config(path: str, options: Optional[dict] = None) -> Config:
    """The config with its tree injected, pretrained weights off and no data read."""
    cfg = Config.fromfile(path)
    if options:
        cfg.merge_from_dict(options)
    apply_hierarchy(cfg, check_paths=False)
    skip_pretrained(cfg)
    return cfg


def flat_twin(cfg: Config) -> Config:
    """CONFIG with every hierarchical decode head made flat (see the module docstring)."""
    from mmseg.registry import MODELS
    from hseg_mm.models.decode_heads.hierarchical_head_mixin import HierarchicalHeadMixin
    twin = copy.deepcopy(cfg)
    heads = twin.model.decode_head
    changed = 0
    for head in heads if isinstance(heads, list) else [heads]:
        cls = MODELS.get(head['type'])
        if cls is not None and issubclass(cls, HierarchicalHeadMixin):
            head['inference'] = 'flat'
            head['loss_decode'] = copy.deepcopy(FLAT_LOSS)
            changed += 1
    if not changed:
        name = cfg.filename or 'the config'
        raise SystemExit(f'{name}: no hierarchical decode head to make flat; give --flat '
                         'FLAT_CONFIG')
    return twin


AMP_WRAPPERS = ('AmpOptimWrapper', 'CPUAmpOptimWrapper')


def build(cfg: Config, shape: Tuple[int, int], device: torch.device,
          precision: str = 'config', amp_dtype: Optional[str] = None):
    """(model, optim_wrapper) of a config, random init, BN in place of SyncBN.

    precision: 'config' keeps the config's optim_wrapper type, 'float32' makes it a
    plain `OptimWrapper`, 'amp' a mixed-precision one for `device` (as `--amp` does).
    amp_dtype: the autocast dtype of a mixed-precision wrapper ('float16',
    'bfloat16'); None keeps the config's, else the wrapper's default.
    """
    from mmengine.model.utils import revert_sync_batchnorm
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from hseg_mm.engine import plain_param_groups
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model_cfg = copy.deepcopy(cfg.model)
    if 'data_preprocessor' in model_cfg:
        model_cfg.data_preprocessor.size = shape
    model = revert_sync_batchnorm(MODELS.build(model_cfg)).to(device)
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    mixed = (optim_cfg.get('type') in AMP_WRAPPERS if precision == 'config'
             else precision == 'amp')
    wanted = ('OptimWrapper' if not mixed
              else 'AmpOptimWrapper' if device.type == 'cuda'  # float16, as train.py --amp
              else 'CPUAmpOptimWrapper')  # mmengine's AmpOptimWrapper refuses a CPU
    if optim_cfg.get('type') != wanted:  # the other wrapper's own arguments go
        optim_cfg.pop('loss_scale', None)
        optim_cfg.pop('dtype', None)
        optim_cfg.pop('if_emulated', None)
        optim_cfg['type'] = wanted
        if wanted == 'AmpOptimWrapper':
            optim_cfg['loss_scale'] = 'dynamic'
    if mixed and amp_dtype:
        optim_cfg['dtype'] = amp_dtype
    if precision == 'amp' and wanted == 'CPUAmpOptimWrapper':
        # asked for autocast: timed in autocast even where a config would train float32
        optim_cfg['if_emulated'] = 'autocast'
    optim_wrapper = build_optim_wrapper(model, optim_cfg)
    plain_param_groups(optim_wrapper)  # as HierarchicalRunner does, for torch.compile
    return model, optim_wrapper


def describe_wrapper(optim_wrapper) -> str:
    """The wrapper's type, and the precision it really trains in where its name misleads."""
    name = type(optim_wrapper).__name__
    if name == 'CPUAmpOptimWrapper' and optim_wrapper.cast_dtype is None:
        return f'{name} (float32 here: no bfloat16 hardware, the config\'s if_emulated)'
    return name


def make_batch(batch: int, shape: Tuple[int, int], num_leaves: int, ignore_index: int,
               generator: torch.Generator) -> dict:
    """Random uint8 images (3, H, W) and leaf labels (1, H, W) in 16x16 blocks of random
    classes, the last tenth of the columns ignore_index."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    h, w = shape
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=generator))
        blocks = torch.randint(0, num_leaves, (1, -(-h // 16), -(-w // 16)), generator=generator)
        label = blocks.repeat_interleave(16, 1).repeat_interleave(16, 2)[:, :h, :w].clone()
        label[:, :, w - w // 10:] = ignore_index
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=label.long())
        sample.set_metainfo(dict(img_shape=shape, ori_shape=shape, pad_shape=shape))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def interleaved_times(steps: Dict[str, Callable[[], None]], repeats: int, warmup: int,
                      device: torch.device) -> Dict[str, List[float]]:
    """Seconds per call of each step, one call of each per round, `repeats` rounds.

    The order flips every round (A B, B A, ...): whichever model runs second finds the
    caches and the allocator as the first left them, and neither should always get that.
    """
    def sync() -> None:
        if device.type == 'cuda':
            torch.cuda.synchronize(device)

    times = {name: [] for name in steps}
    order = list(steps.items())
    for r in range(warmup + repeats):
        for name, step in (order if r % 2 == 0 else order[::-1]):
            sync()
            start = time.perf_counter()
            step()
            sync()
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


EAGER = ' (eager)'  # the suffix of the eager copies' names under --also-eager
# (label, numerator, denominator) of every ratio reported where both models were timed
RATIOS = (('ratio hierarchical/flat', 'hierarchical', 'flat'),
          ('ratio hierarchical/flat, eager', 'hierarchical' + EAGER, 'flat' + EAGER),
          ('compiled/eager, hierarchical', 'hierarchical', 'hierarchical' + EAGER),
          ('compiled/eager, flat', 'flat', 'flat' + EAGER))


def ratio_line(label: str, num: List[float], den: List[float]) -> str:
    """The median of the per-round ratios num/den, with their quartiles."""
    ratios = [a / b for a, b in zip(num, den)]
    if len(ratios) == 1:
        return f'  {label}: {ratios[0]:.3f}x (one round)'
    low, _, high = statistics.quantiles(ratios, n=4)
    return (f'  {label}: {statistics.median(ratios):.3f}x (median of per-round ratios; '
            f'quartiles {low:.3f}-{high:.3f})')


def summarise(mode: str, times: Dict[str, List[float]], batch: int) -> str:
    """Each model's images/s and step times, then every ratio of RATIOS it can give."""
    lines = [f'{mode}:']
    for name, t in times.items():
        med = statistics.median(t)
        lines.append(f'  {name:20s} {batch / med:8.2f} images/s  (median step '
                     f'{med * 1e3:8.1f} ms, min {min(t) * 1e3:.1f}, max {max(t) * 1e3:.1f}, '
                     f'n={len(t)})')
    lines += [ratio_line(label, times[a], times[b]) for label, a, b in RATIOS
              if a in times and b in times]
    return '\n'.join(lines)


def head_variants(cfg: Config, models: Dict[str, tuple], shape: Tuple[int, int],
                  device: torch.device) -> Dict[str, torch.nn.Module]:
    """The flat and hierarchical models, and the hierarchical one with each of its
    losses alone (a head builds its projection only for a loss that takes it)."""
    head = cfg.model.decode_head
    if isinstance(head, list):
        raise SystemExit('--modes head: one decode head only (not a cascade)')
    variants = {name: models[name][0] for name in ('flat', 'hierarchical')}
    losses = head.loss_decode if isinstance(head.loss_decode, list) else [head.loss_decode]
    for loss in losses if len(losses) > 1 else []:
        one = copy.deepcopy(cfg)
        one.model.decode_head.loss_decode = [copy.deepcopy(loss)]
        torch.manual_seed(0)
        variants[f'only {loss["type"]}'] = build(one, shape, device)[0]
    return variants


def head_times(variants: Dict[str, torch.nn.Module], data: dict, repeats: int, warmup: int,
               device: torch.device) -> Dict[str, List[float]]:
    """Seconds per call of each decode head's forward + losses + backward, on the
    backbone features of the batch (computed once; the gradient stops at them)."""
    model = variants['hierarchical']
    model.train()
    batch = model.data_preprocessor(data, True)
    with torch.no_grad():
        feats = [f.detach().requires_grad_() for f in model.extract_feat(batch['inputs'])]

    def step(m: torch.nn.Module) -> None:
        losses = m.decode_head.loss(feats, batch['data_samples'], m.train_cfg)
        sum(v for k, v in losses.items() if k.startswith('loss')).backward()

    for m in variants.values():
        m.train()
    steps = {name: (lambda m=m: step(m)) for name, m in variants.items()}
    return interleaved_times(steps, repeats, warmup, device)


def summarise_heads(times: Dict[str, List[float]]) -> str:
    lines = ['head (decode head forward + losses + backward, backbone features fixed):']
    flat = times['flat']
    for name, t in times.items():
        extra = '' if name == 'flat' else \
            f'  {statistics.median([a - b for a, b in zip(t, flat)]) * 1e3:+8.1f} ms vs flat'
        lines.append(f'  {name:36s} median {statistics.median(t) * 1e3:8.1f} ms{extra}')
    lines.append('  (vs flat: the median of the per-round differences)')
    return '\n'.join(lines)


def profile_step(name: str, step: Callable[[], None], rows: int = 15) -> None:
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    print(f'\nprofile of one training step, {name} (self CPU time):')
    print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=rows))


def step_functions(models: Dict[str, tuple], data: dict, mode: str,
                   compiled: Iterable[str] = (), backend: str = 'inductor'
                   ) -> Dict[str, Callable]:
    """{name: a function running one step} of each (model, optim_wrapper) in `mode`:
    'train' (train_step, the model in train mode) or 'inference' (test_step, eval mode);
    the models named in `compiled` through torch.compile (`backend`), as the Runner's
    compile=True."""
    steps = {}
    compiled = set(compiled)
    for name, (model, optim_wrapper) in models.items():
        if mode == 'train':
            model.train()
            fn = torch.compile(model.train_step, backend=backend) if name in compiled \
                else model.train_step
            steps[name] = (lambda f=fn, o=optim_wrapper: f(data, o))
        else:
            model.eval()
            fn = torch.compile(model.test_step, backend=backend) if name in compiled \
                else model.test_step
            steps[name] = (lambda f=fn: f(data))
    return steps


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    # as tools/train.py and test.py do on a CPU, so that the times are theirs
    kept = device.type == 'cpu' and keep_freed_memory()
    cfg = model_config(args.config, args.cfg_options)
    configured = pop_compile_losses(cfg)
    flat_cfg = model_config(args.flat, args.cfg_options) if args.flat else flat_twin(cfg)
    pop_compile_losses(flat_cfg)
    compiling = args.compile if args.compile != 'config' else \
        'losses' if configured else 'none'

    shape = tuple(args.shape or cfg.get('crop_size') or (512, 512))
    torch.manual_seed(args.seed)
    models = {'hierarchical': build(cfg, shape, device, args.precision),
              'flat': build(flat_cfg, shape, device, args.precision)}
    if args.also_eager:
        if compiling == 'none':
            raise SystemExit('--also-eager compares compiled models with eager ones: give '
                             '--compile losses or --compile step')
        # copied before compiling: the same weights and optimiser state, never compiled
        models.update({name + EAGER: copy.deepcopy(pair) for name, pair in list(models.items())})
    compiled = [name for name in models if not name.endswith(EAGER)] \
        if compiling != 'none' else []
    if compiling == 'losses':
        for name in compiled:
            compile_losses(models[name][0], backend=args.compile_backend)
    tree = models['hierarchical'][0].hierarchy
    generator = torch.Generator().manual_seed(args.seed)
    data = make_batch(args.batch, shape, tree.num_leaves, tree.ignore_index, generator)

    print(f'machine: {describe_machine(device)}'
          + (', glibc keeps freed memory' if kept else ''))
    print(f'{args.config} vs {args.flat or "its flat twin (derived)"}: batch {args.batch}, '
          f'{shape[0]}x{shape[1]}, {args.repeats} rounds after {args.warmup} warm-up, '
          f'training in {describe_wrapper(models["hierarchical"][1])} / '
          f'{describe_wrapper(models["flat"][1])}'
          + (f', options {args.cfg_options}' if args.cfg_options else '')
          + (f', torch.compile: {compiling} ({args.compile_backend}'
             + (", the config's compile_losses)" if args.compile == 'config' else ')')
             if compiling != 'none' else '')
          + (', eager copies too' if args.also_eager else ''))
    for mode in args.modes:
        if mode == 'head':
            variants = head_variants(cfg, models, shape, device)
            print(summarise_heads(head_times(variants, data, args.repeats, args.warmup, device)))
            continue
        steps = step_functions(models, data, mode,
                               compiled=compiled if compiling == 'step' else (),
                               backend=args.compile_backend)
        with torch.no_grad() if mode == 'inference' else torch.enable_grad():
            times = interleaved_times(steps, args.repeats, args.warmup, device)
        print(summarise(mode, times, args.batch))
    if args.profile:
        for name, (model, optim_wrapper) in models.items():
            model.train()
            profile_step(name, lambda m=model, o=optim_wrapper: m.train_step(data, o))


if __name__ == '__main__':
    os.environ.setdefault('OMP_NUM_THREADS', '2')
    main()
