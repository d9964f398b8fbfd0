"""Build a class tree file from label names that are paths, e.g. Mapillary Vistas'.

    python tools/build_tree.py data/mapillary/config_v2.0.json tree.yaml [--separator --]
    python tools/build_tree.py names.txt tree.yaml      # one name per line, id = line

Mapillary Vistas names its labels `construction--flat--road`, `object--vehicle--car`, ...:
each name is split on the separator, every prefix becomes an inner node named by its
whole path, and label id i is the i-th name (`hseg_mm.hierarchy.tree_from_paths`). The
tree is written as YAML under a `hierarchy:` key, so a config can name the file in
`_base_` or as `hierarchy = 'tree.yaml'`. A config may also name config_v2.0.json itself
(`hierarchy = 'data/mapillary/config_v2.0.json'`): the same builder runs when it is read.
"""
import argparse
import json
import os.path as osp
import sys
from typing import List, Optional, Sequence

import yaml

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from hseg_mm.hierarchy import ClassHierarchy, tree_from_paths  # noqa: E402


def read_names(path: str) -> List[str]:
    """Label names by id from a Mapillary-style config (`labels[i].name`) or a text file."""
    if not osp.isfile(path):
        raise SystemExit(f'error: no such file: {path}')
    if path.endswith('.json'):
        with open(path) as f:
            content = json.load(f)
        labels = content.get('labels') if isinstance(content, dict) else None
        if not isinstance(labels, list) or not all(isinstance(x, dict) and 'name' in x
                                                   for x in labels):
            raise SystemExit(f'error: {path}: expected {{"labels": [{{"name": ...}}, ...]}}')
        return [x['name'] for x in labels]
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def main(argv: Optional[Sequence[str]] = None) -> ClassHierarchy:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('labels', help='config_v2.0.json-like file, or one name per line')
    parser.add_argument('out', help='tree file to write (.yaml)')
    parser.add_argument('--separator', default='--', help='between the parts of a name')
    parser.add_argument('--comment', default='', help='a first comment line (the source)')
    args = parser.parse_args(argv)
    names = read_names(args.labels)
    tree = tree_from_paths(names, args.separator, source=args.labels)
    hierarchy = ClassHierarchy(tree)  # checks it
    header = [args.comment] if args.comment else []
    header += [f'Built by tools/build_tree.py from the {len(names)} label names of '
               f'{osp.basename(args.labels)} (split on {args.separator!r}; label id = position).',
               f'Levels: {hierarchy.level_sizes} classes; {hierarchy.num_nodes} nodes.']
    with open(args.out, 'w') as f:
        f.write(''.join(f'# {line}\n' for line in header))
        yaml.safe_dump({'hierarchy': tree}, f, sort_keys=False, width=100)
    print(f'{args.out}: {len(names)} leaves, levels {hierarchy.level_sizes}')
    return hierarchy


if __name__ == '__main__':
    main()
