"""Launch set-up shared by tools/train.py and tools/test.py."""
import pytest
import torch
from mmengine.config import Config

from hseg_mm.engine.launch import check_eval_metrics, load_config, prepare_runtime
from hseg_mm.engine import ConfigError


def _write(tmp_path, text: str) -> str:
    path = tmp_path / 'cfg.py'
    path.write_text(text)
    return str(path)


def test_load_config_work_dir_and_options(tmp_path):
    path = _write(tmp_path, "hierarchy = 'pascal_person_part'\nx = dict(a=1)\n")
    cfg = load_config(path, cfg_options={'x.a': 2})
    assert cfg.x.a == 2
    assert cfg.work_dir == './work_dirs/cfg'  # named after the config file
    assert load_config(path, work_dir='elsewhere').work_dir == 'elsewhere'


def test_load_config_rejects_malformed_tree_before_building(tmp_path):
    path = _write(tmp_path, 'hierarchy = dict(background=0, body=dict(head=1, torso=1))\n')
    # one line naming the file that states the tree and the node at fault
    with pytest.raises(ConfigError, match=r"hierarchy \(stated in .*cfg\.py\): label id 1 "
                                          r"is used by both 'body/head'"):
        load_config(path)


def test_load_config_missing_file(tmp_path):
    with pytest.raises(ConfigError, match='config file not found'):
        load_config(str(tmp_path / 'nope.py'))


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU behaviour')
def test_cpu_runtime_replaces_syncbn_and_uses_bfloat16_amp():
    cfg = Config(dict(model=dict(backbone=dict(norm_cfg=dict(type='SyncBN')),
                                 heads=[dict(norm_cfg=dict(type='SyncBN'))]),
                      optim_wrapper=dict(type='OptimWrapper')))
    prepare_runtime(cfg)
    assert cfg.model.backbone.norm_cfg.type == 'BN'
    assert cfg.model.heads[0].norm_cfg.type == 'BN'
    assert prepare_runtime(cfg, amp=True).optim_wrapper.type == 'CPUAmpOptimWrapper'


def test_eval_names():
    check_eval_metrics(['mIoU'])
    with pytest.raises(SystemExit, match='mDice'):
        check_eval_metrics(['mDice'])


def test_skip_pretrained_for_testing():
    from hseg_mm.engine.launch import skip_pretrained
    cfg = Config(dict(model=dict(pretrained='missing.pth', backbone=dict(
        type='ResNetV1c', init_cfg=dict(type='Pretrained', checkpoint='missing.pth')))))
    skip_pretrained(cfg)
    assert cfg.model.pretrained is None and cfg.model.backbone.init_cfg is None


@pytest.mark.parametrize('runner_type', ['HierarchicalRunner', None])
def test_the_tree_is_resolved_once_per_command(tmp_path, monkeypatch, runner_type):
    # tools/train.py and test.py: load_config(resolve_tree=False), then build_runner,
    # where HierarchicalRunner.from_cfg resolves it (or build_runner, for another runner)
    import mmengine.runner
    from hseg_mm.engine import hierarchical_runner, launch
    calls = []

    def counting(cfg, *args, **kwargs):
        calls.append(cfg.filename)
        return real(cfg, *args, **kwargs)
    real = launch.apply_hierarchy
    monkeypatch.setattr(launch, 'apply_hierarchy', counting)
    monkeypatch.setattr(hierarchical_runner, 'apply_hierarchy', counting)
    # stop where mmengine would build the parts: hand back the config it was given
    monkeypatch.setattr(mmengine.runner.Runner, 'from_cfg', classmethod(lambda cls, cfg: cfg))
    path = _write(tmp_path, "hierarchy = 'pascal_person_part'\n"
                  "model = dict(type='HierarchicalEncoderDecoder')\n" +
                  (f'runner_type = {runner_type!r}\n' if runner_type else ''))
    cfg = load_config(path, resolve_tree=False)
    assert 'hierarchy' not in cfg.model and calls == []
    built = launch.build_runner(cfg)
    assert len(calls) == 1
    assert built.model.hierarchy['body']['lower_body'] == dict(upper_leg=5, lower_leg=6)
