"""tools/analysis/gpu_report.py: the table of one tiny CPU run, its arithmetic, and the
peak FLOP/s look-up."""
import importlib.util
import os.path as osp

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HSSN = 'hssn_lite2-fpn_ppp-320_cpu'
FLAT = 'flat_lite2-fpn_ppp-320_cpu'


def _load():
    path = osp.join(ROOT, 'tools', 'analysis', 'gpu_report.py')
    spec = importlib.util.spec_from_file_location('hseg_gpu_report', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table(markdown: str):
    """The table's body rows as lists of cells."""
    lines = [line for line in markdown.splitlines() if line.startswith('| ')]
    assert lines[0].startswith('| config | mode | precision | images/s |')
    return [[cell.strip() for cell in line.strip('|').split('|')] for line in lines[1:]]


def _run(tool, argv):
    """tool.main in this process, leaving its malloc settings and threads as they were."""
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tool, 'keep_freed_memory', lambda: False)
        try:
            return tool.main(argv)
        finally:
            torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    """The default pair (the PPP CPU recipe and its flat twin) at 32x32, batch 2 (BN needs
    2), one timed round, every precision asked for, a made-up peak of 0.5 TFLOP/s."""
    tool = _load()
    out = tmp_path_factory.mktemp('gpu_report') / 'report.md'
    result = _run(tool, ['--device', 'cpu', '--shape', '32', '32', '--batch', '2',
                         '--repeats', '1', '--warmup', '0', '--threads', '1',
                         '--precisions', 'fp32', 'fp16', 'bf16', '--peak-tflops', '0.5',
                         '--out', str(out)])
    return tool, result, out.read_text()


def test_one_row_per_config_and_precision(tiny_run):
    _, result, written = tiny_run
    assert written == result['markdown']
    # the machine line names the CPU, torch and the thread count; the pair line the crop,
    # batch and rounds
    assert 'Machine: ' in written and f'torch {torch.__version__}, 1 threads' in written
    assert f'`{HSSN}` against `{FLAT}`: crop 32x32, batch 2, 1 timed round after 0 ' \
           'warm-up' in written
    rows = _table(written)
    # 2 configs x (3 training precisions + float32 inference) = 8 rows, hierarchical first
    assert [row[:3] for row in rows] == [
        [HSSN, 'train', 'fp32'], [FLAT, 'train', 'fp32'],
        [HSSN, 'train', 'fp16'], [FLAT, 'train', 'fp16'],
        [HSSN, 'train', 'bf16'], [FLAT, 'train', 'bf16'],
        [HSSN, 'inference', 'fp32'], [FLAT, 'inference', 'fp32']]
    # fp16 on a CPU, when asked for, runs (CPUAmpOptimWrapper in float16): a number in
    # every row, and the notes say which wrapper trained each precision
    assert all(row['note'] is None for row in result['rows'])
    assert 'fp16 CPUAmpOptimWrapper (float16 autocast)' in written
    assert 'bf16 CPUAmpOptimWrapper (bfloat16 autocast)' in written
    assert 'fp32 OptimWrapper' in written
    # CPU memory: the way it is measured is named, and a training step needs some
    assert f'peak memory (cpu): {result["memory_method"]}' in written
    assert all(row['peak_memory_bytes'] > 0 for row in result['rows'] if row['mode'] == 'train')


def test_ratio_and_mfu_are_the_returned_numbers(tiny_run):
    _, result, written = tiny_run
    rows = result['rows']
    printed = _table(written)
    for i in range(0, len(rows), 2):
        hier, flat = rows[i], rows[i + 1]
        # one round: the median is that round's time; images/s = 2 / median
        assert hier['median_s'] == hier['times'][0] and len(hier['times']) == 1
        assert printed[i][3] == f'{2 / hier["median_s"]:.2f}'
        assert printed[i][4] == f'{hier["median_s"] * 1e3:.1f}'
        # hier./flat = the hierarchical median over the flat one, on the first row only
        ratio = hier['median_s'] / flat['median_s']
        assert hier['ratio'] == pytest.approx(ratio, rel=1e-12)
        assert printed[i][6] == f'{ratio:.3f}x' and printed[i + 1][6] == ''
        for row, cells in ((hier, printed[i]), (flat, printed[i + 1])):
            # MFU = passes x forward FLOPs x batch / median / (0.5e12 FLOP/s), passes 3 in
            # training (forward + backward as two), 1 at inference
            passes = 3 if row['mode'] == 'train' else 1
            mfu = passes * row['forward_flops'] * 2 / row['median_s'] / 0.5e12
            assert row['mfu'] == pytest.approx(mfu, rel=1e-12)
            assert cells[8] == f'{mfu * 100:.2f}%'
            assert cells[7] == f'{row["forward_flops"] / 1e9:.3f}'


def test_flops_are_twice_get_flops_multiply_adds(tiny_run):
    # mmengine counts a multiply-add as 1; the report counts 2, as peak FLOP/s figures do
    tool, result, _ = tiny_run
    cfg = tool.benchmark.model_config(osp.join(ROOT, 'configs/ppp_cpu', HSSN + '.py'))
    cfg.model.data_preprocessor.size = (32, 32)
    macs = tool.get_flops.model_complexity(cfg, (32, 32))['flops']
    assert result['rows'][0]['forward_flops'] == 2 * macs


def test_made_up_times_give_the_worked_figures(monkeypatch):
    """With the timing and the FLOP count replaced, every figure is known beforehand;
    default precisions on a CPU: fp16 is a 'not run' row and a note says why."""
    tool = _load()

    def fake_time_pair(cfgs, mode, precision, shape, batch, device, args, memory):
        hier, flat = cfgs
        # medians: hierarchical 0.30 s (of 0.20, 0.30, 0.40), flat 0.25 s (of 0.20, 0.25,
        # 0.30); 100 MiB and 60 MiB
        return ({hier: [0.30, 0.20, 0.40], flat: [0.25, 0.30, 0.20]},
                {hier: 100 * 2 ** 20, flat: 60 * 2 ** 20}, 'OptimWrapper')

    monkeypatch.setattr(tool, 'time_pair', fake_time_pair)
    monkeypatch.setattr(tool, 'forward_flops', lambda cfg, shape: 4e9)
    result = _run(tool, ['--device', 'cpu', '--repeats', '3', '--peak-tflops', 'fp32=2',
                         'bf16=4'])
    rows = _table(result['markdown'])
    # the recipe's crop and batch: 320x320, 8 (configs/_base_/datasets/pascal_part_npy_cpu.py)
    assert f'`{HSSN}` against `{FLAT}`: crop 320x320, batch 8, 3 timed rounds after 2 ' \
           'warm-up' in result['markdown']
    # images/s: 8 / 0.30 = 26.67 and 8 / 0.25 = 32.00; ratio 0.30 / 0.25 = 1.200x.
    # MFU, training: 3 x 4e9 x 8 = 9.6e10 FLOPs a step; hierarchical fp32: 9.6e10 / 0.30
    # / 2e12 = 0.16 = 16.00%, flat 9.6e10 / 0.25 / 2e12 = 19.20%; bf16 at 4e12: 8.00%,
    # 9.60%. Inference: 4e9 x 8 = 3.2e10 / 0.30 / 2e12 = 5.33%, / 0.25: 6.40%.
    gflop = '4.000'
    assert rows == [
        [HSSN, 'train', 'fp32', '26.67', '300.0', '100', '1.200x', gflop, '16.00%'],
        [FLAT, 'train', 'fp32', '32.00', '250.0', '60', '', gflop, '19.20%'],
        [HSSN, 'train', 'fp16', 'not run (a CPU\'s default; see the notes)', '', '', '', '', ''],
        [FLAT, 'train', 'fp16', 'not run (a CPU\'s default; see the notes)', '', '', '', '', ''],
        [HSSN, 'train', 'bf16', '26.67', '300.0', '100', '1.200x', gflop, '8.00%'],
        [FLAT, 'train', 'bf16', '32.00', '250.0', '60', '', gflop, '9.60%'],
        [HSSN, 'inference', 'fp32', '26.67', '300.0', '100', '1.200x', gflop, '5.33%'],
        [FLAT, 'inference', 'fp32', '32.00', '250.0', '60', '', gflop, '6.40%']]
    assert 'fp16: float16 autocast trains on a CPU' in result['markdown']
    assert 'peak FLOP/s: given by --peak-tflops: fp32 2, bf16 4 TFLOP/s dense' \
        in result['markdown']


def test_without_a_peak_the_mfu_column_asks_for_one(monkeypatch):
    tool = _load()
    monkeypatch.setattr(tool, 'time_pair', lambda cfgs, *a: (
        {n: [0.5] for n in cfgs}, {n: 0 for n in cfgs}, 'OptimWrapper'))
    monkeypatch.setattr(tool, 'forward_flops', lambda cfg, shape: 1e9)
    result = _run(tool, ['--device', 'cpu', '--modes', 'inference'])
    # inference only: one float32 row per config, 8 / 0.5 = 16.00 images/s, ratio 1.000x
    assert [row[3:] for row in _table(result['markdown'])] == [
        ['16.00', '500.0', '0', '1.000x', '1.000', 'give --peak-tflops'],
        ['16.00', '500.0', '0', '', '1.000', 'give --peak-tflops']]
    assert 'peak FLOP/s: none for a CPU: give --peak-tflops' in result['markdown']


@pytest.mark.parametrize('name, label, fp32, bf16', [
    # torch.cuda.get_device_name of the SXM H100 names its memory, not its socket
    ('NVIDIA H100 80GB HBM3', 'NVIDIA H100 SXM', 67.0, 989.5),
    ('NVIDIA H100 PCIe', 'NVIDIA H100 PCIe', 51.0, 756.5),
    ('NVIDIA H200', 'NVIDIA H200 SXM (the H100 SXM\'s compute)', 67.0, 989.5),
    ('NVIDIA A100-SXM4-80GB', 'NVIDIA A100 (SXM4 and PCIe alike)', 19.5, 312.0),
    ('NVIDIA A100-PCIE-40GB', 'NVIDIA A100 (SXM4 and PCIe alike)', 19.5, 312.0),
    ('NVIDIA L4', 'NVIDIA L4', 30.3, 121.0),
    ('NVIDIA GeForce RTX 4090', 'NVIDIA GeForce RTX 4090', 82.6, 165.2),
])
def test_known_peaks(name, label, fp32, bf16):
    found = _load().known_peak(name)
    assert found is not None
    assert found[0] == label
    assert (found[1]['fp32'], found[1]['bf16'], found[1]['fp16']) == (fp32, bf16, bf16)


@pytest.mark.parametrize('name', [
    'NVIDIA H100 NVL', 'NVIDIA H200 NVL',  # other clocks
    'NVIDIA GH200 480GB',  # "H200" inside a word
    'NVIDIA L40S',  # "L4" inside a word
    'NVIDIA GeForce RTX 4090 D', 'NVIDIA GeForce RTX 4090 Laptop GPU',
    'Tesla V100-SXM2-16GB'])
def test_unknown_devices_have_no_peak(name):
    assert _load().known_peak(name) is None


def test_peak_tflops_flag_and_default_precisions():
    tool = _load()
    assert tool.parse_peaks(['50']) == dict(fp32=50.0, fp16=50.0, bf16=50.0)
    assert tool.parse_peaks(['fp32=1.5', 'bf16=3']) == dict(fp32=1.5, bf16=3.0)
    for bad in (['tf16=1'], ['fast'], ['0'], ['nan']):
        with pytest.raises(SystemExit):
            tool.parse_peaks(bad)
    assert tool.device_peaks(torch.device('cpu'), None) == (
        {}, 'none for a CPU: give --peak-tflops')
    assert tool.default_precisions(torch.device('cpu')) == ['fp32', 'bf16']
    assert tool.default_precisions(torch.device('cuda')) == ['fp32', 'fp16', 'bf16']
