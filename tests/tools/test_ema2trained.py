"""tools/model_converters/ema2trained.py: the trained weights out of an EMAHook checkpoint,
saved by mmengine's own hook (its swap of the two), then loaded into the model."""
import subprocess
import sys
import os.path as osp

import pytest
import torch
from mmengine.hooks import EMAHook
from mmengine.logging import MessageHub
from mmengine.model import ExponentialMovingAverage
from torch import nn

from tool_helpers import load_tool  # noqa: E402  (tests/tools is on the path, as pytest puts it)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = 'tools/model_converters/ema2trained.py'
ema2trained = load_tool(TOOL, 'ema2trained')


def _ema_checkpoint() -> tuple:
    """(checkpoint as EMAHook saves it, trained weight, averaged weight)."""
    model = nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    hook = EMAHook(momentum=0.25)
    hook.ema_model = ExponentialMovingAverage(model, momentum=0.25)  # what before_run builds
    with torch.no_grad():
        model[0].weight.fill_(5.0)  # one optimiser step, as it were
    hook.ema_model.update_parameters(model)
    # the first update copies (mmengine counts steps from 0): the average is 5 too; a
    # second step to 9 moves it by a quarter of the way: 5 + 0.25 x (9 - 5) = 6
    with torch.no_grad():
        model[0].weight.fill_(9.0)
    hook.ema_model.update_parameters(model)
    # a training's checkpoint also keeps its message hub (HistoryBuffer), which torch's
    # weights_only loading refuses unless hseg_mm's shims allow it
    hub = MessageHub('ema2trained_test')
    hub.update_scalar('train/loss', 0.5)
    checkpoint = dict(meta=dict(iter=2), state_dict=model.state_dict(),
                      optimizer=dict(state={}), message_hub=hub.state_dict())
    hook.before_save_checkpoint(None, checkpoint)  # swaps: state_dict now the average
    return model, checkpoint


def test_trained_weights_come_back(tmp_path):
    model, checkpoint = _ema_checkpoint()
    assert checkpoint['state_dict']['0.weight'].item() == pytest.approx(6.0)
    src, dst = tmp_path / 'iter_2.pth', tmp_path / 'trained.pth'
    torch.save(checkpoint, src)
    subprocess.run([sys.executable, TOOL, str(src), str(dst)], cwd=ROOT, check=True,
                   timeout=120)
    out = torch.load(dst, weights_only=False)
    assert set(out) == {'meta', 'state_dict'} and out['meta'] == dict(iter=2)
    assert 'message_hub' in torch.load(src, weights_only=False)  # what broke a real run's
    assert out['state_dict']['0.weight'].item() == 9.0  # the trained weight, not 6
    model.load_state_dict(out['state_dict'])  # every key of the model, buffers included
    assert set(out['state_dict']) == set(model.state_dict())


def test_refuses_a_checkpoint_without_ema(tmp_path):
    src = tmp_path / 'plain.pth'
    torch.save(dict(state_dict=nn.Linear(1, 1).state_dict()), src)
    run = subprocess.run([sys.executable, TOOL, str(src), str(tmp_path / 'x.pth')], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and 'plain.pth has no ema_state_dict' in run.stderr
    _, checkpoint = _ema_checkpoint()
    checkpoint['state_dict']['extra'] = torch.zeros(1)  # not one model's two copies
    with pytest.raises(ValueError, match='different keys'):
        ema2trained.trained_checkpoint(checkpoint)
