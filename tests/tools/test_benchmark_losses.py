"""tools/benchmark_losses.py runs end to end on tiny sizes (the timing itself is not checked)."""
import importlib.util
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_tool():
    spec = importlib.util.spec_from_file_location(
        'benchmark_losses', os.path.join(ROOT, 'tools', 'benchmark_losses.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()  # main() sets the thread count process-wide
    yield
    torch.set_num_threads(threads)


def test_benchmark_losses_tiny(monkeypatch, capsys):
    tool = load_tool()
    monkeypatch.setattr(sys, 'argv', [
        'benchmark_losses.py', '--batch', '1', '--label-size', '8', '--embed-size', '4',
        '--embed-dim', '8', '--repeats', '2', '--threads', '1'])
    tool.main()
    out = capsys.readouterr().out
    assert 'machine:' in out and 'CPUs' in out
    assert 'logits/labels 8x8, embedding 8x4x4' in out
    assert 'FocalTreeMinLoss + TreeTripletLoss' in out and 'median' in out


def test_benchmark_losses_bad_hierarchy(monkeypatch):
    tool = load_tool()
    monkeypatch.setattr(sys, 'argv', ['benchmark_losses.py', '--hierarchy', 'no_such_tree'])
    with pytest.raises(ValueError, match='unknown hierarchy preset'):
        tool.main()


def test_benchmark_losses_times_a_config_step(monkeypatch, capsys):
    # the model of a config whose tree reaches it only through its top-level `hierarchy`
    tool = load_tool()
    monkeypatch.setattr(sys, 'argv', [
        'benchmark_losses.py', '--model-config', 'configs/demo_cpu.py', '--crop', '32',
        '--batch', '2', '--repeats', '1', '--threads', '1'])
    monkeypatch.chdir(ROOT)
    tool.main()
    assert 'of a training step' in capsys.readouterr().out
