"""Speed, memory and MFU of the recipes on this machine's device, as one markdown table.

    python tools/analysis/gpu_report.py [CONFIG ...] [--flat FLAT ...] [--device cuda|cpu]
        [--precisions fp32 fp16 bf16] [--modes train inference] [--batch B] [--shape H W]
        [--repeats 10] [--warmup 2] [--threads N] [--peak-tflops T | PREC=T ...]
        [--out FILE.md] [--seed 0] [--cfg-options k=v ...]

Without CONFIG it reports the PASCAL-Person-Part CPU recipe,
configs/ppp_cpu/hssn_lite2-fpn_ppp-320_cpu.py, against its flat twin
configs/ppp_cpu/flat_lite2-fpn_ppp-320_cpu.py. Each CONFIG given is paired with the
config at the same place in `--flat`, or else with its flat twin as benchmark.py derives
it; each pair runs at its config's `crop_size` and `train_dataloader.batch_size` unless
`--shape` / `--batch` say otherwise. The device is cuda when there is one, else the CPU.

Models, random batch and timing are tools/analysis/benchmark.py's: random init (no
pretrained weights are read), SyncBN as BN, one step of the hierarchical and one of the
flat model per round, the order flipping every round, CUDA synchronised around each
step. Per pair and precision the table gives:

- training images/s (batch / median `train_step`: preprocessing, forward, losses,
  backward, optimiser step) in
    fp32  OptimWrapper;
    fp16  CUDA: mmengine's AmpOptimWrapper, float16 autocast and dynamic loss scaling
          (train.py --amp); CPU: hseg_mm's CPUAmpOptimWrapper(dtype='float16'): torch's
          CPU autocast does train in float16 (tried with torch 2.13; unscaled, which
          changes no time) but over 10x slower than float32, so on a CPU only when
          `--precisions` names it (the row says so otherwise); where it fails the row
          says n/a and why;
    bf16  CUDA: AmpOptimWrapper(dtype='bfloat16'); CPU: CPUAmpOptimWrapper (bfloat16);
- inference images/s (`test_step`, the whole image at the crop, float32);
- peak memory of one more step of each model, taken after the timed rounds. CUDA:
  `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats` (every tensor held at
  the peak, both models' weights and optimiser state included). CPU: how far the
  process's peak resident set (VmHWM, reset by writing 5 to /proc/self/clear_refs) rises
  above the resident set before the step, freed heap pages handed back first
  (malloc_trim); without a writable /proc, the rise of getrusage's ru_maxrss, which
  stays 0 until a step passes the process's earlier peak. The note under the table
  names the method used;
- hierarchical / flat: median step time of the one over that of the other;
- MFU: FLOPs per image from get_flops.py (mmengine's `get_model_complexity_info` of the
  tensor forward at the crop; it counts a multiply-add as one, so x 2 here), times 3 for
  a training step (the backward taken as twice the forward), times the batch, over the
  median step time, over the device's dense peak FLOP/s in that precision: from
  KNOWN_PEAKS by `torch.cuda.get_device_name`, or `--peak-tflops` (needed on a CPU).

`--out FILE.md` writes the table, a line naming the machine (torch version, threads),
crop, batch and rounds above it, and the notes below it; the same is printed.
"""
import argparse
import copy
import ctypes
import ctypes.util
import gc
import importlib.util
import math
import os.path as osp
import re
import resource
import statistics
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

# hseg_mm first (its shims and registration come before mmseg.models)
from hseg_mm.engine.launch import run_tool  # noqa: E402
from hseg_mm.utils import describe_machine, keep_freed_memory  # noqa: E402

import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402


def _sibling(name: str):
    """tools/analysis/NAME.py as a module (the folder is not a package)."""
    module_name = f'hseg_analysis_{name}'
    if module_name not in sys.modules:
        path = osp.join(osp.dirname(osp.abspath(__file__)), f'{name}.py')
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


benchmark = _sibling('benchmark')
get_flops = _sibling('get_flops')

DEFAULT_PAIRS = (('configs/ppp_cpu/hssn_lite2-fpn_ppp-320_cpu.py',
                  'configs/ppp_cpu/flat_lite2-fpn_ppp-320_cpu.py'),)
PRECISIONS = ('fp32', 'fp16', 'bf16')
AMP_DTYPES = {'fp16': 'float16', 'bf16': 'bfloat16'}
# Why a CPU run leaves fp16 out unless asked: it works, but the float16 convolution
# backward is not oneDNN's (93% of a step in the profiler) and a step took 15x-39x as
# long as in float32 (EfficientNet-Lite2 + FPN, 64x64, batch 2, torch 2.13, two runs
# beside a training): at the recipe's 320x320, batch 8, minutes a step.
CPU_FP16 = ('float16 autocast trains on a CPU, but its convolution backward takes a slow '
            'path (over 10x float32 at 64x64, torch 2.13), so a CPU run leaves it out '
            'unless `--precisions` names fp16')

# Dense peak TFLOP/s per precision. NVIDIA's datasheets print the tensor-core figures
# with 2:4 sparsity, twice these. fp32 is the CUDA-core rate; tf32 the tensor-core rate
# that cuDNN may use for float32 convolutions (torch allows it by default), given in
# the notes only. fp16/bf16 with float32 accumulation, as autocast's kernels use (it
# matters on GeForce cards, where float16 accumulation is twice as fast). From the
# H100 (SXM, PCIe), H200, A100 and L4 datasheets and the Ada whitepaper (RTX 4090).
_H100_SXM = dict(fp32=67.0, tf32=494.5, fp16=989.5, bf16=989.5)
KNOWN_PEAKS: Tuple[Tuple[str, str, Dict[str, float]], ...] = (
    # (regular expression searched in torch.cuda.get_device_name, case ignored; the
    # first that matches wins; label, peaks)
    (r'\bH100\b.*\bPCIe\b', 'NVIDIA H100 PCIe',
     dict(fp32=51.0, tf32=378.0, fp16=756.5, bf16=756.5)),
    # "NVIDIA H100 80GB HBM3" is the SXM part; the NVL cards run at other clocks
    (r'\bH100\b(?!.*\bNVL\b)', 'NVIDIA H100 SXM', _H100_SXM),
    (r'\bH200\b(?!.*\bNVL\b)', 'NVIDIA H200 SXM (the H100 SXM\'s compute)', _H100_SXM),
    (r'\bA100\b', 'NVIDIA A100 (SXM4 and PCIe alike)',
     dict(fp32=19.5, tf32=156.0, fp16=312.0, bf16=312.0)),
    (r'\bL4\b', 'NVIDIA L4', dict(fp32=30.3, tf32=60.0, fp16=121.0, bf16=121.0)),
    # the 4090 D and the laptop 4090 are other chips
    (r'\bRTX 4090\b(?!.*\b(D|Laptop)\b)', 'NVIDIA GeForce RTX 4090',
     dict(fp32=82.6, tf32=82.6, fp16=165.2, bf16=165.2)),
)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='*', metavar='CONFIG',
                        help='hierarchical configs (default: the PASCAL-Person-Part CPU '
                        'recipe, hssn_lite2-fpn_ppp-320_cpu.py, with its shipped flat twin)')
    parser.add_argument('--flat', nargs='+', metavar='FLAT',
                        help='the flat config of each CONFIG, in order (default: derived)')
    parser.add_argument('--device', help='default: cuda if available, else cpu')
    parser.add_argument('--precisions', nargs='+', choices=PRECISIONS,
                        help='training precisions (inference is float32); default: all '
                        'three on a GPU, fp32 and bf16 on a CPU (see CPU_FP16)')
    parser.add_argument('--modes', nargs='+', choices=['train', 'inference'],
                        default=['train', 'inference'])
    parser.add_argument('--batch', type=int,
                        help='images per step (default: the config\'s train batch size)')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='image size (default: the config\'s crop_size)')
    parser.add_argument('--repeats', type=int, default=10, help='timed rounds')
    parser.add_argument('--warmup', type=int, default=2, help='untimed rounds first')
    parser.add_argument('--threads', type=int, help='torch.set_num_threads (default: torch\'s)')
    parser.add_argument('--peak-tflops', nargs='+', metavar='T|PREC=T',
                        help='the device\'s dense peak TFLOP/s: one number for every '
                        'precision, or e.g. fp32=67 bf16=989 (default: KNOWN_PEAKS)')
    parser.add_argument('--out', help='also write the markdown to this file')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of every config, key=value')
    args = parser.parse_args(argv)
    if args.flat and len(args.flat) != len(args.configs):
        parser.error(f'--flat takes one config per CONFIG ({len(args.configs)}), '
                     f'got {len(args.flat)}')
    if args.repeats < 1 or args.warmup < 0:
        parser.error('--repeats must be at least 1 and --warmup at least 0')
    return args


def known_peak(device_name: str) -> Optional[Tuple[str, Dict[str, float]]]:
    """(label, dense peak TFLOP/s per precision) of a CUDA device name, None if unknown."""
    for pattern, label, peaks in KNOWN_PEAKS:
        if re.search(pattern, device_name, re.IGNORECASE):
            return label, dict(peaks)
    return None


def default_precisions(device: torch.device) -> List[str]:
    """All three on a GPU; on a CPU fp32 and bf16 (CPU_FP16 says why)."""
    return list(PRECISIONS) if device.type == 'cuda' else ['fp32', 'bf16']


def parse_peaks(values: Sequence[str]) -> Dict[str, float]:
    """--peak-tflops: '50' for every precision, or 'fp32=20 bf16=300' (TFLOP/s)."""
    peaks: Dict[str, float] = {}
    for value in values:
        name, _, number = value.rpartition('=')
        names = [name] if name else list(PRECISIONS)
        if any(n not in PRECISIONS for n in names):
            raise SystemExit(f'--peak-tflops: {value!r}: the precision must be one of '
                             f'{", ".join(PRECISIONS)}')
        try:
            tflops = float(number)
        except ValueError:
            raise SystemExit(f'--peak-tflops: {value!r} is not a number of TFLOP/s') from None
        if not (math.isfinite(tflops) and tflops > 0):
            raise SystemExit(f'--peak-tflops: {value!r} must be a positive number')
        peaks.update({n: tflops for n in names})
    return peaks


def device_peaks(device: torch.device, given: Optional[Sequence[str]]
                 ) -> Tuple[Dict[str, float], str]:
    """(peak TFLOP/s per precision, where they come from) for the MFU column."""
    if given:
        peaks = parse_peaks(given)
        return peaks, 'given by --peak-tflops: ' + _peaks_text(peaks)
    if device.type == 'cuda':
        name = torch.cuda.get_device_name(device)
        found = known_peak(name)
        if found:
            label, peaks = found
            return peaks, f'KNOWN_PEAKS, {label}: ' + _peaks_text(peaks)
        return {}, f'"{name}" is not in KNOWN_PEAKS: give --peak-tflops'
    return {}, 'none for a CPU: give --peak-tflops'


def _peaks_text(peaks: Dict[str, float]) -> str:
    return ', '.join(f'{name} {peaks[name]:g}' for name in (*PRECISIONS, 'tf32')
                     if name in peaks) + ' TFLOP/s dense'


class StepMemory:
    """Peak memory of one call of a step on `device`; `method` says how it is taken."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._malloc_trim = None
        self._proc = False
        if device.type == 'cuda':
            self.method = ('torch.cuda.max_memory_allocated after reset_peak_memory_stats '
                           '(every tensor held at the peak: both models\' weights and '
                           'optimiser state included)')
            return
        try:
            libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
            self._malloc_trim = libc.malloc_trim
        except (OSError, AttributeError):  # not glibc: nothing to hand back
            pass
        self._proc = _reset_peak_rss()
        if self._proc:
            self.method = ('rise of the process\'s peak resident set during the step over '
                           'the resident set before it (VmHWM, reset through '
                           '/proc/self/clear_refs' + (', freed heap pages handed back first '
                                                      'by malloc_trim' if self._malloc_trim
                                                      else '') + ')')
        else:
            self.method = ('rise of getrusage\'s ru_maxrss during the step (a lower bound: '
                           'it stays 0 until a step passes the process\'s earlier peak)')

    def measure(self, step: Callable[[], None]) -> int:
        """Bytes (see `method`)."""
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            step()
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device)
        gc.collect()
        if self._malloc_trim is not None:
            # with glibc keeping freed memory (keep_freed_memory) the previous step's
            # blocks would stay resident and hide what this step needs
            self._malloc_trim(0)
        if self._proc:
            before = _status_kib('VmRSS')
            _reset_peak_rss()
            step()
            return max(0, _status_kib('VmHWM') - before) * 1024
        before = _max_rss_bytes()
        step()
        return _max_rss_bytes() - before


def _reset_peak_rss() -> bool:
    """Set VmHWM to the current RSS (Linux 4.0+); False where /proc says no."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return _status_kib('VmHWM') >= 0
    except (OSError, ValueError):
        return False


def _status_kib(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise ValueError(f'/proc/self/status has no {field}')


def _max_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == 'darwin' else rss * 1024  # macOS: bytes; Linux: KiB


def forward_flops(cfg: Config, shape: Tuple[int, int]) -> float:
    """FLOPs of one image's tensor forward at `shape` (2 x mmengine's multiply-adds)."""
    cfg = copy.deepcopy(cfg)
    if 'data_preprocessor' in cfg.model:  # else it would pad the image to the crop
        cfg.model.data_preprocessor.size = tuple(shape)
    result = get_flops.model_complexity(cfg, tuple(shape))
    if tuple(result['input_shape']) != tuple(shape):
        raise SystemExit(f'{cfg.filename}: FLOPs counted at {result["input_shape"]}, '
                         f'not {tuple(shape)}')
    return 2.0 * result['flops']


def whole_inference(cfg: Config) -> Config:
    """The config with test_cfg mode 'whole': inference on the crop as one image."""
    cfg = copy.deepcopy(cfg)
    cfg.model.test_cfg = dict(cfg.model.get('test_cfg') or {}, mode='whole')
    return cfg


def pairs_from_args(args: argparse.Namespace) -> List[Tuple[str, Config, str, Config]]:
    """[(hierarchical name, its config, flat name, its config)]."""
    if args.configs:
        paths = list(zip(args.configs, args.flat or [None] * len(args.configs)))
    else:
        paths = [(osp.join(ROOT, h), osp.join(ROOT, f)) for h, f in DEFAULT_PAIRS]
    pairs = []
    for hier_path, flat_path in paths:
        cfg = whole_inference(benchmark.model_config(hier_path, args.cfg_options))
        name = osp.splitext(osp.basename(hier_path))[0]
        if flat_path:
            flat_cfg = benchmark.model_config(flat_path, args.cfg_options)
            flat_name = osp.splitext(osp.basename(flat_path))[0]
        else:
            flat_cfg = benchmark.flat_twin(cfg)
            flat_name = f'{name} (flat twin)'
        if flat_name == name:  # the two rows and timing keys must differ
            flat_name += ' (flat)'
        pairs.append((name, cfg, flat_name, whole_inference(flat_cfg)))
    return pairs


def time_pair(cfgs: Dict[str, Config], mode: str, precision: str, shape: Tuple[int, int],
              batch: int, device: torch.device, args: argparse.Namespace,
              memory: StepMemory) -> Tuple[Dict[str, List[float]], Dict[str, int], str]:
    """Build both models in `precision`, time them alternately, then one step of each
    for its peak memory: (seconds per step, bytes, optim wrapper type)."""
    torch.manual_seed(args.seed)
    if mode == 'train' and precision != 'fp32':
        kind, dtype = 'amp', AMP_DTYPES[precision]
    else:
        kind, dtype = 'float32', None
    models = {name: benchmark.build(cfg, shape, device, kind, dtype)
              for name, cfg in cfgs.items()}
    tree = next(iter(models.values()))[0].hierarchy
    data = benchmark.make_batch(batch, shape, tree.num_leaves, tree.ignore_index,
                                torch.Generator().manual_seed(args.seed))
    steps = benchmark.step_functions(models, data, mode)
    wrapper = type(next(iter(models.values()))[1]).__name__
    try:
        with torch.no_grad() if mode == 'inference' else torch.enable_grad():
            times = benchmark.interleaved_times(steps, args.repeats, args.warmup, device)
            peaks = {name: memory.measure(step) for name, step in steps.items()}
    finally:  # free both models before the next pair or precision is built
        del models, steps
        gc.collect()
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    return times, peaks, wrapper


def make_rows(times: Dict[str, List[float]], peaks: Dict[str, int],
              flops: Dict[str, float], mode: str, precision: str, batch: int,
              peak_tflops: Dict[str, float]) -> List[dict]:
    """One row per model; the first model's row carries the ratio to the second's."""
    medians = {name: statistics.median(t) for name, t in times.items()}
    (hier, flat) = list(times)
    rows = []
    for name in (hier, flat):
        passes = 3 if mode == 'train' else 1  # backward ~ 2 forwards
        peak = peak_tflops.get(precision)
        flops_per_step = passes * flops[name] * batch
        rows.append(dict(
            config=name, mode=mode, precision=precision, batch=batch,
            times=list(times[name]), median_s=medians[name],
            images_per_s=batch / medians[name], peak_memory_bytes=peaks[name],
            ratio=medians[hier] / medians[flat] if name == hier else None,
            forward_flops=flops[name], step_flops=flops_per_step,
            peak_tflops=peak,
            mfu=flops_per_step / medians[name] / (peak * 1e12) if peak else None,
            note=None))
    return rows


def failed_rows(names: Sequence[str], mode: str, precision: str, batch: int,
                note: str) -> List[dict]:
    return [dict(config=name, mode=mode, precision=precision, batch=batch, times=[],
                 median_s=None, images_per_s=None, peak_memory_bytes=None, ratio=None,
                 forward_flops=None, step_flops=None, peak_tflops=None, mfu=None,
                 note=note) for name in names]


COLUMNS = ('config', 'mode', 'precision', 'images/s', 'step (ms)', 'peak memory (MiB)',
           'hier./flat', 'fwd GFLOP/image', 'MFU')


def format_row(row: dict) -> List[str]:
    """The table cells of a row, as printed (the test reads them back)."""
    if row['note']:
        return [row['config'], row['mode'], row['precision'], row['note'], '', '', '', '', '']
    return [row['config'], row['mode'], row['precision'],
            f'{row["images_per_s"]:.2f}',
            f'{row["median_s"] * 1e3:.1f}',
            f'{row["peak_memory_bytes"] / 2 ** 20:.0f}',
            f'{row["ratio"]:.3f}x' if row['ratio'] is not None else '',
            f'{row["forward_flops"] / 1e9:.3f}',
            f'{row["mfu"] * 100:.2f}%' if row['mfu'] is not None else 'give --peak-tflops']


def markdown(head: Sequence[str], rows: Sequence[dict], notes: Sequence[str]) -> str:
    lines = [part for line in head for part in (line, '')]  # a paragraph each
    lines += ['| ' + ' | '.join(COLUMNS) + ' |', '|' + '---|' * len(COLUMNS)]
    lines += ['| ' + ' | '.join(format_row(row)) + ' |' for row in rows]
    lines += [''] + [f'- {note}' for note in notes]
    return '\n'.join(lines) + '\n'


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Measure, print and (--out) write the report; returns its rows and markdown."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit(f'--device {args.device}: torch sees no CUDA device')
    # as tools/train.py and test.py do on a CPU, so that the times are theirs
    kept = device.type == 'cpu' and keep_freed_memory()
    peak_tflops, peak_source = device_peaks(device, args.peak_tflops)
    memory = StepMemory(device)
    machine = describe_machine(device)
    print(f'machine: {machine}' + (', glibc keeps freed memory' if kept else ''))

    head = [f'Machine: {machine}.']
    rows: List[dict] = []
    wrappers: Dict[str, str] = {}
    notes_extra: Dict[str, None] = {}  # ordered, once each
    precisions = args.precisions or default_precisions(device)
    for name, cfg, flat_name, flat_cfg in pairs_from_args(args):
        shape = tuple(args.shape or cfg.get('crop_size') or (512, 512))
        batch = args.batch or cfg.get('train_dataloader', {}).get('batch_size', 2)
        if device.type == 'cuda':  # as the runner sets it from the config
            torch.backends.cudnn.benchmark = bool(
                cfg.get('env_cfg', {}).get('cudnn_benchmark', False))
        rounds = f'{args.repeats} timed round' + ('s' if args.repeats != 1 else '')
        head.append(f'`{name}` against `{flat_name}`: crop {shape[0]}x{shape[1]}, batch '
                    f'{batch}, {rounds} after {args.warmup} warm-up, the two models '
                    'alternately.')
        cfgs = {name: cfg, flat_name: flat_cfg}
        flops = {n: forward_flops(c, shape) for n, c in cfgs.items()}
        for mode in args.modes:
            for precision in PRECISIONS if mode == 'train' else ['fp32']:
                if precision not in precisions:
                    if mode == 'train' and precision == 'fp16' and device.type == 'cpu' \
                            and not args.precisions:
                        rows += failed_rows([name, flat_name], mode, precision, batch,
                                            'not run (a CPU\'s default; see the notes)')
                        notes_extra[CPU_FP16] = None
                    continue
                try:
                    times, peaks, wrapper = time_pair(cfgs, mode, precision, shape, batch,
                                                      device, args, memory)
                except Exception as err:  # a mixed precision this device lacks
                    if precision == 'fp32':
                        raise
                    reason = ('CPU autocast has no float16 training here'
                              if device.type == 'cpu' and precision == 'fp16'
                              else 'failed')
                    note = f'n/a ({reason}: {type(err).__name__}: {str(err)[:80]})'
                    print(f'{mode} {precision}: {note}')
                    rows += failed_rows([name, flat_name], mode, precision, batch, note)
                    continue
                wrappers[precision if mode == 'train' else 'inference'] = wrapper
                print(benchmark.summarise(f'{mode} {precision}', times, batch))
                rows += make_rows(times, peaks, flops, mode, precision, batch, peak_tflops)

    notes = [
        'train: `train_step` (preprocessing, forward, losses, backward, optimiser step) '
        'in ' + '; '.join(f'{p} {w}' + (f' ({AMP_DTYPES[p]} autocast)' if p in AMP_DTYPES
                                        else '')
                          for p, w in wrappers.items() if p != 'inference')
        + '. inference: `test_step`, the whole image at the crop, float32.',
        'images/s: batch / median step time; hier./flat: the two models\' median step '
        'times divided, same precision and rounds.',
        f'peak memory ({device.type}): {memory.method}.',
        'fwd GFLOP/image: mmengine\'s `get_model_complexity_info` of the tensor forward '
        '(backbone, neck, head logits; not the losses, a projection branch or an '
        'auxiliary head), counting a multiply-add as 2 FLOPs. MFU = FLOPs per step / '
        'median step time / peak, a training step counted as 3 forwards (the backward as '
        'two), an inference step as 1.',
        f'peak FLOP/s: {peak_source}.',
    ]
    notes += [f'fp16: {note}.' for note in notes_extra]
    if device.type == 'cuda':
        notes.append('fp32 MFU is against the CUDA-core peak; cuDNN may run float32 '
                     'convolutions in TF32 on the tensor cores (torch.backends.cudnn.'
                     f'allow_tf32 is {torch.backends.cudnn.allow_tf32}), whose peak is '
                     'higher (tf32 in the peak line where known).')
    text = markdown(head, rows, notes)
    print('\n' + text, end='')
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text)
    return dict(machine=machine, device=str(device), rows=rows, markdown=text,
                peak_tflops=peak_tflops, memory_method=memory.method)


if __name__ == '__main__':
    run_tool(main)
