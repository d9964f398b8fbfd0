"""HierarchicalRunner registers the hooks the config's `hierarchical_hooks` lists
(configs/_base_/default_runtime.py), and nothing behind the config's back."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmseg.registry import RUNNERS

from hseg_mm.datasets.synthetic_people import make_synthetic_people
from hseg_mm.engine import ConfigError

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'configs', 'demo_cpu.py')
OURS = ('HierarchyCheckHook', 'RandomStateHook', 'NonFiniteGuardHook')


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('people'))
    make_synthetic_people(root, num_train=2, num_val=1, size=(64, 64), seed=0)
    return root


def _runner(tmp_path, data: str, body: str):
    path = tmp_path / 'child.py'
    path.write_text(f'_base_ = [{DEMO!r}]\n{body}\n')
    cfg = Config.fromfile(str(path))
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.update(data_root=data, generate=None)
    cfg.work_dir = str(tmp_path / 'work')
    # mmengine keeps one Visualizer per name for the whole process: a name of its own, so
    # that no later test gets this tree's visualizer
    cfg.visualizer.name = f'visualizer_{tmp_path.name}'
    return RUNNERS.build(cfg)


def _ours(runner) -> dict:
    """{type name: [hooks of that type]} of hseg-mm's hooks on the runner."""
    return {name: [h for h in runner.hooks if type(h).__name__ == name] for name in OURS}


def test_default_runtime_lists_the_hooks(tmp_path, data):
    hooks = _ours(_runner(tmp_path, data, ''))
    assert {name: len(found) for name, found in hooks.items()} == dict.fromkeys(OURS, 1)
    guard = hooks['NonFiniteGuardHook'][0]
    assert (guard.action, guard.max_skips) == ('stop', 10)  # default_runtime.py's entry
    assert hooks['HierarchyCheckHook'][0].allow_other_tree is None  # the config decides


def test_a_child_changes_or_drops_one_hook_in_one_statement(tmp_path, data):
    runner = _runner(tmp_path, data, "hierarchical_hooks = dict(\n"
                     "    non_finite_guard=dict(action='skip', max_skips=3), random_state=None)")
    hooks = _ours(runner)
    guard = hooks['NonFiniteGuardHook'][0]
    assert (guard.action, guard.max_skips) == ('skip', 3)  # merged into the base's entry
    assert hooks['RandomStateHook'] == [] and len(hooks['HierarchyCheckHook']) == 1


def test_a_hook_also_in_custom_hooks_is_registered_once(tmp_path, data):
    runner = _runner(tmp_path, data, "custom_hooks = [dict(type='RandomStateHook')]")
    assert len(_ours(runner)['RandomStateHook']) == 1


def test_allow_other_tree_comes_from_the_config(tmp_path, data):
    # HierarchyCheckHook(allow_other_tree=None) reads the top-level key (--allow-other-tree)
    runner = _runner(tmp_path, data, '')
    hook = _ours(runner)['HierarchyCheckHook'][0]
    other = dict(meta=dict(hierarchy=dict(background=0, thing=1)))
    with pytest.raises(ConfigError, match='another tree'):
        hook.after_load_checkpoint(runner, other)
    runner.cfg.allow_other_tree = True
    hook.after_load_checkpoint(runner, other)  # a warning, no error
