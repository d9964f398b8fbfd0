"""`pip install .` works as well as `-e`: a wheel built from this checkout, installed
into a folder of its own, imported from outside the source tree, finds its preset trees
and the standard split lists (package data) and builds a model and a dataset from a
preset name."""
import os
import shutil
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run in a folder that is not the checkout, with the installed wheel first on the path:
# the editable install of this venv (a meta-path finder, consulted after sys.path) and
# the working directory cannot serve `hseg_mm`.
SCRIPT = textwrap.dedent('''
    import os, sys
    import hseg_mm
    assert hseg_mm.__file__.startswith(sys.argv[1]), hseg_mm.__file__
    from mmengine.config import ConfigDict
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS, MODELS
    from hseg_mm.datasets.pascal_person_part import OFFICIAL_SPLITS
    from hseg_mm.datasets.synthetic_people import make_synthetic_people
    from hseg_mm.hierarchy import ClassHierarchy, preset_names
    init_default_scope('mmseg')
    print('presets', ' '.join(preset_names()))
    print('splits', sorted(os.listdir(OFFICIAL_SPLITS)))
    tree = ClassHierarchy('pascal_person_part')
    model = MODELS.build(ConfigDict(
        type='HierarchicalEncoderDecoder', hierarchy='pascal_person_part',
        backbone=dict(type='ResNetV1c', depth=18, norm_cfg=dict(type='BN')),
        decode_head=dict(type='HierarchicalFCNHead', in_channels=512, channels=8,
                         num_convs=1, loss_decode=[dict(type='FocalTreeMinLoss')])))
    print('channels', model.decode_head.conv_seg.out_channels)
    make_synthetic_people('people', num_train=2, num_val=1, size=(32, 32), seed=0)
    dataset = DATASETS.build(dict(type='SyntheticPeopleDataset', data_root='people',
                                  hierarchy='pascal_person_part', split='train',
                                  pipeline=[]))
    print('dataset', len(dataset), list(dataset.metainfo['classes']) == tree.leaf_names,
          ClassHierarchy(dataset.metainfo['hierarchy']).same_tree(tree))
''')


def _run(args, cwd, timeout, env=None):
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def test_wheel_installs_and_builds_from_a_preset(tmp_path):
    wheels, site, work = tmp_path / 'wheels', tmp_path / 'site', tmp_path / 'work'
    work.mkdir()
    # setuptools builds in the source folder (build/, *.egg-info): build from a copy,
    # without the venvs make creates (.venv, .venv-gpu, .venv-mmcv: GBs each)
    source = tmp_path / 'source'
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        '.git', '.venv*', 'work_dirs', 'data', 'build', '*.egg-info', '__pycache__',
        '.pytest_cache', '.dist_test'))
    # --no-build-isolation: the venv's setuptools builds it, no download needed
    _run([sys.executable, '-m', 'pip', 'wheel', str(source), '--no-deps',
          '--no-build-isolation', '-q', '-w', str(wheels)], cwd=str(tmp_path), timeout=300)
    wheel = [w for w in os.listdir(wheels) if w.endswith('.whl')]
    assert len(wheel) == 1, wheel
    _run([sys.executable, '-m', 'pip', 'install', '--no-deps', '-q', '--target', str(site),
          str(wheels / wheel[0])], cwd=str(tmp_path), timeout=300)
    env = dict(os.environ, PYTHONPATH=str(site))
    out = _run([sys.executable, '-c', SCRIPT, str(site)], cwd=str(work), timeout=300,
               env=env)
    # every shipped tree, the two split lists, one channel per node of the person tree
    # (background, body, upper_body, lower_body and the 6 body parts: 10)
    assert ('presets ade20k_logicseg cityscapes cityscapes_hssn lip lip_hssn '
            'mapillary_vistas_v2 mapillary_vistas_v2_logicseg pascal_part_108 pascal_part_58 '
            'pascal_part_seeds pascal_person_part pascal_person_part_hssn') in out, out
    assert "splits ['train_id.txt', 'val_id.txt']" in out, out
    assert 'channels 10' in out, out
    assert 'dataset 2 True True' in out, out  # 2 training images, the tree's classes
