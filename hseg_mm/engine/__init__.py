"""The run: the config's one tree handed to every part, launch set-up, checks."""
from .hierarchical_runner import HierarchicalRunner
from .hierarchy_check_hook import HierarchyCheckHook
from .hierarchy_config import ConfigError, apply_hierarchy, check_checkpoint_tree
from .launch import load_config, prepare_runtime

__all__ = ['HierarchicalRunner', 'HierarchyCheckHook', 'ConfigError', 'apply_hierarchy',
           'check_checkpoint_tree', 'load_config', 'prepare_runtime']
