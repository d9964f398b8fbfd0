"""Every built part on one tree, and the tree in every checkpoint."""
from typing import List, Optional, Tuple

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import BaseLoop
from mmseg.registry import HOOKS

from ..hierarchy import ClassHierarchy, build_hierarchy
from .hierarchy_config import ConfigError, check_checkpoint_tree, mismatch_message


def _unwrap(model):
    while hasattr(model, 'module'):  # DDP, then a TTA model around the segmentor
        model = model.module
    return model


def _part_tree(part) -> Optional[ClassHierarchy]:
    tree = getattr(part, 'hierarchy', None)
    if isinstance(tree, ClassHierarchy):
        return tree
    meta = getattr(part, 'metainfo', None) or getattr(part, 'dataset_meta', None) or {}
    return build_hierarchy(meta['hierarchy']) if meta.get('hierarchy') else None


def built_parts(runner) -> List[Tuple[str, object]]:
    """(name, part) of the model, the datasets and metrics of the built loops, and
    the visualizer."""
    parts = [('model', _unwrap(runner.model))]
    for name in ('train', 'val', 'test'):
        loop = getattr(runner, f'_{name}_loop', None)
        if not isinstance(loop, BaseLoop):
            continue  # not built in this run (a dict or None)
        parts.append((f'{name}_dataloader.dataset', loop.dataloader.dataset))
        for i, metric in enumerate(getattr(getattr(loop, 'evaluator', None), 'metrics', [])):
            parts.append((f'{name}_evaluator[{i}] ({type(metric).__name__})', metric))
    parts.append(('visualizer', runner.visualizer))
    return parts


def built_trees(runner) -> List[Tuple[str, ClassHierarchy]]:
    """(part, tree) of every built part that holds a tree."""
    return [(name, tree) for name, tree in ((n, _part_tree(p)) for n, p in built_parts(runner))
            if tree is not None]


@HOOKS.register_module()
class HierarchyCheckHook(Hook):
    """Stops a run whose parts hold different trees, before its first iteration;
    writes the model's tree into every checkpoint (`meta['hierarchy']`); refuses to
    load (`load_from`, `--resume`) a checkpoint trained on another tree.

    Listed in `hierarchical_hooks` of configs/_base_/default_runtime.py.

    Args:
        allow_other_tree: load a checkpoint of another tree anyway (with a
            warning), e.g. to fine-tune a trained model on a new tree. None: the
            config's top-level `allow_other_tree` (what `--allow-other-tree` sets).
    """
    priority = 'VERY_HIGH'

    def __init__(self, allow_other_tree: Optional[bool] = None) -> None:
        self.allow_other_tree = allow_other_tree

    def _allow_other_tree(self, runner) -> bool:
        if self.allow_other_tree is not None:
            return self.allow_other_tree
        cfg = getattr(runner, 'cfg', None)
        return bool(cfg.get('allow_other_tree', False)) if cfg is not None else False

    def before_run(self, runner) -> None:
        trees = built_trees(runner)
        if not trees:
            return
        reference = trees[0]
        others = [(n, t) for n, t in trees[1:] if not t.same_tree(reference[1])]
        if others:
            raise ConfigError(mismatch_message(reference, others))
        # a dataset that holds no tree (e.g. one of mmseg's) must at least label the leaves
        leaves = reference[1].leaf_names
        for name, part in built_parts(runner):
            classes = (getattr(part, 'metainfo', None) or {}).get('classes')
            if _part_tree(part) is None and classes is not None and list(classes) != leaves:
                raise ConfigError(f'{name} has classes {list(classes)}, but the tree of '
                                  f'{reference[0]} has leaves {leaves} (label id order)')

    def _model_tree(self, runner) -> Optional[ClassHierarchy]:
        return _part_tree(_unwrap(runner.model))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        tree = self._model_tree(runner)
        if tree is not None:
            checkpoint.setdefault('meta', {})['hierarchy'] = tree.to_dict()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        tree = self._model_tree(runner)
        if tree is None:
            return
        source = getattr(runner, 'checkpoint_being_loaded', None) or 'the checkpoint'
        warning = check_checkpoint_tree(checkpoint, tree, source,
                                        self._allow_other_tree(runner))
        if warning:
            print_log(warning, logger='current', level=30)
