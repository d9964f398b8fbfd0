"""The tree stated once: a config's top-level `hierarchy`, handed to every part.

mmengine merges a child config's dict into its base's dict and copies
`{{_base_.x}}` when a file is parsed, so a tree copied into each part drifts from
a child's `hierarchy = ...`, and a child's tree merged into its base's is neither.
So the parts leave the tree out, and `apply_hierarchy` (run by
`HierarchicalRunner.from_cfg`, which `runner_type` selects, and by the tools,
before anything is built):

1. takes the tree as the config file nearest the leaf states it: a child's
   `hierarchy = dict(...)` replaces its base's tree whole, as a preset name or a
   file path does under mmengine's own rules;
2. writes it into the segmentor (which hands it to its heads and losses) and each
   dataset; the metrics and the visualizer take it from the datasets'
   `dataset_meta`, as mmengine hands it to them (it is written into them too where
   a dataset holds no tree, e.g. one of mmseg's); a part that states a tree of its
   own must state the same one;
3. checks every dataset's paths.

Each user error stops here, before the config dump and the model build, as one
`ConfigError` line naming the key or the file.
"""
import ast
import copy
import inspect
import os.path as osp
from collections.abc import Mapping
from typing import Any, Iterator, List, Optional, Tuple

from mmengine.config import Config

from ..hierarchy import ClassHierarchy, HierarchyError, build_hierarchy
from ..utils import config_class

__all__ = ['ConfigError', 'apply_hierarchy', 'stated_hierarchy', 'check_checkpoint_tree']

TREE_KEY = 'hierarchy'


class ConfigError(ValueError):
    """A user's error in a config's tree, its parts' trees or its data paths."""


class _NotLiteral(Exception):
    pass


def _literal(node: ast.AST) -> Any:
    """Evaluate a tree statement: constants, `dict(...)`, `{...}`, `[...]`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, type(None))):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_literal(node.operand)
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id == 'dict' and not node.args \
            and all(kw.arg is not None for kw in node.keywords):
        return {kw.arg: _literal(kw.value) for kw in node.keywords}
    raise _NotLiteral


_NOT_LITERAL = object()


def _module(path: str) -> ast.Module:
    with open(path, encoding='utf-8') as f:
        return ast.parse(f.read(), path)


def _assigned(module: ast.Module, name: str) -> Tuple[bool, Any]:
    """Whether a config file assigns `name` at its top level, and the literal value
    (`_NOT_LITERAL` if it is computed)."""
    found: Tuple[bool, Any] = (False, None)
    for node in module.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name) and node.targets[0].id == name:
            try:
                found = (True, _literal(node.value))
            except _NotLiteral:
                found = (True, _NOT_LITERAL)
    return found


def _read(path: str, name: str) -> Tuple[bool, Any]:
    """`_assigned` for a .py config; a key of a .yaml/.json one."""
    if path.endswith('.py'):
        return _assigned(_module(path), name)
    import mmengine.fileio
    content = mmengine.fileio.load(path)
    if isinstance(content, Mapping) and name in content:
        return True, content[name]
    return False, None


def _base_paths(path: str) -> List[str]:
    """The files a config inherits from, as paths. mmengine requires `_base_` to be a
    literal; a base in another package (`mmseg::...`) states no hseg_mm tree and is
    skipped."""
    has, bases = _read(path, '_base_')
    if not has or bases is _NOT_LITERAL:
        return []
    bases = [bases] if isinstance(bases, str) else list(bases)
    return [osp.join(osp.dirname(path), b) for b in bases if '::' not in b]


def _statements(path: str) -> List[Tuple[str, Any]]:
    """(file, value) of every statement of the tree in a config's inheritance,
    base-most first (mmengine forbids two bases that both state it)."""
    found: List[Tuple[str, Any]] = []
    for base_path in _base_paths(path):
        if osp.isfile(base_path):
            found += _statements(base_path)
    has, value = _read(path, TREE_KEY)
    if has:
        found.append((path, value))
    return found


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _merge(child: Any, base: Any) -> Any:
    """mmengine's rule for a child's value over its base's: dicts merge key by key
    unless the child's carries `_delete_=True`; anything else replaces."""
    if not (isinstance(child, dict) and isinstance(base, dict)) or child.get('_delete_'):
        return {k: v for k, v in child.items() if k != '_delete_'} \
            if isinstance(child, dict) else child
    merged = dict(base)
    for key, value in child.items():
        merged[key] = _merge(value, base[key]) if key in base else _merge(value, None)
    return merged


def _merged(statements: List[Tuple[str, Any]]) -> Any:
    """What mmengine's parse makes of the statements."""
    merged = None
    for _, value in statements:
        merged = _merge(copy.deepcopy(value), merged)
    return merged


def stated_hierarchy(cfg: Config) -> Tuple[Any, Optional[str]]:
    """The config's tree as stated, and the file that states it (None: unknown).

    The statement nearest the leaf config wins whole; a value that differs from
    what parsing gave was set afterwards (`--cfg-options hierarchy=...`) and wins.
    """
    current = cfg.get(TREE_KEY)
    filename = cfg.filename
    if not filename or not osp.isfile(filename):
        return current, None
    statements = _statements(filename)
    if not statements:
        return current, None
    path, value = statements[-1]
    if value is _NOT_LITERAL:
        if len(statements) == 1:
            return current, path  # nothing to merge with: the parsed value is the statement
        raise ConfigError(
            f'{path}: `hierarchy` replaces the tree of a base config, so it must be written '
            'out: a dict(...) of names and label ids, a preset name or a tree file path')
    if all(v is not _NOT_LITERAL for _, v in statements) and \
            _plain(current) != _plain(_merged(statements)):
        return current, None
    return value, path


def _takes_tree(registry, cfg: Any) -> bool:
    cls = config_class(cfg, registry)  # None for a non-mapping too
    return cls is not None and TREE_KEY in inspect.signature(cls.__init__).parameters


def _items(value: Any, key: str) -> Iterator[Tuple[str, Any]]:
    """(key, dict) of a config value that is a dict or a list of dicts."""
    if isinstance(value, Mapping):
        yield key, value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            if isinstance(item, Mapping):
                yield f'{key}.{i}', item


def _model_parts(model: Any, key: str) -> Iterator[Tuple[str, Any]]:
    """The model and every head and loss config in it."""
    if not isinstance(model, Mapping):
        return
    yield key, model
    for head_key in ('decode_head', 'auxiliary_head'):
        for hkey, head in _items(model.get(head_key), f'{key}.{head_key}'):
            yield hkey, head
            yield from _items(head.get('loss_decode'), f'{hkey}.loss_decode')
    if isinstance(model.get('module'), Mapping):  # a TTA model wraps the segmentor
        yield from _model_parts(model['module'], f'{key}.module')


def _dataset_parts(dataset: Any, key: str) -> Iterator[Tuple[str, Any]]:
    """A dataset config and those a wrapper (Concat, Repeat, ...) holds."""
    for dkey, cfg in _items(dataset, key):
        yield dkey, cfg
        yield from _dataset_parts(cfg.get('dataset'), f'{dkey}.dataset')
        yield from _dataset_parts(cfg.get('datasets'), f'{dkey}.datasets')


def _metric_parts(evaluator: Any, key: str) -> Iterator[Tuple[str, Any]]:
    for ekey, cfg in _items(evaluator, key):
        if 'metrics' in cfg:
            yield from _items(cfg['metrics'], f'{ekey}.metrics')
        else:
            yield ekey, cfg


def config_parts(cfg: Config) -> Iterator[Tuple[str, str, Any]]:
    """(kind, key, dict) of every part of a config that may take the tree."""
    for key in ('model', 'tta_model'):
        for pkey, part in _model_parts(cfg.get(key), key):
            yield 'model', pkey, part
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if isinstance(loader, Mapping):
            for pkey, part in _dataset_parts(loader.get('dataset'), f'{split}_dataloader.dataset'):
                yield 'dataset', pkey, part
    for split in ('val', 'test'):
        for pkey, part in _metric_parts(cfg.get(f'{split}_evaluator'), f'{split}_evaluator'):
            yield 'metric', pkey, part
    for pkey, part in _items(cfg.get('visualizer'), 'visualizer'):
        yield 'visualizer', pkey, part


def _registries() -> dict:
    from mmseg.registry import DATASETS, METRICS, MODELS, VISUALIZERS
    return dict(model=MODELS, dataset=DATASETS, metric=METRICS, visualizer=VISUALIZERS)


def mismatch_message(reference: Tuple[str, ClassHierarchy],
                     others: List[Tuple[str, ClassHierarchy]]) -> str:
    """One line naming the parts whose trees differ and showing the trees."""
    name, tree = reference
    shown = '; '.join(f'{k}: {t.describe()}' for k, t in others)
    return f'parts state different trees: {name}: {tree.describe()}; {shown}'


def apply_hierarchy(cfg: Config, check_paths: bool = True) -> ClassHierarchy:
    """Resolve the config's one tree, hand it to every part, check the data paths.

    Modifies `cfg` in place: `cfg.hierarchy` becomes the tree as plain nested
    dicts (so the dumped config runs anywhere), and the segmentor and every dataset
    whose class takes `hierarchy` and leaves it out get that tree (a metric or the
    visualizer only where its datasets hold none).

    Args:
        cfg: the loaded config.
        check_paths: check every dataset's paths (tools that read no data skip it).

    Returns:
        the tree.

    Raises:
        ConfigError: one line naming the key or file, for a missing or malformed
            tree, a part that states another tree, or a dataset path that does
            not exist.
    """
    registries = _registries()
    parts = list(config_parts(cfg))
    value, source = stated_hierarchy(cfg)
    if value is None:
        stating = [k for _, k, p in parts if p.get(TREE_KEY) is not None]
        raise ConfigError(
            f'{cfg.filename or "config"}: no top-level `hierarchy`; state the tree once at the '
            'top of the config (hierarchy = dict(...), a preset name or a tree file path) and '
            'leave it out of the parts' + (f' (stated in {stating})' if stating else ''))
    where = f'hierarchy (stated in {source})' if source else 'hierarchy'
    try:
        tree = build_hierarchy(_plain(value), base_dir=osp.dirname(source) if source else None)
    except HierarchyError as err:
        raise ConfigError(f'{where}: {err}') from None
    cfg[TREE_KEY] = tree.to_dict()

    others = []
    for kind, key, part in parts:
        stated = part.get(TREE_KEY)
        if stated is not None:
            try:
                own = build_hierarchy(_plain(stated), ignore_index=tree.ignore_index)
            except HierarchyError as err:
                raise ConfigError(f'{key}.hierarchy: {err}') from None
            if not own.same_tree(tree):
                others.append((f'{key}.hierarchy', own))
    if others:
        raise ConfigError(mismatch_message((where, tree), others) +
                          ' (state the tree once, at the top level, and leave it out of the parts)')

    _check_loss_placement(cfg, registries['model'])
    filled_models = set()
    for kind, key, part in parts:
        if part.get(TREE_KEY) is not None or not _takes_tree(registries[kind], part):
            continue
        if kind in ('metric', 'visualizer') and _datasets_carry_tree(parts, registries, key):
            continue  # they take it from the dataset's dataset_meta, as mmengine hands it
        if kind == 'model' and any(key.startswith(k + '.') for k in filled_models):
            continue  # the segmentor hands its tree to its heads and their losses
        part[TREE_KEY] = copy.deepcopy(cfg[TREE_KEY])
        if kind == 'model':
            filled_models.add(key)
    if check_paths:
        _check_data_paths(parts, registries['dataset'])
    return tree


def _datasets_carry_tree(parts: List[Tuple[str, str, Any]], registries: dict,
                         key: str) -> bool:
    """Whether the datasets a metric (`val_evaluator...`) or the visualizer (every
    split) reads take the tree, so that their `dataset_meta` carries it. A wrapper
    (Concat, Repeat, ...) passes on its inner datasets' metainfo."""
    splits = ('train', 'val', 'test') if key == 'visualizer' else (key.split('_')[0], )
    datasets = [p for kind, k, p in parts if kind == 'dataset' and k.split('_')[0] in splits
                and 'dataset' not in p and 'datasets' not in p]
    return bool(datasets) and all(_takes_tree(registries['dataset'], p) for p in datasets)


def _check_loss_placement(cfg: Config, models) -> None:
    """A tree loss (it scores the tree's nodes) only in a hierarchical head."""
    for key in ('model', 'tta_model.module'):
        model = cfg.get(key) if '.' not in key else (cfg.get('tta_model') or {}).get('module')
        if not isinstance(model, Mapping):
            continue
        for head_key in ('decode_head', 'auxiliary_head'):
            for hkey, head in _items(model.get(head_key), f'{key}.{head_key}'):
                if _takes_tree(models, head):
                    continue
                for lkey, loss in _items(head.get('loss_decode'), f'{hkey}.loss_decode'):
                    if _takes_tree(models, loss):
                        raise ConfigError(
                            f'{lkey}: {loss.get("type")} scores the nodes of the tree, but '
                            f'{hkey} ({head.get("type")}) is a plain head with one channel '
                            'per leaf; use a hierarchical head there (e.g. '
                            'HierarchicalFCNHead) or a leaf loss such as CrossEntropyLoss')


def _check_data_paths(parts: List[Tuple[str, str, Any]], datasets) -> None:
    """Each dataset's folders, then its file list: every listed file must exist.

    Runs before the runner exists, so a wrong path or a missing file is the one line
    a user sees, not an error once training has started. The list is built without
    the pipeline (it needs the runner's registry scope; the real build checks it).
    """
    seen = []
    for kind, key, part in parts:
        if kind != 'dataset' or any(part is p for p in seen):
            continue  # test_dataloader = val_dataloader: one dict, checked once
        seen.append(part)
        cls = config_class(part, datasets)
        if getattr(cls, 'check_paths', None) is None:
            continue
        try:
            cls.check_paths(part, key)
            if hasattr(cls, 'list_split'):
                kwargs = {k: copy.deepcopy(v) for k, v in part.items() if k != 'type'}
                dataset = cls(**dict(kwargs, pipeline=[], lazy_init=True))
                _, missing, source = dataset.list_split()
                if missing:
                    raise FileNotFoundError(
                        f'{len(missing)} files listed in {source} are missing, e.g. '
                        f'{missing[0]} (tools/check_dataset.py lists every problem)')
        except (FileNotFoundError, ValueError, KeyError) as err:
            message = ' '.join(str(err).split())  # one line
            raise ConfigError(message if message.startswith(key) else f'{key}: {message}') \
                from None


def checkpoint_tree(checkpoint: Mapping) -> Optional[ClassHierarchy]:
    """The tree a checkpoint was trained on (its meta), or None if it names none."""
    meta = checkpoint.get('meta') or {}
    tree = meta.get(TREE_KEY) or (meta.get('dataset_meta') or {}).get(TREE_KEY)
    return None if tree is None else build_hierarchy(_plain(tree))


def check_checkpoint_tree(checkpoint: Mapping, tree: ClassHierarchy, source: str,
                          allow_other_tree: bool = False) -> Optional[str]:
    """Refuse a checkpoint trained on another tree than `tree`.

    Returns:
        a warning to log (the checkpoint names no tree, or another tree is
        allowed), or None when the trees agree.

    Raises:
        ConfigError: naming the checkpoint and both trees, unless allowed.
    """
    theirs = checkpoint_tree(checkpoint)
    if theirs is None:
        return (f'{source} names no class tree (made by another tool or an older hseg_mm); '
                'its tree cannot be checked against the config\'s')
    if theirs.same_tree(tree):
        return None
    message = (f'{source} was trained on another tree: checkpoint: {theirs.describe()}; '
               f'config: {tree.describe()}')
    if not allow_other_tree:
        raise ConfigError(message + ' (load it anyway with --allow-other-tree, e.g. to '
                          'fine-tune on a new tree)')
    return message + ' (loading it anyway: --allow-other-tree)'
