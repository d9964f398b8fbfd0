"""tools/analysis/benchmark.py: the derived flat twin, the random batch, one short run."""
import importlib.util
import os
import os.path as osp
import re
import subprocess
import sys

import torch
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load():
    path = osp.join(ROOT, 'tools', 'analysis', 'benchmark.py')
    spec = importlib.util.spec_from_file_location('hseg_benchmark', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_derived_flat_twin_is_the_shipped_flat_config():
    """The twin derived from demo_cpu.py is the model of configs/flat_demo_cpu.py, and
    that of the R-101 recipe the model of configs/flat_r101_deeplabv3plus.py."""
    bench = _load()
    for hssn, flat in (('demo_cpu.py', 'flat_demo_cpu.py'),
                       ('hssn_r101_deeplabv3plus.py', 'flat_r101_deeplabv3plus.py')):
        twin = bench.flat_twin(bench.model_config(osp.join(ROOT, 'configs', hssn)))
        shipped = bench.model_config(osp.join(ROOT, 'configs', flat))
        assert twin.model.to_dict() == shipped.model.to_dict(), hssn


def test_make_batch_labels_cover_the_tree_and_ignore_a_strip():
    bench = _load()
    data = bench.make_batch(2, (40, 50), num_leaves=7, ignore_index=255,
                            generator=torch.Generator().manual_seed(0))
    assert [tuple(x.shape) for x in data['inputs']] == [(3, 40, 50)] * 2
    label = data['data_samples'][0].gt_sem_seg.data
    assert tuple(label.shape) == (1, 40, 50)
    # the last 50 // 10 = 5 columns are ignored, the rest are leaf ids in 16x16 blocks
    assert (label[..., 45:] == 255).all()
    assert set(label[..., :45].unique().tolist()) <= set(range(7))
    assert (label[0, :16, :16] == label[0, 0, 0]).all()


def test_benchmark_runs_and_names_the_machine(tmp_path):
    """Two rounds of the demo model at batch 2 (BN needs 2), 32x32: images/s for both, the
    ratio, the CPU; and the head-alone timings."""
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, 'tools/analysis/benchmark.py', 'configs/demo_cpu.py', '--batch', '2',
         '--shape', '32', '32', '--repeats', '2', '--warmup', '0', '--threads', '1',
         '--modes', 'train', 'inference', 'head'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert re.search(r'machine: .+, \d+ CPUs, torch .+, 1 threads, device cpu', out)
    for mode in ('train', 'inference'):
        block = out.split(f'{mode}:')[1]
        assert re.search(r'hierarchical +\d+\.\d+ images/s', block)
        assert re.search(r'flat +\d+\.\d+ images/s', block)
        assert re.search(r'ratio hierarchical/flat: \d+\.\d+x', block)
    # the head alone: flat, hierarchical, then each of the demo's four losses alone (in
    # configs/demo_cpu.py's order)
    head = out.split('head (decode head')[1]
    names = re.findall(r'^  (\S.*?) +median +\d+\.\d+ ms', head, re.M)
    assert names == ['flat', 'hierarchical', 'only RMILoss', 'only FocalTreeMinLoss',
                     'only HierarchicalCrossEntropyLoss', 'only TreeTripletLoss']
    assert len(re.findall(r'[+-]\d+\.\d+ ms vs flat', head)) == 5


def test_interleaved_order_flips_every_round():
    # 1 warm-up + 2 timed rounds of A and B: A B, then B A, then A B; 2 times each kept
    bench = _load()
    calls = []
    times = bench.interleaved_times({'A': lambda: calls.append('A'),
                                     'B': lambda: calls.append('B')}, repeats=2, warmup=1,
                                    device=torch.device('cpu'))
    assert calls == ['A', 'B', 'B', 'A', 'A', 'B']
    assert [len(t) for t in times.values()] == [2, 2]


def test_flat_twin_needs_a_hierarchical_head():
    bench = _load()
    cfg = Config(dict(model=dict(decode_head=dict(type='FCNHead'))))
    try:
        bench.flat_twin(cfg)
    except SystemExit as err:
        assert 'no hierarchical decode head to make flat; give --flat' in str(err)
    else:
        raise AssertionError('a config without a hierarchical head was accepted')


def test_precision_picks_the_optim_wrapper(monkeypatch):
    """'config' keeps the config's wrapper, 'float32' and 'amp' override it; on a CPU mixed
    precision is CPUAmpOptimWrapper (mmengine's AmpOptimWrapper refuses a CPU)."""
    bench = _load()
    cfg = bench.model_config(osp.join(ROOT, 'configs', 'demo_cpu.py'))
    cpu = torch.device('cpu')
    assert cfg.optim_wrapper.get('type', 'OptimWrapper') == 'OptimWrapper'
    names = {p: type(bench.build(cfg, (32, 32), cpu, p)[1]).__name__
             for p in ('config', 'float32', 'amp')}
    assert names == {'config': 'OptimWrapper', 'float32': 'OptimWrapper',
                     'amp': 'CPUAmpOptimWrapper'}
    cfg.optim_wrapper.type = 'AmpOptimWrapper'  # a GPU recipe's, read on a CPU
    cfg.optim_wrapper.loss_scale = 'dynamic'
    assert type(bench.build(cfg, (32, 32), cpu)[1]).__name__ == 'CPUAmpOptimWrapper'
    assert type(bench.build(cfg, (32, 32), cpu, 'float32')[1]).__name__ == 'OptimWrapper'
    # a recipe that falls back to float32 without bf16 hardware (the Lite2 configs): 'amp'
    # times autocast as asked, on any CPU; 'float32' drops the wrapper's own argument.
    # The probe says "no bf16 hardware" so that the fallback would bite on any CPU.
    import hseg_mm.engine.cpu_amp_optim_wrapper as wrapper_module
    monkeypatch.setattr(wrapper_module, 'cpu_has_native', lambda dtype: False)
    cfg.optim_wrapper = dict(type='CPUAmpOptimWrapper', if_emulated='float32',
                             optimizer=cfg.optim_wrapper.optimizer)
    assert bench.build(cfg, (32, 32), cpu, 'amp')[1].cast_dtype == torch.bfloat16
    assert type(bench.build(cfg, (32, 32), cpu, 'float32')[1]).__name__ == 'OptimWrapper'


def test_ratios_are_medians_of_per_round_ratios():
    # rounds (hierarchical, flat): 2/1, 3/2, 4/2 -> ratios 2.0, 1.5, 2.0 -> median 2.0; the
    # eager copies 4/2, 3/3, 6/2 -> 2.0, 1.0, 3.0 -> median 2.0; compiled/eager of the
    # hierarchical model 2/4, 3/3, 4/6 -> 0.5, 1.0, 0.667 -> median 0.667
    bench = _load()
    times = {'hierarchical': [2, 3, 4], 'flat': [1, 2, 2],
             'hierarchical (eager)': [4, 3, 6], 'flat (eager)': [2, 3, 2]}
    out = bench.summarise('train', times, batch=2)
    assert 'ratio hierarchical/flat: 2.000x' in out
    assert 'ratio hierarchical/flat, eager: 2.000x' in out
    assert 'compiled/eager, hierarchical: 0.667x' in out
    # flat 1/2, 2/3, 2/2 -> 0.5, 0.667, 1.0 -> median 0.667
    assert 'compiled/eager, flat: 0.667x' in out
    # hierarchical: median step 3 s, 2 images -> 0.67 images/s
    assert re.search(r'hierarchical +0\.67 images/s', out)
    # two models only: the one ratio, no eager lines
    two = bench.summarise('train', {k: times[k] for k in ('hierarchical', 'flat')}, batch=2)
    assert 'eager' not in two and 'ratio hierarchical/flat: 2.000x' in two


def test_also_eager_times_four_models_in_one_run():
    """--compile losses --also-eager: the compiled pair and eager copies of it, one round,
    the four ratios; with torch.compile's 'eager' backend (traced by dynamo, no code
    generated) so that the test takes seconds. Without --compile it is refused."""
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    base = [sys.executable, 'tools/analysis/benchmark.py', 'configs/demo_cpu.py', '--batch',
            '2', '--shape', '32', '32', '--repeats', '1', '--warmup', '0', '--threads', '1',
            '--modes', 'train', '--also-eager']
    proc = subprocess.run(base + ['--compile', 'losses', '--compile-backend', 'eager'],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert 'torch.compile: losses (eager), eager copies too' in out
    names = re.findall(r'^  (\S.*?) +\d+\.\d+ images/s', out, re.M)
    assert names == ['hierarchical', 'flat', 'hierarchical (eager)', 'flat (eager)']
    for label in ('ratio hierarchical/flat', 'ratio hierarchical/flat, eager',
                  'compiled/eager, hierarchical', 'compiled/eager, flat'):
        assert re.search(re.escape(label) + r': \d+\.\d+x \(one round\)', out), label
    refused = subprocess.run(base, cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode != 0 and '--compile losses' in refused.stderr
    # --compile step: the compiled models' one round includes dynamo's trace of the whole
    # training step (seconds), the eager copies' does not (tens of ms at 32x32), so
    # compiled/eager far above 1 shows the compiled step is the one timed (about 250x
    # here; 1.9x when a loop variable shadowed the mode and no step was compiled)
    proc = subprocess.run(base + ['--compile', 'step', '--compile-backend', 'eager'],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ratio = re.search(r'compiled/eager, hierarchical: (\d+\.\d+)x', proc.stdout)
    assert ratio and float(ratio.group(1)) > 10, proc.stdout


def test_pop_compile_losses_clears_every_head():
    # a cascade of two heads, both compiling: True, and neither keeps the key (a
    # short-circuiting any() would leave it on the second); no key at all: False
    bench = _load()
    cfg = Config(dict(model=dict(decode_head=[dict(type='A', compile_losses=True),
                                              dict(type='B', compile_losses=True)])))
    assert bench.pop_compile_losses(cfg) is True
    assert all('compile_losses' not in head for head in cfg.model.decode_head)
    assert bench.pop_compile_losses(cfg) is False
