"""tools/build_tree.py: a tree file from label names that are paths."""
import importlib.util
import json
import os.path as osp

import pytest

from hseg_mm.hierarchy import ClassHierarchy

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool():
    spec = importlib.util.spec_from_file_location(
        'build_tree', osp.join(ROOT, 'tools', 'build_tree.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_tree_from_a_vistas_config_and_a_name_list(tmp_path):
    tool = load_tool()
    names = ['nature--sky', 'object--vehicle--car', 'object--vehicle--bus', 'nature--sand']
    (tmp_path / 'config.json').write_text(json.dumps({'labels': [{'name': n} for n in names]}))
    (tmp_path / 'names.txt').write_text('\n'.join(names) + '\n')
    for source in ('config.json', 'names.txt'):
        out = tmp_path / f'{source}.yaml'
        built = tool.main([str(tmp_path / source), str(out), '--comment', 'test source'])
        assert out.read_text().startswith('# test source\n# Built by tools/build_tree.py')
        written = ClassHierarchy(str(out))  # the `hierarchy:` file a config can name
        assert written.same_tree(built)
        # nature(sky=0, sand=3), object(vehicle(car=1, bus=2)): 2, 3 and 4 classes per level
        assert written.level_sizes == [2, 3, 4]
        assert written.leaf_names == names
    with pytest.raises(SystemExit, match='expected'):
        (tmp_path / 'bad.json').write_text('{"labels": [1, 2]}')
        tool.main([str(tmp_path / 'bad.json'), str(tmp_path / 'x.yaml')])
