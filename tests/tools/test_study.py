"""tools/study.py on two tiny configs (HSSN and flat demo, 2 iterations) and a rule variant."""
import glob
import json
import os.path as osp

import pytest

from hseg_mm.datasets.synthetic_people import make_synthetic_people

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location('study', osp.join(ROOT, 'tools', 'study.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cells(line: str) -> list:
    return [c.strip() for c in line.strip().strip('|').split('|')]


def _metric_columns(head: list) -> list:
    """(column, metric key) for the table's metric columns, from the header's words."""
    pairs = []
    for column in head:
        kind, _, level = column.rpartition(' L')
        key = {'mIoU': 'mIoU_L{}', 'no bg': 'mIoU_L{}_nobg', 'ECE': 'ECE_L{}'}.get(kind)
        if key and level.isdigit():
            pairs.append((column, key.format(level)))
    if 'consistency' in head:
        pairs.append(('consistency', 'consistency'))
    return pairs


def _written_metrics(test_dir: str) -> dict:
    found = glob.glob(osp.join(test_dir, '*', '*.json'))
    assert len(found) == 1, found
    with open(found[0]) as f:
        return json.load(f)


def test_format_table_puts_each_metric_in_its_column():
    # every value distinct, so a swapped level, a with/without-background exchange or
    # ECE in a mIoU column changes the line; 2 levels here to keep it short
    metrics = {'mIoU_L1': 11.111, 'mIoU_L2': 12.0, 'mIoU_L1_nobg': 21.0, 'mIoU_L2_nobg': 22.0,
               'consistency': 99.5, 'ECE_L1': 31.0, 'ECE_L2': 32.0, 'mIoU': 12.0}
    no_ece = {k: v for k, v in metrics.items() if not k.startswith('ECE')}
    table = load_tool().format_table([
        dict(entry='a', metrics=metrics, seconds_per_iter=1.2345, train_minutes=20.04,
             peak_mib=1024.4),
        dict(entry='b', metrics=no_ece, seconds_per_iter=None, train_minutes=None,
             peak_mib=None)], 'machine M')
    assert table.splitlines() == [
        '| entry | mIoU L1 | mIoU L2 | no bg L1 | no bg L2 | consistency | ECE L1 | ECE L2 '
        '| s/iter (train) | train min | peak MiB |',
        '|---|---|---|---|---|---|---|---|---|---|---|',
        # 11.111 -> 11.11; 1.2345 -> 1.234 or 1.235 (binary rounding of .5): 1.234 here
        '| a | 11.11 | 12.00 | 21.00 | 22.00 | 99.50 | 31.00 | 32.00 | 1.234 | 20.0 | 1024 |',
        '| b | 11.11 | 12.00 | 21.00 | 22.00 | 99.50 | — | — | — | — | — |',
        '',
        'mIoU and ECE in %, on the test split; machine M.']


def test_study_of_two_configs_and_a_rule(tmp_path, monkeypatch):
    data = str(tmp_path / 'people')
    make_synthetic_people(data, num_train=4, num_val=2, size=(128, 128), seed=4)
    options = ['train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'param_scheduler.0.end=2',
               'default_hooks.checkpoint.interval=2', 'train_dataloader.batch_size=2']
    for split in ('train', 'val', 'test'):
        options += [f'{split}_dataloader.dataset.data_root={data}',
                    f'{split}_dataloader.dataset.generate=None',
                    f'{split}_dataloader.num_workers=0',
                    f'{split}_dataloader.persistent_workers=False']
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    work = str(tmp_path / 'study')
    table = load_tool().main(['configs/demo_cpu.py', 'configs/flat_demo_cpu.py',
                              'configs/flat_demo_cpu.py@level_argmax', '--work-dir', work,
                              '--timeout', '300', '--cfg-options', *options])
    lines = table.splitlines()
    assert lines[0].startswith('| entry | mIoU L1 | mIoU L2 | mIoU L3 | no bg L1')
    # one row per entry; the rule variant reuses the flat training (one train run each)
    assert [ln.split(' | ')[0][2:] for ln in lines[2:5]] == [
        'configs/demo_cpu.py', 'configs/flat_demo_cpu.py', 'configs/flat_demo_cpu.py@level_argmax']
    assert osp.isfile(osp.join(work, 'study.md')) and osp.getsize(osp.join(work, 'study.png'))
    # every metric cell is the metric its test run wrote (read here from the file, not
    # through the tool), in the column the header names
    with open(osp.join(work, 'study.md')) as f:
        assert f.read() == table + '\n'
    head = _cells(lines[0])
    for line, test_dir in zip(lines[2:5], ['demo_cpu/test_own', 'flat_demo_cpu/test_own',
                                           'flat_demo_cpu/test_level_argmax']):
        written = _written_metrics(osp.join(work, test_dir))
        cells = dict(zip(head, _cells(line)))
        for column, key in _metric_columns(head):
            assert cells[column] == format(written[key], '.2f'), (line, column, key)
    assert not osp.exists(osp.join(work, 'flat_demo_cpu@level_argmax'))

    # --reuse: both trainings reached iteration 2 and every test left its metrics, so
    # nothing runs again and the same figures come back (peak memory is no longer known)
    tool = load_tool()
    monkeypatch.setattr(tool, 'run', lambda cmd, timeout: pytest.fail(f'ran {cmd}'))
    again = tool.main(['configs/demo_cpu.py', 'configs/flat_demo_cpu.py',
                       'configs/flat_demo_cpu.py@level_argmax', '--work-dir', work, '--reuse',
                       '--cfg-options', *options]).splitlines()
    assert [ln.rsplit(' | ', 2)[0] for ln in again[2:5]] == \
        [ln.rsplit(' | ', 2)[0] for ln in lines[2:5]]
    assert all(ln.endswith('| — |') for ln in again[2:5])
    # a finished run of another setting (here the seed) is not taken for this one
    with pytest.raises(SystemExit, match='trained with another `randomness`'):
        tool.main(['configs/demo_cpu.py', '--work-dir', work, '--reuse', '--seed', '1',
                   '--cfg-options', *options])


def test_study_refuses_different_schedules(tmp_path):
    other = tmp_path / 'longer.py'  # the demo trains 3,000 iterations
    other.write_text(f"_base_ = [{osp.join(ROOT, 'configs', 'demo_cpu.py')!r}]\n"
                     "train_cfg = dict(max_iters=4500)\n")
    with pytest.raises(SystemExit, match=r"differs from configs/demo_cpu.py in \['train_cfg'"):
        load_tool().main(['configs/demo_cpu.py', str(other), '--work-dir', str(tmp_path)])


def test_finished_checkpoint(tmp_path):
    study = load_tool()
    work = tmp_path / 'run'
    work.mkdir()
    assert study.finished_checkpoint(str(work), 4) is None  # never trained
    (work / 'iter_2.pth').write_bytes(b'')
    (work / 'last_checkpoint').write_text(str(work / 'iter_2.pth'))
    assert study.finished_checkpoint(str(work), 4) is None  # stopped at 2 of 4
    (work / 'iter_4.pth').write_bytes(b'')
    # written where the run was before its folder moved: the same file here is found
    (work / 'last_checkpoint').write_text('/elsewhere/run/iter_4.pth')
    assert study.finished_checkpoint(str(work), 4) == str(work / 'iter_4.pth')


def test_tta_protocol_names_each_protocol_apart():
    protocol = load_tool().tta_protocol
    assert protocol(False, None) == ([], '', 'on the whole image')
    assert protocol(True, None) == (['--tta'], '_tta', "with the config's TTA (--tta)")
    # 2/3, 1, 4/3 of the PPP CPU recipes' 750 px: long sides 500, 750, 1000
    args, suffix, words = protocol(True, [0.667, 1.0, 1.333])
    assert args == ['--tta', '--tta-scales', '0.667', '1', '1.333']
    assert suffix == '_tta-x0.667-x1-x1.333'  # not '_tta': --reuse keeps them apart
    assert words == "with the config's TTA at 0.667, 1, 1.333 times its resize (--tta-scales)"
    with pytest.raises(SystemExit, match='add --tta'):
        protocol(False, [1.0])
