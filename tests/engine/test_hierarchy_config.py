"""The tree stated once: every way of stating it, a child that replaces it with one
statement, every part following it, parts that state another tree, checkpoints.

Child configs inherit configs/demo_cpu.py, whose tree comes from
hseg_mm/hierarchies/pascal_person_part.yaml through `_base_` (so mmengine
would MERGE a child's dict into it; the tests check that the child's tree wins whole).
"""
import json
import os.path as osp

import pytest
from mmengine.config import Config

from hseg_mm.engine import ConfigError, HierarchyCheckHook, apply_hierarchy
from hseg_mm.engine.hierarchy_config import check_checkpoint_tree, stated_hierarchy
from hseg_mm.engine.launch import load_config
from hseg_mm.hierarchy import ClassHierarchy

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'configs', 'demo_cpu.py')

PERSON = ClassHierarchy('pascal_person_part')
# The person tree with lower_arm moved under lower_body: merged by mmengine into the
# person tree it would name lower_arm twice.
MOVED = dict(background=0, body=dict(upper_body=dict(head=1, torso=2, upper_arm=3),
                                     lower_body=dict(lower_arm=4, upper_leg=5, lower_leg=6)))
# Fewer leaves: merged into the person tree it would silently BE the person tree.
SMALL = dict(background=0, body=dict(upper_body=dict(head=1, torso=2)))
# 4 levels, shuffled ids, leaves at depths 1, 3 and 4; the person tree's leaf names, so
# synthetic people (mapped by name) load on it.
FOUR = dict(background=3, person=dict(
    upper=dict(head=6, trunk=dict(torso=0), arm=dict(upper_arm=5, lower_arm=1)),
    lower=dict(leg=dict(upper_leg=2, lower_leg=4))))


def _child(tmp_path, body: str, base: str = DEMO, name: str = 'child.py') -> str:
    path = tmp_path / name
    path.write_text(f'_base_ = [{base!r}]\n{body}\n')
    return str(path)


def _parts_trees(cfg: Config) -> dict:
    """The tree every part of the demo config was handed: the segmentor and the
    datasets; the metrics and the visualizer take the datasets' (dataset_meta)."""
    assert 'hierarchy' not in cfg.val_evaluator and 'hierarchy' not in cfg.test_evaluator
    assert 'hierarchy' not in cfg.visualizer
    return {
        'model': cfg.model.hierarchy,
        'train_dataloader.dataset': cfg.train_dataloader.dataset.hierarchy,
        'val_dataloader.dataset': cfg.val_dataloader.dataset.hierarchy,
        'test_dataloader.dataset': cfg.test_dataloader.dataset.hierarchy,
    }


def _applied(path: str, **options) -> tuple:
    cfg = Config.fromfile(path)
    if options:
        cfg.merge_from_dict(options)
    tree = apply_hierarchy(cfg, check_paths=False)
    return cfg, tree


def test_recipe_tree_reaches_every_part_and_no_part_states_one():
    raw = Config.fromfile(DEMO)
    assert all(part.get('hierarchy') is None for part in (
        raw.model, raw.model.decode_head, raw.train_dataloader.dataset,
        raw.val_dataloader.dataset, raw.val_evaluator, raw.visualizer))
    cfg, tree = _applied(DEMO)
    assert tree.same_tree(PERSON)
    assert all(t == PERSON.to_dict() for t in _parts_trees(cfg).values())
    assert 'hierarchy' not in cfg.model.decode_head  # the segmentor hands it to its heads


def test_a_dataset_of_mmseg_leaves_the_tree_to_the_metric_and_visualizer(tmp_path):
    # mmseg's BaseSegDataset takes no tree, so its dataset_meta carries none: the
    # config's tree goes into the val metric and the visualizer (test's datasets still
    # carry it, so the test metric takes it from them)
    path = _child(tmp_path, "val_dataloader = dict(dataset=dict(\n"
                  "    _delete_=True, type='BaseSegDataset', data_root='x'))")
    cfg, tree = _applied(path)
    assert cfg.val_evaluator.hierarchy == tree.to_dict() == cfg.visualizer.hierarchy
    assert 'hierarchy' not in cfg.test_evaluator and 'hierarchy' not in cfg.val_dataloader.dataset


@pytest.mark.parametrize('tree', [MOVED, SMALL, FOUR], ids=['moved', 'small', 'four'])
def test_child_dict_replaces_the_base_tree_whole(tmp_path, tree):
    path = _child(tmp_path, f'hierarchy = {tree!r}')
    # what mmengine's parse alone makes of it: the two trees merged
    assert Config.fromfile(path).hierarchy != tree
    cfg, built = _applied(path)
    assert built.same_tree(ClassHierarchy(tree)) and cfg.hierarchy == tree
    assert all(t == tree for t in _parts_trees(cfg).values())


def test_each_way_of_stating_a_tree(tmp_path):
    (tmp_path / 'tree.yaml').write_text(
        '# a comment\nbackground: 3\nperson:\n  upper:\n    head: 6\n    trunk: {torso: 0}\n'
        '    arm: {upper_arm: 5, lower_arm: 1}\n  lower:\n    leg: {upper_leg: 2, lower_leg: 4}\n')
    (tmp_path / 'tree.json').write_text(json.dumps(FOUR))
    (tmp_path / 'sub').mkdir()
    seeds = ClassHierarchy('pascal_part_seeds')
    cases = {
        f'hierarchy = {FOUR!r}': FOUR,                                     # inline mapping
        "hierarchy = 'pascal_part_seeds'": seeds.to_dict(),                # preset name
        f"hierarchy = {str(tmp_path / 'tree.yaml')!r}": FOUR,              # YAML file
        f"hierarchy = {str(tmp_path / 'tree.json')!r}": FOUR,              # JSON file
        "hierarchy = '../tree.yaml'": FOUR,                # relative to the config's folder
    }
    for i, (statement, expected) in enumerate(cases.items()):
        path = _child(tmp_path / 'sub', statement, name=f'child{i}.py')
        cfg, built = _applied(path)
        assert built.same_tree(ClassHierarchy(expected)), statement
        assert all(t == built.to_dict() for t in _parts_trees(cfg).values()), statement


def test_grandchild_and_command_line_replace_too(tmp_path):
    child = _child(tmp_path, f'hierarchy = {MOVED!r}')
    grandchild = _child(tmp_path, f'hierarchy = {SMALL!r}', base=child, name='grand.py')
    assert _applied(grandchild)[1].same_tree(ClassHierarchy(SMALL))
    by_name = _child(tmp_path, "hierarchy = 'pascal_part_seeds'", base=child, name='n.py')
    assert _applied(by_name)[1].same_tree(ClassHierarchy('pascal_part_seeds'))
    # --cfg-options hierarchy=... comes after parsing and wins
    assert _applied(grandchild, hierarchy='pascal_person_part')[1].same_tree(PERSON)
    # a child that states nothing keeps its base's tree
    plain = _child(tmp_path, 'iters = 10', base=child, name='plain.py')
    assert _applied(plain)[1].same_tree(ClassHierarchy(MOVED))
    value, source = stated_hierarchy(Config.fromfile(grandchild))
    assert value == SMALL and source.endswith('grand.py')


@pytest.mark.parametrize('part', ['model', 'model.decode_head', 'train_dataloader.dataset',
                                  'val_evaluator', 'visualizer'])
def test_a_part_stating_another_tree_stops_naming_both(tmp_path, part):
    top, rest = (part.split('.', 1) + [''])[:2]
    inner = f'dict(hierarchy={MOVED!r})'
    for key in reversed(rest.split('.') if rest else []):
        inner = f'dict({key}={inner})'
    path = _child(tmp_path, f'{top} = {inner}')
    with pytest.raises(ConfigError) as err:
        _applied(path)
    message = str(err.value)
    assert f'{part}.hierarchy: ' + ClassHierarchy(MOVED).describe() in message
    assert 'hierarchy (stated in ' in message and PERSON.describe() in message
    assert '\n' not in message


def test_user_errors_name_the_key_or_file(tmp_path):
    bad = _child(tmp_path, 'hierarchy = dict(background=0, body=dict(head=1, torso=1))')
    with pytest.raises(ConfigError, match=r"stated in .*child\.py\): label id 1 is used by "
                                          r"both 'body/head' and 'body/torso'"):
        _applied(bad)
    with pytest.raises(ConfigError, match="unknown hierarchy preset 'nope'"):
        _applied(_child(tmp_path, "hierarchy = 'nope'", name='nope.py'))
    with pytest.raises(ConfigError, match='tree file not found'):
        _applied(_child(tmp_path, "hierarchy = 'missing.yaml'", name='missing.py'))
    # a statement that is not written out cannot replace a base's tree whole
    computed = _child(tmp_path, f'tree = {MOVED!r}\nhierarchy = tree', name='computed.py')
    with pytest.raises(ConfigError, match='must be written out'):
        _applied(computed)
    no_tree = tmp_path / 'no_tree.py'
    no_tree.write_text("val_evaluator = dict(type='HierarchicalIoUMetric', hierarchy='x')\n")
    with pytest.raises(ConfigError, match=r"no top-level `hierarchy`.*'val_evaluator'"):
        _applied(str(no_tree))
    # data paths, before anything is built
    with pytest.raises(ConfigError, match=r"^train_dataloader\.dataset\.data_root: .*nowhere"):
        load_config(DEMO, {'train_dataloader.dataset.data_root': str(tmp_path / 'nowhere'),
                           'train_dataloader.dataset.generate': None})


def test_checkpoint_tree_check():
    moved = ClassHierarchy(MOVED)
    ckpt = dict(meta=dict(hierarchy=PERSON.to_dict()))
    assert check_checkpoint_tree(ckpt, PERSON, 'a.pth') is None
    with pytest.raises(ConfigError) as err:
        check_checkpoint_tree(ckpt, moved, 'a.pth')
    assert f'a.pth was trained on another tree: checkpoint: {PERSON.describe()}; ' \
           f'config: {moved.describe()}' in str(err.value)
    assert 'loading it anyway' in check_checkpoint_tree(ckpt, moved, 'a.pth', True)
    # mmengine keeps the dataset's metainfo: a checkpoint of older code still names its tree
    old = dict(meta=dict(dataset_meta=dict(hierarchy=PERSON.to_dict())))
    with pytest.raises(ConfigError):
        check_checkpoint_tree(old, moved, 'old.pth')
    assert 'names no class tree' in check_checkpoint_tree(dict(meta={}), moved, 'x.pth')


@pytest.fixture(scope='module')
def four_level_runner(tmp_path_factory):
    """A runner of a child config that states FOUR, built as mmengine does from the file."""
    from mmseg.registry import RUNNERS
    from hseg_mm.datasets.synthetic_people import make_synthetic_people
    root = tmp_path_factory.mktemp('four')
    data = str(root / 'people')
    make_synthetic_people(data, num_train=2, num_val=1, size=(128, 128), seed=3)
    path = _child(root, f'hierarchy = {FOUR!r}')
    cfg = Config.fromfile(path)
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.update(data_root=data, generate=None)
        cfg[f'{split}_dataloader'].update(num_workers=0, persistent_workers=False)
    cfg.work_dir = str(root / 'work')
    # mmengine keeps one Visualizer per name: an earlier test's instance (person tree) would
    # be handed back under the default name
    cfg.visualizer.name = f'visualizer_{root.name}'
    return RUNNERS.build(cfg)


def test_every_built_part_follows_a_child_tree(four_level_runner):
    runner = four_level_runner
    tree = ClassHierarchy(FOUR)
    assert runner.model.hierarchy.num_nodes == 13  # 7 leaves + person, upper, lower, trunk, arm, leg
    assert runner.model.decode_head.conv_seg.out_channels == 13
    for dataset in (runner.train_loop.dataloader.dataset, runner.val_loop.dataloader.dataset):
        assert dataset.metainfo['classes'] == ['torso', 'lower_arm', 'upper_leg', 'background',
                                               'lower_leg', 'upper_arm', 'head']
    metric = runner.val_loop.evaluator.metrics[0]
    assert metric.hierarchy.num_levels == 4 and metric.hierarchy.same_tree(tree)
    # the legend of level 3: depth-3 nodes and the shallower leaves, by smallest leaf id
    assert runner.visualizer.hierarchy.level_names(2) == ['trunk', 'arm', 'leg', 'background',
                                                          'head']
    HierarchyCheckHook().before_run(runner)  # all agree


@pytest.mark.parametrize('part', ['train', 'val', 'metric', 'visualizer'])
def test_built_parts_on_different_trees_stop_before_the_first_iteration(
        four_level_runner, part, monkeypatch):
    runner = four_level_runner
    runner.train_loop, runner.val_loop  # noqa: B018 (built, as before_run finds them in train)
    objects = dict(train=runner.train_loop.dataloader.dataset,
                   val=runner.val_loop.dataloader.dataset,
                   metric=runner.val_loop.evaluator.metrics[0], visualizer=runner.visualizer)
    monkeypatch.setattr(objects[part], 'hierarchy', ClassHierarchy(MOVED))
    with pytest.raises(ConfigError, match=r'parts state different trees: model: '
                                          r'background=3, person\(.*' +
                       dict(train='train_dataloader', val='val_dataloader', metric='val_evaluator',
                            visualizer='visualizer')[part]):
        HierarchyCheckHook().before_run(runner)


def test_checkpoints_carry_the_tree(four_level_runner):
    checkpoint = dict(meta=dict())
    HierarchyCheckHook().before_save_checkpoint(four_level_runner, checkpoint)
    assert checkpoint['meta']['hierarchy'] == FOUR
    with pytest.raises(ConfigError, match='another tree'):
        HierarchyCheckHook().after_load_checkpoint(
            four_level_runner, dict(meta=dict(hierarchy=MOVED)))


def test_a_dataset_without_a_tree_must_label_the_leaves(four_level_runner, monkeypatch):
    dataset = four_level_runner.train_loop.dataloader.dataset
    # as one of mmseg's datasets: classes only, here in another order than the leaf ids
    monkeypatch.setattr(dataset, 'hierarchy', None)
    monkeypatch.setattr(dataset, '_metainfo', dict(classes=['background', 'head', 'torso',
                        'upper_arm', 'lower_arm', 'upper_leg', 'lower_leg']))
    with pytest.raises(ConfigError, match=r"train_dataloader.dataset has classes \['background'"):
        HierarchyCheckHook().before_run(four_level_runner)


def test_a_tree_loss_in_a_plain_head_names_the_head_and_key(tmp_path):
    path = _child(tmp_path, "model = dict(auxiliary_head=dict(loss_decode=[\n"
                  "    dict(type='CrossEntropyLoss', loss_weight=0.4),\n"
                  "    dict(type='FocalTreeMinLoss')]))",
                  base=osp.join(ROOT, 'configs', 'hssn_r101_deeplabv3plus.py'))
    with pytest.raises(ConfigError, match=r'^model\.auxiliary_head\.loss_decode\.1: '
                                          r'FocalTreeMinLoss scores the nodes of the tree, '
                                          r'but model\.auxiliary_head \(FCNHead\) is a plain'):
        _applied(path)


def test_a_missing_file_is_named_before_the_build(tmp_path):
    from hseg_mm.datasets.synthetic_people import make_synthetic_people
    root = tmp_path / 'people'
    make_synthetic_people(str(root), num_train=2, num_val=1, size=(32, 32), seed=0)
    label = sorted((root / 'SegmentationPart').iterdir())[0]
    label.unlink()
    options = {f'{s}_dataloader.dataset.{k}': v for s in ('train', 'val', 'test')
               for k, v in (('data_root', str(root)), ('generate', None))}
    with pytest.raises(ConfigError, match=r'^(train|val)_dataloader\.dataset: 1 files listed in '
                                          r'.* are missing, e\.g\. .*' + label.name):
        load_config(DEMO, options)
